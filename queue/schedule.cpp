// schedule — see schedule.hpp.
#include "queue/schedule.hpp"

#include <algorithm>

namespace ricochet::queue {

void schedule::add(std::string_view id, std::int64_t due_ms) {
    if (!is_queue_id(id)) return;
    item it{due_ms, {}};
    std::copy(id.begin(), id.end(), it.id.begin());
    std::lock_guard lk(mu_);
    heap_.push(it);
}

std::size_t schedule::rebuild(const std::vector<spool_entry>& entries, std::int64_t now_ms) {
    std::vector<item> items;
    items.reserve(entries.size());
    for (auto& e : entries) {
        if (!is_queue_id(e.id)) continue;
        // Held messages too: delivery looks at them once to expire them on
        // time (retry.max_age holds even for parked mail) and reschedules them
        // at their expiry.
        item it{e.state == queue_state::deferred ? e.mtime_ms : now_ms, {}};
        std::copy(e.id.begin(), e.id.end(), it.id.begin());
        items.push_back(it);
    }
    std::lock_guard lk(mu_);
    heap_ = decltype(heap_)(std::greater<item>(), std::move(items));
    return heap_.size();
}

std::optional<std::string> schedule::pop_due(std::int64_t now_ms) {
    std::lock_guard lk(mu_);
    if (heap_.empty() || heap_.top().due > now_ms) return std::nullopt;
    std::string id(heap_.top().id.begin(), heap_.top().id.end());
    heap_.pop();
    return id;
}

std::optional<std::int64_t> schedule::next_due() const {
    std::lock_guard lk(mu_);
    if (heap_.empty()) return std::nullopt;
    return heap_.top().due;
}

std::size_t schedule::size() const {
    std::lock_guard lk(mu_);
    return heap_.size();
}

}  // namespace ricochet::queue
