// suppression_io — see suppression_io.hpp.
#include "http/suppression_io.hpp"

#include "bounce/suppression_list.hpp"
#include "submission/inject.hpp"
#include "views/views.hpp"

namespace ricochet::http {
using nlohmann::json;

namespace {

// One CSV field: unquoted, or "quoted with ""doubled"" quotes".
std::string_view csv_field(std::string_view& line, std::string& scratch) {
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (!line.empty() && line.front() == '"') {
        scratch.clear();
        std::size_t i = 1;
        for (; i < line.size(); ++i) {
            if (line[i] == '"') {
                if (i + 1 < line.size() && line[i + 1] == '"') {
                    scratch += '"';
                    ++i;
                    continue;
                }
                break;
            }
            scratch += line[i];
        }
        line.remove_prefix(std::min(line.size(), i + 1));
        auto comma = line.find(',');
        line.remove_prefix(comma == std::string_view::npos ? line.size() : comma + 1);
        return scratch;
    }
    auto comma = line.find(',');
    auto f = line.substr(0, comma);
    line.remove_prefix(comma == std::string_view::npos ? line.size() : comma + 1);
    while (!f.empty() && (f.back() == ' ' || f.back() == '\t')) f.remove_suffix(1);
    return f;
}

std::string csv_quote(const std::string& s) {
    if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += (c == '\r' || c == '\n') ? ' ' : c;
    }
    return out + "\"";
}

}  // namespace

import_result parse_suppressions(std::string_view body, std::string_view content_type, std::int64_t now_ms) {
    import_result r;
    bool jsonl;
    if (content_type.find("csv") != std::string_view::npos) jsonl = false;
    else if (content_type.find("json") != std::string_view::npos) jsonl = true;
    else {
        auto first = body.find_first_not_of(" \t\r\n");
        jsonl = first != std::string_view::npos && body[first] == '{';
    }
    auto bad = [&r](std::size_t line, std::string why) {
        ++r.invalid;
        if (r.errors.size() < 100) r.errors.push_back({{"line", line}, {"error", std::move(why)}});
    };
    std::string scratch;
    std::size_t lineno = 0;
    int entry_col = 0, reason_col = 1;  // CSV columns; a header line may name others
    while (!body.empty()) {
        auto nl = body.find('\n');
        auto line = body.substr(0, nl);
        body.remove_prefix(nl == std::string_view::npos ? body.size() : nl + 1);
        ++lineno;
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
        if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
        ++r.lines;
        std::string entry, reason;
        if (jsonl) {
            auto j = json::parse(line, nullptr, false);
            if (j.is_discarded() || !j.is_object()) {
                bad(lineno, "not a JSON object");
                continue;
            }
            for (auto* k : {"entry", "address", "email"})
                if (auto it = j.find(k); it != j.end() && it->is_string()) {
                    entry = it->get<std::string>();
                    break;
                }
            if (auto it = j.find("reason"); it != j.end() && it->is_string()) reason = it->get<std::string>();
            if (entry.empty()) {
                bad(lineno, "no \"entry\" (or \"address\", \"email\")");
                continue;
            }
        } else {
            std::vector<std::string> fields;
            for (auto rest = line; !rest.empty() && fields.size() < 16;) fields.emplace_back(csv_field(rest, scratch));
            if (lineno == 1 && !fields.empty() && fields[0].find('@') == std::string::npos) {
                // A header line: "entry"/"email"/"address" and "reason" name
                // their columns (an export, "entry,source,reason,since", imports back).
                for (int i = 0; i < static_cast<int>(fields.size()); ++i) {
                    auto f = bounce::lower_address(fields[static_cast<std::size_t>(i)]);
                    if (f == "entry" || f == "email" || f == "address") entry_col = i;
                    else if (f == "reason") reason_col = i;
                }
                --r.lines;
                continue;
            }
            if (entry_col < static_cast<int>(fields.size())) entry = fields[static_cast<std::size_t>(entry_col)];
            if (reason_col < static_cast<int>(fields.size())) reason = fields[static_cast<std::size_t>(reason_col)];
        }
        auto e = submission::suppression_entry_of(entry);
        if (!e) {
            bad(lineno, "not an address or @domain: " + entry.substr(0, 200));
            continue;
        }
        r.entries.push_back({*e, reason.substr(0, 200), now_ms});
    }
    return r;
}

std::string export_suppressions(const std::vector<state::suppression_entry>& imported,
                                const std::vector<bounce::address_record>& recipients, bool csv) {
    std::string out;
    out.reserve(imported.size() * 48 + recipients.size() * 64 + 32);
    if (csv) out += "entry,source,reason,since\r\n";
    auto line = [&](const std::string& entry, const std::string& source, const std::string& reason, std::int64_t ms) {
        if (csv) {
            out += csv_quote(entry) + "," + source + "," + csv_quote(reason) + "," + (ms ? views::format_time(ms) : "") + "\r\n";
        } else {
            json j{{"entry", entry}, {"source", source}, {"reason", reason}, {"since", ms ? json(views::format_time(ms)) : json(nullptr)}};
            out += j.dump(-1, ' ', false, json::error_handler_t::replace);
            out += '\n';
        }
    };
    for (auto& e : imported) line(e.entry, "import", e.reason, e.created_ms);
    for (auto& r : recipients)
        line(r.address, std::string(bounce::to_string(r.status)),
             r.last_category.empty() ? r.last_reply : r.last_kind + "/" + r.last_category, r.last_bounce_ms);
    return out;
}

}  // namespace ricochet::http
