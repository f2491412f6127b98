// text — the string helpers every DSN reader shares: ASCII case and space,
// addresses found in free text, and the part of a notice about one
// recipient. ASCII only, no locale: report fields and reply texts are ASCII
// keywords, and addresses are compared octet by octet.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace ricochet::bounce::dsn {

std::string lower(std::string_view s);
std::string trim(std::string_view s);
// Line breaks and tabs as spaces: a diagnostic is one line.
std::string one_line(std::string s);
// s cut to max_text octets (limits.hpp).
std::string cap(std::string s);

// "rfc822; user@example.com" or "<user@example.com>" -> "user@example.com"
// (RFC 3464 2.3.2: address-type ";" generic-address).
std::string strip_type(std::string v);

// Every address-looking token in text, in order of appearance.
std::vector<std::string> find_addresses(std::string_view text);
// local@domain.tld, no space: what a recipient must look like to be reported.
bool valid_address(std::string_view a);

// The part of a notice about one recipient: from its address up to the next
// of the other recipients (or 600 octets), where its own reply usually is.
// lt is text lower-cased; others are lower-case.
std::string segment_for(const std::string& text, std::string_view lt, const std::string& rcpt,
                        const std::vector<std::string>& others);

}  // namespace ricochet::bounce::dsn
