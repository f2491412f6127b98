// pg_storage — the recipient state's tables in PostgreSQL (server.state =
// "postgresql://user:pass@host:port/db"), shared by every node. The same
// tables as state/sqlite_storage.hpp, plus:
//
//   ricochet_schema     one row per schema version applied (and when, by whom)
//   nodes               the nodes sharing the database: name -> number (1-63),
//                       which goes into their queue ids so two nodes never
//                       make the same one
//   ricochet_imports    the SQLite files `ricochetctl state migrate` moved in
//
// and two triggers that NOTIFY channel "ricochet_suppression" when an
// address becomes (or stops being) held or unsubscribed and when an imported
// suppression comes or goes: state/pg_listener.hpp turns those into the
// RCPT check's list on every node.
//
// Writes that return nothing (decisions, messages and their recipients,
// hourly counts) are gathered and sent as multi-row statements before the
// next statement that reads, and at commit: a batch of 500 queued
// recipients is a handful of round trips, not a thousand.
//
// A lost connection fails the call (the recorder keeps the batch in its
// journal) and is re-established on a later call, no sooner than the
// back-off allows (0.5 s doubling to 10 s). Not thread-safe
// (recipient_state serialises).
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "state/storage.hpp"

namespace ricochet::state {
namespace pg {
class connection;
}

class pg_storage final : public storage {
public:
    // readonly: for ricochetctl's readers (nothing created or migrated).
    static std::unique_ptr<pg_storage> open(const std::string& url, bool readonly, std::string& error);
    ~pg_storage() override;

    // The schema version the database is at, and this program's.
    int version() const { return version_; }
    static int latest_version();

    bool begin(std::string& error) override;
    bool commit(std::string& error) override;
    void rollback() override;
    std::optional<bounce::address_record> load_recipient(const std::string& address, std::string& error) override;
    bool save_recipient(const bounce::address_record& r, std::int64_t now_ms, std::string& error) override;
    std::vector<bounce::address_record> recipients_with(bounce::address_status s, const std::string& after = "",
                                                        std::size_t limit = 0) override;
    bool lock_addresses(const std::vector<std::string>& addresses, std::string& error) override;
    bool keep_batch_changes(const std::string& token, const std::string& lines, std::string& error) override;
    std::string batch_changes(const std::string& token) override;
    std::optional<bool> claim_batch(const std::string& token, std::int64_t now_ms, std::string& error) override;
    bool forget_batches(const std::vector<std::string>& tokens, std::string& error) override;
    bool add_decisions(const std::vector<const events::event*>& evs, std::string& error) override;
    std::vector<events::event> history(const std::string& address, int limit) override;
    std::vector<stats_row> stats(const std::string& group_by, const std::string& campaign, const std::string& domain,
                                 std::int64_t since_ms) override;
    std::vector<series_row> series(std::int64_t bucket_ms, const std::string& group_by, const std::string& campaign,
                                   const std::string& domain, std::int64_t since_ms) override;
    std::vector<reply_row> replies(const std::string& domain, std::int64_t since_ms, std::size_t limit) override;
    bool add_message(const std::string& queue_id, const std::string& campaign, const std::string& sender,
                     std::string& error) override;
    bool add_message_recipient(const std::string& queue_id, int index, const std::string& address,
                               std::string& error) override;
    bool mark_message_bounced(const std::string& queue_id, const std::string& campaign, std::string& error) override;
    std::optional<bool> message_bounced(const std::string& queue_id) override;
    std::optional<std::string> recipient_of(const std::string& queue_id, int index) override;
    std::string campaign_of(const std::string& queue_id) override;
    std::optional<std::string> sender_of(const std::string& queue_id) override;
    std::optional<bool> add_final_failure(const std::string& queue_id, const std::string& address,
                                          std::string& error) override;
    bool final_failure_known(const std::string& queue_id, const std::string& address) override;
    bool add_suppressions(const std::vector<suppression_entry>& es, std::string& error) override;
    std::optional<bool> remove_suppression(const std::string& entry, std::string& error) override;
    std::vector<suppression_entry> suppressions(const std::string& after, std::size_t limit) override;
    bool prune(std::int64_t before_ms, const std::string& id_before, std::size_t batch, prune_counts& out,
               std::string& error) override;
    void reclaim_space() override;
    bool add_window_counts(const std::vector<breaker::delta>& ds, std::string& error) override;
    std::vector<breaker::delta> window_counts(std::int64_t since_bucket) override;
    bool prune_window_counts(std::int64_t before_bucket, std::string& error) override;
    bool save_scope(const std::string& key, const breaker::scope_state& s, std::string& error) override;
    std::vector<std::pair<std::string, breaker::scope_state>> scopes() override;
    int node_number(const std::string& name, std::string& error) override;
    std::vector<std::string> nodes_with_another_key(const std::string& name, const std::string& key,
                                                    std::string& error) override;
    std::string health() override;

private:
    explicit pg_storage(std::string url);
    // The connection, re-established when lost (and the back-off allows);
    // null with `error` set when there is none. Sends what is gathered first.
    pg::connection* conn(std::string& error);
    pg::connection* conn() {
        std::string ignored;
        return conn(ignored);
    }
    bool flush(std::string& error, bool counters = false);  // the gathered writes
    bool lost(std::string& error, const std::string& what);  // a failed statement: note a dead connection

    std::string url_;
    std::unique_ptr<pg::connection> c_;
    int version_ = 0;
    bool in_tx_ = false;
    std::chrono::steady_clock::time_point next_try_{};
    std::chrono::milliseconds backoff_{0};
    std::string down_;  // why the last connection attempt failed ("" = connected)
    // Gathered writes, flat: 10 values per decision, 3 per message, 3 per message recipient.
    std::vector<std::string> decisions_, messages_, message_rcpts_;
    std::vector<std::string> hourly_, replies_;  // 11 and 6 values per row, summed per key already
};

}  // namespace ricochet::state
