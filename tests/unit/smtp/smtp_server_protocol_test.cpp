// Tests for smtp/smtp_server_protocol.hpp: every command's reply, every kind
// of bad input, AUTH, limits, DATA framing — without a socket.
#include "smtp/smtp_server_protocol.hpp"

#include <crypt.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "smtp/base64.hpp"

using namespace ricochet::smtp;
using action = smtp_server_protocol::action;

namespace {
struct session {
    session_policy policy;
    std::unique_ptr<smtp_server_protocol> proto;
    action last = action::none;

    explicit session(std::string ip = "127.0.0.1", std::function<void(session_policy&)> tweak = {}) {
        policy.hostname = "mx.test";
        policy.max_message_size = 1000;
        policy.max_recipients = 3;
        policy.trusted = {*parse_cidr("127.0.0.0/8")};
        policy.new_id = [] { return std::string("0ABCDEFGHJKMN"); };
        if (tweak) tweak(policy);
        proto = std::make_unique<smtp_server_protocol>(policy, ip);
    }
    // Sends one line (CRLF), returns the replies.
    std::string send(std::string_view text, bool crlf = true) {
        std::string out;
        last = proto->on_line(line{text, crlf, text.size() + 2 > 1000}, out);
        return out;
    }
    std::string code(std::string_view text) { return send(text).substr(0, 9); }
    // Sends "BDAT ..." and then the chunk's octets in pieces of at most
    // `piece`, as reads would deliver them; returns every reply.
    std::string bdat(std::string_view cmd, std::string_view octets, std::size_t piece = 7) {
        std::string out;
        last = proto->on_line(line{cmd}, out);
        if (last != action::chunk) return out;
        EXPECT_EQ(proto->chunk_left(), octets.size()) << cmd;
        for (std::size_t i = 0; i < octets.size(); i += piece) proto->on_chunk(octets.substr(i, piece));
        EXPECT_EQ(proto->chunk_left(), 0u);
        last = proto->on_chunk_end(out);
        return out;
    }
    void start(std::string_view rcpt = "x@y.example") {
        send("EHLO c.example");
        send("MAIL FROM:<a@b.example>");
        send("RCPT TO:<" + std::string(rcpt) + ">");
    }
};

std::string temp_users_file(const std::string& user, const std::string& password) {
    auto path = std::filesystem::temp_directory_path() / ("ricochet-users-" + std::to_string(::getpid()));
    crypt_data cd{};
    std::ofstream(path) << "# test users\n" << user << ":" << crypt_r(password.c_str(), "$6$testsalt$", &cd) << "\n";
    return path.string();
}
}  // namespace

TEST(SmtpServerProtocol, GreetingAndEhloAdvertisesExtensions) {
    session s;
    EXPECT_EQ(s.proto->greeting(), "220 mx.test ESMTP Ricochet\r\n");
    auto r = s.send("EHLO client.example");
    for (auto ext : {"250-mx.test", "PIPELINING", "SIZE 1000", "ENHANCEDSTATUSCODES", "8BITMIME", "CHUNKING", "250 SMTPUTF8"})
        EXPECT_NE(r.find(ext), std::string::npos) << "missing " << ext << " in\n" << r;
    EXPECT_EQ(r.find("STARTTLS"), std::string::npos) << "no certificate, no STARTTLS";
    EXPECT_EQ(r.find("AUTH"), std::string::npos) << "no users file, no AUTH";
}

