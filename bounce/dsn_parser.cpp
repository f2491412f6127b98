// dsn_parser — see dsn_parser.hpp. The only file that includes GMime.
#include "bounce/dsn_parser.hpp"

#include <gmime/gmime.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <sstream>
#include <optional>

namespace ricochet::bounce {
namespace {

// ASCII only, no locale: report fields and reply texts are ASCII keywords.
std::string lower(std::string_view s) {
    std::string o(s);
    for (auto& c : o)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
    return o;
}
std::string trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return std::string(s);
}

// "Name: value" fields in blocks separated by blank lines, with folding
// (RFC 3464 2.1: a delivery-status body is a series of header-like groups).
using fields = std::vector<std::pair<std::string, std::string>>;
std::vector<fields> parse_field_groups(std::string_view text) {
    std::vector<fields> groups(1);
    std::size_t pos = 0;
    while (pos <= text.size()) {
        auto eol = text.find('\n', pos);
        std::string_view line = text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (trim(line).empty()) {
            if (!groups.back().empty()) groups.emplace_back();
        } else if ((line[0] == ' ' || line[0] == '\t') && !groups.back().empty()) {
            groups.back().back().second += " " + trim(line);
        } else if (auto colon = line.find(':'); colon != std::string_view::npos && colon > 0) {
            groups.back().emplace_back(lower(trim(line.substr(0, colon))), trim(line.substr(colon + 1)));
        }
        if (eol == std::string_view::npos) break;
        pos = eol + 1;
    }
    if (groups.back().empty()) groups.pop_back();
    return groups;
}

std::string field(const fields& f, std::string_view name) {
    for (auto& [k, v] : f)
        if (k == name) return v;
    return {};
}

// "rfc822; user@example.com" -> "user@example.com"
std::string strip_type(std::string v) {
    if (auto semi = v.find(';'); semi != std::string::npos && semi < 20) v = trim(std::string_view(v).substr(semi + 1));
    if (v.size() > 1 && v.front() == '<' && v.back() == '>') v = v.substr(1, v.size() - 2);
    return v;
}

bool is_address_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("._%+-=!#$&'*/?^`{|}~").find(c) != std::string_view::npos ||
           static_cast<unsigned char>(c) >= 0x80;
}

// Every address-looking token in text, in order of appearance.
std::vector<std::string> find_addresses(std::string_view text) {
    std::vector<std::string> out;
    for (std::size_t at = text.find('@'); at != std::string_view::npos; at = text.find('@', at + 1)) {
        std::size_t b = at, e = at + 1;
        while (b > 0 && is_address_char(text[b - 1])) --b;
        while (e < text.size() && (std::isalnum(static_cast<unsigned char>(text[e])) || text[e] == '.' || text[e] == '-' ||
                                   static_cast<unsigned char>(text[e]) >= 0x80))
            ++e;
        while (e > at + 1 && text[e - 1] == '.') --e;
        std::string local(text.substr(b, at - b)), domain(text.substr(at + 1, e - at - 1));
        while (!local.empty() && (local.front() == '.' || local.front() == '=')) local.erase(0, 1);
        if (local.empty() || domain.find('.') == std::string::npos) continue;
        out.push_back(local + "@" + domain);
    }
    return out;
}

bool valid_address(std::string_view a) {
    auto at = a.rfind('@');
    return at != std::string_view::npos && at > 0 && a.find('.', at) != std::string_view::npos && a.find(' ') == std::string_view::npos;
}

// The first SMTP reply code and RFC 3463 status in text ("550 5.1.1 ...",
// "550-5.1.1", "#5.1.1", "(5.1.1)").
void find_codes(std::string_view t, int& code, std::string& status) {
    for (std::size_t i = 0; i + 3 <= t.size(); ++i) {
        bool boundary = i == 0 || !std::isalnum(static_cast<unsigned char>(t[i - 1]));
        if (!boundary) continue;
        if (!code && (t[i] == '4' || t[i] == '5') && std::isdigit(static_cast<unsigned char>(t[i + 1])) &&
            std::isdigit(static_cast<unsigned char>(t[i + 2])) && (i + 3 == t.size() || t[i + 3] == ' ' || t[i + 3] == '-')) {
            code = (t[i] - '0') * 100 + (t[i + 1] - '0') * 10 + (t[i + 2] - '0');
        }
        if (status.empty() && (t[i] == '2' || t[i] == '4' || t[i] == '5') && i + 4 < t.size() && t[i + 1] == '.') {
            std::size_t j = i + 2, n1 = 0, n2 = 0;
            while (j < t.size() && std::isdigit(static_cast<unsigned char>(t[j])) && n1 < 4) { ++j; ++n1; }
            if (n1 >= 1 && n1 <= 3 && j < t.size() && t[j] == '.') {
                ++j;
                while (j < t.size() && std::isdigit(static_cast<unsigned char>(t[j])) && n2 < 4) { ++j; ++n2; }
                bool end = j == t.size() || (!std::isdigit(static_cast<unsigned char>(t[j])) && t[j] != '.');
                if (n2 >= 1 && n2 <= 3 && end) status = std::string(t.substr(i, j - i));
            }
        }
        if (code && !status.empty()) return;
    }
}

