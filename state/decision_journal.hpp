// decision_journal — decisions the state store could not take (database
// locked, disk full, unwritable), kept on disk until it can: one JSON line
// per decision (an event, in events/event_json.hpp's internal form) in spool_dir/decisions.pending, fsynced before the caller
// goes on. The daemon replays the file before each new batch and on a timer,
// and empties it once the store has them, so a decision is never lost to a
// store that is down for a while. Plain C++, no Asio.
#pragma once
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "events/event.hpp"

namespace ricochet::state {

class decision_journal {
public:
    explicit decision_journal(std::filesystem::path file) : file_(std::move(file)) {}

    bool empty() const;
    std::size_t size() const;  // decisions waiting
    // Adds decisions at the end, durably, each with the token of the batch
    // it came in ("batch" in its line; none when token is empty).
    std::error_code append(const std::vector<events::event>& ds, const std::string& token = "");
    // Everything waiting, oldest first (a torn last line is skipped); with
    // tokens, each decision's batch token ("" for a line without one).
    std::vector<events::event> load(std::error_code& ec, std::vector<std::string>* tokens = nullptr) const;
    // Forgets everything (after the store took it).
    std::error_code clear();
    const std::filesystem::path& path() const { return file_; }

private:
    std::filesystem::path file_;
};

}  // namespace ricochet::state
