// pg_listener — keeps a node's suppression list (the RCPT check's) in step
// with the shared PostgreSQL database: LISTEN on "ricochet_suppression",
// which the tables' triggers NOTIFY (state/pg_storage.hpp) whenever any node
// or ricochetctl makes an address held or unsubscribed (or active again) or
// imports or removes a suppression. A notification arrives within
// milliseconds of the commit; the listener reads the address's row and
// updates the list.
//
// Notifications sent while the connection is down are lost (PostgreSQL
// keeps none for a listener that is not there), so after every reconnect the
// whole list is read again and replaces the old one. Reconnects back off
// from 0.5 s to 10 s. One thread of its own, with its own connection: the
// recorder's transactions never wait for it, nor it for them.
#pragma once
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bounce/recipient_status.hpp"

namespace ricochet::state {

class pg_listener {
public:
    struct handler {
        // An address's status now (active when it is no longer suppressed).
        std::function<void(const bounce::address_record&)> record;
        // An imported suppression came (true) or went (false).
        std::function<void(const std::string& entry, bool present)> entry;
        // A breaker scope's state changed (paused, warned, resumed) on some
        // node: its key (campaign ID or "@domain"); "" after a reconnect:
        // any of them may have.
        std::function<void(const std::string& scope)> scope;
        // The whole list, at start and after a reconnect: every held or
        // unsubscribed record and every imported entry. Called on the
        // listener's connection after its LISTEN, so a change committed
        // later is applied after it, never overwritten by it.
        std::function<void(const std::vector<bounce::address_record>&, const std::vector<std::string>&)> reload;
        // Logging: the connection was lost (with why) or is back.
        std::function<void(const std::string& why)> down;
        std::function<void()> up;
    };

    // node: this node's number (state::storage::node_number), held for as
    // long as this listener's session lives (see start()); 0: none.
    pg_listener(std::string url, handler h, int node = 0);
    ~pg_listener();
    pg_listener(const pg_listener&) = delete;
    pg_listener& operator=(const pg_listener&) = delete;

    // Connects, claims the node's number, LISTENs and loads the whole list
    // (handler.reload) now, then runs its thread. False with `error` when
    // the first connection or load fails, or when another running process
    // holds the same number (two nodes with one name would make the same
    // queue ids). The claim is a session advisory lock: it goes with the
    // process (the server notices a vanished one by its keepalives, within
    // about server.state_timeout), so start() waits that long for it.
    bool start(std::string& error);
    void stop();
    // "" while listening; else why not (for /healthz).
    std::string health() const;
    // Notifications applied so far (tests, metrics).
    std::uint64_t applied() const { return applied_.load(); }

private:
    bool load_all(std::string& error);
    bool claim(std::string& error, bool again = false);
    struct state;
    void run();

    std::string url_;
    handler h_;
    int node_ = 0;
    std::string application_;  // "ricochetd listener" and a tag of this process
    std::unique_ptr<state> st_;
    std::thread thread_;
    std::atomic<std::uint64_t> applied_{0};
    mutable std::mutex mu_;
    std::string down_;
};

}  // namespace ricochet::state
