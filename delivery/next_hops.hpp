// next_hops — where mail for a domain goes: a [[delivery.route]] (a fixed
// host:port), or the domain's MX hosts in order (RFC 5321 5.1; the domain's
// own A/AAAA when it has no MX) on delivery.port, each with its addresses.
// When there is nowhere to go, the answer says why as a reply: a 5xx fails
// the recipients (no such domain 550 5.1.2, null MX 556 5.1.10, RFC 7505),
// one without a code (SERVFAIL, time-out, MX hosts without addresses)
// defers them.
#pragma once
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "delivery/transport.hpp"

namespace ricochet {
struct config;
}
namespace ricochet::dns {
class lookup;
}

namespace ricochet::delivery {

struct hops_result {
    std::vector<hop> hops;    // in the order to try; empty: see why
    bounce::smtp_reply why;   // stage dns
};

class next_hops {
public:
    // Everything must outlive this; calls come from ex (delivery's strand).
    next_hops(boost::asio::any_io_executor ex, const config& cfg, dns::lookup& dns);
    boost::asio::awaitable<hops_result> find(const std::string& domain);
    // The [[delivery.route]] for a domain, as host and port.
    std::optional<std::pair<std::string, std::uint16_t>> route(const std::string& domain) const;

private:
    boost::asio::any_io_executor ex_;
    const config& cfg_;
    dns::lookup& dns_;
};

}  // namespace ricochet::delivery
