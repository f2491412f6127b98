// Tests for events/bus.hpp when the sequence file cannot be moved ahead:
// events are still written, each with a unique id and seq 0.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "events/bus.hpp"
#include "events/make.hpp"

using namespace ricochet::events;

namespace {
struct collect final : sink {
    std::vector<event> got;
    void write(const std::vector<event>& evs) override { got.insert(got.end(), evs.begin(), evs.end()); }
};
}  // namespace

TEST(Bus, WithoutASequenceEveryEventStillGetsAUniqueId) {
    sequencer never_opened;  // as if events.seq could not be written
    bus b(never_opened);
    collect c;
    b.add(c);
    for (int i = 0; i < 3; ++i) b.publish({queued("Q1", "", "a@example.org", 0, "", 0), queued("Q1", "", "b@example.org", 1, "", 0)});
    ASSERT_EQ(c.got.size(), 6u);
    std::set<std::string> ids;
    for (auto& e : c.got) {
        EXPECT_EQ(e.seq, 0u);
        EXPECT_TRUE(ids.insert(e.id).second) << e.id;
    }
}
