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
        if (ec) {
            static auto log = named_logger("events");
            log->error("events: cannot move the sequence file ahead: {}; event written without seq", ec.message());
        }
        e.id = seq_.instance() + "-" + std::to_string(e.seq);
    }
    for (auto* s : sinks_) s->write(evs);
}

}  // namespace ricochet::events
