// dsn_to_sender — bounce.return_to_sender: when a message is finished, the
// failures its sender should hear of, for one RFC 3464 report
// (queue/dsn_writer). Nothing for a message from the null sender (never
// answer a bounce with a bounce) or from our own bounce domain (the report
// would come straight back to the listener).
#pragma once
#include <vector>

#include "queue/dsn_writer.hpp"
#include "queue/spool.hpp"

namespace ricochet {
struct config;
}

namespace ricochet::delivery {

std::vector<queue::failed_recipient> failures_to_return(const config& cfg, const queue::envelope& env,
                                                        const std::vector<queue::recipient_status>& status);

}  // namespace ricochet::delivery
