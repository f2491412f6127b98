// network — see network.hpp.
#include "smtp/network.hpp"

#include <arpa/inet.h>

#include <string>

namespace ricochet::smtp {
namespace {
// Parses ip into 4 or 16 bytes; maps ::ffff:a.b.c.d to IPv4.
bool parse_ip(std::string_view ip, bool& v6, std::array<std::uint8_t, 16>& out) {
    std::string s(ip);
    out = {};
    if (::inet_pton(AF_INET, s.c_str(), out.data()) == 1) {
        v6 = false;
        return true;
    }
    if (::inet_pton(AF_INET6, s.c_str(), out.data()) == 1) {
        static const std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::equal(mapped, mapped + 12, out.begin())) {
            std::copy(out.begin() + 12, out.end(), out.begin());
            std::fill(out.begin() + 4, out.end(), 0);
            v6 = false;
        } else {
            v6 = true;
        }
        return true;
    }
    return false;
}
}  // namespace

std::optional<cidr> parse_cidr(std::string_view text) {
    cidr c;
    auto slash = text.find('/');
    std::string_view ip = text.substr(0, slash);
    if (!parse_ip(ip, c.v6, c.addr)) return std::nullopt;
    int max = c.v6 ? 128 : 32;
    if (slash == std::string_view::npos) {
        c.prefix = max;
        return c;
    }
    std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3) return std::nullopt;
    int v = 0;
    for (char ch : p) {
        if (ch < '0' || ch > '9') return std::nullopt;
        v = v * 10 + (ch - '0');
    }
    if (v > max) return std::nullopt;
    c.prefix = v;
    return c;
}

bool cidr::contains(std::string_view ip) const {
    bool is6;
    std::array<std::uint8_t, 16> a;
    if (!parse_ip(ip, is6, a) || is6 != v6) return false;
    int bits = prefix;
    for (int i = 0; bits > 0; ++i, bits -= 8) {
        std::uint8_t mask = bits >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - bits));
        if ((a[i] & mask) != (addr[i] & mask)) return false;
    }
    return true;
}

bool in_networks(const std::vector<cidr>& nets, std::string_view ip) {
    for (auto& n : nets)
        if (n.contains(ip)) return true;
    return false;
}

bool parse_host_port(std::string_view text, std::string& host, std::uint16_t& port) {
    std::string_view h, p;
    if (!text.empty() && text[0] == '[') {
        auto close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
        h = text.substr(1, close - 1);
        p = text.substr(close + 2);
    } else {
        auto colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) return false;
        h = text.substr(0, colon);
        p = text.substr(colon + 1);
    }
    if (h.empty() || p.empty() || p.size() > 5) return false;
    unsigned v = 0;
    for (char ch : p) {
        if (ch < '0' || ch > '9') return false;
        v = v * 10 + static_cast<unsigned>(ch - '0');
    }
    if (v == 0 || v > 65535) return false;
    host = h;
    port = static_cast<std::uint16_t>(v);
    return true;
}

std::string client_group(std::string_view ip, int v6_prefix) {
    bool v6 = false;
    std::array<std::uint8_t, 16> a{};
    if (!parse_ip(ip, v6, a)) return std::string(ip);
    char buf[INET6_ADDRSTRLEN] = {};
    if (!v6) {
        ::inet_ntop(AF_INET, a.data(), buf, sizeof buf);
        return buf;
    }
    if (v6_prefix < 0) v6_prefix = 0;
    if (v6_prefix >= 128) {
        ::inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
        return buf;
    }
    for (int bit = v6_prefix; bit < 128; ++bit) a[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
    ::inet_ntop(AF_INET6, a.data(), buf, sizeof buf);
    return std::string(buf) + "/" + std::to_string(v6_prefix);
}

}  // namespace ricochet::smtp
