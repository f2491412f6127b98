// smtp_reply — see smtp_reply.hpp.
#include "bounce/smtp_reply.hpp"

namespace ricochet::bounce {

std::string_view to_string(stage s) {
    switch (s) {
        case stage::dns: return "dns";
        case stage::connect: return "connect";
        case stage::greeting: return "greeting";
        case stage::ehlo: return "ehlo";
        case stage::starttls: return "starttls";
        case stage::tls: return "tls";
        case stage::mail: return "mail";
        case stage::rcpt: return "rcpt";
        case stage::data: return "data";
        case stage::end_of_data: return "end_of_data";
        case stage::quit: return "quit";
    }
    return "?";
}

std::string smtp_reply::text() const {
    std::string s = code ? std::to_string(code) : std::string();
    if (!enhanced.empty()) s += (s.empty() ? "" : " ") + enhanced;
    for (auto& l : lines)
        if (!l.empty()) s += (s.empty() ? "" : " ") + l;
    return s;
}

std::optional<std::string> enhanced_code_prefix(std::string_view t, int reply_code, std::size_t& length) {
    // class "." subject "." detail, subject and detail 1-3 digits (RFC 3463 2)
    if (t.size() < 5 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.') return std::nullopt;
    if (reply_code && t[0] - '0' != reply_code / 100) return std::nullopt;
    std::size_t i = 2;
    auto digits = [&](std::size_t max) {
        std::size_t n = 0;
        while (i < t.size() && t[i] >= '0' && t[i] <= '9' && n < max + 1) { ++i; ++n; }
        return n >= 1 && n <= max;
    };
    if (!digits(3) || i >= t.size() || t[i] != '.') return std::nullopt;
    ++i;
    if (!digits(3)) return std::nullopt;
    if (i < t.size() && t[i] != ' ') return std::nullopt;
    length = i < t.size() ? i + 1 : i;
    return std::string(t.substr(0, i));
}

namespace {
// A receiver's text goes into logs, events and DSNs: control characters
// (terminal escapes, NULs) become '?'; everything else, UTF-8 included, stays.
std::string printable(std::string_view s) {
    std::string o(s);
    for (auto& c : o)
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) c = '?';
    return o;
}
}  // namespace

bool reply_parser::feed(std::string_view line) {
    bool ok = line.size() >= 3 && line[0] >= '2' && line[0] <= '5' && line[1] >= '0' && line[1] <= '9' &&
              line[2] >= '0' && line[2] <= '9' && (line.size() == 3 || line[3] == ' ' || line[3] == '-');
    if (!ok) {
        // Not a reply line: keep the text so the operator sees what came.
        malformed_ = true;
        lines_.emplace_back(printable(line.substr(0, 512)));
        return true;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (code_ && code != code_) malformed_ = true;  // RFC 5321 4.2.1: one code per reply
    if (!code_) code_ = code;
    lines_.emplace_back(printable(line.size() > 4 ? line.substr(4) : std::string_view{}));
    return line.size() == 3 || line[3] == ' ';
}

smtp_reply reply_parser::take(stage at) {
    smtp_reply r;
    r.code = malformed_ && code_ == 0 ? 0 : code_;
    r.at = at;
    for (auto& l : lines_) {
        std::size_t len = 0;
        if (auto e = enhanced_code_prefix(l, r.code, len)) {
            if (r.enhanced.empty()) r.enhanced = *e;
            r.lines.push_back(l.substr(len));
        } else {
            r.lines.push_back(l);
        }
    }
    code_ = 0;
    lines_.clear();
    malformed_ = false;
    return r;
}

}  // namespace ricochet::bounce
