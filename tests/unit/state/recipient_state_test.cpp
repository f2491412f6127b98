// Tests for state/recipient_state.hpp: decisions drive the status rules;
// history, lists, suppression, stats and the message `bounced` flag. Every
// test runs twice: over SQLite and over an in-memory storage, so the rules
// hold above whichever backend keeps the tables.
#include "base/text.hpp"
#include "state/recipient_state.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <thread>
#include <tuple>

#include "memory_storage.hpp"
#include "state/sqlite_storage.hpp"

using namespace ricochet;
using namespace ricochet::state;
using events::event;
using events::event_type;

namespace {
constexpr std::int64_t day = 86400 * 1000;

// PostgreSQL: RICOCHET_TEST_PG names a server ("postgresql://user:pass@host:port",
// no database); tests/integration/test_postgresql.py starts one and runs
// these. Each test gets a database of its own, dropped at the end.
struct pg_database {
    std::string url, name;
    explicit operator bool() const { return !url.empty(); }
    static pg_database create() {
        const char* base = std::getenv("RICOCHET_TEST_PG");
        if (!base || !*base) return {};
        static int n = 0;
        std::string name = "unit_" + std::to_string(::getpid()) + "_" + std::to_string(++n);
        if (!admin(base, "DROP DATABASE IF EXISTS " + name) || !admin(base, "CREATE DATABASE " + name)) return {};
        return {std::string(base) + "/" + name, name};
    }
    static bool admin(const std::string& base, const std::string& sql) {
        PGconn* c = PQconnectdb((base + "/postgres").c_str());
        bool ok = PQstatus(c) == CONNECTION_OK;
        if (ok) {
            PGresult* r = PQexec(c, sql.c_str());
            ok = PQresultStatus(r) == PGRES_COMMAND_OK;
            if (!ok) ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
            PQclear(r);
        } else {
            ADD_FAILURE() << PQerrorMessage(c);
        }
        PQfinish(c);
        return ok;
    }
    void drop() {
        if (!name.empty()) admin(std::getenv("RICOCHET_TEST_PG"), "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
        name.clear();
    }
};

struct store_fixture : ::testing::TestWithParam<std::string> {
    std::filesystem::path dir;
    std::unique_ptr<recipient_state> st;
    std::vector<event> changes;  // every status_changed so far
    pg_database pg;
    void SetUp() override {
        char tmpl[] = "/tmp/ricochet-state-test.XXXXXX";
        dir = ::mkdtemp(tmpl);
        std::string err;
        bounce::status_policy policy{{"gmail.com"}, 3, 15 * day};
        if (GetParam() == "memory") {
            st = std::make_unique<recipient_state>(std::make_unique<fake::memory_storage>(), policy);
        } else if (GetParam() == "postgresql") {
            if (!(pg = pg_database::create())) GTEST_SKIP() << "no RICOCHET_TEST_PG (test_postgresql runs these)";
            st = open_state(pg.url, policy, false, err);
        } else {
            st = open_state("sqlite:" + (dir / "state.db").string(), policy, false, err);
        }
        ASSERT_TRUE(st) << err;
    }
    void TearDown() override {
        st.reset();
        pg.drop();
        std::filesystem::remove_all(dir);
    }
    void rec(std::vector<event> ds) {
        std::string err;
        auto c = st->record(ds, err);
        ASSERT_EQ(err, "");
        changes.insert(changes.end(), c.begin(), c.end());
    }
    bool set(const std::string& a, bounce::address_status s, const std::string& why, std::int64_t t, std::string& err) {
        return st->set_status(a, s, why, t, changes, err);
    }
    static event d(std::int64_t t, std::string type, std::string qid, std::string rcpt, std::string kind = "",
                   std::string cat = "", std::string campaign = "c1") {
        event e;
        e.type = *events::parse_event_type(type);
        e.time_ms = t;
        e.queue_id = std::move(qid);
        e.campaign = std::move(campaign);
        e.recipient = std::move(rcpt);
        e.kind = std::move(kind);
        e.category = std::move(cat);
        e.rule = "rule";
        e.reply = "reply " + type;
        return e;
    }
};
}  // namespace

TEST_P(store_fixture, RetriesOfOneMessageCountAsOneBounce) {
    std::vector<event> ds{d(0, "queued", "Q1", "a@example.com")};
    for (int i = 1; i <= 288; ++i) ds.push_back(d(i * 900000, "deferred", "Q1", "a@example.com", "soft", "other-temporary"));
    ds.push_back(d(72 * 3600 * 1000LL, "expired", "Q1", "a@example.com", "soft", "other-temporary"));
    rec(ds);
    auto r = st->get("A@Example.com");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->bounce_count, 1);
    EXPECT_EQ(r->status, bounce::address_status::bounced);
    EXPECT_EQ(st->message_bounced("Q1"), true);
}

