// Injection (POST /v1/messages) up to the spool: what is refused with 400,
// what a suppressed recipient gets, and the message that is built.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "bounce/suppression_list.hpp"
#include "submission/inject.hpp"

using namespace ricochet;
using json = nlohmann::ordered_json;

namespace {
struct fixture : ::testing::Test {
    bounce::suppression_list suppression;
    submission::inject_limits lim{"mta.example", "X-Campaign-ID", 4096, 3};
    int ids = 0;
    std::optional<submission::injection> inject(const json& body, std::string& err) {
        return submission::prepare_injection(body, lim, suppression, "192.0.2.7", "crm",
                                             [this] { return "ID" + std::to_string(++ids); }, 1796035230000, err);
    }
    std::string headers_of(const std::string& msg) { return msg.substr(0, msg.find("\r\n\r\n") + 2); }
};
}  // namespace

TEST_F(fixture, BadBodiesAre400WithTheReason) {
    std::pair<json, std::string> cases[] = {
        {json::array(), "the body must be a JSON object"},
        {json{{"to", {"a@b.example"}}, {"text", "x"}}, "missing \"from\""},
        {json{{"from", 5}, {"to", {"a@b.example"}}, {"text", "x"}}, "\"from\" must be a string"},
        {json{{"from", "not an address"}, {"to", {"a@b.example"}}, {"text", "x"}}, "\"from\" is not an address: not an address"},
        {json{{"from", "s@x.example"}, {"text", "x"}}, "\"to\" must be a non-empty array of addresses"},
        {json{{"from", "s@x.example"}, {"to", json::array()}, {"text", "x"}}, "\"to\" must be a non-empty array of addresses"},
        {json{{"from", "s@x.example"}, {"to", "a@b.example"}, {"text", "x"}}, "\"to\" must be a non-empty array of addresses"},
        {json{{"from", "s@x.example"}, {"to", {1}}, {"text", "x"}}, "\"to\" must be a non-empty array of addresses"},
        {json{{"from", "s@x.example"}, {"to", {"a@"}}, {"text", "x"}}, "not an address in \"to\": a@"},
        {json{{"from", "s@x.example"}, {"to", {"a@b.example", "c@b.example", "d@b.example", "e@b.example"}}, {"text", "x"}},
         "too many recipients: 4 (at most 3)"},
        {json{{"from", "s@x.example"}, {"to", {"a@b.example"}}}, "a message needs \"text\", \"html\" or \"content\""},
        {json{{"from", "s@x.example"}, {"to", {"a@b.example"}}, {"text", "x"}, {"cc", "y"}}, "unknown field \"cc\""},
        {json{{"from", "s@x.example"}, {"to", {"a@b.example"}}, {"content", "Subject: x\r\n\r\nx"}, {"text", "y"}},
         "\"content\" and \"text\" exclude each other"},
        {json{{"from", "s@x.example"}, {"to", {"a@b.example"}}, {"content", "no header here\r\n"}},
         "content does not start with a header field (RFC 5322 2.1)"},
        {json{{"from", "s@x.example"}, {"to", {"a@b.example"}}, {"content", "Subject: x\r\n\r\n" + std::string(999, 'a')}},
         "content has a line longer than 998 octets (RFC 5322 2.1.1)"},
        {json{{"from", "s@x.example"}, {"to", {"a@b.example"}}, {"text", "x"}, {"headers", {{"Content-Type", "x"}}}},
         "header Content-Type is set by Ricochet or by its own field"},
        {json{{"from", "s@x.example"}, {"to", {"a@b.example"}}, {"text", "x"}, {"headers", {{"X-A", "b\r\nBcc: c"}}}},
         "header X-A: a value may not hold CR, LF or NUL"},
        {json{{"from", "s@x.example"}, {"to", {"a@b.example"}}, {"text", "x"}, {"headers", {{"Bad Name", "v"}}}},
         "header name \"Bad Name\" is not a field name (RFC 5322 2.2)"},
        {json{{"from", "s@x.example"}, {"to", {"a@b.example"}}, {"subject", "a\nb"}, {"text", "x"}},
         "subject and from may not hold CR, LF or NUL"},
        {json{{"from", "s@x.example"}, {"to", {"a@b.example"}}, {"text", std::string(5000, 'x')}},
         "message size"},
    };
    for (auto& [body, want] : cases) {
        std::string err;
        EXPECT_FALSE(inject(body, err)) << body.dump();
        EXPECT_EQ(err.substr(0, want.size()), want) << body.dump();
    }
}

