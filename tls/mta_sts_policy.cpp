// mta_sts_policy — see mta_sts_policy.hpp.
#include "tls/mta_sts_policy.hpp"

#include <algorithm>
#include <cctype>

namespace ricochet::tls {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

bool alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// RFC 8461 3.2: sts-policy-mx-value = ["*."] Domain (RFC 5321's Domain:
// LDH labels separated by dots).
bool valid_mx_pattern(std::string_view p) {
    if (p.starts_with("*.")) p.remove_prefix(2);
    if (p.empty() || p.size() > 253) return false;
    std::size_t label = 0;
    for (std::size_t i = 0; i <= p.size(); ++i) {
        if (i == p.size() || p[i] == '.') {
            if (label == 0 || label > 63 || p[i - 1] == '-') return false;
            label = 0;
            continue;
        }
        char c = p[i];
        if (!(alnum(c) || (c == '-' && label > 0))) return false;
        ++label;
    }
    return true;
}

}  // namespace

std::string_view to_string(sts_mode m) {
    switch (m) {
        case sts_mode::enforce: return "enforce";
        case sts_mode::testing: return "testing";
        case sts_mode::none: return "none";
    }
    return "none";
}

sts_record parse_sts_record(const std::vector<std::string>& txt_records) {
    sts_record out;
    const std::string* only = nullptr;
    int count = 0;
    for (auto& r : txt_records) {
        // RFC 8461 3.1: "v=STSv1" must be the first field; other records
        // (SPF, verification strings) at the name are discarded.
        std::string_view v = r;
        if (!v.starts_with("v=STSv1")) continue;
        std::string_view rest = trim(v.substr(7));
        if (!rest.empty() && rest.front() != ';') continue;  // "v=STSv10" is another version
        ++count;
        only = &r;
    }
    if (count == 0) return out;
    out.found = true;
    if (count > 1) {
        out.error = "more than one v=STSv1 record";
        return out;
    }
    // sts-text-record = sts-version 1*(*WSP %x3B *WSP sts-field) [%x3B]
    std::string_view s = *only;
    s.remove_prefix(7);
    bool have_id = false;
    while (!s.empty()) {
        s = trim(s);
        if (s.empty()) break;
        if (s.front() != ';') {
            out.error = "fields must be separated by ';'";
            return out;
        }
        s.remove_prefix(1);
        auto end = s.find(';');
        std::string_view field = trim(s.substr(0, end));
        s = end == std::string_view::npos ? std::string_view{} : s.substr(end);
        if (field.empty()) continue;
        auto eq = field.find('=');
        if (eq == std::string_view::npos || eq == 0) {
            out.error = "field without name=value: " + std::string(field);
            return out;
        }
        std::string_view name = field.substr(0, eq), value = field.substr(eq + 1);
        if (name == "id") {
            if (have_id) continue;  // the first one counts
            if (value.empty() || value.size() > 32 || !std::all_of(value.begin(), value.end(), alnum)) {
                out.error = "id must be 1 to 32 letters and digits";
                return out;
            }
            out.id = std::string(value);
            have_id = true;
        }
        // Other fields (sts-ext-name) are allowed and ignored.
    }
    if (!have_id) out.error = "no id field";
    return out;
}

std::optional<sts_policy> parse_sts_policy(std::string_view text, std::string& error) {
    sts_policy p;
    bool have_version = false, have_mode = false, have_max_age = false;
    std::size_t line_no = 0;
    while (!text.empty()) {
        auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        ++line_no;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (trim(line).empty()) continue;
        auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) {
            error = "line " + std::to_string(line_no) + " is not \"key: value\"";
            return std::nullopt;
        }
        std::string_view key = line.substr(0, colon), value = trim(line.substr(colon + 1));
        if (!std::all_of(key.begin(), key.end(), [](char c) { return alnum(c) || c == '_' || c == '-'; })) {
            error = "line " + std::to_string(line_no) + ": bad key";
            return std::nullopt;
        }
        p.lines.push_back(std::string(key) + ": " + std::string(value));
        // RFC 8461 3.2: a field given twice counts once (the first), mx excepted.
        if (key == "version") {
            if (have_version) continue;
            if (value != "STSv1") {
                error = "version is not STSv1";
                return std::nullopt;
            }
            have_version = true;
        } else if (key == "mode") {
            if (have_mode) continue;
            if (value == "enforce") p.mode = sts_mode::enforce;
            else if (value == "testing") p.mode = sts_mode::testing;
            else if (value == "none") p.mode = sts_mode::none;
            else {
                error = "mode must be enforce, testing or none";
                return std::nullopt;
            }
            have_mode = true;
        } else if (key == "max_age") {
            if (have_max_age) continue;
            // 1*10DIGIT, at most 31557600
            if (value.empty() || value.size() > 10 ||
                !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
                error = "max_age must be a number of seconds";
                return std::nullopt;
            }
            std::uint64_t n = std::stoull(std::string(value));
            if (n > 31557600) {
                error = "max_age is more than 31557600";
                return std::nullopt;
            }
            p.max_age = static_cast<std::uint32_t>(n);
            have_max_age = true;
        } else if (key == "mx") {
            std::string pat = lower(value);
            if (!pat.empty() && pat.back() == '.') pat.pop_back();
            if (!valid_mx_pattern(pat)) {
                error = "mx is not a host name or *.pattern: " + std::string(value);
                return std::nullopt;
            }
            p.mx.push_back(std::move(pat));
        }
        // Other keys are extensions: kept in lines, otherwise ignored.
    }
    if (!have_version) error = "no version field";
    else if (!have_mode) error = "no mode field";
    else if (!have_max_age) error = "no max_age field";
    else if (p.mx.empty() && p.mode != sts_mode::none) error = "no mx field";
    if (!error.empty()) return std::nullopt;
    return p;
}

bool mx_matches(const std::string& mx_host, const std::vector<std::string>& patterns) {
    std::string host = lower(mx_host);
    if (!host.empty() && host.back() == '.') host.pop_back();
    for (auto& p : patterns) {
        if (p.starts_with("*.")) {
            // Exactly one label in place of the '*': "*.example.com" matches
            // "mx.example.com", not "example.com" nor "a.b.example.com".
            std::string_view suffix = std::string_view(p).substr(1);  // ".example.com"
            if (host.size() > suffix.size() && std::string_view(host).ends_with(suffix) &&
                host.find('.') == host.size() - suffix.size())
                return true;
        } else if (host == p) {
            return true;
        }
    }
    return false;
}

}  // namespace ricochet::tls
