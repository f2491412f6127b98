// spool — the disk-backed queue. A message's state is the directory its file
// lives in (Postfix's idea): incoming/ (being written, never acknowledged),
// active/, deferred/, hold/, and corrupt/ for files recovery could not read.
// free/ keeps the files of finished messages for reuse: freeing a file's
// blocks costs a journal commit on file systems mounted with `discard`, so
// a finished file is renamed to free/ and a new message is written over it.
// See queue/README.md for the layout and the durability argument.
//
// Guarantees:
//  - submit() calls its callback with success only after the queue file and
//    its directory entry in active/ are on stable storage; many concurrent
//    submissions share the same syncfs (group commit).
//  - a file in incoming/ was never acknowledged; recover() deletes it, and
//    tells a file in active/ whose commit a crash cut off by its check line.
//  - nothing here knows SMTP or Asio: callbacks run on the committer thread.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "base/unique_fd.hpp"
#include "queue/commit_journal.hpp"
#include "queue/envelope.hpp"
#include "queue/queue_id.hpp"

namespace ricochet::queue {

enum class queue_state { active, deferred, hold };
std::string_view to_string(queue_state s);
std::optional<queue_state> parse_queue_state(std::string_view s);
inline constexpr queue_state all_states[] = {queue_state::active, queue_state::deferred, queue_state::hold};

struct spool_entry {
    std::string id;
    queue_state state;
    std::int64_t mtime_ms;  // for deferred/: when the next attempt is due
};

// What happened to one recipient so far. Kept in status/ID beside the queue
// file, one appended line per change; the last line for a recipient wins.
struct recipient_status {
    std::string status = "pending";  // pending, deferred, delivered, bounced, expired
    int attempts = 0;
    std::int64_t last_attempt_ms = 0;
    int code = 0;                    // last reply code, 0 when none (DNS, connect)
    std::string enhanced, stage, mx, reply;
    std::string kind, category, rule;  // the bounce engine's reading of the last reply

    // ("suppressed": not sent, the address became held or unsubscribed while it waited)
    bool final() const {
        return status == "delivered" || status == "bounced" || status == "expired" || status == "suppressed";
    }
};

struct recovery_report {
    std::size_t discarded_incoming = 0;  // never acknowledged: removed
    std::size_t active = 0, deferred = 0, hold = 0;
    std::size_t corrupt = 0;             // moved to corrupt/, logged
    std::vector<spool_entry> entries;    // everything left in active/, deferred/, hold/ (for the schedule)
};

class spool {
public:
    using commit_done = std::function<void(std::error_code)>;
    // Called on the committer thread after each batch is durable, before the
    // callbacks: the daemon writes the `queued` events and feeds the schedule.
    using batch_hook = std::function<void(const std::vector<const envelope*>&)>;

    // Opens the spool at dir, creating the directory tree (mode 0700) when
    // create is true. Starts the committer thread. With journal (and
    // create), group commits append to spool_dir/journal and fdatasync it
    // instead of a syncfs each (commit_journal.hpp); a checkpointer thread
    // syncs the files behind it. A journal left by an earlier run is read
    // (replayed) whatever journal says, once the lock is held.
    static std::unique_ptr<spool> open(const std::filesystem::path& dir, bool create,
                                       std::error_code& ec, bool journal = false,
                                       std::uint64_t journal_size = commit_journal::default_size);
    ~spool();
    spool(const spool&) = delete;
    spool& operator=(const spool&) = delete;

    const std::filesystem::path& dir() const { return dir_; }
    std::string new_id() { return ids_.next(); }
    // This node's number among several sharing a state store (queue_id_generator::set_node).
    void set_node(unsigned node) { ids_.set_node(node); }
    void set_batch_hook(batch_hook h) { hook_ = std::move(h); }
    // Called on the committer thread with each group commit's duration in
    // seconds and its number of messages (metrics). Set before submitting.
    using commit_observer = std::function<void(double seconds, std::size_t messages)>;
    void set_commit_observer(commit_observer f) { commit_observer_ = std::move(f); }

