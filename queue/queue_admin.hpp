// queue_admin — the operator's queue operations (hold, release, delete,
// flush) over a selector, shared by the daemon (behind its control socket)
// and by ricochetctl when the daemon is stopped. Each changed message is
// reported as an `admin` event, so the event log shows who touched what.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "events/publisher.hpp"
#include "queue/spool.hpp"

namespace ricochet::queue {

struct selector {
    std::string id;        // one queue id, or:
    std::string domain;    // every message with a recipient in this domain
    std::string campaign;  // every message of this campaign
    bool all = false;      // everything
    std::string sender_domain;  // every message whose envelope sender is in this domain (the breaker)

    bool empty() const { return id.empty() && domain.empty() && campaign.empty() && sender_domain.empty() && !all; }
};

enum class admin_op { hold, release, remove, flush };
std::string_view to_string(admin_op op);
std::optional<admin_op> parse_admin_op(std::string_view s);

struct admin_result {
    std::size_t matched = 0;       // messages the selector chose
    std::vector<std::string> ids;  // those that changed state
    std::string error;             // set when something failed (first failure)
};

// True when the message matches the selector (reads its envelope unless the
// selector is an id or --all).
// e.state is updated when the message moved since it was listed.
bool matches(const spool& s, spool_entry& e, const selector& sel);

admin_result apply_admin(spool& s, events::publisher* pub, admin_op op, const selector& sel);

}  // namespace ricochet::queue
