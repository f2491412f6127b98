// unsubscribe — reads an unsubscribe request by mail: a person's message
// with the Subject "unsubscribe" to our return path, as sent by the mailto:
// URL of a List-Unsubscribe header (RFC 2369 3.2; RFC 8058 for the one-click
// HTTPS form, which does not come by mail). The sender asks for themselves:
// an opt-out complaint for the From address. A mail system's notice with
// that Subject is not a person asking.
#include "bounce/dsn/mail_system.hpp"
#include "bounce/dsn/readers.hpp"
#include "bounce/dsn/text.hpp"

namespace ricochet::bounce::dsn {

bool read_unsubscribe(const message& m, dsn_report& rep) {
    if (from_daemon(m) || trim(lower(m.subject)) != "unsubscribe") return false;
    auto from = find_addresses(m.from);
    read_feedback_fields({{"feedback-type", "opt-out"}, {"original-rcpt-to", from.empty() ? "" : from[0]}}, m.original_to, rep);
    return true;
}

}  // namespace ricochet::bounce::dsn
