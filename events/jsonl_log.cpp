// jsonl_log — see jsonl_log.hpp.
#include "events/jsonl_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "events/event_json.hpp"

namespace ricochet::events {

jsonl_log::~jsonl_log() {
    if (fd_ >= 0) ::close(fd_);
}

std::error_code jsonl_log::open(const std::filesystem::path& path) {
    std::error_code ec;
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return {errno, std::generic_category()};
    std::lock_guard lk(mu_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
    return {};
}

void jsonl_log::write(const std::vector<event>& evs) {
    if (evs.empty()) return;
    std::string buf;
    for (auto& e : evs) append_json_line(buf, e);
    std::lock_guard lk(mu_);
    if (fd_ < 0) return;
    std::size_t off = 0;
    while (off < buf.size()) {
        ssize_t n = ::write(fd_, buf.data() + off, buf.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // a full disk loses event lines, never mail
        off += static_cast<std::size_t>(n);
    }
}

}  // namespace ricochet::events
