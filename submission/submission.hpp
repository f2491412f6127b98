// submission — the submission listener's policies (PRODUCT.md mail flow 1):
// which addresses and ports, TLS and AUTH, size and recipient limits, the
// campaign header, and the suppression check at RCPT (held and unsubscribed
// recipients are refused with 550 5.7.1, or with bounce.suppressed = "drop"
// accepted and dropped with a `suppressed` event). The SMTP protocol itself
// is smtp/; this folder only says what submission allows.
#pragma once
#include "smtp/smtp_server.hpp"

namespace ricochet {
struct config;
}
namespace ricochet::bounce {
class suppression_list;
}
namespace ricochet::events {
class publisher;
}
namespace ricochet::queue {
class spool;
}
namespace ricochet::smtp {
class auth_users;
}
namespace ricochet::breaker {
class monitor;
}

namespace ricochet::submission {

// users: null when submission.auth_users_file is not set. Everything
// referred to must outlive the listener.
// breaker: null when [breaker] is off; else a paused campaign's or sender
// domain's message gets 451 4.7.1 after DATA, with the figures.
smtp::smtp_server_options listener_options(const config& cfg, const smtp::auth_users* users, queue::spool& spool,
                                           const bounce::suppression_list& suppression, events::publisher& publisher,
                                           const breaker::monitor* breaker = nullptr);

}  // namespace ricochet::submission
