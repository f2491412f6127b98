// control — what the control socket's requests do (ricochetctl talks to the
// running daemon through it): {"command": "queue.hold"|..., "id"|"domain"|
// "campaign"|"all": ...}, "recipient.set", "pauses", "ping", "tls.show" {"domain"}, "tls.report" {"day"}. One reply
// object per request: {"ok": true, ...} or {"ok": false, "error": "..."}.
#pragma once
#include <nlohmann/json.hpp>

namespace ricochet::queue {
class spool;
class schedule;
}  // namespace ricochet::queue
namespace ricochet::bounce {
class destination_backoff;
}
namespace ricochet::events {
class publisher;
}
namespace ricochet::state {
class recipient_state;
}
namespace ricochet::delivery {
class delivery_agent;
class shaper;
}
namespace ricochet::daemon {
class campaign_breaker;
class tls_report_sender;
}
namespace ricochet::tls {
class mta_sts;
class tls_reporter;
}  // namespace ricochet::tls

namespace ricochet::daemon {

struct control_context {
    queue::spool& spool;
    queue::schedule& due;
    delivery::delivery_agent& delivery;
    const bounce::destination_backoff& backoff;
    state::recipient_state& state;
    events::publisher& publisher;
    campaign_breaker* breaker = nullptr;  // null: [breaker] enabled = false
    const delivery::shaper* shaping = nullptr;
    tls::mta_sts* sts = nullptr;                 // null: delivery.mta_sts = "off"
    tls::tls_reporter* tls_counts = nullptr;     // null: delivery.tls_rpt = "off"
    tls_report_sender* tls_reports = nullptr;
};

// "shaping.show" (ricochetctl shaping show [DOMAIN], the API): the rules,
// the pools and each destination's state per source IP (rate now, resting,
// warm-up day and what is left of today's cap); with "domain", the rule
// that applies to it.
nlohmann::json shaping_show(const delivery::shaper& s, const std::string& domain, std::int64_t now_ms);

nlohmann::json handle_control(control_context& ctx, const nlohmann::json& req);

}  // namespace ricochet::daemon
