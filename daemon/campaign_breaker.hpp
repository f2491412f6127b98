// campaign_breaker — the circuit breaker at work in the daemon: it takes the
// counts the recipient state wrote (where the recorder's batch is applied), asks the
// breaker::monitor to judge them, keeps each scope's new state in the state
// store, publishes campaign_warned / campaign_paused / campaign_resumed, and
// holds or releases that scope's queued messages. Holding and releasing
// touch many files, so they run on a thread of their own, never on the
// recorder's or an I/O thread.
//
// A held message still expires on time: the delivery agent keeps every held
// message in its schedule at its expiry, and expires it without an attempt.
// Buckets past the window are pruned from the store at start and hourly.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "breaker/breaker.hpp"
#include "events/event.hpp"

namespace ricochet {
struct config;
}
namespace ricochet::queue {
class spool;
class schedule;
}  // namespace ricochet::queue
namespace ricochet::state {
class recipient_state;
}
namespace ricochet::events {
class publisher;
}
namespace ricochet::delivery {
class delivery_agent;
}

namespace ricochet::daemon {

// A scope's key as given by an operator: a campaign ID as it is, a sender
// domain ("@Shop.Example") in lower case, as the counts have it.
std::string campaign_breaker_key(std::string key);

class campaign_breaker {
public:
    campaign_breaker(const config& cfg, breaker::monitor& m, state::recipient_state& st, queue::spool& spool,
                     queue::schedule& due, events::publisher& pub);
    ~campaign_breaker();
    void set_delivery(delivery::delivery_agent* d) { delivery_ = d; }
    // Loads the window and the scopes' states from the store; starts the worker.
    void start();
    void stop();

    // Where the recorder's batch is applied, after the store took it: the events
    // to publish with it (campaign_warned, campaign_paused).
    std::vector<events::event> on_counts(const std::vector<breaker::delta>& ds, std::int64_t now_ms);

    // An operator's pause or resume of a campaign ID or "@sender.domain";
    // {"ok": true, "state": ...} or {"ok": false, "error": ...}.
    nlohmann::json pause(const std::string& key);
    nlohmann::json resume(const std::string& key);
    // Another node sharing the store changed this scope's state ("": any
    // scope, after the notifications were missed): take it
    // from the store, and hold or release this node's messages of it (on
    // the worker; the other node published the event).
    void remote_change(const std::string& key);

private:
    bool save(const std::string& key);  // false (logged) when the store refused
    bool kept_again(const std::string& key);  // saved and synced (an operator's repeated request)
    void enqueue(std::function<void()> job);
    void worker();
    void hold_scope(const std::string& key);
    void release_scope(const std::string& key);
    void prune();

    const config& cfg_;
    breaker::monitor& m_;
    state::recipient_state& st_;
    queue::spool& spool_;
    queue::schedule& due_;
    events::publisher& pub_;
    delivery::delivery_agent* delivery_ = nullptr;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace ricochet::daemon
