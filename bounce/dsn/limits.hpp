// limits — the bounds on what one message can make the DSN readers do. A
// bounce listener takes mail from anyone, so every reader stops at these,
// whatever the input.
#pragma once
#include <cstddef>

namespace ricochet::bounce::dsn {

constexpr std::size_t max_text = 64 * 1024;  // notice text read, octets
constexpr std::size_t max_records = 100;     // recipients reported
constexpr int max_depth = 8;                 // MIME nesting walked (a report is two levels deep)
constexpr int max_parts = 32;                // parts of one multipart walked

}  // namespace ricochet::bounce::dsn
