// dsn_intake — what the bounce listener does with a message it accepted for
// b-TOKEN@<bounce domain>: parse it (bounce/dsn_parser.hpp), find who the
// signed token names (queue id + recipient index, looked up in the state
// store), classify each report (sync = false) and record the decision, so
// a bounce that comes back days later changes the recipient's status like
// an in-session reply. Complaints unsubscribe; delays, success notices and
// auto-replies are reported (`dsn` events) and change nothing. A message
// with no report in it is kept in spool_dir/dsn-unparsed/ with a `dsn`
// event saying why: never dropped (if it cannot be written, the sender gets
// 452 and tries again). So does a free-text message that is not from a mail
// system or has no reply code, and a report for a message the state store
// does not know (nothing is recorded then). Plain C++, no Asio.
#pragma once
#include <filesystem>
#include <functional>
#include <string>
#include <system_error>
#include <vector>

#include "queue/dsn_writer.hpp"
#include "queue/envelope.hpp"
#include "events/publisher.hpp"
#include "state/recipient_state.hpp"
#include "unsubscribe/token.hpp"

namespace ricochet::bounce {
class verp_signer;
class classifier;
}  // namespace ricochet::bounce

namespace ricochet::intake {

struct dsn_intake {
    const bounce::verp_signer& verp;
    const bounce::classifier& classify;
    const state::recipient_state& store;
    // Every report's event goes here; the recipient state records the
    // decisions among them (bounced, complaint) before the 250.
    events::publisher& publisher;
    std::string bounce_domain;
    std::filesystem::path unparsed_dir;
    // bounce.return_to_sender: queues a DSN to the original message's sender
    // (known from the state store) for each failure reported here for the
    // first time; an error means 452 and nothing recorded. Unset: off.
    std::function<std::error_code(const queue::envelope& original, const std::vector<queue::failed_recipient>& failed)>
        return_to_sender;

    // Mail to u-TOKEN@<bounce domain>, the mailto: of List-Unsubscribe: the
    // recipient the token names is unsubscribed (via "mailto") whatever the
    // message says, and the message is not kept. unsubscribe returns "" when
    // done, else why not (452: the sender tries again). Unset: no such mail
    // is accepted.
    const unsubscribe::token_signer* unsub_tokens = nullptr;
    std::function<std::string(const unsubscribe::target&, const std::string& via)> unsubscribe;

    std::error_code operator()(queue::envelope& env, std::string& content) const;
    // Whether rcpt is one of our u-TOKEN addresses with a valid token.
    bool unsubscribe_address(std::string_view rcpt) const;
};

}  // namespace ricochet::intake
