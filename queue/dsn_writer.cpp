// dsn_writer — see dsn_writer.hpp.
#include "queue/dsn_writer.hpp"

#include "queue/clock.hpp"

#include <ctime>

namespace ricochet::queue {
namespace {
std::string one_line(std::string s) {
    for (auto& c : s)
        if (c == '\r' || c == '\n' || c == '\t') c = ' ';
    if (s.size() > 2000) s = s.substr(0, 2000) + " ...";  // a receiver's reply can run to pages
    return s;
}

// "Name: value" folded at spaces into lines of at most 78 octets (RFC 5322
// 2.2.3, which RFC 3464 fields follow); a word longer than a line is cut
// at 900 so no line passes RFC 5321's 998.
std::string folded(const std::string& name, const std::string& value) {
    std::string out = name + ":";
    std::size_t line = out.size();
    std::size_t i = 0;
    while (i < value.size()) {
        while (i < value.size() && value[i] == ' ') ++i;
        if (i >= value.size()) break;
        std::size_t e = value.find(' ', i);
        if (e == std::string::npos) e = value.size();
        std::string word = value.substr(i, std::min<std::size_t>(e - i, 900));
        i += word.size();
        if (line + 1 + word.size() > 78 && line > name.size() + 1) {
            out += "\r\n";
            line = 0;
        }
        out += " " + word;
        line += 1 + word.size();
    }
    return out + "\r\n";
}
}  // namespace

envelope dsn_envelope(std::string id, const envelope& original, const std::string& reporting_host) {
    envelope dsn;
    dsn.id = std::move(id);
    dsn.sender = "";
    dsn.recipients = {original.sender};
    dsn.client = "127.0.0.1";
    dsn.helo = reporting_host;
    return dsn;
}

std::string write_dsn(const std::string& host, const envelope& orig, const std::string& content,
                      const std::vector<failed_recipient>& failed, std::int64_t now_ms) {
    std::string boundary = "=_ricochet_" + orig.id + "_" + std::to_string(now_ms);
    std::string m;
    m += "From: Mail Delivery System <MAILER-DAEMON@" + host + ">\r\n";
    m += "To: <" + orig.sender + ">\r\n";
    m += "Subject: Undelivered Mail Returned to Sender\r\n";
    m += "Date: " + rfc5322_date(now_ms) + "\r\n";
    m += "Message-ID: <" + orig.id + "." + std::to_string(now_ms) + ".dsn@" + host + ">\r\n";
    m += "Auto-Submitted: auto-replied\r\n";  // RFC 3834
    m += "MIME-Version: 1.0\r\n";
    m += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"" + boundary + "\"\r\n\r\n";
    m += "This is a MIME-encapsulated message.\r\n\r\n";
    m += "--" + boundary + "\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n";
    m += "This is the mail system at host " + host + ".\r\n\r\n";
    m += "Your message could not be delivered to one or more recipients.\r\n\r\n";
    for (auto& f : failed) {
        m += folded("<" + f.address + ">", one_line(f.diagnostic.empty() ? f.status : f.diagnostic));
    }
    m += "\r\n--" + boundary + "\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n";
    m += "Reporting-MTA: dns; " + host + "\r\n";
    m += "X-Ricochet-Queue-ID: " + orig.id + "\r\n";
    if (orig.arrival_ms > 0) m += "Arrival-Date: " + rfc5322_date(orig.arrival_ms) + "\r\n";
    for (auto& f : failed) {
        m += "\r\nFinal-Recipient: rfc822; " + f.address + "\r\n";
        m += "Action: " + f.action + "\r\n";
        m += "Status: " + (f.status.empty() ? std::string("5.0.0") : f.status) + "\r\n";
        if (!f.remote_mta.empty()) m += folded("Remote-MTA", "dns; " + one_line(f.remote_mta));
        if (!f.diagnostic.empty()) m += folded("Diagnostic-Code", "smtp; " + one_line(f.diagnostic));
        m += "Last-Attempt-Date: " + rfc5322_date(now_ms) + "\r\n";
    }
    if (!content.empty()) {  // not known for a bounce that came back after the message left the spool
        m += "\r\n--" + boundary +
             "\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n";
        auto end = content.find("\r\n\r\n");
        std::size_t n = end == std::string::npos ? content.size() : end + 2;
        if (n > 65536) {  // whole lines, at most 64 KiB of them
            auto last = content.rfind("\r\n", 65536);
            n = last == std::string::npos ? 65536 : last + 2;
        }
        m += content.substr(0, n);
    }
    m += "\r\n--" + boundary + "--\r\n";
    return m;
}

}  // namespace ricochet::queue
