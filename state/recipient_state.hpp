// recipient_state — the rules of PRODUCT.md "Recipient status" over any
// storage backend: what each decision does to an address, and what an
// operator may do to one. The rules are here, once; a backend (SQLite
// today, PostgreSQL later) only keeps tables and answers queries.
//
//   - every queued/delivered/deferred/bounced/expired/complaint decision is
//     kept (the history of an address and the source of `stats`);
//   - a message's final hard or soft failure counts one bounce, once: an
//     in-session 5xx and a DSN for the same message, or a DSN sent twice,
//     count once (bounce/recipient_status.hpp has the counting rules);
//   - a complaint makes the address unsubscribed;
//   - clear and engage make it active with the count started over, but
//     engage (an open or a click) never undoes an unsubscribe;
//   - every change of status becomes a `status_changed` event.
//
// Thread-safe: one mutex around every call (the recorder's thread writes,
// the bounce intake and the control socket read).
#pragma once
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bounce/recipient_status.hpp"
#include "events/event.hpp"
#include "state/storage.hpp"

namespace ricochet::state {

class recipient_state {
public:
    recipient_state(std::unique_ptr<storage> s, bounce::status_policy p);

    // Records a batch of events in one transaction and applies the rules.
    // Returns the status_changed events; on failure nothing is written and
    // `error` is set (the caller keeps the batch in its journal).
    // With the breaker on (set_breaker), each outcome's window counts are
    // written in the same transaction and returned in `counted`.
    //
    // tokens (optional, one per event): the batch each event came in. Each
    // distinct non-empty token is claimed in the transaction; the events
    // of a token claimed before (a batch whose commit went through though
    // its answer was lost, replayed from the journal) are left out, so
    // nothing counts twice, and the status changes that batch made are
    // returned (kept with its token: the attempt published none). Their
    // breaker counts are in the store but not in `counted`. `skipped`: how
    // many events were left out so.
    std::vector<events::event> record(const std::vector<events::event>& evs, std::string& error,
                                      std::vector<breaker::delta>* counted = nullptr,
                                      const std::vector<std::string>* tokens = nullptr,
                                      std::size_t* skipped = nullptr);
    // Batch tokens no replay can bring back (record() answered for them,
    // or their journal was emptied after): dropped from the store in the
    // next batch's transaction, so the tokens kept are only those a
    // journal may still hold.
    void forget_batches(const std::vector<std::string>& tokens);
    void set_breaker(const breaker::config& c) { breaker_ = c; }
    // The breaker's counts since a bucket and every scope's state (at start),
    // and a scope's new state.
    std::vector<breaker::delta> window_counts(std::int64_t since_bucket) const;
    std::vector<std::pair<std::string, breaker::scope_state>> scopes() const;
    bool save_scope(const std::string& key, const breaker::scope_state& s, std::string& error);
    bool prune_window_counts(std::int64_t before_bucket, std::string& error);
    // Retention: one batch (a transaction) of storage::prune. Recipients'
    // statuses, suppressions and the breaker's counts stay; stats keep
    // their totals (daily). False with `error` when it could not write.
    bool prune(std::int64_t before_ms, const std::string& id_before, std::size_t batch, prune_counts& out,
               std::string& error);
    void reclaim_space();
    // A breaker monitor filled from the store: the window's counts at now
    // and every scope's state (the daemon at start, ricochetctl, the views).
    void load_breaker(breaker::monitor& m, std::int64_t now_ms) const;

    // clear / engage (-> active) and unsubscribe, with an `admin` decision;
    // also the recipient's own unsubscribe (why "one-click" or "mailto",
    // with the campaign the token names). Adds a status_changed event (and
    // an unsubscribed one) to `changes` when the status moved. False
    // with `error` set when refused (engage on an unsubscribed address) or
    // not written.
    bool set_status(const std::string& address, bounce::address_status s, const std::string& why,
                    std::int64_t now_ms, std::vector<events::event>& changes, std::string& error,
                    const std::string& campaign = "");

    // storage::node_number and storage::health.
    int node_number(const std::string& name, std::string& error);
    std::vector<std::string> nodes_with_another_key(const std::string& name, const std::string& key, std::string& error);
    std::string health() const;
    // storage::sync: what is recorded survives a power loss.
    bool sync(std::string& error);

    std::optional<bounce::address_record> get(const std::string& address) const;
    std::vector<events::event> history(const std::string& address, int limit = 50) const;
    // Imported suppressions, written 10,000 to a transaction so that a big
    // import never holds the store (and the recorder behind it) for long.
    // Returns how many were written; `error` set when a chunk failed (the
    // chunks before it stay).
    std::size_t add_suppressions(const std::vector<suppression_entry>& es, std::string& error);
    std::optional<bool> remove_suppression(const std::string& entry, std::string& error);
    std::vector<suppression_entry> suppressions(const std::string& after = "", std::size_t limit = 0) const;

    std::vector<bounce::address_record> list(bounce::address_status s, const std::string& after = "",
                                             std::size_t limit = 0) const;
    std::optional<bool> message_bounced(const std::string& queue_id) const;
    // Who a VERP token (queue id, recipient index) names, and the campaign
    // and sender, long after the message left the spool.
    std::optional<std::string> recipient_of(const std::string& queue_id, int index) const;
    std::string campaign_of(const std::string& queue_id) const;
    std::optional<std::string> sender_of(const std::string& queue_id) const;
    // Whether a final failure of this message to this recipient is counted already.
    bool final_failure_known(const std::string& queue_id, const std::string& recipient) const;
    // group_by: "campaign" or "domain"; empty filters mean all.
    std::vector<stats_row> stats(const std::string& group_by, const std::string& campaign, const std::string& domain,
                                 std::int64_t since_ms) const;
    // storage::series and storage::replies (the dashboard's charts).
    std::vector<series_row> series(std::int64_t bucket_ms, const std::string& group_by, const std::string& campaign,
                                   const std::string& domain, std::int64_t since_ms) const;
    std::vector<reply_row> replies(const std::string& domain, std::int64_t since_ms, std::size_t limit) const;

private:
    bool apply(const events::event& e, std::vector<events::event>& changes, std::string& error);

    mutable std::mutex mu_;
    std::unique_ptr<storage> store_;
    bounce::status_policy policy_;
    std::optional<breaker::config> breaker_;
    std::vector<std::string> forget_;  // tokens for the next batch to drop
};

// Opens the backend server.state names by its scheme: "sqlite:PATH" (the
// default). Any other scheme is an error that names it. readonly: for
// ricochetctl's readers (no schema is created).
std::unique_ptr<recipient_state> open_state(const std::string& url, bounce::status_policy policy, bool readonly,
                                            std::string& error);

// Whether an event is kept as a decision row (history, stats).
bool kept_as_decision(const events::event& e);

}  // namespace ricochet::state
