// seven_bit — a message with 8-bit content made 7-bit for a server that
// does not offer 8BITMIME (RFC 6152 section 3: convert, or do not send).
// Every leaf part whose body holds 8-bit octets (declared 8bit or binary, or
// undeclared) is re-encoded: text/* as quoted-printable, anything else as
// base64, with its Content-Transfer-Encoding updated; a multipart or
// message/rfc822 declared 8bit says 7bit once its parts are. The decoded
// content of every part is unchanged. Header fields are not touched: one
// with 8-bit octets (a raw UTF-8 Subject, RFC 6532) cannot be made 7-bit
// without changing what it says, so such a message is not converted.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace ricochet::mime {

// Whether any octet is 0x80 or above (the message needs 8BITMIME as it is).
bool has_eight_bit(std::string_view s);

// The 7-bit form of a message (CRLF line ends in and out). nullopt with
// `error` (one line, for the bounce) when it cannot be converted: a header
// field with 8-bit octets, or a message GMime cannot read back as 7-bit.
std::optional<std::string> to_seven_bit(std::string_view message, std::string& error);

}  // namespace ricochet::mime
