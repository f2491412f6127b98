// connection_pool — reusable connections per destination domain: at most
// max_connections open at once per domain, each used for up to
// max_messages transactions, closed after 5 s idle (before the server's own
// time-out would close it under us). At the limit, a caller waits for the
// next connection released. Opening tries each hop in turn until one
// greets (RFC 5321 5.1), and with opportunistic TLS once more in plain text
// when the handshake fails.
//
// Runs on one strand (delivery's): no locks.
#pragma once
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "delivery/transport.hpp"

namespace ricochet::delivery {

struct pool_limits {
    unsigned max_connections = 20;  // per domain
    unsigned max_messages = 100;    // per connection
    std::string tls = "opportunistic";  // opportunistic | required | off
    std::chrono::seconds idle_close{5};
};

// The limits of one pool key (connection_pool::acquire).
struct pool_key_limits {
    unsigned max_connections = 0, max_messages = 0;  // 0: the pool-wide ones
    std::string source_ip;                           // bound before connecting; "" the system's choice
};

class connection_pool {
public:
    connection_pool(boost::asio::any_io_executor strand, transport& t, pool_limits lim);

    struct acquired {
        std::unique_ptr<connection> conn;  // null: no hop could be reached
        bounce::smtp_reply failure;        // why, when conn is null
    };
    // An idle connection, a new one within the limit, or, at the limit, the
    // next one released. fresh: a new connection, not an idle one (an idle
    // one just turned out to be closed by the server, and its siblings
    // likely are too). A temporary failure at any hop makes the whole
    // attempt temporary: one host's 5xx greeting must not bounce mail
    // another host would have taken.
    //
    // key names the pool (delivery passes the shaping key and the source IP:
    // every domain under one rule shares its connections); limits, when
    // given, replace the pool-wide ones for it; source_ip is bound.
    using key_limits = pool_key_limits;
    boost::asio::awaitable<acquired> acquire(const std::string& key, const std::vector<hop>& hops, bool fresh = false,
                                             key_limits lim = {});
    // Gives the slot back: the connection goes idle when it can be reused,
    // else it is closed. nullptr: only the slot (the connection broke).
    void release(const std::string& key, std::unique_ptr<connection> c);
    // Closes connections idle for longer than idle_close, or unusable.
    void sweep_idle();
    unsigned open(const std::string& domain) const;  // for tests
    // Told of every connection that got as far as the STARTTLS step, with
    // the hop, the source IP and what TLS found (TLS-RPT). Set before use.
    using tls_observer = std::function<void(const hop&, const std::string& source_ip, const smtp::tls_outcome&)>;
    void set_tls_observer(tls_observer f) { observer_ = std::move(f); }

private:
    struct pool {
        unsigned open = 0;
        unsigned max_messages = 0;  // per connection (the last acquire's limit)
        std::vector<std::unique_ptr<connection>> idle;
        std::deque<std::shared_ptr<boost::asio::steady_timer>> waiters;
    };
    void close(std::unique_ptr<connection> c);
    static void notify_waiter(pool& p);

    boost::asio::any_io_executor strand_;
    transport& transport_;
    pool_limits lim_;
    std::unordered_map<std::string, pool> pools_;
    tls_observer observer_;
};

}  // namespace ricochet::delivery
