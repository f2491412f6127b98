#include "events/recorder.hpp"

#include <pthread.h>

#include "queue/logger.hpp"

namespace ricochet::events {
namespace {
std::shared_ptr<spdlog::logger> log() {
    static auto l = named_logger("queue");
    return l;
}
// The recorder whose batch this thread is applying: the recorder's own
// thread, or a caller of publish_and_wait while it applies. Waiting there
// for that recorder would never end (an apply's or a `then`'s flush()).
thread_local const recorder* applying_here = nullptr;
}  // namespace

recorder::recorder(apply_fn apply) : apply_(std::move(apply)) {
    thread_ = std::thread([this] {
        ::pthread_setname_np(::pthread_self(), "recorder");
        applying_here = this;
        loop();
    });
}

recorder::~recorder() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void recorder::publish(std::vector<event> ds, std::function<void()> then) {
    {
        std::lock_guard lk(mu_);
        if (!stopping_) {
            queue_.push_back({std::move(ds), std::move(then)});
            ++posted_;
            urgent_ = true;
            cv_.notify_one();
            return;
        }
    }
    // Stopping: nothing is dropped, the caller's thread applies it.
    apply_(ds);
    if (then) then();
}

void recorder::publish_lazily(std::vector<event> ds, std::function<void()> then) {
    {
        std::lock_guard lk(mu_);
        if (!stopping_) {
            // The recorder is woken for the first lazy post only (it then
            // waits at most lazy_delay), and when the cap is reached.
            bool first = lazy_events_ == 0 && !urgent_;
            if (lazy_events_ == 0) lazy_since_ = std::chrono::steady_clock::now();
            lazy_events_ += std::max<std::size_t>(ds.size(), 1);
            queue_.push_back({std::move(ds), std::move(then)});
            ++posted_;
            if (first || lazy_events_ >= lazy_cap) cv_.notify_one();
            return;
        }
    }
    apply_(ds);
    if (then) then();
}

void recorder::publish_and_wait(std::vector<event> ds) {
    std::unique_lock lk(mu_);
    if (stopping_ || applying_here == this) {
        // Stopping: applied here by publish(). Applying: queued, in order.
        lk.unlock();
        publish(std::move(ds));
        return;
    }
    queue_.push_back({std::move(ds), {}});
    auto target = ++posted_;
    if (applying_) {
        // The recorder (or another caller) is applying: the recorder takes
        // this next, with whatever else waits.
        urgent_ = true;
        cv_.notify_one();
        done_cv_.wait(lk, [&] { return applied_ >= target; });
        return;
    }
    // Idle: this thread applies everything queued, in order, its own last.
    std::vector<item> batch;
    batch.swap(queue_);
    urgent_ = false;
    lazy_events_ = 0;
    applying_ = true;
    lk.unlock();
    std::vector<event> all;
    applying_here = this;
    run(batch, all, true);
    applying_here = nullptr;
}

void recorder::flush() {
    // From an applying thread (an apply or a `then`): waiting would never
    // end, and what was posted before is applied in order anyway.
    if (applying_here == this) return;
    std::unique_lock lk(mu_);
    auto target = posted_;
    if (lazy_events_ && !urgent_) {
        urgent_ = true;  // the lazy posts in the queue wait no longer
        cv_.notify_one();
    }
    done_cv_.wait(lk, [&] { return applied_ >= target; });
}

std::size_t recorder::batches() const {
    std::lock_guard lk(mu_);
    return batches_;
}

bool recorder::run(std::vector<item>& batch, std::vector<event>& all, bool by_caller) {
    all.clear();
    for (auto& it : batch)
        for (auto& d : it.ds) all.push_back(std::move(d));
    // A failure here must not stop the recorder (nor the daemon): it is
    // logged, and the store's own journal keeps what was not recorded.
    try {
        apply_(all);
    } catch (const std::exception& e) {
        log()->error("recorder: {} decision(s) not recorded: {}", all.size(), e.what());
    } catch (...) {  // whatever it was, applying_ must be cleared below
        log()->error("recorder: {} decision(s) not recorded: an unknown exception", all.size());
    }
    for (auto& it : batch) {
        if (!it.then) continue;
        try {
            it.then();
        } catch (const std::exception& e) {
            log()->error("recorder: {}", e.what());
        } catch (...) {
            log()->error("recorder: an unknown exception after a batch");
        }
    }
    bool sync_due;
    {
        std::lock_guard lk(mu_);
        applied_ += batch.size();
        ++batches_;
        applying_ = false;
        bool was_dirty = dirty_;
        dirty_ = true;
        if (std::chrono::steady_clock::now() - last_sync_ >= std::chrono::seconds(1)) sync_due_ = true;
        sync_due = sync_due_;
        // A caller wakes the recorder only when it has something to do:
        // it waits for this batch, more was queued meanwhile, a sync is
        // due, or it must start counting the second before the next one.
        if (by_caller && (waiting_for_caller_ || !queue_.empty() || sync_due_ || !was_dirty)) cv_.notify_one();
        // Under the lock: once it is released, a stopping recorder may end
        // and be destroyed before a caller's thread touches it again.
        done_cv_.notify_all();
    }
    batch.clear();
    return sync_due;
}

void recorder::sync_now() {
    {
        // Cleared first: what a caller records during the sync stays dirty.
        std::lock_guard lk(mu_);
        dirty_ = false;
        sync_due_ = false;
        last_sync_ = std::chrono::steady_clock::now();
    }
    if (sync_) sync_();
}

void recorder::loop() {
    std::vector<item> batch;
    std::vector<event> all;
    // What was recorded since the last sync (see set_sync) is synced once a
    // second under a steady load, and after a second with nothing to do:
    // a power loss then costs at most about a second of decisions.
    for (;;) {
        bool sync = false;
        {
            std::unique_lock lk(mu_);
            // Ready: stopping, something waited on, or lazy posts that have
            // waited long enough or are many.
            auto ready = [&] {
                return stopping_ || urgent_ || lazy_events_ >= lazy_cap ||
                       (lazy_events_ && std::chrono::steady_clock::now() - lazy_since_ >= lazy_delay_);
            };
            for (;;) {
                if (applying_) {  // a caller of publish_and_wait: it wakes us when done
                    waiting_for_caller_ = true;
                    cv_.wait(lk);
                    waiting_for_caller_ = false;
                    continue;
                }
                if (ready()) break;
                if (sync_due_) {
                    sync = true;
                    break;
                }
                if (lazy_events_) {
                    cv_.wait_until(lk, lazy_since_ + lazy_delay_);
                } else if (dirty_ && sync_) {
                    if (cv_.wait_for(lk, std::chrono::seconds(1)) == std::cv_status::timeout && !applying_ &&
                        !ready() && !lazy_events_) {
                        sync = true;  // a second with nothing to do
                        break;
                    }
                } else {
                    cv_.wait(lk);
                }
            }
            if (!sync) {
                if (queue_.empty()) {
                    // Not reached today (publish() queues with urgent_, flush()
                    // sets it only while lazy posts wait); kept so that a future
                    // wake-up with nothing queued cannot end the thread, which a
                    // first version of flush() did (see the recorder tests).
                    urgent_ = false;
                    if (!stopping_) continue;
                    bool dirty = dirty_;
                    lk.unlock();  // stopping, and everything is applied
                    if (dirty) sync_now();
                    return;
                }
                batch.swap(queue_);
                urgent_ = false;
                lazy_events_ = 0;
                applying_ = true;
            }
        }
        if (sync || run(batch, all, false)) sync_now();
    }
}

}  // namespace ricochet::events
