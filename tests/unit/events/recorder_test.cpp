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
    std::mutex mu;
    std::condition_variable cv;
    int applied = 0, synced_at = -1, syncs = 0;
    bool fail = false;
    recorder r([&](std::vector<event>& ds) {
        std::lock_guard lk(mu);
        applied += static_cast<int>(ds.size());
    });
    r.set_sync([&] {
        std::lock_guard lk(mu);
        synced_at = applied;
        ++syncs;
        cv.notify_all();
        return !fail;
    });
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
