// text — small string helpers the folders share. Header-only, below everything.
#pragma once
#include <cctype>
#include <string>
#include <string_view>

namespace ricochet::base {

// ASCII lower case (domains, tokens, header names; not a locale's idea of case).
inline std::string lower(std::string_view s) {
    std::string o(s);
    for (auto& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return o;
}

}  // namespace ricochet::base
