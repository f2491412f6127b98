// mx — see mx.hpp.
#include "dns/mx.hpp"

#include <algorithm>

namespace ricochet::dns {

void order_mx(std::vector<mx_host>& hosts, std::mt19937& rng) {
    std::shuffle(hosts.begin(), hosts.end(), rng);
    std::stable_sort(hosts.begin(), hosts.end(), [](const mx_host& a, const mx_host& b) { return a.preference < b.preference; });
}

bool is_null_mx(const std::vector<mx_host>& hosts) {
    if (hosts.empty()) return false;
    for (auto& h : hosts)
        if (h.name.empty() || h.name == ".") return true;  // RFC 7505 3: any "." means no mail
    return false;
}

}  // namespace ricochet::dns