TEST_P(store_fixture, OneMessagesFailureCountsOnceHoweverOftenItIsReported) {
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

TEST_P(store_fixture, TrustedHardBounceHoldsAndIsSuppressed) {
    rec({d(1000, "bounced", "Q1", "x@gmail.com", "hard", "user-unknown")});
    EXPECT_EQ(st->get("x@gmail.com")->status, bounce::address_status::held);
    EXPECT_EQ(st->list(bounce::address_status::held).size(), 1u);
}

TEST_P(store_fixture, BlockLeavesTheAddressAloneAndTheMessageUnflagged) {
    rec({d(0, "queued", "Q1", "y@example.com"), d(1000, "bounced", "Q1", "y@example.com", "block", "auth-failure")});
    EXPECT_FALSE(st->get("y@example.com")) << "no record: nothing against the address";
    EXPECT_EQ(st->message_bounced("Q1"), false);
}

TEST_P(store_fixture, HeldAfterThreeBouncesOverFifteenDays) {
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

TEST_P(store_fixture, ComplaintUnsubscribesAndClearBringsBack) {
    rec({d(1000, "complaint", "Q1", "w@example.com")});
    EXPECT_EQ(st->get("w@example.com")->status, bounce::address_status::unsubscribed);
    std::string err;
    ASSERT_TRUE(set("w@example.com", bounce::address_status::active, "clear", 2000, err));
    auto r = st->get("w@example.com");
    EXPECT_EQ(r->status, bounce::address_status::active);
    EXPECT_EQ(r->bounce_count, 0);
    EXPECT_EQ(st->history("w@example.com")[0].type, event_type::admin);
}

TEST_P(store_fixture, EngageDoesNotUndoAnUnsubscribe) {
    std::string err;
    ASSERT_TRUE(set("u@example.com", bounce::address_status::unsubscribed, "unsubscribe", 1000, err));
    EXPECT_FALSE(set("u@example.com", bounce::address_status::active, "engage", 2000, err));
    EXPECT_NE(err.find("only `recipient clear`"), std::string::npos) << err;
    EXPECT_EQ(st->get("u@example.com")->status, bounce::address_status::unsubscribed);
    EXPECT_TRUE(set("u@example.com", bounce::address_status::active, "clear", 3000, err));
}

TEST_P(store_fixture, StatsPerCampaignAndDomain) {
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

TEST_P(store_fixture, EveryChangeOfStatusIsAnEventWithTheFiguresACrmNeeds) {
    rec({d(0, "queued", "Q1", "s@gmail.com"), d(1000, "deferred", "Q1", "s@gmail.com", "soft", "other-temporary")});
    EXPECT_TRUE(changes.empty()) << "a deferral changes nothing";
    rec({d(2000, "bounced", "Q1", "S@gmail.com", "hard", "user-unknown")});
    ASSERT_EQ(changes.size(), 1u);
    auto& c = changes[0];
    EXPECT_EQ(c.type, event_type::status_changed);
    EXPECT_EQ((std::vector<std::string>{c.recipient, c.from, c.to}),
              (std::vector<std::string>{"s@gmail.com", "active", "held"}));
    EXPECT_EQ(c.bounce_count, 1);
    EXPECT_EQ(c.first_bounce_ms, 2000);
    EXPECT_EQ(c.last_bounce_ms, 2000);
    EXPECT_NE(c.reason.find("user-unknown"), std::string::npos) << c.reason;
    rec({d(3000, "bounced", "Q1", "s@gmail.com", "hard", "user-unknown")});
    EXPECT_EQ(changes.size(), 1u) << "the same failure reported again moves nothing";
    std::string err;
    ASSERT_TRUE(set("s@gmail.com", bounce::address_status::active, "clear", 4000, err)) << err;
    ASSERT_EQ(changes.size(), 2u);
    EXPECT_EQ((std::vector<std::string>{changes[1].from, changes[1].to, changes[1].reason}),
              (std::vector<std::string>{"held", "active", "admin: clear"}));
    ASSERT_TRUE(set("s@gmail.com", bounce::address_status::active, "engage", 5000, err));
    EXPECT_EQ(changes.size(), 2u) << "already active: no change, no event";
}

TEST_P(store_fixture, AVerpTokenFindsItsRecipientCampaignAndSender) {
    auto q = d(0, "queued", "Q9", "Who@Example.com", "", "", "fall");
    q.index = 3;
    q.sender = "news@example.net";
    rec({q});
    EXPECT_EQ(st->recipient_of("Q9", 3), "who@example.com");
    EXPECT_EQ(st->recipient_of("Q9", 2), std::nullopt);
    EXPECT_EQ(st->campaign_of("Q9"), "fall");
    EXPECT_EQ(st->sender_of("Q9"), "news@example.net");
    EXPECT_FALSE(st->final_failure_known("Q9", "who@example.com"));
    rec({d(1, "bounced", "Q9", "who@example.com", "hard", "user-unknown")});
    EXPECT_TRUE(st->final_failure_known("Q9", "WHO@example.com"));
}

// A batch recorded twice with the same token (its commit went through, the
// answer was lost, the journal replays it) counts once: no decision row,
// bounce or stat twice. A replay that mixes it with a new batch records
// only the new one.
TEST_P(store_fixture, ABatchRecordedAgainWithItsTokenCountsOnce) {
    std::vector<event> batch{d(1000, "queued", "Q1", "a@gmail.com"), d(2000, "bounced", "Q1", "a@gmail.com", "hard", "user-unknown")};
    std::vector<std::string> tokens(batch.size(), "node-1");
    std::string err;
    auto first = st->record(batch, err, nullptr, &tokens);
    ASSERT_EQ(err, "");
    EXPECT_EQ(first.size(), 1u) << "held";
    std::vector<event> replay = batch;
    replay.push_back(d(3000, "queued", "Q2", "b@example.com"));
    tokens.push_back("node-2");
    auto again = st->record(replay, err, nullptr, &tokens);
    ASSERT_EQ(err, "");
    // A replay happens when the first attempt heard of no success, so
    // published nothing: the status change it made comes back for that.
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0].type, event_type::status_changed);
    EXPECT_EQ((std::vector<std::string>{again[0].recipient, again[0].from, again[0].to}),
              (std::vector<std::string>{first[0].recipient, first[0].from, first[0].to}));
    EXPECT_EQ(again[0].bounce_count, 1);
    EXPECT_EQ(st->history("a@gmail.com").size(), 2u) << "queued and bounced, once each";
    EXPECT_EQ(st->get("a@gmail.com")->bounce_count, 1);
    auto s = st->stats("campaign", "", "", 0);
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ((std::vector<std::int64_t>{s[0].sent, s[0].hard}), (std::vector<std::int64_t>{2, 1}));
    // All of it recorded before: nothing written, no error; the changes again.
    EXPECT_EQ(st->record(replay, err, nullptr, &tokens).size(), 1u);
    EXPECT_EQ(err, "");
    EXPECT_EQ(st->stats("campaign", "", "", 0)[0].sent, 2);
}

// A token the caller forgets is dropped in the next batch's transaction
// (not at once: that would be a write of its own): after that, the batch is
// no longer known, in every backend.
TEST_P(store_fixture, AForgottenTokenIsDroppedWithTheNextBatch) {
    std::vector<event> one{d(1000, "queued", "Q1", "a@example.com")}, two{d(2000, "queued", "Q2", "b@example.com")};
    std::vector<std::string> t1{"node-1"}, t2{"node-2"};
    std::string err;
    st->record(one, err, nullptr, &t1);
    ASSERT_EQ(err, "");
    std::size_t skipped = 0;
    st->record(one, err, nullptr, &t1, &skipped);
    EXPECT_EQ(skipped, 1u) << "known: a replay skips it";
    st->forget_batches(t1);
    st->record(two, err, nullptr, &t2);
    ASSERT_EQ(err, "");
    st->record(one, err, nullptr, &t1, &skipped);
    EXPECT_EQ(skipped, 0u) << "dropped with the batch after";
    st->record(two, err, nullptr, &t2, &skipped);
    EXPECT_EQ(skipped, 1u) << "the tokens not forgotten stay";
}

// A reply may carry any bytes (Latin-1, a cut multibyte character, NUL):
// the batch goes in all the same (PostgreSQL refuses such text; the bytes
// become U+FFFD there), and what is read back is the reply's readable part.
TEST_P(store_fixture, AReplyWithBytesThatAreNotUtf8IsRecordedAllTheSame) {
    auto b = d(2000, "bounced", "Q1", "a@gmail.com", "hard", "user-unknown");
    const char raw[] = "550 5.1.1 Benutzer unbekannt: M\xfcller \xe2\x82 end\0x";
    b.reply.assign(raw, sizeof raw - 1);
    std::string err;
    st->record({d(1000, "queued", "Q1", "a@gmail.com"), b}, err);
    ASSERT_EQ(err, "") << "one bad reply must not hold up the batch (it would wait in the journal for ever)";
    auto r = st->get("a@gmail.com");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, bounce::address_status::held);
    EXPECT_TRUE(r->last_reply.starts_with("550 5.1.1 Benutzer unbekannt: M")) << r->last_reply;
    EXPECT_NE(r->last_reply.find(" end"), std::string::npos) << r->last_reply;
    auto h = st->history("a@gmail.com");
    ASSERT_EQ(h.size(), 2u);
    // Two campaigns whose Latin-1 names repair to one text (U+FFFD) add up in
    // one row of the hourly counts: one INSERT must not update a row twice.
    st->record({d(3000, "bounced", "Q2", "b@example.com", "hard", "user-unknown", "F\xeate"),
                d(3000, "bounced", "Q3", "c@example.com", "hard", "user-unknown", "F\xe8te")},
               err);
    ASSERT_EQ(err, "") << "a batch that can never go in would wait in the journal for ever";
}

