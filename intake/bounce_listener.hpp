// bounce_listener — the SMTP server in its other role (PRODUCT.md mail flow
// 5): anyone may connect, since bounces come from everywhere, but only
// signed VERP addresses on the bounce domain, and the signed u-TOKEN
// addresses of List-Unsubscribe's mailto:, are accepted (550 5.1.1
// otherwise): no forged bounce marks an address, no forged request
// unsubscribes one, and nothing is relayed. What it accepts goes to
// dsn_intake, not to the spool.
#pragma once
#include "smtp/smtp_server.hpp"

namespace ricochet {
struct config;
}
namespace ricochet::bounce {
class verp_signer;
}

namespace ricochet::intake {

struct dsn_intake;

// verp, spool and intake must outlive the listener.
smtp::smtp_server_options listener_options(const config& cfg, const bounce::verp_signer& verp, queue::spool& spool,
                                           const dsn_intake& intake);

}  // namespace ricochet::intake
