// dashboard — the built-in web dashboard's static files (http/dashboard/,
// compiled into the binary by embed.cmake), served by the API listener at
// GET / and GET /ui/NAME. The pages hold no data: their script reads the
// same API as every other client. Each file goes out with its content type
// and a strict Content-Security-Policy (no inline script or style, nothing
// from another origin, no framing).
#pragma once
#include <cstddef>
#include <optional>
#include <string>

#include "http/http_util.hpp"

namespace ricochet::http {

// The policy every dashboard file is served with.
inline constexpr const char* dashboard_csp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

// Whether a path is one of the dashboard's ("/" or "/ui/...").
bool dashboard_path(const std::string& path);
// The file for a path ("/" is index.html), with its headers; nullopt when
// there is no such file.
std::optional<response> dashboard_file(const std::string& path);

namespace detail {
struct embedded_file {
    const char* name;
    const unsigned char* data;
    std::size_t size;
};
extern const embedded_file dashboard_files[];
extern const std::size_t dashboard_file_count;
}  // namespace detail

}  // namespace ricochet::http
