// views — see views.hpp.
#include "views/views.hpp"

#include <algorithm>
#include <ctime>

#include "events/event.hpp"
#include "queue/queue_admin.hpp"
#include "queue/queue_id.hpp"
#include "queue/spool.hpp"
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
    for (auto& e : sp ? sp->list() : std::vector<queue::spool_entry>{}) {
        auto env = sp->find_envelope(e.id, e.state);
        if (!env) continue;
        all.add(e.state);
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
            {"total", {{"messages", all.total()}, {"active", all.active}, {"deferred", all.deferred}, {"hold", all.hold}}}};
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
                            {"bounce_rate", r.bounce_rate()}});
        out[group == "campaign" ? "by_campaign" : "by_domain"] = rows;
    }
    return out;
}

}  // namespace ricochet::views
