// spool — see spool.hpp and queue/README.md.
#include "queue/spool.hpp"
#include "queue/clock.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <spdlog/spdlog.h>

#include "queue/logger.hpp"

namespace ricochet::queue {
namespace {
std::error_code last_error() { return {errno, std::generic_category()}; }

std::shared_ptr<spdlog::logger> log() {
    static auto l = named_logger("queue");
    return l;
}

// write(2) until done: a short write on a regular file means the disk filled
// up mid-way, which we must see as an error, not as success.
std::error_code write_all(int fd, std::string_view a, std::string_view b) {
    iovec iov[2] = {{const_cast<char*>(a.data()), a.size()}, {const_cast<char*>(b.data()), b.size()}};
    int idx = 0;
    while (idx < 2) {
        if (iov[idx].iov_len == 0) { ++idx; continue; }
        ssize_t n = ::writev(fd, iov + idx, 2 - idx);
        if (n < 0) {
            if (errno == EINTR) continue;
            return last_error();
        }
        if (n == 0) return std::make_error_code(std::errc::no_space_on_device);
        std::size_t left = static_cast<std::size_t>(n);
        while (idx < 2 && left >= iov[idx].iov_len) { left -= iov[idx].iov_len; ++idx; }
        if (idx < 2) {
            iov[idx].iov_base = static_cast<char*>(iov[idx].iov_base) + left;
            iov[idx].iov_len -= left;
        }
    }
    return {};
}

int open_dir(int parent, const char* name, bool create, std::error_code& ec) {
    if (create && ::mkdirat(parent, name, 0700) != 0 && errno != EEXIST) {
        ec = last_error();
        return -1;
    }
    int fd = ::openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) ec = last_error();
    return fd;
}

// Reads the whole file, or only its first `limit` bytes when limit > 0.
std::error_code read_file(int dir, std::string_view name, std::string& out, std::size_t limit) {
    std::string n(name);
    int fd = ::openat(dir, n.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return last_error();
    struct stat st{};
    if (::fstat(fd, &st) != 0) { auto ec = last_error(); ::close(fd); return ec; }
    std::size_t want = static_cast<std::size_t>(st.st_size);
    if (limit > 0 && limit < want) want = limit;
    out.resize(want);
    std::size_t got = 0;
    while (got < want) {
        ssize_t r = ::pread(fd, out.data() + got, want - got, static_cast<off_t>(got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {  // a read error is an error, not a shorter file
            auto ec = last_error();
            ::close(fd);
            return ec;
        }
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    out.resize(got);
    ::close(fd);
    // Files are reused (spool::remove): if the name no longer leads to the
    // file just read, it was finished and may have been written over while
    // we read. The message is gone from here.
    struct stat now{};
    if (::fstatat(dir, n.c_str(), &now, 0) != 0 || now.st_ino != st.st_ino || now.st_dev != st.st_dev)
        return std::make_error_code(std::errc::no_such_file_or_directory);
    return {};
}

bool is_spool_name(const char* n) { return is_queue_id(n); }
}  // namespace

std::string_view to_string(queue_state s) {
    switch (s) {
        case queue_state::active: return "active";
        case queue_state::deferred: return "deferred";
        case queue_state::hold: return "hold";
    }
    return "?";
}

std::optional<queue_state> parse_queue_state(std::string_view s) {
    for (auto st : all_states)
        if (to_string(st) == s) return st;
    return std::nullopt;
}

std::unique_ptr<spool> spool::open(const std::filesystem::path& dir, bool create, std::error_code& ec, bool journal,
                                   std::uint64_t journal_size) {
    std::unique_ptr<spool> sp(new spool());
    sp->dir_ = dir;
    if (create) {
        std::filesystem::create_directories(dir, ec);
        if (ec) return nullptr;
        ::chmod(dir.c_str(), 0700);  // queue files hold other people's mail
    }
    sp->root_fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sp->root_fd_ < 0) { ec = last_error(); return nullptr; }
    sp->incoming_fd_ = open_dir(sp->root_fd_, "incoming", create, ec);
    if (ec) return nullptr;
    sp->corrupt_fd_ = open_dir(sp->root_fd_, "corrupt", create, ec);
    if (ec) return nullptr;
    sp->status_fd_ = open_dir(sp->root_fd_, "status", create, ec);
    if (ec) return nullptr;
    if (create) {
        // Only the daemon (create = true) reuses files; older spools get
        // free/ here. Without it (unable to make it) finished files are
        // simply unlinked.
        std::error_code fec;
        sp->free_fd_ = open_dir(sp->root_fd_, "free", true, fec);
    }
    for (auto s : all_states) {
        sp->state_fd_[static_cast<int>(s)] = open_dir(sp->root_fd_, std::string(to_string(s)).c_str(), create, ec);
        if (ec) return nullptr;
    }
    if (create) ::fsync(sp->root_fd_);
    // The journal is opened once the lock is held (replay_journal()).
    sp->create_ = create;
    sp->journal_wanted_ = journal;
    sp->journal_size_ = journal_size;
    sp->committer_ = std::thread([p = sp.get()] {
        ::pthread_setname_np(::pthread_self(), "committer");
        p->committer_loop();
    });
    if (sp->free_fd_ >= 0)
        sp->reaper_ = std::thread([p = sp.get()] {
            ::pthread_setname_np(::pthread_self(), "reaper");
            p->reaper_loop();
        });
    return sp;
}

spool::~spool() {
    stop();
    for (int fd : {root_fd_, incoming_fd_, corrupt_fd_, status_fd_, lock_fd_, free_fd_, state_fd_[0], state_fd_[1],
                   state_fd_[2]})
        if (fd >= 0) ::close(fd);
}

int spool::dirfd(queue_state s) const { return state_fd_[static_cast<int>(s)]; }

void spool::stop() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (committer_.joinable()) committer_.join();
    {
        std::lock_guard lk(ckpt_mu_);
        ckpt_stop_ = true;
    }
    ckpt_cv_.notify_all();
    if (checkpointer_.joinable()) {
        checkpointer_.join();
        // Everything committed is in its files: the next start replays nothing.
        if (journal_->dirty() && !frozen_) sync_and_cover(false);
    }
    {
        std::lock_guard lk(free_mu_);
        reaper_stop_ = true;
    }
    free_cv_.notify_all();
    if (reaper_.joinable()) reaper_.join();
}

// Unlinks the oldest free files while there are too many, one at a time and
// off every other thread: each unlink may wait on the disk (~1 ms here).
// With a journal, only names a syncfs and journal checkpoint covered: a
// record after the checkpoint whose message's name is gone from free/ would
// bring the finished message back at the next start.
void spool::reaper_loop() {
    std::unique_lock lk(free_mu_);
    for (;;) {
        free_cv_.wait(lk, [&] {
            return reaper_stop_ ||
                   ((!free_.empty() || !names_wait_) && free_.size() + free_dirty_.size() > max_free_.load());
        });
        if (reaper_stop_) return;
        std::string n;
        if (!free_.empty()) {
            n = std::move(free_.front());
            free_.pop_front();
        } else {
            n = std::move(free_dirty_.front());
            free_dirty_.pop_front();
        }
        lk.unlock();
        ::unlinkat(free_fd_, n.c_str(), 0);
        lk.lock();
    }
}

void spool::set_max_free_files(std::size_t n) {
    max_free_.store(n);
    free_cv_.notify_all();
}

bool spool::try_lock(std::error_code& ec) {
    if (lock_fd_ < 0) {
        lock_fd_ = ::openat(root_fd_, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lock_fd_ < 0) { ec = last_error(); return false; }
    }
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) ec = last_error();
        return false;
    }
    replay_journal();
    return true;
}

