// decision_journal — see decision_journal.hpp.
#include "state/decision_journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include "events/event_json.hpp"

namespace ricochet::state {
using nlohmann::json;

namespace {
std::error_code last_error() { return {errno, std::generic_category()}; }
}  // namespace

bool decision_journal::empty() const {
    std::error_code ec;
    return std::filesystem::file_size(file_, ec) == 0 || ec;
}

std::size_t decision_journal::size() const {
    std::error_code ec;
    return load(ec).size();
}

std::error_code decision_journal::append(const std::vector<events::event>& ds) {
    if (ds.empty()) return {};
    std::string buf;
    for (auto& d : ds) {
        events::append_json_line(buf, d, true);
    }
    int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return last_error();
    std::error_code ec;
    std::size_t off = 0;
    while (off < buf.size()) {
        auto n = ::write(fd, buf.data() + off, buf.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            ec = last_error();
            break;
        }
        off += static_cast<std::size_t>(n);
    }
    if (!ec && ::fsync(fd) != 0) ec = last_error();
    ::close(fd);
    return ec;
}

std::vector<events::event> decision_journal::load(std::error_code& ec) const {
    ec.clear();
    std::vector<events::event> out;
    std::ifstream in(file_);
    if (!in) return out;
    for (std::string line; std::getline(in, line);) {
        auto j = json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object()) continue;  // torn by a crash mid-write
        // A journal from before events had their own form: "qid", "rcpt".
        if (!j.contains("queue_id") && j.contains("qid")) j["queue_id"] = j["qid"];
        if (!j.contains("recipient") && j.contains("rcpt")) j["recipient"] = j["rcpt"];
        auto d = events::from_json(j);
        if (!d) continue;
        out.push_back(std::move(*d));
    }
    return out;
}

std::error_code decision_journal::clear() {
    int fd = ::open(file_.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? std::error_code() : last_error();
    std::error_code ec;
    if (::ftruncate(fd, 0) != 0 || ::fsync(fd) != 0) ec = last_error();  // not replayed twice after a crash
    ::close(fd);
    return ec;
}

}  // namespace ricochet::state
