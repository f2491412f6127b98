// event_pipeline — what happens to every event the daemon's producers
// publish, where the recorder applies its batches (its own thread, or the
// committer's storing a group commit's rows: events/recorder.hpp), in order:
//   1. decisions that waited in the journal (the store was down) go in first;
//   2. the recipient state records the batch and applies its rules, which
//      may add status_changed events; if the store cannot take the batch,
//      it waits in the journal (spool_dir/decisions.pending) and goes in
//      later, in order: none is lost while the store is down;
//   3. status changes update the in-memory suppression list (RCPT checks);
//   4. the campaign breaker judges the counts the store took (and may add
//      campaign_warned / campaign_paused);
//   5. the bus stamps seq/id and writes to every sink (the log, metrics, webhooks).
// Nothing here runs on an I/O thread or the delivery strand.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "bounce/suppression_list.hpp"
#include "daemon/campaign_breaker.hpp"
#include "events/bus.hpp"
#include "state/decision_journal.hpp"
#include "state/recipient_state.hpp"

namespace ricochet::daemon {

class event_pipeline {
public:
    event_pipeline(state::recipient_state& st, bounce::suppression_list& suppression, state::decision_journal& journal,
                   events::bus& bus)
        : state_(st), suppression_(suppression), journal_(journal), bus_(bus) {}

    // The recorder's apply: an empty batch only retries the journal.
    void apply(std::vector<events::event>& evs);
    // Set before the first event (null: no breaker).
    void set_breaker(campaign_breaker* b) { breaker_ = b; }

private:
    state::recipient_state& state_;
    bounce::suppression_list& suppression_;
    state::decision_journal& journal_;
    events::bus& bus_;
    campaign_breaker* breaker_ = nullptr;
    std::string next_token();  // a batch's token (state::recipient_state::record)
    std::string token_prefix_;
    std::uint64_t token_count_ = 0;
    std::mutex mu_;  // the thread applying the recorder's batch (its own or the committer's), or a publisher's while it stops
};

}  // namespace ricochet::daemon
