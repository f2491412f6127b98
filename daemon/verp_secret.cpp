// verp_secret — see verp_secret.hpp.
#include "daemon/verp_secret.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <spdlog/spdlog.h>

#include "base/unique_fd.hpp"
#include "config/config.hpp"

namespace ricochet::daemon {

std::string verp_secret(const config& cfg, std::string& error) {
    if (!cfg.bounce_listener.secret.empty()) return cfg.bounce_listener.secret;
    auto path = cfg.server.spool_dir / "verp.secret";
    std::ifstream in(path);
    std::string secret;
    if (in && std::getline(in, secret) && secret.size() >= 32) return secret;
    unsigned char raw[32];
    std::ifstream urandom("/dev/urandom", std::ios::binary);
    if (!urandom.read(reinterpret_cast<char*>(raw), sizeof raw)) {
        error = "cannot read /dev/urandom";
        return {};
    }
    static const char hex[] = "0123456789abcdef";
    for (unsigned char b : raw) secret += {hex[b >> 4], hex[b & 15]};
    base::unique_fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    // The file, then its name: a secret lost in a crash would make every
    // return path handed out so far invalid.
    if (!fd || base::write_all(fd.get(), secret + "\n") || ::fsync(fd.get()) != 0 ||
        base::fsync_dir(path.parent_path())) {
        error = "cannot write " + path.string();
        return {};
    }
    spdlog::info("generated a new VERP secret in {}", path.string());
    return secret;
}

}  // namespace ricochet::daemon
