// tls_reports — sends the daily TLS-RPT reports (RFC 8460) of this node:
// once a day, shortly after midnight UTC (and at start, for days a stopped
// node missed), for each receiving domain counted on a past day, asks
// _smtp._tls.DOMAIN for its rua and queues one report mail per domain to
// its mailto: addresses, from the null sender, through the normal queue
// (so it is retried, signed by [[dkim]] when the From domain has a key,
// and shaped like any mail). Also flushes the counts to disk every minute.
// Runs on its own strand of the daemon's io_context.
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace boost::asio {
class io_context;
}
namespace ricochet {
struct config;
}
namespace ricochet::queue {
class spool;
}
namespace ricochet::tls {
class tls_reporter;
}

namespace ricochet::daemon {

class tls_report_sender {
public:
    tls_report_sender(boost::asio::io_context& io, const config& cfg, queue::spool& spool, tls::tls_reporter& counts);
    ~tls_report_sender();
    void start();
    void stop();  // writes the counts
    // Sends a day's reports now ("YYYY-MM-DD"; today's: the counts so far,
    // for a preview or a test) and calls done with {"ok", "queued": [...],
    // "skipped": [...]} from the io_context's thread. Thread-safe.
    void send_now(const std::string& day, std::function<void(nlohmann::json)> done);

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace ricochet::daemon
