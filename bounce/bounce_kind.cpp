// bounce_kind — see bounce_kind.hpp.
#include "bounce/bounce_kind.hpp"

namespace ricochet::bounce {
namespace {
struct row {
    category c;
    std::string_view name;
    kind k;
};
constexpr row table[] = {
    {category::user_unknown, "user-unknown", kind::hard},
    {category::domain_unknown, "domain-unknown", kind::hard},
    {category::bad_syntax, "bad-syntax", kind::hard},
    {category::other_permanent, "other-permanent", kind::hard},
    {category::mailbox_full, "mailbox-full", kind::soft},
    {category::inactive_mailbox, "inactive-mailbox", kind::soft},
    {category::temp_domain_failure, "temp-domain-failure", kind::soft},
    {category::message_too_large, "message-too-large", kind::soft},
    {category::other_temporary, "other-temporary", kind::soft},
    {category::spam_content, "spam-content", kind::block},
    {category::url_block, "url-block", kind::block},
    {category::blocklisted, "blocklisted", kind::block},
    {category::reputation, "reputation", kind::block},
    {category::auth_failure, "auth-failure", kind::block},
    {category::complaint, "complaint", kind::block},
    {category::policy, "policy", kind::block},
    {category::rate_limited, "rate-limited", kind::technical},
    {category::network_error, "network-error", kind::technical},
    {category::protocol_error, "protocol-error", kind::technical},
    {category::tls_failure, "tls-failure", kind::technical},
};
}  // namespace

kind kind_of(category c) { return table[static_cast<int>(c)].k; }

scope scope_of(category c) {
    // PRODUCT.md "Scope": these slow the whole destination down.
    switch (c) {
        case category::rate_limited:
        case category::reputation:
        case category::blocklisted: return scope::destination;
        case category::message_too_large:
        case category::spam_content:
        case category::url_block:
        case category::protocol_error: return scope::message;
        default: return scope::recipient;
    }
}

std::string_view to_string(kind k) {
    switch (k) {
        case kind::hard: return "hard";
        case kind::soft: return "soft";
        case kind::block: return "block";
        case kind::technical: return "technical";
    }
    return "?";
}

std::string_view to_string(category c) { return table[static_cast<int>(c)].name; }

std::string_view to_string(scope s) {
    switch (s) {
        case scope::recipient: return "recipient";
        case scope::message: return "message";
        case scope::destination: return "destination";
    }
    return "?";
}

std::optional<kind> parse_kind(std::string_view s) {
    for (auto k : {kind::hard, kind::soft, kind::block, kind::technical})
        if (to_string(k) == s) return k;
    return std::nullopt;
}

std::optional<category> parse_category(std::string_view s) {
    for (auto& r : table)
        if (r.name == s) return r.c;
    return std::nullopt;
}

}  // namespace ricochet::bounce
