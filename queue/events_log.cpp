// events_log — see events_log.hpp.
#include "queue/events_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

namespace ricochet::queue {

std::string rfc3339_now() {
    auto now = std::chrono::system_clock::now();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[40];
    std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms % 1000));
    return buf;
}

events_log::~events_log() {
    if (fd_ >= 0) ::close(fd_);
}

std::error_code events_log::open(const std::filesystem::path& path) {
    std::error_code ec;
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return {errno, std::generic_category()};
    std::lock_guard lk(mu_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
    return {};
}

void events_log::append(std::vector<nlohmann::json>& events) {
    if (events.empty()) return;
    std::string buf;
    std::string now = rfc3339_now();
    for (auto& e : events) {
        if (!e.contains("time")) e["time"] = now;
        buf += e.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        buf += '\n';
    }
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

void events_log::append(nlohmann::json event) {
    std::vector<nlohmann::json> v;
    v.push_back(std::move(event));
    append(v);
}

}  // namespace ricochet::queue
