// webhooks — PRODUCT.md "Webhooks": each [[webhook]] endpoint gets the
// events of its types as JSON arrays, in seq order, POSTed with a
// Ricochet-Signature header, on a thread of its own.
//
// Durable without a second copy of the events: an endpoint's batches are
// read back from the event log (events/log_reader.hpp) after its cursor,
// the seq of the last event it acknowledged, kept in
// spool_dir/webhooks/<id>.cursor (written to a temporary file, synced and
// renamed). kill -9 at any moment loses nothing: the batch in flight is
// sent again after the restart (receivers dedupe by `id`). A new endpoint
// starts at the end of the log (it gets what happens from then on).
//
// A failure (no connection, a time-out, any status but 2xx) is retried
// after 5 s, doubling to 10 min; a batch whose oldest event is older than
// max_age is dropped with a log line and a counter, and the cursor moves
// past it. A slow or dead endpoint holds only its own thread: the sink the
// recorder calls only notes the newest seq.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "events/sink.hpp"

namespace ricochet {
struct config;
}
namespace ricochet::events {
class metrics;
}

namespace ricochet::http {

class webhook_dispatcher final : public events::sink {
public:
    explicit webhook_dispatcher(const config& cfg);
    ~webhook_dispatcher() override;
    // Reads each endpoint's cursor (creating spool_dir/webhooks/) and starts
    // the threads. False with error when the cursor directory cannot be made.
    bool start(std::string& error);
    void stop();
    void write(const std::vector<events::event>& evs) override;
    // ricochet_webhook_backlog{webhook}, ..._delivered_total, ..._dropped_total, ..._failures_total.
    void add_metrics(events::metrics& m);

private:
    struct endpoint;
    const config& cfg_;
    std::vector<std::unique_ptr<endpoint>> endpoints_;
};

}  // namespace ricochet::http
