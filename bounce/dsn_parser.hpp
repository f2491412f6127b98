// dsn_parser — finds the delivery reports in a bounce message: RFC 3464
// multipart/report (message/delivery-status and RFC 6533's
// message/global-delivery-status), RFC 5965 ARF complaints, RFC 3834
// auto-replies, and the free-text NDRs of MTAs that send no DSN (qmail, Exim,
// Sendmail, old Yahoo, ...) by their visible markers and X-Failed-Recipients.
// MIME structure and transfer encodings are GMime's job; the report fields
// and the free text are read by one reader per format (bounce/dsn/), tried
// in order by parse_dsn. Pure: bytes in, records out.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "bounce/smtp_reply.hpp"

namespace ricochet::bounce {

struct dsn_record {
    std::string type;        // bounce, delayed, delivered, complaint, feedback (other ARF), autoreply
    std::string recipient;   // the failed (or reported) address
    std::string original_recipient;
    std::string action;      // failed, delayed, delivered, relayed, expanded
    std::string status;      // RFC 3463 code, e.g. 5.1.1
    int reply_code = 0;      // from the diagnostic, when it has one
    std::string diagnostic;  // Diagnostic-Code text (or the reply found in free text)
    std::string remote_mta, reporting_mta, last_attempt;
    std::string feedback_type;  // ARF
    stage at = stage::rcpt;     // the SMTP step the remote reply answered, when the report says
    bool stage_known = false;   // the report named that step (else at is the usual guess, RCPT)
    // The reporting MTA's own verdict that the mailbox does not exist
    // (PowerMTA's X-PowerMTA-BounceCategory: bad-mailbox): evidence like X.1.1.
    bool address_confirmed = false;
};

struct dsn_report {
    std::string format;  // rfc3464, arf, autoreply, text (free-text NDR), none
    std::vector<dsn_record> records;
    std::vector<std::string> original_recipients;  // To/Cc of the attached original, when present
    std::string original_message_id;
    bool from_mail_system = false;  // From a mailer-daemon/postmaster, or Return-Path <>
};

// Bounded work whatever the input: at most 64 KiB of notice text and 100
// records are read, and MIME nesting deeper than 8 levels is ignored.
dsn_report parse_dsn(std::string_view raw_message);

// The record as a reply for the classifier: its own code, or one derived
// from the status class or the action (failed: 550, delayed: 450), so that a
// report without any code is still read as permanent or temporary.
smtp_reply dsn_reply(const dsn_record& d);

}  // namespace ricochet::bounce
