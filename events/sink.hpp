// sink — where published events go: the JSON-lines file today; webhooks and
// metrics plug in beside it without touching the producers. A sink is
// called on the publishing thread (the recorder's, never an I/O thread),
// with events already stamped (seq, id, time) and in seq order; it must not
// block for long: a slow consumer queues on its own thread.
#pragma once
#include <vector>

#include "events/event.hpp"

namespace ricochet::events {

class sink {
public:
    virtual ~sink() = default;
    virtual void write(const std::vector<event>& evs) = 0;
};

}  // namespace ricochet::events
