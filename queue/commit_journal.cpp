// commit_journal — see commit_journal.hpp and queue/README.md.
#include "queue/commit_journal.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <sys/random.h>

#include <cstring>
#include <ctime>

namespace ricochet::queue {
namespace {
std::error_code last_error() { return {errno, std::generic_category()}; }

constexpr std::uint32_t header_magic = 0x52434a48;  // "RCJH"
constexpr std::uint32_t record_magic = 0x52434a52;  // "RCJR"
constexpr std::size_t block = 4096;
// A record: magic, crc (of everything after it), the lap's nonce, seq,
// payload length, count. The nonce (random, new with every lap) keeps an
// earlier lap's bytes, or a message body that mimics a record, from ever
// reading as one of this lap's records.
constexpr std::size_t record_head = 4 + 4 + 8 + 8 + 4 + 4;

std::uint64_t new_nonce() {
    std::uint64_t n = 0;
    if (::getrandom(&n, sizeof n, 0) != static_cast<ssize_t>(sizeof n))
        n = static_cast<std::uint64_t>(::time(nullptr)) * 0x9e3779b97f4a7c15ULL ^ static_cast<std::uint64_t>(::getpid());
    return n;
}
constexpr std::size_t id_len = 13;  // queue ids (queue_id.hpp)

void put32(std::string& b, std::uint32_t v) { b.append(reinterpret_cast<const char*>(&v), 4); }
void put64(std::string& b, std::uint64_t v) { b.append(reinterpret_cast<const char*>(&v), 8); }
std::uint32_t get32(const char* p) { std::uint32_t v; std::memcpy(&v, p, 4); return v; }
std::uint64_t get64(const char* p) { std::uint64_t v; std::memcpy(&v, p, 8); return v; }

std::uint32_t crc(std::uint32_t c, const char* p, std::size_t n) {
    return static_cast<std::uint32_t>(crc32_z(c, reinterpret_cast<const Bytef*>(p), n));
}

std::error_code pwrite_all(int fd, const char* p, std::size_t n, std::uint64_t off) {
    while (n > 0) {
        ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return last_error();
        if (w == 0) return std::make_error_code(std::errc::io_error);
        p += w;
        n -= static_cast<std::size_t>(w);
        off += static_cast<std::uint64_t>(w);
    }
    return {};
}

std::error_code pread_all(int fd, char* p, std::size_t n, std::uint64_t off) {
    while (n > 0) {
        ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return last_error();
        if (r == 0) return std::make_error_code(std::errc::io_error);  // shorter than its size
        p += r;
        n -= static_cast<std::size_t>(r);
        off += static_cast<std::uint64_t>(r);
    }
    return {};
}

// A header slot: magic, crc (of the rest), writes, lap, seq, off, nonce.
std::uint64_t round_up(std::uint64_t off) { return (off + block - 1) / block * block; }

std::string encode_header(std::uint64_t writes, std::uint64_t lap, std::uint64_t seq, std::uint64_t off,
                          std::uint64_t nonce) {
    std::string rest;
    put64(rest, writes);
    put64(rest, lap);
    put64(rest, seq);
    put64(rest, off);
    put64(rest, nonce);
    std::string b;
    put32(b, header_magic);
    put32(b, crc(0, rest.data(), rest.size()));
    b += rest;
    b.resize(block, '\0');
    return b;
}

struct header {
    bool ok = false;
    std::uint64_t writes = 0, lap = 0, seq = 0, off = 0, nonce = 0;
};

header decode_header(const char* p) {
    header h;
    if (get32(p) != header_magic || get32(p + 4) != crc(0, p + 8, 40)) return h;
    h.writes = get64(p + 8);
    if (h.writes >= (1ULL << 62)) return h;  // never written by us: a count that could wrap
    h.lap = get64(p + 16);
    h.seq = get64(p + 24);
    h.off = get64(p + 32);
    h.nonce = get64(p + 40);
    h.ok = true;
    return h;
}
}  // namespace

std::unique_ptr<commit_journal> commit_journal::open(int dirfd, const char* name, bool create, std::uint64_t size,
                                                     std::error_code& ec) {
    ec = {};
    std::unique_ptr<commit_journal> j(new commit_journal());
    j->fd_ = ::openat(dirfd, name, O_RDWR | O_CLOEXEC);
    header best;
    if (j->fd_ >= 0) {
        struct stat st{};
        std::string slots(2 * block, '\0');
        if (::fstat(j->fd_, &st) != 0) ec = last_error();
        else if (static_cast<std::uint64_t>(st.st_size) > data_start) ec = pread_all(j->fd_, slots.data(), slots.size(), 0);
        if (ec) return nullptr;  // unreadable for now: left as it is, for the next start
        auto a = decode_header(slots.data()), b = decode_header(slots.data() + block);
        bool first = a.ok && (!b.ok || a.writes > b.writes);
        best = first ? a : b;
        j->slot_ = first ? 0 : 1;  // the next header goes into the other
        j->size_ = static_cast<std::uint64_t>(st.st_size);
        if (!best.ok || best.off < data_start || best.off > j->size_) {
            // Not a journal of ours, or a damaged one (the two slots are
            // written in turn, so a torn write leaves one whole). Nothing
            // in it can be trusted; it is kept for a human, never written over.
            ::close(j->fd_);
            j->fd_ = -1;
            ec = std::make_error_code(std::errc::illegal_byte_sequence);
            if (!create) return nullptr;
            std::string aside = std::string(name) + ".bad." + std::to_string(::time(nullptr));
            if (::renameat(dirfd, name, dirfd, aside.c_str()) != 0) { ec = last_error(); return nullptr; }
        }
    } else if (errno != ENOENT) {
        ec = last_error();
        return nullptr;
    }
    if (j->fd_ < 0) {
        if (!create) return nullptr;
        // Made under another name, every block written once, synced, then
        // renamed: a journal that exists is whole. The header goes in slot
        // 1, so the first checkpoint (write 2, slot 0) leaves it.
        std::string tmp = std::string(name) + ".new";
        int fd = ::openat(dirfd, tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) { ec = last_error(); return nullptr; }
        std::error_code wec;
        std::string zeros(static_cast<std::size_t>(std::min<std::uint64_t>(size, 1 << 20)), '\0');
        for (std::uint64_t off = 0; off < size && !wec; off += zeros.size())
            wec = pwrite_all(fd, zeros.data(), static_cast<std::size_t>(std::min<std::uint64_t>(zeros.size(), size - off)), off);
        best = {true, 1, 0, 0, data_start, new_nonce()};
        auto h = encode_header(best.writes, best.lap, best.seq, best.off, best.nonce);
        if (!wec) wec = pwrite_all(fd, h.data(), h.size(), block);
        if (!wec && ::fsync(fd) != 0) wec = last_error();
        if (!wec && ::renameat(dirfd, tmp.c_str(), dirfd, name) != 0) wec = last_error();
        if (!wec && ::fsync(dirfd) != 0) wec = last_error();
        if (wec) {
            ::close(fd);
            ::unlinkat(dirfd, tmp.c_str(), 0);
            ec = wec;
            return nullptr;
        }
        j->fd_ = fd;
        j->size_ = size;
        j->slot_ = 1;
    }
    j->header_writes_ = best.writes;
    j->checkpointed_ = {best.lap, best.seq, best.off, best.nonce};
    j->head_ = j->checkpointed_;
    return j;
}

commit_journal::~commit_journal() {
    if (fd_ >= 0) ::close(fd_);
}

std::error_code commit_journal::append(const std::vector<entry>& entries) {
    std::uint64_t payload = 0;
    for (auto& e : entries) {
        payload += id_len + 8;
        for (auto p : e.parts) payload += p.size();
    }
    position at;
    {
        std::lock_guard lk(mu_);
        if (replayed_) return std::make_error_code(std::errc::operation_not_permitted);
        at = head_;
    }
    if (at.off + record_head + payload > size_ || payload > UINT32_MAX)
        return std::make_error_code(std::errc::no_buffer_space);
    std::uint64_t seq = at.seq + 1;
    buf_.clear();
    buf_.reserve(record_head + payload);
    put32(buf_, record_magic);
    put32(buf_, 0);  // the crc, below
    put64(buf_, at.nonce);
    put64(buf_, seq);
    put32(buf_, static_cast<std::uint32_t>(payload));
    put32(buf_, static_cast<std::uint32_t>(entries.size()));
    for (auto& e : entries) {
        if (e.id.size() != id_len) return std::make_error_code(std::errc::invalid_argument);
        buf_ += e.id;
        std::uint64_t n = 0;
        for (auto p : e.parts) n += p.size();
        put64(buf_, n);
        for (auto p : e.parts) buf_ += p;
    }
    std::uint32_t c = crc(0, buf_.data() + 8, buf_.size() - 8);
    std::memcpy(buf_.data() + 4, &c, 4);
    std::error_code ec = pwrite_all(fd_, buf_.data(), buf_.size(), at.off);
    if (!ec && ::fdatasync(fd_) != 0) ec = last_error();
    std::lock_guard lk(mu_);
    if (ec) {
        // The record may still reach the disk whole: the next checkpoint
        // starts a new lap, so it is never read. Until then (a crash before
        // it) its magic is cleared where the write can still take, so its
        // messages, whose clients are told to retry, are not written back.
        static const char none[4] = {};
        (void)pwrite_all(fd_, none, sizeof none, at.off);
        failed_ = true;
        return ec;
    }
    // The next record starts on a block of its own: its write never
    // rewrites the block holding the end of an acknowledged one.
    head_ = {at.lap, seq, round_up(at.off + buf_.size()), at.nonce};
    return {};
}

commit_journal::position commit_journal::mark() const {
    std::lock_guard lk(mu_);
    return head_;
}

bool commit_journal::dirty() const {
    std::lock_guard lk(mu_);
    return failed_ || head_.lap != checkpointed_.lap || head_.seq != checkpointed_.seq;
}

std::error_code commit_journal::write_header(const position& p) {
    // Into the slot not holding the header in force: a write torn by a
    // power loss leaves that one whole.
    auto writes = header_writes_ + 1;
    unsigned slot = 1 - slot_;
    auto h = encode_header(writes, p.lap, p.seq, p.off, p.nonce);
    if (auto ec = pwrite_all(fd_, h.data(), h.size(), slot * block)) return ec;
    if (::fdatasync(fd_) != 0) return last_error();
    header_writes_ = writes;
    slot_ = slot;
    return {};
}

std::error_code commit_journal::checkpoint(position p) {
    {
        // After a failed append nothing more is appended (the spool gives the
        // journal up), and once a sync that began after the last good append
        // returned, a new lap goes past the failed record. A mark taken
        // before that append (the checkpointer's, racing the commit) does
        // not cover it: its record must stay readable, so this is an
        // ordinary checkpoint and the new lap waits for the next one.
        std::unique_lock lk(mu_);
        if (failed_ && p.lap == head_.lap && p.seq == head_.seq) {
            lk.unlock();
            return restart();
        }
    }
    std::lock_guard hl(header_mu_);
    {
        std::lock_guard lk(mu_);
        if (p.lap < checkpointed_.lap || (p.lap == checkpointed_.lap && p.seq <= checkpointed_.seq)) return {};
    }
    if (auto ec = write_header(p)) return ec;
    std::lock_guard lk(mu_);
    checkpointed_ = p;
    return {};
}

std::error_code commit_journal::restart() {
    std::lock_guard hl(header_mu_);
    position p;
    {
        std::lock_guard lk(mu_);
        p = {head_.lap + 1, head_.seq, data_start, new_nonce()};
    }
    if (auto ec = write_header(p)) return ec;
    std::lock_guard lk(mu_);
    checkpointed_ = head_ = p;
    failed_ = false;
    replayed_ = false;
    return {};
}

std::size_t commit_journal::replay(const std::function<void(std::string_view, std::string_view)>& fn,
                                   std::error_code& ec) {
    ec = {};
    position at;
    {
        std::lock_guard lk(mu_);
        at = checkpointed_;
        replayed_ = true;
    }
    std::size_t n = 0;
    std::string rec;
    for (;;) {
        if (at.off + record_head > size_) break;
        char h[record_head];
        if ((ec = pread_all(fd_, h, sizeof h, at.off))) break;
        std::uint64_t len = get32(h + 24);
        if (get32(h) != record_magic || get64(h + 8) != at.nonce || get64(h + 16) != at.seq + 1 ||
            at.off + record_head + len > size_)
            break;
        rec.resize(record_head + len);
        if ((ec = pread_all(fd_, rec.data(), rec.size(), at.off))) break;
        if (get32(rec.data() + 4) != crc(0, rec.data() + 8, rec.size() - 8)) break;  // torn: never acknowledged
        std::uint32_t count = get32(rec.data() + 28);
        std::size_t p = record_head;
        bool whole = true;
        std::vector<std::pair<std::string_view, std::string_view>> files;
        for (std::uint32_t i = 0; i < count; ++i) {
            if (p + id_len + 8 > rec.size()) { whole = false; break; }
            std::string_view id(rec.data() + p, id_len);
            std::uint64_t fl = get64(rec.data() + p + id_len);
            p += id_len + 8;
            if (fl > rec.size() - p) { whole = false; break; }
            files.emplace_back(id, std::string_view(rec.data() + p, static_cast<std::size_t>(fl)));
            p += static_cast<std::size_t>(fl);
        }
        if (!whole) break;  // a CRC that matches a malformed record: not ours
        for (auto& [id, file] : files) fn(id, file);
        at = {at.lap, at.seq + 1, round_up(at.off + rec.size()), at.nonce};
        ++n;
    }
    return n;  // appends wait for restart(), whatever was read
}

}  // namespace ricochet::queue
