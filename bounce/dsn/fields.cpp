// fields — see fields.hpp.
#include "bounce/dsn/fields.hpp"

#include "bounce/dsn/text.hpp"

namespace ricochet::bounce::dsn {

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
            groups.back().back().second += " " + trim(line);  // RFC 5322 2.2.3 folding
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

}  // namespace ricochet::bounce::dsn
