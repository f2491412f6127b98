// Tests for daemon/event_pipeline.hpp: what happens to published events on
// the recorder's thread: the store records them (or, when it is down, the
// journal keeps the decisions and they go in later, in order), status
// changes reach the RCPT check, and every event is written once.
#include "daemon/event_pipeline.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../state/memory_storage.hpp"
#include "events/event_json.hpp"
#include "events/jsonl_log.hpp"
#include "events/make.hpp"

using namespace ricochet;
using events::event_type;

namespace {
struct PipelineTest : ::testing::Test {
    std::filesystem::path dir;
    state::fake::memory_storage* storage = nullptr;
    std::unique_ptr<state::recipient_state> st;
    bounce::suppression_list suppression;
    std::unique_ptr<state::decision_journal> journal;
    events::sequencer seq;
    events::jsonl_log file;
    std::unique_ptr<events::bus> bus;
    std::unique_ptr<daemon::event_pipeline> pipeline;

    void SetUp() override {
        char tmpl[] = "/tmp/ricochet-pipeline-test.XXXXXX";
        dir = ::mkdtemp(tmpl);
        auto mem = std::make_unique<state::fake::memory_storage>();
        storage = mem.get();
        st = std::make_unique<state::recipient_state>(std::move(mem), bounce::status_policy{{"gmail.com"}, 3, 0});
        journal = std::make_unique<state::decision_journal>(dir / "decisions.pending");
        ASSERT_FALSE(seq.open(dir / "events.seq"));
        ASSERT_FALSE(file.open(dir / "events.jsonl"));
        bus = std::make_unique<events::bus>(seq);
        bus->add(file);
        pipeline = std::make_unique<daemon::event_pipeline>(*st, suppression, *journal, *bus);
    }
    void TearDown() override { std::filesystem::remove_all(dir); }
    std::vector<nlohmann::json> lines() {
        std::vector<nlohmann::json> out;
        std::ifstream in(dir / "events.jsonl");
        for (std::string l; std::getline(in, l);) out.push_back(nlohmann::json::parse(l));
        return out;
    }
    static std::vector<events::event> bounce_of(const std::string& rcpt) {
        return {events::queued("Q1", "c", rcpt, 0, "news@example.com", 1000),
                events::attempt_outcome(event_type::bounced, "Q1", "c", rcpt, {550, "5.1.1", "no such user", "mx", "rcpt"},
                                        {"hard", "user-unknown", "r"}, 1, 2000)};
    }
};
}  // namespace

TEST_F(PipelineTest, AStatusChangeReachesTheRcptCheckAndFollowsItsCause) {
    auto evs = bounce_of("a@gmail.com");
    pipeline->apply(evs);
    auto r = suppression.find("a@gmail.com");
    ASSERT_TRUE(r) << "held at once (trusted domain): refused at RCPT from now on";
    EXPECT_EQ(r->status, bounce::address_status::held);
    auto l = lines();
    ASSERT_EQ(l.size(), 3u);
    EXPECT_EQ((std::vector<std::string>{l[0]["type"], l[1]["type"], l[2]["type"]}),
              (std::vector<std::string>{"queued", "bounced", "status_changed"}));
    EXPECT_LT(l[1]["seq"].get<std::uint64_t>(), l[2]["seq"].get<std::uint64_t>());
}

TEST_F(PipelineTest, WhileTheStoreIsDownDecisionsWaitInTheJournalAndGoInLaterInOrder) {
    storage->fail_writes = true;
    auto evs = bounce_of("b@gmail.com");
    pipeline->apply(evs);
    EXPECT_FALSE(journal->empty()) << "kept on disk";
    EXPECT_FALSE(suppression.find("b@gmail.com")) << "not recorded yet";
    EXPECT_EQ(lines().size(), 2u) << "the events themselves are written at once";
    std::vector<events::event> more{events::queue_admin("hold", "Q2", "c", "active", "", 3000)};
    pipeline->apply(more);
    std::error_code ec;
    EXPECT_EQ(journal->load(ec).size(), 2u) << "an admin event is not a decision the store keeps";

    storage->fail_writes = false;
    std::vector<events::event> none;
    pipeline->apply(none);  // the recorder's timer: an empty batch retries the journal
    EXPECT_TRUE(journal->empty());
    ASSERT_TRUE(suppression.find("b@gmail.com"));
    auto l = lines();
    ASSERT_EQ(l.size(), 4u) << "the replayed decisions are not written twice; their status change is";
    EXPECT_EQ(l[3]["type"], "status_changed");
    EXPECT_EQ(l[3]["to"], "held");
}

