// make — see make.hpp.
#include "events/make.hpp"

namespace ricochet::events {
namespace {
event base(event_type t, std::string queue_id, std::string campaign, std::string recipient, std::int64_t time_ms) {
    event e;
    e.type = t;
    e.queue_id = std::move(queue_id);
    e.campaign = std::move(campaign);
    e.recipient = std::move(recipient);
    e.time_ms = time_ms;
    return e;
}
void set_reply(event& e, reply_fields r) {
    e.code = r.code;
    e.enhanced = std::move(r.enhanced);
    e.reply = std::move(r.reply);
    e.mx = std::move(r.mx);
    e.stage = std::move(r.stage);
}
void set_reading(event& e, reading rd) {
    e.kind = std::move(rd.kind);
    e.category = std::move(rd.category);
    e.rule = std::move(rd.rule);
}
}  // namespace

event queued(std::string queue_id, std::string campaign, std::string recipient, int index, std::string sender,
             std::int64_t time_ms) {
    auto e = base(event_type::queued, std::move(queue_id), std::move(campaign), std::move(recipient), time_ms);
    e.index = index;
    e.sender = std::move(sender);
    return e;
}

event attempt_outcome(event_type t, std::string queue_id, std::string campaign, std::string recipient,
                      reply_fields r, reading rd, int attempt, std::int64_t time_ms) {
    auto e = base(t, std::move(queue_id), std::move(campaign), std::move(recipient), time_ms);
    set_reply(e, std::move(r));
    set_reading(e, std::move(rd));
    e.attempt = attempt;
    return e;
}

event reported_failure(std::string queue_id, std::string campaign, std::string recipient, reply_fields r, reading rd,
                       std::int64_t time_ms) {
    auto e = base(event_type::bounced, std::move(queue_id), std::move(campaign), std::move(recipient), time_ms);
    r.stage = "dsn";
    set_reply(e, std::move(r));
    set_reading(e, std::move(rd));
    e.sync = false;
    return e;
}

event complaint(std::string queue_id, std::string campaign, std::string recipient, const std::string& feedback_type,
                std::string mx, std::int64_t time_ms) {
    auto e = base(event_type::complaint, std::move(queue_id), std::move(campaign), std::move(recipient), time_ms);
    set_reply(e, {0, "", "feedback-type: " + feedback_type, std::move(mx), "dsn"});
    set_reading(e, {"block", "complaint", "arf"});
    e.sync = false;
    return e;
}

event report_noted(std::string queue_id, std::string campaign, std::string recipient, std::string what,
                   reply_fields r, std::int64_t time_ms) {
    auto e = base(event_type::dsn, std::move(queue_id), std::move(campaign), std::move(recipient), time_ms);
    r.stage = "dsn";
    r.reply = std::move(what);
    set_reply(e, std::move(r));
    e.sync = false;
    return e;
}

event suppressed_at_rcpt(std::string recipient, const std::string& why, std::int64_t time_ms) {
    auto e = base(event_type::suppressed, "", "", std::move(recipient), time_ms);
    set_reply(e, {0, "", "dropped at RCPT: recipient " + why, "", "rcpt"});
    return e;
}

event queue_admin(std::string action, std::string queue_id, std::string campaign, std::string from_state,
                  std::string recipient, std::int64_t time_ms) {
    auto e = base(event_type::admin, std::move(queue_id), std::move(campaign), std::move(recipient), time_ms);
    e.action = std::move(action);
    e.from_state = std::move(from_state);
    return e;
}

event address_admin(std::string recipient, std::string action, bounce::address_status to, std::int64_t time_ms) {
    auto e = base(event_type::admin, "", "", std::move(recipient), time_ms);
    e.action = std::move(action);
    e.status = std::string(bounce::to_string(to));
    return e;
}

event status_changed(const bounce::address_record& after, bounce::address_status before, std::string reason,
                     std::int64_t time_ms) {
    auto e = base(event_type::status_changed, "", "", after.address, time_ms);
    e.from = std::string(bounce::to_string(before));
    e.to = std::string(bounce::to_string(after.status));
    e.reason = std::move(reason);
    e.bounce_count = after.bounce_count;
    e.first_bounce_ms = after.first_bounce_ms;
    e.last_bounce_ms = after.last_bounce_ms;
    if (after.bounce_count > 0) {  // the reading of the last bounce; none after a clear
        e.kind = after.last_kind;
        e.category = after.last_category;
    }
    return e;
}

event unsubscribed(std::string recipient, std::string campaign, std::string queue_id, std::string via,
                   std::int64_t time_ms) {
    auto e = base(event_type::unsubscribed, std::move(queue_id), std::move(campaign), std::move(recipient), time_ms);
    e.via = std::move(via);
    return e;
}

}  // namespace ricochet::events
