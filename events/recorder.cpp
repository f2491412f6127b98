#include "events/recorder.hpp"

#include <pthread.h>

#include "queue/logger.hpp"

namespace ricochet::events {
namespace {
std::shared_ptr<spdlog::logger> log() {
    static auto l = named_logger("queue");
    return l;
}
}  // namespace

recorder::recorder(apply_fn apply) : apply_(std::move(apply)) {
    thread_ = std::thread([this] {
        ::pthread_setname_np(::pthread_self(), "recorder");
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

void recorder::flush() {
    // From the recorder's own thread (an apply or a `then`): waiting would
    // never end, and what was posted before is applied in order anyway.
    if (std::this_thread::get_id() == thread_.get_id()) return;
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

void recorder::loop() {
    std::vector<item> batch;
    std::vector<event> all;
    // What was recorded since the last sync (see set_sync) is synced once a
    // second under a steady load, and after a second with nothing to do:
    // a power loss then costs at most about a second of decisions.
    bool dirty = false;
    auto last_sync = std::chrono::steady_clock::now();
    auto sync_now = [&] {
        if (sync_) sync_();
        dirty = false;
        last_sync = std::chrono::steady_clock::now();
    };
    for (;;) {
        {
            std::unique_lock lk(mu_);
            // Ready: stopping, something waited on, or lazy posts that have
            // waited long enough or are many.
            auto ready = [&] {
                return stopping_ || urgent_ || lazy_events_ >= lazy_cap ||
                       (lazy_events_ && std::chrono::steady_clock::now() - lazy_since_ >= lazy_delay_);
            };
            while (!ready()) {
                if (lazy_events_) {
                    cv_.wait_until(lk, lazy_since_ + lazy_delay_);
                } else if (dirty && sync_) {
                    if (cv_.wait_for(lk, std::chrono::seconds(1)) == std::cv_status::timeout && !ready() &&
                        !lazy_events_)
                        break;  // a second with nothing to do: sync below
                } else {
                    cv_.wait(lk);
                }
            }
            if (!ready()) {
                lk.unlock();
                sync_now();
                continue;
            }
            if (queue_.empty()) {
                // Not reached today (publish() queues with urgent_, flush()
                // sets it only while lazy posts wait); kept so that a future
                // wake-up with nothing queued cannot end the thread, which a
                // first version of flush() did (see the recorder tests).
                urgent_ = false;
                if (!stopping_) continue;
                lk.unlock();  // stopping, and everything is applied
                if (dirty) sync_now();
                return;
            }
            batch.swap(queue_);
            urgent_ = false;
            lazy_events_ = 0;
        }
        all.clear();
        for (auto& it : batch)
            for (auto& d : it.ds) all.push_back(std::move(d));
        // A failure here must not stop the recorder (nor the daemon): it is
        // logged, and the store's own journal keeps what was not recorded.
        try {
            apply_(all);
        } catch (const std::exception& e) {
            log()->error("recorder: {} decision(s) not recorded: {}", all.size(), e.what());
        }
        for (auto& it : batch) {
            if (!it.then) continue;
            try {
                it.then();
            } catch (const std::exception& e) {
                log()->error("recorder: {}", e.what());
            }
        }
        {
            std::lock_guard lk(mu_);
            applied_ += batch.size();
            ++batches_;
        }
        done_cv_.notify_all();
        batch.clear();
        dirty = true;
        if (std::chrono::steady_clock::now() - last_sync >= std::chrono::seconds(1)) sync_now();
    }
}

}  // namespace ricochet::events
