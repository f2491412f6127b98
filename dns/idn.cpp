// idn — see idn.hpp.
#include "dns/idn.hpp"

#include <idn2.h>

namespace ricochet::dns {

std::optional<std::string> to_ascii_domain(std::string_view domain) {
    bool ascii = true;
    for (unsigned char c : domain) ascii = ascii && c < 0x80;
    if (ascii) {
        std::string d(domain);
        for (auto& c : d)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        return d;
    }
    std::string in(domain);
    char* out = nullptr;
    int rc = idn2_to_ascii_8z(in.c_str(), &out, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    if (rc != IDN2_OK || !out) return std::nullopt;
    std::string r(out);
    idn2_free(out);
    return r;
}

}  // namespace ricochet::dns
