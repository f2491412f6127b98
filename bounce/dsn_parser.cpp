// dsn_parser — see dsn_parser.hpp. The message is read once
// (bounce/dsn/mime.hpp); the readers below, one per format, are tried in
// order by parse_dsn.
#include "bounce/dsn_parser.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <sstream>

#include "bounce/dsn/codes.hpp"
#include "bounce/dsn/limits.hpp"
#include "bounce/dsn/mail_system.hpp"
#include "bounce/dsn/mime.hpp"
#include "bounce/dsn/reply_stage.hpp"
#include "bounce/dsn/sendmail_transcript.hpp"
#include "bounce/dsn/text.hpp"

namespace ricochet::bounce::dsn {

// What a report group without a usable recipient said ("Final-Recipient:
// rfc822; <unknown>"): the free-text reader finds the address in the
// notice and keeps these.
struct report_fallback {
    std::string status, diagnostic;
    int code = 0;
};

void read_feedback_fields(const fields& g, const std::vector<std::string>& original_to, dsn_report& rep);

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

// jmrp — reads the complaints of Microsoft's Junk Mail Reporting Program
// (Outlook.com, Hotmail, Live, MSN; "JMRP" in Microsoft's Smart Network
// Data Services and sender-support documentation): when a recipient marks
// a message as junk, the sender who enrolled gets a mail whose Subject says
// "complaint about message from IP", with the message itself attached as
// message/rfc822. Unlike RFC 5965 ARF it carries no feedback-report fields:
// the complainer is the attached message's recipient, and the type is abuse.
bool read_jmrp(const message& m, dsn_report& rep) {
    if (m.original_to.empty() || lower(m.subject).find("complaint about message") == std::string::npos) return false;
    read_feedback_fields({{"feedback-type", "abuse"}}, m.original_to, rep);
    return true;
}

// unsubscribe — reads an unsubscribe request by mail: a person's message
// with the Subject "unsubscribe" to our return path, as sent by the mailto:
// URL of a List-Unsubscribe header (RFC 2369 3.2; RFC 8058 for the one-click
// HTTPS form, which does not come by mail). The sender asks for themselves:
// an opt-out complaint for the From address. A mail system's notice with
// that Subject is not a person asking.
bool read_unsubscribe(const message& m, dsn_report& rep) {
    if (from_daemon(m) || trim(lower(m.subject)) != "unsubscribe") return false;
    auto from = find_addresses(m.from);
    read_feedback_fields({{"feedback-type", "opt-out"}, {"original-rcpt-to", from.empty() ? "" : from[0]}}, m.original_to, rep);
    return true;
}

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
        d.diagnostic = strip_type(field(g, "diagnostic-code"));
        d.remote_mta = strip_type(field(g, "remote-mta"));
        d.reporting_mta = reporting;
        d.last_attempt = field(g, "last-attempt-date");
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

// autoreply — reads automatic replies from a person's mailbox: vacation and
// out-of-office notices, "I have a new address" and ticket acknowledgements.
// RFC 3834 (Recommendations for Automatic Responses to Electronic Mail)
// defines Auto-Submitted: auto-replied (5.1); older programs say
// Precedence: auto_reply, X-Autoreply or X-Autorespond, or only their
// Subject (Exchange's "Automatic reply:", "Out of Office", German
// "Abwesenheit"). Sent by Exchange/Outlook, Gmail, Zimbra, vacation(1),
// Sieve's vacation extension (RFC 5230). Not a failure: the address works.
// Tried only when no report was found, and never for a mail system's notice
// (Exim marks its bounces auto-replied too).

bool looks_like_autoreply(const message& m) {
    std::string subject = lower(m.subject);
    if (!m.x_autoreply.empty() || !m.x_autorespond.empty()) return true;
    if (lower(m.precedence).find("auto_reply") != std::string::npos) return true;
    // RFC 3834 5.1: auto-replied marks a reply by a program (vacation);
    // DSNs say auto-generated, or (Exim) auto-replied from a mail system.
    if (lower(m.auto_submitted).rfind("auto-replied", 0) == 0 && !from_daemon(m)) return true;
    for (auto marker : {"out of office", "out of the office", "automatic reply", "autoreply", "auto-reply", "auto reply",
                        "vacation", "away from", "abwesenheit", "absence"})
        if (subject.find(marker) != std::string::npos) return true;
    return false;
}


bool read_autoreply(const message& m, dsn_report& rep) {
    if (from_daemon(m) || !looks_like_autoreply(m)) return false;
    dsn_record d;
    d.type = "autoreply";
    auto addrs = find_addresses(m.from);
    d.recipient = addrs.empty() ? "" : addrs[0];
    d.diagnostic = m.subject;
    rep.records.push_back(std::move(d));
    rep.format = "autoreply";
    return true;
}

// ses_json — reads Amazon SES notifications delivered by mail: an Amazon SNS
// topic with an e-mail subscription sends each SES notification as a
// text/plain message whose body is the JSON notification, followed by SNS's
// footer. The JSON is documented in the Amazon SES Developer Guide,
// "Amazon SNS notification contents for Amazon SES" (notificationType
// Bounce, Complaint, Delivery) and "Event publishing" (eventType, also
// DeliveryDelay): the recipients with their own action, status and
// diagnosticCode, and the bounce type and sub-type. For senders who relay
// through SES and point its notifications at our bounce address.
bool read_ses_json(const std::string& text, dsn_report& rep) {
    auto open = text.find_first_not_of(" \t\r\n");
    if (open == std::string::npos || text[open] != '{') return false;
    if (text.find("\"notificationType\"") == std::string::npos && text.find("\"eventType\"") == std::string::npos)
        return false;
    nlohmann::json j;
    try {
        std::istringstream in(text.substr(open));
        in >> j;  // stops after the object: the SNS footer follows it
    } catch (const nlohmann::json::exception&) {
        return false;
    }
    auto str = [](const nlohmann::json& o, const char* k) {
        auto it = o.find(k);
        return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    std::string type = str(j, "notificationType");
    if (type.empty()) type = str(j, "eventType");
    // What a bounce sub-type says when SES gives no diagnostic of its own,
    // in words the classifier reads.
    static const std::pair<std::string_view, std::string_view> subtypes[] = {
        {"NoEmail", "no such user"},
        {"Suppressed", "address on the suppression list"},
        {"OnAccountSuppressionList", "address on the suppression list"},
        {"MailboxFull", "mailbox full"},
        {"MessageTooLarge", "message too large"},
        {"ContentRejected", "content rejected"},
        {"AttachmentRejected", "attachment not allowed"}};
    auto add = [&](const nlohmann::json& who, const std::string& record_type, const nlohmann::json& section) {
        if (rep.records.size() >= max_records) return;
        dsn_record d;
        d.type = record_type;
        d.recipient = who.is_string() ? who.get<std::string>() : who.is_object() ? str(who, "emailAddress") : "";
        if (!valid_address(d.recipient)) return;
        if (who.is_object()) {
            d.action = lower(str(who, "action"));
            d.status = trim(str(who, "status"));
            d.diagnostic = strip_type(str(who, "diagnosticCode"));
        }
        d.reporting_mta = strip_type(str(section, "reportingMTA"));
        d.remote_mta = str(section, "remoteMtaIp");
        if (d.diagnostic.empty()) d.diagnostic = str(section, "smtpResponse");
        if (d.diagnostic.empty())
            for (auto& [sub, words] : subtypes)
                if (str(section, "bounceSubType") == sub) d.diagnostic = std::string(words);
        std::string dstatus;
        find_codes(d.diagnostic, d.reply_code, dstatus);
        if (d.status.empty()) d.status = dstatus;
        if (d.status.empty() && !d.reply_code && record_type == "bounce")  // Transient, Undetermined: not final for the address
            d.status = str(section, "bounceType") == "Permanent" ? "5.0.0" : "4.0.0";
        d.stage_known = find_stage(lower(d.diagnostic), d.at);
        if (record_type == "complaint") {
            d.feedback_type = lower(str(section, "complaintFeedbackType"));
            if (d.feedback_type.empty()) d.feedback_type = "abuse";  // SES: a recipient marked it as spam
            if (d.feedback_type != "abuse" && d.feedback_type != "fraud" && d.feedback_type != "opt-out")
                d.type = "feedback";
        }
        rep.records.push_back(std::move(d));
    };
    auto each = [&](const char* section_key, const char* list_key, const std::string& record_type) {
        auto sec = j.find(section_key);
        if (sec == j.end() || !sec->is_object()) return;
        auto list = sec->find(list_key);
        if (list == sec->end() || !list->is_array()) return;
        for (auto& who : *list) add(who, record_type, *sec);
    };
    if (type == "Bounce") each("bounce", "bouncedRecipients", "bounce");
    else if (type == "Complaint") each("complaint", "complainedRecipients", "complaint");
    else if (type == "Delivery") each("delivery", "recipients", "delivered");
    else if (type == "DeliveryDelay") each("deliveryDelay", "delayedRecipients", "delayed");
    else return false;
    if (rep.records.empty()) return false;
    rep.format = type == "Complaint" ? "arf" : "ses";
    return true;
}

// free_text — reads the non-delivery notices of mail systems that send no
// DSN, or a DSN without a usable recipient: plain-text notices such as
// Exim's "Mail delivery failed: returning message to sender" (with its
// X-Failed-Recipients header; Exim specification, "Bounce messages" and
// "Customizing bounce and warning messages"), Postfix's bounce(5) text part,
// old Sendmail's "Returned mail" (its transcript: sendmail_transcript.hpp),
// qmail's QSBMF notices (qmail.hpp), Exchange, Domino, old Yahoo, OpenSMTPD,
// and gateways that imitate them. No RFC governs them: they are read by
// their visible markers.
//
// The failed recipients are X-Failed-Recipients, else the addresses of the
// notice text that are neither ours (the sender, postmaster, the reporting
// system) nor in quoted headers; the reply is the first SMTP code in the
// text, and with several recipients each one's own part of the notice.
// The last reader tried: it reads what the others did not recognise.

// A free-text warning that delivery is still being tried (Exim's "has not
// yet been delivered", Sendmail's "Warning: could not send message for
// past 4 hours", Exchange's "Delivery has been delayed"): not a failure.
bool says_delayed(std::string_view lt, std::string_view subject) {
    for (auto m : {"this is a warning message only", "warning: message still undelivered", "has not yet been delivered",
                   "delivery has been delayed", "delivery to the following recipients has been delayed",
                   "will continue trying", "will keep trying", "still trying to deliver", "you do not need to resend",
                   "will be retried", "delivery attempts will continue", "not yet been able to deliver",
                   "you do not need to re-send", "only a temporary failure report"})
        if (lt.find(m) != std::string_view::npos) return true;
    for (auto m : {"delivery delayed", "delayed mail", "delivery status notification (delay)", "warning: could not send",
                   "message delayed"})
        if (subject.find(m) != std::string_view::npos) return true;
    return false;
}

// True when every mention of the address (lower-case) is on a line that
// names a sender ("From:", "MAIL FROM:", "Sender:", "Reply-To:",
// "Return-Path:"): the original's author, quoted back, is not a recipient.
bool only_as_sender(std::string_view lt, std::string_view la) {
    bool seen = false;
    for (auto p = lt.find(la); p != std::string_view::npos; p = lt.find(la, p + 1)) {
        seen = true;
        auto bol = lt.rfind('\n', p);
        bol = bol == std::string_view::npos ? 0 : bol + 1;
        auto line = lt.substr(bol, p - bol);
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t' || line.front() == '>')) line.remove_prefix(1);
        bool sender = false;
        for (std::string_view h : {"from:", "mail from:", "sender:", "reply-to:", "return-path:"})
            if (line.rfind(h, 0) == 0) sender = true;
        if (!sender) return false;
    }
    return seen;
}


bool read_free_text(const message& m, const report_fallback& fallback, dsn_report& rep) {
    std::vector<std::string> rcpts;
    for (auto& a : find_addresses(m.x_failed_recipients)) rcpts.push_back(a);
    std::string text = m.text;
    // Cut the returned message off: everything after the usual separators.
    std::string lt = lower(text);
    for (auto marker : {"------ this is a copy of the message", "----- original message -----", "--- below this line is a copy",
                        "------ original message follows", "----- unsent message below -----", "original message follows",
                        "\nreceived: from", "\nreturn-path:", "--- the header of the original message is following"}) {
        auto p = lt.find(marker);
        if (p != std::string::npos && p > 40) {
            text.resize(p);
            lt.resize(p);
        }
    }
    std::string from = lower(m.from);
    std::string to = lower(m.to);
    auto addresses = find_addresses(text);
    for (bool skip_to : {true, false}) {  // a message sent to oneself bounces to the failed address
        if (!rcpts.empty()) break;
        for (auto& a : addresses) {
            std::string la = lower(a);
            if (la.rfind("mailer-daemon@", 0) == 0 || la.rfind("postmaster@", 0) == 0 || la.rfind("mail-daemon@", 0) == 0)
                continue;
            if (skip_to && !to.empty() && to.find(la) != std::string::npos) continue;  // the sender we bounce to
            if (!from.empty() && from.find(la) != std::string::npos) continue;          // the reporting system
            if (only_as_sender(lt, la)) continue;  // "From: a@b" in the details of the original
            if (std::find(rcpts.begin(), rcpts.end(), a) == rcpts.end()) rcpts.push_back(a);
            if (rcpts.size() >= max_records) break;
        }
    }
    if (rcpts.empty()) rcpts = m.original_to;
    if (rcpts.empty()) return false;
    if (rcpts.size() > max_records) rcpts.resize(max_records);
    int code = fallback.code;
    std::string status = fallback.status;
    find_codes(text, code, status);
    // The diagnostic: the text from the first reply code (or the whole notice, shortened).
    std::string diag;
    if (code)
        if (auto p = text.find(std::to_string(code)); p != std::string::npos) diag = text.substr(p, 400);
    if (diag.empty() && !fallback.diagnostic.empty()) diag = fallback.diagnostic;
    if (diag.empty()) diag = text.substr(0, 400);
    diag = one_line(std::move(diag));
    stage at = stage::rcpt;
    bool stage_known = find_stage(lt, at);
    bool delayed = says_delayed(lt, lower(m.subject));
    std::vector<std::string> lrcpts;
    for (auto& r : rcpts) lrcpts.push_back(lower(r));
    sendmail_transcript transcript(text, lt);
    for (std::size_t i = 0; i < rcpts.size(); ++i) {
        const std::string& r = rcpts[i];
        std::string seg = segment_for(text, lt, r, lrcpts);  // from its address to the next one's
        dsn_record d;
        d.type = delayed ? "delayed" : "bounce";
        d.recipient = r;
        d.action = delayed ? "delayed" : "failed";
        d.status = status;
        d.reply_code = code;
        d.diagnostic = trim(diag);
        d.at = at;
        d.stage_known = stage_known;
        if (rcpts.size() > 1) {
            // Several recipients: the step is the one named in its own part.
            d.at = stage::rcpt;
            d.stage_known = find_stage(lower(seg), d.at);
        }
        if (!code && fallback.diagnostic.empty() && rcpts.size() == 1) {
            // No reply code anywhere: the words around the address say why
            // ("Unknown user: a@b", "a@b: mailbox full"), not the greeting.
            if (auto p = lt.find(lrcpts[0]); p != std::string::npos) {
                std::size_t from = p > 200 ? p - 200 : 0;
                d.diagnostic = trim(one_line(text.substr(from, p - from)) + seg);
            }
        }
        if (auto t = transcript.reply_for(lrcpts[i])) {
            int c2 = 0;
            std::string s2;
            find_codes(t->diagnostic, c2, s2);
            // One recipient: the notice's codes are its own; with several,
            // only its own lines speak for it.
            bool alone = rcpts.size() == 1;
            d.reply_code = c2 || !alone ? c2 : code;
            d.status = !s2.empty() || !alone ? s2 : status;
            d.diagnostic = trim(t->diagnostic.substr(0, 400));
            if (t->stage_known || !alone) {
                d.at = t->at;
                d.stage_known = t->stage_known;
            }
        } else if (rcpts.size() > 1) {
            // Several recipients: each has its own reply after its address.
            int c2 = 0;
            std::string s2;
            find_codes(seg, c2, s2);
            if (c2 || !s2.empty()) {
                d.reply_code = c2;
                d.status = s2;
                d.diagnostic = trim(seg.substr(0, 400));
            }
        }
        rep.records.push_back(std::move(d));
    }
    rep.format = "text";
    return true;
}

}  // namespace ricochet::bounce::dsn

namespace ricochet::bounce {
dsn_report parse_dsn(std::string_view raw) {
    dsn_report rep;
    rep.format = "none";
    auto m = dsn::read_message(raw);
    if (!m) return rep;
    rep.original_recipients = m->original_to;
    rep.original_message_id = m->original_message_id;
    rep.from_mail_system = dsn::from_mail_system(*m);

    if (dsn::read_arf(*m, rep) || dsn::read_jmrp(*m, rep) || dsn::read_unsubscribe(*m, rep)) return rep;
    dsn::report_fallback fallback;  // what a report group without a usable recipient said
    dsn::read_rfc3464(*m, rep, fallback);
    if (!rep.records.empty()) return rep;
    if (dsn::read_autoreply(*m, rep) || dsn::read_ses_json(m->text, rep)) return rep;
    dsn::read_free_text(*m, fallback, rep);
    return rep;
}

smtp_reply dsn_reply(const dsn_record& d) {
    smtp_reply r;
    r.code = d.reply_code;
    r.enhanced = d.status;
    if (!r.code && !d.status.empty()) r.code = d.status[0] == '5' ? 550 : d.status[0] == '4' ? 450 : 250;
    if (!r.code) r.code = d.type == "delayed" ? 450 : d.type == "delivered" ? 250 : 550;
    if (!r.enhanced.empty() && r.code / 100 != r.enhanced[0] - '0') r.enhanced.clear();
    r.lines.push_back(d.diagnostic);
    r.at = d.at;
    return r;
}

}  // namespace ricochet::bounce
