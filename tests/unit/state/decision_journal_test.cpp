// Tests for state/decision_journal.hpp: decisions kept while the state store
// is down come back whole and in order; a torn last line (a crash mid-write)
// is skipped, not fatal.
#include "state/decision_journal.hpp"
#include "events/make.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

using namespace ricochet;
using namespace ricochet::state;
using events::event_type;

TEST(DecisionJournal, KeepsDecisionsInOrderUntilCleared) {
    char tmpl[] = "/tmp/ricochet-journal-test.XXXXXX";
    std::filesystem::path dir = ::mkdtemp(tmpl);
    decision_journal j(dir / "decisions.pending");
    EXPECT_TRUE(j.empty());
    auto q = events::queued("Q1", "fall", "a@example.org", 0, "news@example.com", 1000);
    auto b = events::attempt_outcome(event_type::bounced, "Q1", "fall", "a@example.org",
                                     {550, "5.1.1", "550 5.1.1 caf\xc3\xa9 unknown", "mx", "rcpt"},
                                     {"hard", "user-unknown", "user-unknown"}, 1, 2000);
    ASSERT_FALSE(j.append({q}));
    ASSERT_FALSE(j.append({b}));
    std::ofstream(dir / "decisions.pending", std::ios::app) << "{\"t\": 3000, \"type\": \"bou";  // torn
    std::error_code ec;
    auto got = j.load(ec);
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[0].type, event_type::queued);
    EXPECT_EQ(got[0].index, 0);
    EXPECT_EQ(got[0].sender, "news@example.com");
    EXPECT_EQ(got[1].type, event_type::bounced);
    EXPECT_EQ(got[1].time_ms, 2000);
    EXPECT_EQ(got[1].category, "user-unknown");
    EXPECT_EQ(got[1].reply, "550 5.1.1 caf\xc3\xa9 unknown");
    EXPECT_FALSE(j.empty());
    ASSERT_FALSE(j.clear());
    EXPECT_TRUE(j.empty());
    EXPECT_TRUE(j.load(ec).empty());
    std::filesystem::remove_all(dir);
}

TEST(DecisionJournal, ReadsTheFormOlderVersionsWrote) {
    // Before events had their own JSON, the journal wrote "qid" and "rcpt":
    // a journal left by an older daemon is still replayed after an upgrade.
    char tmpl[] = "/tmp/ricochet-journal-test.XXXXXX";
    std::filesystem::path dir = ::mkdtemp(tmpl);
    std::ofstream(dir / "decisions.pending")
        << R"({"t":5000,"type":"bounced","qid":"Q7","campaign":"c","rcpt":"b@example.org","kind":"hard",)"
        << R"("category":"user-unknown","rule":"r","reply":"550 5.1.1 no","index":-1,"sender":""})" << "\n";
    decision_journal j(dir / "decisions.pending");
    std::error_code ec;
    auto got = j.load(ec);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ((std::vector<std::string>{got[0].queue_id, got[0].recipient, got[0].kind}),
              (std::vector<std::string>{"Q7", "b@example.org", "hard"}));
    EXPECT_EQ(got[0].time_ms, 5000);
    std::filesystem::remove_all(dir);
}

// Each decision keeps the token of the batch it came in, so a replay can
// leave out a batch the store had committed after all; lines an older
// version wrote have none.
TEST(DecisionJournal, KeepsEachDecisionsBatchToken) {
    char tmpl[] = "/tmp/ricochet-journal-test.XXXXXX";
    std::filesystem::path dir = ::mkdtemp(tmpl);
    decision_journal j(dir / "decisions.pending");
    auto q1 = events::queued("Q1", "fall", "a@example.org", 0, "news@example.com", 1000);
    auto q2 = events::queued("Q2", "fall", "b@example.org", 0, "news@example.com", 1001);
    std::ofstream(dir / "decisions.pending") << "{\"t\": 900, \"type\": \"queued\", \"qid\": \"Q0\", \"rcpt\": \"z@example.org\"}\n";
    ASSERT_FALSE(j.append({q1, q2}, "p-1"));
    ASSERT_FALSE(j.append({q1}, "p-\"2\""));
    std::error_code ec;
    std::vector<std::string> tokens;
    auto got = j.load(ec, &tokens);
    ASSERT_EQ(got.size(), 4u);
    EXPECT_EQ(tokens, (std::vector<std::string>{"", "p-1", "p-1", "p-\"2\""}));
    EXPECT_EQ(got[2].queue_id, "Q2");
    std::filesystem::remove_all(dir);
}
