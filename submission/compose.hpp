// compose — a message built from the API's JSON parts (subject, text, html,
// headers) into proper MIME with GMime: text/plain, text/html, or both as
// multipart/alternative; UTF-8 with the transfer encoding GMime finds best
// for 7-bit transport (quoted-printable or base64 where lines are long or
// bytes are 8-bit); RFC 2047 encoded words in headers; CRLF line ends;
// Date and Message-ID set. The only file of submission/ that includes GMime.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ricochet::submission {

struct parts {
    std::string from;                // header From (an address, or "Name <address>")
    std::vector<std::string> to;     // header To
    std::string subject, text, html;
    std::vector<std::pair<std::string, std::string>> headers;  // extra headers, in order
};

// The message, or nullopt with `error` (a header the caller may not set, a
// header name or value that is not well-formed, no text and no html).
std::optional<std::string> compose(const parts& p, const std::string& message_id, std::int64_t now_ms,
                                   std::string& error);

}  // namespace ricochet::submission
