// jsonl_log — see jsonl_log.hpp.
#include "events/jsonl_log.hpp"

#include <fcntl.h>

#include <algorithm>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "events/event_json.hpp"

namespace ricochet::events {
namespace fs = std::filesystem;

namespace {

fs::path numbered(const fs::path& path, unsigned k, bool gz) {
    auto p = path;
    p += "." + std::to_string(k) + (gz ? ".gz" : "");
    return p;
}

// When the file got its first line: its birth time where the file system
// keeps one, else its last change; now for an empty file.
std::chrono::system_clock::time_point born_of(int fd, std::uint64_t size) {
    if (size == 0) return std::chrono::system_clock::now();
    struct statx sx {};
    if (::statx(fd, "", AT_EMPTY_PATH, STATX_BTIME, &sx) == 0 && (sx.stx_mask & STATX_BTIME))
        return std::chrono::system_clock::time_point(std::chrono::seconds(sx.stx_btime.tv_sec));
    struct stat st {};
    if (::fstat(fd, &st) == 0) return std::chrono::system_clock::time_point(std::chrono::seconds(st.st_mtime));
    return std::chrono::system_clock::now();
}

}  // namespace

bool gzip_file(const fs::path& src) {
    base::unique_fd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return false;
    auto tmp = src;
    tmp += ".gz.tmp";
    base::unique_fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640));
    if (!out) return false;
    gzFile gz = gzdopen(::dup(out.get()), "wb6");
    if (!gz) return false;
    std::vector<char> buf(1 << 17);
    bool ok = true;
    for (;;) {
        ssize_t n = ::read(in.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { ok = false; break; }
        if (n == 0) break;
        if (gzwrite(gz, buf.data(), static_cast<unsigned>(n)) != static_cast<int>(n)) { ok = false; break; }
    }
    ok = gzclose(gz) == Z_OK && ok;
    ok = ok && ::fsync(out.get()) == 0;
    auto dst = src;
    dst += ".gz";
    std::error_code ec;
    if (ok) fs::rename(tmp, dst, ec);
    if (!ok || ec) {
        fs::remove(tmp, ec);
        return false;
    }
    fs::remove(src, ec);  // the compressed copy is in place: the plain one may go
    return true;
}

jsonl_log::~jsonl_log() {
    {
        std::lock_guard lk(mu_);
        if (fd_ && !pending_.empty()) write_locked({});  // a last try
        if (!pending_.empty())
            spdlog::error("events log {}: {} octet(s) of event lines not written at stop", path_.string(), pending_.size());
    }
    wait_for_compression();
}

void jsonl_log::wait_for_compression() {
    if (compressor_.joinable()) compressor_.join();
}

