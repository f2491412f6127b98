// event_json — see event_json.hpp.
#include "events/event_json.hpp"

#include <ctime>

namespace ricochet::events {
using nlohmann::json;

namespace {
json or_null(const std::string& v) { return v.empty() ? json(nullptr) : json(v); }
json time_or_null(std::int64_t ms) { return ms ? json(rfc3339(ms)) : json(nullptr); }
}  // namespace

std::string rfc3339(std::int64_t ms) {
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[40];
    std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms % 1000));
    return buf;
}

std::int64_t parse_rfc3339(const std::string& s) {
    std::tm tm{};
    int msec = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                    &tm.tm_min, &tm.tm_sec, &msec) < 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return static_cast<std::int64_t>(::timegm(&tm)) * 1000 + msec;
}

json to_json(const event& e, bool internal) {
    // A reply's fields mean something only for an attempt or a report: a
    // `queued` or `admin` event has none (null, not 0 or "").
    bool has_reply = e.type != event_type::queued && e.type != event_type::admin &&
                     e.type != event_type::status_changed;
    json j{{"seq", e.seq},
           {"id", e.id},
           {"time", rfc3339(e.time_ms)},
           {"type", to_string(e.type)},
           {"queue_id", or_null(e.queue_id)},
           {"campaign", e.campaign},  // "" when the message had none
           {"recipient", e.recipient},  // "" when the report names no known recipient
           {"kind", or_null(e.kind)},
           {"category", or_null(e.category)},
           {"rule", or_null(e.rule)},
           {"code", has_reply ? json(e.code) : json(nullptr)},
           {"enhanced", has_reply ? json(e.enhanced) : json(nullptr)},
           {"reply", or_null(e.reply)},
           {"mx", has_reply ? json(e.mx) : json(nullptr)},
           {"stage", has_reply ? json(e.stage) : json(nullptr)},
           {"attempt", e.attempt ? json(e.attempt) : json(nullptr)},
           {"sync", e.sync}};
    if (e.type == event_type::admin) {
        j["action"] = e.action;
        if (!e.from_state.empty()) j["from_state"] = e.from_state;
        if (!e.status.empty()) j["status"] = e.status;
    }
    if (e.type == event_type::status_changed) {
        j["from"] = e.from;
        j["to"] = e.to;
        j["reason"] = e.reason;
        j["bounce_count"] = e.bounce_count;
        j["first_bounce"] = time_or_null(e.first_bounce_ms);
        j["last_bounce"] = time_or_null(e.last_bounce_ms);
    }
    if (internal) {
        j["t"] = e.time_ms;  // exact, where "time" is rounded to the format
        if (e.index >= 0) j["index"] = e.index;
        if (!e.sender.empty()) j["sender"] = e.sender;
    }
    return j;
}

std::optional<event> from_json(const json& j) {
    if (!j.is_object()) return std::nullopt;
    auto str = [&](const char* k) {
        auto it = j.find(k);
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    auto num = [&](const char* k) -> std::int64_t {
        auto it = j.find(k);
        return it != j.end() && it->is_number() ? it->get<std::int64_t>() : 0;
    };
    auto t = parse_event_type(str("type"));
    if (!t) return std::nullopt;
    event e;
    e.type = *t;
    e.seq = static_cast<std::uint64_t>(num("seq"));
    e.id = str("id");
    e.time_ms = num("t") ? num("t") : parse_rfc3339(str("time"));
    e.queue_id = str("queue_id");
    e.campaign = str("campaign");
    e.recipient = str("recipient");
    e.kind = str("kind");
    e.category = str("category");
    e.rule = str("rule");
    e.code = static_cast<int>(num("code"));
    e.enhanced = str("enhanced");
    e.reply = str("reply");
    e.mx = str("mx");
    e.stage = str("stage");
    e.attempt = static_cast<int>(num("attempt"));
    e.sync = j.value("sync", true);
    e.action = str("action");
    e.from_state = str("from_state");
    e.status = str("status");
    e.from = str("from");
    e.to = str("to");
    e.reason = str("reason");
    e.bounce_count = static_cast<int>(num("bounce_count"));
    e.first_bounce_ms = parse_rfc3339(str("first_bounce"));
    e.last_bounce_ms = parse_rfc3339(str("last_bounce"));
    e.index = j.contains("index") ? static_cast<int>(num("index")) : -1;
    e.sender = str("sender");
    return e;
}

}  // namespace ricochet::events
