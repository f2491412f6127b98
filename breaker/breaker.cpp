// breaker — see breaker.hpp.
#include "breaker/breaker.hpp"

#include <algorithm>
#include <cstdio>
#include <set>

namespace ricochet::breaker {

counts& counts::operator+=(const counts& o) {
    attempted += o.attempted;
    delivered += o.delivered;
    hard += o.hard;
    soft += o.soft;
    block += o.block;
    complaints += o.complaints;
    return *this;
}

counts counts::operator-(const counts& o) const {
    auto sub = [](std::int64_t a, std::int64_t b) { return a > b ? a - b : 0; };
    return {sub(attempted, o.attempted), sub(delivered, o.delivered), sub(hard, o.hard),
            sub(soft, o.soft),           sub(block, o.block),         sub(complaints, o.complaints)};
}

void count_event(const events::event& e, const std::string& sender_domain, const config& cfg, std::vector<delta>& out) {
    using events::event_type;
    counts c;
    switch (e.type) {
        case event_type::delivered:
            c.attempted = c.delivered = 1;
            break;
        case event_type::bounced:
        case event_type::expired:
            if (e.sync) c.attempted = 1;  // a DSN later: the attempt counted already
            if (e.kind == "hard") c.hard = 1;
            else if (e.kind == "soft") c.soft = 1;
            else if (e.kind == "block") c.block = 1;
            break;
        case event_type::complaint:
            // An opt-out (a mailto unsubscribe, ARF feedback-type opt-out)
            // is a request, not a complaint about the mail.
            if (e.reply.size() >= 7 && e.reply.compare(e.reply.size() - 7, 7, "opt-out") == 0) return;
            c.complaints = 1;
            break;
        default:
            return;
    }
    auto bucket = cfg.bucket_of(e.time_ms);
    if (cfg.by_campaign && !e.campaign.empty()) out.push_back({e.campaign, bucket, c});
    if (cfg.by_sender_domain && !sender_domain.empty()) out.push_back({"@" + sender_domain, bucket, c});
}

std::string_view to_string(state s) {
    switch (s) {
        case state::ok: return "ok";
        case state::warned: return "warned";
        case state::paused: return "paused";
    }
    return "ok";
}

std::optional<state> parse_state(std::string_view s) {
    for (auto st : {state::ok, state::warned, state::paused})
        if (to_string(st) == s) return st;
    return std::nullopt;
}

events::event transition_event(const transition& t, const counts& window, std::int64_t now_ms) {
    events::event e;
    e.type = t.to == state::paused   ? events::event_type::campaign_paused
             : t.to == state::warned ? events::event_type::campaign_warned
                                     : events::event_type::campaign_resumed;
    e.time_ms = now_ms;
    e.campaign = t.key;
    e.scope = !t.key.empty() && t.key.front() == '@' ? "sender_domain" : "campaign";
    e.reason = t.reason;
    e.attempted = window.attempted;
    e.hard = window.hard;
    e.complaints = window.complaints;
    return e;
}

std::string scope_name(const std::string& key) {
    return !key.empty() && key.front() == '@' ? "sender domain " + key.substr(1) : "campaign " + key;
}

std::string paused_text(const std::string& key, const scope_state& s) {
    return scope_name(key) + " paused: " + s.reason;
}

namespace {
// 1204 -> "1,204"
std::string thousands(std::int64_t n) {
    auto s = std::to_string(n);
    for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
    return s;
}
std::string rate_text(const char* what, double rate, std::int64_t of) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s rate %.1f%% of ", what, rate * 100.0);
    return buf + thousands(of);
}
}  // namespace

void monitor::load_counts(const std::string& key, std::int64_t bucket, const counts& c) {
    std::lock_guard lk(mu_);
    buckets_[key][bucket] += c;
}

void monitor::load_state(const std::string& key, const scope_state& s) {
    std::lock_guard lk(mu_);
    states_[key] = s;
}

counts monitor::window_locked(const std::string& key, std::int64_t now_ms) const {
    counts sum;
    auto it = buckets_.find(key);
    if (it == buckets_.end()) return sum;
    for (auto b = it->second.lower_bound(cfg_.window_start(now_ms)); b != it->second.end(); ++b) sum += b->second;
    return sum;
}

