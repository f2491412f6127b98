// Tests for tls/mta_sts_policy: the TXT record and policy grammars of RFC
// 8461 and the MX pattern rule, one row per rule of the RFC.
#include "tls/mta_sts_policy.hpp"

#include <gtest/gtest.h>

namespace ricochet::tls {
namespace {

TEST(StsRecord, FindsTheIdOfTheOneStsRecord) {
    struct row {
        const char* name;
        std::vector<std::string> txt;
        bool found;
        std::string id, error_part;
    } rows[] = {
        {"plain", {"v=STSv1; id=20160831085700Z;"}, true, "20160831085700Z", ""},
        {"no trailing semicolon", {"v=STSv1; id=abc"}, true, "abc", ""},
        {"no spaces", {"v=STSv1;id=abc;"}, true, "abc", ""},
        {"extension fields ignored", {"v=STSv1; foo=bar; id=x1"}, true, "x1", ""},
        {"other records at the name ignored", {"v=spf1 -all", "v=STSv1; id=k"}, true, "k", ""},
        {"no STS record", {"v=spf1 -all"}, false, "", ""},
        {"another version is not ours", {"v=STSv10; id=1"}, false, "", ""},
        {"two STS records: no policy", {"v=STSv1; id=1", "v=STSv1; id=2"}, true, "", "more than one"},
        {"no id", {"v=STSv1;"}, true, "", "no id"},
        {"id with a dash", {"v=STSv1; id=2016-08"}, true, "", "letters and digits"},
        {"id of 33 characters", {"v=STSv1; id=123456789012345678901234567890123"}, true, "", "1 to 32"},
        {"id of 32 characters", {"v=STSv1; id=12345678901234567890123456789012"}, true, "12345678901234567890123456789012", ""},
        {"field without =", {"v=STSv1; id"}, true, "", "name=value"},
        {"v not first", {"id=1; v=STSv1"}, false, "", ""},
    };
    for (auto& r : rows) {
        auto got = parse_sts_record(r.txt);
        EXPECT_EQ(got.found, r.found) << r.name;
        if (r.error_part.empty()) {
            EXPECT_EQ(got.error, r.found ? "" : got.error) << r.name;
            EXPECT_EQ(got.id, r.id) << r.name << ": got id " << got.id;
        } else {
            EXPECT_NE(got.error.find(r.error_part), std::string::npos) << r.name << ": got error \"" << got.error << "\"";
        }
    }
}

TEST(StsPolicy, ParsesTheExampleOfTheRfc) {
    std::string error;
    auto p = parse_sts_policy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
                              "mx: backupmx.example.com\r\nmax_age: 604800\r\n",
                              error);
    ASSERT_TRUE(p) << error;
    EXPECT_EQ(p->mode, sts_mode::enforce);
    EXPECT_EQ(p->max_age, 604800u);
    EXPECT_EQ(p->mx, (std::vector<std::string>{"mail.example.com", "*.example.net", "backupmx.example.com"}));
    EXPECT_EQ(p->lines.size(), 6u);
    EXPECT_EQ(p->lines[0], "version: STSv1");
}

TEST(StsPolicy, EachRuleOfTheGrammar) {
    struct row {
        const char* name;
        std::string text;
        bool ok;
        std::string error_part;
    } rows[] = {
        {"LF line ends", "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 86400\n", true, ""},
        {"no final line end", "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 86400", true, ""},
        {"mode none needs no mx", "version: STSv1\nmode: none\nmax_age: 86400\n", true, ""},
        {"unknown keys are extensions", "version: STSv1\nmode: enforce\nfoo: bar\nmx: a.example\nmax_age: 1\n", true, ""},
        {"first of a repeated field counts", "version: STSv1\nmode: enforce\nmode: bogus\nmx: a.example\nmax_age: 1\n", true, ""},
        {"upper-case mx made lower", "version: STSv1\nmode: enforce\nmx: MX.Example.COM.\nmax_age: 1\n", true, ""},
        {"no version", "mode: enforce\nmx: a.example\nmax_age: 1\n", false, "no version"},
        {"wrong version", "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", false, "STSv1"},
        {"bad mode", "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", false, "mode"},
        {"no mode", "version: STSv1\nmx: a.example\nmax_age: 1\n", false, "no mode"},
        {"no max_age", "version: STSv1\nmode: enforce\nmx: a.example\n", false, "no max_age"},
        {"max_age above a year", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", false, "31557600"},
        {"max_age of a year", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557600\n", true, ""},
        {"max_age not a number", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1d\n", false, "number"},
        {"max_age with 11 digits", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 00000000001\n", false, "number"},
        {"enforce without mx", "version: STSv1\nmode: enforce\nmax_age: 1\n", false, "no mx"},
        {"mx with a space", "version: STSv1\nmode: enforce\nmx: a example\nmax_age: 1\n", false, "mx"},
        {"mx wildcard in the middle", "version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n", false, "mx"},
        {"mx label ending in -", "version: STSv1\nmode: enforce\nmx: a-.example\nmax_age: 1\n", false, "mx"},
        {"a line without colon", "version: STSv1\nmode enforce\nmx: a.example\nmax_age: 1\n", false, "key: value"},
        {"an HTML page", "<html><body>not found</body></html>", false, "key: value"},
        {"empty", "", false, "no version"},
    };
    for (auto& r : rows) {
        std::string error;
        auto p = parse_sts_policy(r.text, error);
        EXPECT_EQ(p.has_value(), r.ok) << r.name << ": error \"" << error << "\"";
        if (!r.ok) {
            EXPECT_NE(error.find(r.error_part), std::string::npos) << r.name << ": got \"" << error << "\"";
        }
    }
    std::string error;
    auto p = parse_sts_policy("version: STSv1\nmode: enforce\nmx: MX.Example.COM.\nmax_age: 1\n", error);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->mx.front(), "mx.example.com");
}

TEST(StsPolicy, MxPatternsMatchOneLabelForTheStar) {
    std::vector<std::string> pats{"mail.example.com", "*.example.net"};
    struct row {
        const char* host;
        bool want;
    } rows[] = {
        {"mail.example.com", true},   {"MAIL.Example.com.", true},  {"mx.mail.example.com", false},
        {"example.com", false},       {"mx1.example.net", true},     {"a.b.example.net", false},
        {"example.net", false},       {".example.net", false},       {"mx1example.net", false},
    };
    for (auto& r : rows) EXPECT_EQ(mx_matches(r.host, pats), r.want) << r.host;
}

}  // namespace
}  // namespace ricochet::tls
