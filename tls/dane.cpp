// dane — see dane.hpp.
#include "tls/dane.hpp"

#include <fstream>

namespace ricochet::tls {

std::optional<smtp::tlsa_rr> parse_tlsa(std::string_view rdata) {
    if (rdata.size() < 4) return std::nullopt;  // three octets and some data
    smtp::tlsa_rr r;
    r.usage = static_cast<unsigned char>(rdata[0]);
    r.selector = static_cast<unsigned char>(rdata[1]);
    r.mtype = static_cast<unsigned char>(rdata[2]);
    r.data = std::string(rdata.substr(3));
    return r;
}

std::string to_text(const smtp::tlsa_rr& r) {
    static const char* hex = "0123456789ABCDEF";
    std::string out = std::to_string(r.usage) + " " + std::to_string(r.selector) + " " + std::to_string(r.mtype) + " ";
    for (unsigned char c : r.data) {
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    return out;
}

bool usable_for_smtp(const smtp::tlsa_rr& r) {
    // Selector 0 (certificate) or 1 (SubjectPublicKeyInfo); matching type 0
    // (full), 1 (SHA-256) or 2 (SHA-512) with the digest's length.
    if (r.usage != 2 && r.usage != 3) return false;
    if (r.selector > 1) return false;
    switch (r.mtype) {
        case 0: return !r.data.empty();
        case 1: return r.data.size() == 32;
        case 2: return r.data.size() == 64;
        default: return false;
    }
}

std::string trust_anchor_zone(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        auto start = line.find_first_not_of(" \t");
        if (start == std::string::npos || line[start] == ';' || line[start] == '$') continue;
        if (start > 0) continue;  // (a continuation or an owner-less line)
        auto end = line.find_first_of(" \t", start);
        return line.substr(start, end - start);
    }
    return "";
}

std::string tlsa_name(const std::string& host, unsigned port) {
    std::string h = host;
    if (!h.empty() && h.back() == '.') h.pop_back();
    return "_" + std::to_string(port) + "._tcp." + h;
}

}  // namespace ricochet::tls