// RFC 3030: a message in chunks, each octet taken as it is (no
// dot-stuffing), line ends normalised as in DATA whatever the chunk and
// read boundaries.
TEST(SmtpServerProtocol, BdatTakesAMessageInChunks) {
    for (std::size_t piece : {1u, 3u, 7u, 4096u}) {
        session s;
        s.start();
        std::string a = "Subject: chunked\r\nX-Campaign-ID: c1\r\n\r\n.one dot\r\n..two";
        std::string b = " dots\r\nbare lf\nbare\rcr\r\nno line end";
        EXPECT_EQ(s.bdat("BDAT " + std::to_string(a.size()), a, piece), "250 2.0.0 Ok: " + std::to_string(a.size()) + " octets\r\n");
        EXPECT_EQ(s.last, action::none);
        EXPECT_TRUE(s.proto->in_data()) << "between chunks: DATA time-outs, spill file kept";
        EXPECT_EQ(s.code("DATA"), "503 5.5.1") << "DATA after BDAT (RFC 3030 2)";
        EXPECT_EQ(s.code("RCPT TO:<z@y.example>"), "503 5.5.1");
        EXPECT_EQ(s.bdat("BDAT " + std::to_string(b.size()) + " last", b, piece), "");
        ASSERT_EQ(s.last, action::commit) << piece;
        const std::string& c = s.proto->content();
        auto body = c.substr(c.find("Subject:"));
        EXPECT_EQ(body, "Subject: chunked\r\nX-Campaign-ID: c1\r\n\r\n.one dot\r\n..two dots\r\nbare lf\r\nbare\r\ncr\r\nno line end\r\n")
            << piece;
        EXPECT_EQ(s.proto->envelope().campaign, "c1");
        EXPECT_EQ(c.rfind("Received: from c.example ([127.0.0.1])\r\n", 0), 0u);
        // The server takes the message, and the transaction is over at once:
        // the next one is read while this one commits.
        auto env = std::move(s.proto->envelope());
        s.proto->commit_started();
        EXPECT_FALSE(s.proto->in_data());
        EXPECT_EQ(s.code("MAIL FROM:<a@b.example>"), "250 2.1.0");
        EXPECT_EQ(smtp_server_protocol::commit_reply({}, env.id), "250 2.0.0 Ok: queued as 0ABCDEFGHJKMN\r\n");
    }
}

TEST(SmtpServerProtocol, BdatZeroLastAndOneChunk) {
    session s;
    s.start();
    EXPECT_EQ(s.bdat("BDAT 9", "Subject: "), "250 2.0.0 Ok: 9 octets\r\n");
    EXPECT_EQ(s.bdat("BDAT 0 LAST", ""), "");
    ASSERT_EQ(s.last, action::commit);
    EXPECT_NE(s.proto->content().find("\r\nSubject: \r\n"), std::string::npos);
    s.proto->commit_started();
    s.start();
    EXPECT_EQ(s.bdat("BDAT 12 LAST", "Subject: x\r\n"), "");
    EXPECT_EQ(s.last, action::commit);
}

// A size that cannot be read ends the session: the octets cannot be
// skipped, and read as lines they would be commands (a message whose body
// holds "RCPT TO:..." would add recipients).
TEST(SmtpServerProtocol, BdatWithABadSizeEndsTheSession) {
    for (std::string cmd : {"BDAT", "BDAT x", "BDAT -1", "BDAT +5", "BDAT 0x10", "BDAT 10 LASTX", "BDAT 10 LAST LAST",
                            "BDAT 1 2", "BDAT 99999999999999999999999", "BDAT 10  LAST"}) {
        session s;
        s.start();
        auto r = s.send(cmd);
        EXPECT_EQ(s.last, action::close) << cmd;
        EXPECT_EQ(r.rfind("521 5.5.4 ", 0), 0u) << cmd << ": " << r;
    }
    session s;
    s.start();
    auto r = s.send("BDAT 1001 LAST");  // over the 1000-octet limit on its own: not read
    EXPECT_EQ(s.last, action::close);
    EXPECT_EQ(r.rfind("552 5.3.4 ", 0), 0u) << r;
}

// A refused chunk is still read whole; the chunks pipelined after it are
// read and discarded (not counted as errors) until its LAST or an RSET.
TEST(SmtpServerProtocol, BdatOutOfSequenceIsReadAndRefused) {
    session s;
    s.send("EHLO c.example");
    EXPECT_EQ(s.bdat("BDAT 4", "RSET").substr(0, 9), "503 5.5.1");  // no MAIL
    EXPECT_EQ(s.last, action::none);
    EXPECT_EQ(s.bdat("BDAT 4", "QUIT").substr(0, 9), "503 5.5.1");
    EXPECT_NE(s.bdat("BDAT 4 LAST", "DATA").find("discarded"), std::string::npos);
    s.send("MAIL FROM:<a@b.example>");
    EXPECT_EQ(s.bdat("BDAT 3 LAST", "x\r\n").substr(0, 9), "503 5.5.1");  // no RCPT
    EXPECT_EQ(s.code("RCPT TO:<x@y.example>"), "250 2.1.5") << "the LAST ended the failed chunks";
    EXPECT_EQ(s.bdat("BDAT 3 LAST", "x\r\n"), "");
    EXPECT_EQ(s.last, action::commit);
    // Refused chunks count towards max_errors; discarded ones do not.
    session t("127.0.0.1", [](session_policy& p) { p.max_errors = 3; });
    t.send("EHLO c.example");
    t.bdat("BDAT 1", "x");
    for (int i = 0; i < 5; ++i) EXPECT_NE(t.bdat("BDAT 1", "x").find("discarded"), std::string::npos);
    EXPECT_EQ(t.last, action::none);
    t.send("RSET");
    t.bdat("BDAT 1", "x");
    EXPECT_EQ(t.last, action::none);
    t.send("RSET");
    t.bdat("BDAT 1 LAST", "x");
    EXPECT_EQ(t.last, action::close) << "third counted error: 421";
    // STARTTLS starts afresh (RFC 3207 4.2), the failed chunks included.
    session u;
    u.send("EHLO c.example");
    u.bdat("BDAT 1", "x");
    u.proto->on_tls_started();
    u.start();
    EXPECT_EQ(u.bdat("BDAT 3 LAST", "x\r\n"), "");
    EXPECT_EQ(u.last, action::commit);
}

