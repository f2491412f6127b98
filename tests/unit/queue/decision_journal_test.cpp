// Tests for queue/decision_journal.hpp: decisions kept while the state store
// is down come back whole and in order; a torn last line (a crash mid-write)
// is skipped, not fatal.
#include "queue/decision_journal.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

using namespace ricochet::queue;

TEST(DecisionJournal, KeepsDecisionsInOrderUntilCleared) {
    char tmpl[] = "/tmp/ricochet-journal-test.XXXXXX";
    std::filesystem::path dir = ::mkdtemp(tmpl);
    decision_journal j(dir / "decisions.pending");
    EXPECT_TRUE(j.empty());
    decision q{1000, "queued", "Q1", "fall", "a@example.org", "", "", "", "", 0, "news@example.com"};
    decision b{2000, "bounced", "Q1", "fall", "a@example.org", "hard", "user-unknown", "user-unknown",
               "550 5.1.1 caf\xc3\xa9 unknown"};
    ASSERT_FALSE(j.append({q}));
    ASSERT_FALSE(j.append({b}));
    std::ofstream(dir / "decisions.pending", std::ios::app) << "{\"t\": 3000, \"type\": \"bou";  // torn
    std::error_code ec;
    auto got = j.load(ec);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].type, "queued");
    EXPECT_EQ(got[0].index, 0);
    EXPECT_EQ(got[0].sender, "news@example.com");
    EXPECT_EQ(got[1].type, "bounced");
    EXPECT_EQ(got[1].time_ms, 2000);
    EXPECT_EQ(got[1].category, "user-unknown");
    EXPECT_EQ(got[1].reply, "550 5.1.1 caf\xc3\xa9 unknown");
    EXPECT_FALSE(j.empty());
    ASSERT_FALSE(j.clear());
    EXPECT_TRUE(j.empty());
    EXPECT_TRUE(j.load(ec).empty());
    std::filesystem::remove_all(dir);
}