    // A submission session with a transaction open (MAIL accepted, its
    // message not yet submitted) holds one of these. When a batch is ready
    // and other transactions are open, the committer waits for them to
    // submit too, at most as long as its last commit took (and never more
    // than 1 ms): a message that misses a batch waits for that whole
    // commit anyway, and every extra message shares the same syncfs. A
    // session that submits ends its mark after submit().
    class transaction_mark {
    public:
        transaction_mark() = default;
        explicit transaction_mark(spool& s) : s_(&s) { s_->open_.fetch_add(1, std::memory_order_relaxed); }
        transaction_mark(transaction_mark&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
        transaction_mark& operator=(transaction_mark&& o) noexcept {
            if (this != &o) { reset(); s_ = std::exchange(o.s_, nullptr); }
            return *this;
        }
        ~transaction_mark() { reset(); }
        void reset() {
            if (s_) std::exchange(s_, nullptr)->transaction_closed();
        }
        explicit operator bool() const { return s_ != nullptr; }
    private:
        spool* s_ = nullptr;
    };
    // Transactions open now.
    int open_transactions() const { return open_.load(); }
    // Tests: gather for up to exactly `d` instead (set before submitting).
    void set_gather_wait(std::chrono::nanoseconds d) { fixed_gather_ns_.store(d.count()); }

    // Queues env + content (content = the message as it will be sent) for the
    // next group commit. env.id must come from new_id(); env.content_size is
    // set here. done(error) runs on the committer thread.
    void submit(envelope env, std::string content, commit_done done);
    // A message received in pieces because it was too large to hold in
    // memory: `before` (our Received: field), then the first spill_size
    // octets of spill (a file from open_spill()), then `content` (the rest).
    // The queue file is written and committed exactly like submit()'s; the
    // spill file is closed (and so gone) after the commit.
    void submit(envelope env, std::string before, base::unique_fd spill, std::uint64_t spill_size, std::string content,
                commit_done done);
    // An anonymous file on the spool's file system (in incoming/, O_TMPFILE,
    // or a name unlinked at once) for the part of a message being received
    // that is not kept in memory. Nothing of it remains after a crash.
    base::unique_fd open_spill(std::error_code& ec) const;

    // Stops the committer after it has finished every submit() made so far.
    void stop();

    // Exclusive lock on the spool (the daemon holds it while it runs).
    // Once it is held, the journal's records after its last checkpoint are
    // replayed (replay_journal()).
    bool try_lock(std::error_code& ec);
    // Opens the journal (and makes it, for a daemon that asked for one),
    // writes back every message of its records after its last checkpoint
    // whose file is not whole in active/, deferred/ or hold/ and that was
    // not finished since (its name in free/) or set aside (corrupt/), syncs,
    // and starts a new lap; then a daemon that asked for the journal
    // appends to it. Needs the lock (try_lock() and recover() call it);
    // once per open. Returns how many files were written back.
    std::size_t replay_journal();
    bool journaling() const { return journal_on_ && journal_; }
    // Syncs the spool and records a journal checkpoint now (tests; stop()).
    std::error_code checkpoint();
    // Tests: no checkpoints every 200 ms (a crash's image can then be taken
    // with records after the checkpoint).
    void pause_checkpoints(bool paused) { ckpt_paused_ = paused; }

    // Deletes incoming/ leftovers, reads every file in active/ (where a
    // crash may have left one mid-delivery, or one a commit had renamed but
    // not yet synced), removes the empty and reused ones a cut-off commit
    // leaves, moves those that do not decode or whose check does not match
    // to corrupt/, and lists deferred/ and hold/ without
    // opening their files: a restart with a million deferred messages is one
    // directory listing. A deferred file that turns out unreadable when it is
    // due is quarantined then (quarantine()). Run once at start, with the
    // lock held.
    recovery_report recover();
    // Moves a file that does not decode to corrupt/ (kept for a human).
    std::error_code quarantine(std::string_view id, queue_state s);

    // Reading (safe while the daemon runs: a file is rewritten only after it
    // was renamed to free/ and then to incoming/ under a new id, and a read
    // that raced with that finds the name no longer leads to the file it
    // read, and reports it gone). A listing holds each id once.
    std::vector<spool_entry> list(std::optional<queue_state> only = std::nullopt) const;
    std::optional<queue_state> locate(std::string_view id) const;
    // The file's mtime: for deferred/, when the next attempt is due.
    std::optional<std::int64_t> mtime_ms(std::string_view id, queue_state s) const;
    std::optional<envelope> read_envelope(std::string_view id, queue_state s) const;
    // Same, following the message if it moved to another state since `s`
    // was read from a listing (the daemon moves files while we read); `s` is
    // updated to where it was found.
    std::optional<envelope> find_envelope(std::string_view id, queue_state& s) const;
    std::error_code read_message(std::string_view id, queue_state s, envelope& env,
                                 std::string& content) const;

