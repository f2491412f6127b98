// backend — which storage server.state names, by its URL scheme. Header-only
// and pure, so the config loader can refuse a wrong value with its line
// number before anything is opened, with the same words open_state uses.
#pragma once
#include <string>
#include <string_view>

namespace ricochet::state {

enum class backend { sqlite, postgresql, none };

// The backend and, for none, why: an unknown scheme is named in the error.
inline backend backend_of(std::string_view url, std::string& error) {
    auto colon = url.find(':');
    std::string scheme(colon == std::string_view::npos ? std::string_view{} : url.substr(0, colon));
    if (scheme == "sqlite" && url.size() > colon + 1) return backend::sqlite;
    if ((scheme == "postgresql" || scheme == "postgres") && url.substr(colon).starts_with("://"))
        return backend::postgresql;
    // The URL may hold a password: errors show the scheme, not the rest.
    if (scheme == "sqlite")
        error = "\"" + std::string(url) + "\": no path after sqlite:";
    else if (scheme == "postgresql" || scheme == "postgres")
        error = "\"" + scheme + ":...\": expected postgresql://[user[:password]@]host[:port]/database[?sslmode=...]";
    else
        error = "\"" + (scheme.empty() ? std::string(url) : scheme + ":...") + "\": unknown backend" +
                (scheme.empty() ? "" : " \"" + scheme + "\"") +
                " (expected sqlite:PATH or postgresql://user:password@host:port/database)";
    return backend::none;
}

// How long a PostgreSQL statement may take before the connection is given
// up as lost (server.state_timeout; 0: no limit). Process-wide, set once at
// start before any connection opens. Defined in pg_storage.cpp.
void set_pg_timeout(int seconds);

// The URL with its password replaced by "***" (for logs and errors):
// "postgresql://user:***@host/db". Anything else is returned as it is.
inline std::string redact_url(std::string_view url) {
    auto scheme = url.find("://");
    if (scheme == std::string_view::npos) return std::string(url);
    auto at = url.find('@', scheme + 3);
    auto slash = url.find('/', scheme + 3);
    if (at == std::string_view::npos || (slash != std::string_view::npos && slash < at)) return std::string(url);
    auto colon = url.find(':', scheme + 3);
    if (colon == std::string_view::npos || colon > at) return std::string(url);
    return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

}  // namespace ricochet::state
