// views — see views.hpp.
#include "views/views.hpp"

#include <algorithm>
#include <ctime>

#include "events/event.hpp"
#include "queue/queue_admin.hpp"
#include "queue/queue_id.hpp"
#include "queue/spool.hpp"
#include "bounce/classifier.hpp"
#include "bounce/suppression_list.hpp"
#include "state/recipient_state.hpp"

namespace ricochet::views {

std::string format_time(std::int64_t ms) {
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

namespace {
json message_json(const queue::envelope& env, queue::queue_state st) {
    return {{"id", env.id}, {"state", std::string(queue::to_string(st))}, {"arrival", format_time(env.arrival_ms)},
            {"size", env.content_size}, {"sender", env.sender}, {"campaign", env.campaign},
            {"recipients", env.recipients}};
}
}  // namespace

json queue_list(const queue::spool& sp, const queue_filter& f) {
    json arr = json::array();
    auto entries = sp.list(f.state);
    std::sort(entries.begin(), entries.end(), [](auto& a, auto& b) { return a.id < b.id; });
    queue::selector sel;
    sel.domain = f.domain;
    sel.campaign = f.campaign;
    sel.all = f.domain.empty() && f.campaign.empty();
    for (auto& e : entries) {
        if (!queue::matches(sp, e, sel)) continue;
        if (auto env = sp.find_envelope(e.id, e.state)) {
            if (f.state && e.state != *f.state) continue;  // moved out of the state asked for
            arr.push_back(message_json(*env, e.state));
            if (e.state == queue::queue_state::hold && f.hold_reason)
                if (auto why = f.hold_reason(*env); !why.empty()) arr.back()["hold_reason"] = why;
        }
    }
    return arr;
}

json queue_summary(const queue::spool* sp, const std::map<std::string, std::int64_t>& paused) {
    struct counts {
        std::size_t active = 0, deferred = 0, hold = 0;
        std::size_t total() const { return active + deferred + hold; }
        void add(queue::queue_state s) {
            (s == queue::queue_state::active ? active : s == queue::queue_state::deferred ? deferred : hold)++;
        }
    };
    std::map<std::string, counts> by_domain;
    counts all;
    json oldest;  // the message waiting longest
    std::int64_t oldest_ms = 0;
    for (auto& e : sp ? sp->list() : std::vector<queue::spool_entry>{}) {
        auto env = sp->find_envelope(e.id, e.state);
        if (!env) continue;
        all.add(e.state);
        if (oldest.is_null() || env->arrival_ms < oldest_ms) {
            oldest_ms = env->arrival_ms;
            oldest = {{"id", env->id}, {"arrival", format_time(env->arrival_ms)}, {"state", std::string(queue::to_string(e.state))}};
        }
        std::vector<std::string> domains;
        for (auto& r : env->recipients) domains.push_back(queue::recipient_domain(r));
        std::sort(domains.begin(), domains.end());
        domains.erase(std::unique(domains.begin(), domains.end()), domains.end());
        for (auto& d : domains) by_domain[d].add(e.state);
    }
    for (auto& [d, until] : paused) by_domain[d];  // a paused domain shows even with nothing queued
    std::vector<std::pair<std::string, counts>> rows(by_domain.begin(), by_domain.end());
    std::stable_sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.second.total() > b.second.total(); });
    json d = json::array();
    for (auto& [name, c] : rows) {
        json row{{"domain", name}, {"total", c.total()}, {"active", c.active}, {"deferred", c.deferred}, {"hold", c.hold}};
        if (auto p = paused.find(name); p != paused.end()) row["paused_until"] = format_time(p->second);
        d.push_back(row);
    }
    return {{"domains", d},
            {"total", {{"messages", all.total()}, {"active", all.active}, {"deferred", all.deferred}, {"hold", all.hold}}},
            {"oldest", oldest}};
}

