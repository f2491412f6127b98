// Tests for smtp/network.hpp: trusted_networks matching.
#include "smtp/network.hpp"

#include <gtest/gtest.h>

using namespace ricochet::smtp;

TEST(Network, Contains) {
    struct { std::string net, ip; bool want; } rows[] = {
        {"127.0.0.0/8", "127.0.0.1", true}, {"127.0.0.0/8", "127.255.1.2", true},
        {"127.0.0.0/8", "128.0.0.1", false}, {"127.0.0.1/32", "127.0.0.2", false},
        {"10.1.2.0/23", "10.1.3.255", true}, {"10.1.2.0/23", "10.1.4.0", false},
        {"::1/128", "::1", true}, {"::1/128", "::2", false}, {"2001:db8::/32", "2001:db8:ffff::1", true},
        {"127.0.0.0/8", "::ffff:127.0.0.1", true}, {"0.0.0.0/0", "203.0.113.9", true},
        {"127.0.0.0/8", "::1", false}, {"127.0.0.0/8", "not-an-ip", false}};
    for (auto& r : rows) {
        auto n = parse_cidr(r.net);
        ASSERT_TRUE(n) << r.net;
        EXPECT_EQ(n->contains(r.ip), r.want) << r.net << " contains " << r.ip;
    }
    for (std::string bad : {"127.0.0.0/33", "::/129", "1.2.3/8", "x/8", "127.0.0.0/"}) EXPECT_FALSE(parse_cidr(bad)) << bad;
}

TEST(Network, ClientsAreGroupedByTheirIpv6Network) {
    EXPECT_EQ(client_group("192.0.2.7", 64), "192.0.2.7");
    EXPECT_EQ(client_group("::ffff:192.0.2.7", 64), "192.0.2.7") << "an IPv4 client on a dual-stack listener";
    EXPECT_EQ(client_group("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64), "2001:db8:1:2::/64");
    EXPECT_EQ(client_group("2001:db8:1:2::1", 64), client_group("2001:db8:1:2:ffff::9", 64)) << "one /64, one client";
    EXPECT_NE(client_group("2001:db8:1:2::1", 64), client_group("2001:db8:1:3::1", 64));
    EXPECT_EQ(client_group("2001:db8:1:2::1", 48), "2001:db8:1::/48");
    EXPECT_EQ(client_group("2001:db8:1:2::1", 60), "2001:db8:1::/60");
    EXPECT_EQ(client_group("2001:DB8::1", 128), "2001:db8::1") << "each address apart";
    EXPECT_EQ(client_group("::1", 64), "::/64");
    EXPECT_EQ(client_group("not an address", 64), "not an address");
}
