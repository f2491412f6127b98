// make — the one place each kind of event is built, so every producer
// (submission, delivery, the bounce intake, the operator's commands, the
// recipient-state rules) fills the same fields the same way.
#pragma once
#include <cstdint>
#include <string>

#include "bounce/recipient_status.hpp"
#include "events/event.hpp"

namespace ricochet::events {

// A reply as received: code 0 when there was none (time-out, lost connection).
struct reply_fields {
    int code = 0;
    std::string enhanced, reply, mx, stage;
};
// The bounce engine's reading of a failure (empty for a success).
struct reading {
    std::string kind, category, rule;
};

// A recipient of a message now on disk (one per recipient, after the commit).
event queued(std::string queue_id, std::string campaign, std::string recipient, int index, std::string sender,
             std::int64_t time_ms);
// The outcome of one delivery attempt, in session: delivered, deferred,
// bounced, or expired (no attempt: the last reply is repeated).
event attempt_outcome(event_type t, std::string queue_id, std::string campaign, std::string recipient,
                      reply_fields r, reading rd, int attempt, std::int64_t time_ms);
// A failure reported later by a DSN or vendor NDR (sync = false).
event reported_failure(std::string queue_id, std::string campaign, std::string recipient, reply_fields r, reading rd,
                       std::int64_t time_ms);
// An ARF (or JMRP) complaint: the recipient becomes unsubscribed.
event complaint(std::string queue_id, std::string campaign, std::string recipient, const std::string& feedback_type,
                std::string mx, std::int64_t time_ms);
// A report that changes nothing (delayed, delivered, auto-reply, other
// feedback, or one kept unread in dsn-unparsed/): `what` says which.
event report_noted(std::string queue_id, std::string campaign, std::string recipient, std::string what,
                   reply_fields r, std::int64_t time_ms);
// A held or unsubscribed recipient accepted and dropped at RCPT.
event suppressed_at_rcpt(std::string recipient, const std::string& why, std::int64_t time_ms);
// An operator's queue operation on one message (per recipient for delete).
event queue_admin(std::string action, std::string queue_id, std::string campaign, std::string from_state,
                  std::string recipient, std::int64_t time_ms);
// An operator (or an engagement signal) set an address's status.
event address_admin(std::string recipient, std::string action, bounce::address_status to, std::int64_t time_ms);
// The recipient-state rules moved an address from one status to another.
event status_changed(const bounce::address_record& after, bounce::address_status before, std::string reason,
                     std::int64_t time_ms);

// A recipient became unsubscribed; via: "one-click", "mailto", "complaint", "admin".
event unsubscribed(std::string recipient, std::string campaign, std::string queue_id, std::string via,
                   std::int64_t time_ms);

}  // namespace ricochet::events
