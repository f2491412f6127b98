// readers — one reader per bounce format, each in its own file, in the order
// parse_dsn (bounce/dsn_parser.cpp) tries them: the complaint formats (a
// report about the message, which outranks any DSN beside it), the RFC 3464
// report, then, when that found no record, the formats of mail systems that
// send no DSN. A reader that recognises its format fills the report (records
// and format) and returns true; otherwise it leaves the report as it was.
#pragma once
#include <string>
#include <vector>

#include "bounce/dsn/fields.hpp"
#include "bounce/dsn/mime.hpp"
#include "bounce/dsn_parser.hpp"

namespace ricochet::bounce::dsn {

// What a report group without a usable recipient said ("Final-Recipient:
// rfc822; <unknown>"): the free-text reader finds the address in the
// notice and keeps these.
struct report_fallback {
    std::string status, diagnostic;
    int code = 0;
};

// arf.cpp — RFC 5965 feedback reports (message/feedback-report).
bool read_arf(const message& m, dsn_report& rep);
// The records of one feedback report's fields g; original_to names the
// complainer when the report does not. Shared by the complaint readers.
void read_feedback_fields(const fields& g, const std::vector<std::string>& original_to, dsn_report& rep);
// jmrp.cpp — Microsoft's JMRP complaints (no ARF fields). After read_arf.
bool read_jmrp(const message& m, dsn_report& rep);
// unsubscribe.cpp — "unsubscribe" by mail from a person. After read_jmrp.
bool read_unsubscribe(const message& m, dsn_report& rep);

// rfc3464.cpp — RFC 3464 / RFC 6533 delivery status notifications. Sets
// the format whenever m has report groups, even when no record comes of
// them; fallback keeps what a group without a usable recipient said.
bool read_rfc3464(const message& m, dsn_report& rep, report_fallback& fallback);

// The readers below run only when no record was found above.
// autoreply.cpp — RFC 3834 automatic replies (vacation, out of office).
bool read_autoreply(const message& m, dsn_report& rep);
// ses_json.cpp — Amazon SES notifications by mail (SNS e-mail subscription).
bool read_ses_json(const std::string& text, dsn_report& rep);
// free_text.cpp — the free-text NDRs of Exim, Postfix, Sendmail, qmail,
// Exchange, ...: the last resort.
bool read_free_text(const message& m, const report_fallback& fallback, dsn_report& rep);

}  // namespace ricochet::bounce::dsn
