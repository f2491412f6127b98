// fields — "Name: value" fields in groups separated by blank lines, with
// folding: the body of a message/delivery-status part (RFC 3464 2.1: a
// per-message group, then one group per recipient), of a
// message/feedback-report part (RFC 5965 3.1), and of text/rfc822-headers.
// Names are lower-cased and values trimmed; a line without a colon is
// skipped, so a broken report still yields the fields it has.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ricochet::bounce::dsn {

using fields = std::vector<std::pair<std::string, std::string>>;  // lower-case name, value; in order

std::vector<fields> parse_field_groups(std::string_view text);

// The first value of name (lower-case) in f; empty when it has none.
std::string field(const fields& f, std::string_view name);

}  // namespace ricochet::bounce::dsn
