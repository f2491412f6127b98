// address — RFC 5321 4.1.2 mailboxes and paths, with RFC 6531 UTF-8.
//
// Parses what follows "MAIL FROM:" / "RCPT TO:" up to the end of the path and
// returns the mailbox in a canonical form: the local part unquoted when it is
// a plain dot-string (`"john"@x` is john@x), quoted with the needed escapes
// when it is not; the domain lower-cased when it is ASCII. Source routes
// (`<@a,@b:user@c>`) are accepted and dropped, as RFC 5321 4.1.1.3 tells a
// server to; `%` and `!` are ordinary characters, never routing.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace ricochet::smtp {

enum class address_error {
    none,
    syntax,     // not a path: 501 / 553
    too_long,   // local part > 64, domain > 255, path > 256 octets (RFC 5321 4.5.3.1)
    non_ascii,  // UTF-8 without the SMTPUTF8 parameter (RFC 6531 3.5: 553 5.6.7)
};

struct parsed_path {
    std::string local;      // canonical local part
    std::string domain;     // domain or address literal ("[192.0.2.1]")
    bool null = false;      // "<>"
    bool utf8 = false;      // has non-ASCII octets
    std::size_t consumed = 0;  // octets of input used, including the brackets

    std::string address() const { return null ? std::string() : local + "@" + domain; }
};

// Parses a path at the start of text. allow_utf8 comes from SMTPUTF8 on MAIL.
// allow_null is true for MAIL FROM only.
address_error parse_path(std::string_view text, bool allow_null, bool allow_utf8, parsed_path& out);

// True for a syntactically valid mailbox "local@domain" (no brackets).
bool is_valid_mailbox(std::string_view mailbox, bool allow_utf8 = true);

}  // namespace ricochet::smtp