TEST(SmtpServerProtocol, BdatOverTheSizeLimitFailsTheTransaction) {
    session s;
    s.start();
    EXPECT_EQ(s.bdat("BDAT 600", std::string(598, 'a') + "\r\n").substr(0, 9), "250 2.0.0");
    EXPECT_EQ(s.bdat("BDAT 600", std::string(598, 'b') + "\r\n").substr(0, 9), "552 5.3.4");
    EXPECT_FALSE(s.proto->in_data());
    EXPECT_NE(s.bdat("BDAT 10 LAST", std::string(10, 'c')).find("discarded"), std::string::npos);
    // Line ends that grow the message (bare LF to CRLF) count too.
    s.start();
    EXPECT_EQ(s.bdat("BDAT 600 LAST", std::string(600, '\n')).substr(0, 9), "552 5.3.4");
    EXPECT_EQ(s.last, action::none);
    s.start();
    EXPECT_EQ(s.bdat("BDAT 5 LAST", "ok\r\n\r"), "");
    EXPECT_EQ(s.last, action::commit) << "the session goes on";
}

// The session could not keep what arrived (spill file not writable, memory
// budget spent): the chunk it happened in gets the server's 452, not
// counted against the client, and the rest of the message is discarded.
TEST(SmtpServerProtocol, BdatChunkTheServerCannotKeepGets452) {
    session s("127.0.0.1", [](session_policy& p) { p.max_errors = 1; });
    s.start();
    std::string out;
    ASSERT_EQ(s.proto->on_line(line{"BDAT 6"}, out), action::chunk);
    s.proto->on_chunk("abc\r\n");
    EXPECT_EQ(s.proto->buffered(), 5u);
    s.proto->refuse_data("452 4.3.1 Error: insufficient system storage, try again later");
    EXPECT_EQ(s.proto->buffered(), 0u);
    s.proto->on_chunk("d");
    EXPECT_EQ(s.proto->on_chunk_end(out), action::none) << "not the client's error: no 421";
    EXPECT_EQ(out, "452 4.3.1 Error: insufficient system storage, try again later\r\n");
    EXPECT_FALSE(s.proto->in_data());
    EXPECT_NE(s.bdat("BDAT 1 LAST", "x").find("discarded"), std::string::npos);
    s.start();
    EXPECT_EQ(s.bdat("BDAT 3 LAST", "x\r\n"), "");
    EXPECT_EQ(s.last, action::commit);
}

TEST(SmtpServerProtocol, BdatLineLimitHoldsAcrossChunks) {
    session big("127.0.0.1", [](session_policy& p) { p.max_message_size = 100000; });
    big.start();
    std::string half(600, 'x');
    EXPECT_EQ(big.bdat("BDAT 600", half).substr(0, 9), "250 2.0.0");
    EXPECT_EQ(big.bdat("BDAT 602", half + "\r\n").substr(0, 9), "500 5.5.2") << "1200 octets in one line";
    EXPECT_FALSE(big.proto->in_data());
    big.send("RSET");
    big.start();
    std::string max_line(998, 'y');
    EXPECT_EQ(big.bdat("BDAT 1000 LAST", max_line + "\r\n", 333), "");
    EXPECT_EQ(big.last, action::commit) << "998 octets and CRLF is the limit, not over it";
}

