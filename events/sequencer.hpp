// sequencer — gives every event its `seq` (64-bit, strictly increasing,
// never reused across restarts) and `id` ("<instance>-<seq>", unique across
// nodes that share a database or a webhook receiver).
//
// seq is not written per event: the file (spool_dir/events.seq: the
// instance name and the first number not yet handed out) is moved ahead by
// a block at a time and fsync'd before any number of the block is used, so
// after a crash or a restart numbering continues above anything used (with
// a gap, as a database sequence's cache leaves). The file is flock'ed while
// it is moved, so ricochetctl (which writes events only while the daemon is
// stopped) and the daemon never hand out the same block.
#pragma once
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>

namespace ricochet::events {

class sequencer {
public:
    static constexpr std::uint64_t block = 65536;

    // Reads (or creates, with a random instance name) the file.
    std::error_code open(const std::filesystem::path& file);
    // The next number; 0 only when the file cannot be moved ahead (then the
    // event is still written, without a seq: the error is logged by the caller).
    std::uint64_t next(std::error_code& ec);
    const std::string& instance() const { return instance_; }
    // Numbering continues above n from now on (the file moved and synced):
    // a shared store holds events of this node numbered up to n.
    std::error_code continue_after(std::uint64_t n);

private:
    std::error_code reserve();

    std::mutex mu_;
    std::filesystem::path file_;
    std::string instance_;
    std::uint64_t next_ = 0, limit_ = 0;  // [next_, limit_) is ours
};

}  // namespace ricochet::events