std::optional<json> queue_show(const queue::spool& sp, const std::string& id, std::string& error,
                               const hold_reason_fn& hold_reason) {
    if (!queue::is_queue_id(id)) {
        error = "not a queue id: " + id;
        return std::nullopt;
    }
    // The daemon moves a message between states while it is read (a first
    // attempt defers it): follow it, a few times, as queue_admin does.
    std::optional<queue::queue_state> st;
    queue::envelope env;
    std::string content;
    std::error_code ec = std::make_error_code(std::errc::no_such_file_or_directory);
    for (int attempt = 0; attempt < 3 && ec == std::errc::no_such_file_or_directory; ++attempt) {
        st = sp.locate(id);
        if (!st) break;
        ec = sp.read_message(id, *st, env, content);
    }
    if (!st || ec) {
        error = id + (!st || ec == std::errc::no_such_file_or_directory ? ": not in the queue" : ": cannot read: " + ec.message());
        return std::nullopt;
    }
    auto header_end = content.find("\r\n\r\n");
    std::string headers = content.substr(0, header_end == std::string::npos ? content.size() : header_end + 2);
    json j = message_json(env, *st);
    j["client"] = env.client;
    j["helo"] = env.helo;
    j["auth_user"] = env.auth_user;
    j["smtputf8"] = env.smtputf8;
    j["8bitmime"] = env.eightbit;
    j["headers"] = headers;
    if (*st == queue::queue_state::hold && hold_reason)
        if (auto why = hold_reason(env); !why.empty()) j["hold_reason"] = why;
    std::error_code sec;
    auto status = sp.read_status(id, env.recipients.size(), sec);
    if (sec) {
        error = id + ": cannot read recipient status: " + sec.message();
        return std::nullopt;
    }
    json rc = json::array();
    for (std::size_t i = 0; i < env.recipients.size(); ++i) {
        auto& rs = status[i];
        json r{{"recipient", env.recipients[i]}, {"status", rs.status}, {"attempts", rs.attempts}};
        if (rs.attempts > 0 || rs.final()) {
            r["last_attempt"] = format_time(rs.last_attempt_ms);
            r["code"] = rs.code;
            r["enhanced"] = rs.enhanced;
            r["stage"] = rs.stage;
            r["mx"] = rs.mx;
            r["last_reply"] = rs.reply;
        } else {
            r["last_reply"] = nullptr;
        }
        rc.push_back(r);
    }
    j["recipients"] = rc;
    return j;
}

hold_reason_fn breaker_hold_reason(const state::recipient_state& st) {
    std::map<std::string, breaker::scope_state> paused;
    for (auto& [k, s] : st.scopes())
        if (s.st == breaker::state::paused) paused[k] = s;
    if (paused.empty()) return {};
    return [paused](const queue::envelope& env) -> std::string {
        auto at = env.sender.rfind('@');
        for (auto key : {env.campaign, at == std::string::npos ? std::string() : "@" + queue::recipient_domain(env.sender)})
            if (auto it = paused.find(key); !key.empty() && it != paused.end())
                return "breaker: " + breaker::paused_text(key, it->second);
        return {};
    };
}

json record_json(const bounce::address_record& r) {
    return {{"address", r.address}, {"status", std::string(bounce::to_string(r.status))},
            {"bounce_count", r.bounce_count},
            {"first_bounce", r.first_bounce_ms ? json(format_time(r.first_bounce_ms)) : json(nullptr)},
            {"last_bounce", r.last_bounce_ms ? json(format_time(r.last_bounce_ms)) : json(nullptr)},
            {"last_reply", r.last_reply}, {"last_kind", r.last_kind}, {"last_category", r.last_category}};
}

std::optional<json> recipient(const state::recipient_state& st, const std::string& address, int history_limit) {
    auto r = st.get(address);
    auto hist = st.history(address, history_limit);
    if (!r && hist.empty()) return std::nullopt;
    json j = record_json(r.value_or(bounce::address_record{bounce::lower_address(address)}));
    json h = json::array();
    for (auto& d : hist)
        h.push_back({{"time", format_time(d.time_ms)}, {"type", events::to_string(d.type)}, {"queue_id", d.queue_id},
                     {"campaign", d.campaign}, {"kind", d.kind}, {"category", d.category}, {"rule", d.rule},
                     {"reply", d.reply}});
    j["history"] = h;
    return j;
}

