// smtp_reply — one SMTP reply as a value: code, RFC 3463 enhanced status,
// every line of text, and the stage of the session it answered. Delivery
// captures every reply whole; the bounce engine classifies it. A 4xx or 5xx
// reply is a value here, not an error.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ricochet::bounce {

// Where in a delivery attempt a reply (or a failure without one) happened.
enum class stage { dns, connect, greeting, ehlo, starttls, tls, mail, rcpt, data, end_of_data, quit };
std::string_view to_string(stage s);

struct smtp_reply {
    int code = 0;              // 0: no reply (connection or DNS trouble)
    std::string enhanced;      // "5.1.1", empty when the server sent none
    std::vector<std::string> lines;  // text after "NNN-" / "NNN ", without the enhanced code
    stage at = stage::connect;
    bool stage_known = true;   // false: a report that does not say which step the reply answered (at is a guess)
    std::string reporter;      // a report's Reporting-MTA host, empty for replies in our own sessions
    bool address_confirmed = false;  // the report's own verdict: no such mailbox (dsn_record)

    bool positive() const { return code >= 200 && code < 400; }
    bool transient() const { return code >= 400 && code < 500; }
    bool permanent() const { return code >= 500; }
    // All lines joined with a space: "550 5.1.1 user unknown; try later".
    std::string text() const;

    // A failure that got no SMTP reply (DNS, connection, TLS, time-out):
    // code 0, and the text says what happened.
    static smtp_reply none(stage at, std::string text) {
        smtp_reply r;
        r.at = at;
        r.lines.push_back(std::move(text));
        return r;
    }
};

// Accumulates the lines of one reply (RFC 5321 4.2.1: "NNN-text" lines, then
// "NNN text"). feed() returns true when the reply is complete, false when
// more lines are needed; `malformed` is set for lines that are not a reply.
class reply_parser {
public:
    bool feed(std::string_view line);
    bool malformed() const { return malformed_; }
    // The complete reply; resets the parser.
    smtp_reply take(stage at);

private:
    int code_ = 0;
    std::vector<std::string> lines_;
    bool malformed_ = false;
};

// Splits a leading RFC 3463 code ("5.1.1 ") off a reply line; the class digit
// must agree with the reply code's first digit, as RFC 3463 requires.
std::optional<std::string> enhanced_code_prefix(std::string_view text, int reply_code, std::size_t& length);

}  // namespace ricochet::bounce
