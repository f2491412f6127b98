// queue_id — see queue_id.hpp.
#include "queue/queue_id.hpp"

#include <chrono>

namespace ricochet::queue {
namespace {
constexpr char alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr int id_length = 13;  // 65 bits >= 52 bits of time + 12 of sequence

int digit_value(char c) {
    for (int i = 0; i < 32; ++i)
        if (alphabet[i] == c) return i;
    return -1;
}

std::string encode(std::uint64_t v) {
    std::string s(id_length, '0');
    for (int i = id_length - 1; i >= 0; --i) {
        s[i] = alphabet[v & 31];
        v >>= 5;
    }
    return s;
}
}  // namespace

std::string queue_id_generator::next_at(std::uint64_t unix_micros) {
    std::uint64_t node = node_.load(std::memory_order_relaxed);
    std::uint64_t want = (unix_micros << 12) | node;
    std::uint64_t prev = last_.load(std::memory_order_relaxed);
    std::uint64_t next;
    do {
        if (want > prev) next = want;
        else if (node) next = (((prev >> 6) + 1) << 6) | node;  // the next sequence, still ours
        else next = prev + 1;
    } while (!last_.compare_exchange_weak(prev, next, std::memory_order_relaxed));
    return encode(next);
}

std::string queue_id_generator::next() {
    auto now = std::chrono::system_clock::now().time_since_epoch();
    return next_at(std::chrono::duration_cast<std::chrono::microseconds>(now).count());
}

void queue_id_generator::advance_past(std::string_view id) {
    if (!is_queue_id(id)) return;
    std::uint64_t v = 0;
    for (char c : id) v = (v << 5) | static_cast<std::uint64_t>(digit_value(c));
    std::uint64_t prev = last_.load(std::memory_order_relaxed);
    while (v > prev && !last_.compare_exchange_weak(prev, v, std::memory_order_relaxed)) {
    }
}

bool is_queue_id(std::string_view s) {
    if (s.size() != id_length) return false;
    for (char c : s)
        if (digit_value(c) < 0) return false;
    return digit_value(s[0]) < 16;  // 13 x 5 bits = 65: the first digit carries only 4
}

std::string queue_id_floor(std::uint64_t unix_micros) { return encode(unix_micros << 12); }

std::uint64_t queue_id_micros(std::string_view id) {
    std::uint64_t v = 0;
    for (char c : id) v = (v << 5) | static_cast<std::uint64_t>(digit_value(c));
    return v >> 12;
}

}  // namespace ricochet::queue
