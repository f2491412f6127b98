// unique_fd — a file descriptor that closes itself, and the few file
// operations the disk-writing parts share (events, the decision journal,
// the bounce intake's kept messages, the VERP secret): a write that handles
// EINTR and short writes, and the directory fsync that makes a new name
// survive a crash. Header-only, POSIX.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <utility>

namespace ricochet::base {

class unique_fd {
public:
    explicit unique_fd(int fd = -1) noexcept : fd_(fd) {}
    ~unique_fd() { reset(); }
    unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
    unique_fd& operator=(unique_fd&& o) noexcept {
        if (this != &o) reset(std::exchange(o.fd_, -1));
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;

    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    void reset(int fd = -1) noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

private:
    int fd_;
};

inline std::error_code last_error() { return {errno, std::generic_category()}; }

// Writes all of data (retrying on EINTR and after short writes).
inline std::error_code write_all(int fd, std::string_view data) {
    std::size_t off = 0;
    while (off < data.size()) {
        auto n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return last_error();
        if (n == 0) return std::make_error_code(std::errc::io_error);
        off += static_cast<std::size_t>(n);
    }
    return {};
}

// Makes the names in dir durable (a new or renamed file survives a crash).
inline std::error_code fsync_dir(const std::filesystem::path& dir) {
    unique_fd d(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!d) return last_error();
    return ::fsync(d.get()) == 0 ? std::error_code() : last_error();
}

// Replaces path's contents durably: written to path.tmp (mode), synced,
// renamed over path, and the directory synced. A crash leaves the old
// contents or the new, never a mix.
inline std::error_code replace_file(const std::filesystem::path& path, std::string_view data, mode_t mode = 0600) {
    auto tmp = path;
    tmp += ".tmp";
    unique_fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd) return last_error();
    if (auto ec = write_all(fd.get(), data)) return ec;
    if (::fsync(fd.get()) != 0) return last_error();
    fd.reset();
    if (::rename(tmp.c_str(), path.c_str()) != 0) return last_error();
    return fsync_dir(path.parent_path());
}

}  // namespace ricochet::base
