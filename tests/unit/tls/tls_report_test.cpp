// Tests for tls/tls_report: the TLSRPT record, the day's counts and the
// report's JSON (RFC 8460 4) and mail (5.3).
#include "tls/tls_report.hpp"

#include <gtest/gtest.h>

#include "smtp/base64.hpp"

namespace ricochet::tls {
namespace {

TEST(TlsRptRecord, RuaAddresses) {
    struct row {
        const char* name;
        std::vector<std::string> txt;
        std::vector<std::string> mailto, https;
        std::string error_part;
    } rows[] = {
        {"one mailto", {"v=TLSRPTv1; rua=mailto:tls@example.com"}, {"tls@example.com"}, {}, ""},
        {"mailto and https", {"v=TLSRPTv1;rua=mailto:a@example.com, https://r.example.com/v1"},
         {"a@example.com"}, {"https://r.example.com/v1"}, ""},
        {"two mailto", {"v=TLSRPTv1; rua=mailto:a@x.example,mailto:b@y.example;"}, {"a@x.example", "b@y.example"}, {}, ""},
        {"mailto with header fields", {"v=TLSRPTv1; rua=mailto:a@x.example?subject=hi"}, {"a@x.example"}, {}, ""},
        {"no rua", {"v=TLSRPTv1;"}, {}, {}, "no rua"},
        {"two records", {"v=TLSRPTv1; rua=mailto:a@x.example", "v=TLSRPTv1; rua=mailto:b@x.example"}, {}, {}, "more than one"},
        {"a mailto without @ is dropped", {"v=TLSRPTv1; rua=mailto:nobody"}, {}, {}, "no mailto"},
        {"an address with <> is dropped", {"v=TLSRPTv1; rua=mailto:a<b>@x.example"}, {}, {}, "no mailto"},
    };
    for (auto& r : rows) {
        auto got = parse_tlsrpt_record(r.txt);
        EXPECT_TRUE(got.found) << r.name;
        EXPECT_EQ(got.mailto, r.mailto) << r.name;
        EXPECT_EQ(got.https, r.https) << r.name;
        if (r.error_part.empty()) {
            EXPECT_EQ(got.error, "") << r.name;
        } else {
            EXPECT_NE(got.error.find(r.error_part), std::string::npos) << r.name << ": got \"" << got.error << "\"";
        }
    }
    EXPECT_FALSE(parse_tlsrpt_record({"v=spf1 -all"}).found);
}

session_result sts_session(bool ok, std::string type = "", std::string mx = "mx1.example.com") {
    session_result r;
    r.domain = "example.com";
    r.policy_type = "sts";
    r.policy_string = {"version: STSv1", "mode: enforce", "mx: *.example.com", "max_age: 86400"};
    r.mx_patterns = {"*.example.com"};
    r.success = ok;
    r.result_type = std::move(type);
    r.mx_host = std::move(mx);
    r.receiving_ip = "192.0.2.1";
    r.sending_ip = "198.51.100.7";
    return r;
}

TEST(DayCounts, ReportHasTheFieldsOfRfc8460) {
    day_counts d("2026-11-30");
    for (int i = 0; i < 3; ++i) d.record(sts_session(true));
    d.record(sts_session(false, result_type::certificate_expired));
    d.record(sts_session(false, result_type::certificate_expired));
    d.record(sts_session(false, result_type::starttls_not_supported, "mx2.example.com"));
    auto j = d.report("example.com", "mta.example.org", "postmaster@example.org", "r1");
    EXPECT_EQ(j["organization-name"], "mta.example.org");
    EXPECT_EQ(j["contact-info"], "postmaster@example.org");
    EXPECT_EQ(j["report-id"], "r1");
    EXPECT_EQ(j["date-range"]["start-datetime"], "2026-11-30T00:00:00Z");
    EXPECT_EQ(j["date-range"]["end-datetime"], "2026-11-30T23:59:59Z");
    ASSERT_EQ(j["policies"].size(), 1u);
    auto& p = j["policies"][0];
    EXPECT_EQ(p["policy"]["policy-type"], "sts");
    EXPECT_EQ(p["policy"]["policy-domain"], "example.com");
    EXPECT_EQ(p["policy"]["policy-string"].size(), 4u);
    EXPECT_EQ(p["policy"]["mx-host"][0], "*.example.com");
    EXPECT_EQ(p["summary"]["total-successful-session-count"], 3);
    EXPECT_EQ(p["summary"]["total-failure-session-count"], 3);
    ASSERT_EQ(p["failure-details"].size(), 2u);
    std::map<std::string, int> by_type;
    for (auto& f : p["failure-details"]) {
        by_type[f["result-type"]] = f["failed-session-count"];
        EXPECT_EQ(f["sending-mta-ip"], "198.51.100.7");
        EXPECT_EQ(f["receiving-ip"], "192.0.2.1");
    }
    EXPECT_EQ(by_type["certificate-expired"], 2);
    EXPECT_EQ(by_type["starttls-not-supported"], 1);
    EXPECT_TRUE(d.report("other.example", "o", "c", "r").is_null());
}

TEST(DayCounts, NoPolicyDomainsCarryNoPolicyString) {
    day_counts d("2026-11-30");
    session_result r;
    r.domain = "plain.example";
    r.success = true;
    d.record(r);
    auto j = d.report("plain.example", "o", "c", "r");
    EXPECT_EQ(j["policies"][0]["policy"]["policy-type"], "no-policy-found");
    EXPECT_FALSE(j["policies"][0]["policy"].contains("policy-string"));
    EXPECT_FALSE(j["policies"][0].contains("failure-details"));
}

TEST(DayCounts, ADomainWithTwoPolicyTypesInADayHasAnEntryForEach) {
    day_counts d("2026-11-30");
    session_result plain;
    plain.domain = "example.com";
    plain.success = true;
    d.record(plain);
    d.record(sts_session(false, result_type::certificate_expired));
    auto j = d.report("example.com", "o", "c", "r");
    ASSERT_EQ(j["policies"].size(), 2u);
    std::map<std::string, nlohmann::json> by_type;
    for (auto& p : j["policies"]) by_type[p["policy"]["policy-type"]] = p;
    EXPECT_EQ(by_type["no-policy-found"]["summary"]["total-successful-session-count"], 1);
    EXPECT_EQ(by_type["sts"]["summary"]["total-failure-session-count"], 1);
    EXPECT_EQ(by_type["sts"]["failure-details"][0]["result-type"], "certificate-expired");
    EXPECT_EQ(d.totals("example.com"), (std::pair<std::uint64_t, std::uint64_t>{1, 1}));
}

TEST(DayCounts, SurviveTheirFile) {
    day_counts d("2026-11-30");
    d.record(sts_session(true));
    d.record(sts_session(false, result_type::certificate_host_mismatch));
    auto back = day_counts::from_json(nlohmann::json::parse(d.to_json().dump()));
    EXPECT_EQ(back.day(), "2026-11-30");
    EXPECT_EQ(back.report("example.com", "o", "c", "r"), d.report("example.com", "o", "c", "r"));
    EXPECT_THROW(day_counts::from_json(nlohmann::json::parse(R"({"day":"x"})")), nlohmann::json::exception);
}

TEST(ReportMail, IsAMultipartReportWithTheGzippedJson) {
    day_counts d("2026-11-30");
    d.record(sts_session(true));
    auto j = d.report("example.com", "mta.example.org", "postmaster@example.org", "2026-11-30_example.com@mta");
    auto m = report_mail(j, "example.com", "mta.example.org", "postmaster@example.org", {"tls@example.com"}, 1796083200000);
    EXPECT_NE(m.find("Subject: Report Domain: example.com Submitter: mta.example.org Report-ID: <2026-11-30_example.com@mta>\r\n"),
              std::string::npos);
    EXPECT_NE(m.find("TLS-Report-Domain: example.com\r\n"), std::string::npos);
    EXPECT_NE(m.find("TLS-Report-Submitter: mta.example.org\r\n"), std::string::npos);
    EXPECT_NE(m.find("report-type=\"tlsrpt\""), std::string::npos);
    EXPECT_NE(m.find("Content-Type: application/tlsrpt+gzip"), std::string::npos);
    EXPECT_NE(m.find("filename=\"mta.example.org!example.com!1795996800!1796083199.json.gz\""), std::string::npos);
    // The attachment decodes back to the report.
    auto at = m.find("\r\n\r\n", m.find("application/tlsrpt+gzip")) + 4;
    auto end = m.find("\r\n\r\n--", at);
    std::string b64;
    for (std::size_t i = at; i < end; ++i)
        if (m[i] != '\r' && m[i] != '\n') b64 += m[i];
    auto gz = smtp::base64_decode(b64);
    ASSERT_TRUE(gz);
    EXPECT_EQ(nlohmann::json::parse(gunzip(*gz)), j);
    for (std::size_t p = 0; (p = m.find('\n', p)) != std::string::npos; ++p) ASSERT_EQ(m[p - 1], '\r') << "bare LF at " << p;
}

TEST(UtcDay, IsTheCalendarDayInUtc) {
    EXPECT_EQ(utc_day(0), "1970-01-01");
    EXPECT_EQ(utc_day(1796083199000), "2026-11-30");
    EXPECT_EQ(utc_day(1796083200000), "2026-12-01");
}

}  // namespace
}  // namespace ricochet::tls
