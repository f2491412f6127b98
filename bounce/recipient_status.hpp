// recipient_status — what Ricochet knows about an address, and the rules of
// PRODUCT.md "Recipient status" that change it. Pure: time is passed in, so
// tests run the 15-day rule in microseconds.
//
//   active -> bounced -> held; unsubscribed
//   - a final hard or soft failure of a message (bounced, or expired after
//     all its retries: 288 attempts count as one) counts one bounce and makes
//     the address bounced;
//   - a hard bounce from a trusted domain (gmail.com, ...) holds it at once;
//   - otherwise it is held once it has held_after_bounces bounces and the
//     first is older than held_after_days;
//   - block and technical failures never count against the address;
//   - a complaint or an unsubscribe makes it unsubscribed (for good);
//   - clear / engage make it active again, with the count started over.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bounce/bounce_kind.hpp"

namespace ricochet::bounce {

enum class address_status { active, bounced, held, unsubscribed };
std::string_view to_string(address_status s);
std::optional<address_status> parse_address_status(std::string_view s);

struct address_record {
    std::string address;
    address_status status = address_status::active;
    int bounce_count = 0;
    std::int64_t first_bounce_ms = 0, last_bounce_ms = 0;
    std::string last_reply{}, last_kind{}, last_category{};
};

struct status_policy {
    std::vector<std::string> trusted_domains;
    int held_after_bounces = 3;
    std::int64_t held_after_ms = 15LL * 86400 * 1000;
};

// A message's final failure for this address. Returns true when it counted
// as a bounce (the message's `bounced` flag is then set).
bool apply_final_failure(address_record& r, kind k, category c, std::string_view reply, std::int64_t now_ms,
                         const status_policy& p);

// Suppressed addresses are refused (or dropped) at RCPT.
inline bool suppressed(address_status s) { return s == address_status::held || s == address_status::unsubscribed; }

}  // namespace ricochet::bounce
