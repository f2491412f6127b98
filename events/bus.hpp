// bus — stamps events (seq, id, time) and hands them to every sink, in
// order. One bus per process: the daemon calls it from the thread applying
// the recorder's batch (the recorder's own, or the committer's)
// once the recipient state has taken the events; ricochetctl calls it
// directly when it acts with the daemon stopped.
#pragma once
#include <mutex>
#include <vector>

#include "events/publisher.hpp"
#include "events/sequencer.hpp"
#include "events/sink.hpp"

namespace ricochet::events {

class bus final : public publisher {
public:
    explicit bus(sequencer& seq) : seq_(seq) {}
    void add(sink& s) { sinks_.push_back(&s); }
    // Stamps what has no seq yet, then writes to every sink.
    void write(std::vector<event>& evs);
    // A publisher with nothing before the sinks (ricochetctl with the
    // daemon stopped; tests): writes at once.
    void publish(std::vector<event> evs, std::function<void()> then = {}) override {
        write(evs);
        if (then) then();
    }
    void flush() override {}

private:
    std::mutex mu_;  // stamping and writing in one order
    sequencer& seq_;
    std::vector<sink*> sinks_;
    std::uint64_t unnumbered_ = 0;  // events written while the sequence file could not move
};

}  // namespace ricochet::events
