// Tests for bounce/destination_backoff.hpp: doubling, cap, one pause per
// burst, reset by success.
#include "bounce/destination_backoff.hpp"

#include <gtest/gtest.h>

using namespace ricochet::bounce;

TEST(DestinationBackoff, DoublesUpToTheCapAndResetsOnSuccess) {
    destination_backoff b(5 * 60000, 60 * 60000);
    std::int64_t t = 1'000'000;
    EXPECT_FALSE(b.paused_until("example.com", t));
    EXPECT_EQ(b.pause("example.com", t), t + 5 * 60000);
    EXPECT_EQ(b.pause("example.com", t + 1000), t + 5 * 60000) << "replies of attempts already under way: same pause";
    EXPECT_EQ(b.paused_until("example.com", t + 60000), t + 5 * 60000);
    EXPECT_FALSE(b.paused_until("other.example", t + 60000)) << "only that destination";
    std::int64_t want[] = {10, 20, 40, 60, 60};
    for (auto minutes : want) {
        t = *b.paused_until("example.com", t) ;  // the pause ends, the next try is throttled again
        EXPECT_EQ(b.pause("example.com", t) - t, minutes * 60000);
    }
    b.reset("example.com");
    EXPECT_FALSE(b.paused_until("example.com", t));
    EXPECT_EQ(b.pause("example.com", t) - t, 5 * 60000) << "a success starts the doubling over";
    auto list = b.paused(t);
    ASSERT_EQ(list.size(), 1u);
    EXPECT_EQ(list[0].domain, "example.com");
}
