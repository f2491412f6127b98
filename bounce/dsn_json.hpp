// dsn_json — the records of a DSN report as JSON, in the field names of the
// events (type, recipient, action, enhanced, code, reply, mx, reporting_mta,
// sync, format; original_recipient and feedback_type when known), with the
// classifier's kind, category and rule for bounces and delays. What
// `ricochetctl bounce parse --json` prints, and what the reader fixtures
// (tests/data/dsn) hold, so the two cannot drift apart.
#pragma once
#include <nlohmann/json.hpp>

#include "bounce/classifier.hpp"
#include "bounce/dsn_parser.hpp"

namespace ricochet::bounce {

// An array, one object per record, in the report's order.
nlohmann::json dsn_records_json(const dsn_report& rep, const classifier& cl);

}  // namespace ricochet::bounce
