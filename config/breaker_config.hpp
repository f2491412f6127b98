// breaker_config — [breaker] as the breaker's own config (one conversion,
// shared by ricochetd, ricochetctl and the API).
#pragma once
#include <algorithm>

#include "breaker/breaker.hpp"
#include "config/config.hpp"

namespace ricochet {

inline breaker::config to_breaker_config(const config& c) {
    breaker::config b;
    b.window_ms = std::int64_t(c.breaker.window.count()) * 1000;
    b.min_messages = c.breaker.min_messages;
    b.hard_rate_warn = c.breaker.hard_rate_warn;
    b.hard_rate_pause = c.breaker.hard_rate_pause;
    b.complaint_rate_warn = c.breaker.complaint_rate_warn;
    b.complaint_rate_pause = c.breaker.complaint_rate_pause;
    auto has = [&](const char* s) { return std::find(c.breaker.scopes.begin(), c.breaker.scopes.end(), s) != c.breaker.scopes.end(); };
    b.by_campaign = has("campaign");
    b.by_sender_domain = has("sender_domain");
    return b;
}

}  // namespace ricochet
