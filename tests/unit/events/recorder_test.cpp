// Tests for events/recorder.hpp: order, batching, flush, and that
// nothing posted is lost at shutdown.
#include "events/recorder.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace ricochet::events;

namespace {
event d(const std::string& id) {
    event x;
    x.type = event_type::delivered;
    x.queue_id = id;
    return x;
}

// A recorder that counts what it applied and what its syncs covered.
struct synced_recorder {
    std::mutex mu;
    std::condition_variable cv;
    int applied = 0, synced_at = -1, syncs = 0;
    bool fail = false;  // the sync's answer is !fail
    recorder r{[this](std::vector<event>& ds) {
        std::lock_guard lk(mu);
        applied += static_cast<int>(ds.size());
    }};
    synced_recorder() {
        r.set_sync([this] {
            std::lock_guard lk(mu);
            synced_at = applied;
            ++syncs;
            cv.notify_all();
            return !fail;
        });
    }
};
}  // namespace

TEST(Recorder, AppliesInOrderAndRunsThenAfterItsDecisions) {
    std::mutex mu;
    std::vector<std::string> log;
    {
        recorder r([&](std::vector<event>& ds) {
            std::lock_guard lk(mu);
            for (auto& x : ds) log.push_back("apply " + x.queue_id);
        });
        for (int i = 0; i < 50; ++i) {
            auto id = std::to_string(i);
            r.publish({d(id)}, [&, id] {
                std::lock_guard lk(mu);
                log.push_back("then " + id);
            });
        }
        r.flush();
        std::lock_guard lk(mu);
        ASSERT_EQ(log.size(), 100u) << "flush returns only when all 50 are applied";
    }
    // Each id's decision is applied before its `then`, and ids keep their order.
    int last_apply = -1, last_then = -1;
    for (std::size_t i = 0; i < log.size(); ++i) {
        bool apply = log[i].rfind("apply ", 0) == 0;
        int id = std::stoi(log[i].substr(apply ? 6 : 5));
        if (apply) {
            EXPECT_EQ(id, last_apply + 1);
            last_apply = id;
        } else {
            EXPECT_EQ(id, last_then + 1);
            EXPECT_LE(id, last_apply) << "an event never runs before its decision is stored";
            last_then = id;
        }
    }
}

TEST(Recorder, PostsThatArriveWhileOneIsAppliedShareTheNextBatch) {
    std::promise<void> entered, release;
    auto release_f = release.get_future().share();
    std::vector<std::size_t> sizes;
    bool first = true;
    recorder r([&](std::vector<event>& ds) {
        sizes.push_back(ds.size());
        if (first) {
            first = false;
            entered.set_value();
            release_f.wait();  // the store is slow: posts pile up meanwhile
        }
    });
    r.publish({d("a")});
    entered.get_future().wait();
    for (int i = 0; i < 20; ++i) r.publish({d("b" + std::to_string(i))});
    release.set_value();
    r.flush();
    ASSERT_EQ(sizes.size(), 2u) << "the 20 that waited went in one transaction";
    EXPECT_EQ(sizes[0], 1u);
    EXPECT_EQ(sizes[1], 20u);
    EXPECT_EQ(r.batches(), 2u);
}

TEST(Recorder, EverythingPostedIsAppliedAtShutdown) {
    std::size_t applied = 0;
    {
        recorder r([&](std::vector<event>& ds) { applied += ds.size(); });
        for (int i = 0; i < 1000; ++i) r.publish({d(std::to_string(i))});
    }  // destroyed without flush
    EXPECT_EQ(applied, 1000u);
}

TEST(Recorder, RecordNowWaitsForItsOwnDecisions) {
    std::atomic<int> applied{0};
    recorder r([&](std::vector<event>& ds) { applied += static_cast<int>(ds.size()); });
    r.publish_now({d("x"), d("y")});
    EXPECT_EQ(applied.load(), 2);
}

// publish_now returns once its decisions are recorded and synced (what an
// outside party was told is done survives a power loss), and says when the
// sync failed. What publish() records is synced by the recorder itself
// once it has been idle for a second.
TEST(Recorder, PublishNowSyncsAndIdleDecisionsAreSyncedBySelf) {
    synced_recorder s;
    auto& mu = s.mu;
    auto& cv = s.cv;
    auto& r = s.r;
    auto& synced_at = s.synced_at;
    auto& fail = s.fail;
    EXPECT_TRUE(r.publish_now({d("x"), d("y")}));
    {
        std::lock_guard lk(mu);
        EXPECT_EQ(synced_at, 2) << "synced after its decisions were applied";
        fail = true;
    }
    EXPECT_FALSE(r.publish_now({d("z")}));
    r.publish({d("w")});
    std::unique_lock lk(mu);
    EXPECT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return synced_at == 4; }))
        << "the recorder syncs what publish() recorded once idle";
}

