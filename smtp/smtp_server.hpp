// smtp_server — the listening side: accepts connections on the configured
// addresses and runs smtp_server_protocol over each, with TLS (OpenSSL via
// Asio), time-outs and a connection limit. Accepted messages go to the spool;
// the 250 is written only after the spool's group commit says they are durable.
//
// Asio stays behind this header: callers see only io_context, forward-declared.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <system_error>
#include <memory>
#include <string>
#include <vector>

#include "smtp/smtp_server_protocol.hpp"

namespace boost::asio {
class io_context;
}
namespace ricochet::queue {
class spool;
}

namespace ricochet::smtp {

struct smtp_server_options {
    std::string name = "submission";  // for the log
    session_policy policy;
    std::vector<std::string> listen;  // "host:port"
    std::filesystem::path tls_cert, tls_key;
    unsigned max_connections = 1000;
    unsigned max_connections_per_ip = 0;  // 0: no limit per client address
    // Failed AUTH attempts one client address may make (over any number of
    // sessions) within auth_failure_window; then its new sessions get 421
    // until the window ends.
    unsigned max_auth_failures_per_ip = 10;
    std::chrono::seconds auth_failure_window{15 * 60};
    // IPv6 clients count by their network of this many bits for both
    // limits above (network.hpp client_group).
    int ipv6_prefix = 64;
    // Where the failed-AUTH counts are kept across restarts (one appended
    // line per change, compacted at start); empty: in memory only.
    std::filesystem::path auth_failures_file;
    // Bounded memory while DATA arrives: past spill_threshold octets a
    // message goes on to an anonymous file in the spool (queue/spool.hpp
    // open_spill) as it arrives; 0 keeps it in memory (the bounce
    // listener's message_sink reads it whole). memory_budget bounds what
    // every session of every listener holds at once: over it a session
    // spills early, or, when it cannot spill, its message gets 452 4.3.1.
    std::size_t spill_threshold = 256 * 1024;
    std::uint64_t memory_budget = 512ULL << 20;
    // Each command line, and each line of DATA, must arrive whole within
    // these (a deadline per line, not per read, so a client trickling a byte
    // at a time cannot hold a session open).
    std::chrono::seconds command_timeout{300};
    std::chrono::seconds data_timeout{600};
    // Under stress (stress_connections open sessions or more; 0: three
    // quarters of max_connections), both time-outs above become at most
    // stress_timeout, for waiting sessions too (0: never).
    unsigned stress_connections = 0;
    std::chrono::seconds stress_timeout{10};
    // When set, accepted messages go here instead of into the spool (the
    // bounce listener: a DSN is read, not relayed). Returns the error for a
    // 452, or success for the 250. Runs on a worker thread of its own (one
    // per server), never on an I/O thread.
    std::function<std::error_code(queue::envelope& env, std::string& content)> message_sink;
};

class smtp_server {
public:
    smtp_server(boost::asio::io_context& io, smtp_server_options options, queue::spool& spool);
    ~smtp_server();
    // Loads TLS material and binds every listen address. False with a message.
    bool start(std::string& error);
    // True while a session's message is being committed or its reply
    // written (the daemon waits for that at stop: a 250 not sent is a
    // message sent twice).
    bool busy() const;
    // Stops accepting; sessions in progress finish on their own.
    void stop();

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace ricochet::smtp