// The last RFC 3463 code in a diagnostic: where relays quote the reply they
// got ("5.1.0 - Unknown address error 550-'5.7.1 ... Access denied'",
// "554 4.4.7 Message expired ... <421 4.4.2 Connection timed out>"), the
// innermost, last one is the receiving server's own. Only codes of class
// cls ('2', '4', '5'; 0 for any) count. Empty when none.
std::string last_status(std::string_view t, char cls) {
    std::string last;
    for (std::size_t i = 0; i + 5 <= t.size(); ++i) {
        if (t[i] != '2' && t[i] != '4' && t[i] != '5') continue;
        if (cls && t[i] != cls) continue;
        if (i > 0 && std::string_view(" -'\"<(#[;:=").find(t[i - 1]) == std::string_view::npos) continue;
        int code = 0;
        std::string st;
        find_codes(t.substr(i, 12), code, st);
        if (!st.empty() && t.compare(i, st.size(), st) == 0) {
            last = st;
            i += st.size() - 1;
        }
    }
    return last;
}

// The step a Sendmail transcript's ">>> COMMAND" line (without ">>> ",
// lower-case) is; false for any other command. ">>> DATA" counts as the
// end of data: its refusals are read as the message's.
bool sendmail_command_stage(std::string_view c, stage& at) {
    if (c.rfind("data", 0) == 0 || c.rfind(".", 0) == 0) return at = stage::end_of_data, true;
    if (c.rfind("rcpt", 0) == 0) return at = stage::rcpt, true;
    if (c.rfind("mail", 0) == 0) return at = stage::mail, true;
    if (c.rfind("ehlo", 0) == 0 || c.rfind("helo", 0) == 0) return at = stage::ehlo, true;
    return false;
}

// "(in reply to end of DATA command)" (Postfix), "after end of data" (Exim),
// "in reply to RCPT TO command", "after MAIL FROM": the step a reply answered.
// t is already lower-case; false when it names no step.
bool find_stage(std::string_view t, stage& at) {
    // Sendmail's transcript: the last ">>> COMMAND" before the first "<<< 4xx/5xx".
    auto err = std::min(t.find("<<< 5"), t.find("<<< 4"));
    if (err != std::string_view::npos) {
        auto cmd = t.rfind(">>> ", err);
        if (cmd != std::string_view::npos && sendmail_command_stage(t.substr(cmd + 4, 10), at)) return true;
    }
    struct { std::string_view marker; stage at; } markers[] = {
        {"end of data", stage::end_of_data}, {"after data", stage::end_of_data}, {"reply to data command", stage::data},
        {"rcpt to", stage::rcpt}, {"after rcpt", stage::rcpt}, {"mail from", stage::mail}};
    // "in reply to" up to 40 octets before the marker, or "after" up to 20.
    auto preceded = [&](std::size_t p, std::string_view word, std::size_t window) {
        std::size_t from = p > window ? p - window : 0;
        auto q = t.substr(from, p - from + word.size()).find(word);
        return q != std::string_view::npos;
    };
    std::size_t best = std::string_view::npos;
    for (auto& m : markers) {
        for (auto p = t.find(m.marker); p != std::string_view::npos && p < best; p = t.find(m.marker, p + 1)) {
            if (preceded(p, "in reply to", 40) || preceded(p, "after", 20)) {
                best = p;
                at = m.at;
                break;
            }
        }
    }
    // qmail-remote's own sentences name the step without "in reply to".
    struct { std::string_view marker; stage at; } qmail[] = {
        {"but greeting failed", stage::greeting},        {"but my name was rejected", stage::ehlo},
        {"but sender was rejected", stage::mail},        {"does not like recipient", stage::rcpt},
        {"failed on data command", stage::data},         {"failed after i sent the message", stage::end_of_data}};
    for (auto& m : qmail)
        if (auto p = t.find(m.marker); p != std::string_view::npos && p < best) {
            best = p;
            at = m.at;
        }
    return best != std::string_view::npos;
}

