// views — what ricochetctl and the HTTP API both show, computed once: the
// queue (summary by domain, a filtered listing, one message), a recipient
// with its history, recipients by status (cursor paging), and stats. Each
// returns the JSON both print (ricochetctl --json prints it as it is; the
// API returns it), so the two can never disagree. Reading only: every change
// goes through daemon/control (the control socket and the API alike).
//
// Errors: a view that cannot answer returns nullopt and sets `error` to one
// line ("<id>: not in the queue"); the caller maps it to exit code 1 or 404.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "bounce/recipient_status.hpp"
#include "breaker/breaker.hpp"

namespace ricochet::queue {
class spool;
struct envelope;
enum class queue_state;
}  // namespace ricochet::queue
namespace ricochet::state {
class recipient_state;
}
namespace ricochet::bounce {
class classifier;
}

namespace ricochet::views {
using nlohmann::json;

// "2026-11-30T10:26:38Z" (UTC, to the second).
std::string format_time(std::int64_t ms);

// Why a held message is held ("breaker: campaign C paused: ..."), or "":
// the campaign breaker's pause shows on each message it held.
using hold_reason_fn = std::function<std::string(const queue::envelope&)>;

struct queue_filter {
    std::string domain, campaign;
    std::optional<queue::queue_state> state;
    hold_reason_fn hold_reason;  // may be empty
};
// Every queued message matching f, in id order: [{id, state, arrival, size, sender, campaign, recipients}].
json queue_list(const queue::spool& sp, const queue_filter& f);
// {"domains": [{domain, total, active, deferred, hold[, paused_until]}], "total": {...}};
// paused: the daemon's paused destinations (domain -> until, ms).
// sp null: no spool yet (only the paused domains show).
json queue_summary(const queue::spool* sp, const std::map<std::string, std::int64_t>& paused);
// One message: envelope, headers, and each recipient's status.
std::optional<json> queue_show(const queue::spool& sp, const std::string& id, std::string& error,
                               const hold_reason_fn& hold_reason = {});
// The hold reason from the scopes the store says are paused (ricochetctl's
// view, and the API's).
hold_reason_fn breaker_hold_reason(const state::recipient_state& st);

json record_json(const bounce::address_record& r);
// The record and its history (newest first); nullopt when the address was never seen.
std::optional<json> recipient(const state::recipient_state& st, const std::string& address, int history_limit = 50);
// Recipients with a status, in address order after `after`: {"recipients": [...], "next": CURSOR|null}.
json recipients(const state::recipient_state& st, bounce::address_status s, const std::string& after, std::size_t limit);
// The circuit breaker's scopes (campaigns, "@sender.domain"), read from the
// store: the window's counts, rates, state, when and why. One scope
// (nullopt when it has nothing in the window and no state), or all.
std::optional<json> campaign(const state::recipient_state& st, const breaker::config& cfg, const std::string& key,
                             std::int64_t now_ms);
json campaigns(const state::recipient_state& st, const breaker::config& cfg, std::int64_t now_ms);

// {"by_campaign": [...], "by_domain": [...]}.
json stats(const state::recipient_state& st, const std::string& campaign, const std::string& domain, std::int64_t since_ms);

// Counts over time (the dashboard's charts): one point per hour or day
// from since_ms to now, every bucket present (zeros where nothing
// happened); by "" (one series), "campaign" or "domain" (the `top` busiest
// keys, 0 = all). nullopt with `error` for a bad bucket or `by`, or more
// than max_series_points buckets.
constexpr std::int64_t max_series_points = 2200;  // 90 days of hours
struct series_query {
    std::string bucket = "hour", by, campaign, domain;
    std::int64_t since_ms = 0;
    std::size_t top = 10;
};
std::optional<json> series(const state::recipient_state& st, const series_query& q, std::int64_t now_ms,
                           std::string& error);
// {"replies": [{domain, outcome, kind, category, count}]}: the commonest
// outcomes by reply category since since_ms, most frequent first.
json replies(const state::recipient_state& st, const std::string& domain, std::int64_t since_ms, std::size_t limit);
// How the classifier reads a reply given at a stage ("rcpt", "data", ...):
// {code, enhanced, kind, category, retry, scope, rule}; nullopt with
// `error` for an unknown stage.
std::optional<json> classify(const bounce::classifier& cl, const std::string& text, const std::string& domain,
                             const std::string& stage_name, std::string& error);

}  // namespace ricochet::views