json recipients(const state::recipient_state& st, bounce::address_status s, const std::string& after, std::size_t limit) {
    auto rows = st.list(s, after, limit ? limit + 1 : 0);  // one more: is there a next page?
    json arr = json::array();
    bool more = limit && rows.size() > limit;
    if (more) rows.resize(limit);
    for (auto& r : rows) arr.push_back(record_json(r));
    return {{"recipients", arr}, {"next", more ? json(rows.back().address) : json(nullptr)}};
}

namespace {
json scope_json(const breaker::monitor& m, const std::string& key, std::int64_t now_ms) {
    auto c = m.window(key, now_ms);
    auto s = m.state_of(key);
    bool sender = !key.empty() && key.front() == '@';
    return {{"id", key},
            {"scope", sender ? "sender_domain" : "campaign"},
            {"attempted", c.attempted},
            {"delivered", c.delivered},
            {"hard", c.hard},
            {"soft", c.soft},
            {"block", c.block},
            {"complaints", c.complaints},
            {"hard_rate", c.hard_rate()},
            {"complaint_rate", c.complaint_rate()},
            {"window", m.cfg().window_ms % 3600000 == 0 ? std::to_string(m.cfg().window_ms / 3600000) + "h"
                                                         : std::to_string(m.cfg().window_ms / 60000) + "m"},
            {"state", std::string(breaker::to_string(s.st))},
            {"since", s.since_ms ? json(format_time(s.since_ms)) : json(nullptr)},
            {"reason", s.reason.empty() ? json(nullptr) : json(s.reason)},
            {"manual", s.manual}};
}
}  // namespace

std::optional<json> campaign(const state::recipient_state& st, const breaker::config& cfg, const std::string& key,
                             std::int64_t now_ms) {
    breaker::monitor m(cfg);
    st.load_breaker(m, now_ms);
    if (m.window(key, now_ms).empty() && m.state_of(key).st == breaker::state::ok && m.state_of(key).since_ms == 0)
        return std::nullopt;
    return scope_json(m, key, now_ms);
}

json campaigns(const state::recipient_state& st, const breaker::config& cfg, std::int64_t now_ms) {
    breaker::monitor m(cfg);
    st.load_breaker(m, now_ms);
    json out = json::array();
    for (auto& k : m.keys(now_ms)) out.push_back(scope_json(m, k, now_ms));
    return out;
}

json stats(const state::recipient_state& st, const std::string& campaign, const std::string& domain, std::int64_t since_ms) {
    json out = json::object();
    for (std::string group : {"campaign", "domain"}) {
        json rows = json::array();
        for (auto& r : st.stats(group, campaign, domain, since_ms))
            rows.push_back({{group, r.key}, {"sent", r.sent}, {"delivered", r.delivered}, {"deferred", r.deferred},
                            {"hard", r.hard}, {"soft", r.soft}, {"block", r.block}, {"technical", r.technical},
                            {"complaints", r.complaints}, {"bounce_rate", r.bounce_rate()}});
        out[group == "campaign" ? "by_campaign" : "by_domain"] = rows;
    }
    return out;
}

namespace {
json point_json(std::int64_t start_ms, const state::stats_row& r) {
    // Attempts that ended (delivered, deferred, failed) are the rates' denominator.
    std::int64_t failed = r.hard + r.soft + r.block + r.technical;
    std::int64_t attempts = r.delivered + r.deferred + failed;
    auto rate = [](std::int64_t n, std::int64_t d) { return d ? double(n) / double(d) : 0.0; };
    return {{"t", format_time(start_ms)}, {"sent", r.sent}, {"delivered", r.delivered}, {"deferred", r.deferred},
            {"hard", r.hard}, {"soft", r.soft}, {"block", r.block}, {"technical", r.technical},
            {"complaints", r.complaints}, {"bounce_rate", rate(r.hard + r.soft, r.sent)},
            {"delivery_rate", rate(r.delivered, attempts)}, {"deferral_rate", rate(r.deferred, attempts)},
            {"complaint_rate", rate(r.complaints, r.delivered)}};
}
}  // namespace

