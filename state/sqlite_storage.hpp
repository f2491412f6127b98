// sqlite_storage — the recipient state's tables in SQLite (server.state =
// "sqlite:PATH", the default for one node). WAL, synchronous=NORMAL: a power
// loss may lose the batches committed since the last sync(), never corrupt
// the file; the daemon syncs before it acknowledges a report, an
// unsubscribe or an operator's change, and about once a second otherwise.
//
//   recipients          one row per address: status, bounce count, first/last
//                       bounce, last reply and its reading
//   decisions           every decision: the history of an address, `stats`
//   messages            per queue id: campaign, envelope sender, bounced flag
//   message_recipients  (queue id, index) -> address: what a VERP token names
//   final_failures      (queue id, address) already counted
//   daily_totals        per day, campaign and domain: the stats of decisions retention deleted
//
// Tables and queries only: the rules are state/recipient_state.hpp. Every
// prepare and step is checked; a failed write returns false with SQLite's
// message. Not thread-safe (recipient_state serialises).
#pragma once
#include <mutex>

#include "base/unique_fd.hpp"
#include <memory>
#include <string>

#include "state/storage.hpp"

struct sqlite3;

namespace ricochet::state {
namespace detail {
class stmt;
}

class sqlite_storage final : public storage {
public:
    // readonly: for ricochetctl's readers (no schema created, nothing written).
    static std::unique_ptr<sqlite_storage> open(const std::string& path, bool readonly, std::string& error);
    ~sqlite_storage() override;

    bool begin(std::string& error) override;
    bool commit(std::string& error) override;
    void rollback() override;
    std::optional<bounce::address_record> load_recipient(const std::string& address, std::string& error) override;
    bool save_recipient(const bounce::address_record& r, std::int64_t now_ms, std::string& error) override;
    std::vector<bounce::address_record> recipients_with(bounce::address_status s, const std::string& after = "",
                                                        std::size_t limit = 0) override;
    std::optional<bool> claim_batch(const std::string& token, std::int64_t now_ms, std::string& error) override;
    bool forget_batches(const std::vector<std::string>& tokens, std::string& error) override;
    bool keep_batch_changes(const std::string& token, const std::string& lines, std::string& error) override;
    std::string batch_changes(const std::string& token) override;
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

    // Thread-safe, and safe beside the other calls (it touches only the
    // WAL file): the state store's lock is not needed for it.
    bool sync(std::string& error) override;
    std::string health() override;

private:
    sqlite_storage();
    std::string path_;
    std::mutex sync_mu_;
    base::unique_fd wal_fd_;  // under sync_mu_
    bool dir_synced_ = false;
    std::string sync_failed_;  // why the last failed sync failed; for good
    struct db_closer {
        void operator()(sqlite3* db) const;
    };
    struct statements;  // prepared once per connection
    // A cached statement, reset when the use ends.
    struct stmt_use {
        detail::stmt* s;
        explicit stmt_use(detail::stmt* p) : s(p) {}
        stmt_use(const stmt_use&) = delete;
        ~stmt_use();
        detail::stmt& operator*() const { return *s; }
    };
    stmt_use prepared(const char* sql);
    bool add_hourly(const std::vector<const events::event*>& evs, std::string& error);

    std::unique_ptr<sqlite3, db_closer> db_;
    int version_ = 0;  // the schema's (PRAGMA user_version)
    std::unique_ptr<statements> cache_;  // after db_: finalized before it is closed
};

}  // namespace ricochet::state