// Two nodes applying bounces to the same addresses in opposite orders: each
// batch locks its addresses at once, in one order, so neither waits for
// the other in a cycle (PostgreSQL would abort one: "deadlock detected").
TEST(RecipientStatePostgres, TwoNodesBouncingTheSameAddressesInOppositeOrdersNeverDeadlock) {
    auto pg = pg_database::create();
    if (!pg) GTEST_SKIP() << "no RICOCHET_TEST_PG (test_postgresql runs these)";
    bounce::status_policy policy{{}, 1000, 15 * day};
    std::string err;
    auto a = open_state(pg.url, policy, false, err), b = open_state(pg.url, policy, false, err);
    ASSERT_TRUE(a && b) << err;
    constexpr int rounds = 150, width = 6;
    std::vector<std::string> errors[2];
    auto run = [&](recipient_state& st, int node) {
        for (int i = 0; i < rounds; ++i) {
            std::vector<event> batch;
            for (int k = 0; k < width; ++k) {
                int n = node == 0 ? k : width - 1 - k;
                // Each node's own campaign and reading: their hourly counter
                // rows differ, so only the addresses are shared.
                auto e = store_fixture::d(1000 + i, "bounced", "Q" + std::to_string(node) + "-" + std::to_string(i),
                                          "r" + std::to_string(n) + "@example.com", node ? "hard" : "soft",
                                          node ? "user-unknown" : "mailbox-full", "c" + std::to_string(node));
                e.index = n;
                batch.push_back(e);
            }
            std::string e;
            st.record(batch, e);
            if (!e.empty()) errors[node].push_back(e);
        }
    };
    std::thread t0(run, std::ref(*a), 0), t1(run, std::ref(*b), 1);
    t0.join(), t1.join();
    EXPECT_TRUE(errors[0].empty() && errors[1].empty())
        << (errors[0].empty() ? (errors[1].empty() ? "" : errors[1][0]) : errors[0][0]);
    for (int n = 0; n < width; ++n)
        EXPECT_EQ(a->get("r" + std::to_string(n) + "@example.com")->bounce_count, 2 * rounds) << "every bounce counted";
    a.reset(), b.reset();
    pg.drop();
}