TEST(SmtpServerProtocol, CommandReplies) {
    struct step { std::string in; std::string want; };
    std::vector<step> script = {
        {"MAIL FROM:<a@b.example>", "503 5.5.1"},  // before EHLO
        {"HELO", "501 5.5.4"},
        {"HELO client.example", "250 mx.test"},
        {"RCPT TO:<x@y.example>", "503 5.5.1"},  // before MAIL
        {"DATA", "503 5.5.1"},
        {"NOOP", "250 2.0.0"},
        {"VRFY someone", "252 2.0.0"},
        {"VRFY", "501 5.5.4"},
        {"EXPN list", "502 5.5.1"},
        {"HELP", "214 2.0.0"},
        {"STARTTLS", "502 5.5.1"},  // not configured
        {"AUTH PLAIN", "503 5.5.1"},  // not configured
        {"FOO bar", "500 5.5.2"},
        {"MAIL TO:<a@b.example>", "501 5.5.4"},
        {"MAIL FROM:<a b@c.example>", "553 5.1.7"},
        {"MAIL FROM:<jörg@c.example>", "553 5.6.7"},
        {"MAIL FROM:<a@b.example> RET=FULL", "555 5.5.4"},
        {"MAIL FROM:<a@b.example> SIZE=5000", "552 5.3.4"},
        {"MAIL FROM:<a@b.example> SIZE=x", "501 5.5.4"},
        {"MAIL FROM:<a@b.example> SIZE=500", "250 2.1.0"},
        {"MAIL FROM:<a@b.example>", "503 5.5.1"},  // nested
        {"DATA", "503 5.5.1"},                    // no RCPT yet
        {"RCPT TO:<bad@@x>", "553 5.1.3"},
        {"RCPT TO:x@y.example>", "553 5.1.3"},
        {"RCPT FROM:<x@y.example>", "501 5.5.4"},
        {"RCPT TO:<x@y.example> NOTIFY=NEVER", "555 5.5.4"},
        {"RCPT TO:<x@y.example>", "250 2.1.5"},
        {"RCPT TO:<x@y.example>", "250 2.1.5"},  // duplicate, kept once
        {"RCPT TO:<x2@y.example>", "250 2.1.5"},
        {"RCPT TO:<x3@y.example>", "250 2.1.5"},
        {"RCPT TO:<x4@y.example>", "452 4.5.3"},  // max_recipients = 3
        {"RSET", "250 2.0.0"},
        {"RCPT TO:<x@y.example>", "503 5.5.1"},  // RSET cleared MAIL
        {"QUIT", "221 2.0.0"},
    };
    session s;
    for (auto& st : script) {
        auto got = s.send(st.in);
        EXPECT_EQ(got.substr(0, st.want.size()), st.want) << "command: " << st.in << "\ngot: " << got;
    }
    EXPECT_EQ(s.last, action::close);
}

TEST(SmtpServerProtocol, DataDotStuffingCrlfAndCampaign) {
    session s;
    s.send("EHLO c.example");
    s.send("MAIL FROM:<a@b.example>");
    s.send("RCPT TO:<x@y.example>");
    EXPECT_EQ(s.code("DATA"), "354 End d");
    for (auto l : {"From: a@b.example", "X-Campaign-ID:  spring-2026 ", "Subject: hi", "", "..leading dot", ".", "body"})
        EXPECT_EQ(s.send(l, std::string_view(l) != "."), "") << l;
    // The "." above came with a bare LF, so it is content, not the end.
    EXPECT_TRUE(s.proto->in_data());
    s.send(".");
    EXPECT_EQ(s.last, action::commit);
    auto& env = s.proto->envelope();
    EXPECT_EQ(env.campaign, "spring-2026");
    EXPECT_EQ(env.sender, "a@b.example");
    EXPECT_EQ(env.recipients, std::vector<std::string>{"x@y.example"});
    const std::string& c = s.proto->content();
    EXPECT_EQ(c.rfind("Received: from c.example ([127.0.0.1])\r\n\tby mx.test (Ricochet) with ESMTP id 0ABCDEFGHJKMN\r\n\tfor <x@y.example>; ", 0), 0u) << c;
    EXPECT_NE(c.find("\r\n\r\n.leading dot\r\n\r\nbody\r\n"), std::string::npos) << "dot-unstuffing / bare-LF dot:\n" << c;
    std::string out;
    std::string id = env.id;
    auto moved = std::move(s.proto->envelope());  // as the server hands it to the spool
    s.proto->on_commit_result({}, id, out);
    EXPECT_EQ(out, "250 2.0.0 Ok: queued as 0ABCDEFGHJKMN\r\n");
    EXPECT_EQ(s.code("RCPT TO:<x@y.example>"), "503 5.5.1") << "transaction is over after 250";
}

