// mx — see mx.hpp.
#include "dns/mx.hpp"

#include <algorithm>

namespace ricochet::dns {

void order_mx(std::vector<mx_host>& hosts, std::mt19937& rng) {
    std::shuffle(hosts.begin(), hosts.end(), rng);
    std::stable_sort(hosts.begin(), hosts.end(), [](const mx_host& a, const mx_host& b) { return a.preference < b.preference; });
}

bool is_null_mx(const std::vector<mx_host>& hosts) {
    // RFC 7505 3: a null MX is the only MX of its domain. A "." beside real
    // exchangers is a mistake we route around (see drop_null_targets).
    return hosts.size() == 1 && (hosts[0].name.empty() || hosts[0].name == ".");
}

void drop_null_targets(std::vector<mx_host>& hosts) {
    std::erase_if(hosts, [](const mx_host& h) { return h.name.empty() || h.name == "."; });
}

}  // namespace ricochet::dns
