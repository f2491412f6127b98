// Fuzz target: the event log's JSON writer and the decision journal's reader.
// Any bytes a receiver or a bounce may put in a reply, a recipient or a
// campaign must give one line of valid JSON (invalid UTF-8 replaced), which
// reads back as the same event; and any journal line must read back without
// a crash (a torn or corrupted file).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "events/event_json.hpp"
#include "events/make.hpp"

using namespace ricochet::events;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    // The input cut in three: reply, recipient, campaign.
    auto a = in.size() / 3, b = 2 * in.size() / 3;
    auto e = attempt_outcome(event_type::bounced, "Q1", std::string(in.substr(b)), std::string(in.substr(a, b - a)),
                             {550, "5.1.1", std::string(in.substr(0, a)), "mx", "rcpt"}, {"hard", "user-unknown", "r"},
                             1, 1000);
    std::string line;
    append_json_line(line, e, true);
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) std::abort();  // every line must be JSON
    auto back = from_json(j);
    if (!back || back->type != e.type || back->time_ms != e.time_ms) std::abort();
    // A journal line as it may be found after a crash or a disk fault.
    auto any = nlohmann::json::parse(in, nullptr, false);
    if (!any.is_discarded()) (void)from_json(any);
    return 0;
}