void spool::submit(envelope env, std::string content, commit_done done) {
    submit(std::move(env), {}, base::unique_fd(), 0, std::move(content), std::move(done));
}

void spool::submit(envelope env, std::string before, base::unique_fd spill, std::uint64_t spill_size,
                   std::string content, commit_done done) {
    env.content_size = before.size() + spill_size + content.size();
    {
        std::lock_guard lk(mu_);
        if (!stopping_) {
            pending p;
            p.env = std::move(env);
            p.content = std::move(content);
            p.done = std::move(done);
            p.before = std::move(before);
            p.spill = std::move(spill);
            p.spill_size = spill_size;
            pending_.push_back(std::move(p));
            cv_.notify_one();
            return;
        }
    }
    done(std::make_error_code(std::errc::operation_canceled));
}

void spool::transaction_closed() {
    if (open_.fetch_sub(1) == 1) {
        // The last open one: the committer may be gathering. The lock orders
        // this with its check of open_, so the wake-up cannot be lost.
        { std::lock_guard lk(mu_); }
        cv_.notify_one();
    }
}

base::unique_fd spool::open_spill(std::error_code& ec) const {
    int fd = ::openat(incoming_fd_, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        // No O_TMPFILE on this file system: a name, unlinked at once.
        static std::atomic<unsigned> n{0};
        auto name = ".spill." + std::to_string(::getpid()) + "." + std::to_string(n.fetch_add(1));
        fd = ::openat(incoming_fd_, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) ::unlinkat(incoming_fd_, name.c_str(), 0);
    }
    ec = fd < 0 ? last_error() : std::error_code();
    return base::unique_fd(fd);
}

namespace {
// Copies the first n octets of in (from offset 0) to out's current offset,
// in the kernel (copy_file_range), or by read/write where it cannot.
std::error_code copy_spill(int in, int out, std::uint64_t n) {
    loff_t off = 0;
    while (static_cast<std::uint64_t>(off) < n) {
        auto want = static_cast<std::size_t>(std::min<std::uint64_t>(n - static_cast<std::uint64_t>(off), 1 << 30));
        ssize_t got = ::copy_file_range(in, &off, out, nullptr, want, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
            char buf[65536];
            while (static_cast<std::uint64_t>(off) < n) {
                auto r = ::pread(in, buf, std::min<std::uint64_t>(sizeof buf, n - static_cast<std::uint64_t>(off)), off);
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) return r < 0 ? last_error() : std::make_error_code(std::errc::io_error);
                if (auto ec = write_all(out, std::string_view(buf, static_cast<std::size_t>(r)), {})) return ec;
                off += r;
            }
            return {};
        }
        if (got < 0) return last_error();
        if (got == 0) return std::make_error_code(std::errc::io_error);  // the spill is shorter than it should be
    }
    return {};
}

