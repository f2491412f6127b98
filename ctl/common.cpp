// common — see common.hpp.
#include "ctl/common.hpp"

#include "state/backend.hpp"
#include "views/views.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <ctime>
#include <iostream>

namespace ricochet::ctl {

[[noreturn]] void die(int code, const std::string& msg) {
    std::cerr << "ricochetctl: " << msg << "\n";
    throw exit_code{code};
}

std::string format_time(std::int64_t ms) { return views::format_time(ms); }

std::unique_ptr<queue::spool> open_spool(const config& cfg, bool must_exist) {
    std::error_code ec;
    auto s = queue::spool::open(cfg.server.spool_dir, false, ec);
    if (!s && must_exist) die(1, "cannot open spool " + cfg.server.spool_dir.string() + ": " + ec.message());
    return s;
}

// Sends one request over the control socket. nullopt when no daemon listens.
std::optional<json> control_request(const std::filesystem::path& path, const json& req) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::nullopt;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::string p = path.string();
    if (p.size() >= sizeof sa.sun_path) die(1, "control socket path too long: " + p);
    std::memcpy(sa.sun_path, p.c_str(), p.size() + 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        return std::nullopt;
    }
    std::string out = req.dump() + "\n";
    for (std::size_t off = 0; off < out.size();) {
        ssize_t n = ::write(fd, out.data() + off, out.size() - off);
        if (n <= 0) { ::close(fd); die(1, "control socket: write failed"); }
        off += static_cast<std::size_t>(n);
    }
    std::string in;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, static_cast<std::size_t>(n));
        if (in.find('\n') != std::string::npos) break;
    }
    ::close(fd);
    if (in.empty()) die(1, "control socket: no answer from the daemon");
    return json::parse(in);
}

offline_events::offline_events(const config& cfg) {
    if (auto ec = seq.open(cfg.server.spool_dir / "events.seq"))
        std::cerr << "ricochetctl: " << (cfg.server.spool_dir / "events.seq").string() << ": " << ec.message() << "\n";
    if (auto ec = file.open(cfg.server.events_log))
        std::cerr << "ricochetctl: " << cfg.server.events_log.string() << ": " << ec.message() << "\n";
    bus.add(file);
}

std::unique_ptr<state::recipient_state> open_state(const config& cfg, bool readonly) {
    const auto& url = cfg.server.state;
    if (readonly && url.rfind("sqlite:", 0) == 0 && !std::filesystem::exists(url.substr(7)))
        return nullptr;  // nothing recorded yet
    std::string error;
    bounce::status_policy policy{cfg.bounce.trusted_domains, static_cast<int>(cfg.bounce.held_after_bounces),
                                 std::int64_t(cfg.bounce.held_after_days) * 86400 * 1000};
    state::set_pg_timeout(static_cast<int>(cfg.server.state_timeout.count()));
    auto st = state::open_state(url, policy, readonly, error);
    if (!st) die(1, "server.state: " + error);
    return st;
}

json record_json(const bounce::address_record& r) { return views::record_json(r); }

}  // namespace ricochet::ctl