TEST(Utf8, IllFormedBytesAndNulBecomeTheReplacementCharacter) {
    std::string s = "ok \xc3\xa9 \xff \xe2\x82 \xed\xa0\x80 \xf0\x9f\x98\x80";
    s += '\0';
    EXPECT_TRUE(ricochet::base::to_valid_utf8(s));
    EXPECT_EQ(s, "ok \xc3\xa9 \xef\xbf\xbd \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xf0\x9f\x98\x80\xef\xbf\xbd");
    std::string plain = "plain ascii";
    EXPECT_FALSE(ricochet::base::to_valid_utf8(plain));
}

INSTANTIATE_TEST_SUITE_P(Backends, store_fixture, ::testing::Values("sqlite", "memory", "postgresql"),
                         [](const auto& info) { return info.param; });

TEST(RecipientState, AStoreThatFailsWritesNothingAndSaysWhy) {
    auto mem = std::make_unique<fake::memory_storage>();
    auto* raw = mem.get();
    recipient_state st(std::move(mem), {{}, 3, 15 * day});
    raw->fail_writes = true;
    event e;
    e.type = event_type::complaint;
    e.recipient = "a@example.com";
    std::string err;
    EXPECT_TRUE(st.record({e}, err).empty());
    EXPECT_NE(err, "") << "the caller keeps the batch in its journal";
    raw->fail_writes = false;
    EXPECT_FALSE(st.get("a@example.com")) << "nothing half-written";
}

TEST(RecipientState, ABatchThatFailsHalfwayLeavesNothingOfItself) {
    for (int n = 0; n < 8; ++n) {  // the store fails at each write of the batch in turn
        auto mem = std::make_unique<fake::memory_storage>();
        auto* raw = mem.get();
        recipient_state st(std::move(mem), {{"gmail.com"}, 3, 15 * day});
        event q;
        q.type = event_type::queued;
        q.queue_id = "Q1";
        q.recipient = "a@gmail.com";
        q.index = 0;
        event b = q;
        b.type = event_type::bounced;
        b.kind = "hard";
        b.category = "user-unknown";
        b.time_ms = 1000;
        raw->fail_after = n;
        std::string err;
        auto changes = st.record({q, b}, err);
        raw->fail_after = -1;
        if (err.empty()) {  // n was past the batch's last write
            EXPECT_EQ(st.get("a@gmail.com")->status, bounce::address_status::held) << n;
            continue;
        }
        EXPECT_TRUE(changes.empty()) << n;
        EXPECT_FALSE(st.get("a@gmail.com")) << "write " << n << " failed: nothing of the batch stays";
        EXPECT_FALSE(st.recipient_of("Q1", 0)) << n;
        EXPECT_FALSE(st.final_failure_known("Q1", "a@gmail.com")) << n << ": the failure would never count";
        EXPECT_TRUE(st.history("a@gmail.com").empty()) << n;
    }
}

