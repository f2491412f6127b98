// Tests for delivery/delivery_policy.hpp and dsn_to_sender.hpp: what one
// reply does to a recipient, when it expires, when it is tried again, and
// what the sender hears. Pure: time is a number.
#include "delivery/delivery_policy.hpp"

#include <gtest/gtest.h>

#include "config/config.hpp"
#include "delivery/dsn_to_sender.hpp"
#include "fakes.hpp"

using namespace ricochet;
using namespace ricochet::delivery;

namespace {
constexpr std::int64_t minute = 60 * 1000, hour = 60 * minute;

using fake::reply;
bounce::classification reading(bounce::kind k, bounce::category c, bool retry) {
    return {k, c, bounce::scope::recipient, retry, "rule-x"};
}
}  // namespace

TEST(DeliveryPolicy, AfterAttempt) {
    struct row {
        const char* name;
        bounce::smtp_reply reply;
        bounce::classification reading;
        std::string want_status, want_kind;
    };
    using bounce::category;
    using bounce::kind;
    using bounce::stage;
    std::vector<row> rows{
        {"2xx delivers and clears the reading", reply(250, "2.0.0", "ok", stage::end_of_data),
         reading(kind::hard, category::user_unknown, false), "delivered", ""},
        {"a 4xx that may be retried defers", reply(451, "4.3.0", "try later", stage::rcpt),
         reading(kind::soft, category::other_temporary, true), "deferred", "soft"},
        {"a 5xx bounces", reply(550, "5.1.1", "no such user", stage::rcpt),
         reading(kind::hard, category::user_unknown, false), "bounced", "hard"},
        {"a final 4xx (mailbox full) bounces", reply(452, "4.2.2", "mailbox full", stage::rcpt),
         reading(kind::soft, category::mailbox_full, false), "bounced", "soft"},
        {"no reply at all defers", reply(0, "", "connection refused", stage::connect),
         reading(kind::technical, category::network_error, true), "deferred", "technical"},
    };
    for (auto& r : rows) {
        queue::recipient_status prev;
        prev.attempts = 2;
        prev.kind = "soft";
        auto got = after_attempt(prev, r.reply, "mx.example[192.0.2.1]", r.reading, 5000);
        EXPECT_EQ(got.status, r.want_status) << r.name;
        EXPECT_EQ(got.kind, r.want_kind) << r.name;
        EXPECT_EQ(got.attempts, 3) << r.name;
        EXPECT_EQ(got.code, r.reply.code) << r.name;
        EXPECT_EQ(got.stage, std::string(bounce::to_string(r.reply.at))) << r.name;
        EXPECT_EQ(got.mx, "mx.example[192.0.2.1]") << r.name;
        EXPECT_EQ(got.last_attempt_ms, 5000) << r.name;
        if (r.want_status != "delivered") {
            EXPECT_EQ(got.rule, "rule-x") << r.name;
        } else {
            EXPECT_EQ(got.category + got.rule, "") << r.name << ": a success clears the last reading";
        }
    }
}

TEST(DeliveryPolicy, ExpiryComesAtMaxAgeAndKeepsTheLastReading) {
    retry_policy p{15 * minute, 72 * hour};
    queue::recipient_status rs;
    rs.status = "deferred";
    rs.kind = "soft";
    rs.category = "mailbox-full";
    EXPECT_FALSE(expire_if_due(rs, 0, p, 72 * hour - 1)) << "one ms early";
    auto e = expire_if_due(rs, 0, p, 72 * hour);
    ASSERT_TRUE(e);
    EXPECT_EQ((std::vector<std::string>{e->status, e->kind, e->category}),
              (std::vector<std::string>{"expired", "soft", "mailbox-full"}));
    queue::recipient_status never;  // held or paused all along: never answered
    auto n = expire_if_due(never, 0, p, 80 * hour);
    ASSERT_TRUE(n);
    EXPECT_EQ(n->kind + "/" + n->category, "technical/network-error") << "nothing against the address";
    rs.status = "delivered";
    EXPECT_FALSE(expire_if_due(rs, 0, p, 80 * hour)) << "a final recipient never expires";
}

TEST(DeliveryPolicy, NextAttempt) {
    retry_policy p{15 * minute, 72 * hour};
    struct row {
        const char* name;
        std::int64_t now;
        std::optional<std::int64_t> paused_until;
        bool held;
        std::int64_t want;
    };
    for (auto& r : std::vector<row>{
             {"after the interval", 1 * hour, std::nullopt, false, 1 * hour + 15 * minute},
             {"never after expiry", 72 * hour - minute, std::nullopt, false, 72 * hour},
             {"when the destination's pause ends", 1 * hour, 1 * hour + 5 * minute, false, 1 * hour + 5 * minute},
             {"a pause past expiry still expires on time", 71 * hour, 80 * hour, false, 72 * hour},
             {"held: looked at again at expiry", 1 * hour, std::nullopt, true, 72 * hour},
         })
        EXPECT_EQ(next_attempt(r.now, 0, p, r.paused_until, r.held), r.want) << r.name;
}

TEST(DeliveryPolicy, RetryPolicyPerDomain) {
    config cfg;
    cfg.retry.interval = std::chrono::seconds(900);
    cfg.retry.max_age = std::chrono::seconds(72 * 3600);
    cfg.retry.domains.push_back({"Slow.Example", std::chrono::seconds(3600), std::chrono::seconds(24 * 3600)});
    EXPECT_EQ(retry_for(cfg, "slow.example").interval_ms, hour);
    EXPECT_EQ(retry_for(cfg, "slow.example").max_age_ms, 24 * hour);
    EXPECT_EQ(retry_for(cfg, "other.example").interval_ms, 15 * minute);
}

TEST(DsnToSender, OnlyFailuresAndNeverToTheNullSenderOrTheBounceDomain) {
    config cfg;
    cfg.bounce.return_to_sender = true;
    cfg.bounce_listener.domain = "bnc.example.com";
    queue::envelope env;
    env.sender = "news@example.com";
    env.recipients = {"a@x.example", "b@x.example", "c@x.example"};
    std::vector<queue::recipient_status> st(3);
    st[0].status = "delivered";
    st[1].status = "bounced";
    st[1].code = 550;
    st[2].status = "expired";
    st[2].code = 451;
    st[2].enhanced = "4.4.1";
    auto f = failures_to_return(cfg, env, st);
    ASSERT_EQ(f.size(), 2u);
    EXPECT_EQ(f[0].address, "b@x.example");
    EXPECT_EQ(f[0].status, "5.0.0") << "no enhanced code: the class of the reply";
    EXPECT_EQ(f[1].status, "4.4.1");
    env.sender = "";
    EXPECT_TRUE(failures_to_return(cfg, env, st).empty()) << "never a bounce to a bounce";
    env.sender = "b-x@bnc.example.com";
    EXPECT_TRUE(failures_to_return(cfg, env, st).empty()) << "it would come straight back";
    env.sender = "news@example.com";
    cfg.bounce.return_to_sender = false;
    EXPECT_TRUE(failures_to_return(cfg, env, st).empty());
}
