// control_server — the daemon's local control socket (Unix domain, mode
// 0600, peers other than our own uid or root refused). One JSON request per
// line, one JSON reply per line. It runs on its own thread, so a bulk
// operation over a large spool never stalls SMTP sessions.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace ricochet::daemon {

class control_server {
public:
    using handler = std::function<nlohmann::json(const nlohmann::json& request)>;
    control_server(std::filesystem::path socket_path, handler h);
    ~control_server();
    // Binds the socket (replacing a stale one) and starts the thread.
    bool start(std::string& error);
    void stop();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace ricochet::daemon
