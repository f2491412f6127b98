// Tests for queue/queue_id.hpp: unique, sortable, file-name safe.
#include "queue/queue_id.hpp"

#include <gtest/gtest.h>

#include <set>
#include <thread>

using namespace ricochet::queue;

TEST(QueueId, SortsByTimeAndStaysUniqueWhenTheClockStandsStillOrStepsBack) {
    queue_id_generator g;
    std::string a = g.next_at(1'000'000), b = g.next_at(1'000'000), c = g.next_at(999'000), d = g.next_at(2'000'000);
    EXPECT_LT(a, b);
    EXPECT_LT(b, c) << "clock stepped back: got " << c << " after " << b;
    EXPECT_LT(c, d);
    EXPECT_EQ(queue_id_micros(a), 1'000'000u);
    EXPECT_EQ(queue_id_micros(d), 2'000'000u);
}

TEST(QueueId, UniqueAcrossThreads) {
    queue_id_generator g;
    std::vector<std::vector<std::string>> per(4);
    std::vector<std::thread> ts;
    for (auto& v : per)
        ts.emplace_back([&g, &v] { for (int i = 0; i < 20000; ++i) v.push_back(g.next()); });
    for (auto& t : ts) t.join();
    std::set<std::string> all;
    for (auto& v : per) all.insert(v.begin(), v.end());
    EXPECT_EQ(all.size(), 80000u);
}

TEST(QueueId, Shape) {
    struct { std::string in; bool want; } cases[] = {
        {queue_id_generator().next(), true}, {"0123456789ABC", true}, {"0123456789AB", false},
        {"0123456789ABI", false}, {"G000000000000", false}, {"../../etc/pas", false}, {"0123456789abc", false}, {"", false}};
    for (auto& c : cases) EXPECT_EQ(is_queue_id(c.in), c.want) << "input " << c.in;
}

// Several nodes on one state store: two generators with different node
// numbers, fed the same clock readings (the worst case: the same
// microsecond on both machines, over and over), never make the same id,
// and each still sorts by time and stays unique when the clock stands still.
TEST(QueueId, TwoNodesNeverMakeTheSameIdInTheSameMicrosecond) {
    queue_id_generator a, b, plain;
    a.set_node(1);
    b.set_node(2);
    std::set<std::string> all;
    std::string last_a;
    for (std::uint64_t us = 5'000'000; us < 5'000'050; ++us)
        for (int k = 0; k < 100; ++k) {  // 100 ids per microsecond: past the 64 the sequence holds
            auto x = a.next_at(us), y = b.next_at(us);
            EXPECT_TRUE(all.insert(x).second) << x;
            EXPECT_TRUE(all.insert(y).second) << y;
            EXPECT_LT(last_a, x);
            last_a = x;
            EXPECT_TRUE(is_queue_id(x));
        }
    EXPECT_EQ(all.size(), 2u * 50 * 100);
    // Without a node number the generator is what it always was.
    EXPECT_EQ(plain.next_at(7), queue_id_floor(7));
    queue_id_generator c;
    c.set_node(5);
    EXPECT_EQ(queue_id_micros(c.next_at(9'000'000)), 9'000'000u);
    EXPECT_GT(c.next_at(9'000'000), queue_id_floor(9'000'000));
}
