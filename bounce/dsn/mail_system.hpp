// mail_system — whether a message comes from a mail system rather than a
// person: a notice from a mailer-daemon or postmaster is a bounce even when
// it looks like a reply, and a person's "unsubscribe" or vacation reply is
// read only when it is not such a notice.
#pragma once
#include "bounce/dsn/mime.hpp"

namespace ricochet::bounce::dsn {

// From a mailer-daemon, postmaster, "Mail Delivery System", ... (the From
// header's words).
bool from_daemon(const message& m);

// ... or sent with the null return path (RFC 5321 4.5.5: every notice is),
// which vacation programs use too (RFC 3834 3.3).
bool from_mail_system(const message& m);

}  // namespace ricochet::bounce::dsn
