// delivery/shaping.hpp with the time passed in: which rule a domain falls
// under, the token bucket's pace, the adaptive rate (halved by a rate-
// limited reply, raised step by step by clean stretches), the pool's
// round-robin, resting an IP after a blocklist reply, and warm-up caps that
// hold across a restart.
#include "delivery/shaping.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

using namespace ricochet::delivery;

namespace {
constexpr std::int64_t min_ms = 60000, day_ms = 86400000;
const shaping_limits defaults{20, 100, 0};

shaper make(std::vector<shaping_rule> rules, std::vector<source_pool> pools = {}, std::filesystem::path file = "") {
    return shaper(std::move(rules), std::move(pools), defaults, min_ms, 300000, std::move(file));
}
destination dest(unsigned per_minute, std::string key = "mx:*.google.com") {
    return {key, key, {5, 50, per_minute}};
}
}  // namespace

TEST(Shaping, MxPatterns) {
    EXPECT_TRUE(mx_matches("*.google.com", "aspmx.l.google.com"));
    EXPECT_TRUE(mx_matches(".google.com", "ASPMX.L.GOOGLE.COM."));
    EXPECT_FALSE(mx_matches("*.google.com", "google.com"));
    EXPECT_FALSE(mx_matches("*.google.com", "evilgoogle.com"));
    EXPECT_FALSE(mx_matches("google.com", "mx.google.com")) << "a pattern without a leading dot or *. matches nothing";
}

TEST(Shaping, DomainRuleThenMxRuleThenTheDomainItself) {
    std::vector<shaping_rule> rules{{"mx:*.google.com", {5, 50, 0}}, {"gmail.com", {3, 0, 600}}};
    auto g = destination_for(rules, defaults, "gmail.com", "gmail-smtp-in.l.google.com");
    EXPECT_EQ(g.key, "gmail.com");
    EXPECT_EQ(g.limits.max_connections, 3u);
    EXPECT_EQ(g.limits.max_messages_per_connection, 100u) << "0 takes [delivery]'s";
    auto w = destination_for(rules, defaults, "shop.example", "aspmx.l.google.com");
    EXPECT_EQ(w.key, "mx:*.google.com") << "every domain Google hosts shares one key";
    EXPECT_EQ(destination_for(rules, defaults, "other.example", "aspmx.l.google.com").key, "mx:*.google.com");
    auto o = destination_for(rules, defaults, "small.example", "mx.small.example");
    EXPECT_EQ(o.rule, "");
    EXPECT_EQ(o.key, "small.example");
    EXPECT_EQ(o.limits.max_connections, 20u);
}

TEST(Shaping, Days) {
    EXPECT_EQ(parse_day("1970-01-02"), 1);
    EXPECT_EQ(parse_day("2026-11-30"), 20787);
    EXPECT_FALSE(parse_day("2026-13-01"));
    EXPECT_FALSE(parse_day("30/11/2026"));
}

TEST(Shaping, TokenBucketPacesAndRefusesLongWaits) {
    auto s = make({});
    shaper::refusal why;
    auto d = dest(60);  // one a second
    for (int i = 0; i < 5; ++i) {
        auto c = s.choose(d, nullptr, 0, 30000, why);
        ASSERT_TRUE(c);
        EXPECT_EQ(c->at_ms, i * 1000);
    }
    auto slow = dest(1, "slow.example");
    EXPECT_TRUE(s.choose(slow, nullptr, 0, 30000, why));
    EXPECT_FALSE(s.choose(slow, nullptr, 0, 30000, why)) << "the next token is a minute away";
    EXPECT_GT(why.retry_at_ms, 0);
    EXPECT_LE(why.retry_at_ms, min_ms);
    auto c = s.choose(slow, nullptr, min_ms, 30000, why);
    ASSERT_TRUE(c);
    EXPECT_EQ(c->at_ms, min_ms);
    auto free = dest(0, "free.example");
    for (int i = 0; i < 1000; ++i) EXPECT_EQ(s.choose(free, nullptr, 5, 0, why)->at_ms, 5);
}

TEST(Shaping, RateLimitedHalvesOncePerStretchAndRecoversAdditively) {
    auto s = make({});
    shaper::refusal why;
    auto d = dest(60);
    ASSERT_TRUE(s.choose(d, nullptr, 0, 30000, why));
    auto rate = [&](std::int64_t now) { return s.state(now).at(0).rate_per_minute; };
    s.rate_limited(d, "", 1000);
    EXPECT_EQ(rate(1000), 30);
    s.rate_limited(d, "", 2000);  // the other connections' replies of the same moment
    EXPECT_EQ(rate(2000), 30);
    // Clean minutes: +6 (a tenth of 60) each, back to 60 and no further.
    EXPECT_EQ(rate(2000 + min_ms), 36);
    EXPECT_EQ(rate(2000 + 3 * min_ms), 48);
    EXPECT_EQ(rate(2000 + 20 * min_ms), 60);
    // A throttle every minute: each stretch adds a step, each throttle halves:
    // the rate settles where the two balance (r = (r + 6) / 2).
    for (int i = 0; i < 30; ++i) s.rate_limited(d, "", 3000 + (i + 1) * min_ms);
    EXPECT_NEAR(s.state(3000 + 30 * min_ms).at(0).rate_per_minute, 6, 0.01);
    // Never below 1/min (a ceiling of 4: steps of 1).
    auto small = dest(4, "small.example");
    ASSERT_TRUE(s.choose(small, nullptr, 0, 30000, why));
    for (int i = 0; i < 30; ++i) s.rate_limited(small, "", (i + 1) * min_ms);
    for (auto& st : s.state(30 * min_ms)) {
        if (st.key == "small.example") {
            EXPECT_NEAR(st.rate_per_minute, 1, 0.01);
        }
    }
}

