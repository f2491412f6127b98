// The counters fed by events and the text exposition.
#include <gtest/gtest.h>

#include "events/make.hpp"
#include "events/metrics.hpp"

using namespace ricochet::events;

TEST(Metrics, EventsAreCountedByOutcomeKindAndCategory) {
    metrics m;
    std::vector<event> evs;
    evs.push_back(queued("Q1", "c", "a@x", 0, "s@y", 1));
    evs.push_back(queued("Q1", "c", "b@x", 1, "s@y", 1));
    evs.push_back(queued("Q2", "c", "a@x", 0, "s@y", 1));
    evs.push_back(attempt_outcome(event_type::delivered, "Q1", "c", "a@x", {250, "2.0.0", "ok", "mx", "data"}, {}, 1, 2));
    evs.push_back(attempt_outcome(event_type::bounced, "Q1", "c", "b@x", {550, "5.1.1", "no", "mx", "rcpt"},
                                  {"hard", "user-unknown", "r"}, 1, 2));
    evs.push_back(reported_failure("Q2", "c", "a@x", {550, "5.7.1", "spam", "mx", "data"}, {"block", "spam-content", "r"}, 3));
    evs.push_back(attempt_outcome(event_type::deferred, "Q2", "c", "a@x", {421, "4.7.0", "later", "mx", "rcpt"},
                                  {"technical", "rate-limited", "r"}, 1, 2));
    evs.push_back(attempt_outcome(event_type::deferred, "Q2", "c", "a@x", {451, "", "x", "mx", "rcpt"},
                                  {"soft", "made-up-category", "r"}, 2, 2));
    m.write(evs);
    EXPECT_EQ(m.submitted(), 2u) << "one per message, not per recipient";
    EXPECT_EQ(m.deliveries("delivered", ""), 1u);
    EXPECT_EQ(m.deliveries("bounced", "hard"), 1u);
    EXPECT_EQ(m.deliveries("bounced", "block"), 1u) << "a DSN reported later counts too";
    EXPECT_EQ(m.deliveries("deferred", "technical"), 1u);
    auto text = m.render();
    EXPECT_NE(text.find("ricochet_submitted_total 2\n"), std::string::npos);
    EXPECT_NE(text.find("ricochet_deliveries_total{outcome=\"bounced\",kind=\"hard\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("ricochet_replies_total{category=\"user-unknown\"} 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("ricochet_replies_total{category=\"rate-limited\"} 1\n"), std::string::npos);
    EXPECT_NE(text.find("ricochet_replies_total{category=\"unknown\"} 1\n"), std::string::npos);
    EXPECT_EQ(text.find("outcome=\"delivered\",kind=\"hard\""), std::string::npos) << "a delivery has no failure kind";
}

TEST(Metrics, HistogramBucketsAreCumulative) {
    metrics m;
    for (double s : {0.0001, 0.003, 0.003, 0.2, 99.0}) m.spool_commit.observe(s);
    auto text = m.render();
    EXPECT_NE(text.find("ricochet_spool_commit_seconds_bucket{le=\"0.0005\"} 1\n"), std::string::npos) << text;
    EXPECT_NE(text.find("ricochet_spool_commit_seconds_bucket{le=\"0.005\"} 3\n"), std::string::npos);
    EXPECT_NE(text.find("ricochet_spool_commit_seconds_bucket{le=\"0.25\"} 4\n"), std::string::npos);
    EXPECT_NE(text.find("ricochet_spool_commit_seconds_bucket{le=\"+Inf\"} 5\n"), std::string::npos);
    EXPECT_NE(text.find("ricochet_spool_commit_seconds_count 5\n"), std::string::npos);
    EXPECT_NE(text.find("ricochet_spool_commit_seconds_sum 99.2061\n"), std::string::npos) << text;
}

TEST(Metrics, GaugesAreReadWhenScrapedWithLabelsEscaped) {
    metrics m;
    int reads = 0;
    m.add_gauge("ricochet_destination_paused", "Paused.", [&] {
        ++reads;
        return std::vector<gauge_sample>{{{{"domain", "a\"b\\c\nd"}}, 1}};
    });
    EXPECT_EQ(reads, 0);
    auto text = m.render();
    EXPECT_EQ(reads, 1);
    EXPECT_NE(text.find("# TYPE ricochet_destination_paused gauge\n"), std::string::npos);
    EXPECT_NE(text.find("ricochet_destination_paused{domain=\"a\\\"b\\\\c\\nd\"} 1\n"), std::string::npos) << text;
}
