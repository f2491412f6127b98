// memory_budget — the message data every listener holds in memory at once
// (SMTP DATA not yet spilled to disk, HTTP request bodies), counted in one
// place for the whole process (server.data_memory_budget). Header-only,
// lock-free.
#pragma once
#include <atomic>
#include <cstdint>

namespace ricochet::base {

inline std::atomic<std::uint64_t>& data_in_memory() {
    static std::atomic<std::uint64_t> n{0};
    return n;
}

// Takes n octets from the budget; false (nothing taken) when that would
// pass `budget` (0: no budget).
inline bool reserve_data_memory(std::uint64_t n, std::uint64_t budget) {
    auto& a = data_in_memory();
    auto cur = a.load();
    do {
        if (budget && cur + n > budget) return false;
    } while (!a.compare_exchange_weak(cur, cur + n));
    return true;
}
inline void release_data_memory(std::uint64_t n) { data_in_memory().fetch_sub(n); }

}  // namespace ricochet::base
