// transport — how delivery reaches a next hop, as an interface: the real one
// speaks SMTP over TCP with STARTTLS (delivery/smtp_transport.hpp, on
// smtp/smtp_client); tests pass a scripted one, so what delivery decides
// from each reply (a stale reused connection, a 421 in the middle of a
// session, a dead MX and the next one, a throttling reply that pauses the
// domain) is tested without sockets.
//
// A connection is used from one strand only (delivery's).
#pragma once
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "bounce/smtp_reply.hpp"
#include "smtp/tls_outcome.hpp"

namespace ricochet::delivery {

// What the receiving domain asks of TLS (MTA-STS, tls/mta_sts.hpp), shared
// by the hops of one lookup; also names the domain for TLS-RPT.
struct hop_tls {
    std::string domain;                      // the policy domain (the recipient's, ASCII)
    smtp::tls_demand demand;                 // enforce: verify; testing: check
    std::string policy_type = "no-policy-found";  // or "sts"
    std::vector<std::string> policy_string, mx_patterns;
};

// One place to try: an MX (or route) host name (for SNI and the log) and
// one of its addresses. tls: null for a [[delivery.route]] (no policy, no report).
struct hop {
    std::string host;
    boost::asio::ip::tcp::endpoint ep;
    std::shared_ptr<const hop_tls> tls;
};

struct transaction {
    bounce::smtp_reply reply;      // the final reply: 2xx at end of data, or the first failure
    bool connection_lost = false;  // no usable connection afterwards
    bool before_data = true;       // failed before the message was sent (safe to retry elsewhere)
};

// One open session to a next hop, greeted and ready for transactions.
class connection {
public:
    virtual ~connection() = default;
    // One transaction: MAIL FROM:<return_path>, RCPT TO:<rcpt>, DATA with
    // head (header fields for this recipient, maybe empty) then content.
    virtual boost::asio::awaitable<transaction> send(const std::string& return_path, const std::string& rcpt,
                                                     const std::string& head, const std::string& content,
                                                     bool smtputf8, bool eightbit) = 0;
    virtual boost::asio::awaitable<void> quit() = 0;
    virtual bool usable() const = 0;
    virtual unsigned transactions() const = 0;
    virtual const std::string& mx() const = 0;
    virtual const std::string& ip() const = 0;
    // Whether the server offered 8BITMIME (else 8-bit content is converted
    // to 7-bit before it is sent, or not sent: mime/seven_bit.hpp).
    virtual bool eightbitmime() const { return true; }

    std::chrono::steady_clock::time_point idle_since;
};

struct open_result {
    std::unique_ptr<connection> conn;  // null on failure
    bounce::smtp_reply failure;        // why, when conn is null
    bool tls_failed = false;           // the TLS handshake failed (opportunistic: try again without)
    smtp::tls_outcome tls;             // for TLS-RPT
};

class transport {
public:
    virtual ~transport() = default;
    // Connects from source_ip ("" : the system's choice) and greets (EHLO,
    // STARTTLS when use_tls and offered).
    virtual boost::asio::awaitable<open_result> open(const hop& h, bool use_tls, const std::string& source_ip) = 0;
};

}  // namespace ricochet::delivery
