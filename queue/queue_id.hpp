// queue_id — unique, sortable queue ids for the spool.
//
// An id is 13 characters of Crockford base32 (no I, L, O, U) encoding
// (microseconds since the epoch << 12 | sequence). Ids sort by arrival time
// as plain strings, are safe as file names, and are unique within a process
// because the generator is strictly increasing even when the clock stands
// still or steps back. Across restarts the clock has moved on; the spool
// still creates each file with O_EXCL, so a collision can never overwrite.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace ricochet::queue {

class queue_id_generator {
public:
    // Next id; thread-safe and lock-free.
    std::string next();
    // Same, with an explicit clock reading (tests).
    std::string next_at(std::uint64_t unix_micros);
    // Every later id sorts after `id` (recovery feeds it every id in the spool).
    void advance_past(std::string_view id);
    // Several nodes sharing one state store (state/pg_storage.hpp): the low
    // 6 bits of every id are the node's number (1-63) and the sequence
    // keeps the 6 above them, so two nodes never make the same id even in
    // the same microsecond. 0 (one node): the 12 bits are all sequence.
    void set_node(unsigned node) { node_.store(node & 63u); }

private:
    std::atomic<std::uint64_t> last_{0};
    std::atomic<unsigned> node_{0};
};

// True when s has the shape of an id (13 base32 characters). Everything that
// takes an id from outside (ricochetctl, the control socket) checks this
// first, so an id can never name a path outside the spool.
bool is_queue_id(std::string_view s);

// The smallest id of that microsecond: every id of a message that arrived
// earlier sorts before it (retention deletes by it).
std::string queue_id_floor(std::uint64_t unix_micros);

// Arrival time (microseconds since the epoch) encoded in a valid id.
std::uint64_t queue_id_micros(std::string_view id);

}  // namespace ricochet::queue