TEST(SmtpServerProtocol, SmugglingBareLfDotDoesNotEndData) {
    session s;
    s.send("EHLO c.example");
    s.send("MAIL FROM:<a@b.example>");
    s.send("RCPT TO:<x@y.example>");
    s.send("DATA");
    s.send("Subject: x");
    s.send("", false);          // "\n"
    s.send(".", false);         // ".\n"  -> content
    s.send("MAIL FROM:<evil@example.com>");
    EXPECT_TRUE(s.proto->in_data());
    s.send(".");  // preceded by a CRLF line: the real end
    EXPECT_EQ(s.last, action::commit);
    EXPECT_NE(s.proto->content().find("MAIL FROM:<evil@example.com>"), std::string::npos);
}

TEST(SmtpServerProtocol, StorageFailureGives452) {
    session s;
    s.send("EHLO c.example");
    s.send("MAIL FROM:<a@b.example>");
    s.send("RCPT TO:<x@y.example>");
    s.send("DATA");
    s.send(".");
    ASSERT_EQ(s.last, action::commit);
    std::string out;
    s.proto->on_commit_result(std::make_error_code(std::errc::no_space_on_device), "0ABCDEFGHJKMN", out);
    EXPECT_EQ(out.substr(0, 9), "452 4.3.1");
}

TEST(SmtpServerProtocol, OversizeAndLongLinesAreRefusedAfterTheDot) {
    session s;
    s.send("EHLO c.example");
    s.send("MAIL FROM:<a@b.example>");
    s.send("RCPT TO:<x@y.example>");
    s.send("DATA");
    for (int i = 0; i < 20; ++i) s.send(std::string(98, 'x'));  // 2000 octets > 1000
    EXPECT_EQ(s.code("."), "552 5.3.4");
    EXPECT_FALSE(s.proto->in_data());
    session t("127.0.0.1", [](session_policy& p) { p.max_message_size = 100000; });
    t.send("EHLO c.example");
    t.send("MAIL FROM:<a@b.example>");
    t.send("RCPT TO:<x@y.example>");
    t.send("DATA");
    std::string out;
    t.proto->on_line(line{std::string(1000, 'y'), true, true}, out);
    EXPECT_EQ(t.code("."), "500 5.5.2");
    EXPECT_EQ(s.code("EHLO c.example"), "250-mx.te") << "session goes on";
    EXPECT_EQ(s.code(std::string(1200, 'z')), "500 5.5.2") << "overlong command line";
}

TEST(SmtpServerProtocol, TooManyHopsIsALoop) {
    session s("127.0.0.1", [](session_policy& p) { p.max_hops = 3; });
    s.send("EHLO c.example");
    s.send("MAIL FROM:<a@b.example>");
    s.send("RCPT TO:<x@y.example>");
    s.send("DATA");
    for (int i = 0; i < 3; ++i) s.send("Received: from somewhere");
    s.send("");
    EXPECT_EQ(s.code("."), "554 5.4.6");
}

TEST(SmtpServerProtocol, TooManyErrorsCloses) {
    session s("127.0.0.1", [](session_policy& p) { p.max_errors = 3; });
    s.send("BAD1");
    s.send("BAD2");
    auto r = s.send("BAD3");
    EXPECT_NE(r.find("421 4.7.0"), std::string::npos) << r;
    EXPECT_EQ(s.last, action::close);
}

