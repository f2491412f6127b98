// storage — what the recipient state needs from a database: tables and
// queries, no rules. SQLite implements it (state/sqlite_storage.hpp);
// PostgreSQL will. Every rule about what a decision does to an address
// (a complaint unsubscribes, a message's failure counts once, engage cannot
// undo an unsubscribe) is in state/recipient_state.hpp, above this, so a
// second backend cannot get them wrong.
//
// Errors: a write that fails returns false with `error` set; the caller
// rolls back and keeps the decisions in its journal. Queries that fail
// return "nothing found" (they are for display and matching, and are
// retried by their caller's next request). Not thread-safe: the service
// above serialises every call.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bounce/recipient_status.hpp"
#include "breaker/breaker.hpp"
#include "events/event.hpp"

namespace ricochet::state {

// An imported suppression: a lower-case address or "@domain".
struct suppression_entry {
    std::string entry, reason;
    std::int64_t created_ms = 0;
};

// What one pruning step removed (state retention).
struct prune_counts {
    std::int64_t decisions = 0;       // rows folded into the daily totals and deleted
    std::int64_t messages = 0;        // messages (with their recipients and final failures) deleted
    bool more = false;                // the batch limit was reached: call again
    bool busy = false;                // another node is pruning the shared tables: nothing done
};

struct stats_row {
    std::string key;  // campaign or domain
    std::int64_t sent = 0, delivered = 0, deferred = 0, hard = 0, soft = 0, block = 0, technical = 0;
    std::int64_t complaints = 0;
    double bounce_rate() const { return sent ? double(hard + soft) / double(sent) : 0.0; }
};

// One point of a time series (the dashboard's charts): the counts of the
// hour or day starting at start_ms, for one key (campaign, domain, or ""
// for everything). `deferred` counts deferrals (attempts), not recipients.
struct series_row {
    std::int64_t start_ms = 0;
    stats_row counts;
};

// How often a reply category was the outcome, per destination domain.
struct reply_row {
    std::string domain, outcome, kind, category;  // outcome: deferred, bounced or expired
    std::int64_t count = 0;
};

class storage {
public:
    virtual ~storage() = default;

    // One transaction around a batch (BEGIN IMMEDIATE / COMMIT / ROLLBACK).
    virtual bool begin(std::string& error) = 0;
    virtual bool commit(std::string& error) = 0;
    virtual void rollback() = 0;

    // recipients: one row per address (lower case). nullopt: no row, or the
    // read failed (then `error` is set: a rule must not start the address
    // afresh over a record it could not read).
    virtual std::optional<bounce::address_record> load_recipient(const std::string& address, std::string& error) = 0;
    virtual bool save_recipient(const bounce::address_record& r, std::int64_t now_ms, std::string& error) = 0;
    // In address order; after: only addresses sorting after it (a cursor);
    // limit 0: all.
    virtual std::vector<bounce::address_record> recipients_with(bounce::address_status s, const std::string& after = "",
                                                                std::size_t limit = 0) = 0;

    // Inside a transaction, before the batch reads any of these addresses:
    // hold them for the rest of it. PostgreSQL takes an advisory lock per
    // address, all at once and in one order, so two nodes applying bounces
    // to the same addresses wait for each other instead of deadlocking.
    // One writer (SQLite, memory): nothing to do.
    virtual bool lock_addresses(const std::vector<std::string>& addresses, std::string& error) {
        (void)addresses, (void)error;
        return true;
    }

    // applied_batches: the token of each batch recorded, until the caller
    // knows no journal holds the batch (forget_batches). Inside
    // the batch's transaction: true when the token is new (and now kept),
    // false when a batch with it was committed before (a commit whose answer
    // was lost, then replayed from the journal: it must not count twice),
    // nullopt with `error` when the store failed.
    virtual std::optional<bool> claim_batch(const std::string& token, std::int64_t now_ms, std::string& error) = 0;
    // The status changes a batch made (event log lines), kept with its
    // token: a replay that finds the batch recorded publishes them then,
    // since the attempt whose answer was lost published nothing.
    virtual bool keep_batch_changes(const std::string& token, const std::string& lines, std::string& error) = 0;
    virtual std::string batch_changes(const std::string& token) = 0;
    // Drops tokens no replay can bring back (their batches committed and
    // answered, or replayed and their journal emptied), inside the caller's
    // transaction.
    virtual bool forget_batches(const std::vector<std::string>& tokens, std::string& error) = 0;

