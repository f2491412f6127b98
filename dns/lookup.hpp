// lookup — what delivery asks of DNS, as an interface: the c-ares resolver
// (dns/resolver.hpp) is the real one; tests pass a table of answers, so the
// delivery decisions that follow from DNS (NXDOMAIN fails, SERVFAIL defers,
// MX fallback) run without a server in milliseconds.
#pragma once
#include <boost/asio/awaitable.hpp>
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

struct txt_result {
    dns_status status = dns_status::temporary;
    std::vector<std::string> records;  // each record's strings joined (RFC 7208 3.3 style)
    std::string error;
};

class lookup {
public:
    virtual ~lookup() = default;
    // The exchangers of an ASCII domain (see idn.hpp), in the order to try.
    // (References: the caller's frame keeps them alive across the co_await.)
    virtual boost::asio::awaitable<mx_result> mx(const std::string& domain) = 0;
    // A and AAAA of a host name.
    virtual boost::asio::awaitable<address_result> addresses(const std::string& host) = 0;
    // TXT records of a name (MTA-STS and TLS-RPT announcements). Lookups
    // that have none answer no_data (test tables need not list any).
    virtual boost::asio::awaitable<txt_result> txt(const std::string& name) {
        co_return txt_result{dns_status::no_data, {}, name + ": no TXT record"};
    }
};

}  // namespace ricochet::dns
