// sequencer — see sequencer.hpp.
#include "events/sequencer.hpp"

#include "base/unique_fd.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>

namespace ricochet::events {
namespace {
using base::last_error;

// The file's two fields: "INSTANCE NEXT\n".
bool read_file(int fd, std::string& instance, std::uint64_t& next) {
    char buf[128] = {};
    auto n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return false;
    char name[64] = {};
    unsigned long long v = 0;
    if (std::sscanf(buf, "%63s %llu", name, &v) != 2) return false;
    instance = name;
    next = v;
    return true;
}

std::string random_instance() {
    std::random_device rd;
    static const char hex[] = "0123456789abcdef";
    std::string s;
    for (int i = 0; i < 4; ++i) {
        auto b = rd();
        for (int k = 0; k < 4; ++k) s += hex[(b >> (k * 4)) & 15];
    }
    return s;
}
}  // namespace

std::error_code sequencer::open(const std::filesystem::path& file) {
    std::lock_guard lk(mu_);
    file_ = file;
    next_ = limit_ = 0;
    return reserve();
}

// Moves the file ahead by a block under flock, and fsyncs it before any
// number of the block is handed out.
std::error_code sequencer::reserve() {
    base::unique_fd file(::open(file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!file) return last_error();
    int fd = file.get();
    std::error_code ec;
    if (::flock(fd, LOCK_EX) != 0) return last_error();  // released with the descriptor
    std::string inst;
    std::uint64_t on_disk = 1;
    struct stat st {};
    bool existed = ::fstat(fd, &st) == 0 && st.st_size > 0;
    if (!read_file(fd, inst, on_disk)) {
        inst = instance_.empty() ? random_instance() : instance_;
        // A file that is there but unreadable (a disk fault): numbers below
        // the clock in microseconds were never handed out at this rate, so
        // starting there cannot reuse one.
        on_disk = existed ? static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::system_clock::now().time_since_epoch()).count())
                          : 1;
    }
    std::uint64_t start = std::max(on_disk, next_);
    // Fixed width, written in place: one short write within a sector, never
    // a moment where the file is empty (as truncate-then-write would have).
    char line[64];
    int len = std::snprintf(line, sizeof line, "%-16.16s %020llu\n", inst.c_str(),
                            static_cast<unsigned long long>(start + block));
    if (::pwrite(fd, line, static_cast<std::size_t>(len), 0) != len || ::fsync(fd) != 0) ec = last_error();
    // A new file: its name must survive a crash too, or numbering would
    // start again at 1.
    if (!ec && !existed) ec = base::fsync_dir(file_.parent_path());
    if (ec) return ec;
    instance_ = inst;
    next_ = start;
    limit_ = start + block;
    return {};
}

std::error_code sequencer::continue_after(std::uint64_t n) {
    std::lock_guard lk(mu_);
    if (n < next_) return {};
    next_ = n + 1;
    limit_ = 0;
    return file_.empty() ? std::error_code() : reserve();
}

std::uint64_t sequencer::next(std::error_code& ec) {
    std::lock_guard lk(mu_);
    ec.clear();
    if (next_ >= limit_) {
        if (file_.empty()) return 0;
        if ((ec = reserve())) return 0;
    }
    return next_++;
}

}  // namespace ricochet::events
