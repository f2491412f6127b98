// Tests for bounce/smtp_reply.hpp: multi-line replies, enhanced codes, garbage.
#include "bounce/smtp_reply.hpp"

#include <gtest/gtest.h>

using namespace ricochet::bounce;

namespace {
smtp_reply parse(std::vector<std::string> lines, bool* malformed = nullptr) {
    reply_parser p;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        bool done = p.feed(lines[i]);
        EXPECT_EQ(done, i + 1 == lines.size()) << "line " << i << ": " << lines[i];
    }
    if (malformed) *malformed = p.malformed();
    return p.take(stage::rcpt);
}
}  // namespace

TEST(SmtpReply, Table) {
    struct { const char* name; std::vector<std::string> in; int code; std::string enhanced, text; } rows[] = {
        {"simple", {"250 2.1.5 Ok"}, 250, "2.1.5", "250 2.1.5 Ok"},
        {"no enhanced", {"220 mx.example ESMTP"}, 220, "", "220 mx.example ESMTP"},
        {"gmail multi-line", {"550-5.1.1 The email account that you tried to reach does not exist. Please try",
                              "550-5.1.1 double-checking the recipient's email address for typos or",
                              "550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser"},
         550, "5.1.1", "550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser"},
        {"class mismatch is not an enhanced code", {"451 5.7.1 odd"}, 451, "", "451 5.7.1 odd"},
        {"code only", {"354"}, 354, "", "354"},
        {"three-digit detail", {"550 5.7.606 Access denied, banned sending IP"}, 550, "5.7.606", "550 5.7.606 Access denied, banned sending IP"},
    };
    for (auto& r : rows) {
        auto got = parse(r.in);
        EXPECT_EQ(got.code, r.code) << r.name;
        EXPECT_EQ(got.enhanced, r.enhanced) << r.name;
        EXPECT_EQ(got.text(), r.text) << r.name << ": got \"" << got.text() << "\"";
        EXPECT_EQ(got.at, stage::rcpt);
    }
}

TEST(SmtpReply, GarbageIsMalformedNotACode) {
    bool malformed = false;
    auto r = parse({"HTTP/1.1 400 Bad Request"}, &malformed);
    EXPECT_TRUE(malformed);
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(r.text(), "HTTP/1.1 400 Bad Request");
    parse({"250-first", "251 second"}, &malformed);
    EXPECT_TRUE(malformed) << "codes must agree across lines";
}

TEST(SmtpReply, ControlCharactersNeverReachLogsOrEvents) {
    bool malformed = false;
    auto r = parse({std::string("\x00\xff\x1b[2Jgarbage", 13)}, &malformed);
    EXPECT_TRUE(malformed);
    EXPECT_EQ(r.text(), "?\xff?[2Jgarbage") << "NUL and ESC replaced; other bytes kept";
    r = parse({"550 5.1.1 bo\x07\x7fgus d\xc3\xa9j\xc3\xa0"}, &malformed);
    EXPECT_EQ(r.text(), "550 5.1.1 bo??gus d\xc3\xa9j\xc3\xa0") << "UTF-8 text stays as it is";
}
