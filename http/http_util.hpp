// http_util — the pure parts of the HTTP listener, kept apart from Beast so
// they are unit-tested and fuzzed in milliseconds: the request and response
// the API sees, the target's path and query, the Host check against DNS
// rebinding, bearer tokens and the tokens file.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ricochet::http {

// A request as the API sees it, after the listener read it whole and
// checked Host, authorisation and size.
struct request {
    std::string method;  // "GET", "POST", "PUT", "DELETE", ...
    std::string target;  // as sent: path and query
    std::string path;    // percent-decoded
    std::map<std::string, std::string> query;  // percent-decoded; a repeated key keeps the first value
    std::string content_type;
    std::string body;
    std::string client_ip;
    std::string user;  // the token's NAME, or "" (a trusted network)
};

struct response {
    int status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

// {"error": message} with the status; message is made valid JSON (bad
// UTF-8 replaced).
response error_reply(int status, std::string_view message);

// "%41b+c" -> "Ab c" (plus_is_space for query strings). nullopt on a bad
// escape ("%4", "%zz") or an encoded NUL.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space);
// Splits "/v1/queue?domain=x&state=hold" into its decoded path and query.
// False when the target is not origin-form ("/..."), has a bad escape, or
// its path holds "..", a NUL or a control character.
bool parse_target(std::string_view target, std::string& path, std::map<std::string, std::string>& query);

// The Host check (DNS rebinding): an IP literal ("127.0.0.1", "[::1]"),
// "localhost" or the configured hostname, each with an optional port. Case
// does not matter; anything else, an empty Host included, is refused.
bool host_allowed(std::string_view host, std::string_view hostname);
// Whether a request is a browser's cross-origin attempt to change something
// (CSRF: a web page POSTing to the API on loopback, where no token is
// needed). GET and HEAD never are (the same-origin policy keeps their
// answers from the page). Otherwise: Sec-Fetch-Site other than
// "same-origin" or "none", or an Origin whose host[:port] is not the Host
// header ("null" included). Clients that are not browsers send neither.
bool cross_origin_write(std::string_view method, std::string_view host, std::string_view origin,
                        std::string_view fetch_site);

// "Bearer TOKEN" -> TOKEN (scheme case-insensitive); nullopt otherwise.
std::optional<std::string_view> bearer_token(std::string_view authorization);

// http.tokens_file: lines NAME:TOKEN ("#" comments and blank lines allowed).
class token_list {
public:
    // False with error ("FILE:LINE: ...") on an unreadable file, a line
    // without a colon, an empty name, a token shorter than 16 characters or
    // a repeated name.
    bool load(const std::filesystem::path& file, std::string& error);
    bool load_text(std::string_view text, const std::string& name, std::string& error);
    // The NAME of the token, compared in constant time over every entry.
    std::optional<std::string> find(std::string_view token) const;
    std::size_t size() const { return entries_.size(); }

private:
    std::vector<std::pair<std::string, std::string>> entries_;  // name, token
};

}  // namespace ricochet::http

namespace ricochet::http {

// The webhook signature header's value: "t=UNIXTIME,v1=HEX", HEX being
// HMAC-SHA256(secret, "UNIXTIME." + body) in lower-case hex.
std::string webhook_signature(std::string_view secret, std::int64_t unix_time, std::string_view body);

}  // namespace ricochet::http
