// event_json — the one place an event becomes JSON (and, for the decision
// journal, JSON becomes an event again). The JSON is what a campaign system
// reads in events.jsonl and, later, in webhooks: every event carries seq,
// id, time, type and the common fields (null when unknown); admin and
// status_changed add their own. docs/events.md is the schema.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "events/event.hpp"

namespace ricochet::events {

// Appends the event as one line of JSON (with its newline): the form in
// events.jsonl, written without building a JSON object (this runs for every
// recipient, several times). internal = true adds what only Ricochet itself
// reads back (the exact time, a queued recipient's index and envelope
// sender): the decision journal's form.
void append_json_line(std::string& out, const event& e, bool internal = false);
// The same as an object (tests, and callers that add to it).
nlohmann::json to_json(const event& e, bool internal = false);
// The inverse of to_json(e, true); nullopt for a line that is not an event.
std::optional<event> from_json(const nlohmann::json& j);

// RFC 3339 UTC with milliseconds, e.g. 2026-11-23T08:10:03.123Z; 0 -> null.
std::string rfc3339(std::int64_t ms);
// The inverse; 0 when malformed.
std::int64_t parse_rfc3339(const std::string& s);

}  // namespace ricochet::events
