// decision_journal — see decision_journal.hpp.
#include "state/decision_journal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include "base/unique_fd.hpp"
#include "events/event_json.hpp"

namespace ricochet::state {
using nlohmann::json;

using base::last_error;

bool decision_journal::empty() const {
    std::error_code ec;
    return std::filesystem::file_size(file_, ec) == 0 || ec;
}

std::size_t decision_journal::size() const {
    std::error_code ec;
    return load(ec).size();
}

std::error_code decision_journal::append(const std::vector<events::event>& ds, const std::string& token) {
    if (ds.empty()) return {};
    std::string buf;
    for (auto& d : ds) {
        events::append_json_line(buf, d, true);
        if (!token.empty() && buf.size() >= 2 && buf.compare(buf.size() - 2, 2, "}\n") == 0)
            buf.insert(buf.size() - 2, ",\"batch\":" + json(token).dump());
    }
    base::unique_fd fd(::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (!fd) return last_error();
    auto ec = base::write_all(fd.get(), buf);
    if (!ec && ::fsync(fd.get()) != 0) ec = last_error();
    return ec;
}

std::vector<events::event> decision_journal::load(std::error_code& ec, std::vector<std::string>* tokens) const {
    ec.clear();
    std::vector<events::event> out;
    if (tokens) tokens->clear();
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
        if (tokens) tokens->push_back(j.contains("batch") && j["batch"].is_string() ? j["batch"].get<std::string>() : "");
    }
    return out;
}

std::error_code decision_journal::clear() {
    base::unique_fd fd(::open(file_.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return errno == ENOENT ? std::error_code() : last_error();
    if (::ftruncate(fd.get(), 0) != 0 || ::fsync(fd.get()) != 0) return last_error();  // not replayed twice after a crash
    return {};
}

}  // namespace ricochet::state