// Line breaks and tabs as spaces: a diagnostic is one line.
std::string one_line(std::string s) {
    for (auto& c : s)
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    return s;
}

// The part of a notice about one recipient: from its address up to the next
// of the other recipients (or 600 octets), where its own reply usually is.
// lt is text lower-cased; others are lower-case.
std::string segment_for(const std::string& text, std::string_view lt, const std::string& rcpt,
                        const std::vector<std::string>& others) {
    std::string lr = lower(rcpt);
    auto p = lt.find(lr);
    if (p == std::string::npos) return {};
    std::size_t end = std::min(lt.size(), p + 600);
    for (auto& o : others) {
        if (o == lr) continue;
        auto q = lt.substr(0, end).find(o, p + lr.size());
        if (q != std::string::npos && q < end) end = q;
    }
    return one_line(text.substr(p, end - p));
}

// Sendmail's session transcript ("----- Transcript of session follows -----"):
// "554 <a@b>... text" (8.10 and later: "550 5.1.1 <a@b>... text") is
// Sendmail's own line on an address, and the remote server's words are the
// "<<< NNN" reply before it, in the same "While talking to HOST:" block, with
// the ">>> COMMAND" it answered:
//
//   ... while talking to mail.example.co.jp.:
//   >>> RCPT To:<a@example.co.jp>
//   <<< 550-5.1.1 Requested User Mailbox not found.
//   <<< 550 5.1.1 No such user here.
//   550 5.1.1 <a@example.co.jp>... User unknown
//
// A reply belongs to an address only when nothing but host lines comes
// between them: no other address's line, no other command.
struct transcript_reply {
    std::string diagnostic;
    stage at = stage::rcpt;
    bool stage_known = false;
};

