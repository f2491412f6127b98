// bus — see bus.hpp.
#include "events/bus.hpp"

#include <chrono>

#include "queue/logger.hpp"

namespace ricochet::events {

void bus::write(std::vector<event>& evs) {
    if (evs.empty()) return;
    std::lock_guard lk(mu_);
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch()).count();
    for (auto& e : evs) {
        if (!e.time_ms) e.time_ms = now;
        if (e.seq) continue;
        std::error_code ec;
        e.seq = seq_.next(ec);
        if (ec || !e.seq) {
            // The sequence file cannot be moved ahead (a read-only or failing
            // disk): the event is still written, with seq 0 and an id that is
            // still unique (the clock in microseconds and a counter), so a
            // consumer that removes duplicates by id keeps it.
            static auto log = named_logger("events");
            log->error("events: cannot move the sequence file ahead: {}; event written with seq 0",
                       ec ? ec.message() : "not open");
            auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
            e.id = (seq_.instance().empty() ? std::string("unnumbered") : seq_.instance()) + "-t" +
                   std::to_string(us) + "-" + std::to_string(++unnumbered_);
            continue;
        }
        e.id = seq_.instance() + "-" + std::to_string(e.seq);
    }
    for (auto* s : sinks_) s->write(evs);
}

}  // namespace ricochet::events
