// Tests for dns/idn.hpp and dns/mx.hpp.
#include <gtest/gtest.h>

#include <map>

#include "dns/idn.hpp"
#include "dns/mx.hpp"

using namespace ricochet::dns;

TEST(Idn, ToAscii) {
    struct { std::string in; std::optional<std::string> want; } rows[] = {
        {"example.COM", "example.com"},
        {"bücher.example", "xn--bcher-kva.example"},
        {"faß.de", "xn--fa-hia.de"},  // non-transitional: ß is kept, not mapped to ss
        {"例子.广告", "xn--fsqu00a.xn--4rr70v"},  // as Python's codec gives
        {"xn--bcher-kva.example", "xn--bcher-kva.example"},
        {"bad\xff.example", std::nullopt},
    };
    for (auto& r : rows) EXPECT_EQ(to_ascii_domain(r.in), r.want) << r.in;
}

TEST(Mx, PreferenceOrderWithRandomTies) {
    std::mt19937 rng(42);
    std::map<std::string, int> first;
    for (int i = 0; i < 200; ++i) {
        std::vector<mx_host> h = {{"c", 20}, {"a", 10}, {"b", 10}, {"d", 30}};
        order_mx(h, rng);
        EXPECT_EQ(h[2].name, "c");
        EXPECT_EQ(h[3].name, "d");
        EXPECT_EQ(h[0].preference, 10);
        ++first[h[0].name];
    }
    EXPECT_GT(first["a"], 50) << "equal preferences share the load";
    EXPECT_GT(first["b"], 50);
}

TEST(Mx, NullMx) {
    EXPECT_TRUE(is_null_mx({{"", 0}}));
    EXPECT_TRUE(is_null_mx({{".", 0}}));
    EXPECT_FALSE(is_null_mx({{"mx.example", 0}}));
    EXPECT_FALSE(is_null_mx({}));
    std::vector<mx_host> mixed = {{".", 0}, {"mx.example", 10}};
    EXPECT_FALSE(is_null_mx(mixed)) << "RFC 7505: only a lone \".\" is a null MX";
    drop_null_targets(mixed);
    ASSERT_EQ(mixed.size(), 1u);
    EXPECT_EQ(mixed[0].name, "mx.example");
}
