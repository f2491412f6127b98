// log_rate — at most one log line a second for a message a flood repeats
// (a refused connection), with the count of those left out.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

namespace ricochet::base {

class log_rate {
public:
    // Empty: leave this one out. Else: log it, saying how many were left
    // out since the last one logged.
    std::optional<std::uint64_t> admit() {
        auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch()).count();
        auto last = last_ms_.load(std::memory_order_relaxed);
        if (now - last < 1000 || !last_ms_.compare_exchange_strong(last, now)) {
            dropped_.fetch_add(1, std::memory_order_relaxed);
            return std::nullopt;
        }
        return dropped_.exchange(0);
    }

private:
    std::atomic<std::int64_t> last_ms_{-1000000};
    std::atomic<std::uint64_t> dropped_{0};
};

}  // namespace ricochet::base