class sendmail_transcript {
public:
    // text and lt (text lower-cased, the same length) must outlive this.
    sendmail_transcript(std::string_view text, std::string_view lt) : text_(text), lt_(lt) {
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

    std::optional<transcript_reply> reply_for(std::string_view lr) const {
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

private:
    // "<<< 550 ..." / "<<< 550-...": the code; 0 for anything else.
    static int reply_code(std::string_view l) {
        if (l.size() < 8 || l.rfind("<<< ", 0) != 0) return 0;
        for (std::size_t i = 4; i < 7; ++i)
            if (!std::isdigit(static_cast<unsigned char>(l[i]))) return 0;
        if (l[7] != ' ' && l[7] != '-') return 0;
        return (l[4] - '0') * 100 + (l[5] - '0') * 10 + (l[6] - '0');
    }
    // "550 " or "550 5.1.1 " at the start of Sendmail's own line.
    static std::string_view reply_code_prefix(std::string_view l) {
        if (l.size() < 4 || !std::isdigit(static_cast<unsigned char>(l[0])) || !std::isdigit(static_cast<unsigned char>(l[1])) ||
            !std::isdigit(static_cast<unsigned char>(l[2])) || l[3] != ' ')
            return {};
        std::size_t n = 4;
        auto rest = l.substr(4);
        if (without_enhanced(rest).size() != rest.size()) n = l.size() - without_enhanced(rest).size();
        while (n > 0 && l[n - 1] == ' ') --n;
        return l.substr(0, n);
    }
    static std::string_view without_enhanced(std::string_view t) {
        // "5.1.1 text" -> "text"
        std::size_t i = 0, dots = 0;
        while (i < t.size() && i < 12 && (std::isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.')) dots += t[i++] == '.';
        if (dots == 2 && i < t.size() && t[i] == ' ' && i >= 5) return t.substr(i + 1);
        return t;
    }
    // "[NNN [D.D.D ]]<a@b>... text": the address (lower-case); empty when the
    // line is not about an address.
    static std::string_view address_of(std::string_view l) {
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
    // The same octets as a view into lt_, in their own case.
    std::string original(std::string_view l) const {
        return std::string(text_.substr(static_cast<std::size_t>(l.data() - lt_.data()), l.size()));
    }

    std::string_view text_, lt_;
    std::vector<std::string_view> lines_;      // trimmed, lower-case
    std::vector<std::string_view> addresses_;  // per line: the address it reports, or empty
};

bool generic_status(const std::string& s) { return s.empty() || (s.size() >= 5 && s.substr(1) == ".0.0"); }

// Bounds on what one message can make the parser do: a bounce listener
// takes mail from anyone.
constexpr std::size_t max_text = 64 * 1024;  // notice text read, octets
constexpr std::size_t max_records = 100;     // recipients reported

std::string cap(std::string s) {
    if (s.size() > max_text) s.resize(max_text);
    return s;
}

struct walk_state {
    std::vector<fields> dsn_groups;
    std::vector<fields> arf_groups;
    std::string text;            // notification text (not the returned message)
    std::vector<std::string> original_to;
    std::string original_message_id;
    std::string fallback_status, fallback_diag;  // from a report group without a usable recipient
    int fallback_code = 0;
};

std::string part_bytes(GMimePart* part) {
    GMimeDataWrapper* w = g_mime_part_get_content(part);
    if (!w) return {};
    GMimeStream* out = g_mime_stream_mem_new();
    g_mime_data_wrapper_write_to_stream(w, out);
    GByteArray* arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out));
    std::string s(reinterpret_cast<const char*>(arr->data), arr->len);
    g_object_unref(out);
    return s;
}

std::string mime_type(GMimeObject* obj) {
    GMimeContentType* ct = g_mime_object_get_content_type(obj);
    if (!ct) return "text/plain";
    char* m = g_mime_content_type_get_mime_type(ct);
    std::string s = lower(m ? m : "text/plain");
    g_free(m);
    return s;
}

void take_original_headers(GMimeObject* obj, walk_state& st) {
    for (auto name : {"To", "Cc"}) {
        if (const char* v = g_mime_object_get_header(obj, name))
            for (auto& a : find_addresses(v)) st.original_to.push_back(a);
    }
    if (const char* id = g_mime_object_get_header(obj, "Message-ID")) st.original_message_id = trim(id);
}

// Notice text: kept for the free-text pass; some MTAs put the DSN fields
// in it rather than in a message/delivery-status part.
void take_text(std::string t, walk_state& st) {
    t = cap(std::move(t));  // bounded before it is scanned (a broken multipart's prologue is not)
    if (lower(t).find("final-recipient:") != std::string::npos) {
        auto groups = parse_field_groups(t);
        for (auto& g : groups)
            if ((!field(g, "final-recipient").empty() || !field(g, "action").empty()) &&
                st.dsn_groups.size() <= max_records)
                st.dsn_groups.push_back(g);
    }
    st.text += t;
    st.text += "\n";
}

void walk(GMimeObject* obj, walk_state& st, int depth) {
    if (depth > 8) return;  // a report is two levels deep; a bomb of nested parts is not read
    if (GMIME_IS_MULTIPART(obj)) {
        auto* mp = GMIME_MULTIPART(obj);
        int n = std::min(g_mime_multipart_get_count(mp), 32);
        if (n == 0 && st.text.size() < max_text) {
            // A boundary the body never uses (a rewritten header, a broken
            // gateway): GMime finds no parts, and everything is prologue.
            // Read it as one text part rather than lose the report.
            const char* pro = g_mime_multipart_get_prologue(mp);
            const char* epi = g_mime_multipart_get_epilogue(mp);
            std::string t = std::string(pro ? pro : "") + "\n" + (epi ? epi : "");
            take_text(std::move(t), st);
            return;
        }
        for (int i = 0; i < n; ++i) walk(g_mime_multipart_get_part(mp, i), st, depth + 1);
        return;
    }
    std::string type = mime_type(obj);
    if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        if (!inner) return;
        if (type == "message/delivery-status" || type == "message/global-delivery-status") return;  // handled as part
        take_original_headers(GMIME_OBJECT(inner), st);
        return;
    }
    if (!GMIME_IS_PART(obj)) return;
    auto* part = GMIME_PART(obj);
    if (type == "message/delivery-status" || type == "message/global-delivery-status") {
        for (auto& g : parse_field_groups(cap(part_bytes(part)))) {
            if (st.dsn_groups.size() >= max_records + 1) break;
            st.dsn_groups.push_back(std::move(g));
        }
        return;
    }
    if (type == "message/feedback-report") {
        for (auto& g : parse_field_groups(cap(part_bytes(part)))) st.arf_groups.push_back(std::move(g));
        return;
    }
    if (type == "text/rfc822-headers" || type == "text/rfc822-header") {
        auto groups = parse_field_groups(cap(part_bytes(part)));
        if (!groups.empty()) {
            for (auto& a : find_addresses(field(groups[0], "to"))) st.original_to.push_back(a);
            st.original_message_id = field(groups[0], "message-id");
        }
        return;
    }
    if (type.rfind("text/", 0) == 0 && !g_mime_part_is_attachment(part) && st.text.size() < max_text) {
        std::string t;
        if (GMIME_IS_TEXT_PART(obj)) {
            char* u = g_mime_text_part_get_text(GMIME_TEXT_PART(obj));
            if (u) { t = u; g_free(u); }
        } else {
            t = part_bytes(part);
        }
        t = cap(std::move(t));
        if (type == "text/html") {  // crude tag strip: enough to find addresses and codes
            std::string plain;
            bool in_tag = false;
            for (char c : t) {
                if (c == '<') in_tag = true;
                else if (c == '>') { in_tag = false; plain += ' '; }
                else if (!in_tag) plain += c;
            }
            t = plain;
        }
        take_text(std::move(t), st);
    }
}

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

void once() {
    static std::once_flag f;
    std::call_once(f, [] { g_mime_init(); });
}

std::string header(GMimeObject* top, const char* name) {
    const char* v = g_mime_object_get_header(top, name);
    return v ? std::string(v) : std::string();
}

// From a mail system rather than a person: a mailer-daemon, postmaster, ...
bool from_daemon(GMimeObject* top) {
    std::string from = lower(header(top, "From"));
    for (auto m : {"mailer-daemon", "mailer_daemon", "mailerdaemon", "mail-daemon", "postmaster", "mail delivery",
                   "mail administrator", "mail system", "microsoftexchange", "nobody@", "bounce"})
        if (from.find(m) != std::string::npos) return true;
    return false;
}

// ... or sent with the null return path (which vacation programs use too).
bool from_mail_system(GMimeObject* top) { return from_daemon(top) || trim(header(top, "Return-Path")) == "<>"; }

bool looks_like_autoreply(GMimeObject* top) {
    std::string subject = lower(header(top, "Subject"));
    if (!header(top, "X-Autoreply").empty() || !header(top, "X-Autorespond").empty()) return true;
    if (lower(header(top, "Precedence")).find("auto_reply") != std::string::npos) return true;
    // RFC 3834 5.1: auto-replied marks a reply by a program (vacation);
    // DSNs say auto-generated, or (Exim) auto-replied from a mail system.
    if (lower(header(top, "Auto-Submitted")).rfind("auto-replied", 0) == 0 && !from_daemon(top)) return true;
    for (auto marker : {"out of office", "out of the office", "automatic reply", "autoreply", "auto-reply", "auto reply",
                        "vacation", "away from", "abwesenheit", "absence"})
        if (subject.find(marker) != std::string::npos) return true;
    return false;
}

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

// Free-text NDRs: the failed recipients are the addresses of the notice text
// that are neither ours (the sender, postmaster, the reporting system) nor in
// quoted headers; the reply is the first SMTP code in the text.
void parse_free_text(walk_state& st, GMimeObject* top, dsn_report& rep) {
    std::vector<std::string> rcpts;
    for (auto& a : find_addresses(header(top, "X-Failed-Recipients"))) rcpts.push_back(a);
    std::string text = st.text;
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
    std::string from = lower(header(top, "From"));
    std::string to = lower(header(top, "To"));
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
    if (rcpts.empty()) rcpts = st.original_to;
    if (rcpts.empty()) return;
    if (rcpts.size() > max_records) rcpts.resize(max_records);
    int code = st.fallback_code;
    std::string status = st.fallback_status;
    find_codes(text, code, status);
    // The diagnostic: the text from the first reply code (or the whole notice, shortened).
    std::string diag;
    if (code)
        if (auto p = text.find(std::to_string(code)); p != std::string::npos) diag = text.substr(p, 400);
    if (diag.empty() && !st.fallback_diag.empty()) diag = st.fallback_diag;
    if (diag.empty()) diag = text.substr(0, 400);
    diag = one_line(std::move(diag));
    stage at = stage::rcpt;
    bool stage_known = find_stage(lt, at);
    bool delayed = says_delayed(lt, lower(header(top, "Subject")));
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
        if (!code && st.fallback_diag.empty() && rcpts.size() == 1) {
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
}

// Amazon SES notifications delivered by mail (an SNS e-mail subscription):
// a JSON body with notificationType (or eventType, for event publishing)
// Bounce, Complaint, Delivery or DeliveryDelay, and the recipients with
// their own status and diagnostic. False when the text is not one.
bool parse_ses_json(const std::string& text, dsn_report& rep) {
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
}  // namespace

dsn_report parse_dsn(std::string_view raw) {
    once();
    dsn_report rep;
    rep.format = "none";
    GMimeStream* stream = g_mime_stream_mem_new_with_buffer(raw.data(), raw.size());
    GMimeParser* parser = g_mime_parser_new_with_stream(stream);
    g_object_unref(stream);
    GMimeMessage* msg = g_mime_parser_construct_message(parser, nullptr);
    g_object_unref(parser);
    if (!msg) return rep;
    GMimeObject* top = GMIME_OBJECT(msg);
    walk_state st;
    if (GMimeObject* body = g_mime_message_get_mime_part(msg)) walk(body, st, 0);
    rep.original_recipients = st.original_to;
    rep.original_message_id = st.original_message_id;
    rep.from_mail_system = from_mail_system(top);

    std::string subject = lower(header(top, "Subject"));
    if (st.arf_groups.empty() && !st.original_to.empty() && subject.find("complaint about message") != std::string::npos)
        st.arf_groups.push_back({{"feedback-type", "abuse"}});  // Microsoft's JMRP: a complaint without ARF fields
    if (st.arf_groups.empty() && !from_daemon(top) && trim(subject) == "unsubscribe") {
        // RFC 2369 List-Unsubscribe by mail: the sender asks for themselves.
        auto from = find_addresses(header(top, "From"));
        st.arf_groups.push_back({{"feedback-type", "opt-out"}, {"original-rcpt-to", from.empty() ? "" : from[0]}});
    }
    if (!st.arf_groups.empty()) {
        // RFC 5965: one report about the message; the complainer is the
        // original recipient. Only abuse, fraud and opt-out speak for the
        // recipient; auth-failure, not-spam, virus and other are reports to
        // the sender's postmaster and change nothing.
        auto& g = st.arf_groups[0];
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
        if (!valid_address(rcpts[0])) rcpts[0] = st.original_to.empty() ? "" : st.original_to[0];
        for (auto& r : rcpts) {
            rep.records.push_back(d);
            rep.records.back().recipient = r;
        }
        rep.format = "arf";
    } else if (!st.dsn_groups.empty()) {
        std::string reporting;
        std::string ltext = lower(st.text);
        stage text_stage = stage::rcpt;
        bool text_stage_known = find_stage(ltext, text_stage);
        // Every reported address: one recipient's part of the notice text
        // ends where the next one's begins.
        std::vector<std::string> reported;
        for (auto& g : st.dsn_groups) {
            auto r = lower(strip_type(field(g, "final-recipient")));
            if (!r.empty()) reported.push_back(std::move(r));
        }
        for (auto& g : st.dsn_groups) {
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
                std::string seg = segment_for(st.text, ltext, d.recipient, reported);
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
                if (rep.records.empty()) st.fallback_status = d.status, st.fallback_code = d.reply_code,
                                         st.fallback_diag = d.diagnostic;
                continue;
            }
            rep.records.push_back(std::move(d));
        }
        rep.format = "rfc3464";
    }
    if (rep.records.empty()) {
        if (!from_daemon(top) && looks_like_autoreply(top)) {
            dsn_record d;
            d.type = "autoreply";
            auto addrs = find_addresses(header(top, "From"));
            d.recipient = addrs.empty() ? "" : addrs[0];
            d.diagnostic = header(top, "Subject");
            rep.records.push_back(std::move(d));
            rep.format = "autoreply";
        } else if (!parse_ses_json(st.text, rep)) {
            parse_free_text(st, top, rep);
        }
    }
    g_object_unref(msg);
    return rep;
}

}  // namespace ricochet::bounce

namespace ricochet::bounce {

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
