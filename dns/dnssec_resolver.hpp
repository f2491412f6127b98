// dnssec_resolver — DNSSEC-validated lookups for DANE (RFC 7672): the MX
// chain and TLSA records must be proven authentic, and c-ares does not
// validate. libunbound does, in process, from a trust anchor (the root's,
// /usr/share/dns/root.key from Debian's dns-root-data, or a test zone's):
// every answer says whether it is secure (signed, chain verified), bogus
// (signatures present but wrong, missing or expired: an attack or a broken
// zone) or insecure (no DNSSEC for the name). Queries go to
// delivery.dns_servers as forwarders (the servers must pass DNSSEC records
// through), or to those of /etc/resolv.conf.
//
// libunbound resolves on its own thread; its results are read when its
// descriptor becomes readable on the executor given (delivery's strand),
// where every call must come from.
#pragma once
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dns/lookup.hpp"

namespace ricochet::dns {

struct dnssec_answer {
    dns_status status = dns_status::temporary;  // ok, nxdomain, no_data or temporary (SERVFAIL, time-out)
    bool secure = false;  // validated (a proven "does not exist" too)
    bool bogus = false;   // validation failed: never to be trusted, nor treated as insecure
    std::vector<std::string> rdata;  // the records' RDATA, wire format
    std::string error;               // why bogus, or the failure
};

class dnssec_resolver {
public:
    // servers: "ip:port" forwarders, or empty for /etc/resolv.conf.
    dnssec_resolver(boost::asio::any_io_executor ex, const std::vector<std::string>& servers,
                    const std::filesystem::path& trust_anchor);
    ~dnssec_resolver();
    bool ok(std::string& error) const;
    // rrtype: 1 A, 28 AAAA, 15 MX, 52 TLSA, ...
    boost::asio::awaitable<dnssec_answer> query(const std::string& name, int rrtype);

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace ricochet::dns
