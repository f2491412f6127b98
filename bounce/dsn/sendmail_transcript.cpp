// sendmail_transcript — see sendmail_transcript.hpp.
#include "bounce/dsn/sendmail_transcript.hpp"

#include <algorithm>
#include <cctype>

#include "bounce/dsn/codes.hpp"

namespace ricochet::bounce::dsn {
namespace {

// "<<< 550 ..." / "<<< 550-...": the code; 0 for anything else.
int reply_code(std::string_view l) {
    if (l.size() < 8 || l.rfind("<<< ", 0) != 0) return 0;
    for (std::size_t i = 4; i < 7; ++i)
        if (!std::isdigit(static_cast<unsigned char>(l[i]))) return 0;
    if (l[7] != ' ' && l[7] != '-') return 0;
    return (l[4] - '0') * 100 + (l[5] - '0') * 10 + (l[6] - '0');
}

std::string_view without_enhanced(std::string_view t) {
    // "5.1.1 text" -> "text"
    std::size_t i = 0, dots = 0;
    while (i < t.size() && i < 12 && (std::isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.')) dots += t[i++] == '.';
    if (dots == 2 && i < t.size() && t[i] == ' ' && i >= 5) return t.substr(i + 1);
    return t;
}

// "550 " or "550 5.1.1 " at the start of Sendmail's own line.
std::string_view reply_code_prefix(std::string_view l) {
    if (l.size() < 4 || !std::isdigit(static_cast<unsigned char>(l[0])) || !std::isdigit(static_cast<unsigned char>(l[1])) ||
        !std::isdigit(static_cast<unsigned char>(l[2])) || l[3] != ' ')
        return {};
    std::size_t n = 4;
    auto rest = l.substr(4);
    if (without_enhanced(rest).size() != rest.size()) n = l.size() - without_enhanced(rest).size();
    while (n > 0 && l[n - 1] == ' ') --n;
    return l.substr(0, n);
}

// "[NNN [D.D.D ]]<a@b>... text": the address (lower-case); empty when the
// line is not about an address.
std::string_view address_of(std::string_view l) {
    auto dots = l.find("... ");
    if (dots == std::string_view::npos) return {};
    auto a = l.substr(0, dots);
    auto p = reply_code_prefix(l);
    if (!p.empty()) a.remove_prefix(std::min(a.size(), p.size() + 1));
    if (!a.empty() && a.front() == '<') a.remove_prefix(1);
    if (!a.empty() && a.back() == '>') a.remove_suffix(1);
    if (a.find('@') == std::string_view::npos || a.find(' ') != std::string_view::npos) return {};
    return a;
}

}  // namespace

bool sendmail_command_stage(std::string_view c, stage& at) {
    if (c.rfind("data", 0) == 0 || c.rfind(".", 0) == 0) return at = stage::end_of_data, true;
    if (c.rfind("rcpt", 0) == 0) return at = stage::rcpt, true;
    if (c.rfind("mail", 0) == 0) return at = stage::mail, true;
    if (c.rfind("ehlo", 0) == 0 || c.rfind("helo", 0) == 0) return at = stage::ehlo, true;
    return false;
}

bool sendmail_transcript_stage(std::string_view t, stage& at) {
    auto err = std::min(t.find("<<< 5"), t.find("<<< 4"));
    if (err == std::string_view::npos) return false;
    auto cmd = t.rfind(">>> ", err);
    return cmd != std::string_view::npos && sendmail_command_stage(t.substr(cmd + 4, 10), at);
}

sendmail_transcript::sendmail_transcript(std::string_view text, std::string_view lt) : text_(text), lt_(lt) {
    if (lt.find("<<< ") == std::string_view::npos && lt.find(">>> ") == std::string_view::npos &&
        lt.find("... ") == std::string_view::npos)
        return;
    for (std::size_t b = 0; b < lt.size();) {
        auto e = lt.find('\n', b);
        if (e == std::string_view::npos) e = lt.size();
        auto l = lt.substr(b, e - b);
        while (!l.empty() && (l.front() == ' ' || l.front() == '\t' || l.front() == '.')) l.remove_prefix(1);
        while (!l.empty() && (l.back() == ' ' || l.back() == '\r')) l.remove_suffix(1);
        lines_.push_back(l);
        addresses_.push_back(address_of(l));
        b = e + 1;
    }
}

std::optional<transcript_reply> sendmail_transcript::reply_for(std::string_view lr) const {
    std::size_t own = lines_.size();
    for (std::size_t i = 0; i < lines_.size() && own == lines_.size(); ++i)
        if (addresses_[i] == lr) own = i;
    if (own == lines_.size()) return std::nullopt;
    transcript_reply out;
    std::size_t first = lines_.size(), last = lines_.size();  // the reply's lines
    for (std::size_t i = own; i-- > 0;) {
        auto l = lines_[i];
        if (l.rfind("while talking to", 0) == 0 || !addresses_[i].empty()) break;
        int code = reply_code(l);
        if (last == lines_.size()) {
            if (l.rfind(">>> ", 0) == 0) break;  // the command got no reply
            if (code == 0) continue;              // a host line ("x.example (smtp)... Deferred")
            if (code < 400) break;                // the last reply was not a refusal
            first = last = i;
            continue;
        }
        if (code == reply_code(lines_[last]) && l.size() > 7 && l[7] == '-' && first == i + 1) {
            first = i;  // an earlier line of the same multi-line reply
            continue;
        }
        if (l.rfind(">>> ", 0) == 0) out.stage_known = sendmail_command_stage(l.substr(4), out.at);
        break;
    }
    if (last != lines_.size()) {
        // "<<< 550-5.1.1 a" "<<< 550 5.1.1 b" -> "550 5.1.1 a b"
        out.diagnostic = original(lines_[first].substr(4, 3));
        for (std::size_t i = first; i <= last; ++i) {
            auto t = lines_[i].substr(std::min<std::size_t>(8, lines_[i].size()));
            if (i > first) t = without_enhanced(t);
            out.diagnostic += " " + original(t);
        }
    } else {
        // No reply: Sendmail's own words, with its code when they carry none.
        auto l = lines_[own];
        auto after = l.substr(l.find("... ") + 4);
        int c = 0;
        std::string st;
        find_codes(after, c, st);
        out.diagnostic = c || reply_code_prefix(l).empty() ? original(after)
                                                           : original(reply_code_prefix(l)) + " " + original(after);
    }
    return out;
}

std::string sendmail_transcript::original(std::string_view l) const {
    return std::string(text_.substr(static_cast<std::size_t>(l.data() - lt_.data()), l.size()));
}

}  // namespace ricochet::bounce::dsn