TEST(SmtpServerProtocol, UntrustedClientMustAuthenticateAndNeverRelays) {
    auth_users users;
    std::string err;
    ASSERT_TRUE(users.load(temp_users_file("alice", "s3cret"), err)) << err;
    // No TLS configured: an untrusted client is offered no AUTH at all.
    session plain("192.0.2.7", [&](session_policy& p) { p.users = &users; });
    EXPECT_EQ(plain.send("EHLO c.example").find("AUTH"), std::string::npos);
    EXPECT_EQ(plain.code("MAIL FROM:<a@b.example>"), "530 5.7.0");
    EXPECT_EQ(plain.code("AUTH PLAIN " + base64_encode(std::string("\0alice\0s3cret", 13))), "503 5.5.1");

    // TLS configured but not started: AUTH needs encryption first.
    session pre("192.0.2.7", [&](session_policy& p) { p.users = &users; p.tls_available = true; });
    auto ehlo = pre.send("EHLO c.example");
    EXPECT_NE(ehlo.find("STARTTLS"), std::string::npos);
    EXPECT_EQ(ehlo.find("AUTH"), std::string::npos);
    EXPECT_EQ(pre.send("AUTH PLAIN " + base64_encode(std::string("\0alice\0s3cret", 13))).substr(0, 10), "538 5.7.11");
    EXPECT_EQ(pre.code("MAIL FROM:<a@b.example>"), "530 5.7.0");
    EXPECT_EQ(pre.send("STARTTLS").substr(0, 9), "220 2.0.0");
    EXPECT_EQ(pre.last, action::starttls);
    pre.proto->on_tls_started();
    EXPECT_EQ(pre.code("MAIL FROM:<a@b.example>"), "503 5.5.1") << "state reset by TLS: EHLO again";
    ehlo = pre.send("EHLO c.example");
    EXPECT_NE(ehlo.find("AUTH PLAIN LOGIN"), std::string::npos) << ehlo;
    EXPECT_EQ(ehlo.find("STARTTLS"), std::string::npos);
    EXPECT_EQ(pre.code("AUTH PLAIN " + base64_encode(std::string("\0alice\0wrong", 12))), "535 5.7.8");
    EXPECT_EQ(pre.code("MAIL FROM:<a@b.example>"), "530 5.7.0");
    // LOGIN with prompts
    EXPECT_EQ(pre.send("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    EXPECT_EQ(pre.send(base64_encode("alice")), "334 UGFzc3dvcmQ6\r\n");
    EXPECT_EQ(pre.code(base64_encode("s3cret")), "235 2.7.0");
    EXPECT_EQ(pre.proto->auth_user(), "alice");
    EXPECT_EQ(pre.code("MAIL FROM:<a@b.example>"), "250 2.1.0");
    EXPECT_EQ(pre.code("RCPT TO:<anyone@anywhere.example>"), "250 2.1.5");
}

TEST(SmtpServerProtocol, AuthPlainPromptAbortAndLockout) {
    auth_users users;
    std::string err;
    ASSERT_TRUE(users.load(temp_users_file("bob", "pw"), err));
    session s("127.0.0.1", [&](session_policy& p) { p.users = &users; p.max_auth_failures = 2; });
    s.send("EHLO c.example");
    EXPECT_EQ(s.send("AUTH PLAIN"), "334 \r\n");
    EXPECT_EQ(s.code("*"), "501 5.7.0");
    EXPECT_EQ(s.code("AUTH PLAIN !!!notbase64"), "501 5.5.2");
    EXPECT_EQ(s.code("AUTH CRAM-MD5"), "504 5.5.4");
    EXPECT_EQ(s.code("AUTH PLAIN " + base64_encode(std::string("\0bob\0nope", 9))), "535 5.7.8");
    auto r = s.send("AUTH PLAIN " + base64_encode(std::string("\0nobody\0pw", 10)));
    EXPECT_NE(r.find("421 4.7.0"), std::string::npos) << r;
    EXPECT_EQ(s.last, action::close);
}

TEST(SmtpServerProtocol, RecipientHookRefuses) {
    session s("127.0.0.1", [](session_policy& p) {
        p.check_recipient = [](std::string_view r) {
            if (r == "held@y.example") return rcpt_verdict::refuse("550 5.7.1 <held@y.example>: recipient is held");
            if (r == "gone@y.example") return rcpt_verdict::drop();
            return rcpt_verdict::accept();
        };
    });
    s.send("EHLO c.example");
    s.send("MAIL FROM:<a@b.example>");
    EXPECT_EQ(s.code("RCPT TO:<held@y.example>"), "550 5.7.1");
    EXPECT_EQ(s.code("RCPT TO:<gone@y.example>"), "250 2.1.5") << "drop: accepted ...";
    EXPECT_EQ(s.code("RCPT TO:<ok@y.example>"), "250 2.1.5");
    s.send("DATA");
    s.send(".");
    ASSERT_EQ(s.last, action::commit);
    EXPECT_EQ(s.proto->envelope().recipients, std::vector<std::string>{"ok@y.example"}) << "... and not delivered";
}

TEST(SmtpServerProtocol, AllRecipientsDroppedQueuesNothing) {
    session s("127.0.0.1", [](session_policy& p) { p.check_recipient = [](std::string_view) { return rcpt_verdict::drop(); }; });
    s.send("EHLO c.example");
    s.send("MAIL FROM:<a@b.example>");
    EXPECT_EQ(s.code("RCPT TO:<gone@y.example>"), "250 2.1.5");
    EXPECT_EQ(s.code("DATA"), "354 End d");
    auto r = s.send(".");
    EXPECT_EQ(s.last, action::none);
    EXPECT_EQ(r, "250 2.0.0 Ok: every recipient is suppressed, nothing queued\r\n");
}

TEST(SmtpServerProtocol, BareCrBecomesALineEnd) {
    session s;
    s.send("EHLO c.example");
    s.send("MAIL FROM:<a@b.example>");
    s.send("RCPT TO:<x@y.example>");
    s.send("DATA");
    s.send("Subject: x");
    s.send("");
    s.send("foo\r.\rMAIL FROM:<evil@example.com>");
    s.send(".");
    ASSERT_EQ(s.last, action::commit);
    const auto& c = s.proto->content();
    EXPECT_NE(c.find("\r\nfoo\r\n.\r\nMAIL FROM:<evil@example.com>\r\n"), std::string::npos) << c;
    for (std::size_t i = 0; i < c.size(); ++i) {
        if (c[i] == '\r') {
            EXPECT_EQ(c[i + 1], '\n') << "bare CR left at " << i;
        }
    }
}

TEST(SmtpServerProtocol, BounceRoleWithoutRecipientCheckRelaysNothing) {
    session s("203.0.113.5", [](session_policy& p) { p.role = server_role::bounce; });
    s.send("EHLO mx.example");
    EXPECT_EQ(s.code("MAIL FROM:<>"), "250 2.1.0") << "bounces come from the null sender, from anywhere";
    EXPECT_EQ(s.code("RCPT TO:<victim@example.org>"), "550 5.1.1");
}

TEST(SmtpServerProtocol, PolicyRefusalsDoNotCountAsErrors) {
    session s("127.0.0.1", [](session_policy& p) {
        p.max_errors = 2;
        p.check_recipient = [](std::string_view) { return rcpt_verdict::refuse("550 5.7.1 held"); };
    });
    s.send("EHLO c.example");
    s.send("MAIL FROM:<a@b.example>");
    for (int i = 0; i < 5; ++i) EXPECT_EQ(s.code("RCPT TO:<x@y.example>"), "550 5.7.1");
    EXPECT_EQ(s.last, action::none) << "suppressed recipients must not end a campaign session";
}

// A message received in pieces: what the session wrote to its spill file,
// plus before() and content(), is the message; the header section read at
// the dot comes from the copy kept at the first spill.
TEST(SmtpServerProtocol, ASpilledMessageIsBeforeThenSpillThenContent) {
    session s(std::string("127.0.0.1"), [](session_policy& p) { p.max_message_size = 1 << 20; });
    s.send("EHLO c.example");
    s.send("MAIL FROM:<a@b.example>");
    s.send("RCPT TO:<x@y.example>");
    s.send("DATA");
    EXPECT_EQ(s.proto->buffered(), 0u) << "nothing yet";
    std::string spill;
    for (auto l : {"From: a@b.example", "X-Campaign-ID: big", "Received: from elsewhere", "", "line 1"}) s.send(l);
    EXPECT_EQ(s.proto->buffered(), s.proto->content().size());
    spill += s.proto->take_for_spill();
    EXPECT_EQ(s.proto->buffered(), 0u);
    for (auto l : {"line 2", "..dot", "line 3"}) s.send(l);
    spill += s.proto->take_for_spill();
    s.send("last line");
    s.send(".");
    ASSERT_EQ(s.last, action::commit);
    EXPECT_EQ(s.proto->envelope().campaign, "big") << "from the header copy";
    EXPECT_EQ(s.proto->spilled(), spill.size());
    auto whole = s.proto->before() + spill + s.proto->content();
    EXPECT_EQ(whole.rfind("Received: from c.example ([127.0.0.1])", 0), 0u) << whole;
    EXPECT_NE(whole.find("X-Campaign-ID: big\r\nReceived: from elsewhere\r\n\r\nline 1\r\nline 2\r\n.dot\r\nline 3\r\nlast line\r\n"),
              std::string::npos)
        << whole;
    std::string out;
    s.proto->on_commit_result({}, "0ABCDEFGHJKMN", out);
    EXPECT_EQ(s.proto->spilled(), 0u) << "a new transaction starts afresh";
    EXPECT_TRUE(s.proto->before().empty());
}

// The session could not keep the message (spill failed, memory budget):
// the rest is read and dropped, and the dot gets the reply it was given.
TEST(SmtpServerProtocol, ARefusedMessageIsDroppedAndAnsweredAtTheDot) {
    session s;
    s.send("EHLO c.example");
    s.send("MAIL FROM:<a@b.example>");
    s.send("RCPT TO:<x@y.example>");
    s.send("DATA");
    s.send("Subject: x");
    s.proto->refuse_data("452 4.3.1 Error: too much mail in memory, try again later");
    s.send("");
    s.send("more");
    EXPECT_EQ(s.proto->buffered(), 0u);
    EXPECT_TRUE(s.proto->content().empty()) << "not kept";
    EXPECT_EQ(s.send("."), "452 4.3.1 Error: too much mail in memory, try again later\r\n");
    EXPECT_EQ(s.last, action::none);
    EXPECT_EQ(s.code("MAIL FROM:<a@b.example>"), "250 2.1.0") << "the session goes on";
}

// max_errors counts from the end of the last message that was queued, in
// the order of the commands: errors pipelined behind a message that is
// still committing are not forgotten when its 250 goes out.
TEST(SmtpServerProtocol, ErrorsPipelinedBehindACommittingMessageStillCount) {
    session s("127.0.0.1", [](session_policy& p) { p.max_errors = 3; });
    s.start();
    EXPECT_EQ(s.bdat("BDAT 12 LAST", "Subject: x\r\n"), "");
    ASSERT_EQ(s.last, action::commit);
    auto before = s.proto->error_count();
    s.proto->commit_started();
    // Read while the message commits: two bad commands.
    EXPECT_EQ(s.code("BOGUS"), "500 5.5.2");
    EXPECT_EQ(s.code("RCPT TO:<x@y.example>"), "503 5.5.1");
    EXPECT_EQ(s.last, action::none);
    // Its 250 goes out now: the two errors after it still count...
    s.proto->commit_succeeded(before);
    auto r = s.send("BOGUS");
    EXPECT_EQ(s.last, action::close) << "the third error since the message ends the session:\n" << r;
    EXPECT_NE(r.find("421 4.7.0"), std::string::npos) << r;
}

// ... while the errors before a queued message are forgiven.
TEST(SmtpServerProtocol, ErrorsBeforeAQueuedMessageAreForgiven) {
    session s("127.0.0.1", [](session_policy& p) { p.max_errors = 3; });
    EXPECT_EQ(s.code("BOGUS"), "500 5.5.2");
    EXPECT_EQ(s.code("BOGUS"), "500 5.5.2");
    s.start();
    EXPECT_EQ(s.bdat("BDAT 12 LAST", "Subject: x\r\n"), "");
    ASSERT_EQ(s.last, action::commit);
    auto before = s.proto->error_count();
    EXPECT_EQ(before, 2u);
    s.proto->commit_started();
    s.proto->commit_succeeded(before);
    EXPECT_EQ(s.code("BOGUS"), "500 5.5.2");
    EXPECT_EQ(s.code("BOGUS"), "500 5.5.2");
    EXPECT_EQ(s.last, action::none) << "two errors since the message: under max_errors";
    s.send("BOGUS");
    EXPECT_EQ(s.last, action::close);
}

// in_transaction(): what the session's spool transaction_mark follows (the
// committer waits a little for open transactions, queue/spool.hpp).
TEST(SmtpServerProtocol, InTransactionFromMailUntilTheMessageIsHandedOverOrReset) {
    session s;
    s.send("EHLO c.example");
    EXPECT_FALSE(s.proto->in_transaction());
    s.send("MAIL FROM:<a@b.example>");
    EXPECT_TRUE(s.proto->in_transaction());
    s.send("RCPT TO:<x@y.example>");
    EXPECT_TRUE(s.proto->in_transaction());
    s.send("RSET");
    EXPECT_FALSE(s.proto->in_transaction());
    s.start();
    s.send("DATA");
    EXPECT_TRUE(s.proto->in_transaction());
    s.send("Subject: x");
    s.send("");
    s.send(".");
    ASSERT_EQ(s.last, action::commit);
    s.proto->commit_started();
    EXPECT_FALSE(s.proto->in_transaction()) << "handed to the spool: the transaction is over";
    s.start();
    s.bdat("BDAT 3", "ab\n");
    EXPECT_TRUE(s.proto->in_transaction()) << "between chunks";
    s.bdat("BDAT 3 LAST", "cd\n");
    ASSERT_EQ(s.last, action::commit);
    s.proto->commit_started();
    EXPECT_FALSE(s.proto->in_transaction());
}
