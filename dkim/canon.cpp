// canon — see canon.hpp.
#include "dkim/canon.hpp"

#include <cctype>

namespace ricochet::dkim {
namespace {

bool wsp(char c) { return c == ' ' || c == '\t'; }

char lower_char(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Calls f(line) for each line of text without its line end (LF or CRLF).
// A last line without an end counts as a line.
template <class F>
void for_each_line(std::string_view text, F&& f) {
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        std::size_t end = nl == std::string_view::npos ? text.size() : nl;
        std::size_t stop = end > pos && text[end - 1] == '\r' ? end - 1 : end;
        f(text.substr(pos, stop - pos));
        if (nl == std::string_view::npos) break;
        pos = nl + 1;
    }
}

std::vector<header_field> fields_of(std::string_view block, std::size_t& consumed) {
    std::vector<header_field> out;
    std::size_t pos = 0;
    consumed = 0;
    while (pos < block.size()) {
        auto nl = block.find('\n', pos);
        std::size_t next = nl == std::string_view::npos ? block.size() : nl + 1;
        std::string_view line = block.substr(pos, next - pos);
        if (line == "\r\n" || line == "\n") {  // the empty line: the body follows
            consumed = next;
            return out;
        }
        if (wsp(line[0])) {  // a continuation of the field before
            if (!out.empty()) {
                auto start = out.back().raw.data() - block.data();
                out.back().raw = block.substr(static_cast<std::size_t>(start), next - static_cast<std::size_t>(start));
            }
        } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
            auto name = line.substr(0, colon);
            while (!name.empty() && wsp(name.back())) name.remove_suffix(1);
            out.push_back({name, line});
        }
        // (A line with no colon is no field; no signature covers it.)
        pos = next;
    }
    consumed = block.size();
    return out;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (lower_char(a[i]) != lower_char(b[i])) return false;
    return true;
}

bool parse_canonicalization(std::string_view text, canonicalization& out) {
    auto one = [](std::string_view w, canon& c) {
        if (w == "simple") c = canon::simple;
        else if (w == "relaxed") c = canon::relaxed;
        else return false;
        return true;
    };
    auto slash = text.find('/');
    if (slash == std::string_view::npos) {
        out.body = canon::simple;
        return one(text, out.header);
    }
    return one(text.substr(0, slash), out.header) && one(text.substr(slash + 1), out.body);
}

std::string to_string(const canonicalization& c) {
    auto w = [](canon x) { return x == canon::simple ? "simple" : "relaxed"; };
    return std::string(w(c.header)) + "/" + w(c.body);
}

message_parts split_message(std::string_view content) {
    message_parts p;
    std::size_t consumed = 0;
    p.headers = fields_of(content, consumed);
    p.body = content.substr(consumed);
    return p;
}

std::vector<header_field> split_headers(std::string_view block) {
    std::size_t consumed = 0;
    return fields_of(block, consumed);
}

std::string canon_body(std::string_view body, canon c) {
    std::string out;
    out.reserve(body.size() + body.size() / 32);
    std::size_t pending_empty = 0;  // empty lines seen and not yet written: trailing ones are dropped
    for_each_line(body, [&](std::string_view line) {
        // Empty once canonicalized (relaxed: nothing but WSP)? Then it waits:
        // empty lines at the end are dropped (3.4.3, 3.4.4).
        bool empty = c == canon::relaxed ? line.find_first_not_of(" \t") == std::string_view::npos : line.empty();
        if (empty) {
            ++pending_empty;
            return;
        }
        for (; pending_empty; --pending_empty) out += "\r\n";
        if (c == canon::relaxed) {
            // 3.4.4: runs of WSP become one SP; WSP at the end of a line goes.
            bool in_wsp = false;
            for (char ch : line) {
                if (wsp(ch)) {
                    in_wsp = true;
                    continue;
                }
                if (in_wsp) out.push_back(' ');
                in_wsp = false;
                out.push_back(ch);
            }
        } else {
            out += line;
        }
        out += "\r\n";
    });
    // 3.4.3: an empty body is one CRLF in simple; 3.4.4: nothing in relaxed.
    if (out.empty() && c == canon::simple) out = "\r\n";
    return out;
}

std::string canon_header(std::string_view raw, canon c) {
    if (c == canon::simple) {
        std::string out(raw);
        if (out.size() >= 2 && out.compare(out.size() - 2, 2, "\r\n") == 0) return out;
        if (!out.empty() && out.back() == '\n') out.pop_back();
        return out + "\r\n";
    }
    // 3.4.2: name in lower case, unfolded, WSP runs as one SP, none at the
    // ends of the value or around the colon.
    auto colon = raw.find(':');
    std::string out;
    out.reserve(raw.size());
    std::string_view name = raw.substr(0, colon);
    while (!name.empty() && wsp(name.back())) name.remove_suffix(1);
    for (char ch : name)
        if (ch != '\r' && ch != '\n') out.push_back(lower_char(ch));  // (a stray CR in a malformed name)
    out.push_back(':');
    bool in_wsp = false, started = false;
    for (std::size_t i = colon + 1; i < raw.size(); ++i) {
        char ch = raw[i];
        if (ch == '\r' || ch == '\n') continue;  // unfolding
        if (wsp(ch)) {
            in_wsp = true;
            continue;
        }
        if (in_wsp && started) out.push_back(' ');
        in_wsp = false;
        started = true;
        out.push_back(ch);
    }
    out += "\r\n";
    return out;
}

std::vector<std::string> signed_names(const std::vector<std::string>& names, const std::vector<header_field>& fields) {
    std::vector<std::string> h;
    for (auto& n : names)
        for (auto& f : fields)
            if (iequals(f.name, n)) h.push_back(n);
    return h;
}

std::vector<const header_field*> select_fields(const std::vector<std::string>& h, const std::vector<header_field>& fields) {
    std::vector<const header_field*> out;
    std::vector<bool> used(fields.size(), false);
    for (auto& n : h) {
        for (std::size_t i = fields.size(); i-- > 0;) {
            if (!used[i] && iequals(fields[i].name, n)) {
                used[i] = true;
                out.push_back(&fields[i]);
                break;
            }
        }
    }
    return out;
}

std::string from_domain(const std::vector<header_field>& fields) {
    for (auto& f : fields) {
        if (!iequals(f.name, "from")) continue;
        auto value = f.raw.substr(f.raw.find(':') + 1);
        // The address is in <...> when there is a display name; else the
        // addr-spec itself. A quoted display name may hold '@' too.
        std::string_view addr = value;
        if (auto lt = value.rfind('<'); lt != std::string_view::npos) {
            auto gt = value.find('>', lt);
            addr = value.substr(lt + 1, gt == std::string_view::npos ? std::string_view::npos : gt - lt - 1);
        }
        auto at = addr.rfind('@');
        if (at == std::string_view::npos) return "";
        std::string d;
        for (std::size_t i = at + 1; i < addr.size(); ++i) {
            char ch = addr[i];
            if (wsp(ch) || ch == '\r' || ch == '\n' || ch == '>' || ch == ',' || ch == ';' || ch == '(' || ch == ')')
                break;
            d.push_back(lower_char(ch));
        }
        return d;
    }
    return "";
}

}  // namespace ricochet::dkim
