// event — see event.hpp.
#include "events/event.hpp"

#include <array>

namespace ricochet::events {
namespace {
constexpr std::array<std::pair<event_type, std::string_view>, 14> names{{
    {event_type::queued, "queued"},
    {event_type::delivered, "delivered"},
    {event_type::deferred, "deferred"},
    {event_type::bounced, "bounced"},
    {event_type::expired, "expired"},
    {event_type::suppressed, "suppressed"},
    {event_type::complaint, "complaint"},
    {event_type::dsn, "dsn"},
    {event_type::admin, "admin"},
    {event_type::status_changed, "status_changed"},
    {event_type::unsubscribed, "unsubscribed"},
    {event_type::campaign_paused, "campaign_paused"},
    {event_type::campaign_warned, "campaign_warned"},
    {event_type::campaign_resumed, "campaign_resumed"},
}};
}  // namespace

std::string_view to_string(event_type t) {
    for (auto& [v, n] : names)
        if (v == t) return n;
    return "?";
}

std::optional<event_type> parse_event_type(std::string_view s) {
    for (auto& [v, n] : names)
        if (n == s) return v;
    return std::nullopt;
}

}  // namespace ricochet::events
