// submission — see submission.hpp.
#include "submission/submission.hpp"

#include "submission/inject.hpp"

#include "bounce/suppression_list.hpp"
#include "breaker/breaker.hpp"
#include "config/config.hpp"
#include "events/make.hpp"
#include "events/publisher.hpp"
#include "queue/clock.hpp"
#include "queue/spool.hpp"
#include "smtp/auth_users.hpp"
#include "smtp/network.hpp"

namespace ricochet::submission {

smtp::smtp_server_options listener_options(const config& cfg, const smtp::auth_users* users, queue::spool& spool,
                                           const bounce::suppression_list& suppression, events::publisher& publisher,
                                           const breaker::monitor* breaker) {
    smtp::smtp_server_options sub;
    sub.name = "submission";
    sub.listen = cfg.submission.listen;
    sub.tls_cert = cfg.submission.tls_cert;
    sub.tls_key = cfg.submission.tls_key;
    sub.max_connections = cfg.submission.max_connections;
    sub.max_connections_per_ip = cfg.submission.max_connections_per_ip;
    sub.ipv6_prefix = static_cast<int>(cfg.server.client_ipv6_prefix);
    sub.auth_failures_file = cfg.server.spool_dir / "auth_failures";
    sub.spill_threshold = static_cast<std::size_t>(cfg.submission.data_memory);
    sub.memory_budget = cfg.server.data_memory_budget;
    sub.command_timeout = cfg.submission.command_timeout;
    sub.data_timeout = cfg.submission.data_timeout;
    sub.stress_connections = cfg.submission.stress_connections;
    sub.stress_timeout = cfg.submission.stress_timeout;
    sub.policy.role = smtp::server_role::submission;
    sub.policy.hostname = cfg.server.hostname;
    sub.policy.max_message_size = cfg.submission.max_message_size;
    sub.policy.max_recipients = cfg.submission.max_recipients;
    sub.policy.campaign_header = cfg.submission.campaign_header;
    sub.policy.users = users;
    for (auto& n : cfg.submission.trusted_networks) sub.policy.trusted.push_back(*smtp::parse_cidr(n));
    sub.policy.new_id = [s = &spool] { return s->new_id(); };
    // PRODUCT.md mail flow 1: held and unsubscribed recipients are refused at
    // RCPT, or with bounce.suppressed = "drop" accepted and dropped.
    sub.policy.check_recipient = [&suppression, &publisher, drop = cfg.bounce.suppressed == "drop"](std::string_view rcpt) {
        auto why = suppressed_because(suppression, rcpt);
        if (!why) return smtp::rcpt_verdict::accept();
        if (drop) {
            publisher.publish({events::suppressed_at_rcpt(std::string(rcpt), *why, now_ms())});
            return smtp::rcpt_verdict::drop();
        }
        return smtp::rcpt_verdict::refuse("550 5.7.1 <" + std::string(rcpt) + ">: recipient " + *why);
    };
    if (breaker)
        sub.policy.check_message = [breaker](const std::string& campaign,
                                             const std::string& sender) -> std::optional<std::string> {
            auto why = breaker->paused(campaign, sender.empty() ? std::string() : queue::recipient_domain(sender));
            if (!why) return std::nullopt;
            return "451 4.7.1 " + *why;
        };
    return sub;
}

}  // namespace ricochet::submission