std::optional<json> series(const state::recipient_state& st, const series_query& q, std::int64_t now_ms,
                           std::string& error) {
    std::int64_t bucket = q.bucket == "day" ? 86400000 : q.bucket == "hour" ? 3600000 : 0;
    if (!bucket) {
        error = "bucket must be hour or day";
        return std::nullopt;
    }
    if (!q.by.empty() && q.by != "campaign" && q.by != "domain") {
        error = "by must be campaign or domain";
        return std::nullopt;
    }
    std::int64_t first = q.since_ms / bucket * bucket, last = now_ms / bucket * bucket;
    if (first > last) first = last;
    if ((last - first) / bucket + 1 > max_series_points) {
        error = "too many points: at most " + std::to_string(max_series_points) + " per series (a shorter since, or bucket=day)";
        return std::nullopt;
    }
    std::map<std::string, std::map<std::int64_t, state::stats_row>> by_key;
    std::map<std::string, std::int64_t> volume;  // which keys to show: the busiest
    for (auto& r : st.series(bucket, q.by, q.campaign, q.domain, first)) {
        if (r.start_ms < first || r.start_ms > last) continue;
        by_key[r.counts.key][r.start_ms] = r.counts;
        volume[r.counts.key] += r.counts.sent + r.counts.delivered + r.counts.deferred + r.counts.hard + r.counts.soft +
                                r.counts.block + r.counts.technical + r.counts.complaints;
    }
    if (q.by.empty() && by_key.empty()) by_key[""];  // one series, all zeros
    std::vector<std::pair<std::string, std::int64_t>> keys(volume.begin(), volume.end());
    if (q.by.empty()) keys = {{"", 0}};
    std::stable_sort(keys.begin(), keys.end(), [](auto& a, auto& b) { return a.second > b.second; });
    if (q.top && keys.size() > q.top) keys.resize(q.top);
    json out_series = json::array();
    for (auto& [key, vol] : keys) {
        auto& rows = by_key[key];
        json points = json::array();
        for (std::int64_t t = first; t <= last; t += bucket) {
            auto it = rows.find(t);
            points.push_back(point_json(t, it == rows.end() ? state::stats_row{} : it->second));
        }
        json s{{"points", points}};
        if (!q.by.empty()) s[q.by] = key;
        out_series.push_back(std::move(s));
    }
    return json{{"bucket", q.bucket}, {"from", format_time(first)}, {"to", format_time(last + bucket)},
                {"series", out_series}};
}

json replies(const state::recipient_state& st, const std::string& domain, std::int64_t since_ms, std::size_t limit) {
    json arr = json::array();
    for (auto& r : st.replies(domain, since_ms, limit))
        arr.push_back({{"domain", r.domain}, {"outcome", r.outcome}, {"kind", r.kind}, {"category", r.category},
                       {"count", r.count}});
    return {{"replies", arr}};
}

std::optional<json> classify(const bounce::classifier& cl, const std::string& text, const std::string& domain,
                             const std::string& stage_name, std::string& error) {
    auto reply = bounce::parse_reply_text(text);
    bool found = false;
    for (auto s : {bounce::stage::dns, bounce::stage::connect, bounce::stage::greeting, bounce::stage::ehlo,
                   bounce::stage::starttls, bounce::stage::tls, bounce::stage::mail, bounce::stage::rcpt,
                   bounce::stage::data, bounce::stage::end_of_data})
        if (bounce::to_string(s) == stage_name) {
            reply.at = s;
            found = true;
        }
    if (!found) {
        error = "unknown stage " + stage_name +
                " (dns, connect, greeting, ehlo, starttls, tls, mail, rcpt, data, end_of_data)";
        return std::nullopt;
    }
    auto c = cl.classify(reply, domain);
    return json{{"code", reply.code}, {"enhanced", reply.enhanced}, {"kind", std::string(bounce::to_string(c.k))},
                {"category", std::string(bounce::to_string(c.c))}, {"retry", c.retry},
                {"scope", std::string(bounce::to_string(c.s))}, {"rule", c.rule}};
}

}  // namespace ricochet::views
