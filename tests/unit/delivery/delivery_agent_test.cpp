// Tests for delivery/delivery.hpp with a DNS table and scripted SMTP
// servers (tests/unit/delivery/fakes.hpp): the decisions delivery makes from
// what the network says, in milliseconds. The spool, the schedule, the
// classifier and its shipped rules are the real ones.
#include "delivery/delivery.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <atomic>
#include <filesystem>
#include <future>
#include <mutex>

#include "bounce/classifier.hpp"
#include "bounce/destination_backoff.hpp"
#include "bounce/verp.hpp"
#include "config/config.hpp"
#include "events/publisher.hpp"
#include "fakes.hpp"
#include "queue/clock.hpp"
#include "queue/schedule.hpp"
#include "queue/spool.hpp"

using namespace ricochet;
using namespace ricochet::delivery;
using events::event;
using events::event_type;
using bounce::stage;

namespace {

// Keeps what delivery publishes; "recorded" at once.
struct capture final : events::publisher {
    std::mutex mu;
    std::vector<event> evs;
    void publish(std::vector<event> e, std::function<void()> then) override {
        {
            std::lock_guard lk(mu);
            evs.insert(evs.end(), e.begin(), e.end());
        }
        if (then) then();
    }
    void flush() override {}
    std::vector<event> of(const std::string& rcpt) {
        std::lock_guard lk(mu);
        std::vector<event> out;
        for (auto& e : evs)
            if (e.recipient == rcpt) out.push_back(e);
        return out;
    }
};

struct DeliveryAgent : ::testing::Test {
    std::filesystem::path dir;
    config cfg;
    std::unique_ptr<queue::spool> spool;
    queue::schedule due;
    capture pub;
    bounce::verp_signer verp{std::string(64, 'k')};
    bounce::classifier classifier;
    bounce::destination_backoff backoff{5 * 60 * 1000};
    fake::dns dns;
    fake::transport net;
    boost::asio::io_context io;
    std::unique_ptr<delivery_agent> agent;

    void SetUp() override {
        char tmpl[] = "/tmp/ricochet-delivery-test.XXXXXX";
        dir = ::mkdtemp(tmpl);
        std::error_code ec;
        spool = queue::spool::open(dir / "spool", true, ec);
        ASSERT_TRUE(spool) << ec.message();
        std::string err;
        ASSERT_TRUE(classifier.load(std::string(RICOCHET_SOURCE_DIR) + "/etc/bounce-rules.toml", err)) << err;
        cfg.server.hostname = "ricochet.test";
        cfg.bounce_listener.domain = "bnc.test";
        // One connection per domain: a slot the pool failed to give back
        // would stall the next message, and the test would time out.
        cfg.delivery.max_connections_per_domain = 1;
        agent = std::make_unique<delivery_agent>(io, cfg, *spool, due, pub, verp, classifier, backoff, &dns, &net);
        agent->start();
    }
    void TearDown() override {
        agent->stop();
        io.run_for(std::chrono::milliseconds(20));
        agent.reset();
        spool->stop();
        spool.reset();
        std::filesystem::remove_all(dir);
    }

    // A message on disk and due now.
    std::string submit(std::vector<std::string> rcpts) {
        queue::envelope env;
        env.id = spool->new_id();
        env.sender = "news@example.com";
        env.recipients = std::move(rcpts);
        std::promise<std::error_code> done;
        spool->submit(env, "Subject: t\r\n\r\nhello\r\n", [&](std::error_code ec) { done.set_value(ec); });
        EXPECT_FALSE(done.get_future().get());
        due.add(env.id, now_ms());
        agent->wake();
        return env.id;
    }
    // Runs the agent until `n` outcome events concern rcpt (at most 5 s).
    std::vector<event> outcomes(const std::string& rcpt, std::size_t n = 1) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (pub.of(rcpt).size() < n && std::chrono::steady_clock::now() < deadline)
            io.run_for(std::chrono::milliseconds(2));
        return pub.of(rcpt);
    }
    // Runs until the message has left active/ (removed or deferred).
    void settle(const std::string& id) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (spool->locate(id) == queue::queue_state::active && std::chrono::steady_clock::now() < deadline)
            io.run_for(std::chrono::milliseconds(2));
    }
};

}  // namespace

TEST_F(DeliveryAgent, AnMxThatDoesNotAnswerIsSkippedForTheNextOne) {
    dns.zone("x.example", {{"mx1.x.example", "192.0.2.1"}, {"mx2.x.example", "192.0.2.2"}});
    net.servers["192.0.2.2"].answer = [](auto&, int, unsigned) { return fake::ok(); };  // 192.0.2.1: refused
    auto id = submit({"a@x.example"});
    auto evs = outcomes("a@x.example");
    ASSERT_EQ(evs.size(), 1u);
    EXPECT_EQ(evs[0].type, event_type::delivered);
    EXPECT_EQ(evs[0].mx, "mx2.x.example[192.0.2.2]");
    EXPECT_EQ(net.opened, (std::vector<std::string>{"192.0.2.1", "192.0.2.2"})) << "in MX order";
    settle(id);
    EXPECT_FALSE(spool->locate(id)) << "delivered: removed from the queue";
}

