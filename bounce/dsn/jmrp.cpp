// jmrp — reads the complaints of Microsoft's Junk Mail Reporting Program
// (Outlook.com, Hotmail, Live, MSN; "JMRP" in Microsoft's Smart Network
// Data Services and sender-support documentation): when a recipient marks
// a message as junk, the sender who enrolled gets a mail whose Subject says
// "complaint about message from IP", with the message itself attached as
// message/rfc822. Unlike RFC 5965 ARF it carries no feedback-report fields:
// the complainer is the attached message's recipient, and the type is abuse.
#include "bounce/dsn/readers.hpp"
#include "bounce/dsn/text.hpp"

namespace ricochet::bounce::dsn {

bool read_jmrp(const message& m, dsn_report& rep) {
    if (m.original_to.empty() || lower(m.subject).find("complaint about message") == std::string::npos) return false;
    read_feedback_fields({{"feedback-type", "abuse"}}, m.original_to, rep);
    return true;
}

}  // namespace ricochet::bounce::dsn
