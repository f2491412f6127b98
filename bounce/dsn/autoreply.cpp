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
#include "bounce/dsn/mail_system.hpp"
#include "bounce/dsn/readers.hpp"
#include "bounce/dsn/text.hpp"

namespace ricochet::bounce::dsn {
namespace {

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

}  // namespace

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

}  // namespace ricochet::bounce::dsn
