// Tests for smtp/line_reader.hpp: CRLF, bare LF, overlong lines, split reads.
#include "smtp/line_reader.hpp"

#include <gtest/gtest.h>

#include <cstring>

using namespace ricochet::smtp;

namespace {
void feed(line_reader& r, std::string_view data) {
    while (!data.empty()) {
        std::size_t cap = 0;
        char* p = r.prepare(cap);
        std::size_t n = std::min(cap, data.size());
        std::memcpy(p, data.data(), n);
        r.commit(n);
        data.remove_prefix(n);
    }
}
struct got_line {
    std::string text;
    bool crlf, too_long;
};
std::vector<got_line> drain(line_reader& r) {
    std::vector<got_line> out;
    while (auto l = r.next()) out.push_back({std::string(l->text), l->crlf, l->too_long});
    return out;
}
}  // namespace

TEST(LineReader, SplitsCrlfAndBareLf) {
    line_reader r;
    feed(r, "EHLO a\r\nMAIL FROM:<>\nRCPT");
    auto lines = drain(r);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0].text, "EHLO a");
    EXPECT_TRUE(lines[0].crlf);
    EXPECT_EQ(lines[1].text, "MAIL FROM:<>");
    EXPECT_FALSE(lines[1].crlf) << "bare LF must be reported";
    EXPECT_TRUE(r.has_buffered()) << "partial line waits";
    feed(r, " TO:<a@b>\r\n");
    lines = drain(r);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].text, "RCPT TO:<a@b>");
}

TEST(LineReader, ByteAtATime) {
    line_reader r;
    std::string in = "NOOP\r\nQUIT\r\n";
    std::vector<got_line> all;
    for (char c : in) {
        feed(r, std::string_view(&c, 1));
        for (auto& l : drain(r)) all.push_back(l);
    }
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[1].text, "QUIT");
}

TEST(LineReader, LimitIs1000OctetsIncludingCrlf) {
    line_reader r(1000);
    feed(r, std::string(998, 'a') + "\r\n");
    auto lines = drain(r);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_FALSE(lines[0].too_long) << "998 + CRLF = 1000 is allowed";
    feed(r, std::string(999, 'a') + "\r\nNEXT\r\n");
    lines = drain(r);
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_TRUE(lines[0].too_long);
    EXPECT_EQ(lines[1].text, "NEXT");
}

TEST(LineReader, OverlongWithoutLfIsReportedOnceAndDiscarded) {
    line_reader r(1000);
    feed(r, std::string(5000, 'x'));
    auto lines = drain(r);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_TRUE(lines[0].too_long);
    EXPECT_EQ(lines[0].text.size(), 1000u);
    feed(r, std::string(100000, 'x'));
    EXPECT_TRUE(drain(r).empty()) << "the tail of the long line is dropped";
    feed(r, "yyy\r\nQUIT\r\n");
    lines = drain(r);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0].text, "QUIT");
}