// publish_lazily: what nobody waits on rides with the next post that is
// waited on (one transaction, in order), or is applied on its own once the
// oldest has waited lazy_delay; flush() applies it at once.
TEST(Recorder, LazyPostsShareTheNextUrgentBatchInOrder) {
    std::mutex mu;
    std::vector<std::vector<std::string>> batches;
    recorder r([&](std::vector<event>& ds) {
        std::lock_guard lk(mu);
        std::vector<std::string> ids;
        for (auto& x : ds) ids.push_back(x.queue_id);
        batches.push_back(ids);
    });
    // Stall the recorder's thread on a first batch so the timing of what
    // follows cannot decide the outcome.
    std::promise<void> entered, release;
    r.publish({}, [&] {
        entered.set_value();
        release.get_future().wait();
    });
    entered.get_future().wait();
    r.publish_lazily({d("l1")});
    int then_ran = 0;
    r.publish_lazily({}, [&] { ++then_ran; });
    r.publish_lazily({d("l2")});
    r.publish({d("u")});
    release.set_value();
    r.flush();
    std::lock_guard lk(mu);
    ASSERT_EQ(batches.size(), 2u) << "the lazy posts and the urgent one are applied together";
    EXPECT_EQ(batches[1], (std::vector<std::string>{"l1", "l2", "u"}));
    EXPECT_EQ(then_ran, 1);
}

TEST(Recorder, ALazyPostAloneIsAppliedAfterTheDelay) {
    std::mutex mu;
    std::condition_variable cv;
    std::size_t applied = 0;
    recorder r([&](std::vector<event>& ds) {
        std::lock_guard lk(mu);
        applied += ds.size();
        cv.notify_all();
    });
    auto start = std::chrono::steady_clock::now();
    r.publish_lazily({d("x")});
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return applied == 1; }))
        << "a lazy post is applied without anything else arriving";
    EXPECT_GE(std::chrono::steady_clock::now() - start, recorder::default_lazy_delay)
        << "and not before its delay (it waited for company)";
}

TEST(Recorder, FlushAppliesLazyPostsAtOnceAndTheCapWakesTheRecorder) {
    std::mutex mu;
    std::condition_variable cv;
    std::atomic<std::size_t> applied{0};
    recorder r([&](std::vector<event>& ds) {
        std::lock_guard lk(mu);
        applied += ds.size();
        cv.notify_all();
    });
    r.publish_lazily({d("x")});
    auto start = std::chrono::steady_clock::now();
    r.flush();
    EXPECT_EQ(applied.load(), 1u);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
    // lazy_cap events make a batch without waiting for the delay (here an
    // hour, so nothing else could apply them).
    r.set_lazy_delay(std::chrono::hours(1));
    r.publish_lazily(std::vector<event>(recorder::lazy_cap - 1, d("m")));
    r.publish_lazily({d("m")});
    std::unique_lock lk(mu);
    EXPECT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return applied.load() == 1 + recorder::lazy_cap; }))
        << "the cap woke the recorder";
}

// A flush() that arrives while the posts it waits for are being applied
// finds the queue empty: the recorder must go on (a first version took that
// for its shutdown and stopped, and every later flush waited for ever).
TEST(Recorder, AFlushDuringAnApplyLeavesTheRecorderRunning) {
    std::promise<void> entered, release;
    auto release_f = release.get_future().share();
    std::atomic<int> applies{0};
    recorder r([&](std::vector<event>&) {
        if (applies++ == 0) {
            entered.set_value();
            release_f.wait();
        }
    });
    r.publish({d("a")});
    entered.get_future().wait();  // "a" is being applied; the queue is empty
    auto first = std::async(std::launch::async, [&] { r.flush(); });
    release.set_value();
    ASSERT_EQ(first.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    auto later = std::async(std::launch::async, [&] {
        r.publish_lazily({d("b")});
        r.publish({d("c")});
        r.flush();
    });
    ASSERT_EQ(later.wait_for(std::chrono::seconds(10)), std::future_status::ready)
        << "the recorder still records after a flush that found nothing queued";
    EXPECT_EQ(applies.load(), 2);
}

// publish_and_wait: an idle recorder is not woken; the caller's thread
// applies what was queued before (in order, with its `then`s) and its own
// events last, in one batch.
TEST(Recorder, PublishAndWaitAppliesOnTheCallersThreadWhenIdle) {
    std::mutex mu;
    std::vector<std::vector<std::string>> batches;
    std::vector<std::thread::id> threads;
    recorder r([&](std::vector<event>& ds) {
        std::lock_guard lk(mu);
        std::vector<std::string> ids;
        for (auto& x : ds) ids.push_back(x.queue_id);
        batches.push_back(ids);
        threads.push_back(std::this_thread::get_id());
    });
    r.set_lazy_delay(std::chrono::hours(1));  // the lazy posts wait for company
    std::thread::id then_thread;
    bool flushed_in_then = false;
    r.publish_lazily({d("l1")}, [&] {
        then_thread = std::this_thread::get_id();
        r.flush();  // from the applying thread: returns at once
        flushed_in_then = true;
    });
    r.publish_lazily({d("l2")});
    r.publish_and_wait({d("q1"), d("q2")});
    std::lock_guard lk(mu);
    ASSERT_EQ(batches.size(), 1u) << "applied before publish_and_wait returned, as one batch";
    EXPECT_EQ(batches[0], (std::vector<std::string>{"l1", "l2", "q1", "q2"}));
    EXPECT_EQ(threads[0], std::this_thread::get_id()) << "on the caller's thread";
    EXPECT_EQ(then_thread, std::this_thread::get_id());
    EXPECT_TRUE(flushed_in_then);
    EXPECT_EQ(r.batches(), 1u);
}

// While the recorder applies, publish_and_wait waits for it: its events go
// in the recorder's next batch, after everything posted before them.
TEST(Recorder, PublishAndWaitWaitsForABusyRecorderAndKeepsOrder) {
    std::mutex mu;
    std::vector<std::string> order;
    std::promise<void> entered, release;
    auto release_f = release.get_future().share();
    recorder r([&](std::vector<event>& ds) {
        std::lock_guard lk(mu);
        for (auto& x : ds) order.push_back(x.queue_id);
    });
    r.publish({d("a")}, [&] {
        entered.set_value();
        release_f.wait();
    });
    entered.get_future().wait();  // the recorder is inside a batch
    r.publish({d("b")});
    auto waiter = std::async(std::launch::async, [&] { r.publish_and_wait({d("c")}); });
    EXPECT_EQ(waiter.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout)
        << "it waits while the recorder is busy";
    release.set_value();
    ASSERT_EQ(waiter.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    std::lock_guard lk(mu);
    EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "c"}));
}

