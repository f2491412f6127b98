// retention — what is deleted when it is old ([retention] in the
// configuration), shared by the daemon (a batch at a time, between two
// batches of the recorder's) and `ricochetctl state prune` (all at once):
//   - decisions older than retention.decisions: folded into daily totals
//     (stats keep their figures) and deleted, a batch per transaction;
//   - messages (campaign, sender, VERP recipients, counted failures) that
//     arrived before the same time, but never within retention.messages
//     (7 days), since a late DSN may still name them;
//   - files in spool_dir/dsn-unparsed older than retention.dsn_unparsed.
// Recipients' statuses, suppressions and the breaker's counts are kept.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "state/recipient_state.hpp"

namespace ricochet::state {


struct retention_totals {
    std::int64_t decisions = 0, messages = 0, files = 0;
    std::size_t batches = 0;
    bool more = false;   // stopped at max_batches with more to do
    bool busy = false;   // stopped: another node sharing the database prunes now
    std::string error;   // a batch that could not be written (nothing of it was)
};

// Up to max_batches batches of `batch` rows each. id_before: the queue id
// floor of the messages' cut-off (queue::queue_id_floor), empty for none.
retention_totals prune_state(recipient_state& st, std::int64_t before_ms, const std::string& id_before,
                             std::size_t batch, std::size_t max_batches);

// Removes the regular files in dir whose last change is before `before`;
// how many. A missing dir is nothing to do.
std::int64_t prune_files(const std::filesystem::path& dir, std::filesystem::file_time_type before);

}  // namespace ricochet::state
