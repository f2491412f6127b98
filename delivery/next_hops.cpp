// next_hops — see next_hops.hpp.
#include "delivery/next_hops.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "config/config.hpp"
#include "dns/idn.hpp"
#include "dns/lookup.hpp"
#include "queue/envelope.hpp"
#include "smtp/network.hpp"

namespace ricochet::delivery {
namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;
using bounce::smtp_reply;

namespace {
smtp_reply dns_reply(int code, std::string enhanced, std::string text) {
    smtp_reply r = smtp_reply::none(bounce::stage::dns, std::move(text));
    r.code = code;
    r.enhanced = std::move(enhanced);
    return r;
}
}  // namespace

next_hops::next_hops(asio::any_io_executor ex, const config& cfg, dns::lookup& dns)
    : ex_(std::move(ex)), cfg_(cfg), dns_(dns) {}

std::optional<std::pair<std::string, std::uint16_t>> next_hops::route(const std::string& domain) const {
    for (auto& r : cfg_.delivery.routes) {
        if (queue::recipient_domain("@" + r.domain) != domain) continue;
        std::string host;
        std::uint16_t port;
        if (smtp::parse_host_port(r.host, host, port)) return std::pair{host, port};
    }
    return std::nullopt;
}

awaitable<hops_result> next_hops::find(const std::string& domain) {
    hops_result out;
    if (auto rt = route(domain)) {
        // An address is used as it is; a name is resolved by the system
        // (a smarthost may be in /etc/hosts).
        boost::system::error_code aec;
        auto ip = asio::ip::make_address(rt->first, aec);
        if (!aec) {
            out.hops.push_back({rt->first, tcp::endpoint(ip, rt->second), nullptr});
            co_return out;
        }
        tcp::resolver res(ex_);
        std::string service = std::to_string(rt->second);  // named: no temporaries in co_await (GCC 12)
        auto [ec, results] = co_await res.async_resolve(rt->first, service, asio::as_tuple(asio::use_awaitable));
        if (ec) {
            out.why = smtp_reply::none(bounce::stage::dns, "cannot resolve route " + rt->first + ": " + ec.message());
            co_return out;
        }
        for (auto& r : results) out.hops.push_back({rt->first, r.endpoint(), nullptr});
        co_return out;
    }
    auto ascii = dns::to_ascii_domain(domain);
    if (!ascii) {
        out.why = dns_reply(553, "5.1.2", "invalid internationalised domain name " + domain);
        co_return out;
    }
    auto mx = co_await dns_.mx(*ascii);
    switch (mx.status) {
        case dns::dns_status::ok: break;
        case dns::dns_status::null_mx:
            out.why = dns_reply(556, "5.1.10", mx.error);  // RFC 7505 3.2
            co_return out;
        case dns::dns_status::nxdomain:
        case dns::dns_status::no_data:
            out.why = dns_reply(550, "5.1.2", "Host or domain name not found: " + mx.error);
            co_return out;
        case dns::dns_status::temporary:
            out.why = smtp_reply::none(bounce::stage::dns, mx.error);
            co_return out;
    }
    bool temporary = false;
    std::string last_error;
    for (std::size_t i = 0; i < mx.hosts.size() && i < 10; ++i) {
        const std::string& name = mx.hosts[i].name;
        auto addrs = co_await dns_.addresses(name);
        if (addrs.status == dns::dns_status::temporary) temporary = true;
        if (addrs.status != dns::dns_status::ok) last_error = addrs.error;
        for (auto& a : addrs.addresses) {
            boost::system::error_code ec;
            auto ip = asio::ip::make_address(a, ec);
            if (!ec) out.hops.push_back({name, tcp::endpoint(ip, cfg_.delivery.port), nullptr});
        }
    }
    if (!out.hops.empty()) co_return out;
    if (mx.implicit && !temporary) {
        // No MX and no address: the domain cannot receive mail.
        out.why = dns_reply(550, "5.1.2",
                            "Host or domain name not found: " + domain + " has no MX and no A/AAAA record");
    } else {
        // MX hosts without addresses are usually a passing mistake: retry.
        out.why = smtp_reply::none(bounce::stage::dns, "no address for any MX host of " + domain + ": " + last_error);
    }
    co_return out;
}

}  // namespace ricochet::delivery
