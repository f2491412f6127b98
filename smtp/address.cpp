// address — see address.hpp.
#include "smtp/address.hpp"

#include <arpa/inet.h>

namespace ricochet::smtp {
namespace {

bool is_alpha(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_atext(unsigned char c, bool utf8) {
    if (c >= 0x80) return utf8;  // RFC 6531 3.3: UTF8-non-ascii in atext
    if (is_alpha(c) || is_digit(c)) return true;
    switch (c) {
        case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
        case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}': case '~':
            return true;
        default:
            return false;
    }
}

// Checks that the UTF-8 in s is well-formed (no overlongs, no surrogates).
bool valid_utf8(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        std::size_t n;
        unsigned cp;
        if (c < 0x80) { ++i; continue; }
        if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; }
        else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; }
        else return false;
        if (i + n >= s.size()) return false;
        for (std::size_t k = 1; k <= n; ++k) {
            unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

bool has_non_ascii(std::string_view s) {
    for (unsigned char c : s)
        if (c >= 0x80) return true;
    return false;
}

// sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str], or a U-label.
bool valid_domain(std::string_view d, bool utf8) {
    if (d.empty() || d.size() > 255) return false;
    std::size_t start = 0;
    for (;;) {
        auto dot = d.find('.', start);
        std::string_view label = d.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (label.empty() || label.size() > 63 * 4) return false;
        unsigned char first = static_cast<unsigned char>(label.front()), last = static_cast<unsigned char>(label.back());
        if (first == '-' || last == '-') return false;
        for (unsigned char c : label) {
            if (c >= 0x80) { if (!utf8) return false; continue; }
            if (!is_alpha(c) && !is_digit(c) && c != '-') return false;
        }
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return true;
}

bool valid_address_literal(std::string_view lit) {
    // lit is the text between [ and ]
    std::string s(lit);
    unsigned char buf[16];
    if (s.rfind("IPv6:", 0) == 0) return ::inet_pton(AF_INET6, s.c_str() + 5, buf) == 1;
    return ::inet_pton(AF_INET, s.c_str(), buf) == 1;
}

// Quotes a local part that is not a dot-string (RFC 5321 4.1.2 Quoted-string).
std::string canonical_local(std::string_view raw, bool utf8) {
    bool dot_string = !raw.empty() && raw.front() != '.' && raw.back() != '.' && raw.find("..") == std::string_view::npos;
    for (unsigned char c : raw)
        if (c != '.' && !is_atext(c, utf8)) dot_string = false;
    if (dot_string) return std::string(raw);
    std::string q = "\"";
    for (char c : raw) {
        if (c == '"' || c == '\\') q.push_back('\\');
        q.push_back(c);
    }
    q.push_back('"');
    return q;
}

// Parses Mailbox at text[pos..end); fills out.local/out.domain.
address_error parse_mailbox(std::string_view text, std::size_t& pos, std::size_t end, bool utf8, parsed_path& out) {
    std::string local;  // unquoted value
    if (pos < end && text[pos] == '"') {
        ++pos;
        bool closed = false;
        while (pos < end) {
            unsigned char c = static_cast<unsigned char>(text[pos]);
            if (c == '"') { closed = true; ++pos; break; }
            if (c == '\\') {
                if (pos + 1 >= end) return address_error::syntax;
                unsigned char n = static_cast<unsigned char>(text[pos + 1]);
                if (n < 32 || n == 127) return address_error::syntax;
                if (n >= 0x80 && !utf8) return address_error::non_ascii;
                local.push_back(static_cast<char>(n));
                pos += 2;
                continue;
            }
            if (c < 32 || c == 127) return address_error::syntax;
            if (c >= 0x80 && !utf8) return address_error::non_ascii;
            local.push_back(static_cast<char>(c));
            ++pos;
        }
        if (!closed) return address_error::syntax;
    } else {
        std::size_t start = pos;
        while (pos < end && text[pos] != '@') {
            unsigned char c = static_cast<unsigned char>(text[pos]);
            if (c >= 0x80 && !utf8) return address_error::non_ascii;
            if (c != '.' && !is_atext(c, utf8)) return address_error::syntax;
            ++pos;
        }
        local = text.substr(start, pos - start);
        if (local.empty() || local.front() == '.' || local.back() == '.' || local.find("..") != std::string::npos)
            return address_error::syntax;
    }
    if (pos >= end || text[pos] != '@') return address_error::syntax;
    ++pos;
    std::string_view domain = text.substr(pos, end - pos);
    pos = end;
    if (local.size() > 64) return address_error::too_long;
    if (domain.size() > 255) return address_error::too_long;
    if (!domain.empty() && domain.front() == '[') {
        if (domain.back() != ']' || !valid_address_literal(domain.substr(1, domain.size() - 2)))
            return address_error::syntax;
    } else {
        if (has_non_ascii(domain) && !utf8) return address_error::non_ascii;
        if (!valid_domain(domain, utf8)) return address_error::syntax;
    }
    if (utf8 && (!valid_utf8(local) || !valid_utf8(domain))) return address_error::syntax;
    out.local = canonical_local(local, utf8);
    out.domain = std::string(domain);
    if (!has_non_ascii(out.domain) && out.domain.front() != '[')
        for (auto& c : out.domain)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    out.utf8 = has_non_ascii(out.local) || has_non_ascii(out.domain);
    return address_error::none;
}
}  // namespace

address_error parse_path(std::string_view text, bool allow_null, bool allow_utf8, parsed_path& out) {
    out = parsed_path{};
    if (text.empty()) return address_error::syntax;
    if (text[0] != '<') {
        // Tolerated, like Postfix: an unbracketed mailbox up to the first space.
        std::size_t end = text.find(' ');
        if (end == std::string_view::npos) end = text.size();
        std::size_t pos = 0;
        auto err = parse_mailbox(text, pos, end, allow_utf8, out);
        out.consumed = end;
        return err;
    }
    // Find the closing '>' outside a quoted string.
    std::size_t close = std::string_view::npos;
    bool quoted = false;
    for (std::size_t i = 1; i < text.size(); ++i) {
        char c = text[i];
        if (quoted && c == '\\') { ++i; continue; }
        if (c == '"') quoted = !quoted;
        else if (c == '>' && !quoted) { close = i; break; }
    }
    if (close == std::string_view::npos) return address_error::syntax;
    if (close + 1 > 256 + 2) return address_error::too_long;
    out.consumed = close + 1;
    std::size_t pos = 1;
    if (close == 1) {
        if (!allow_null) return address_error::syntax;
        out.null = true;
        return address_error::none;
    }
    if (text[pos] == '@') {  // A-d-l ":" — source route, dropped
        auto colon = text.find(':', pos);
        if (colon == std::string_view::npos || colon > close) return address_error::syntax;
        std::string_view route = text.substr(pos, colon - pos);
        std::size_t s = 0;
        while (s < route.size()) {
            if (route[s] != '@') return address_error::syntax;
            auto comma = route.find(',', s);
            std::string_view d = route.substr(s + 1, comma == std::string_view::npos ? std::string_view::npos : comma - s - 1);
            if (!valid_domain(d, allow_utf8)) return address_error::syntax;
            if (comma == std::string_view::npos) break;
            s = comma + 1;
        }
        pos = colon + 1;
    }
    std::size_t consumed = out.consumed;
    auto err = parse_mailbox(text, pos, close, allow_utf8, out);
    out.consumed = consumed;
    return err;
}

bool is_valid_mailbox(std::string_view mailbox, bool allow_utf8) {
    parsed_path p;
    std::size_t pos = 0;
    return parse_mailbox(mailbox, pos, mailbox.size(), allow_utf8, p) == address_error::none;
}

}  // namespace ricochet::smtp
