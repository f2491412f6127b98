// log_reader — reads the JSON-lines event log back from a cursor: the source
// of `GET /v1/events?after=SEQ` and of every webhook's batches. The log is
// written in seq order, so the first event after a cursor is found by a
// binary search over byte offsets (a few reads in a log of gigabytes), and
// read on from there in large chunks. Lines are returned as written: no
// event is parsed into JSON and written again on the way out.
//
// Only numbered lines count (an event written while the sequence file could
// not move has seq 0: it cannot be named by a cursor and is skipped). A
// torn last line (the daemon is writing it) is left for the next read.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace ricochet::events {

struct log_batch {
    std::vector<std::string> lines;  // whole JSON objects, without the newline
    std::uint64_t last_seq = 0;      // the highest seq read, kept or filtered out (a cursor may move past it)
    bool more = false;               // stopped at `limit` or at the scan budget, not at the end of the log
};

struct log_query {
    std::uint64_t after = 0;  // events with seq > after
    std::size_t limit = 100;  // at most this many lines kept
    // Which types to keep (nullptr: all); filtered-out lines still move last_seq.
    std::function<bool(std::string_view type)> keep;
    std::uint64_t max_scan_bytes = 64u << 20;  // per call, so one read never scans a whole year
};

log_batch read_log(const std::filesystem::path& path, const log_query& q, std::error_code& ec);

// The same over the log and its rotated segments, oldest first: PATH.N.gz
// ... PATH.2.gz, PATH.1 (logrotate's "compress" + "delaycompress" names,
// which ricochetd's own rotation uses too; a segment may also be plain or
// compressed under either name). A reader (a webhook) whose cursor is
// behind finds events written before any number of rotations, as long as
// their segment is kept. Each call answers from one segment: the first that
// has events after the cursor; the next call goes on from its last_seq.
log_batch read_log_rotated(const std::filesystem::path& path, const log_query& q, std::error_code& ec);

// The seq and type of one log line, read without a JSON parser (the writer
// puts "seq" first and "type" before any free text). 0 / "" when absent.
std::uint64_t line_seq(std::string_view line);
std::string_view line_type(std::string_view line);

// The highest seq in the log (0 when empty): where a new webhook starts.
std::uint64_t last_seq_in_log(const std::filesystem::path& path, std::error_code& ec);
// The same over the rotated segments: the current file just after a
// rotation is empty, and the last event is in PATH.1.
std::uint64_t last_seq_in_logs(const std::filesystem::path& path, std::error_code& ec);

}  // namespace ricochet::events
