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
