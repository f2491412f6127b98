// codes — the SMTP reply codes (RFC 5321 4.2) and enhanced status codes
// (RFC 3463) quoted in a diagnostic or a notice's free text, as MTAs write
// them: "550 5.1.1 ...", "550-5.1.1", "#5.1.1", "(5.1.1)".
#pragma once
#include <string>
#include <string_view>

namespace ricochet::bounce::dsn {

// The first reply code (4xx/5xx) and the first RFC 3463 status in t, each
// set only when still 0 / empty on entry: a caller's fallback stays when t
// has none.
void find_codes(std::string_view t, int& code, std::string& status);

// The last RFC 3463 code in a diagnostic: where relays quote the reply they
// got ("5.1.0 - Unknown address error 550-'5.7.1 ... Access denied'",
// "554 4.4.7 Message expired ... <421 4.4.2 Connection timed out>"), the
// innermost, last one is the receiving server's own. Only codes of class
// cls ('2', '4', '5'; 0 for any) count. Empty when none.
std::string last_status(std::string_view t, char cls);

// No status, or X.0.0 (RFC 3463 3.1: "other undefined status"): it says
// nothing beyond its class.
bool generic_status(const std::string& s);

}  // namespace ricochet::bounce::dsn
