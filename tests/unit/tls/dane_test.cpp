// Tests for tls/dane: TLSA records as SMTP uses them (RFC 6698, RFC 7672).
#include "tls/dane.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace ricochet::tls {
namespace {

std::string rdata(unsigned char u, unsigned char s, unsigned char m, std::size_t n) {
    std::string r{static_cast<char>(u), static_cast<char>(s), static_cast<char>(m)};
    for (std::size_t i = 0; i < n; ++i) r += static_cast<char>(0xA0 + (i % 16));
    return r;
}

TEST(Tlsa, ParsesTheWireFormat) {
    auto r = parse_tlsa(rdata(3, 1, 1, 32));
    ASSERT_TRUE(r);
    EXPECT_EQ((int(r->usage)), 3);
    EXPECT_EQ((int(r->selector)), 1);
    EXPECT_EQ((int(r->mtype)), 1);
    EXPECT_EQ(r->data.size(), 32u);
    EXPECT_EQ(to_text(*r).substr(0, 12), "3 1 1 A0A1A2");
    EXPECT_FALSE(parse_tlsa(std::string("\x03\x01\x01", 3)));  // no data
    EXPECT_FALSE(parse_tlsa(""));
}

TEST(Tlsa, OnlyDaneUsagesWithAKnownDigestAreUsableForSmtp) {
    struct row {
        const char* name;
        std::string rd;
        bool want;
    } rows[] = {
        {"DANE-EE SPKI SHA-256", rdata(3, 1, 1, 32), true},
        {"DANE-EE cert SHA-512", rdata(3, 0, 2, 64), true},
        {"DANE-TA SPKI SHA-256", rdata(2, 1, 1, 32), true},
        {"DANE-EE full key", rdata(3, 1, 0, 91), true},
        {"PKIX-EE is not for SMTP (RFC 7672 3.1.3)", rdata(1, 1, 1, 32), false},
        {"PKIX-TA is not for SMTP", rdata(0, 0, 1, 32), false},
        {"SHA-256 of the wrong length", rdata(3, 1, 1, 31), false},
        {"unknown selector", rdata(3, 2, 1, 32), false},
        {"unknown matching type", rdata(3, 1, 3, 32), false},
        {"unknown usage", rdata(4, 1, 1, 32), false},
    };
    for (auto& r : rows) EXPECT_EQ(usable_for_smtp(*parse_tlsa(r.rd)), r.want) << r.name;
}

TEST(Tlsa, NameIsPortAndProtocolUnderTheHost) {
    EXPECT_EQ(tlsa_name("mx.example.com", 25), "_25._tcp.mx.example.com");
    EXPECT_EQ(tlsa_name("mx.example.com.", 2525), "_2525._tcp.mx.example.com");
}

TEST(TrustAnchor, ZoneIsTheOwnerOfTheFirstRecord) {
    auto path = ::testing::TempDir() + "/anchor.key";
    struct row {
        const char* text;
        const char* want;
    } rows[] = {
        {". IN DNSKEY 257 3 8 AwEAAaz ; keytag 20326\n", "."},
        {"; a comment\n\n$TTL 60\ndane.example.\tIN\tDNSKEY\t257 3 13 frwi ;{id = 52039 (ksk)}\n", "dane.example."},
        {"; nothing\n", ""},
    };
    for (auto& r : rows) {
        {
            std::ofstream out(path);
            out << r.text;
        }
        EXPECT_EQ(trust_anchor_zone(path), r.want) << r.text;
    }
    EXPECT_EQ(trust_anchor_zone(path + ".missing"), "");
}

}  // namespace
}  // namespace ricochet::tls
