// event_pipeline — see event_pipeline.hpp.
#include "daemon/event_pipeline.hpp"

#include <algorithm>
#include <cstdio>
#include <random>

#include "queue/clock.hpp"
#include "queue/logger.hpp"

namespace ricochet::daemon {
using events::event;

// Unique across restarts and nodes: this process's random prefix, then a count.
std::string event_pipeline::next_token() {
    if (token_prefix_.empty()) {
        std::random_device rd;
        char buf[40];
        std::snprintf(buf, sizeof buf, "%08x%08x%08x-", rd(), rd(), rd());
        token_prefix_ = buf;
    }
    return token_prefix_ + std::to_string(++token_count_);
}

void event_pipeline::apply(std::vector<event>& evs) {
    static auto log = named_logger("state");
    std::lock_guard lk(mu_);
    std::vector<event> changes;
    std::vector<breaker::delta> counted, more_counted;
    std::string err;
    if (!journal_.empty()) {
        std::error_code jec;
        std::vector<std::string> tokens;
        auto pending = journal_.load(jec, &tokens);
        // With each batch's token: a batch whose commit went through though
        // the store's answer was lost is left out, not counted twice.
        std::size_t before = 0;  // in batches recorded before (a lost COMMIT answer)
        auto replayed = state_.record(pending, err, &counted, &tokens, &before);
        // The replayed decisions are synced before the journal that held
        // them durably is emptied: a power loss between the two would
        // otherwise lose them (the commit alone waits for a checkpoint).
        // If the sync fails the journal stays, and so does every later one
        // (a failed sync is sticky until a restart): the replay after the
        // restart finds them recorded or not and publishes their status
        // changes then, once.
        if (std::string serr; err.empty() && !state_.sync(serr)) {
            log->error("state store: {} replayed decision(s) recorded but not synced: {}; kept in {}", pending.size(),
                       serr, journal_.path().string());
        } else if (err.empty()) {
            // Once the journal is durably empty no replay can bring these
            // batches back; if it cannot be emptied, their tokens stay so
            // the next replay still skips them.
            if (auto cec = journal_.clear(); !cec) state_.forget_batches(tokens);
            if (before)
                log->info("state store: {} waiting decision(s) recorded, {} of them already recorded (the store had "
                          "committed them when their answer was lost)",
                          pending.size() - before, before);
            else
                log->info("state store: {} waiting decision(s) recorded", pending.size());
            changes = std::move(replayed);
        }
    }
    std::string token;
    std::vector<std::string> tokens;
    if (err.empty() && !evs.empty()) {
        token = next_token();
        tokens.assign(evs.size(), token);
        auto more = state_.record(evs, err, &more_counted, &tokens);
        // Answered: this batch will not be journalled, its token has done its
        // work (a batch without decisions claimed none).
        if (err.empty() && std::any_of(evs.begin(), evs.end(), state::kept_as_decision)) state_.forget_batches({token});
        counted.insert(counted.end(), more_counted.begin(), more_counted.end());
        changes.insert(changes.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    }
    if (!err.empty() && !evs.empty()) {
        // Only what the store keeps needs to wait for it.
        std::vector<event> keep;
        for (auto& e : evs)
            if (state::kept_as_decision(e)) keep.push_back(e);
        // A batch that never reached the store (the journal was waiting)
        // has no token yet: it gets one now.
        auto jec = journal_.append(keep, token.empty() ? next_token() : token);
        if (jec)
            log->critical("state store: cannot record {} decision(s): {}; nor keep them in {}: {}", keep.size(), err,
                          journal_.path().string(), jec.message());
        else if (!keep.empty())
            log->error("state store: cannot record {} decision(s): {}; kept in {} and retried", keep.size(), err,
                       journal_.path().string());
    }
    // Status changes published elsewhere (the control socket's) and those
    // made here both reach the RCPT check.
    evs.insert(evs.end(), std::make_move_iterator(changes.begin()), std::make_move_iterator(changes.end()));
    // The list is set from the store as it is now, not from the event: a
    // change made on the control thread and one made here may reach this
    // point in either order, and the store has the last word.
    for (auto& e : evs) {
        if (e.type != events::event_type::status_changed) continue;
        if (auto now = state_.get(e.recipient)) suppression_.update(*now);
        log->info("recipient <{}> is now {} ({} bounce(s), last {})", e.recipient, e.to, e.bounce_count,
                  e.category);
    }
    if (breaker_ && !counted.empty()) {
        auto trips = breaker_->on_counts(counted, now_ms());
        evs.insert(evs.end(), std::make_move_iterator(trips.begin()), std::make_move_iterator(trips.end()));
    }
    bus_.write(evs);
}

}  // namespace ricochet::daemon
