// publisher — what producers (delivery, submission, the bounce intake, the
// control socket) hand their events to. The daemon's implementation records
// them in the recipient state first (which may add status_changed events),
// then stamps and fans them out to the sinks, on a thread of its own: a
// producer never waits on a database or a file unless it asks to.
#pragma once
#include <functional>
#include <vector>

#include "events/event.hpp"

namespace ricochet::events {

class publisher {
public:
    virtual ~publisher() = default;
    // Queues the events; `then` runs once they are recorded and written.
    virtual void publish(std::vector<event> evs, std::function<void()> then = {}) = 0;
    // The same, for events nobody waits on promptly (a delivery's outcome,
    // the removal of a delivered message's file): the implementation may
    // hold them back a little and record them with the next events that
    // are waited on, in one transaction instead of two. Order is kept; a
    // flush() applies them too.
    virtual void publish_lazily(std::vector<event> evs, std::function<void()> then = {}) {
        publish(std::move(evs), std::move(then));
    }
    // Returns once everything published before the call is recorded.
    virtual void flush() = 0;
    // Makes what is recorded survive a power loss (the store may commit
    // without a sync: see state::storage::sync).
    // False when it could not (logged by the implementation).
    virtual bool sync() { return true; }
    // Recorded and durable on return: for what an outside party was told
    // is done (a report's 250, an unsubscribe, an operator's command).
    // False when the sync failed: recorded, but maybe not durable.
    bool publish_now(std::vector<event> evs, std::function<void()> then = {}) {
        publish(std::move(evs), std::move(then));
        flush();
        return sync();
    }
};

}  // namespace ricochet::events