TEST_F(PipelineTest, TheRcptCheckFollowsTheStoreWhateverOrderChangesArriveIn) {
    auto evs = bounce_of("c@gmail.com");
    pipeline->apply(evs);  // held
    // The operator clears it on the control thread; its status_changed event
    // is still on its way when a stale copy of the earlier change passes.
    std::vector<events::event> changes;
    std::string err;
    ASSERT_TRUE(st->set_status("c@gmail.com", bounce::address_status::active, "clear", 5000, changes, err)) << err;
    bounce::address_record held{"c@gmail.com", bounce::address_status::held, 1, 2000, 2000};
    std::vector<events::event> stale{events::status_changed(held, bounce::address_status::active, "late", 2000)};
    pipeline->apply(stale);
    EXPECT_FALSE(suppression.find("c@gmail.com")) << "the store says active: accepted at RCPT";
}

// Every batch claims a token in the store, for the one case where its
// COMMIT went through but the answer was lost: the journal then replays it
// and the token says it is in. Once a batch is answered, or replayed and
// its journal emptied, no replay can bring it back, and its token is
// dropped with the next batch: the store keeps at most the last one, not a
// row per batch (37 a second at 20 messages a second, kept a week, before).
TEST_F(PipelineTest, BatchTokensAreKeptOnlyWhileAJournalMayStillReplayTheirBatch) {
    for (int i = 0; i < 50; ++i) {
        auto evs = bounce_of("t" + std::to_string(i) + "@example.com");
        pipeline->apply(evs);
    }
    EXPECT_EQ(storage->batch_tokens(), 1u) << "only the last batch's token, until the next batch";

    // The commit goes through, its answer is lost: journalled with its token.
    storage->lose_commit_reply = true;
    auto lost = bounce_of("lost@gmail.com");
    pipeline->apply(lost);
    EXPECT_FALSE(journal->empty());
    EXPECT_EQ(storage->batch_tokens(), 1u) << "the lost batch's (the one before went in its transaction)";
    std::vector<events::event> none;
    pipeline->apply(none);  // the replay finds the token and skips the batch
    EXPECT_TRUE(journal->empty());
    EXPECT_EQ(st->get("lost@gmail.com")->bounce_count, 1) << "counted once";
    auto next = bounce_of("after@example.com");
    pipeline->apply(next);
    EXPECT_EQ(storage->batch_tokens(), 1u) << "the replayed batch's token went with the journal";
}

// A replay is synced before the journal that held it durably is emptied.
// When that sync fails the journal stays (a power loss would lose the
// replayed decisions otherwise) and nothing is published; the replay
// after it finds them recorded and publishes their status change once.
TEST_F(PipelineTest, AReplayIsSyncedBeforeItsJournalIsEmptied) {
    storage->fail_writes = true;
    auto evs = bounce_of("s@gmail.com");
    pipeline->apply(evs);
    ASSERT_FALSE(journal->empty());
    storage->fail_writes = false;
    storage->fail_sync = true;
    std::vector<events::event> none;
    pipeline->apply(none);
    EXPECT_FALSE(journal->empty()) << "kept: the replay is in the store but not on disk";
    EXPECT_FALSE(suppression.find("s@gmail.com")) << "nothing published yet";
    EXPECT_EQ(lines().size(), 2u);
    storage->fail_sync = false;
    pipeline->apply(none);
    EXPECT_TRUE(journal->empty());
    ASSERT_TRUE(suppression.find("s@gmail.com"));
    EXPECT_EQ(st->get("s@gmail.com")->bounce_count, 1) << "recorded once";
    auto l = lines();
    ASSERT_EQ(l.size(), 3u);
    EXPECT_EQ(l[2]["type"], "status_changed");
}