TEST_F(DeliveryAgent, AReusedConnectionTheServerClosedIsTriedOnceMoreOnAFreshOne) {
    dns.zone("x.example", {{"mx.x.example", "192.0.2.1"}});
    net.servers["192.0.2.1"].answer = [](auto&, int conn, unsigned before) {
        if (conn == 0 && before == 1)  // the idle connection was closed by the server meanwhile
            return transaction{fake::reply(0, "", "connection closed", stage::mail), true, true};
        return fake::ok();
    };
    submit({"a@x.example"});
    ASSERT_EQ(outcomes("a@x.example").size(), 1u);
    submit({"b@x.example"});
    auto evs = outcomes("b@x.example");
    ASSERT_EQ(evs.size(), 1u);
    EXPECT_EQ(evs[0].type, event_type::delivered) << "the stale connection says nothing about b: no deferral";
    EXPECT_EQ(evs[0].attempt, 1);
    EXPECT_EQ(net.opened.size(), 2u) << "one reuse, then a fresh connection";
}

TEST_F(DeliveryAgent, A421InTheMiddleDefersThatRecipientAndTheConnectionIsNotReused) {
    dns.zone("x.example", {{"mx.x.example", "192.0.2.1"}});
    net.servers["192.0.2.1"].answer = [](const std::string& rcpt, int, unsigned) {
        if (rcpt == "b@x.example")
            return transaction{fake::reply(421, "4.3.0", "Service shutting down", stage::rcpt), true, true};
        return fake::ok();
    };
    auto id = submit({"a@x.example", "b@x.example", "c@x.example"});
    EXPECT_EQ(outcomes("a@x.example")[0].type, event_type::delivered);
    auto b = outcomes("b@x.example");
    ASSERT_EQ(b.size(), 1u);
    EXPECT_EQ(b[0].type, event_type::deferred);
    EXPECT_EQ((std::pair{b[0].code, b[0].stage}), (std::pair{421, std::string("rcpt")}));
    EXPECT_EQ(outcomes("c@x.example")[0].type, event_type::delivered) << "c goes on a new connection";
    EXPECT_EQ(net.opened.size(), 2u);
    settle(id);
    EXPECT_EQ(spool->locate(id), queue::queue_state::deferred) << "b is tried again later";
}

TEST_F(DeliveryAgent, ARateLimitReplyHalvesTheRateAndTheRestWaitTheirTurn) {
    dns.zone("gmail.example", {{"mx.gmail.example", "192.0.2.9"}});
    net.servers["192.0.2.9"].answer = [](auto&, int, unsigned) {
        return transaction{fake::reply(421, "4.7.28", "unusual rate of unsolicited mail", stage::rcpt), true, true};
    };
    auto before = now_ms();
    auto id = submit({"a@gmail.example", "b@gmail.example", "c@gmail.example"});
    auto a = outcomes("a@gmail.example");
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].category, "rate-limited");
    settle(id);
    EXPECT_EQ(net.sent.size(), 1u) << "b and c wait for the halved rate's next token";
    EXPECT_TRUE(pub.of("b@gmail.example").empty()) << "nothing happened to b: no event";
    EXPECT_FALSE(backoff.paused_until("gmail.example", now_ms())) << "a rate limit no longer pauses the destination";
    auto m = spool->mtime_ms(id, queue::queue_state::deferred);
    ASSERT_TRUE(m);
    // From 2/min (what was sent) to 1/min: the next token a minute on; the
    // message is looked at again before it (within the 30 s it may wait).
    EXPECT_GT(*m, before + 20000);
    EXPECT_LT(*m, before + 61000);
}

TEST_F(DeliveryAgent, ABlocklistReplyPausesTheDestinationAndLeavesTheRestUntried) {
    dns.zone("gmail.example", {{"mx.gmail.example", "192.0.2.9"}});
    net.servers["192.0.2.9"].answer = [](auto&, int, unsigned) {
        return transaction{fake::reply(550, "5.7.1", "Client host [192.0.2.1] blocked using zen.spamhaus.org", stage::rcpt),
                           false, true};
    };
    auto id = submit({"a@gmail.example", "b@gmail.example", "c@gmail.example"});
    auto a = outcomes("a@gmail.example");
    ASSERT_EQ(a.size(), 1u);
    EXPECT_EQ(a[0].category, "blocklisted");
    settle(id);
    EXPECT_EQ(net.sent.size(), 1u) << "b and c not tried while the destination is paused";
    EXPECT_TRUE(pub.of("b@gmail.example").empty()) << "nothing happened to b: no event";
    auto until = backoff.paused_until("gmail.example", now_ms());
    ASSERT_TRUE(until);
    auto m = spool->mtime_ms(id, queue::queue_state::deferred);
    ASSERT_TRUE(m);
    EXPECT_NEAR(static_cast<double>(*m), static_cast<double>(*until), 1000.0) << "due again when the pause ends";
}

