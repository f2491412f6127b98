// recorder — records events (the state store, then the sinks) on a thread of its
// own, many at a time. Submission's group commits and every delivery post
// their decisions here instead of writing SQLite themselves: the I/O threads
// never wait on the database (the spool's committer waits for its batch's
// `queued` rows, below), and one transaction
// carries every decision that arrived while the last one was written (group
// commit, as in the spool).
//
// One exception to "a thread of its own": a producer that waits for its
// events anyway (publish_and_wait: the committer's `queued` rows) applies
// them on its own thread when the recorder is idle, with everything
// queued before them, instead of waking the recorder and being woken.
//
// Order is kept: batches are applied in the order they were posted, and each
// post's `then` runs after its events are applied, so what a producer
// waits for (a message's removal, a client's 250) follows its record.
// The daemon's `apply` is the pipeline of daemon/event_pipeline.hpp:
// recipient state, journal, then the sinks.
#pragma once
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "events/event.hpp"
#include "events/publisher.hpp"

namespace ricochet::events {

class recorder final : public publisher {
public:
    // apply records one batch (it may be empty: then it only retries what
    // waits in the journal). It runs on the recorder's thread, or on a
    // caller's of publish_and_wait; one batch at a time, in order.
    using apply_fn = std::function<void(std::vector<event>&)>;

    explicit recorder(apply_fn apply);
    // Applies everything posted so far, then stops.
    ~recorder() override;
    recorder(const recorder&) = delete;
    recorder& operator=(const recorder&) = delete;

    void publish(std::vector<event> ds, std::function<void()> then = {}) override;
    // Applied with the next publish() or flush(), or once the oldest has
    // waited lazy_delay (20 ms), or once lazy_cap events wait, whichever comes
    // first: under load a delivery's outcome shares the transaction of the
    // next group commit's `queued` rows (each transaction rewrites the
    // pages of every table and index it touches).
    void publish_lazily(std::vector<event> ds, std::function<void()> then = {}) override;
    static constexpr std::chrono::milliseconds default_lazy_delay{20};
    static constexpr std::size_t lazy_cap = 2000;
    void set_lazy_delay(std::chrono::milliseconds d) {  // for tests
        std::lock_guard lk(mu_);
        lazy_delay_ = d;
    }
    // publish(ds) then flush(), for a producer that waits anyway (the
    // spool's committer, for a group commit's `queued` rows): when the
    // recorder is idle, the caller's own thread applies everything queued,
    // its events last, and no thread is woken twice. From an apply or a
    // `then` (a thread applying this recorder's batch) it only queues.
    void publish_and_wait(std::vector<event> ds);
    // Returns once everything posted before the call is applied.
    void flush() override;
    bool sync() override { return !sync_ || sync_(); }
    // What sync() does (the daemon: the state store's sync). Set before use.
    // The recorder also calls it by itself: once a second while it records,
    // and after a second without anything to record.
    void set_sync(std::function<bool()> f) {
        std::lock_guard lk(mu_);
        sync_ = std::move(f);
    }
    std::size_t batches() const;  // applied so far (for tests)

private:
    struct item {
        std::vector<event> ds;
        std::function<void()> then;
    };
    void loop();
    // Applies a batch taken from queue_ (with applying_ set), then counts
    // it; true when a sync is due.
    bool run(std::vector<item>& batch, std::vector<event>& all, bool by_caller);
    void sync_now();

    apply_fn apply_;
    std::function<bool()> sync_;
    mutable std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    std::vector<item> queue_;
    std::uint64_t posted_ = 0, applied_ = 0;
    // What waits in queue_: whether anything is waited on (a publish, a
    // flush), and the lazy posts' events and when the oldest arrived.
    bool urgent_ = false;
    std::size_t lazy_events_ = 0;
    std::chrono::steady_clock::time_point lazy_since_;
    std::chrono::milliseconds lazy_delay_ = default_lazy_delay;
    std::size_t batches_ = 0;
    bool stopping_ = false;
    // A batch is being applied, by the recorder's thread or by a caller of
    // publish_and_wait: batches are applied one at a time, in order.
    bool applying_ = false;
    // The recorder waits for such a caller to finish (it is then woken).
    bool waiting_for_caller_ = false;
    // Recorded since the last sync, and when that was (see set_sync); a
    // caller's batch sets dirty_ and asks for the sync once it is due.
    bool dirty_ = false, sync_due_ = false;
    std::chrono::steady_clock::time_point last_sync_ = std::chrono::steady_clock::now();
    std::thread thread_;
};

}  // namespace ricochet::events
