// rfc3464 — reads Delivery Status Notifications: RFC 3464 (RFC 3462 /
// RFC 6522 multipart/report; report-type=delivery-status) with a
// message/delivery-status part, and RFC 6533's message/global-delivery-status
// for internationalised addresses: a per-message group (Reporting-MTA,
// Arrival-Date) and one group per recipient (Final-Recipient,
// Original-Recipient, Action, Status, Remote-MTA, Diagnostic-Code,
// Last-Attempt-Date; RFC 3464 2.3). Sent by most MTAs and providers:
// Postfix, Sendmail 8, Exim with DSN, Exchange and Office 365, Gmail, Yahoo,
// Amazon SES and WorkMail, OpenSMTPD, Domino, ... Also reads those fields
// when an MTA puts them in the notice's text instead (mime.cpp collects
// them).
//
// The receiving server's own code, quoted in the Diagnostic-Code, wins over
// the reporting MTA's Status; a recipient without a diagnostic gets its own
// part of the notice text.
#include "bounce/dsn/codes.hpp"
#include "bounce/dsn/limits.hpp"
#include "bounce/dsn/readers.hpp"
#include "bounce/dsn/reply_stage.hpp"
#include "bounce/dsn/text.hpp"

namespace ricochet::bounce::dsn {
namespace {

// The type of a report record from its Action (RFC 3464 2.3.3), or from
// the status class when a broken report has no Action: a 2.x.x is never a
// failure.
std::string record_type(std::string_view action, std::string_view status) {
    std::string a = lower(action);
    if (a.find("delayed") != std::string::npos) return "delayed";
    if (a.find("delivered") != std::string::npos || a.find("relayed") != std::string::npos ||
        a.find("expanded") != std::string::npos)
        return "delivered";
    // Postfix's address verification (sendmail -bv) says "deliverable".
    if (a == "deliverable") return "delivered";
    // No Action, or one we do not know, with a 2.x.x status: a success.
    if (a != "failed" && a != "undeliverable" && !status.empty() && status[0] == '2') return "delivered";
    return "bounce";
}

}  // namespace

bool read_rfc3464(const message& m, dsn_report& rep, report_fallback& fallback) {
    if (m.dsn_groups.empty()) return false;
    std::string reporting;
    std::string ltext = lower(m.text);
    stage text_stage = stage::rcpt;
    bool text_stage_known = find_stage(ltext, text_stage);
    // Every reported address: one recipient's part of the notice text
    // ends where the next one's begins.
    std::vector<std::string> reported;
    for (auto& g : m.dsn_groups) {
        auto r = lower(strip_type(field(g, "final-recipient")));
        if (!r.empty()) reported.push_back(std::move(r));
    }
    for (auto& g : m.dsn_groups) {
        if (rep.records.size() >= max_records) break;
        if (!field(g, "reporting-mta").empty()) reporting = strip_type(field(g, "reporting-mta"));
        std::string final_rcpt = field(g, "final-recipient");
        std::string orig_rcpt = field(g, "original-recipient");
        if (final_rcpt.empty() && orig_rcpt.empty()) continue;  // the per-message group
        dsn_record d;
        d.recipient = strip_type(final_rcpt.empty() ? orig_rcpt : final_rcpt);
        d.original_recipient = strip_type(orig_rcpt);
        if (!valid_address(d.recipient) && valid_address(d.original_recipient)) d.recipient = d.original_recipient;
        d.action = lower(field(g, "action"));
        d.status = trim(field(g, "status"));
        if (auto sp = d.status.find(' '); sp != std::string::npos) d.status.resize(sp);
        d.type = record_type(d.action, d.status);
        d.diagnostic = iso2022jp_to_utf8(strip_type(field(g, "diagnostic-code")));
        d.remote_mta = strip_type(field(g, "remote-mta"));
        d.reporting_mta = reporting;
        d.last_attempt = field(g, "last-attempt-date");
        // PowerMTA's classification of the remote reply (PowerMTA User's
        // Guide, "bounce categories"): bad-mailbox is its verdict that the
        // mailbox does not exist.
        d.address_confirmed = lower(trim(field(g, "x-powermta-bouncecategory"))) == "bad-mailbox";
        std::string dstatus;
        find_codes(d.diagnostic, d.reply_code, dstatus);
        d.at = text_stage;
        d.stage_known = find_stage(lower(d.diagnostic), d.at) || text_stage_known;  // the report's own words first
        // The receiving server's own code, quoted in the diagnostic, says
        // more than the reporting MTA's Status, which is often generic
        // (X.0.0), the expiry (X.4.7), or derived from the reply code
        // alone (Sendmail: any 550 at RCPT is 5.1.1).
        if (auto own = last_status(d.diagnostic, d.status.empty() ? 0 : d.status[0]); !own.empty())
            d.status = own;
        // No diagnostic at all: the notice text about this recipient.
        if (d.diagnostic.empty() || (generic_status(d.status) && dstatus.empty())) {
            std::string seg = segment_for(m.text, ltext, d.recipient, reported);
            int c2 = 0;
            std::string s2;
            find_codes(seg, c2, s2);
            if (d.diagnostic.empty()) d.diagnostic = trim(seg.substr(0, 400));
            if (!d.reply_code) d.reply_code = c2;
            if (generic_status(d.status) && !s2.empty() && !generic_status(s2) &&
                (d.status.empty() || s2[0] == d.status[0]))
                d.status = s2;
        }
        if (!valid_address(d.recipient)) {
            // "Final-Recipient: rfc822; <unknown>": keep what it says for
            // the free-text pass, which finds the address in the notice.
            if (rep.records.empty()) {
                fallback.status = d.status;
                fallback.code = d.reply_code;
                fallback.diagnostic = d.diagnostic;
            }
            continue;
        }
        rep.records.push_back(std::move(d));
    }
    rep.format = "rfc3464";
    return true;
}

}  // namespace ricochet::bounce::dsn