std::uint32_t crc_of(std::uint32_t crc, std::string_view s) {
    return static_cast<std::uint32_t>(crc32_z(crc, reinterpret_cast<const Bytef*>(s.data()), s.size()));
}

// Continues crc over the first n octets of fd (a spill file, in the page cache).
std::error_code crc_of_file(int fd, std::uint64_t n, std::uint32_t& crc) {
    char buf[65536];
    std::uint64_t off = 0;
    while (off < n) {
        auto r = ::pread(fd, buf, std::min<std::uint64_t>(sizeof buf, n - off), static_cast<off_t>(off));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return r < 0 ? last_error() : std::make_error_code(std::errc::io_error);
        crc = crc_of(crc, std::string_view(buf, static_cast<std::size_t>(r)));
        off += static_cast<std::uint64_t>(r);
    }
    return {};
}
}  // namespace

void spool::committer_loop() {
    std::vector<pending> batch;
    for (;;) {
        {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [&] { return stopping_ || !pending_.empty(); });
            if (pending_.empty()) return;  // stopping, and nothing left to do
            // Gathering: other sessions are inside a transaction, and a
            // message that misses this batch waits for all of it anyway.
            if (open_.load() > 0 && !stopping_) {
                auto wait = std::chrono::nanoseconds(
                    fixed_gather_ns_.load() >= 0 ? fixed_gather_ns_.load() : std::min<std::int64_t>(last_commit_ns_, 1'000'000));
                cv_.wait_for(lk, wait, [&] { return stopping_ || open_.load() <= 0; });
            }
            batch.swap(pending_);
        }
        auto start = std::chrono::steady_clock::now();
        commit_batch(batch);
        last_commit_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
        if (commit_observer_)
            commit_observer_(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), batch.size());
        batch.clear();
    }
}

// One group commit. The order is what makes a 250 safe:
//  1. write every file into incoming/, with a check line (a CRC-32 of the
//     whole file) in its header block, and rename it into active/ (no sync
//     yet: the page cache is shared, so readers see only whole files);
//  2. one syncfs() makes all of their data and names durable at once;
//  3. the callbacks send the 250s.
// A crash before 2 returns can leave a file in active/ whose data did not all
// reach the disk (its client never got a 250): recovery removes it when it is
// empty or still holds the finished message it was reused from, and moves it
// to corrupt/ when its check does not match. A failure at any step fails the affected messages
// and their files are removed, so nothing half-written stays.
void spool::commit_batch(std::vector<pending>& batch) {
    const int active = dirfd(queue_state::active);
    std::size_t written = 0;
    auto write_one = [&](pending& p, const std::string& head) -> std::error_code {
        // A finished message's file, written over: no blocks are freed or
        // allocated when sizes are alike (campaign mail's are).
        int fd = -1;
        if (auto old = take_free(); !old.empty() &&
            ::renameat2(free_fd_, old.c_str(), incoming_fd_, p.env.id.c_str(), RENAME_NOREPLACE) == 0) {
            fd = ::openat(incoming_fd_, p.env.id.c_str(), O_WRONLY | O_CLOEXEC);
            if (fd < 0) ::unlinkat(incoming_fd_, p.env.id.c_str(), 0);
        }
        bool reused = fd >= 0;
        if (fd < 0) fd = ::openat(incoming_fd_, p.env.id.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) return last_error();
        std::error_code ec;
        if (p.spill) {
            ec = write_all(fd, head, p.before);
            if (!ec) ec = copy_spill(p.spill.get(), fd, p.spill_size);
            if (!ec) ec = write_all(fd, p.content, {});
        } else {
            ec = write_all(fd, head, p.content);
        }
        if (!ec && reused && ::ftruncate(fd, static_cast<off_t>(head.size() + p.env.content_size)) != 0)
            ec = last_error();
        if (::close(fd) != 0 && !ec) ec = last_error();
        // RENAME_NOREPLACE: a new message can never replace a queued one.
        if (!ec && ::renameat2(incoming_fd_, p.env.id.c_str(), active, p.env.id.c_str(), RENAME_NOREPLACE) != 0)
            ec = last_error();
        if (ec) ::unlinkat(incoming_fd_, p.env.id.c_str(), 0);
        return ec;
    };
    for (auto& p : batch) {
        p.env.arrival_ms = now_ms();
        std::uint32_t crc = 0;
        if (p.spill) {
            crc = crc_of(crc, p.before);
            p.ec = crc_of_file(p.spill.get(), p.spill_size, crc);
            if (p.ec) continue;
        }
        crc = crc_of(crc, p.content);
        p.head = encode_envelope(p.env, crc);
        p.ec = write_one(p, p.head);
        // A full disk may be full of finished files kept for reuse: they go
        // first, then the message is tried once more.
        if ((p.ec == std::errc::no_space_on_device || p.ec.value() == EDQUOT) && drop_free_files() > 0)
            p.ec = write_one(p, p.head);
        if (!p.ec) ++written;
    }
    // Durable by one fdatasync of the journal, or else by one syncfs (which
    // also lets the free names renamed before it be written over).
    std::error_code sync_ec;
    if (written > 0 && !journal_batch(batch)) sync_ec = sync_and_cover(false);
    bool synced = written > 0 && !sync_ec;
    if (written > 0 && !synced) {
        // Not known to be on disk; the clients will be told 4xx and retry,
        // so the files must go or the retry would be a duplicate (best
        // effort: a disk that failed the syncfs may fail this too).
        for (auto& p : batch)
            if (!p.ec) { p.ec = sync_ec; ::unlinkat(active, p.env.id.c_str(), 0); }
        ::fsync(active);
    }
    for (auto& p : batch)
        if (p.ec) log()->error("{}: cannot write queue file: {}", p.env.id, p.ec.message());
    if (hook_) {
        std::vector<const envelope*> ok;
        for (auto& p : batch)
            if (!p.ec) ok.push_back(&p.env);
        if (!ok.empty()) hook_(ok);
    }
    for (auto& p : batch) p.done(p.ec);
}

