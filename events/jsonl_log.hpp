// jsonl_log — the append-only JSON-lines event log a campaign system tails
// (server.events_log, default var/events.jsonl): one object per line, in
// seq order. Each batch is one write(2) on an O_APPEND descriptor, so lines
// from the daemon and from ricochetctl never interleave. The log is not
// fsync'd: it reports decisions, the spool and the state store are what
// must survive a crash.
#pragma once
#include <filesystem>
#include <mutex>
#include <system_error>
#include <vector>

#include "base/unique_fd.hpp"
#include "events/sink.hpp"

namespace ricochet::events {

class jsonl_log final : public sink {
public:
    jsonl_log() = default;
    ~jsonl_log() override;
    jsonl_log(const jsonl_log&) = delete;
    jsonl_log& operator=(const jsonl_log&) = delete;

    std::error_code open(const std::filesystem::path& path);
    void write(const std::vector<event>& evs) override;

private:
    std::mutex mu_;
    base::unique_fd fd_;
};

}  // namespace ricochet::events
