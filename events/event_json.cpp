// event_json — see event_json.hpp.
#include "events/event_json.hpp"

#include "base/text.hpp"

#include <algorithm>
#include <ctime>

namespace ricochet::events {
using nlohmann::json;

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

namespace {

// A JSON string, escaped per RFC 8259 7: quote, backslash and control
// characters; invalid UTF-8 (a reply may carry any bytes) becomes U+FFFD,
// so every line is valid JSON and valid UTF-8.
void put_string(std::string& out, std::string_view v) {
    static const char hex[] = "0123456789abcdef";
    out += '"';
    std::size_t i = 0;
    while (i < v.size()) {
        auto c = static_cast<unsigned char>(v[i]);
        if (c < 0x80) {
            switch (c) {
                case '"': out += "\\\""; break;
                case '\\': out += "\\\\"; break;
                case '\n': out += "\\n"; break;
                case '\r': out += "\\r"; break;
                case '\t': out += "\\t"; break;
                case '\b': out += "\\b"; break;
                case '\f': out += "\\f"; break;
                default:
                    if (c < 0x20) {
                        out += "\\u00";
                        out += hex[c >> 4];
                        out += hex[c & 15];
                    } else {
                        out += static_cast<char>(c);
                    }
            }
            ++i;
            continue;
        }
        std::size_t bad = 0;
        if (auto n = base::utf8_sequence(v, i, bad)) {
            out.append(v.data() + i, n);
            i += n;
        } else {
            out += "\xEF\xBF\xBD";  // U+FFFD for the bad sequence so far
            i += bad;
        }
    }
    out += '"';
}

struct line_writer {
    std::string& out;
    bool first = true;
    void key(std::string_view k) {
        out += first ? '{' : ',';
        first = false;
        out += '"';
        out += k;
        out += "\":";
    }
    void str(std::string_view k, std::string_view v) {
        key(k);
        put_string(out, v);
    }
    void str_or_null(std::string_view k, std::string_view v) {
        if (v.empty()) null(k);
        else str(k, v);
    }
    void num(std::string_view k, std::int64_t v) {
        key(k);
        out += std::to_string(v);
    }
    void unum(std::string_view k, std::uint64_t v) {
        key(k);
        out += std::to_string(v);
    }
    void boolean(std::string_view k, bool v) {
        key(k);
        out += v ? "true" : "false";
    }
    void null(std::string_view k) {
        key(k);
        out += "null";
    }
    void time_or_null(std::string_view k, std::int64_t ms) {
        if (ms) str(k, rfc3339(ms));
        else null(k);
    }
};

}  // namespace

void append_json_line(std::string& out, const event& e, bool internal) {
    // A reply's fields mean something only for an attempt or a report: a
    // `queued`, `admin` or `status_changed` event has none (null, not 0 or "").
    bool has_reply = e.type != event_type::queued && e.type != event_type::admin &&
                     e.type != event_type::status_changed && e.type != event_type::unsubscribed &&
                     e.type != event_type::campaign_paused && e.type != event_type::campaign_warned &&
                     e.type != event_type::campaign_resumed;
    line_writer w{out};
    w.unum("seq", e.seq);
    w.str("id", e.id);
    w.str("time", rfc3339(e.time_ms));
    w.str("type", to_string(e.type));
    w.str_or_null("queue_id", e.queue_id);
    w.str("campaign", e.campaign);    // "" when the message had none
    w.str("recipient", e.recipient);  // "" when a report names no known recipient
    w.str_or_null("kind", e.kind);
    w.str_or_null("category", e.category);
    w.str_or_null("rule", e.rule);
    if (has_reply) {
        w.num("code", e.code);
        w.str("enhanced", e.enhanced);
    } else {
        w.null("code");
        w.null("enhanced");
    }
    w.str_or_null("reply", e.reply);
    if (has_reply) {
        w.str("mx", e.mx);
        w.str("stage", e.stage);
    } else {
        w.null("mx");
        w.null("stage");
    }
    if (e.attempt) w.num("attempt", e.attempt);
    else w.null("attempt");
    w.boolean("sync", e.sync);
    if (e.type == event_type::admin) {
        w.str("action", e.action);
        if (!e.from_state.empty()) w.str("from_state", e.from_state);
        if (!e.status.empty()) w.str("status", e.status);
    }
    if (e.type == event_type::status_changed) {
        w.str("from", e.from);
        w.str("to", e.to);
        w.str("reason", e.reason);
        w.num("bounce_count", e.bounce_count);
        w.time_or_null("first_bounce", e.first_bounce_ms);
        w.time_or_null("last_bounce", e.last_bounce_ms);
    }
    if (e.type == event_type::unsubscribed) w.str("via", e.via);
    if (e.type == event_type::campaign_paused || e.type == event_type::campaign_warned ||
        e.type == event_type::campaign_resumed) {
        w.str("scope", e.scope);
        w.str("reason", e.reason);
        w.num("attempted", e.attempted);
        w.num("hard", e.hard);
        w.num("complaints", e.complaints);
    }
    if (internal) {
        w.num("t", e.time_ms);  // exact, where "time" is rounded to the format
        if (e.index >= 0) w.num("index", e.index);
        if (!e.sender.empty()) w.str("sender", e.sender);
    }
    out += "}\n";
}

json to_json(const event& e, bool internal) {
    std::string line;
    append_json_line(line, e, internal);
    return json::parse(line);
}

std::optional<event> from_json(const json& j) {
    if (!j.is_object()) return std::nullopt;
    auto str = [&](const char* k) {
        auto it = j.find(k);
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    auto num = [&](const char* k) -> std::int64_t {
        auto it = j.find(k);
        if (it == j.end() || !it->is_number()) return 0;
        if (it->is_number_integer()) return it->get<std::int64_t>();
        double d = it->get<double>();  // a float out of range would be UB to convert
        return d > -9e18 && d < 9e18 ? static_cast<std::int64_t>(d) : 0;
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
    auto sync = j.find("sync");  // a corrupt line must not throw: value() would on a non-bool
    e.sync = sync == j.end() || !sync->is_boolean() || sync->get<bool>();
    e.action = str("action");
    e.from_state = str("from_state");
    e.status = str("status");
    e.from = str("from");
    e.to = str("to");
    e.reason = str("reason");
    e.via = str("via");
    e.scope = str("scope");
    e.attempted = num("attempted");
    e.hard = num("hard");
    e.complaints = num("complaints");
    e.bounce_count = static_cast<int>(num("bounce_count"));
    e.first_bounce_ms = parse_rfc3339(str("first_bounce"));
    e.last_bounce_ms = parse_rfc3339(str("last_bounce"));
    e.index = j.contains("index") ? static_cast<int>(num("index")) : -1;
    e.sender = str("sender");
    return e;
}

}  // namespace ricochet::events
