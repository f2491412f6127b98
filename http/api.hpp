// api — the HTTP API of PRODUCT.md "HTTP API": routes a checked request
// (the listener has read it whole and checked Host, token and size) to the
// services ricochetctl uses too: views/ for what is shown, daemon/control
// for every change, submission/inject for injection, the spool's group
// commit, the event log reader, the metrics. No Asio here: the listener
// (http/server.hpp) calls handle() on a worker thread, never on an I/O
// thread, because a queue listing or a state query may take a while.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "http/handler.hpp"
#include "http/http_util.hpp"

namespace ricochet {
struct config;
}
namespace ricochet::queue {
class spool;
}
namespace ricochet::state {
class recipient_state;
}
namespace ricochet::bounce {
class suppression_list;
class classifier;
}
namespace ricochet::events {
class metrics;
}

namespace ricochet::http {

struct api_context {
    const config& cfg;
    queue::spool& spool;
    state::recipient_state& state;  // suppression imports write to it; status changes go through control
    bounce::suppression_list& suppression;  // imports and deletions update it
    const events::metrics& metrics;
    // daemon::handle_control: every change (queue operations, recipient status).
    std::function<nlohmann::json(const nlohmann::json&)> control;
    // The daemon's paused destinations: domain -> until (ms).
    std::function<std::map<std::string, std::int64_t>()> paused;
    // Whether the state store takes writes now ("" = yes, else why not).
    std::function<std::string()> state_health;
    // The campaign breaker's answer for a message (campaign, envelope
    // sender): why it is paused, or nullopt. Null: the breaker is off.
    std::function<std::optional<std::string>(const std::string& campaign, const std::string& sender)> paused_scope;
    // The daemon's bounce classifier (POST /v1/classify); null: not offered.
    const bounce::classifier* classifier = nullptr;
    // Several nodes (PostgreSQL): every node's events from a shared cursor,
    // for GET /v1/events (null: this node's own log).
    struct events_page {
        std::vector<std::string> lines;
        std::uint64_t last = 0;
        bool more = false;
        std::string error;
    };
    using events_page_fn =
        std::function<events_page(std::uint64_t after, std::size_t limit, const std::vector<std::string>& types)>;
    events_page_fn shared_events;
};

class api final : public handler {
public:
    explicit api(api_context ctx) : ctx_(std::move(ctx)) {}
    // reply is called once, maybe later and from another thread (an
    // injection answers when the spool's commit is durable).
    void handle(const request& req, std::function<void(response)> reply) override;
    // Whether handle() may run on the I/O thread: an injection is CPU work
    // only (like SMTP's DATA) and answers from the spool's commit, so it
    // never waits behind a slow listing on the worker pool.
    bool runs_inline(const std::string& method, const std::string& path) const override {
        return method == "POST" && path == "/v1/messages";
    }
    // The body limit for a request (PUT /v1/suppressions takes a whole list;
    // the dashboard's public paths take none).
    std::uint64_t body_limit(const std::string& method, const std::string& path) const override;
    // The dashboard's static files (no data in them) need no token: a
    // browser cannot send one with a page load. Their script sends it.
    bool is_public(const std::string& method, const std::string& path) const override;

private:
    response route(const request& req, std::function<void(response)>& reply, bool& deferred);
    api_context ctx_;
};

}  // namespace ricochet::http
