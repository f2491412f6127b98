// Tests for queue/schedule.hpp: rebuilt from the spool, due order, holds skipped.
#include "queue/schedule.hpp"

#include <gtest/gtest.h>

using namespace ricochet::queue;

TEST(Schedule, RebuildFromSpoolListing) {
    schedule s;
    std::vector<spool_entry> entries = {
        {"0000000000003", queue_state::deferred, 5000},  // due later
        {"0000000000001", queue_state::active, 0},       // due now
        {"0000000000002", queue_state::hold, 0},         // looked at now (expiry), then at its expiry
        {"0000000000004", queue_state::deferred, 1500},  // due before the other deferred one
    };
    EXPECT_EQ(s.rebuild(entries, 1000), 4u);
    EXPECT_EQ(s.pop_due(1000), "0000000000001");
    EXPECT_EQ(s.pop_due(1000), "0000000000002");
    EXPECT_EQ(s.pop_due(1000), std::nullopt) << "deferred messages are not due yet";
    EXPECT_EQ(s.next_due(), 1500);
    EXPECT_EQ(s.pop_due(6000), "0000000000004");
    EXPECT_EQ(s.pop_due(6000), "0000000000003");
    EXPECT_EQ(s.pop_due(6000), std::nullopt);
    EXPECT_EQ(s.next_due(), std::nullopt);
}

TEST(Schedule, AddKeepsDueOrderAndIgnoresBadIds) {
    schedule s;
    s.add("000000000000B", 20);
    s.add("000000000000A", 10);
    s.add("../etc/passwd", 0);
    EXPECT_EQ(s.size(), 2u);
    EXPECT_EQ(s.pop_due(100), "000000000000A");
    EXPECT_EQ(s.pop_due(100), "000000000000B");
}
