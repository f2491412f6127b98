// text — small string helpers the folders share. Header-only, below everything.
#pragma once
#include <cctype>
#include <cstddef>
#include <string>
#include <string_view>

namespace ricochet::base {

// ASCII lower case (domains, tokens, header names; not a locale's idea of case).
inline std::string lower(std::string_view s) {
    std::string o(s);
    for (auto& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return o;
}

// The length of the well-formed UTF-8 sequence at v[i] (RFC 3629 4: no
// overlongs, no surrogates, nothing past U+10FFFF), or 0 with `bad` set to
// how many bytes of an ill-formed one to replace (at least 1).
inline std::size_t utf8_sequence(std::string_view v, std::size_t i, std::size_t& bad) {
    auto c = static_cast<unsigned char>(v[i]);
    if (c < 0x80) return 1;
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) n = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) n = 3;
    else if (c == 0xED) n = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) n = 3;
    else if (c == 0xF0) n = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) n = 4, hi = 0x8F;
    std::size_t k = 1;
    if (n) {
        for (; k < n && i + k < v.size(); ++k) {
            auto d = static_cast<unsigned char>(v[i + k]);
            if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xBF)) break;
        }
    }
    if (n && k == n) return n;
    bad = k;
    return 0;
}

// v as valid UTF-8 without NUL: each ill-formed sequence and each NUL
// becomes U+FFFD (for stores that refuse anything else, like PostgreSQL's
// text). True when v was changed.
inline bool to_valid_utf8(std::string& v) {
    std::size_t i = 0, bad = 0;
    for (; i < v.size(); ++i) {
        auto c = static_cast<unsigned char>(v[i]);
        if (c == 0 || c >= 0x80) break;
    }
    if (i == v.size()) return false;
    std::string out(v, 0, i);
    bool changed = false;
    while (i < v.size()) {
        if (v[i] == '\0') {
            out += "\xEF\xBF\xBD", ++i, changed = true;
        } else if (auto n = utf8_sequence(v, i, bad)) {
            out.append(v, i, n), i += n;
        } else {
            out += "\xEF\xBF\xBD", i += bad, changed = true;
        }
    }
    if (changed) v = std::move(out);
    return changed;
}

}  // namespace ricochet::base
