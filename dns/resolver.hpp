// resolver — MX and address lookups for delivery, on c-ares driven by the
// Asio event loop (no blocking call, no thread per query). Results are values:
// permanent failures (NXDOMAIN, null MX, no address at all) are told apart
// from temporary ones (SERVFAIL, REFUSED, time-out), because the first fails
// a recipient and the second only defers it. Answers are cached for their
// TTL; temporary failures are not cached.
//
// All calls must come from the executor given at construction (a strand).
#pragma once
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "dns/mx.hpp"

namespace ricochet::dns {

enum class dns_status {
    ok,
    nxdomain,    // the name does not exist: permanent
    no_data,     // the name exists, without records of this type
    null_mx,     // RFC 7505: the domain accepts no mail: permanent
    temporary,   // SERVFAIL, REFUSED, time-out, no server: try again later
};

struct mx_result {
    dns_status status = dns_status::temporary;
    std::vector<mx_host> hosts;  // ordered for trying; the domain itself when it has no MX (implicit MX)
    bool implicit = false;       // RFC 5321 5.1: no MX records, the domain's own A/AAAA are used
    std::string error;           // for the log and the reply text
};

struct address_result {
    dns_status status = dns_status::temporary;
    std::vector<std::string> addresses;  // IPv6 and IPv4, AAAA first
    std::string error;
};

class resolver {
public:
    // servers: "ip:port" strings, or empty for /etc/resolv.conf.
    resolver(boost::asio::any_io_executor ex, const std::vector<std::string>& servers,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(5000), int tries = 2);
    ~resolver();
    bool ok(std::string& error) const;

    // The exchangers of an ASCII domain (see idn.hpp), in the order to try.
    // (References: the caller's frame keeps them alive across the co_await.)
    boost::asio::awaitable<mx_result> mx(const std::string& domain);
    // A and AAAA of a host name.
    boost::asio::awaitable<address_result> addresses(const std::string& host);

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace ricochet::dns
