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

// "127.0.0.1:2525" or "[::1]:2525". False when malformed.
bool parse_host_port(std::string_view text, std::string& host, std::uint16_t& port);

}  // namespace ricochet::smtp
