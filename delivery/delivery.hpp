// delivery — takes due messages from the schedule and delivers them: per
// destination domain, a pool of reusable SMTP connections (at most
// delivery.max_connections_per_domain open, each reused for up to
// delivery.max_messages_per_connection transactions); one transaction per
// recipient with its own signed VERP return path; every reply captured whole.
// 2xx delivers, 5xx fails the recipient, 4xx and transport trouble defer the
// message to deferred/ (mtime = next attempt) until retry.max_age, then the
// pending recipients expire. Decisions go to the status file, the events
// publisher (state store, then events.jsonl, off this strand) and one log
// line per recipient attempt.
//
// All of it runs on one strand: pools and counters need no locks, and the
// work per message between awaits is small.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>


namespace boost::asio {
class io_context;
}
namespace ricochet::queue {
class spool;
class schedule;
struct envelope;
}  // namespace ricochet::queue
namespace ricochet::events {
class publisher;
}
namespace ricochet::dns {
class lookup;
}
namespace ricochet::bounce {
class verp_signer;
class classifier;
class destination_backoff;
}  // namespace ricochet::bounce

namespace ricochet {
struct config;
}
namespace ricochet::tls {
class mta_sts;
class tls_reporter;
}  // namespace ricochet::tls

namespace ricochet::delivery {

class transport;
class outgoing;
class shaper;

class delivery_agent {
public:
    // dns and t: the resolver and the transport to use (tests pass fakes);
    // null: the c-ares resolver on [delivery].dns_servers and SMTP.
    delivery_agent(boost::asio::io_context& io, const config& cfg, queue::spool& spool, queue::schedule& due,
                   events::publisher& publisher, const bounce::verp_signer& verp, const bounce::classifier& classify,
                   bounce::destination_backoff& backoff, dns::lookup* dns = nullptr, transport* t = nullptr);
    ~delivery_agent();
    void start();
    // Called with the seconds each attempt on one destination took (DNS,
    // connection, transaction); set before start(). For the metrics.
    void set_attempt_observer(std::function<void(double)> f);
    // Asked right before a message is sent on a connection: false keeps it
    // (its recipients stay pending). The campaign breaker's pause; set
    // before start().
    void set_send_check(std::function<bool(const queue::envelope&)> f);
    // What goes on top of each recipient's copy (List-Unsubscribe,
    // Feedback-ID, DKIM signatures; delivery/outgoing.hpp). Null: nothing.
    // Set before start(); must outlive the agent.
    void set_outgoing(const outgoing* o);
    // Shaping rules, pools, adaptive rates (delivery/shaping.hpp); set
    // before start(), must outlive the agent. Unset: [delivery]'s limits,
    // no pools, adaptive rates in memory.
    void set_shaper(shaper* s);
    // Asked for each pending recipient before an attempt: why it must not
    // be sent now (the address became held or unsubscribed, or matches an
    // imported suppression, while the message waited), or nullopt. Such a
    // recipient is final as "suppressed" (event `suppressed`), never sent.
    // Set before start().
    void set_suppression_check(std::function<std::optional<std::string>(const std::string& rcpt)> f);
    // Where TLS sessions and MTA-STS fetch failures are counted (TLS-RPT);
    // set before start(), must outlive the agent. Unset: not counted.
    void set_tls_reporter(tls::tls_reporter* r);
    // The MTA-STS policies (null with delivery.mta_sts = "off").
    tls::mta_sts* sts_policies();
    // Whether DANE is in force: "on", or why not (delivery.dane = "off",
    // no trust anchor, resolvers that do not pass DNSSEC). Thread-safe.
    std::string dane_status() const;
    // Something became due (a commit, a release, a flush): look now. Thread-safe.
    void wake();
    // Stops taking new messages; those in flight finish (see in_flight()).
    void stop();
    unsigned in_flight() const;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace ricochet::delivery
