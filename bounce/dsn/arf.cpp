// arf — reads RFC 5965 Abuse Reporting Format feedback reports: a
// multipart/report; report-type=feedback-report with a
// message/feedback-report part (Feedback-Type, Original-Rcpt-To,
// Reporting-MTA, User-Agent, ...; RFC 5965 3.1-3.2) and the message
// complained about. Sent by the feedback loops of mailbox providers (Yahoo,
// AOL, Comcast, Fastmail, Mail.ru, ...; M3AAWG's "Complaint Feedback Loop
// Operational Recommendations") when a recipient marks our mail as spam,
// and by DMARC's failure reports (RFC 6591, Feedback-Type: auth-failure).
//
// One report is about the message; the complainer is the original
// recipient. Only abuse, fraud and opt-out speak for the recipient;
// auth-failure, not-spam, virus and other are reports to the sender's
// postmaster and change nothing (type "feedback").
#include "bounce/dsn/limits.hpp"
#include "bounce/dsn/readers.hpp"
#include "bounce/dsn/text.hpp"

namespace ricochet::bounce::dsn {

bool read_arf(const message& m, dsn_report& rep) {
    if (m.arf_groups.empty()) return false;
    read_feedback_fields(m.arf_groups[0], m.original_to, rep);
    return true;
}

void read_feedback_fields(const fields& g, const std::vector<std::string>& original_to, dsn_report& rep) {
    dsn_record d;
    d.feedback_type = lower(field(g, "feedback-type"));
    d.type = d.feedback_type == "abuse" || d.feedback_type == "fraud" || d.feedback_type == "opt-out" ? "complaint"
                                                                                                     : "feedback";
    d.reporting_mta = strip_type(field(g, "reporting-mta"));
    d.diagnostic = field(g, "user-agent");
    // Original-Rcpt-To may appear once per recipient of the message
    // (RFC 5965 3.2): one record each.
    std::vector<std::string> rcpts;
    for (auto& [k, v] : g)
        if (k == "original-rcpt-to" && valid_address(strip_type(v)) && rcpts.size() < max_records)
            rcpts.push_back(strip_type(v));
    if (rcpts.empty()) rcpts.push_back(strip_type(field(g, "removal-recipient")));
    if (!valid_address(rcpts[0])) rcpts[0] = original_to.empty() ? "" : original_to[0];
    for (auto& r : rcpts) {
        rep.records.push_back(d);
        rep.records.back().recipient = r;
    }
    rep.format = "arf";
}

}  // namespace ricochet::bounce::dsn