std::error_code jsonl_log::open(const fs::path& path, log_rotation rotation) {
    std::error_code ec;
    if (path.has_parent_path()) fs::create_directories(path.parent_path(), ec);
    base::unique_fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    if (!fd) return base::last_error();
    struct stat st {};
    std::uint64_t size = ::fstat(fd.get(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    std::lock_guard lk(mu_);
    if (fd_ && !pending_.empty()) {
        write_locked({});  // the old file's torn line is finished there, if it can be
        if (torn_) {       // else its rest is dropped: the new file starts with whole lines
            auto nl = pending_.find('\n');
            pending_.erase(0, nl == std::string::npos ? pending_.size() : nl + 1);
            ++lines_dropped_;
            torn_ = false;
        }
    }
    born_ = born_of(fd.get(), size);
    size_ = size;
    path_ = path;
    rotation_ = rotation;
    fd_ = std::move(fd);  // the old one (SIGHUP after a rename) is closed here
    return {};
}

bool jsonl_log::due(std::size_t next_batch) const {
    if (size_ == 0) return false;  // an empty file is never rotated
    if (rotation_.max_size && size_ + next_batch > rotation_.max_size) return true;
    return rotation_.max_age.count() > 0 && std::chrono::system_clock::now() - born_ >= rotation_.max_age;
}

void jsonl_log::write(const std::vector<event>& evs) {
    if (evs.empty()) return;
    std::string buf;
    for (auto& e : evs) append_json_line(buf, e);
    std::lock_guard lk(mu_);
    if (!fd_) return;
    write_locked(std::move(buf));
}

void jsonl_log::write_locked(std::string buf) {
    if (!pending_.empty()) {
        buf.insert(0, pending_);
        pending_.clear();
    } else if (due(buf.size())) {
        rotate_locked();  // never between the two halves of a torn line
    }
    if (size_ == 0) born_ = std::chrono::system_clock::now();
    std::size_t off = 0;
    int err = 0;
    while (off < buf.size()) {
        auto n = ::write(fd_.get(), buf.data() + off, buf.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            err = n < 0 ? errno : EIO;
            break;
        }
        off += static_cast<std::size_t>(n);
    }
    size_ += off;
    if (off > 0) torn_ = buf[off - 1] != '\n';
    if (!err) {
        if (failing_) {
            auto lost = lines_dropped_ - dropped_before_;
            if (lost) spdlog::warn("events log {}: written again; {} line(s) lost meanwhile", path_.string(), lost);
            else spdlog::info("events log {}: written again, nothing lost", path_.string());
        }
        failing_ = false;
        return;
    }
    if (!failing_) dropped_before_ = lines_dropped_;
    pending_ = buf.substr(off);
    if (pending_.size() > max_pending) {
        // Whole lines after the first (which may be a torn line's rest,
        // and must stay first), up to the limit.
        std::size_t first = pending_.find('\n') + 1;
        std::size_t cut = pending_.find('\n', pending_.size() - max_pending);
        cut = cut == std::string::npos ? pending_.size() : cut + 1;
        if (cut > first) {
            lines_dropped_ += static_cast<std::uint64_t>(std::count(pending_.begin() + first, pending_.begin() + cut, '\n'));
            pending_.erase(first, cut - first);
        }
        spdlog::error("events log {}: {} line(s) dropped in all: {} MiB not written", path_.string(), lines_dropped_,
                      max_pending >> 20);
    }
    if (!failing_)
        spdlog::error("events log {}: cannot write: {}; the lines are kept and written with the next ones",
                      path_.string(), std::error_code(err, std::generic_category()).message());
    failing_ = true;
}

bool jsonl_log::rotate() {
    std::lock_guard lk(mu_);
    if (!fd_ || size_ == 0 || !pending_.empty()) return false;  // never between the halves of a torn line
    return rotate_locked();
}

bool jsonl_log::rotate_locked() {
    // The previous compression must be done before names move under it.
    wait_for_compression();
    std::error_code ec;
    auto fail = [&](const fs::path& from, const fs::path& to) {
        spdlog::error("events log rotation: cannot rename {} to {}: {}", from.string(), to.string(), ec.message());
        return false;
    };
    unsigned keep = std::max(1u, rotation_.keep);
    // The oldest goes; then each moves up one: PATH.k(.gz) -> PATH.k+1(.gz).
    for (bool gz : {true, false}) fs::remove(numbered(path_, keep, gz), ec);
    for (unsigned k = keep - 1; k >= 1; --k) {
        for (bool gz : {true, false}) {
            auto from = numbered(path_, k, gz);
            if (!fs::exists(from, ec)) continue;
            fs::rename(from, numbered(path_, k + 1, gz), ec);
            if (ec) return fail(from, numbered(path_, k + 1, gz));
        }
    }
    fs::rename(path_, numbered(path_, 1, false), ec);
    if (ec) return fail(path_, numbered(path_, 1, false));
    base::unique_fd fd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    if (!fd) {
        spdlog::error("events log rotation: cannot create {}: {}", path_.string(), base::last_error().message());
        // Go on in the renamed file rather than lose lines; the readers find it as PATH.1.
        return false;
    }
    fd_ = std::move(fd);
    size_ = 0;
    born_ = std::chrono::system_clock::now();
    spdlog::info("events log rotated: {} -> {}", path_.string(), numbered(path_, 1, false).string());
    // PATH.2 (the previous PATH.1) is compressed off this thread.
    if (keep >= 2) {
        auto second = numbered(path_, 2, false);
        if (fs::exists(second, ec))
            compressor_ = std::thread([second] {
                if (!gzip_file(second)) spdlog::warn("events log rotation: cannot compress {}", second.string());
            });
    }
    return true;
}

}  // namespace ricochet::events
