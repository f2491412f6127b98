// event — the one record of everything Ricochet decides (PRODUCT.md "Events"
// and "Events, second stage"): a message queued, a recipient delivered,
// deferred, bounced or expired, a report that came back later, a complaint,
// an operator's action, a recipient's status changing. One plain struct with
// a typed `type`, built in one place per kind of decision (events/make.hpp),
// serialised to JSON in one place (events/event_json.hpp), stamped with `seq`
// and `id` when it is published (events/sequencer.hpp), and handed to every
// sink (the JSON-lines file, the state store; webhooks and metrics later).
//
// Pure value type: no I/O, no JSON library in this header.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ricochet::events {

enum class event_type {
    queued,          // a message's recipient was accepted and is on disk
    delivered,       // a 2xx after the final dot
    deferred,        // a temporary failure: tried again later
    bounced,         // a final failure (in session, or a DSN later)
    expired,         // still not delivered at retry.max_age
    suppressed,      // dropped at RCPT (bounce.suppressed = "drop")
    complaint,       // an ARF abuse/fraud/opt-out report
    dsn,             // a report that changes nothing (delayed, auto-reply, unreadable, ...)
    admin,           // an operator's action on the queue or on an address
    status_changed,  // a recipient's status moved (active, bounced, held, unsubscribed)
    unsubscribed,    // a recipient asked to stop (one-click, mailto, a complaint, an operator): `via`
    campaign_paused,   // the campaign breaker stopped a campaign
    campaign_warned,   // a campaign crossed a warning threshold
    campaign_resumed,  // a paused campaign goes on
};
std::string_view to_string(event_type t);
std::optional<event_type> parse_event_type(std::string_view s);

struct event {
    event_type type = event_type::dsn;
    // Stamped when published: strictly increasing, never reused across
    // restarts; id is unique across nodes ("<instance>-<seq>").
    std::uint64_t seq = 0;
    std::string id;
    std::int64_t time_ms = 0;  // 0: "now" when published

    std::string queue_id, campaign, recipient;
    // The reading of a failure (empty: none, serialised as null).
    std::string kind, category, rule;
    // The reply it came from: code 0 = no reply (a time-out, a lost connection).
    int code = 0;
    std::string enhanced, reply, mx, stage;
    int attempt = 0;    // 0: not an attempt (serialised as null)
    bool sync = true;   // false: read from a report that came back later

    // admin: what the operator did ("hold", "release", "delete", "flush",
    // "bounce", "clear", "engage", "unsubscribe"), the queue state the message
    // was in, or the status an address was set to.
    std::string action, from_state, status;

    // status_changed: the recipient's status before and after, why, and its
    // bounce figures after the change (0 = never).
    std::string from, to, reason;
    std::string via;  // unsubscribed: "one-click", "mailto", "complaint", "admin"
    // campaign_*: the scope ("campaign", "sender_domain"; its key is in
    // `campaign`) and the window's figures when it changed.
    std::string scope;
    std::int64_t attempted = 0, hard = 0, complaints = 0;
    int bounce_count = 0;
    std::int64_t first_bounce_ms = 0, last_bounce_ms = 0;

    // queued: the recipient's index in its message (its VERP token names it)
    // and the envelope sender (a later DSN may go back to it). Kept by the
    // state store; not in the JSON a campaign system reads.
    int index = -1;
    std::string sender;
};

}  // namespace ricochet::events
