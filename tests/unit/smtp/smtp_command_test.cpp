// Tests for smtp/smtp_command.hpp: every verb, MAIL/RCPT parameters.
#include "smtp/smtp_command.hpp"

#include <gtest/gtest.h>

using namespace ricochet::smtp;

TEST(SmtpCommand, Verbs) {
    struct { std::string in; verb want; std::string arg; } rows[] = {
        {"HELO client.example", verb::helo, "client.example"},
        {"ehlo client.example", verb::ehlo, "client.example"},
        {"MAIL FROM:<a@b.example>", verb::mail, "FROM:<a@b.example>"},
        {"Rcpt To:<a@b.example>", verb::rcpt, "To:<a@b.example>"},
        {"DATA", verb::data, ""},
        {"BDAT 100 LAST", verb::bdat, "100 LAST"},
        {"RSET", verb::rset, ""},
        {"NOOP anything", verb::noop, "anything"},
        {"QUIT", verb::quit, ""},
        {"VRFY user", verb::vrfy, "user"},
        {"EXPN list", verb::expn, "list"},
        {"HELP", verb::help, ""},
        {"STARTTLS", verb::starttls, ""},
        {"AUTH PLAIN AGFsaWNlAHNlY3JldA==", verb::auth, "PLAIN AGFsaWNlAHNlY3JldA=="},
        {"EHLO   spaced.example   ", verb::ehlo, "spaced.example"},
        {"GET / HTTP/1.1", verb::unknown, "/ HTTP/1.1"},
        {"", verb::unknown, ""},
        {"MAILFROM:<a@b>", verb::unknown, ""},
    };
    for (auto& r : rows) {
        auto c = parse_command(r.in);
        EXPECT_EQ(c.v, r.want) << r.in;
        EXPECT_EQ(c.arg, r.arg) << r.in << ": got arg '" << c.arg << "', want '" << r.arg << "'";
    }
}

TEST(SmtpCommand, MailFrom) {
    struct { std::string in; param_error want; std::string addr; bool utf8, eightbit; std::optional<std::uint64_t> size; } rows[] = {
        {"FROM:<a@b.example>", param_error::none, "a@b.example", false, false, {}},
        {"FROM: <a@b.example>", param_error::none, "a@b.example", false, false, {}},
        {"from:<>", param_error::none, "", false, false, {}},
        {"FROM:<a@b.example> SIZE=1000 BODY=8BITMIME", param_error::none, "a@b.example", false, true, 1000},
        {"FROM:<a@b.example> BODY=7BIT", param_error::none, "a@b.example", false, false, {}},
        {"FROM:<jörg@b.example> SMTPUTF8", param_error::none, "jörg@b.example", true, false, {}},
        {"FROM:<jörg@b.example>", param_error::non_ascii, "", false, false, {}},
        {"FROM:<a@b.example> AUTH=<>", param_error::none, "a@b.example", false, false, {}},
        {"FROM:<a@b.example> SIZE=abc", param_error::bad_param_value, "", false, false, {}},
        {"FROM:<a@b.example> SIZE=", param_error::bad_param_value, "", false, false, {}},
        {"FROM:<a@b.example> BODY=BINARYMIME", param_error::bad_param_value, "", false, false, {}},
        {"FROM:<a@b.example> RET=HDRS", param_error::unknown_param, "", false, false, {}},
        {"FROM:<a@b.example>SIZE=1", param_error::syntax, "", false, false, {}},
        {"TO:<a@b.example>", param_error::syntax, "", false, false, {}},
        {"FROM:", param_error::bad_address, "", false, false, {}},
        {"FROM:<a b@c.example>", param_error::bad_address, "", false, false, {}},
    };
    for (auto& r : rows) {
        mail_from m;
        std::string bad;
        auto got = parse_mail_from(r.in, m, bad);
        EXPECT_EQ(static_cast<int>(got), static_cast<int>(r.want)) << r.in;
        if (got != param_error::none) continue;
        EXPECT_EQ(m.path.address(), r.addr) << r.in;
        EXPECT_EQ(m.smtputf8, r.utf8) << r.in;
        EXPECT_EQ(m.eightbit, r.eightbit) << r.in;
        EXPECT_EQ(m.size, r.size) << r.in;
    }
}

TEST(SmtpCommand, RcptTo) {
    struct { std::string in; bool utf8; param_error want; } rows[] = {
        {"TO:<a@b.example>", false, param_error::none},
        {"To: <a@b.example>", false, param_error::none},
        {"TO:<>", false, param_error::bad_address},
        {"TO:<a@b.example> NOTIFY=NEVER", false, param_error::unknown_param},
        {"TO:<ü@b.example>", false, param_error::non_ascii},
        {"TO:<ü@b.example>", true, param_error::none},
        {"FROM:<a@b.example>", false, param_error::syntax},
        {"TO:<" + std::string(300, 'a') + "@b.example>", false, param_error::too_long},
    };
    for (auto& r : rows) {
        rcpt_to t;
        std::string bad;
        EXPECT_EQ(static_cast<int>(parse_rcpt_to(r.in, r.utf8, t, bad)), static_cast<int>(r.want)) << r.in;
    }
}
