// network — IP networks in CIDR form, for submission.trusted_networks.
// Pure C++ over inet_pton; IPv4-mapped IPv6 clients (::ffff:a.b.c.d) match
// IPv4 networks, since a dual-stack listener reports IPv4 peers that way.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ricochet::smtp {

struct cidr {
    bool v6 = false;
    std::array<std::uint8_t, 16> addr{};
    int prefix = 0;

    bool contains(std::string_view ip) const;
};

std::optional<cidr> parse_cidr(std::string_view text);
bool in_networks(const std::vector<cidr>& nets, std::string_view ip);

// The key a client's per-address limits count under: an IPv4 address as it
// is (also when it came as ::ffff:a.b.c.d); an IPv6 address as its network
// of v6_prefix bits ("2001:db8:1:2::/64"), since one IPv6 host usually
// holds a whole /64 and could otherwise take a fresh address per
// connection. v6_prefix 128 keeps each address apart. Anything that does
// not parse is returned as it is.
std::string client_group(std::string_view ip, int v6_prefix);

// "127.0.0.1:2525" or "[::1]:2525". False when malformed.
bool parse_host_port(std::string_view text, std::string& host, std::uint16_t& port);

}  // namespace ricochet::smtp
