// dsn_to_sender — see dsn_to_sender.hpp.
#include "delivery/dsn_to_sender.hpp"

#include "config/config.hpp"
#include "queue/envelope.hpp"

namespace ricochet::delivery {

std::vector<queue::failed_recipient> failures_to_return(const config& cfg, const queue::envelope& env,
                                                        const std::vector<queue::recipient_status>& status) {
    std::vector<queue::failed_recipient> failed;
    if (!cfg.bounce.return_to_sender || env.sender.empty()) return failed;
    if (queue::domain_within(queue::recipient_domain(env.sender),
                             queue::recipient_domain("@" + cfg.bounce_listener.domain)))
        return failed;
    for (std::size_t i = 0; i < status.size() && i < env.recipients.size(); ++i) {
        auto& rs = status[i];
        if (rs.status == "bounced" || rs.status == "expired")
            failed.push_back({env.recipients[i], rs.enhanced.empty() ? (rs.code >= 500 ? "5.0.0" : "4.0.0") : rs.enhanced,
                              rs.reply, rs.mx});
    }
    return failed;
}

}  // namespace ricochet::delivery