    // decisions: the history of every address and the source of `stats`.
    virtual bool add_decisions(const std::vector<const events::event*>& evs, std::string& error) = 0;
    virtual std::vector<events::event> history(const std::string& address, int limit) = 0;
    virtual std::vector<stats_row> stats(const std::string& group_by, const std::string& campaign,
                                         const std::string& domain, std::int64_t since_ms) = 0;
    // Counts per hour (kept as long as the decisions) summed into buckets
    // of bucket_ms (an hour or a day, aligned on UTC), from since_ms on,
    // per group ("campaign", "domain", or "" for one series). Only buckets
    // with something in them.
    virtual std::vector<series_row> series(std::int64_t bucket_ms, const std::string& group_by,
                                           const std::string& campaign, const std::string& domain,
                                           std::int64_t since_ms) = 0;
    // The commonest outcomes by reply category since since_ms, per
    // destination domain ("" = all), most frequent first, at most limit.
    virtual std::vector<reply_row> replies(const std::string& domain, std::int64_t since_ms, std::size_t limit) = 0;

    // messages: per queue id its campaign, envelope sender, recipients by
    // index (VERP tokens name them) and whether it bounced.
    virtual bool add_message(const std::string& queue_id, const std::string& campaign, const std::string& sender,
                             std::string& error) = 0;
    virtual bool add_message_recipient(const std::string& queue_id, int index, const std::string& address,
                                       std::string& error) = 0;
    virtual bool mark_message_bounced(const std::string& queue_id, const std::string& campaign, std::string& error) = 0;
    virtual std::optional<bool> message_bounced(const std::string& queue_id) = 0;
    virtual std::optional<std::string> recipient_of(const std::string& queue_id, int index) = 0;
    virtual std::string campaign_of(const std::string& queue_id) = 0;
    virtual std::optional<std::string> sender_of(const std::string& queue_id) = 0;

    // final_failures: (queue id, address) pairs already counted. Returns
    // true when the pair is new (and now recorded).
    virtual std::optional<bool> add_final_failure(const std::string& queue_id, const std::string& address,
                                                  std::string& error) = 0;
    virtual bool final_failure_known(const std::string& queue_id, const std::string& address) = 0;

    // suppressions: imported entries (addresses and "@domain"), beside the
    // recipients' own statuses. add: insert or replace, inside the caller's
    // transaction; remove: true when it was there; list: in entry order
    // after `after`, limit 0 = all.
    virtual bool add_suppressions(const std::vector<suppression_entry>& es, std::string& error) = 0;
    virtual std::optional<bool> remove_suppression(const std::string& entry, std::string& error) = 0;
    virtual std::vector<suppression_entry> suppressions(const std::string& after, std::size_t limit) = 0;

    // breaker: counts per scope and time bucket (added to, inside the
    // caller's transaction), and each scope's state.
    virtual bool add_window_counts(const std::vector<breaker::delta>& ds, std::string& error) = 0;
    virtual std::vector<breaker::delta> window_counts(std::int64_t since_bucket) = 0;
    virtual bool prune_window_counts(std::int64_t before_bucket, std::string& error) = 0;  // buckets past the window
    virtual bool save_scope(const std::string& key, const breaker::scope_state& s, std::string& error) = 0;
    virtual std::vector<std::pair<std::string, breaker::scope_state>> scopes() = 0;

    // Retention, inside the caller's transaction: at most `batch` decisions
    // older than before_ms are folded into per-day totals (by campaign and
    // domain, which `stats` adds to what is left) and deleted; messages
    // whose queue id sorts before id_before go with their recipients and
    // final failures; the hourly counts of series() older than before_ms
    // go at once; batch tokens a week older than the newest go too (those
    // forget_batches missed: a process that stopped before its next batch). Recipients,
    // suppressions and the breaker's counts are never touched here.
    virtual bool prune(std::int64_t before_ms, const std::string& id_before, std::size_t batch, prune_counts& out,
                       std::string& error) = 0;
    // Gives freed pages back to the file system (outside a transaction).
    virtual void reclaim_space() = 0;

    // Several nodes on one database: this node's number (1-63) by its name
    // (host and spool), registered on first use; it goes into the node's
    // queue ids so that no two nodes make the same id. 0: one node only
    // (SQLite), ids as they always were; -1 with `error`: not now.
    virtual int node_number(const std::string& /*name*/, std::string& /*error*/) { return 0; }
    // Records this node's VERP key fingerprint and names the other nodes
    // whose fingerprint differs ("node 2 (mx2:/var/lib/ricochet/spool)"): a
    // DSN for their messages arriving here would be refused. One node: none.
    virtual std::vector<std::string> nodes_with_another_key(const std::string& /*name*/, const std::string& /*key*/,
                                                            std::string& /*error*/) {
        return {};
    }
    // "" while the store answers; else why not (a lost server connection),
    // for /healthz.
    virtual std::string health() { return {}; }
    // Makes every transaction committed so far survive a power loss (the
    // store's own commits may not: SQLite's WAL with synchronous=NORMAL).
    // False with a reason when it cannot. Thread-safe: it may be called
    // beside any other call.
    virtual bool sync(std::string& /*error*/) { return true; }
};

}  // namespace ricochet::state
