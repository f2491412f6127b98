// mta_sts — MTA-STS (RFC 8461) for delivery: per recipient domain, the
// policy in force. The `_mta-sts` TXT record is asked for each delivery
// attempt (c-ares caches it for its TTL); when its id differs from the
// cached policy's, or nothing valid is cached, the policy is fetched from
// https://mta-sts.DOMAIN/.well-known/mta-sts.txt: certificate verified for
// that name (the system's roots, or delivery.tls_ca_file), no redirects,
// 64 KiB and 30 s at most, text/plain only. Policies are cached in memory
// and in SPOOL/mta-sts/DOMAIN.json until max_age runs out, so a restart, a
// removed TXT record or an unreachable policy server does not lift an
// enforced policy (RFC 8461 5.1, 10.2). A failed fetch is not tried again
// for the same id for 5 minutes.
//
// policy_for runs on the executor given (delivery's strand); show() may be
// called from any thread (ricochetctl tls show).
#pragma once
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "tls/mta_sts_policy.hpp"

namespace ricochet {
struct config;
}
namespace ricochet::dns {
class lookup;
}

namespace ricochet::tls {

struct sts_cached {
    std::string domain, id;
    sts_policy policy;
    std::string text;            // the policy file as fetched
    std::int64_t fetched_ms = 0;
    bool valid_at(std::int64_t now_ms) const { return now_ms < fetched_ms + std::int64_t(policy.max_age) * 1000; }
};

struct sts_answer {
    std::shared_ptr<const sts_cached> policy;  // null: no policy in force (deliver as before)
    // A problem to report (TLS-RPT) even when a cached policy is used:
    // sts-policy-fetch-error, sts-policy-invalid or sts-webpki-invalid.
    std::string failure_type, failure_detail;
    bool fetched_now = false;  // the failure is this call's fetch (count it once for TLS-RPT)
};

class mta_sts {
public:
    // dns must outlive this; dir: where policies are kept ("" none).
    mta_sts(boost::asio::any_io_executor ex, const config& cfg, dns::lookup& dns, std::filesystem::path dir);
    ~mta_sts();
    // The policy in force for an ASCII domain (lower case).
    boost::asio::awaitable<sts_answer> policy_for(const std::string& domain);
    // For ricochetctl tls show: the cached policy and the last fetch problem.
    nlohmann::json show(const std::string& domain, std::int64_t now_ms);

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace ricochet::tls
