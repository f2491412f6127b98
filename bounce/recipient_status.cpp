// recipient_status — see recipient_status.hpp.
#include "bounce/recipient_status.hpp"

namespace ricochet::bounce {

std::string_view to_string(address_status s) {
    switch (s) {
        case address_status::active: return "active";
        case address_status::bounced: return "bounced";
        case address_status::held: return "held";
        case address_status::unsubscribed: return "unsubscribed";
    }
    return "?";
}

std::optional<address_status> parse_address_status(std::string_view s) {
    for (auto st : {address_status::active, address_status::bounced, address_status::held, address_status::unsubscribed})
        if (to_string(st) == s) return st;
    return std::nullopt;
}

namespace {
std::string domain_of(std::string_view address) {
    auto at = address.rfind('@');
    std::string d(at == std::string_view::npos ? std::string_view{} : address.substr(at + 1));
    for (auto& c : d)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return d;
}
}  // namespace

bool apply_final_failure(address_record& r, kind k, category c, std::string_view reply, std::int64_t now_ms,
                         const status_policy& p) {
    if (k != kind::hard && k != kind::soft) return false;  // block/technical: the sender's problem
    ++r.bounce_count;
    if (r.bounce_count == 1) r.first_bounce_ms = now_ms;  // the first (since a clear)
    r.last_bounce_ms = now_ms;
    r.last_reply = reply;
    r.last_kind = to_string(k);
    r.last_category = to_string(c);
    if (r.status == address_status::unsubscribed || r.status == address_status::held) return true;
    r.status = address_status::bounced;
    bool trusted = false;
    std::string d = domain_of(r.address);
    for (auto& t : p.trusted_domains) trusted = trusted || d == domain_of("@" + t);  // case-insensitive
    if (k == kind::hard && trusted) r.status = address_status::held;  // these providers do not lie about users
    else if (r.bounce_count >= p.held_after_bounces && now_ms - r.first_bounce_ms > p.held_after_ms)
        r.status = address_status::held;
    return true;
}

}  // namespace ricochet::bounce
