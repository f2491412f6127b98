// delivery_policy — what delivery does with a reply, as pure functions of
// the reply, the recipient's state so far and the time: no I/O, no Asio, so
// every rule has a table test. The names say what a reply speaks about, as
// Postfix's smtp_trouble does (rcpt / mesg / site):
//
//   after_attempt       the recipient's new status from one attempt's reply
//                       and its reading (ignored for a 2xx):
//                       2xx delivered, a reply that may be retried deferred,
//                       anything final bounced (a final soft reply included);
//   pauses_destination  the reply speaks about the whole destination
//                       (rate-limited, reputation, blocklisted): no more
//                       attempts there, from any message, for a while;
//   expire_if_due       at retry.max_age after arrival a pending recipient
//                       fails, whatever its message's state (held, paused);
//   next_attempt        when a pending recipient is tried again: after the
//                       retry interval, or when its destination's pause
//                       ends, never later than expiry; a held message is
//                       looked at again only at expiry.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "bounce/classifier.hpp"
#include "queue/spool.hpp"

namespace ricochet {
struct config;
}

namespace ricochet::delivery {

struct retry_policy {
    std::int64_t interval_ms = 15 * 60 * 1000, max_age_ms = 72LL * 3600 * 1000;
};
// [retry], or the [[retry.domain]] for this (lower-case, ASCII) domain.
retry_policy retry_for(const config& cfg, const std::string& domain);

queue::recipient_status after_attempt(const queue::recipient_status& prev, const bounce::smtp_reply& reply,
                                      const std::string& mx, const bounce::classification& reading, std::int64_t now_ms);

inline bool pauses_destination(const bounce::classification& c) { return c.s == bounce::scope::destination; }

// The expired status when the recipient is pending and past max_age; a
// recipient that never got an answer (held, paused) expires as
// technical/network-error, which says nothing against the address.
std::optional<queue::recipient_status> expire_if_due(const queue::recipient_status& rs, std::int64_t arrival_ms,
                                                     const retry_policy& p, std::int64_t now_ms);

std::int64_t next_attempt(std::int64_t now_ms, std::int64_t arrival_ms, const retry_policy& p,
                          std::optional<std::int64_t> paused_until, bool held);

}  // namespace ricochet::delivery
