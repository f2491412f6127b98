// dashboard — see dashboard.hpp.
#include "http/dashboard.hpp"

#include <string_view>

namespace ricochet::http {

bool dashboard_path(const std::string& path) { return path == "/" || path.rfind("/ui/", 0) == 0; }

std::optional<response> dashboard_file(const std::string& path) {
    if (!dashboard_path(path)) return std::nullopt;
    std::string_view name = path == "/" ? std::string_view("index.html") : std::string_view(path).substr(4);
    for (std::size_t i = 0; i < detail::dashboard_file_count; ++i) {
        auto& f = detail::dashboard_files[i];
        if (name != f.name) continue;
        response r;
        auto ext = name.substr(name.rfind('.') + 1);
        r.content_type = ext == "html" ? "text/html; charset=utf-8"
                         : ext == "js" ? "text/javascript; charset=utf-8"
                         : ext == "css" ? "text/css; charset=utf-8"
                                        : "image/svg+xml";
        r.body.assign(reinterpret_cast<const char*>(f.data), f.size);
        r.headers = {{"Content-Security-Policy", dashboard_csp},
                     {"X-Frame-Options", "DENY"},
                     {"Referrer-Policy", "no-referrer"},
                     {"Cross-Origin-Opener-Policy", "same-origin"},
                     {"Cross-Origin-Resource-Policy", "same-origin"}};
        return r;
    }
    return std::nullopt;
}

}  // namespace ricochet::http