// Appends the batch's written messages to the journal (one record, one
// fdatasync). False when the batch must be synced instead: no journal, a
// message received in pieces (its spill file is not copied into the
// journal), or the journal failing (it is then given up until a restart:
// a disk that fails a write will fail the next).
bool spool::journal_batch(std::vector<pending>& batch) {
    if (!journaling()) return false;
    // A commit of big messages is synced instead: their second write costs
    // more than the sync saves (100 KiB messages at 50 connections: 0.96x
    // relayed, 1.04x CPU per message with the journal).
    constexpr std::size_t journal_max_batch = 256 * 1024;
    std::vector<commit_journal::entry> entries;
    std::size_t bytes = 0;
    for (auto& p : batch) {
        if (p.ec) continue;
        if (p.spill) return false;
        bytes += p.head.size() + p.content.size();
        if (bytes > journal_max_batch) return false;
        entries.push_back({p.env.id, {p.head, p.content, {}}});
    }
    auto ec = journal_->append(entries);
    if (ec == std::errc::no_buffer_space) {
        // The end of the journal: everything goes to disk, and a new lap
        // starts at its beginning.
        // (A sync that returned makes the batch durable even when the new
        // lap could not be recorded: the journal is frozen then.)
        return !sync_and_cover(true);
    }
    if (ec) {
        // The record may be whole in the page cache even though its sync
        // failed: the journal's next checkpoint is a new lap
        // (commit_journal::append), so it can never be read back.
        log()->error("spool: journal: {}; group commits sync the spool instead until a restart", ec.message());
        journal_on_ = false;
        return false;
    }
    return true;
}

// One syncfs, which makes every file written so far durable, then the
// journal's checkpoint (or a new lap), then the free names renamed before it
// may be written over: their messages' records are behind the checkpoint.
std::error_code spool::sync_and_cover(bool restart_journal) {
    std::lock_guard sl(sync_mu_);
    std::deque<std::string> covered;
    {
        std::lock_guard lk(free_mu_);
        covered.swap(free_dirty_);
    }
    // After the swap: a name in `covered` was finished after its record
    // was appended, so its record is at or before this mark.
    auto mark = journal_ ? journal_->mark() : commit_journal::position{};
    bool dirty = journal_ && journal_->dirty();
    std::error_code ec;
    if (::syncfs(root_fd_) != 0) ec = last_error();
    // A journal that cannot record its checkpoint is frozen: its records
    // stay to be read at the next start, so no finished name may go (the
    // names stay dirty); the files are durable all the same.
    std::error_code jec;
    if (frozen_) jec = std::make_error_code(std::errc::io_error);
    else if (!ec && journal_ && restart_journal) jec = journal_->restart();
    else if (!ec && dirty) jec = journal_->checkpoint(mark);
    if (jec && !frozen_) {
        log()->error("spool: journal checkpoint: {}; the journal is kept as it is until a restart, and group "
                     "commits sync the spool instead", jec.message());
        frozen_ = true;
        journal_on_ = false;
    }
    {
        std::lock_guard lk(free_mu_);
        for (auto& n : covered) {
            if (!ec && !jec) free_.push_back(std::move(n));
            else free_dirty_.push_back(std::move(n));
        }
    }
    free_cv_.notify_one();
    return ec;  // the files are durable once the sync returned, whatever the journal
}

std::error_code spool::checkpoint() { return sync_and_cover(false); }

// Every 200 ms while there is something to cover: the journal's records
// and the names finished meanwhile.
void spool::checkpointer_loop() {
    std::unique_lock lk(ckpt_mu_);
    while (!ckpt_stop_) {
        ckpt_cv_.wait_for(lk, std::chrono::milliseconds(200), [&] { return ckpt_stop_; });
        if (ckpt_stop_ || frozen_) return;  // frozen: nothing it does can be recorded
        if (ckpt_paused_) continue;
        bool names;
        {
            std::lock_guard fl(free_mu_);
            names = !free_dirty_.empty();
        }
        if (!journal_->dirty() && !names) continue;
        lk.unlock();
        sync_and_cover(false);
        lk.lock();
    }
}

