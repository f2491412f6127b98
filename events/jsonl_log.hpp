// jsonl_log — the append-only JSON-lines event log a campaign system tails
// (server.events_log, default var/events.jsonl): one object per line, in
// seq order. Each batch is one write(2) on an O_APPEND descriptor, so lines
// from the daemon and from ricochetctl never interleave. The log is not
// fsync'd: it reports decisions, the spool and the state store are what
// must survive a crash.
//
// Rotation, two ways. logrotate renames the file and sends SIGHUP, and
// open() is called again (etc/logrotate.d/ricochet). Or the log rotates
// itself when the current file would pass max_size or is older than
// max_age: between two batches (a batch goes whole to one file, so nothing
// is lost or written twice) PATH becomes PATH.1, the previous PATH.1
// becomes PATH.2 and is gzip'd to PATH.2.gz on a thread of its own, and so
// on up to PATH.<keep>.gz; older segments are deleted. These are
// logrotate's "compress" + "delaycompress" names, which the readers
// (log_reader.hpp) follow for GET /v1/events and the webhooks.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "base/unique_fd.hpp"
#include "events/sink.hpp"

namespace ricochet::events {

struct log_rotation {
    std::uint64_t max_size = 0;            // bytes; 0: never by size
    std::chrono::seconds max_age{0};       // 0: never by age
    unsigned keep = 14;                    // rotated segments kept (PATH.1 ... PATH.<keep>.gz)
};

class jsonl_log final : public sink {
public:
    jsonl_log() = default;
    ~jsonl_log() override;
    jsonl_log(const jsonl_log&) = delete;
    jsonl_log& operator=(const jsonl_log&) = delete;

    // Opens (again, after a SIGHUP) PATH for appending.
    std::error_code open(const std::filesystem::path& path, log_rotation rotation = {});
    void write(const std::vector<event>& evs) override;

    // Rotates now if the current file is not empty (tests, and a size or
    // age limit reached). False with a log line when a rename failed: the
    // log then goes on in the same file.
    bool rotate();
    // Waits for a compression still running (tests; the destructor).
    void wait_for_compression();

private:
    bool due(std::size_t next_batch) const;
    bool rotate_locked();

    std::mutex mu_;
    base::unique_fd fd_;
    std::filesystem::path path_;
    log_rotation rotation_;
    std::uint64_t size_ = 0;
    std::chrono::system_clock::time_point born_{};  // when the current file got its first line
    std::thread compressor_;
    // What a failed write (EIO, a full disk) left unwritten, from where it
    // stopped, even mid-line: written first by the next write, so a
    // transient fault loses no line and tears none. Beyond max_pending the
    // oldest lines go (counted in the log).
    static constexpr std::size_t max_pending = 64 << 20;
    std::string pending_;
    std::uint64_t lines_dropped_ = 0, dropped_before_ = 0;
    bool failing_ = false;
    bool torn_ = false;  // the file ends inside a line (a write stopped half-way)
    void write_locked(std::string buf);
};

// gzip's SRC into SRC.gz (through a temporary, synced, then renamed) and
// removes SRC. False, leaving SRC, when it cannot.
bool gzip_file(const std::filesystem::path& src);

}  // namespace ricochet::events
