// schedule — which queued message is due for a delivery attempt next.
//
// A min-heap of (due time, queue id) and nothing else: about 24 bytes per
// queued message (plus the heap's slack), so a spool of a million deferred
// messages costs tens of megabytes, not the messages themselves. The spool is
// the truth; the schedule is rebuilt from it at start (active/ is due now,
// deferred/ is due at each file's mtime, hold/ now, so that its expiry is
// checked) and fed by every commit. Stale entries are harmless: delivery
// checks the spool before it acts. Thread-safe.
#pragma once
#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

#include "queue/spool.hpp"

namespace ricochet::queue {

class schedule {
public:
    void add(std::string_view id, std::int64_t due_ms);
    // Rebuilds from a spool listing (recovery); returns how many were scheduled.
    std::size_t rebuild(const std::vector<spool_entry>& entries, std::int64_t now_ms);
    // The id of a message due at now_ms, earliest first; nullopt when none is due.
    std::optional<std::string> pop_due(std::int64_t now_ms);
    // When the earliest message is due; nullopt when the schedule is empty.
    std::optional<std::int64_t> next_due() const;
    std::size_t size() const;

private:
    struct item {
        std::int64_t due;
        std::array<char, 13> id;
        bool operator>(const item& o) const { return due != o.due ? due > o.due : id > o.id; }
    };
    mutable std::mutex mu_;
    std::priority_queue<item, std::vector<item>, std::greater<item>> heap_;
};

}  // namespace ricochet::queue
