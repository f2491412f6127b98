// commit_journal — the spool's write-ahead journal (spool_dir/journal).
//
// A group commit can make its messages durable in one of two ways: a
// syncfs() of the spool's file system (their files, data and names), or an
// append of the whole queue files to this journal and one fdatasync() of it.
// The journal is a file of fixed size whose blocks were all written once
// when it was made, so an fdatasync() of an append changes no metadata: it
// is the disk's write and flush alone, without the file system's journal
// commit (queue/README.md has the figures). The files themselves reach the
// disk later, at a checkpoint: a syncfs() every 200 ms on a thread of its
// own, after which the records it covers are never read again.
//
// Layout: two header slots (blocks 0 and 1) then records from block 2 on.
// A header names the last record a checkpoint covered (its sequence number,
// where the next one starts, and the lap); the slot with the higher write
// count whose CRC matches wins, and the next header goes into the other
// slot, so a torn header write leaves the one in force.
// A record: magic, CRC-32, the lap's nonce, sequence number, length, then
// each message's id and queue file; each record starts on a 4 KiB block of
// its own, so appending one never rewrites a block of an acknowledged one. Records are appended in sequence; when the next one does
// not fit before the end, the spool syncs everything (a checkpoint) and the
// journal starts over at block 2 in a new lap.
//
// At start (spool::try_lock / recover) the records after the checkpoint are
// read in sequence until one is missing, torn or out of sequence: those are
// commits whose clients may have had their 250 while their files may not
// be on disk. Plain POSIX and zlib: no Asio.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace ricochet::queue {

class commit_journal {
public:
    static constexpr std::uint64_t default_size = 64ULL << 20;
    static constexpr std::uint64_t data_start = 8192;

    // Opens dir/name; when create is true, makes it (zero-filled, size
    // bytes, synced) when it is missing. A file that is not a whole journal
    // (no header slot that checks) is never used: with create it is renamed
    // to name.bad.TIME and a new one made, and ec says so
    // (errc::illegal_byte_sequence) beside the result; without, the result
    // is null. A missing file without create: null, ec clear. A read error:
    // null, ec set, the file left alone.
    static std::unique_ptr<commit_journal> open(int dirfd, const char* name, bool create, std::uint64_t size,
                                                std::error_code& ec);
    ~commit_journal();
    commit_journal(const commit_journal&) = delete;
    commit_journal& operator=(const commit_journal&) = delete;

    // One message of a record: its id and its queue file in up to three pieces.
    struct entry {
        std::string_view id;
        std::string_view parts[3];
    };
    // Appends one record holding every entry and fdatasyncs it. errc::no_buffer_space:
    // it does not fit before the end (the caller syncs and calls restart()).
    std::error_code append(const std::vector<entry>& entries);

    // Where the journal stands: everything appended up to here is covered
    // once a syncfs() that began after mark() returned has returned.
    struct position {
        std::uint64_t lap = 0, seq = 0, off = data_start, nonce = 0;
    };
    position mark() const;
    // Records that `p` is covered (header write + fdatasync). A position not
    // newer than the last one recorded is ignored (checkpoints may race).
    // After a failed append, a position at the head (nothing appended since
    // it) starts a new lap instead, past the failed record (restart()).
    std::error_code checkpoint(position p);
    // After a syncfs that covered everything appended: a new lap from block 2.
    std::error_code restart();
    // True when records were appended since the last checkpoint, or an
    // append failed (its record may be whole on disk: the next checkpoint
    // is a new lap).
    bool dirty() const;

    // The records after the last checkpoint, in order, while they are whole,
    // of this lap and in sequence: fn(id, file) for each message. Returns
    // how many records were read. Appends are refused from then on
    // (errc::operation_not_permitted) until a restart(): whole records of
    // this lap may lie after the one that ended the read (a block the disk
    // lost or a hand changed), and an append that ended up before one of
    // them would make it read as the next.
    std::size_t replay(const std::function<void(std::string_view id, std::string_view file)>& fn, std::error_code& ec);

private:
    commit_journal() = default;
    std::error_code write_header(const position& p);

    int fd_ = -1;
    std::uint64_t size_ = 0;
    mutable std::mutex mu_;
    position head_;            // next append: seq head_.seq + 1 at head_.off
    position checkpointed_;    // the last position a header recorded
    std::uint64_t header_writes_ = 0;
    unsigned slot_ = 1;        // the header slot in force (0 or 1); the next goes into the other
    bool failed_ = false;      // an append failed: the next checkpoint is a new lap (mu_)
    bool replayed_ = false;    // read back and not restarted since: no appends (mu_)
    std::mutex header_mu_;
    std::string buf_;          // the record being appended (committer only)
};

}  // namespace ricochet::queue