std::size_t spool::replay_journal() {
    if (replayed_) return 0;
    replayed_ = true;
    {
        // Appended to only by a daemon that asked for it; read back by
        // whoever takes the lock (an earlier run's, whatever it asked).
        std::error_code jec;
        journal_ = commit_journal::open(root_fd_, "journal", create_ && journal_wanted_, journal_size_, jec);
        if (jec == std::errc::illegal_byte_sequence) {
            log()->error("spool {}: journal: not a whole Ricochet journal; not read{}", dir_.string(),
                         journal_ ? " (set aside as journal.bad.TIME, a new one made)" : "");
        } else if (jec && ::faccessat(root_fd_, "journal", F_OK, 0) != 0) {
            // None could be made (a full disk): nothing to read back.
            log()->error("spool {}: journal: cannot make it: {}; group commits sync the spool", dir_.string(),
                         jec.message());
        } else if (jec) {
            // Unreadable for now: its records may name finished messages,
            // so none of their names may go until a start reads it.
            log()->error("spool {}: journal: {}; not read, kept for the next start; group commits sync the spool",
                         dir_.string(), jec.message());
            frozen_ = true;
            std::lock_guard lk(free_mu_);
            names_wait_ = true;
        }
        if (!journal_) return 0;
    }
    std::size_t restored = 0, skipped_corrupt = 0;
    auto whole = [](const std::string& file, std::string_view id) {
        std::size_t hs = 0;
        auto env = decode_envelope(file, hs);
        return env && env->id == id && file.size() - hs == env->content_size &&
               check_seal(file, *env, hs) != file_seal::broken;
    };
    std::error_code ec;
    bool failed = false;
    auto records = journal_->replay([&](std::string_view id, std::string_view file) {
        if (!is_queue_id(id)) return;
        std::string n(id);
        struct stat st{};
        int where = -1;
        for (auto s : all_states)
            if (::fstatat(dirfd(s), n.c_str(), &st, 0) == 0) { where = dirfd(s); break; }
        bool existed = where >= 0;
        if (existed) {
            std::string now;
            if (!read_file(where, n, now, 0) && whole(now, id)) return;  // on disk as committed
        } else {
            // Finished since (delivered, bounced or deleted: renamed to
            // free/), or set aside for a human: not brought back.
            if (::fstatat(root_fd_, ("free/" + n).c_str(), &st, 0) == 0) return;
            if (::fstatat(corrupt_fd_, n.c_str(), &st, 0) == 0) { ++skipped_corrupt; return; }
            where = dirfd(queue_state::active);
        }
        // Its 250 may have been sent: the file is written back from the
        // record, under its name, where it was (active/ when nowhere).
        const char* tmp = ".replay";
        int fd = ::openat(incoming_fd_, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        std::error_code wec = fd < 0 ? last_error() : write_all(fd, file, {});
        if (fd >= 0 && ::close(fd) != 0 && !wec) wec = last_error();
        // A deferred file's mtime is when it is due: kept.
        if (!wec && existed) {
            timespec times[2] = {st.st_atim, st.st_mtim};
            ::utimensat(incoming_fd_, tmp, times, 0);
        }
        if (!wec && ::renameat(incoming_fd_, tmp, where, n.c_str()) != 0) wec = last_error();
        if (wec) {
            log()->error("{}: cannot write back from the journal: {}", n, wec.message());
            ::unlinkat(incoming_fd_, tmp, 0);
            failed = true;
            return;
        }
        log()->warn("{}: queue file written back from the journal (its commit's files had not all reached the disk)", n);
        ++restored;
    }, ec);
    if (ec) log()->error("spool: journal: reading it: {}", ec.message());
    if (skipped_corrupt) log()->warn("spool: journal: {} message(s) in corrupt/ left there", skipped_corrupt);
    if (records > 0)
        log()->info("spool: journal: {} commit(s) after the last checkpoint read, {} queue file(s) written back", records,
                    restored);
    // The written-back files durable, then a new lap (a new nonce: nothing
    // of this one can be read as a record again). Until both are done the
    // journal stays as it is (frozen): read again at the next start, no
    // finished name written over, commits synced.
    std::error_code jec = ec;
    if (!jec && failed) jec = std::make_error_code(std::errc::io_error);
    if (!jec && ::syncfs(root_fd_) != 0) jec = last_error();
    if (!jec) jec = journal_->restart();
    if (jec || (create_ && journal_wanted_)) {
        std::lock_guard lk(free_mu_);
        names_wait_ = true;  // see reaper_loop
    }
    if (jec) {
        log()->error("spool: journal: kept as it is until the next start ({}); group commits sync the spool",
                     jec.message());
        frozen_ = true;
        return restored;
    }
    if (create_ && journal_wanted_) {
        journal_on_ = true;
        checkpointer_ = std::thread([this] {
            ::pthread_setname_np(::pthread_self(), "checkpointer");
            checkpointer_loop();
        });
    } else {
        journal_.reset();  // read back and empty: not used
    }
    return restored;
}

recovery_report spool::recover() {
    replay_journal();
    recovery_report rep;
    // incoming/: written but never acknowledged.
    int ifd = ::openat(incoming_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (DIR* d = ifd < 0 ? nullptr : ::fdopendir(ifd)) {
        while (auto* e = ::readdir(d)) {
            if (e->d_name[0] == '.') continue;
            ::unlinkat(incoming_fd_, e->d_name, 0);
            ++rep.discarded_incoming;
        }
        ::closedir(d);
    }
    // free/: finished messages' files, ready for reuse (the reaper trims
    // them). One syncfs first: renames from the last run may not be on disk
    // yet, and a name is written over only once its rename is.
    int ffd = free_fd_ < 0 ? -1 : ::openat(free_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ffd >= 0 && ::syncfs(ffd) != 0) {
        ::close(ffd);
        ffd = -1;  // not known to be on disk: not reused (unlinked when reaped)
    }
    if (DIR* d = ffd < 0 ? nullptr : ::fdopendir(ffd)) {
        // A frozen journal's records may name them: kept, never written over.
        std::lock_guard lk(free_mu_);
        auto& into = frozen_ ? free_dirty_ : free_;
        while (auto* e = ::readdir(d))
            if (e->d_name[0] != '.') into.emplace_back(e->d_name);
        ::closedir(d);
        free_cv_.notify_one();
    }
    for (auto& e : list()) {
        // New ids must sort after every id already here, even if the clock
        // stepped back while we were down.
        ids_.advance_past(e.id);
        auto s = e.state;
        if (s != queue_state::active) {
            (s == queue_state::deferred ? rep.deferred : rep.hold)++;
            rep.entries.push_back(std::move(e));
            continue;
        }
        {
            std::string file;
            if (auto ec = read_file(dirfd(s), e.id, file, 0)) {
                // Gone (ENOENT) or unreadable for now (EMFILE, EIO): left in
                // place; only a file that reads but does not decode is quarantined.
                if (ec == std::errc::no_such_file_or_directory) continue;
                log()->error("{}: cannot read queue file in {}/: {}", e.id, to_string(s), ec.message());
                ++rep.active;
                rep.entries.push_back(std::move(e));  // tried again when due
                continue;
            }
            if (file.empty()) {
                // Created and renamed by a commit a crash cut off before its
                // syncfs returned: none of its data reached the disk, and its
                // client never got a 250.
                ::unlinkat(dirfd(s), e.id.c_str(), 0);
                log()->warn("{}: empty queue file in {}/ (its commit was cut off by a crash); removed", e.id, to_string(s));
                ++rep.discarded_incoming;
                continue;
            }
            std::size_t hs = 0;
            auto env = decode_envelope(file, hs);
            auto seal = env ? check_seal(file, *env, hs) : file_seal::broken;
            if (env && env->id != e.id && seal != file_seal::broken) {
                // A finished message's file caught being reused by a crash
                // (its rename to free/ lost, or the new message's data not on
                // disk): the message of that name was finished; the new one
                // was never acknowledged.
                ::unlinkat(dirfd(s), e.id.c_str(), 0);
                log()->warn("{}: queue file in {}/ holds {} (reused by a crash); removed", e.id, to_string(s), env->id);
                continue;
            }
            if (!env || seal == file_seal::broken) {
                // Most likely a commit cut off by a crash with part of its data
                // on disk (never acknowledged); possibly a damaged file. Kept
                // for a human either way.
                ::renameat(dirfd(s), e.id.c_str(), corrupt_fd_, e.id.c_str());
                log()->error("{}: {} queue file in {}/, moved to corrupt/", e.id,
                             env ? "incomplete (its check does not match)" : "unreadable", to_string(s));
                ++rep.corrupt;
                continue;
            }
            ++rep.active;
            rep.entries.push_back(std::move(e));
        }
    }
    ::fsync(incoming_fd_);
    ::fsync(dirfd(queue_state::active));
    ::fsync(corrupt_fd_);
    return rep;
}

std::error_code spool::quarantine(std::string_view id, queue_state s) {
    if (!is_queue_id(id)) return std::make_error_code(std::errc::invalid_argument);
    std::string n(id);
    if (::renameat(dirfd(s), n.c_str(), corrupt_fd_, n.c_str()) != 0) return last_error();
    ::unlinkat(status_fd_, n.c_str(), 0);
    if (::fsync(corrupt_fd_) != 0 || ::fsync(dirfd(s)) != 0) return last_error();
    return {};
}

std::vector<spool_entry> spool::list(std::optional<queue_state> only) const {
    std::vector<spool_entry> out;
    for (auto s : all_states) {
        if (only && *only != s) continue;
        // A descriptor of its own: a dup() would share the read position with
        // concurrent listings.
        int fd = ::openat(dirfd(s), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR* d = fd < 0 ? nullptr : ::fdopendir(fd);
        if (!d) { if (fd >= 0) ::close(fd); continue; }
        while (auto* e = ::readdir(d)) {
            if (!is_spool_name(e->d_name)) continue;
            struct stat st{};
            if (::fstatat(dirfd(s), e->d_name, &st, 0) != 0) continue;  // moved meanwhile
            out.push_back({e->d_name, s, static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000});
        }
        ::closedir(d);
    }
    // A file renamed between two directory reads can show up twice.
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.id < b.id; });
    out.erase(std::unique(out.begin(), out.end(), [](auto& a, auto& b) { return a.id == b.id; }), out.end());
    return out;
}

std::optional<queue_state> spool::locate(std::string_view id) const {
    if (!is_queue_id(id)) return std::nullopt;
    std::string n(id);
    for (auto s : all_states) {
        struct stat st{};
        if (::fstatat(dirfd(s), n.c_str(), &st, 0) == 0) return s;
    }
    return std::nullopt;
}

std::optional<std::int64_t> spool::mtime_ms(std::string_view id, queue_state s) const {
    if (!is_queue_id(id)) return std::nullopt;
    std::string n(id);
    struct stat st{};
    if (::fstatat(dirfd(s), n.c_str(), &st, 0) != 0) return std::nullopt;
    return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
}

std::optional<envelope> spool::read_envelope(std::string_view id, queue_state s) const {
    if (!is_queue_id(id)) return std::nullopt;
    // Header blocks are small; read more only for messages with many recipients.
    for (std::size_t limit = 8192;; limit *= 8) {
        std::string head;
        if (read_file(dirfd(s), id, head, limit)) return std::nullopt;
        std::size_t hs = 0;
        if (auto env = decode_envelope(head, hs)) return env;
        if (head.size() < limit) return std::nullopt;  // whole file read, still bad
    }
}

std::optional<envelope> spool::find_envelope(std::string_view id, queue_state& s) const {
    for (int tries = 0; tries < 3; ++tries) {
        if (auto env = read_envelope(id, s)) {
            if (env->id != id) return std::nullopt;  // a reused file under an old name: not this message
            return env;
        }
        auto now = locate(id);
        if (!now) return std::nullopt;  // gone: delivered or deleted
        s = *now;
    }
    return std::nullopt;
}

std::error_code spool::read_message(std::string_view id, queue_state s, envelope& env, std::string& content) const {
    if (!is_queue_id(id)) return std::make_error_code(std::errc::invalid_argument);
    std::string all;
    if (auto ec = read_file(dirfd(s), id, all, 0)) return ec;
    std::size_t hs = 0;
    auto e = decode_envelope(all, hs);
    // Another id inside: never sent under this one (a reused file; see
    // queue/README.md). Nor is a file whose check line does not match (an
    // operator may have moved it out of active/ before its commit's syncfs,
    // which a power loss then cut off). Treated as a file that does not decode.
    if (!e || all.size() - hs != e->content_size || e->id != id || check_seal(all, *e, hs) == file_seal::broken)
        return std::make_error_code(std::errc::illegal_byte_sequence);
    env = std::move(*e);
    content.assign(all, hs);
    return {};
}

std::error_code spool::move(std::string_view id, queue_state from, queue_state to) {
    if (!is_queue_id(id)) return std::make_error_code(std::errc::invalid_argument);
    if (from == to) return {};
    std::string n(id);
    if (::renameat(dirfd(from), n.c_str(), dirfd(to), n.c_str()) != 0) return last_error();
    if (::fsync(dirfd(to)) != 0 || ::fsync(dirfd(from)) != 0) return last_error();
    return {};
}

std::error_code spool::remove(std::string_view id, queue_state s) {
    if (!is_queue_id(id)) return std::make_error_code(std::errc::invalid_argument);
    std::string n(id);
    {
        // Kept for reuse (see commit_batch). Not synced here: after a crash
        // the name may be back in its state directory and the message is
        // sent again, as with an unlink that did not reach the disk. It is
        // written over only after a later syncfs (free_dirty_). Also after
        // stop() (deliveries finishing during a shutdown): the files are
        // found again at the next start, whose reaper trims free/; and a
        // failed rename still has the unlink below to fall back on.
        std::lock_guard lk(free_mu_);
        if (free_fd_ >= 0 && ::renameat(dirfd(s), n.c_str(), free_fd_, n.c_str()) == 0) {
            ::unlinkat(status_fd_, n.c_str(), 0);
            free_dirty_.push_back(n);
            if (free_.size() + free_dirty_.size() > max_free_.load()) free_cv_.notify_one();
            return {};
        }
    }
    // No name in free/ to keep: with a journal, a record after the last
    // checkpoint would bring the message back at the next start (it is in
    // no directory), so a checkpoint covers it first. (A frozen journal
    // cannot record one: it is read back at the next start, and such a
    // message may be delivered again, as after a lost unlink.)
    bool wait;
    {
        std::lock_guard lk(free_mu_);
        wait = names_wait_;
    }
    if (wait) sync_and_cover(false);
    if (::unlinkat(dirfd(s), n.c_str(), 0) != 0) return last_error();
    ::unlinkat(status_fd_, n.c_str(), 0);  // only once the message is gone
    return {};
}

std::size_t spool::drop_free_files() {
    // With a journal, a name not yet covered by a checkpoint must stay (see
    // reaper_loop): one checkpoint now covers them all.
    bool wait;
    {
        std::lock_guard lk(free_mu_);
        wait = names_wait_;
    }
    if (wait) sync_and_cover(false);
    std::deque<std::string> all, dirty;
    {
        std::lock_guard lk(free_mu_);
        all.swap(free_);
        if (!names_wait_) dirty.swap(free_dirty_);
    }
    for (auto& n : dirty) all.push_back(std::move(n));
    for (auto& n : all) ::unlinkat(free_fd_, n.c_str(), 0);
    if (!all.empty()) log()->warn("spool: disk full; {} finished file(s) kept for reuse deleted", all.size());
    return all.size();
}

std::string spool::take_free() {
    std::lock_guard lk(free_mu_);
    if (free_.empty()) return {};
    std::string n = std::move(free_.back());
    free_.pop_back();
    return n;
}

std::size_t spool::free_files() const {
    std::lock_guard lk(free_mu_);
    return free_.size() + free_dirty_.size();
}

std::error_code spool::defer(std::string_view id, queue_state from, std::int64_t due_ms) {
    if (!is_queue_id(id)) return std::make_error_code(std::errc::invalid_argument);
    std::string n(id);
    timespec times[2];
    times[0].tv_sec = times[1].tv_sec = static_cast<time_t>(due_ms / 1000);
    times[0].tv_nsec = times[1].tv_nsec = static_cast<long>(due_ms % 1000) * 1000000;
    if (::utimensat(dirfd(from), n.c_str(), times, 0) != 0) return last_error();
    if (from == queue_state::deferred) return {};
    return move(id, from, queue_state::deferred);
}

namespace {
// One status line: tab-separated, with tabs and newlines in text replaced.
std::string status_line(std::size_t idx, const recipient_status& r) {
    auto clean = [](std::string v) {
        for (auto& c : v)
            if (c == '\t' || c == '\n' || c == '\r') c = ' ';
        return v;
    };
    return std::to_string(idx) + '\t' + clean(r.status) + '\t' + std::to_string(r.attempts) + '\t' +
           std::to_string(r.last_attempt_ms) + '\t' + std::to_string(r.code) + '\t' + clean(r.enhanced) + '\t' +
           clean(r.stage) + '\t' + clean(r.mx) + '\t' + clean(r.reply) + '\t' + clean(r.kind) + '\t' +
           clean(r.category) + '\t' + clean(r.rule) + '\n';
}
}  // namespace

std::vector<recipient_status> spool::read_status(std::string_view id, std::size_t n, std::error_code& ec) const {
    std::vector<recipient_status> out(n);
    std::string text;
    ec = {};
    if (!is_queue_id(id)) {
        ec = std::make_error_code(std::errc::invalid_argument);
        return out;
    }
    if (auto rec = read_file(status_fd_, id, text, 0)) {
        // No status file: nothing was attempted yet. Any other error must not
        // read as "all pending", or delivered recipients would get it again.
        if (rec != std::errc::no_such_file_or_directory) ec = rec;
        return out;
    }
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto eol = text.find('\n', pos);
        if (eol == std::string::npos) break;  // a torn last line: ignored
        std::string_view line(text.data() + pos, eol - pos);
        pos = eol + 1;
        std::vector<std::string_view> f;
        for (std::size_t s = 0;;) {
            auto tab = line.find('\t', s);
            f.push_back(line.substr(s, tab == std::string_view::npos ? std::string_view::npos : tab - s));
            if (tab == std::string_view::npos) break;
            s = tab + 1;
        }
        if (f.size() != 9 && f.size() != 12) continue;  // 9: written before kind/category/rule existed
        std::size_t idx = 0;
        if (std::from_chars(f[0].data(), f[0].data() + f[0].size(), idx).ec != std::errc() || idx >= n) continue;
        recipient_status r;
        r.status = f[1];
        std::from_chars(f[2].data(), f[2].data() + f[2].size(), r.attempts);
        std::from_chars(f[3].data(), f[3].data() + f[3].size(), r.last_attempt_ms);
        std::from_chars(f[4].data(), f[4].data() + f[4].size(), r.code);
        r.enhanced = f[5];
        r.stage = f[6];
        r.mx = f[7];
        r.reply = f[8];
        if (f.size() == 12) {
            r.kind = f[9];
            r.category = f[10];
            r.rule = f[11];
        }
        out[idx] = std::move(r);
    }
    return out;
}