    // State changes: a rename between state directories, made durable.
    std::error_code move(std::string_view id, queue_state from, queue_state to);
    // Removes the queue file and its status file. The queue file is renamed
    // to free/ for reuse (a rename, never an unlink, on the caller's thread);
    // a reaper thread of the spool's own unlinks the oldest free files while
    // there are more than max_free_files().
    std::error_code remove(std::string_view id, queue_state s);
    std::size_t free_files() const;
    std::size_t max_free_files() const { return max_free_.load(); }
    void set_max_free_files(std::size_t n);
    // Moves to deferred/ (from any state but hold) with its mtime set to when
    // it is due, so recovery rebuilds the retry time from the file alone.
    std::error_code defer(std::string_view id, queue_state from, std::int64_t due_ms);

    // Per-recipient status (status/ID): n entries, all pending when no status
    // file exists; ec set when the file exists but cannot be read.
    std::vector<recipient_status> read_status(std::string_view id, std::size_t n, std::error_code& ec) const;
    // Appends updates (index, status) and fdatasyncs them: a recipient marked
    // delivered is never sent again after a crash.
    std::error_code append_status(std::string_view id, const std::vector<std::pair<std::size_t, recipient_status>>& updates);

private:
    struct pending {
        envelope env;
        std::string content;
        commit_done done;
        std::error_code ec;
        std::string before;        // with a spill: written first
        base::unique_fd spill;     // then this file's first spill_size octets, then content
        std::uint64_t spill_size = 0;
        std::string head;          // the header block, as written (for the journal)
    };
    spool() = default;
    int dirfd(queue_state s) const;
    void committer_loop();
    void commit_batch(std::vector<pending>& batch);
    bool journal_batch(std::vector<pending>& batch);
    std::error_code sync_and_cover(bool restart_journal);
    void checkpointer_loop();

    std::filesystem::path dir_;
    int root_fd_ = -1, incoming_fd_ = -1, corrupt_fd_ = -1, status_fd_ = -1, lock_fd_ = -1, free_fd_ = -1;
    int state_fd_[3] = {-1, -1, -1};
    queue_id_generator ids_;
    batch_hook hook_;
    commit_observer commit_observer_;

    void transaction_closed();
    std::atomic<int> open_{0};               // transaction_marks alive
    std::int64_t last_commit_ns_ = 0;        // committer thread only
    std::atomic<std::int64_t> fixed_gather_ns_{-1};
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<pending> pending_;
    bool stopping_ = false;
    std::thread committer_;

    // The write-ahead journal (null: none; journal_on_: appended to).
    std::unique_ptr<commit_journal> journal_;
    std::atomic<bool> journal_on_{false};
    bool replayed_ = false;
    bool create_ = false, journal_wanted_ = false;
    std::uint64_t journal_size_ = 0;
    std::atomic<bool> frozen_{false};   // the journal could not be checkpointed: kept for the next start
    std::mutex sync_mu_;  // one checkpoint (syncfs + header) at a time
    std::mutex ckpt_mu_;
    std::condition_variable ckpt_cv_;
    bool ckpt_stop_ = false;
    std::atomic<bool> ckpt_paused_{false};
    std::thread checkpointer_;

    // Names in free/. A name is written over only once its rename into
    // free/ is on disk (free_, after a syncfs that covered it): otherwise a
    // crash could bring the old name back over the new message's data.
    // free_dirty_: renamed since the last syncfs. In free_, the newest are at
    // the back (taken by commits), the oldest at the front (reaped).
    mutable std::mutex free_mu_;
    std::condition_variable free_cv_;
    std::deque<std::string> free_;
    std::deque<std::string> free_dirty_;
    bool names_wait_ = false;  // a journal is kept: only names a checkpoint covered go (free_mu_)
    std::atomic<std::size_t> max_free_{16384};
    bool reaper_stop_ = false;
    std::thread reaper_;
    std::string take_free();
    std::size_t drop_free_files();  // unlinks every free file (disk full); how many
    void reaper_loop();
};

}  // namespace ricochet::queue
