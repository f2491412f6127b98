// mx — the order in which a domain's mail exchangers are tried (RFC 5321
// 5.1): lowest preference first, and random among equal preferences so load
// spreads over them. Also a null MX (RFC 7505) test. Pure: no I/O.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace ricochet::dns {

struct mx_host {
    std::string name;
    std::uint16_t preference = 0;
};

void order_mx(std::vector<mx_host>& hosts, std::mt19937& rng);

// RFC 7505: a single MX of preference 0 whose exchange is the root (".").
bool is_null_mx(const std::vector<mx_host>& hosts);
// Removes "." targets from a list that also has real exchangers.
void drop_null_targets(std::vector<mx_host>& hosts);

}  // namespace ricochet::dns