// The store committed, but its answer never came (a connection lost at
// COMMIT): the caller journals the batch and replays it with the same
// token; it is left out, not counted twice.
TEST(RecipientState, ACommitWhoseAnswerWasLostIsNotRecordedTwiceOnReplay) {
    auto mem = std::make_unique<fake::memory_storage>();
    auto* raw = mem.get();
    recipient_state st(std::move(mem), {{"gmail.com"}, 3, 15 * day});
    std::vector<event> batch{store_fixture::d(1000, "queued", "Q1", "a@gmail.com"),
                             store_fixture::d(2000, "bounced", "Q1", "a@gmail.com", "hard", "user-unknown")};
    std::vector<std::string> tokens(batch.size(), "t-1");
    raw->lose_commit_reply = true;
    std::string err;
    st.record(batch, err, nullptr, &tokens);
    EXPECT_NE(err, "") << "the caller cannot know it went through";
    EXPECT_EQ(st.get("a@gmail.com")->bounce_count, 1) << "it did";
    auto replayed = st.record(batch, err, nullptr, &tokens);  // the replay
    EXPECT_EQ(err, "");
    // The attempt published nothing (it failed as far as it knew): the
    // replay publishes the change it made, from where it kept it.
    ASSERT_EQ(replayed.size(), 1u);
    EXPECT_EQ(replayed[0].type, event_type::status_changed);
    EXPECT_EQ(replayed[0].recipient, "a@gmail.com");
    EXPECT_EQ(replayed[0].to, "held");
    EXPECT_EQ(st.history("a@gmail.com").size(), 2u);
    EXPECT_EQ(st.stats("campaign", "", "", 0)[0].sent, 1);
    // Without tokens (a journal from an older version) it would count twice.
    st.record(batch, err);
    EXPECT_EQ(st.history("a@gmail.com").size(), 4u);
}

TEST(RecipientState, TheBackendIsChosenByTheUrlScheme) {
    struct row {
        std::string url;
        bool ok;
        std::string error_has;
    };
    char tmpl[] = "/tmp/ricochet-state-test.XXXXXX";
    std::filesystem::path dir = ::mkdtemp(tmpl);
    for (auto& r : std::vector<row>{{"sqlite:" + (dir / "s.db").string(), true, ""},
                                    // Chosen, then refused for want of a server there (port 9: nothing listens).
                                    {"postgresql://u:secret@127.0.0.1:9/db", false, "postgresql://u:***@127.0.0.1:9/db: "},
                                    {"postgresql:db", false, "expected postgresql://"},
                                    {"mysql://u:secret@localhost/db", false, "unknown backend \"mysql\""},
                                    {"var/state.db", false, "expected sqlite:PATH"}}) {
        std::string err;
        auto st = open_state(r.url, {}, false, err);
        EXPECT_EQ(bool(st), r.ok) << r.url << ": " << err;
        if (!r.ok) {
            EXPECT_NE(err.find(r.error_has), std::string::npos) << r.url << ": got \"" << err << "\"";
            EXPECT_EQ(err.find("secret"), std::string::npos) << "a password never shows: " << err;
        }
    }
    std::filesystem::remove_all(dir);
}

TEST_P(store_fixture, ImportedSuppressionsAreKeptInEntryOrderAndPaged) {
    std::vector<state::suppression_entry> es;
    for (int i = 0; i < 25000; ++i) es.push_back({"u" + std::to_string(100000 + i) + "@x.example", "import", 1});
    es.push_back({"@blocked.example", "bad domain", 2});
    es.push_back({"u100000@x.example", "again", 3});  // replaces the first
    std::string err;
    EXPECT_EQ(st->add_suppressions(es, err), es.size()) << err;
    auto first = st->suppressions("", 2);
    ASSERT_EQ(first.size(), 2u);
    EXPECT_EQ(first[0].entry, "@blocked.example");
    EXPECT_EQ(first[1].entry, "u100000@x.example");
    EXPECT_EQ(first[1].reason, "again");
    EXPECT_EQ(st->suppressions("u124998@x.example", 0).size(), 1u);
    EXPECT_EQ(st->suppressions().size(), 25001u);
    EXPECT_EQ(st->remove_suppression("@blocked.example", err), std::optional<bool>(true));
    EXPECT_EQ(st->remove_suppression("@blocked.example", err), std::optional<bool>(false));
}