std::optional<transition> monitor::judge(const std::string& key, std::int64_t now_ms) {
    auto& st = states_[key];
    if (st.st == state::paused) return std::nullopt;  // only a resume ends a pause
    counts c;
    if (st.baseline_bucket == 0) {
        c = window_locked(key, now_ms);
    } else {
        auto from = cfg_.window_start(now_ms);
        if (auto it = buckets_.find(key); it != buckets_.end())
            for (auto b = it->second.lower_bound(std::max(from, st.baseline_bucket)); b != it->second.end(); ++b)
                c += b->first == st.baseline_bucket ? b->second - st.baseline : b->second;
    }
    if (c.attempted < static_cast<std::int64_t>(cfg_.min_messages)) return std::nullopt;
    std::string why;
    state to = state::ok;
    if (c.hard_rate() >= cfg_.hard_rate_pause) to = state::paused, why = rate_text("hard bounce", c.hard_rate(), c.attempted);
    else if (c.complaint_rate() >= cfg_.complaint_rate_pause)
        to = state::paused, why = rate_text("complaint", c.complaint_rate(), c.attempted);
    else if (c.hard_rate() >= cfg_.hard_rate_warn) to = state::warned, why = rate_text("hard bounce", c.hard_rate(), c.attempted);
    else if (c.complaint_rate() >= cfg_.complaint_rate_warn)
        to = state::warned, why = rate_text("complaint", c.complaint_rate(), c.attempted);
    if (to == state::ok || to == st.st) return std::nullopt;  // a warning is given once per trip
    st.st = to;
    st.reason = why;
    st.since_ms = now_ms;
    st.manual = false;
    return transition{key, to, why};
}

std::vector<transition> monitor::apply(const std::vector<delta>& ds, std::int64_t now_ms) {
    std::lock_guard lk(mu_);
    std::vector<std::string> touched;
    for (auto& d : ds) {
        buckets_[d.key][d.bucket] += d.c;
        if (touched.empty() || touched.back() != d.key) touched.push_back(d.key);
    }
    // Old buckets go (the window slides).
    auto oldest = now_ms - cfg_.window_ms - cfg_.bucket_ms();
    for (auto& key : touched) {
        auto& m = buckets_[key];
        m.erase(m.begin(), m.lower_bound(oldest));
    }
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    std::vector<transition> out;
    for (auto& key : touched)
        if (auto t = judge(key, now_ms)) out.push_back(*t);
    return out;
}

std::optional<transition> monitor::pause(const std::string& key, std::int64_t now_ms) {
    std::lock_guard lk(mu_);
    auto& st = states_[key];
    if (st.st == state::paused) return std::nullopt;
    st.st = state::paused;
    st.reason = "paused by an operator";
    st.since_ms = now_ms;
    st.manual = true;
    return transition{key, state::paused, st.reason};
}

std::optional<transition> monitor::resume(const std::string& key, std::int64_t now_ms) {
    std::lock_guard lk(mu_);
    auto it = states_.find(key);
    if (it == states_.end() || it->second.st == state::ok) return std::nullopt;
    auto& st = it->second;
    st.st = state::ok;
    st.reason = "resumed";
    st.since_ms = now_ms;
    st.manual = false;
    // Judged afresh from here: the resume's bucket as it is now is the baseline.
    st.baseline_bucket = cfg_.bucket_of(now_ms);
    st.baseline = {};
    if (auto it = buckets_.find(key); it != buckets_.end())
        if (auto b = it->second.find(st.baseline_bucket); b != it->second.end()) st.baseline = b->second;
    return transition{key, state::ok, "resumed"};
}

std::optional<std::string> monitor::paused(const std::string& campaign, const std::string& sender_domain) const {
    std::lock_guard lk(mu_);
    if (states_.empty()) return std::nullopt;
    for (auto key : {campaign, sender_domain.empty() ? std::string() : "@" + sender_domain}) {
        if (key.empty()) continue;
        auto it = states_.find(key);
        if (it != states_.end() && it->second.st == state::paused) return paused_text(key, it->second);
    }
    return std::nullopt;
}

counts monitor::window(const std::string& key, std::int64_t now_ms) const {
    std::lock_guard lk(mu_);
    return window_locked(key, now_ms);
}

scope_state monitor::state_of(const std::string& key) const {
    std::lock_guard lk(mu_);
    auto it = states_.find(key);
    return it == states_.end() ? scope_state{} : it->second;
}

std::vector<std::string> monitor::keys(std::int64_t now_ms) const {
    std::lock_guard lk(mu_);
    std::set<std::string> out;
    for (auto& [k, m] : buckets_)
        if (!window_locked(k, now_ms).empty()) out.insert(k);
    for (auto& [k, s] : states_)
        if (s.st != state::ok) out.insert(k);
    return {out.begin(), out.end()};
}

}  // namespace ricochet::breaker