TEST_F(fixture, SuppressedRecipientsAreRefusedWithTheirReasonAndDuplicatesCollapse) {
    bounce::address_record held{"held@b.example"};
    held.status = bounce::address_status::held;
    held.bounce_count = 3;
    held.last_category = "user-unknown";
    suppression.update(held);
    bounce::address_record unsub{"gone@b.example"};
    unsub.status = bounce::address_status::unsubscribed;
    suppression.update(unsub);
    std::string err;
    auto inj = inject({{"from", "s@x.example"}, {"to", {"Held@B.example", "ok@b.example", "gone@b.example"}}, {"text", "x"}}, err);
    ASSERT_TRUE(inj) << err;
    EXPECT_EQ(inj->env.recipients, std::vector<std::string>{"ok@b.example"});
    nlohmann::json reply = submission::injection_reply(*inj);
    EXPECT_EQ(reply["queue_id"], "ID1");
    EXPECT_EQ(reply["recipients"][0]["status"], "refused");
    EXPECT_EQ(reply["recipients"][0]["reason"], "recipient is held after 3 bounce(s) (last: user-unknown)");
    EXPECT_EQ(reply["recipients"][1]["status"], "queued");
    EXPECT_EQ(reply["recipients"][2]["reason"], "recipient has unsubscribed");

    auto none = inject({{"from", "s@x.example"}, {"to", {"gone@b.example"}}, {"text", "x"}}, err);
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->env.recipients.empty());
    EXPECT_TRUE(submission::injection_reply(*none)["queue_id"].is_null()) << "nothing queued, no id";
    EXPECT_EQ(ids, 1) << "no id is taken for a message that is not queued";

    auto dup = inject({{"from", "s@x.example"}, {"to", {"a@b.example", "A@b.example"}}, {"text", "x"}}, err);
    ASSERT_TRUE(dup);
    EXPECT_EQ(dup->env.recipients.size(), 1u);
    ASSERT_EQ(dup->results.size(), 2u) << "every address asked for is answered";
    EXPECT_EQ(dup->results[1].reason, "duplicate: the message goes to this address once");
}

TEST_F(fixture, RawContentIsNormalisedAndGetsDateMessageIdAndReceived) {
    std::string err;
    auto inj = inject({{"from", "s@x.example"}, {"to", {"a@b.example"}}, {"content", "Subject: hi\nX-Campaign-ID: spring\n\nline1\rline2\n"}},
                      err);
    ASSERT_TRUE(inj) << err;
    auto& c = inj->content;
    EXPECT_EQ(c.find('\n'), c.find("\r\n") + 1) << "CRLF line ends";
    for (std::size_t i = 0; (i = c.find('\n', i)) != std::string::npos; ++i) ASSERT_EQ(c[i - 1], '\r');
    EXPECT_EQ(c.rfind("Received: from api ([192.0.2.7])\r\n\tby mta.example (Ricochet) with HTTPA id ID1\r\n\tfor <a@b.example>;", 0), 0u)
        << c;
    EXPECT_NE(c.find("\r\nDate: Mon, 30 Nov 2026 "), std::string::npos);
    EXPECT_NE(c.find("\r\nMessage-ID: <ID1."), std::string::npos);
    EXPECT_NE(c.find("\r\n\r\nline1\r\nline2\r\n"), std::string::npos) << "a bare CR is a line end too";
    EXPECT_EQ(inj->env.campaign, "spring") << "the campaign header is read when the body names none";
    EXPECT_EQ(inj->env.client, "192.0.2.7");
    EXPECT_EQ(inj->env.auth_user, "crm");
    EXPECT_FALSE(inj->env.eightbit);

    auto keep = inject({{"from", "s@x.example"}, {"to", {"a@b.example"}}, {"campaign", "c9"},
                        {"content", "Date: Tue, 1 Dec 2026 00:00:00 +0000\r\nMessage-ID: <m@x>\r\n\r\nb\xc3\xa9\r\n"}},
                       err);
    ASSERT_TRUE(keep) << err;
    EXPECT_EQ(keep->content.find("Date: Mon"), std::string::npos) << "a Date given is kept, not doubled";
    EXPECT_EQ(keep->content.find("Message-ID: <ID"), std::string::npos);
    EXPECT_EQ(keep->env.campaign, "c9");
    EXPECT_TRUE(keep->env.eightbit) << "8-bit content is flagged for BODY=8BITMIME";
}