// What a caller applied is synced by the recorder once it has been idle
// for a second, although the recorder itself applied nothing (it must be
// woken to start counting).
TEST(Recorder, WhatACallerAppliedIsSyncedOnceIdle) {
    synced_recorder s;
    auto& mu = s.mu;
    auto& cv = s.cv;
    auto& r = s.r;
    auto& synced_at = s.synced_at;
    auto& syncs = s.syncs;
    // First the recorder's own batch and its idle sync: it then waits with
    // nothing to sync, as between two group commits.
    r.publish({d("w")});
    {
        std::unique_lock lk(mu);
        ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return syncs == 1; }));
    }
    r.publish_and_wait({d("x"), d("y")});
    std::unique_lock lk(mu);
    EXPECT_TRUE(cv.wait_for(lk, std::chrono::seconds(10), [&] { return synced_at == 3; }))
        << "synced within about a second of the caller's batch";
}

// Many callers and lazy posts at once: nothing lost, nothing twice, each
// producer's events in its own order.
TEST(Recorder, PublishAndWaitFromManyThreadsLosesNothing) {
    std::mutex mu;
    std::vector<std::string> seen;
    {
        recorder r([&](std::vector<event>& ds) {
            std::lock_guard lk(mu);
            for (auto& x : ds) seen.push_back(x.queue_id);
        });
        std::vector<std::thread> ts;
        for (int t = 0; t < 4; ++t)
            ts.emplace_back([&, t] {
                for (int i = 0; i < 200; ++i) {
                    auto id = std::to_string(t) + ":" + std::to_string(i);
                    if (i % 3 == 0) r.publish_lazily({d(id)});
                    else if (i % 3 == 1) r.publish({d(id)});
                    else r.publish_and_wait({d(id)});
                }
            });
        for (auto& t : ts) t.join();
    }
    ASSERT_EQ(seen.size(), 800u);
    std::vector<int> next(4, 0);
    for (auto& id : seen) {
        int t = id[0] - '0', i = std::stoi(id.substr(2));
        EXPECT_EQ(i, next[t]) << id;
        next[t] = i + 1;
    }
}

// A stop while a caller applies: the recorder waits for that batch, then
// applies what is left and ends (it must be woken when the caller is done).
TEST(Recorder, AStopWhileACallerAppliesEnds) {
    std::promise<void> entered, release;
    auto release_f = release.get_future().share();
    std::atomic<int> applied{0};
    auto* r = new recorder([&](std::vector<event>& ds) {
        if (!ds.empty() && ds[0].queue_id == "slow") {
            entered.set_value();
            release_f.wait();
        }
        applied += static_cast<int>(ds.size());
    });
    r->publish({d("first")});  // recorded by the recorder: nothing else wakes it later
    r->flush();
    auto caller = std::async(std::launch::async, [&] { r->publish_and_wait({d("slow")}); });
    entered.get_future().wait();  // the caller is applying
    auto stop = std::async(std::launch::async, [&] { delete r; });
    EXPECT_EQ(stop.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout)
        << "the stop waits for the caller's batch";
    release.set_value();
    if (stop.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
        ADD_FAILURE() << "the recorder never ended after the caller's batch";
        std::_Exit(1);  // the stuck thread would keep the test from ending
    }
    caller.get();
    EXPECT_EQ(applied.load(), 2);
}
