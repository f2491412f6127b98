// clock — wall-clock time in milliseconds since the epoch, the one unit every
// timestamp of Ricochet uses (spool arrival, due times, decisions, events).
// The status rules take time as a parameter instead, so tests can move it.
#pragma once
#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>

namespace ricochet {

inline std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch()).count();
}

// "Mon, 30 Nov 2026 10:40:30 +0000" (RFC 5322 3.3, UTC): Date and trace headers.
inline std::string rfc5322_date(std::int64_t ms) {
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    return buf;
}

}  // namespace ricochet
