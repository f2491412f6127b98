// The breaker's counting and thresholds, with time as a parameter.
#include <gtest/gtest.h>

#include "breaker/breaker.hpp"
#include "events/make.hpp"

using namespace ricochet;
using events::event_type;

namespace {
constexpr std::int64_t T0 = 1796035200000;  // a bucket boundary (hour)
breaker::config small() {
    breaker::config c;
    c.min_messages = 100;
    return c;
}
events::event outcome(event_type t, const std::string& kind, const std::string& campaign, std::int64_t at, bool sync = true) {
    auto e = events::attempt_outcome(t, "Q", campaign, "r@x.example", {}, {kind, kind.empty() ? "" : "c", "r"}, 1, at);
    e.sync = sync;
    return e;
}
std::vector<breaker::delta> count(const std::vector<events::event>& evs, const breaker::config& c, std::string domain = "") {
    std::vector<breaker::delta> ds;
    for (auto& e : evs) breaker::count_event(e, domain, c, ds);
    return ds;
}
}  // namespace

TEST(Breaker, WhatCounts) {
    auto c = small();
    auto ds = count({outcome(event_type::delivered, "", "c1", T0), outcome(event_type::bounced, "hard", "c1", T0),
                     outcome(event_type::bounced, "hard", "c1", T0, false), outcome(event_type::expired, "soft", "c1", T0),
                     outcome(event_type::deferred, "soft", "c1", T0),
                     events::complaint("Q", "c1", "r@x.example", "abuse", "", T0)},
                    c, "shop.example");
    breaker::counts camp, dom;
    for (auto& d : ds) (d.key == "c1" ? camp : dom) += d.c;
    EXPECT_EQ(camp.attempted, 3) << "delivered, an in-session bounce and an expiry; a DSN later and a deferral are no attempt";
    EXPECT_EQ(camp.delivered, 1);
    EXPECT_EQ(camp.hard, 2) << "a hard bounce reported later counts as hard";
    EXPECT_EQ(camp.soft, 1);
    EXPECT_EQ(camp.complaints, 1);
    EXPECT_EQ(dom.attempted, 3) << "the sender domain's scope counts the same";
    for (auto& d : ds) EXPECT_TRUE(d.key == "c1" || d.key == "@shop.example") << d.key;
    c.by_sender_domain = false;
    EXPECT_EQ(count({outcome(event_type::delivered, "", "c1", T0)}, c, "shop.example").size(), 1u);
    EXPECT_TRUE(count({outcome(event_type::delivered, "", "", T0)}, c).empty()) << "no campaign, no sender: nothing to count";
}

TEST(Breaker, TheFloorKeepsSmallNumbersFromTripping) {
    breaker::monitor m(small());
    std::vector<events::event> evs;
    for (int i = 0; i < 12; ++i) evs.push_back(outcome(event_type::delivered, "", "c1", T0));
    evs.push_back(outcome(event_type::bounced, "hard", "c1", T0));  // 1 in 13
    EXPECT_TRUE(m.apply(count(evs, m.cfg()), T0).empty());
    EXPECT_FALSE(m.paused("c1", ""));
}

TEST(Breaker, WarnOncePauseOnceAndTheFiguresInTheText) {
    breaker::monitor m(small());
    std::vector<events::event> evs;
    for (int i = 0; i < 97; ++i) evs.push_back(outcome(event_type::delivered, "", "c1", T0));
    for (int i = 0; i < 3; ++i) evs.push_back(outcome(event_type::bounced, "hard", "c1", T0));
    auto t = m.apply(count(evs, m.cfg()), T0);
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].to, breaker::state::warned);
    EXPECT_EQ(t[0].reason, "hard bounce rate 3.0% of 100");
    EXPECT_TRUE(m.apply(count({outcome(event_type::delivered, "", "c1", T0)}, m.cfg()), T0).empty()) << "warned once";
    std::vector<events::event> more;
    for (int i = 0; i < 4; ++i) more.push_back(outcome(event_type::bounced, "hard", "c1", T0 + 1000));
    t = m.apply(count(more, m.cfg()), T0 + 1000);
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].to, breaker::state::paused);
    EXPECT_EQ(t[0].reason, "hard bounce rate 6.7% of 105");
    EXPECT_EQ(m.paused("c1", "").value_or(""), "campaign c1 paused: hard bounce rate 6.7% of 105");
    EXPECT_FALSE(m.paused("c2", ""));
    EXPECT_TRUE(m.apply(count(more, m.cfg()), T0 + 2000).empty()) << "paused stays paused until a resume";
}

