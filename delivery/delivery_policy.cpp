// delivery_policy — see delivery_policy.hpp.
#include "delivery/delivery_policy.hpp"

#include <algorithm>

#include "config/config.hpp"
#include "queue/envelope.hpp"

namespace ricochet::delivery {

retry_policy retry_for(const config& cfg, const std::string& domain) {
    for (auto& o : cfg.retry.domains)
        if (queue::recipient_domain("@" + o.domain) == domain)
            return {o.interval.count() * 1000, o.max_age.count() * 1000};
    return {cfg.retry.interval.count() * 1000, cfg.retry.max_age.count() * 1000};
}

queue::recipient_status after_attempt(const queue::recipient_status& prev, const bounce::smtp_reply& reply,
                                      const std::string& mx, const bounce::classification& reading,
                                      std::int64_t now_ms) {
    auto rs = prev;
    rs.attempts += 1;
    rs.last_attempt_ms = now_ms;
    rs.code = reply.code;
    rs.enhanced = reply.enhanced;
    rs.stage = std::string(bounce::to_string(reply.at));
    rs.mx = mx;
    rs.reply = reply.text();
    if (reply.positive()) {
        rs.status = "delivered";
        rs.kind = rs.category = rs.rule = "";
        return rs;
    }
    rs.kind = std::string(bounce::to_string(reading.k));
    rs.category = std::string(bounce::to_string(reading.c));
    rs.rule = reading.rule;
    rs.status = reading.retry ? "deferred" : "bounced";  // a final soft reply stops here too
    return rs;
}

std::optional<queue::recipient_status> expire_if_due(const queue::recipient_status& rs, std::int64_t arrival_ms,
                                                     const retry_policy& p, std::int64_t now_ms) {
    if (rs.final() || now_ms < arrival_ms + p.max_age_ms) return std::nullopt;
    auto out = rs;
    out.status = "expired";
    if (out.category.empty()) {  // never answered (held, paused): nothing against the address
        out.kind = "technical";
        out.category = "network-error";
    }
    return out;
}

std::int64_t next_attempt(std::int64_t now_ms, std::int64_t arrival_ms, const retry_policy& p,
                          std::optional<std::int64_t> paused_until, bool held) {
    std::int64_t expiry = arrival_ms + p.max_age_ms;
    if (held) return expiry;  // release schedules it again; expiry fires on time anyway
    std::int64_t retry = paused_until ? *paused_until : now_ms + p.interval_ms;
    return std::min(retry, expiry);
}

}  // namespace ricochet::delivery
