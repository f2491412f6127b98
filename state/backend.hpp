// backend — which storage server.state names, by its URL scheme. Header-only
// and pure, so the config loader can refuse a wrong value with its line
// number before anything is opened, with the same words open_state uses.
#pragma once
#include <string>
#include <string_view>

namespace ricochet::state {

enum class backend { sqlite, none };

// The backend and, for none, why: an unknown scheme is named in the error.
inline backend backend_of(std::string_view url, std::string& error) {
    auto colon = url.find(':');
    std::string scheme(colon == std::string_view::npos ? std::string_view{} : url.substr(0, colon));
    if (scheme == "sqlite" && url.size() > colon + 1) return backend::sqlite;
    if (scheme == "sqlite")
        error = "\"" + std::string(url) + "\": no path after sqlite:";
    else if (scheme == "postgresql" || scheme == "postgres")
        error = "\"" + std::string(url) + "\": PostgreSQL is not built into this version (use sqlite:PATH)";
    else
        error = "\"" + std::string(url) + "\": unknown backend" + (scheme.empty() ? "" : " \"" + scheme + "\"") +
                " (expected sqlite:PATH)";
    return backend::none;
}

}  // namespace ricochet::state
