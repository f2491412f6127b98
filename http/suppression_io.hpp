// suppression_io — the suppression list in and out of the API: PUT
// /v1/suppressions reads JSON lines ({"entry"|"address"|"email", "reason"})
// or CSV (entry[,reason], an optional header line), chosen by the
// Content-Type or, without one, by the first character; GET writes JSON
// lines or CSV. Entries are addresses or "@domain" (suppression_entry_of).
// A bad line is counted and reported (the first 100, with their line
// numbers); the good lines are imported all the same. Pure.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bounce/recipient_status.hpp"
#include "state/storage.hpp"

namespace ricochet::http {

struct import_result {
    std::vector<state::suppression_entry> entries;
    std::size_t lines = 0, invalid = 0;
    nlohmann::json errors = nlohmann::json::array();  // [{"line": N, "error": "..."}], at most 100
};

import_result parse_suppressions(std::string_view body, std::string_view content_type, std::int64_t now_ms);

// One line per entry: imported ones (source "import"), then held and
// unsubscribed recipients (source = their status).
std::string export_suppressions(const std::vector<state::suppression_entry>& imported,
                                const std::vector<bounce::address_record>& recipients, bool csv);

}  // namespace ricochet::http
