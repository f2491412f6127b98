// bounce_kind — the taxonomy of PRODUCT.md's "Bounce engine": every failure
// gets a kind (what it means for future mail to the address) and a category;
// each category belongs to exactly one kind. Also the scope a reply speaks
// about. Plain value types.
#pragma once
#include <optional>
#include <string_view>

namespace ricochet::bounce {

enum class kind { hard, soft, block, technical };

enum class category {
    // hard: the address is bad
    user_unknown, domain_unknown, bad_syntax, other_permanent,
    // soft: recipient side, temporary or stuck
    mailbox_full, inactive_mailbox, temp_domain_failure, message_too_large, other_temporary,
    // block: the sender is refused, not the address
    spam_content, url_block, blocklisted, reputation, auth_failure, complaint, policy,
    // technical: transport trouble
    rate_limited, network_error, protocol_error, tls_failure,
};

// What a reply speaks about: the recipient, this message, or the whole
// destination (whose queue then pauses).
enum class scope { recipient, message, destination };

kind kind_of(category c);
scope scope_of(category c);
std::string_view to_string(kind k);
std::string_view to_string(category c);
std::string_view to_string(scope s);
std::optional<kind> parse_kind(std::string_view s);
std::optional<category> parse_category(std::string_view s);

}  // namespace ricochet::bounce
