// jsonl_log — see jsonl_log.hpp.
#include "events/jsonl_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "events/event_json.hpp"

namespace ricochet::events {

jsonl_log::~jsonl_log() = default;

std::error_code jsonl_log::open(const std::filesystem::path& path) {
    std::error_code ec;
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
    base::unique_fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
    if (!fd) return base::last_error();
    std::lock_guard lk(mu_);
    fd_ = std::move(fd);  // the old one (SIGHUP after a rename) is closed here
    return {};
}

void jsonl_log::write(const std::vector<event>& evs) {
    if (evs.empty()) return;
    std::string buf;
    for (auto& e : evs) append_json_line(buf, e);
    std::lock_guard lk(mu_);
    if (!fd_) return;
    (void)base::write_all(fd_.get(), buf);  // a full disk loses event lines, never mail
}

}  // namespace ricochet::events