TEST_F(DeliveryAgent, ExpiryFiresOnTimeWithoutAnAttempt) {
    // The spool stamps arrival itself: a domain whose messages may live 0 s
    // is past its max_age the moment it is looked at.
    cfg.retry.domains.push_back({"old.example", std::chrono::seconds(900), std::chrono::seconds(0)});
    dns.zone("old.example", {{"mx.old.example", "192.0.2.1"}});
    auto id = submit({"old@old.example"});
    auto evs = outcomes("old@old.example");
    ASSERT_EQ(evs.size(), 1u);
    EXPECT_EQ(evs[0].type, event_type::expired);
    EXPECT_EQ(evs[0].kind + "/" + evs[0].category, "technical/network-error");
    EXPECT_TRUE(net.opened.empty());
    settle(id);
    EXPECT_FALSE(spool->locate(id));
}

TEST_F(DeliveryAgent, WhatDnsSaysDecidesBeforeAnyConnection) {
    dns.mx_answers["servfail.example"] = {dns::dns_status::temporary, {}, false, "SERVFAIL"};
    dns.mx_answers["nullmx.example"] = {dns::dns_status::null_mx, {}, false, "nullmx.example accepts no mail"};
    struct row {
        std::string rcpt;
        event_type want;
        int code;
        std::string enhanced;
    };
    for (auto& r : std::vector<row>{{"a@nxdomain.example", event_type::bounced, 550, "5.1.2"},
                                    {"a@servfail.example", event_type::deferred, 0, ""},
                                    {"a@nullmx.example", event_type::bounced, 556, "5.1.10"}}) {
        submit({r.rcpt});
        auto evs = outcomes(r.rcpt);
        ASSERT_EQ(evs.size(), 1u) << r.rcpt;
        EXPECT_EQ(evs[0].type, r.want) << r.rcpt;
        EXPECT_EQ(evs[0].code, r.code) << r.rcpt;
        EXPECT_EQ(evs[0].enhanced, r.enhanced) << r.rcpt;
        EXPECT_EQ(evs[0].stage, "dns") << r.rcpt;
    }
    EXPECT_TRUE(net.opened.empty());
}

// The campaign breaker's pause, as delivery sees it (send_check false: the
// campaign is paused) once a connection is had. A resume can land at any
// moment of the attempt; the resume's release sweep only releases what is
// in hold/ then, so the attempt must not hold a message after it.
struct PausedCampaign : DeliveryAgent {
    std::atomic<int> looks{0};
    // Paused for the first `n` looks, resumed after.
    void resume_after(int n) {
        agent->set_send_check([this, n](const queue::envelope&) { return looks++ >= n; });
    }
    // Runs the agent until the message is in `want` (at most 5 s).
    bool reaches(const std::string& id, queue::queue_state want) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (spool->locate(id) != want && std::chrono::steady_clock::now() < deadline)
            io.run_for(std::chrono::milliseconds(2));
        return spool->locate(id) == want;
    }
};

TEST_F(PausedCampaign, AnAttemptThatSeesThePauseHoldsTheMessageUntried) {
    dns.zone("x.example", {{"mx.x.example", "192.0.2.1"}});
    net.servers["192.0.2.1"].answer = [](auto&, int, unsigned) { return fake::ok(); };
    resume_after(1 << 30);
    auto id = submit({"a@x.example"});
    EXPECT_TRUE(reaches(id, queue::queue_state::hold));
    io.run_for(std::chrono::milliseconds(50));
    EXPECT_EQ(spool->locate(id), queue::queue_state::hold) << "held until the operator (or the breaker) resumes";
    EXPECT_TRUE(net.sent.empty());
    EXPECT_TRUE(pub.of("a@x.example").empty()) << "nothing happened to the recipient: no event";
}

TEST_F(PausedCampaign, AResumeJustAfterTheAttemptSawThePauseSendsTheMessageNow) {
    dns.zone("x.example", {{"mx.x.example", "192.0.2.1"}});
    net.servers["192.0.2.1"].answer = [](auto&, int, unsigned) { return fake::ok(); };
    resume_after(1);  // the resume (and its sweep, which found nothing held) right after the first look
    auto id = submit({"a@x.example"});
    auto evs = outcomes("a@x.example");
    ASSERT_EQ(evs.size(), 1u) << "held for ever: the resume had already released what was held";
    EXPECT_EQ(evs[0].type, event_type::delivered);
    EXPECT_EQ(evs[0].attempt, 1) << "the look that saw the pause tried nothing";
    settle(id);
    EXPECT_FALSE(spool->locate(id));
}

TEST_F(PausedCampaign, AResumeWhileTheAttemptHeldTheMessageReleasesItAgain) {
    dns.zone("x.example", {{"mx.x.example", "192.0.2.1"}});
    net.servers["192.0.2.1"].answer = [](auto&, int, unsigned) { return fake::ok(); };
    resume_after(2);  // still paused when the attempt holds it, resumed just after
    auto id = submit({"a@x.example"});
    auto evs = outcomes("a@x.example");
    ASSERT_EQ(evs.size(), 1u) << "held for ever: the resume's sweep ran before the message was in hold/";
    EXPECT_EQ(evs[0].type, event_type::delivered);
    settle(id);
    EXPECT_FALSE(spool->locate(id));
}