// Retention (SQLite only; the fake keeps everything): old decisions go in
// small batches, `stats` keeps its totals (folded per day), a held address
// stays held, and old messages go by queue id.
TEST(RecipientStateRetention, PruningKeepsStatsAndStatusesAndFreesOldRows) {
    char tmpl[] = "/tmp/ricochet-retention-test.XXXXXX";
    std::filesystem::path dir = ::mkdtemp(tmpl);
    std::string err;
    bounce::status_policy policy{{"gmail.com"}, 3, 15 * day};
    auto st = open_state("sqlite:" + (dir / "state.db").string(), policy, false, err);
    ASSERT_TRUE(st) << err;
    auto d = store_fixture::d;
    std::vector<event> evs;
    // Days 0-9: 20 messages a day over two campaigns and two domains; one
    // recipient deferred on days d and d+1 (one deferral in stats), hard
    // bounces at gmail.com (held), delivered the rest.
    for (int k = 0; k < 10; ++k) {
        for (int m = 0; m < 20; ++m) {
            std::string q = "Q" + std::to_string(k) + "-" + std::to_string(m);
            std::string rcpt = "u" + std::to_string(m) + (m % 2 ? "@gmail.com" : "@example.org");
            std::string camp = m % 3 ? "spring" : "autumn";
            std::int64_t t = k * day + m * 1000;
            evs.push_back(d(t, "queued", q, rcpt, "", "", camp));
            if (m == 0) {
                evs.push_back(d(t + 1, "deferred", q, rcpt, "technical", "rate-limited", camp));
                evs.push_back(d(t + day / 2, "deferred", q, rcpt, "technical", "rate-limited", camp));
                evs.push_back(d(t + day + 5, "deferred", q, rcpt, "technical", "rate-limited", camp));
                evs.push_back(d(t + day + 6, "delivered", q, rcpt, "", "", camp));
            } else if (m == 1) {
                evs.push_back(d(t + 1, "bounced", q, "held" + std::to_string(k) + "@gmail.com", "hard", "user-unknown", camp));
            } else {
                evs.push_back(d(t + 2, "delivered", q, rcpt, "", "", camp));
            }
        }
    }
    // Recorded as they happen: in time order.
    std::stable_sort(evs.begin(), evs.end(), [](const event& a, const event& b) { return a.time_ms < b.time_ms; });
    st->record(evs, err);
    ASSERT_EQ(err, "");
    auto before_c = st->stats("campaign", "", "", 0);
    auto before_d = st->stats("domain", "", "", 0);
    ASSERT_EQ(before_c.size(), 2u);
    ASSERT_EQ(st->history("held0@gmail.com", 10).size(), 1u);
    // Everything before day 7, 7 rows at a time (batches split days and the
    // deferred recipient's rows), and the messages of days 0-4 (queue ids
    // sort by time: "Q5" comes after every "Q0-..." to "Q4-...").
    prune_counts total, c;
    int calls = 0;
    do {
        ASSERT_TRUE(st->prune(7 * day, "Q5", 7, c, err)) << err;
        total.decisions += c.decisions;
        total.messages += c.messages;
        ++calls;
    } while (c.more && calls < 1000);
    st->reclaim_space();
    EXPECT_GT(calls, 10) << "small batches";
    EXPECT_EQ(total.messages, 100);
    EXPECT_GT(total.decisions, 7 * 20 * 2 - 10);
    auto after_c = st->stats("campaign", "", "", 0);
    auto after_d = st->stats("domain", "", "", 0);
    auto same = [](const std::vector<stats_row>& a, const std::vector<stats_row>& b) {
        if (a.size() != b.size()) return false;
        for (std::size_t i = 0; i < a.size(); ++i)
            if (a[i].key != b[i].key || a[i].sent != b[i].sent || a[i].delivered != b[i].delivered ||
                a[i].deferred != b[i].deferred || a[i].hard != b[i].hard || a[i].soft != b[i].soft ||
                a[i].block != b[i].block || a[i].technical != b[i].technical)
                return false;
        return true;
    };
    auto show = [](const std::vector<stats_row>& v) {
        std::string o;
        for (auto& r : v)
            o += r.key + ": " + std::to_string(r.sent) + " " + std::to_string(r.delivered) + " " + std::to_string(r.deferred) +
                 " " + std::to_string(r.hard) + "; ";
        return o;
    };
    EXPECT_TRUE(same(before_c, after_c)) << "stats by campaign unchanged: " << show(before_c) << " / " << show(after_c);
    EXPECT_TRUE(same(before_d, after_d)) << "stats by domain unchanged: " << show(before_d) << " / " << show(after_d);
    EXPECT_EQ(before_c[0].deferred + before_c[1].deferred, 10) << "one deferral per deferred recipient";
    EXPECT_TRUE(st->history("held0@gmail.com", 10).empty()) << "old history goes";
    EXPECT_EQ(st->history("held9@gmail.com", 10).size(), 1u) << "recent history stays";
    auto held = st->list(bounce::address_status::held);
    EXPECT_EQ(held.size(), 10u) << "statuses are never pruned";
    EXPECT_EQ(st->campaign_of("Q4-2"), "") << "old messages go";
    EXPECT_EQ(st->campaign_of("Q5-2"), "spring") << "newer ones stay";
    // Nothing left to prune: a no-op.
    ASSERT_TRUE(st->prune(7 * day, "Q5", 7, c, err));
    EXPECT_EQ(c.decisions + c.messages, 0);
    EXPECT_FALSE(c.more);
    st.reset();
    std::filesystem::remove_all(dir);
}

