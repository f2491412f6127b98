// verp_secret — bounce_listener.secret, or one generated on first start into
// spool_dir/verp.secret (mode 0600, fsync'd) and kept: VERP tokens must stay
// valid across restarts for as long as bounces can come back.
#pragma once
#include <string>

namespace ricochet {
struct config;
}

namespace ricochet::daemon {

// Empty with `error` set when no secret can be read or made.
std::string verp_secret(const config& cfg, std::string& error);

}  // namespace ricochet::daemon