TEST(Breaker, ComplaintsPauseAtTheirOwnRateAndSenderDomainsToo) {
    auto c = small();
    c.min_messages = 1000;
    breaker::monitor m(c);
    std::vector<events::event> evs;
    for (int i = 0; i < 1000; ++i) evs.push_back(outcome(event_type::delivered, "", "c1", T0));
    for (int i = 0; i < 3; ++i) evs.push_back(events::complaint("Q", "c1", "r@x.example", "abuse", "", T0));
    auto t = m.apply(count(evs, c, "shop.example"), T0);
    ASSERT_EQ(t.size(), 2u) << "the campaign and its sender domain";
    EXPECT_EQ(t[0].key, "@shop.example");
    EXPECT_EQ(t[0].reason, "complaint rate 0.3% of 1,000");
    EXPECT_EQ(m.paused("other", "shop.example").value_or(""), "sender domain shop.example paused: complaint rate 0.3% of 1,000");
}

TEST(Breaker, ResumeJudgesAfreshAndTheWindowSlides) {
    breaker::monitor m(small());
    std::vector<events::event> bad;
    for (int i = 0; i < 90; ++i) bad.push_back(outcome(event_type::delivered, "", "c1", T0));
    for (int i = 0; i < 10; ++i) bad.push_back(outcome(event_type::bounced, "hard", "c1", T0));
    ASSERT_EQ(m.apply(count(bad, m.cfg()), T0).size(), 1u);
    ASSERT_TRUE(m.resume("c1", T0 + 1000));
    EXPECT_FALSE(m.paused("c1", ""));
    EXPECT_EQ(m.window("c1", T0 + 1000).attempted, 100) << "the counters are kept";
    std::vector<events::event> good;
    for (int i = 0; i < 100; ++i) good.push_back(outcome(event_type::delivered, "", "c1", T0 + 2000));
    EXPECT_TRUE(m.apply(count(good, m.cfg()), T0 + 2000).empty()) << "only what came after the resume is judged";
    auto later = T0 + 25LL * 3600 * 1000;  // past the 24 h window
    EXPECT_EQ(m.window("c1", later).attempted, 0);
    EXPECT_FALSE(m.resume("c1", later)) << "nothing to resume";
    ASSERT_TRUE(m.pause("c1", later));
    EXPECT_EQ(m.paused("c1", "").value_or(""), "campaign c1 paused: paused by an operator");
    EXPECT_FALSE(m.pause("c1", later)) << "paused already";
}

TEST(Breaker, AfterAResumeTheWindowSlidesPastTheBaseline) {
    breaker::monitor m(small());
    std::vector<events::event> bad;
    for (int i = 0; i < 90; ++i) bad.push_back(outcome(event_type::delivered, "", "c1", T0));
    for (int i = 0; i < 10; ++i) bad.push_back(outcome(event_type::bounced, "hard", "c1", T0));
    ASSERT_EQ(m.apply(count(bad, m.cfg()), T0).size(), 1u);
    ASSERT_TRUE(m.resume("c1", T0 + 1000));
    // A day later the old counts have left the window: a fresh bad stretch
    // of 100 trips at once, with nothing subtracted twice.
    auto later = T0 + 25LL * 3600 * 1000;
    std::vector<events::event> again;
    for (int i = 0; i < 94; ++i) again.push_back(outcome(event_type::delivered, "", "c1", later));
    for (int i = 0; i < 6; ++i) again.push_back(outcome(event_type::bounced, "hard", "c1", later));
    auto t = m.apply(count(again, m.cfg()), later);
    ASSERT_EQ(t.size(), 1u);
    EXPECT_EQ(t[0].reason, "hard bounce rate 6.0% of 100");
}

TEST(Breaker, AnOptOutIsNoComplaint) {
    auto c = small();
    auto out = events::complaint("Q", "c1", "r@x.example", "opt-out", "", T0);
    EXPECT_TRUE(count({out}, c).empty()) << "a mailto unsubscribe or an ARF opt-out asks, it does not complain";
    EXPECT_EQ(count({events::complaint("Q", "c1", "r@x.example", "abuse", "", T0)}, c).size(), 1u);
}