// The dashboard's series: SQLite keeps counts per hour as decisions are
// recorded (in batches of any size); the in-memory backend computes them
// from the decisions. The two agree for every bucket and grouping.
struct series_fixture : ::testing::TestWithParam<std::string> {};

TEST_P(series_fixture, HourlyCountsAgreeWithTheDecisions) {
    char tmpl[] = "/tmp/ricochet-series-test.XXXXXX";
    std::filesystem::path dir = ::mkdtemp(tmpl);
    std::string err;
    bounce::status_policy policy{{"gmail.com"}, 3, 15 * day};
    pg_database pg;
    if (GetParam() == "postgresql" && !(pg = pg_database::create()))
        GTEST_SKIP() << "no RICOCHET_TEST_PG (test_postgresql runs these)";
    auto sql = open_state(pg ? pg.url : "sqlite:" + (dir / "state.db").string(), policy, false, err);
    ASSERT_TRUE(sql) << err;
    recipient_state mem(std::make_unique<fake::memory_storage>(), policy);
    auto d = store_fixture::d;
    const char* types[] = {"queued", "delivered", "deferred", "bounced", "expired", "complaint", "admin"};
    const char* kinds[] = {"hard", "soft", "block", "technical"};
    const char* cats[] = {"user-unknown", "mailbox-full", "blocklisted", "rate-limited"};
    std::uint32_t seed = 12345;
    auto rnd = [&seed](std::uint32_t n) { return (seed = seed * 1103515245u + 12345u) / 65536u % n; };
    std::vector<event> batch;
    for (int i = 0; i < 3000; ++i) {
        std::int64_t t = 40 * day + static_cast<std::int64_t>(rnd(3 * 24 * 60)) * 60000;  // three days, by minute
        auto type = types[rnd(7)];
        auto k = rnd(4);
        std::string rcpt = "u" + std::to_string(rnd(50)) + (rnd(2) ? "@Gmail.com" : "@example.org");
        batch.push_back(d(t, type, "Q" + std::to_string(i), rcpt, std::string(type) == "queued" ? "" : kinds[k],
                          cats[k], rnd(3) ? "spring" : "autumn"));
        if (batch.size() == 1 + rnd(200) || i == 2999) {  // batches of every size, several per hour
            sql->record(batch, err);
            ASSERT_EQ(err, "");
            mem.record(batch, err);
            ASSERT_EQ(err, "");
            batch.clear();
        }
    }
    auto same = [](const std::vector<series_row>& a, const std::vector<series_row>& b) {
        if (a.size() != b.size()) return ::testing::AssertionFailure() << a.size() << " vs " << b.size() << " points";
        for (std::size_t i = 0; i < a.size(); ++i) {
            auto &x = a[i].counts, &y = b[i].counts;
            if (a[i].start_ms != b[i].start_ms || x.key != y.key || x.sent != y.sent || x.delivered != y.delivered ||
                x.deferred != y.deferred || x.hard != y.hard || x.soft != y.soft || x.block != y.block ||
                x.technical != y.technical || x.complaints != y.complaints)
                return ::testing::AssertionFailure() << "point " << i << " (" << x.key << " at " << a[i].start_ms << ")";
        }
        return ::testing::AssertionSuccess();
    };
    auto sorted = [](std::vector<series_row> v) {
        std::sort(v.begin(), v.end(), [](auto& a, auto& b) {
            return std::tie(a.counts.key, a.start_ms) < std::tie(b.counts.key, b.start_ms);
        });
        return v;
    };
    std::int64_t hour = 3600000;
    for (std::int64_t bucket : {hour, day})
        for (std::string by : {"", "campaign", "domain"})
            for (std::int64_t since : {std::int64_t(0), 41 * day + 5 * hour})
                for (std::string campaign : {"", "spring"}) {
                    auto a = sorted(sql->series(bucket, by, campaign, "", since));
                    auto b = sorted(mem.series(bucket, by, campaign, "", since));
                    EXPECT_TRUE(same(a, b)) << "bucket " << bucket << " by '" << by << "' since " << since << " " << campaign;
                    EXPECT_FALSE(a.empty());
                }
    auto one = sql->series(hour, "", "", "gmail.com", 0);
    std::int64_t sent = 0;
    for (auto& p : one) sent += p.counts.sent;
    std::int64_t stat_sent = 0;
    for (auto& r : sql->stats("domain", "", "gmail.com", 0)) stat_sent += r.sent;
    EXPECT_EQ(sent, stat_sent) << "the series adds up to stats (domains in lower case)";
    EXPECT_GT(sent, 0);
    // Reply categories: the same counts, most frequent first.
    auto ra = sql->replies("", 0, 0), rb = mem.replies("", 0, 0);
    ASSERT_EQ(ra.size(), rb.size());
    std::map<std::string, std::int64_t> ma, mb;
    for (auto& r : ra) ma[r.domain + " " + r.outcome + " " + r.kind + " " + r.category] = r.count;
    for (auto& r : rb) mb[r.domain + " " + r.outcome + " " + r.kind + " " + r.category] = r.count;
    EXPECT_EQ(ma, mb);
    for (std::size_t i = 1; i < ra.size(); ++i) EXPECT_GE(ra[i - 1].count, ra[i].count);
    EXPECT_EQ(sql->replies("", 0, 3).size(), 3u);
    for (auto& r : sql->replies("example.org", 0, 0)) EXPECT_EQ(r.domain, "example.org");
    // Retention drops the hourly counts with the decisions of their age.
    prune_counts c;
    do ASSERT_TRUE(sql->prune(41 * day, "", 100000, c, err)) << err;
    while (c.more);
    auto left = sql->series(hour, "", "", "", 0);
    EXPECT_FALSE(left.empty());
    for (auto& p : left) EXPECT_GE(p.start_ms, 41 * day);
    sql.reset();
    pg.drop();
    std::filesystem::remove_all(dir);
}
INSTANTIATE_TEST_SUITE_P(Backends, series_fixture, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& info) { return info.param; });

