// Tests for queue/state_store.hpp: decisions in SQLite drive the status
// rules; history, lists, suppression, stats and the message `bounced` flag.
#include "queue/state_store.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

using namespace ricochet;
using namespace ricochet::queue;

namespace {
constexpr std::int64_t day = 86400 * 1000;

struct store_fixture : ::testing::Test {
    std::filesystem::path dir;
    std::unique_ptr<state_store> st;
    void SetUp() override {
        char tmpl[] = "/tmp/ricochet-state-test.XXXXXX";
        dir = ::mkdtemp(tmpl);
        std::string err;
        st = state_store::open(dir / "state.db", {{"gmail.com"}, 3, 15 * day}, err);
        ASSERT_TRUE(st) << err;
    }
    void TearDown() override {
        st.reset();
        std::filesystem::remove_all(dir);
    }
    void rec(std::vector<decision> ds) {
        std::string err;
        st->record(ds, err);
        ASSERT_EQ(err, "");
    }
    static decision d(std::int64_t t, std::string type, std::string qid, std::string rcpt, std::string kind = "",
                      std::string cat = "", std::string campaign = "c1") {
        return {t, std::move(type), std::move(qid), std::move(campaign), std::move(rcpt), std::move(kind), std::move(cat),
                "rule", "reply " + type};
    }
};
}  // namespace

TEST_F(store_fixture, RetriesOfOneMessageCountAsOneBounce) {
    std::vector<decision> ds{d(0, "queued", "Q1", "a@example.com")};
    for (int i = 1; i <= 288; ++i) ds.push_back(d(i * 900000, "deferred", "Q1", "a@example.com", "soft", "other-temporary"));
    ds.push_back(d(72 * 3600 * 1000LL, "expired", "Q1", "a@example.com", "soft", "other-temporary"));
    rec(ds);
    auto r = st->get("A@Example.com");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->bounce_count, 1);
    EXPECT_EQ(r->status, bounce::address_status::bounced);
    EXPECT_EQ(st->message_bounced("Q1"), true);
}

TEST_F(store_fixture, OneMessagesFailureCountsOnceHoweverOftenItIsReported) {
    // The in-session 5xx, then the same failure as a DSN, then the DSN again.
    rec({d(0, "queued", "Q1", "v@example.com"), d(1000, "bounced", "Q1", "v@example.com", "soft", "mailbox-full")});
    rec({d(2000, "bounced", "Q1", "V@example.com", "soft", "mailbox-full")});
    rec({d(3000, "bounced", "Q1", "v@example.com", "soft", "mailbox-full")});
    auto r = st->get("v@example.com");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->bounce_count, 1);
    EXPECT_EQ(r->status, bounce::address_status::bounced);
    EXPECT_EQ(st->history("v@example.com").size(), 4u) << "every report is still in the history";
    rec({d(4000, "bounced", "Q2", "v@example.com", "soft", "mailbox-full")});
    EXPECT_EQ(st->get("v@example.com")->bounce_count, 2) << "another message counts again";
}

TEST_F(store_fixture, TrustedHardBounceHoldsAndIsSuppressed) {
    rec({d(1000, "bounced", "Q1", "x@gmail.com", "hard", "user-unknown")});
    EXPECT_EQ(st->get("x@gmail.com")->status, bounce::address_status::held);
    EXPECT_EQ(st->list(bounce::address_status::held).size(), 1u);
}

TEST_F(store_fixture, BlockLeavesTheAddressAloneAndTheMessageUnflagged) {
    rec({d(0, "queued", "Q1", "y@example.com"), d(1000, "bounced", "Q1", "y@example.com", "block", "auth-failure")});
    EXPECT_FALSE(st->get("y@example.com")) << "no record: nothing against the address";
    EXPECT_EQ(st->message_bounced("Q1"), false);
}

TEST_F(store_fixture, HeldAfterThreeBouncesOverFifteenDays) {
    rec({d(0, "bounced", "Q1", "z@example.com", "hard", "user-unknown"),
         d(1 * day, "bounced", "Q2", "z@example.com", "hard", "user-unknown"),
         d(16 * day, "bounced", "Q3", "z@example.com", "soft", "mailbox-full")});
    auto r = st->get("z@example.com");
    EXPECT_EQ(r->status, bounce::address_status::held);
    EXPECT_EQ(r->bounce_count, 3);
    EXPECT_EQ(r->first_bounce_ms, 0);
    EXPECT_EQ(r->last_bounce_ms, 16 * day);
    EXPECT_EQ(st->history("z@example.com").size(), 3u);
}

TEST_F(store_fixture, ComplaintUnsubscribesAndClearBringsBack) {
    rec({d(1000, "complaint", "Q1", "w@example.com")});
    EXPECT_EQ(st->get("w@example.com")->status, bounce::address_status::unsubscribed);
    std::string err;
    ASSERT_TRUE(st->set_status("w@example.com", bounce::address_status::active, "clear", 2000, err));
    auto r = st->get("w@example.com");
    EXPECT_EQ(r->status, bounce::address_status::active);
    EXPECT_EQ(r->bounce_count, 0);
    EXPECT_EQ(st->history("w@example.com")[0].type, "admin");
}

TEST_F(store_fixture, EngageDoesNotUndoAnUnsubscribe) {
    std::string err;
    ASSERT_TRUE(st->set_status("u@example.com", bounce::address_status::unsubscribed, "unsubscribe", 1000, err));
    EXPECT_FALSE(st->set_status("u@example.com", bounce::address_status::active, "engage", 2000, err));
    EXPECT_NE(err.find("only `recipient clear`"), std::string::npos) << err;
    EXPECT_EQ(st->get("u@example.com")->status, bounce::address_status::unsubscribed);
    EXPECT_TRUE(st->set_status("u@example.com", bounce::address_status::active, "clear", 3000, err));
}

TEST_F(store_fixture, StatsPerCampaignAndDomain) {
    rec({d(0, "queued", "Q1", "a@one.example", "", "", "c1"), d(0, "queued", "Q2", "b@two.example", "", "", "c1"),
         d(0, "queued", "Q3", "c@two.example", "", "", "c2"), d(1, "delivered", "Q1", "a@one.example", "", "", "c1"),
         d(1, "bounced", "Q2", "b@two.example", "hard", "user-unknown", "c1"),
         d(1, "deferred", "Q3", "c@two.example", "technical", "rate-limited", "c2"),
         d(2, "bounced", "Q3", "c@two.example", "block", "blocklisted", "c2")});
    auto by_campaign = st->stats("campaign", "", "", 0);
    ASSERT_EQ(by_campaign.size(), 2u);
    EXPECT_EQ(by_campaign[0].key, "c1");
    EXPECT_EQ((std::vector<std::int64_t>{by_campaign[0].sent, by_campaign[0].delivered, by_campaign[0].hard}),
              (std::vector<std::int64_t>{2, 1, 1}));
    EXPECT_DOUBLE_EQ(by_campaign[0].bounce_rate(), 0.5);
    EXPECT_EQ(by_campaign[1].block, 1);
    EXPECT_DOUBLE_EQ(by_campaign[1].bounce_rate(), 0.0) << "blocks are not bounces of the address";
    auto two = st->stats("domain", "", "two.example", 0);
    ASSERT_EQ(two.size(), 1u);
    EXPECT_EQ(two[0].sent, 2);
    EXPECT_EQ(two[0].deferred, 1);
    EXPECT_EQ(st->stats("campaign", "c2", "", 0).size(), 1u);
    EXPECT_EQ(st->stats("campaign", "", "", 3).size(), 0u) << "--since";
}
