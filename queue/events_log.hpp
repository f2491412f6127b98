// events_log — the append-only JSON-lines event log a campaign system tails
// (PRODUCT.md "Events"). One object per line; each batch is one write(2) on an
// O_APPEND descriptor, so lines from the daemon and from ricochetctl never
// interleave. The log is not fsync'd: it reports decisions, the spool is
// what must survive a crash.
#pragma once
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <system_error>
#include <vector>

namespace ricochet::queue {

class events_log {
public:
    events_log() = default;
    ~events_log();
    events_log(const events_log&) = delete;
    events_log& operator=(const events_log&) = delete;

    std::error_code open(const std::filesystem::path& path);
    // Appends the events; each gets "time" (RFC 3339, UTC, ms) when it has none.
    void append(std::vector<nlohmann::json>& events);
    void append(nlohmann::json event);

private:
    std::mutex mu_;
    int fd_ = -1;
};

// Current time as RFC 3339 UTC with milliseconds, e.g. 2026-11-23T08:10:03.123Z.
std::string rfc3339_now();

}  // namespace ricochet::queue
