// decision_recorder — writes decisions to the state store on a thread of its
// own, many at a time. Submission's group commits and every delivery post
// their decisions here instead of writing SQLite themselves: the I/O threads
// and the spool's committer never wait on the database, and one transaction
// carries every decision that arrived while the last one was written (group
// commit, as in the spool).
//
// Order is kept: batches are applied in the order they were posted, and each
// post's `then` (the events-log lines) runs after its decisions are applied,
// so an event that is visible is also in the store.
#pragma once
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "queue/state_store.hpp"

namespace ricochet::queue {

class decision_recorder {
public:
    // apply records one batch (it may be empty: then it only retries what
    // waits in the journal). It runs on the recorder's thread only.
    using apply_fn = std::function<void(const std::vector<decision>&)>;

    explicit decision_recorder(apply_fn apply);
    // Applies everything posted so far, then stops.
    ~decision_recorder();
    decision_recorder(const decision_recorder&) = delete;
    decision_recorder& operator=(const decision_recorder&) = delete;

    void post(std::vector<decision> ds, std::function<void()> then = {});
    // Returns once everything posted before the call is applied.
    void flush();
    // Posts and waits: for callers that read the store right after.
    void record_now(std::vector<decision> ds, std::function<void()> then = {});
    std::size_t batches() const;  // applied so far (for tests)

private:
    struct item {
        std::vector<decision> ds;
        std::function<void()> then;
    };
    void loop();

    apply_fn apply_;
    mutable std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    std::vector<item> queue_;
    std::uint64_t posted_ = 0, applied_ = 0;
    std::size_t batches_ = 0;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace ricochet::queue
