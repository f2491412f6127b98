// pg_event_feed — every node's events in the shared PostgreSQL database, so
// that `GET /v1/events` on any node reads all of them. The node's own event
// log (events.jsonl) stays the truth: a thread of its own copies it into the
// `events` table from where this node's rows end (node, seq: a line is
// never copied twice), woken by the bus after each write and once a second.
// While the database is away it simply falls behind and catches up from the
// log when it is back (as far back as rotation keeps the log). It copies at
// most four times a second: the shared view lags a node's own log by about
// a quarter of a second.
//
// The shared cursor: each copy runs in a transaction that holds an advisory
// lock while it takes its `gid`s, so rows commit in gid order across nodes
// and a reader that has seen gid N has seen every row below it. Webhooks
// stay per node (each node sends its own events; a receiver gets all).
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace ricochet::state {
namespace pg {
class connection;
}

class pg_event_feed {
public:
    pg_event_feed(std::string url, std::filesystem::path events_log, int node);
    ~pg_event_feed();
    pg_event_feed(const pg_event_feed&) = delete;
    pg_event_feed& operator=(const pg_event_feed&) = delete;

    // This node's last seq copied (kept in `nodes`, so retention deleting its
    // old rows does not move it back), read before start(): the daemon's
    // sequencer continues above it, so a node whose spool (and events.seq)
    // was wiped never numbers an event like one in the table. 0 with
    // `error` when the server cannot say.
    std::uint64_t last_copied(std::string& error);
    void start();
    void stop();
    void nudge();  // new lines in the log

    // Events of every node after the shared cursor `after` (a gid), at most
    // `limit`, only `types` when given: the lines as their nodes wrote them.
    struct page {
        std::vector<std::string> lines;
        std::uint64_t last = 0;  // the cursor for the next call (never less than after)
        bool more = false;
        std::string error;
    };
    page read(std::uint64_t after, std::size_t limit, const std::vector<std::string>& types);
    // This node's last seq copied (tests, health).
    std::uint64_t copied() const { return copied_.load(); }

private:
    void run();
    bool copy_some(std::string& error);  // true when more is waiting

    std::string url_;
    std::filesystem::path log_;
    int node_;
    std::thread thread_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false, nudged_ = false;
    std::unique_ptr<pg::connection> writer_;  // the thread's
    std::mutex read_mu_;
    std::unique_ptr<pg::connection> reader_;  // the API's
    std::atomic<std::uint64_t> copied_{0};
    bool cursor_known_ = false;
};

}  // namespace ricochet::state
