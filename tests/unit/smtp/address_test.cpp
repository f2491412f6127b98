// Tests for smtp/address.hpp: RFC 5321 paths, quoted local parts, UTF-8.
#include "smtp/address.hpp"

#include <gtest/gtest.h>

using namespace ricochet::smtp;

TEST(Address, Table) {
    struct row {
        const char* name;
        std::string in;
        bool allow_null, utf8;
        address_error want;
        std::string want_address;
    };
    row rows[] = {
        {"plain", "<user@example.com>", false, false, address_error::none, "user@example.com"},
        {"domain lower-cased", "<User@Example.COM>", false, false, address_error::none, "User@example.com"},
        {"null sender", "<>", true, false, address_error::none, ""},
        {"null recipient refused", "<>", false, false, address_error::syntax, ""},
        {"quoted plain becomes dot-string", "<\"john\"@example.com>", false, false, address_error::none, "john@example.com"},
        {"quoted with space kept quoted", "<\"john doe\"@example.com>", false, false, address_error::none, "\"john doe\"@example.com"},
        {"quoted with @ and escaped quote", "<\"a@b\\\"c\"@example.com>", false, false, address_error::none, "\"a@b\\\"c\"@example.com"},
        {"quoted > inside", "<\"a>b\"@example.com>", false, false, address_error::none, "\"a>b\"@example.com"},
        {"atext specials", "<a.b+c-d_e!#$%&'*/=?^`{|}~@example.com>", false, false, address_error::none, "a.b+c-d_e!#$%&'*/=?^`{|}~@example.com"},
        {"percent hack is just a character", "<user%other.example@example.com>", false, false, address_error::none, "user%other.example@example.com"},
        {"source route dropped", "<@relay.example,@r2.example:user@example.com>", false, false, address_error::none, "user@example.com"},
        {"bad source route", "<@:user@example.com>", false, false, address_error::syntax, ""},
        {"ipv4 literal", "<user@[192.0.2.1]>", false, false, address_error::none, "user@[192.0.2.1]"},
        {"ipv6 literal", "<user@[IPv6:2001:db8::1]>", false, false, address_error::none, "user@[IPv6:2001:db8::1]"},
        {"bad literal", "<user@[999.1.1.1]>", false, false, address_error::syntax, ""},
        {"unbracketed tolerated", "user@example.com", false, false, address_error::none, "user@example.com"},
        {"no at", "<user>", false, false, address_error::syntax, ""},
        {"empty local", "<@example.com>", false, false, address_error::syntax, ""},
        {"double dot", "<a..b@example.com>", false, false, address_error::syntax, ""},
        {"leading dot", "<.a@example.com>", false, false, address_error::syntax, ""},
        {"space in local", "<a b@example.com>", false, false, address_error::syntax, ""},
        {"missing >", "<a@example.com", false, false, address_error::syntax, ""},
        {"domain label hyphen", "<a@-bad.example>", false, false, address_error::syntax, ""},
        {"domain empty label", "<a@bad..example>", false, false, address_error::syntax, ""},
        {"domain underscore", "<a@bad_host.example>", false, false, address_error::syntax, ""},
        {"local part 64 ok", "<" + std::string(64, 'a') + "@example.com>", false, false, address_error::none, std::string(64, 'a') + "@example.com"},
        {"local part 65 too long", "<" + std::string(65, 'a') + "@example.com>", false, false, address_error::too_long, ""},
        {"utf8 without SMTPUTF8", "<jörg@example.com>", false, false, address_error::non_ascii, ""},
        {"utf8 local with SMTPUTF8", "<jörg@example.com>", false, true, address_error::none, "jörg@example.com"},
        {"utf8 domain with SMTPUTF8", "<user@bücher.example>", false, true, address_error::none, "user@bücher.example"},
        {"utf8 cjk", "<用户@例子.广告>", false, true, address_error::none, "用户@例子.广告"},
        {"invalid utf8 refused", "<a\xc3@example.com>", false, true, address_error::syntax, ""},
        {"overlong utf8 refused", "<a\xc0\xaf@example.com>", false, true, address_error::syntax, ""},
        {"8-bit quoted pair without SMTPUTF8", "<\"\\\xc3\xa9\"@example.com>", false, false, address_error::non_ascii, ""},
        {"control char", "<a\x01@example.com>", false, false, address_error::syntax, ""},
    };
    for (auto& r : rows) {
        parsed_path p;
        auto got = parse_path(r.in, r.allow_null, r.utf8, p);
        EXPECT_EQ(static_cast<int>(got), static_cast<int>(r.want)) << r.name << ": got error " << static_cast<int>(got)
                                                                  << ", want " << static_cast<int>(r.want);
        if (got == address_error::none && r.want == address_error::none) {
            EXPECT_EQ(p.address(), r.want_address) << r.name << ": got " << p.address() << ", want " << r.want_address;
        }
    }
}

TEST(Address, ConsumedStopsAtPathEnd) {
    parsed_path p;
    ASSERT_EQ(parse_path("<a@b.example> SIZE=10", false, false, p), address_error::none);
    EXPECT_EQ(p.consumed, 13u);
    ASSERT_EQ(parse_path("a@b.example SIZE=10", false, false, p), address_error::none);
    EXPECT_EQ(p.consumed, 11u);
}
