// Tests for queue/dsn_writer.hpp: the report returned to a sender is valid
// mail whatever the receiver answered (long replies are folded, no line
// passes 998 octets) and says only what is known.
#include "queue/dsn_writer.hpp"

#include <gtest/gtest.h>

#include <sstream>

using namespace ricochet::queue;

namespace {
envelope original() {
    envelope e;
    e.id = "ABC123";
    e.sender = "news@example.com";
    e.recipients = {"u@example.org"};
    e.arrival_ms = 1700000000000;
    return e;
}

std::vector<std::string> lines(const std::string& m) {
    std::vector<std::string> out;
    std::size_t p = 0;
    while (p < m.size()) {
        auto e = m.find("\r\n", p);
        EXPECT_NE(e, std::string::npos) << "every line ends in CRLF";
        if (e == std::string::npos) break;
        out.push_back(m.substr(p, e - p));
        p = e + 2;
    }
    return out;
}
}  // namespace

TEST(DsnWriter, LongRepliesAreFoldedIntoShortLines) {
    std::string reply = "550 5.7.1";
    for (int i = 0; i < 200; ++i) reply += " word" + std::to_string(i);
    reply += " " + std::string(3000, 'x');  // one word longer than any line may be
    auto m = write_dsn("mta.example", original(), "Subject: hi\r\n\r\nbody\r\n",
                       {{"u@example.org", "5.7.1", reply, "mx.example.org"}}, 1700000100000);
    bool continued = false;
    for (auto& l : lines(m)) {
        EXPECT_LE(l.size(), 998u);
        if (l.rfind("Diagnostic-Code: smtp; 550 5.7.1 word0", 0) == 0) {
            EXPECT_LE(l.size(), 78u);
        }
        if (!l.empty() && l[0] == ' ' && l.find("word199") != std::string::npos) continued = true;
    }
    EXPECT_TRUE(continued) << "the reply goes on in continuation lines";
    EXPECT_NE(m.find("Final-Recipient: rfc822; u@example.org\r\nAction: failed\r\nStatus: 5.7.1\r\n"), std::string::npos);
}

TEST(DsnWriter, OriginalHeadersOnlyWhenKnown) {
    auto with = write_dsn("mta.example", original(), "Subject: hi\r\nX-Seq: 1\r\n\r\nsecret body\r\n",
                          {{"u@example.org", "5.1.1", "550 5.1.1 unknown", ""}}, 1700000100000);
    EXPECT_NE(with.find("text/rfc822-headers"), std::string::npos);
    EXPECT_NE(with.find("X-Seq: 1"), std::string::npos);
    EXPECT_EQ(with.find("secret body"), std::string::npos) << "headers only, never the body";
    EXPECT_NE(with.find("Arrival-Date: "), std::string::npos);

    auto e = original();
    e.arrival_ms = 0;
    auto without = write_dsn("mta.example", e, "", {{"u@example.org", "5.1.1", "550 5.1.1 unknown", ""}}, 1700000100000);
    EXPECT_EQ(without.find("text/rfc822-headers"), std::string::npos);
    EXPECT_EQ(without.find("Arrival-Date: "), std::string::npos) << "not invented";
    EXPECT_NE(without.find("To: <news@example.com>"), std::string::npos);
}
