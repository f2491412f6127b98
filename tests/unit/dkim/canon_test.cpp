// The text half of DKIM: RFC 6376's own canonicalization example (3.4.5),
// the edge cases of 3.4.3/3.4.4, the h= selection of 5.4.2, the From domain;
// and the unsubscribe tokens: what verifies and what does not.
#include <gtest/gtest.h>

#include "dkim/canon.hpp"
#include "unsubscribe/token.hpp"

using namespace ricochet;
using dkim::canon;

namespace {
// RFC 6376 3.4.5, with its <SP>, <HTAB> and <CRLF> written out.
const std::string rfc_example =
    "A: X\r\n"
    "B : Y\t\r\n"
    "\tZ  \r\n"
    "\r\n"
    " C \r\n"
    "D \t E\r\n"
    "\r\n"
    "\r\n";
}  // namespace

TEST(DkimCanon, Rfc6376Example) {
    auto parts = dkim::split_message(rfc_example);
    ASSERT_EQ(parts.headers.size(), 2u);
    EXPECT_EQ(parts.headers[1].name, "B");
    EXPECT_EQ(dkim::canon_header(parts.headers[0].raw, canon::relaxed) + dkim::canon_header(parts.headers[1].raw, canon::relaxed),
              "a:X\r\nb:Y Z\r\n");
    EXPECT_EQ(dkim::canon_body(parts.body, canon::relaxed), " C\r\nD E\r\n");
    EXPECT_EQ(dkim::canon_header(parts.headers[1].raw, canon::simple), "B : Y\t\r\n\tZ  \r\n");
    EXPECT_EQ(dkim::canon_body(parts.body, canon::simple), " C \r\nD \t E\r\n");
}

TEST(DkimCanon, EmptyBodies) {
    // 3.4.3: an empty body is one CRLF in simple; 3.4.4: nothing in relaxed.
    for (std::string b : {"", "\r\n", "\r\n\r\n"}) {
        EXPECT_EQ(dkim::canon_body(b, canon::simple), "\r\n") << b.size();
        EXPECT_EQ(dkim::canon_body(b, canon::relaxed), "") << b.size();
    }
    // Whitespace-only lines are empty lines in relaxed, and trail away.
    EXPECT_EQ(dkim::canon_body("x\r\n \t \r\n\t\r\n", canon::relaxed), "x\r\n");
    EXPECT_EQ(dkim::canon_body("x\r\n \t \r\n", canon::simple), "x\r\n \t \r\n");
}

TEST(DkimCanon, LineEndsAreCrlfWhateverTheStoredForm) {
    EXPECT_EQ(dkim::canon_body("a\nb\r\n", canon::simple), "a\r\nb\r\n");
    EXPECT_EQ(dkim::canon_body("no end", canon::simple), "no end\r\n");
    EXPECT_EQ(dkim::canon_body("inner blank\r\n\r\nline\r\n", canon::relaxed), "inner blank\r\n\r\nline\r\n");
    auto parts = dkim::split_message("From: a@b.example\nSubject: x\n\nbody\n");
    ASSERT_EQ(parts.headers.size(), 2u);
    EXPECT_EQ(parts.body, "body\n");
    EXPECT_EQ(dkim::canon_header(parts.headers[0].raw, canon::simple), "From: a@b.example\r\n");
}

TEST(DkimCanon, SelectionTakesInstancesFromTheBottom) {
    auto f = dkim::split_headers("Received: 1\r\nTo: a\r\nReceived: 2\r\nSubject: s\r\n");
    auto h = dkim::signed_names({"received", "to", "cc"}, f);
    EXPECT_EQ(h, (std::vector<std::string>{"received", "received", "to"}));
    auto sel = dkim::select_fields(h, f);
    ASSERT_EQ(sel.size(), 3u);
    EXPECT_EQ(sel[0]->raw, "Received: 2\r\n");
    EXPECT_EQ(sel[1]->raw, "Received: 1\r\n");
    EXPECT_EQ(sel[2]->raw, "To: a\r\n");
}

TEST(DkimCanon, FromDomain) {
    auto dom = [](std::string from) { return dkim::from_domain(dkim::split_headers(from + "\r\n")); };
    EXPECT_EQ(dom("From: news@Shop.Example"), "shop.example");
    EXPECT_EQ(dom("From: \"Shop @ home\" <news@shop.example>"), "shop.example");
    EXPECT_EQ(dom("From: Shop\r\n <news@shop.example> (comment)"), "shop.example");
    EXPECT_EQ(dom("From: nobody"), "");
    EXPECT_EQ(dom("Subject: no from"), "");
}

TEST(DkimCanon, Canonicalization) {
    dkim::canonicalization c;
    EXPECT_TRUE(dkim::parse_canonicalization("simple/relaxed", c));
    EXPECT_EQ(dkim::to_string(c), "simple/relaxed");
    EXPECT_TRUE(dkim::parse_canonicalization("relaxed", c));
    EXPECT_EQ(dkim::to_string(c), "relaxed/simple");  // RFC 6376 3.5: the body defaults to simple
    EXPECT_FALSE(dkim::parse_canonicalization("loose/relaxed", c));
}

TEST(UnsubscribeToken, RoundTripAndForgeries) {
    unsubscribe::token_signer s("secret-one"), other("secret-two");
    auto t = s.make({"Alice@Example.COM", "Spring Sale:2026"});
    auto back = s.verify(t);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->recipient, "alice@example.com");
    EXPECT_EQ(back->campaign, "Spring Sale:2026");
    for (char c : t) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-') << t;
    // Case folded by an MTA: still valid.
    std::string up = t;
    for (auto& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_TRUE(s.verify(up));
    EXPECT_FALSE(other.verify(t)) << "another secret";
    // Every single-character change is refused.
    for (std::size_t i = 0; i < t.size(); ++i) {
        if (t[i] == '-') continue;
        std::string bad = t;
        bad[i] = bad[i] == 'a' ? 'b' : 'a';
        EXPECT_FALSE(s.verify(bad)) << i;
    }
    EXPECT_FALSE(s.verify(""));
    EXPECT_FALSE(s.verify("-"));
    EXPECT_FALSE(s.verify(t.substr(0, t.size() - 1)));
    EXPECT_FALSE(s.verify(t + "0"));
    EXPECT_FALSE(s.verify(std::string(5000, '0') + t.substr(t.rfind('-'))));
    // Without a campaign.
    auto n = s.verify(s.make({"bob@example.com", ""}));
    ASSERT_TRUE(n);
    EXPECT_EQ(n->campaign, "");
}

TEST(UnsubscribeToken, Mailto) {
    EXPECT_EQ(unsubscribe::token_of_mailto("u-abc@Bnc.Example", "bnc.example"), "abc");
    EXPECT_EQ(unsubscribe::token_of_mailto("U-abc@bnc.example", "bnc.example"), "abc");
    EXPECT_FALSE(unsubscribe::token_of_mailto("b-abc@bnc.example", "bnc.example"));
    EXPECT_FALSE(unsubscribe::token_of_mailto("u-abc@other.example", "bnc.example"));
    EXPECT_FALSE(unsubscribe::token_of_mailto("u-@bnc.example", "bnc.example"));
}
