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
#include <algorithm>

#include "bounce/dsn/codes.hpp"
#include "bounce/dsn/limits.hpp"
#include "bounce/dsn/readers.hpp"
#include "bounce/dsn/reply_stage.hpp"
#include "bounce/dsn/sendmail_transcript.hpp"
#include "bounce/dsn/text.hpp"

namespace ricochet::bounce::dsn {
namespace {

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
    // The same subjects in the notices' other languages (lower case as
    // lower() leaves them: ASCII folded, the rest as sent): German
    // "verzögert", French "retardé"/"différé", Spanish "retrasado",
    // Portuguese "atrasad", Italian "ritardat", Russian "задерж",
    // Japanese "遅延", Chinese "延迟"/"延遲".
    for (auto m : {"verzögert", "retardé", "différé", "retrasad", "atrasad", "ritardat", "задерж", "遅延", "延迟", "延遲"})
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

}  // namespace

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
