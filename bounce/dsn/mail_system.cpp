// mail_system — see mail_system.hpp.
#include "bounce/dsn/mail_system.hpp"

#include "bounce/dsn/text.hpp"

namespace ricochet::bounce::dsn {

bool from_daemon(const message& m) {
    std::string from = lower(m.from);
    for (auto w : {"mailer-daemon", "mailer_daemon", "mailerdaemon", "mail-daemon", "postmaster", "mail delivery",
                   "mail administrator", "mail system", "microsoftexchange", "nobody@", "bounce"})
        if (from.find(w) != std::string::npos) return true;
    return false;
}

bool from_mail_system(const message& m) { return from_daemon(m) || trim(m.return_path) == "<>"; }

}  // namespace ricochet::bounce::dsn
