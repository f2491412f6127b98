// clock — wall-clock time in milliseconds since the epoch, the one unit every
// timestamp of Ricochet uses (spool arrival, due times, decisions, events).
// The status rules take time as a parameter instead, so tests can move it.
#pragma once
#include <chrono>
#include <cstdint>

namespace ricochet {

inline std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace ricochet
