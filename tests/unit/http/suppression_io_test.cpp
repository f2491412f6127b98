// Suppression import and export: both formats, bad lines counted and
// reported by number, entries normalised, and what the RCPT check makes of them.
#include <gtest/gtest.h>

#include "bounce/suppression_list.hpp"
#include "http/suppression_io.hpp"
#include "submission/inject.hpp"

using namespace ricochet;

TEST(SuppressionImport, JsonLines) {
    auto r = http::parse_suppressions("{\"entry\":\"A@B.example\",\"reason\":\"crm\"}\n\n{\"email\":\"<c@d.example>\"}\n"
                                      "{\"address\":\"@Spam.Example\"}\nnot json\n{\"entry\":\"no-at\"}\n{\"reason\":\"x\"}\n",
                                      "application/x-ndjson", 5);
    ASSERT_EQ(r.entries.size(), 3u);
    EXPECT_EQ(r.entries[0].entry, "a@b.example");
    EXPECT_EQ(r.entries[0].reason, "crm");
    EXPECT_EQ(r.entries[0].created_ms, 5);
    EXPECT_EQ(r.entries[1].entry, "c@d.example");
    EXPECT_EQ(r.entries[2].entry, "@spam.example");
    EXPECT_EQ(r.lines, 6u);
    EXPECT_EQ(r.invalid, 3u);
    EXPECT_EQ(r.errors[0], (nlohmann::json{{"line", 5}, {"error", "not a JSON object"}}));
    EXPECT_EQ(r.errors[1], (nlohmann::json{{"line", 6}, {"error", "not an address or @domain: no-at"}}));
    EXPECT_EQ(r.errors[2]["line"], 7);
}

TEST(SuppressionImport, CsvWithAHeaderAndQuotes) {
    auto r = http::parse_suppressions("email,reason\r\nx@y.example,\"said \"\"stop\"\"\"\r\n\"q,r\"@y.example\r\n@z.example , old list\r\n@-bad..example\r\n",
                                      "", 1);
    ASSERT_EQ(r.entries.size(), 2u) << r.errors.dump();
    EXPECT_EQ(r.entries[0].entry, "x@y.example");
    EXPECT_EQ(r.entries[0].reason, "said \"stop\"");
    EXPECT_EQ(r.entries[1].entry, "@z.example");
    EXPECT_EQ(r.entries[1].reason, "old list");
    EXPECT_EQ(r.invalid, 2u) << "a quoted local part with a comma is not read as one, and a bad domain is refused";
    EXPECT_EQ(r.lines, 4u) << "the header line is not counted";
}

TEST(SuppressionImport, EntriesAreAddressesOrDomains) {
    EXPECT_EQ(submission::suppression_entry_of("  <User@Example.COM> ").value_or("?"), "user@example.com");
    EXPECT_EQ(submission::suppression_entry_of("@Example.com").value_or("?"), "@example.com");
    for (std::string bad : {std::string(), std::string("@"), std::string("@.x"), std::string("@x."), std::string("@a..b"),
                            std::string("@a_b.example"), std::string("user"), std::string("user@"), std::string("a b@c.example"),
                     "@" + std::string(64, 'a') + ".example"})
        EXPECT_FALSE(submission::suppression_entry_of(bad)) << bad;
}

TEST(SuppressionImport, TheRcptCheckHonoursAddressesAndDomains) {
    bounce::suppression_list s;
    s.add_entry("a@b.example");
    s.add_entry("@spam.example");
    EXPECT_EQ(submission::suppressed_because(s, "A@B.example").value_or(""), "is on the suppression list (a@b.example)");
    EXPECT_EQ(submission::suppressed_because(s, "anyone@SPAM.example").value_or(""), "is on the suppression list (@spam.example)");
    EXPECT_FALSE(submission::suppressed_because(s, "anyone@sub.spam.example")) << "a domain entry is that domain only";
    EXPECT_FALSE(submission::suppressed_because(s, "c@b.example"));
    s.remove_entry("@spam.example");
    EXPECT_FALSE(submission::suppressed_because(s, "anyone@spam.example"));
}

TEST(SuppressionExport, BothFormats) {
    std::vector<state::suppression_entry> imported{{"@spam.example", "list, old", 1796035230000}};
    bounce::address_record held{"h@x.example"};
    held.status = bounce::address_status::held;
    held.last_kind = "hard";
    held.last_category = "user-unknown";
    held.last_bounce_ms = 1796035230000;
    auto csv = http::export_suppressions(imported, {held}, true);
    EXPECT_EQ(csv, "entry,source,reason,since\r\n@spam.example,import,\"list, old\",2026-11-30T10:40:30Z\r\n"
                   "h@x.example,held,hard/user-unknown,2026-11-30T10:40:30Z\r\n");
    auto csv_back = http::parse_suppressions(csv, "text/csv", 0);
    ASSERT_EQ(csv_back.entries.size(), 2u) << csv_back.errors.dump();
    EXPECT_EQ(csv_back.entries[0].reason, "list, old") << "the header names the columns: reason is the third";
    auto jl = http::export_suppressions(imported, {held}, false);
    auto back = http::parse_suppressions(jl, "", 0);
    ASSERT_EQ(back.entries.size(), 2u) << "an export imports back";
    EXPECT_EQ(back.entries[1].entry, "h@x.example");
}
