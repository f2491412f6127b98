// smtp_command — parsing of SMTP command lines (RFC 5321 4.1), server side.
// Pure functions over one line without its CRLF; no I/O.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "smtp/address.hpp"

namespace ricochet::smtp {

enum class verb { unknown, helo, ehlo, mail, rcpt, data, bdat, rset, noop, quit, vrfy, expn, help, starttls, auth };

struct command {
    verb v = verb::unknown;
    std::string_view name;  // as sent
    std::string_view arg;   // after the verb and one space, trailing spaces removed
};

command parse_command(std::string_view line);

enum class param_error { none, syntax, bad_address, too_long, non_ascii, unknown_param, bad_param_value };

struct mail_from {
    parsed_path path;
    std::optional<std::uint64_t> size;  // SIZE= (RFC 1870)
    bool eightbit = false;             // BODY=8BITMIME (RFC 6152)
    bool smtputf8 = false;             // SMTPUTF8 (RFC 6531)
};

struct rcpt_to {
    parsed_path path;
};

// arg is command::arg of MAIL ("FROM:<a@b> SIZE=10"). Tolerates a space after
// the colon, as deployed clients send it. On error, bad_param names the
// offending parameter for the reply.
param_error parse_mail_from(std::string_view arg, mail_from& out, std::string& bad_param);
param_error parse_rcpt_to(std::string_view arg, bool smtputf8, rcpt_to& out, std::string& bad_param);

}  // namespace ricochet::smtp
