// http_util — see http_util.hpp.
#include "http/http_util.hpp"

#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>

#include "smtp/network.hpp"

namespace ricochet::http {

response error_reply(int status, std::string_view message) {
    response r;
    r.status = status;
    r.body = nlohmann::json{{"error", std::string(message)}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return r;
}

namespace {
int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
    return true;
}
}  // namespace

std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= s.size()) return std::nullopt;
            int h = hex(s[i + 1]), l = hex(s[i + 2]);
            if (h < 0 || l < 0) return std::nullopt;
            char d = static_cast<char>(h * 16 + l);
            if (d == '\0') return std::nullopt;
            out += d;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out += ' ';
        } else {
            out += c;
        }
    }
    return out;
}

bool parse_target(std::string_view target, std::string& path, std::map<std::string, std::string>& query) {
    if (target.empty() || target.front() != '/') return false;
    auto q = target.find('?');
    auto raw_path = target.substr(0, q);
    auto p = percent_decode(raw_path, false);
    if (!p) return false;
    for (char c : *p)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
    // "/v1/../metrics": no dot segments (nothing here serves files, but a
    // path that means two things is refused rather than guessed at).
    for (std::size_t i = 0; (i = p->find("..", i)) != std::string::npos; i += 2)
        if ((i == 0 || (*p)[i - 1] == '/') && (i + 2 == p->size() || (*p)[i + 2] == '/')) return false;
    path = std::move(*p);
    query.clear();
    if (q == std::string_view::npos) return true;
    auto rest = target.substr(q + 1);
    while (!rest.empty()) {
        auto amp = rest.find('&');
        auto pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
        if (pair.empty()) continue;
        auto eq = pair.find('=');
        auto k = percent_decode(pair.substr(0, eq), true);
        auto v = percent_decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1), true);
        if (!k || !v) return false;
        query.emplace(std::move(*k), std::move(*v));  // the first of a repeated key wins
    }
    return true;
}

bool host_allowed(std::string_view host, std::string_view hostname) {
    if (host.empty()) return false;
    std::string_view name = host;
    if (host.front() == '[') {  // [v6] or [v6]:port
        auto close = host.find(']');
        if (close == std::string_view::npos) return false;
        name = host.substr(1, close - 1);
        auto rest = host.substr(close + 1);
        if (!rest.empty() && rest.front() != ':') return false;
        return name.find(':') != std::string_view::npos && name.find('/') == std::string_view::npos &&
               smtp::parse_cidr(name).has_value();
    }
    auto colon = host.rfind(':');
    if (colon != std::string_view::npos) {
        auto port = host.substr(colon + 1);
        if (port.empty() || port.size() > 5) return false;
        for (char c : port)
            if (c < '0' || c > '9') return false;
        name = host.substr(0, colon);
    }
    if (name.empty()) return false;
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);  // "localhost." is localhost
    if (iequals(name, "localhost") || (!hostname.empty() && iequals(name, hostname))) return true;
    // An IPv4 literal: digits and dots only, and a valid address.
    for (char c : name)
        if (!(c == '.' || (c >= '0' && c <= '9'))) return false;
    return smtp::parse_cidr(name).has_value();
}

std::optional<std::string_view> bearer_token(std::string_view authorization) {
    constexpr std::string_view scheme = "bearer ";
    if (authorization.size() <= scheme.size() || !iequals(authorization.substr(0, scheme.size()), scheme))
        return std::nullopt;
    auto t = authorization.substr(scheme.size());
    while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
    while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
    if (t.empty()) return std::nullopt;
    return t;
}

bool token_list::load(const std::filesystem::path& file, std::string& error) {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        error = file.string() + ": cannot read";
        return false;
    }
    std::string text((std::istreambuf_iterator<char>(in)), {});
    return load_text(text, file.string(), error);
}

bool token_list::load_text(std::string_view text, const std::string& name, std::string& error) {
    entries_.clear();
    int lineno = 0;
    while (!text.empty()) {
        ++lineno;
        auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
        if (line.empty() || line.front() == '#') continue;
        auto colon = line.find(':');
        auto where = name + ":" + std::to_string(lineno) + ": ";
        if (colon == std::string_view::npos || colon == 0) {
            error = where + "expected NAME:TOKEN";
            return false;
        }
        std::string n(line.substr(0, colon)), t(line.substr(colon + 1));
        if (t.size() < 16) {
            error = where + "the token of " + n + " is shorter than 16 characters";
            return false;
        }
        for (auto& [en, et] : entries_)
            if (en == n) {
                error = where + "the name " + n + " is given twice";
                return false;
            }
        entries_.emplace_back(std::move(n), std::move(t));
    }
    return true;
}

std::optional<std::string> token_list::find(std::string_view token) const {
    // Every entry is compared, each in time independent of where they differ.
    std::optional<std::string> found;
    for (auto& [n, t] : entries_) {
        bool same = t.size() == token.size() && CRYPTO_memcmp(t.data(), token.data(), t.size()) == 0;
        if (same && !found) found = n;
    }
    return found;
}

}  // namespace ricochet::http

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace ricochet::http {

std::string webhook_signature(std::string_view secret, std::int64_t unix_time, std::string_view body) {
    std::string ts = std::to_string(unix_time);
    std::string msg = ts + "." + std::string(body);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(msg.data()),
         msg.size(), mac, &len);
    static const char* d = "0123456789abcdef";
    std::string hex;
    for (unsigned i = 0; i < len; ++i) {
        hex += d[mac[i] >> 4];
        hex += d[mac[i] & 15];
    }
    return "t=" + ts + ",v1=" + hex;
}

bool cross_origin_write(std::string_view method, std::string_view host, std::string_view origin,
                        std::string_view fetch_site) {
    if (method == "GET" || method == "HEAD") return false;
    auto lower = [](std::string_view v) {
        std::string o(v);
        for (auto& c : o)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        return o;
    };
    if (!fetch_site.empty() && lower(fetch_site) != "same-origin" && lower(fetch_site) != "none") return true;
    if (origin.empty()) return false;
    auto o = lower(origin);
    for (std::string_view scheme : {"http://", "https://"})
        if (o.rfind(scheme, 0) == 0) return o.substr(scheme.size()) != lower(host);
    return true;  // "null" (a sandboxed or file: page) or anything else
}

}  // namespace ricochet::http