// A database of the first schema version (no hourly counts, no complaints
// in the daily totals) is migrated when the daemon opens it, once, also
// when two processes open it at the same moment; the counts are filled from
// the decisions it already has.
TEST(RecipientStateSeries, AnOlderDatabaseIsMigratedOnceWithItsHistory) {
    char tmpl[] = "/tmp/ricochet-migrate-test.XXXXXX";
    std::filesystem::path dir = ::mkdtemp(tmpl);
    auto path = (dir / "state.db").string();
    std::string err;
    bounce::status_policy policy{{"gmail.com"}, 3, 15 * day};
    {
        auto st = open_state("sqlite:" + path, policy, false, err);
        ASSERT_TRUE(st) << err;
        auto d = [](std::int64_t t, std::string type, std::string q, std::string r, std::string k = "", std::string c = "") {
            return store_fixture::d(t, std::move(type), std::move(q), std::move(r), std::move(k), std::move(c));
        };
        st->record({d(1000, "queued", "Q1", "a@x.example"), d(2000, "delivered", "Q1", "a@x.example"),
                    d(3000, "queued", "Q2", "b@x.example"), d(4000, "bounced", "Q2", "b@x.example", "hard", "user-unknown"),
                    d(3 * 3600000, "complaint", "Q1", "a@x.example")},
                   err);
        ASSERT_EQ(err, "");
    }
    // Back to version 0, as a database written before the series existed.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "DROP TABLE hourly_totals; DROP TABLE hourly_replies; DROP TABLE applied_batches;"
                               "ALTER TABLE daily_totals DROP COLUMN complaints; PRAGMA user_version=0;",
                           nullptr, nullptr, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
    {
        auto old = open_state("sqlite:" + path, policy, true, err);  // ricochetctl's reader: migrates nothing
        ASSERT_TRUE(old) << err;
        EXPECT_TRUE(old->series(3600000, "", "", "", 0).empty()) << "a reader of an old file sees no series, no error";
        auto s = old->stats("campaign", "", "", 0);
        ASSERT_EQ(s.size(), 1u) << "ricochetctl stats on a file the daemon has not migrated yet";
        EXPECT_EQ(s[0].sent, 2);
        EXPECT_EQ(s[0].complaints, 1);
    }
    std::unique_ptr<recipient_state> a, b;
    std::string ea, eb;
    std::thread ta([&] { a = open_state("sqlite:" + path, policy, false, ea); });
    std::thread tb([&] { b = open_state("sqlite:" + path, policy, false, eb); });
    ta.join();
    tb.join();
    ASSERT_TRUE(a) << ea;
    ASSERT_TRUE(b) << eb;
    auto s = a->series(3600000, "", "", "", 0);
    ASSERT_EQ(s.size(), 2u);
    EXPECT_EQ((std::vector<std::int64_t>{s[0].counts.sent, s[0].counts.delivered, s[0].counts.hard, s[1].counts.complaints}),
              (std::vector<std::int64_t>{2, 1, 1, 1}))
        << "filled once from the decisions, not twice";
    EXPECT_EQ(a->replies("", 0, 0).size(), 1u);
    EXPECT_EQ(a->stats("campaign", "", "", 0).at(0).complaints, 1);
    a.reset();
    b.reset();
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_stmt* q = nullptr;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, nullptr);
    ASSERT_EQ(sqlite3_step(q), SQLITE_ROW);
    EXPECT_EQ(sqlite3_column_int(q, 0), 3) << "every version since, in order";
    sqlite3_finalize(q);
    sqlite3_close(db);
    std::filesystem::remove_all(dir);
}
