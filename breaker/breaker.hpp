// breaker — PRODUCT.md "Campaign circuit breaker": counters per campaign and
// per sender domain over a sliding window of time buckets, fed by every
// outcome (in-session replies, DSNs days later, ARF complaints), and the
// thresholds that warn and pause. Pure: no I/O; the state store keeps the
// buckets and each scope's state (state/), the daemon acts on transitions.
//
// A scope's key is its campaign ID, or "@domain" for a sender domain (the
// envelope sender's). What counts:
//   - attempted: a recipient's final outcome in session (delivered, bounced,
//     expired); a bounce reported later by a DSN does not count again (the
//     attempt did, as delivered);
//   - hard / soft / block: final failures by kind, in session or later;
//   - complaints: ARF/JMRP complaints (one-click unsubscribes are not).
// Rates are hard / attempted and complaints / attempted, judged only once
// attempted >= min_messages. After a resume the trip starts over: the
// counts at the resume are the baseline, and only what comes after is
// judged (the counters themselves are kept and shown).
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "events/event.hpp"

namespace ricochet::breaker {

struct config {
    std::int64_t window_ms = 24LL * 3600 * 1000;
    std::uint64_t min_messages = 500;
    double hard_rate_warn = 0.02, hard_rate_pause = 0.05;
    double complaint_rate_warn = 0.001, complaint_rate_pause = 0.003;
    bool by_campaign = true, by_sender_domain = true;
    // The window is kept in 24 buckets (at least a minute each).
    std::int64_t bucket_ms() const { return std::max<std::int64_t>(60000, window_ms / 24); }
    // The start of the bucket that holds t; the first bucket of the window at now.
    std::int64_t bucket_of(std::int64_t t) const { return t - t % bucket_ms(); }
    std::int64_t window_start(std::int64_t now_ms) const { return bucket_of(now_ms - window_ms); }
};

struct counts {
    std::int64_t attempted = 0, delivered = 0, hard = 0, soft = 0, block = 0, complaints = 0;
    counts& operator+=(const counts& o);
    counts operator-(const counts& o) const;  // clamped at 0
    bool empty() const { return !attempted && !delivered && !hard && !soft && !block && !complaints; }
    double hard_rate() const { return attempted ? double(hard) / double(attempted) : 0.0; }
    double complaint_rate() const { return attempted ? double(complaints) / double(attempted) : 0.0; }
};

// What one event adds to one scope's bucket.
struct delta {
    std::string key;
    std::int64_t bucket = 0;  // start of the bucket, ms
    counts c;
};

// The deltas of one event. sender_domain: of the message's envelope sender
// ("" when unknown: no sender scope then).
void count_event(const events::event& e, const std::string& sender_domain, const config& cfg, std::vector<delta>& out);

enum class state { ok, warned, paused };
std::string_view to_string(state s);
std::optional<state> parse_state(std::string_view s);

struct scope_state {
    state st = state::ok;
    std::string reason;      // "hard bounce rate 5.3% of 1,204", "paused by an operator"
    std::int64_t since_ms = 0;
    bool manual = false;
    // A resume judges afresh: only buckets from the resume's on count, less
    // what the resume's own bucket held at the resume (as the window slides
    // past that bucket, it no longer matters).
    std::int64_t baseline_bucket = 0;
    counts baseline;
};

// A change of a scope's state, for an event and for the daemon to act on.
struct transition {
    std::string key;
    state to = state::ok;
    std::string reason;
};

// The campaign_warned / campaign_paused / campaign_resumed event of a
// transition, with the window's figures (the daemon's and ricochetctl's).
events::event transition_event(const transition& t, const counts& window, std::int64_t now_ms);

// "campaign spring" / "sender domain shop.example".
std::string scope_name(const std::string& key);
// "campaign spring paused: hard bounce rate 5.3% of 1,204" (the 451 and 409 text).
std::string paused_text(const std::string& key, const scope_state& s);

class monitor {
public:
    explicit monitor(config cfg) : cfg_(cfg) {}
    const config& cfg() const { return cfg_; }

    // At start, from the state store.
    void load_counts(const std::string& key, std::int64_t bucket, const counts& c);
    void load_state(const std::string& key, const scope_state& s);

    // Adds the deltas, then judges every scope they touched.
    std::vector<transition> apply(const std::vector<delta>& ds, std::int64_t now_ms);
    // An operator's pause and resume (resume also ends a trip).
    std::optional<transition> pause(const std::string& key, std::int64_t now_ms);
    std::optional<transition> resume(const std::string& key, std::int64_t now_ms);

    // The pause answer for a message of this campaign or sender domain; nullopt: send.
    std::optional<std::string> paused(const std::string& campaign, const std::string& sender_domain) const;
    counts window(const std::string& key, std::int64_t now_ms) const;
    scope_state state_of(const std::string& key) const;
    // Every scope with counts in the window or a state other than ok.
    std::vector<std::string> keys(std::int64_t now_ms) const;

private:
    counts window_locked(const std::string& key, std::int64_t now_ms) const;
    std::optional<transition> judge(const std::string& key, std::int64_t now_ms);

    config cfg_;
    mutable std::mutex mu_;
    std::map<std::string, std::map<std::int64_t, counts>> buckets_;  // key -> bucket start -> counts
    std::map<std::string, scope_state> states_;
};

}  // namespace ricochet::breaker