TEST(Shaping, WithoutALimitTheCutStartsFromWhatWasSent) {
    auto s = make({});
    shaper::refusal why;
    auto d = dest(0, "free.example");
    for (int i = 0; i < 40; ++i) ASSERT_TRUE(s.choose(d, nullptr, 1000, 30000, why));
    s.rate_limited(d, "", 2000);
    EXPECT_EQ(s.state(2000).at(0).rate_per_minute, 20);
    EXPECT_EQ(s.state(2000 + min_ms).at(0).rate_per_minute, 24);
    EXPECT_EQ(s.state(2000 + 10 * min_ms).at(0).rate_per_minute, 0) << "back to no limit";
}

TEST(Shaping, PoolRoundRobinAndRestingAfterABlocklistReply) {
    source_pool p{"bulk", {"127.0.0.2", "127.0.0.3"}, {}, 0};
    auto s = make({}, {p});
    auto* pool = s.pool("bulk");
    ASSERT_TRUE(pool);
    shaper::refusal why;
    auto d = dest(0);
    std::vector<std::string> used;
    for (int i = 0; i < 4; ++i) used.push_back(s.choose(d, pool, 0, 0, why)->ip);
    EXPECT_EQ(used, (std::vector<std::string>{"127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"}));
    EXPECT_TRUE(s.rest(d, "127.0.0.2", pool, 10)) << "the other IP can take it";
    for (int i = 0; i < 3; ++i) EXPECT_EQ(s.choose(d, pool, 20, 0, why)->ip, "127.0.0.3");
    // Another destination is not affected.
    EXPECT_EQ(s.choose(dest(0, "other.example"), pool, 20, 0, why)->ip, "127.0.0.2");
    EXPECT_FALSE(s.rest(d, "127.0.0.3", pool, 30)) << "no IP left";
    EXPECT_FALSE(s.choose(d, pool, 40, 0, why));
    EXPECT_EQ(why.retry_at_ms, 10 + 300000) << "when the first rest ends";
    EXPECT_TRUE(s.choose(d, pool, 10 + 300000, 0, why));
}

TEST(Shaping, WarmupCapsHoldAcrossARestart) {
    auto file = std::filesystem::temp_directory_path() / ("shaping-warmup-" + std::to_string(::getpid()));
    std::filesystem::remove(file);
    source_pool p{"new", {"127.0.0.2"}, {100, 200}, 10};  // day 10: 100 a day per destination, day 11: 200
    auto d = dest(0);
    shaper::refusal why;
    std::int64_t day10 = 10 * day_ms + 5000;
    {
        auto s = make({}, {p}, file);
        ASSERT_TRUE(s.choose(d, s.pool("new"), day10, 0, why));
        EXPECT_EQ(s.state(day10).at(0).warmup_sent, 1u);
    }
    {
        // A restart (or a crash) after one: what was reserved ahead (two,
        // a fiftieth of the cap) counts as sent, so the cap cannot be passed.
        auto s = make({}, {p}, file);
        int more = 0;
        while (s.choose(d, s.pool("new"), day10, 0, why)) ++more;
        EXPECT_EQ(more, 98);
        EXPECT_EQ(why.retry_at_ms, 11 * day_ms) << "tomorrow";
        EXPECT_TRUE(s.choose(dest(0, "other.example"), s.pool("new"), day10, 0, why)) << "per destination";
        for (int i = 0; i < 200; ++i) ASSERT_TRUE(s.choose(d, s.pool("new"), 11 * day_ms, 0, why)) << i;
        EXPECT_FALSE(s.choose(d, s.pool("new"), 11 * day_ms, 0, why));
        EXPECT_TRUE(s.choose(d, s.pool("new"), 12 * day_ms, 0, why)) << "warmed up: no cap after the schedule";
    }
    std::filesystem::remove(file);
}

TEST(Shaping, DomainsWithoutARuleShareOneWarmupCountAndAnUnwritableCountStopsSending) {
    source_pool p{"new", {"127.0.0.2"}, {3}, 0};
    shaper::refusal why;
    {
        auto s = make({}, {p});
        destination a{"a.example", "", defaults}, b{"b.example", "", defaults};
        EXPECT_TRUE(s.choose(a, s.pool("new"), 1000, 0, why));
        EXPECT_TRUE(s.choose(b, s.pool("new"), 1000, 0, why));
        EXPECT_TRUE(s.choose(a, s.pool("new"), 1000, 0, why));
        EXPECT_FALSE(s.choose(b, s.pool("new"), 1000, 0, why)) << "three in all, not three per small domain";
    }
    {
        auto s = make({}, {p}, "/nonexistent/dir/warmup");
        EXPECT_FALSE(s.choose(dest(0), s.pool("new"), 1000, 0, why)) << "not on disk: not sent";
        EXPECT_NE(why.why.find("cannot be written"), std::string::npos) << why.why;
    }
}

TEST(Shaping, RefusedMessagesComeBackInTurn) {
    auto s = make({});
    shaper::refusal why;
    auto d = dest(6);  // one every 10 s
    ASSERT_TRUE(s.choose(d, nullptr, 0, 0, why));
    std::vector<std::int64_t> back;
    for (int i = 0; i < 3; ++i) {
        EXPECT_FALSE(s.choose(d, nullptr, 0, 0, why));
        back.push_back(why.retry_at_ms);
    }
    EXPECT_EQ(back[1] - back[0], 10000);
    EXPECT_EQ(back[2] - back[1], 10000);
}
