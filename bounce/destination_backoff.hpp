// destination_backoff — PRODUCT.md "Scope": a reply that speaks about the
// whole destination (rate-limited, reputation, blocklisted) pauses that
// destination's queue for bounce.destination_backoff, doubling up to an hour
// while such replies continue, and a success resets it. So one throttling
// reply never turns into thousands more. Pure logic with the time passed in;
// thread-safe, since the control socket reads it for `queue summary`.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace ricochet::bounce {

class destination_backoff {
public:
    destination_backoff(std::int64_t base_ms, std::int64_t max_ms = 3600 * 1000) : base_(base_ms), max_(max_ms) {}

    // A destination-scope reply: pause (again), twice as long as last time.
    // Returns when the pause ends.
    std::int64_t pause(const std::string& domain, std::int64_t now_ms);
    // A success: the destination is healthy again.
    void reset(const std::string& domain);
    // When the pause ends, if the domain is paused at now_ms.
    std::optional<std::int64_t> paused_until(const std::string& domain, std::int64_t now_ms) const;

    struct entry {
        std::string domain;
        std::int64_t until_ms, backoff_ms;
    };
    std::vector<entry> paused(std::int64_t now_ms) const;

private:
    struct state {
        std::int64_t until = 0, backoff = 0;
    };
    std::int64_t base_, max_;
    mutable std::mutex mu_;
    std::map<std::string, state> s_;
};

}  // namespace ricochet::bounce