TEST_F(fixture, PartsAreBuiltIntoMime) {
    std::string err;
    lim.max_message_size = 1 << 20;
    std::string long_line(2000, 'w');
    auto inj = inject({{"from", "Shop <news@shop.example>"},
                       {"to", {"a@b.example"}},
                       {"campaign", "spring"},
                       {"subject", "Soldes d'\xc3\xa9t\xc3\xa9"},
                       {"text", "caf\xc3\xa9\n" + long_line},
                       {"html", "<p>caf\xc3\xa9</p>"},
                       {"headers", {{"X-Zeta", "1"}, {"List-Unsubscribe", "<mailto:u@shop.example>"}, {"X-Campaign-ID", "spring"}}}},
                      err);
    ASSERT_TRUE(inj) << err;
    auto& c = inj->content;
    auto h = headers_of(c);
    EXPECT_EQ(inj->env.sender, "news@shop.example");
    EXPECT_NE(h.find("\r\nFrom: Shop <news@shop.example>\r\n"), std::string::npos) << h;
    EXPECT_NE(h.find("\r\nTo: a@b.example\r\n"), std::string::npos) << h;
    auto subject = h.substr(h.find("\r\nSubject: "), h.find("\r\n", h.find("\r\nSubject: ") + 2) - h.find("\r\nSubject: "));
    EXPECT_NE(subject.find("=?UTF-8?"), std::string::npos) << "8-bit subject in RFC 2047 words: " << h;
    EXPECT_NE(h.find("\r\nMessage-Id: <ID1."), std::string::npos) << h;
    EXPECT_NE(h.find("\r\nDate: "), std::string::npos) << h;
    EXPECT_NE(h.find("\r\nMIME-Version: 1.0\r\n"), std::string::npos) << h;
    EXPECT_NE(h.find("\r\nList-Unsubscribe: <mailto:u@shop.example>\r\n"), std::string::npos) << h;
    EXPECT_NE(h.find("\r\nX-Zeta: 1\r\nList-Unsubscribe: <mailto:u@shop.example>\r\nX-Campaign-ID: spring\r\n"), std::string::npos)
        << "extra headers in the order given, the campaign header once: " << h;
    EXPECT_EQ(h.find("X-Campaign-ID"), h.rfind("X-Campaign-ID"));
    EXPECT_NE(h.find("Content-Type: multipart/alternative"), std::string::npos) << h;
    EXPECT_NE(c.find("Content-Type: text/plain; charset=utf-8"), std::string::npos) << c;
    EXPECT_NE(c.find("Content-Type: text/html; charset=utf-8"), std::string::npos) << c;
    EXPECT_NE(c.find("Content-Transfer-Encoding: quoted-printable"), std::string::npos) << c;
    for (std::size_t pos = 0, eol; (eol = c.find("\r\n", pos)) != std::string::npos; pos = eol + 2)
        ASSERT_LE(eol - pos, 998u) << "every line within RFC 5322's limit";
    for (unsigned char ch : c) ASSERT_LT(ch, 0x80) << "7-bit on the wire";
    EXPECT_FALSE(inj->env.eightbit);
}
