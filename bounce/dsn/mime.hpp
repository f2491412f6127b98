// mime — one bounce message as the readers see it, from GMime: the top
// headers they consult and what a walk of the MIME tree collects (RFC 3462 /
// RFC 6522 multipart/report, RFC 3464 message/delivery-status and RFC 6533's
// message/global-delivery-status, RFC 5965 message/feedback-report, the
// returned message or its text/rfc822-headers, and the notice's text parts).
// Transfer encodings and charsets are GMime's job. The only file that
// includes GMime: every reader works on these plain strings.
//
// Bounded: at most max_text octets of notice text, max_depth levels of
// nesting and max_parts parts of one multipart are read (limits.hpp).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bounce/dsn/fields.hpp"

namespace ricochet::bounce::dsn {

struct message {
    // The top-level headers the readers use, as GMime gives them; empty when absent.
    std::string from, to, subject, return_path, x_failed_recipients;
    std::string x_autoreply, x_autorespond, precedence, auto_submitted;

    std::vector<fields> dsn_groups;  // delivery-status groups (and DSN fields found in the text)
    std::vector<fields> arf_groups;  // feedback-report groups
    std::string text;                // notification text (not the returned message), parts joined by "\n"
    std::vector<std::string> original_to;  // To/Cc of the returned message
    std::string original_message_id;
};

// Japanese MTAs write report fields (a Diagnostic-Code) in ISO-2022-JP
// (RFC 1468: 7-bit with ESC sequences), which a delivery-status part has no
// way to declare. Converted to UTF-8 when s has such a sequence; s as it is
// otherwise, or when the conversion fails.
std::string iso2022jp_to_utf8(std::string s);

// nullopt when GMime finds no message at all in raw.
std::optional<message> read_message(std::string_view raw);

}  // namespace ricochet::bounce::dsn