std::error_code spool::append_status(std::string_view id,
                                     const std::vector<std::pair<std::size_t, recipient_status>>& updates) {
    if (!is_queue_id(id)) return std::make_error_code(std::errc::invalid_argument);
    std::string buf;
    for (auto& [idx, r] : updates) buf += status_line(idx, r);
    std::string n(id);
    int fd = ::openat(status_fd_, n.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);  // read: its last octet
    if (fd < 0) return last_error();
    struct stat st{};
    bool created = ::fstat(fd, &st) == 0 && st.st_size == 0;
    // A write that failed half-way (a full disk) left a torn last line: it
    // goes (cut back to the last whole line), or the next line would be
    // glued onto it, or a line cut inside its last field read as whole.
    if (!created && st.st_size > 0) {
        char tail[4096];
        off_t end = st.st_size, keep = -1;
        while (end > 0 && keep < 0) {
            auto n = std::min<off_t>(end, static_cast<off_t>(sizeof tail));
            if (::pread(fd, tail, static_cast<std::size_t>(n), end - n) != n) break;
            for (off_t i = n; i-- > 0;)
                if (tail[i] == '\n') {
                    keep = end - n + i + 1;
                    break;
                }
            end -= n;
        }
        if (keep < 0 && end == 0) keep = 0;  // not one whole line
        if (keep >= 0 && keep < st.st_size && ::ftruncate(fd, keep) != 0) {
            auto ec = last_error();
            ::close(fd);
            return ec;
        }
    }
    auto ec = write_all(fd, buf, {});
    if (!ec && ::fdatasync(fd) != 0) ec = last_error();
    ::close(fd);
    if (!ec && created && ::fsync(status_fd_) != 0) ec = last_error();  // the new name, too
    return ec;
}

}  // namespace ricochet::queue
