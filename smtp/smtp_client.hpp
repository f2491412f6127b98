// smtp_client — one outbound SMTP connection (RFC 5321 client side): connect,
// greeting, EHLO (HELO fallback), STARTTLS per delivery.tls, then any number
// of one-recipient transactions, each with its own return path, pipelined
// when the server offers PIPELINING (RFC 2920). Every reply is captured whole
// with its stage; a 4xx/5xx is a result, not an exception. Each reply has its
// own time-out (RFC 5321 4.5.3.2), covering the whole reply.
// Included only by Asio code (smtp_client.cpp, delivery.cpp).
#pragma once
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "bounce/smtp_reply.hpp"
#include "smtp/line_reader.hpp"
#include "smtp/tls_outcome.hpp"

namespace ricochet::smtp {

struct client_options {
    std::string helo_name = "localhost";
    std::string tls = "opportunistic";  // opportunistic | required | off
    bool tls_verify = false;            // check the peer's certificate for the MX name (or IP)
    std::chrono::seconds connect_timeout{30};
    std::chrono::seconds greeting_timeout{300};  // RFC 5321 4.5.3.2.1: 5 minutes
    std::chrono::seconds command_timeout{300};   // MAIL, RCPT (4.5.3.2.2-3)
    std::chrono::seconds data_timeout{600};      // after the final dot (4.5.3.2.6: 10 minutes)
};

class smtp_connection {
public:
    using executor = boost::asio::any_io_executor;
    struct open_result {
        std::unique_ptr<smtp_connection> conn;  // null on failure
        bounce::smtp_reply failure;             // why, when conn is null
        bool tls_failed = false;                // the TLS handshake failed (try again without)
        tls_outcome tls;                        // for TLS-RPT
    };
    // Connects to ep and greets. mx is the host name (for SNI and the log).
    // use_tls false: no STARTTLS even when offered (opportunistic fallback).
    // source_ip: the local address to connect from ("" : the system's choice).
    // References must outlive the call (they live in the caller's frame:
    // GCC 12 mishandles temporaries in co_await expressions).
    static boost::asio::awaitable<open_result> open(const executor& ex, boost::asio::ip::tcp::endpoint ep,
                                                    const std::string& mx, const client_options& opt,
                                                    boost::asio::ssl::context& tls, bool use_tls,
                                                    const std::string& source_ip = "", tls_demand demand = {});

    struct transaction {
        bounce::smtp_reply reply;  // the final reply: 250 at end of data, or the first failure
        bool connection_lost = false;  // no usable connection afterwards
        bool before_data = true;       // failed before the message was sent (safe to retry elsewhere)
    };
    // DATA sends head (whole header fields, maybe empty) then content.
    boost::asio::awaitable<transaction> send(const std::string& return_path, const std::string& rcpt,
                                             const std::string& head, const std::string& content, bool smtputf8,
                                             bool eightbit);
    boost::asio::awaitable<void> quit();

    bool usable() const { return usable_; }
    unsigned transactions() const { return transactions_; }
    bool eightbitmime() const { return eightbitmime_; }
    const std::string& mx() const { return mx_; }
    const std::string& ip() const { return ip_; }
    bool tls_active() const { return tls_; }
    std::chrono::steady_clock::time_point idle_since;

    smtp_connection(executor ex, boost::asio::ssl::context& tls, const client_options& opt);

private:
    boost::asio::awaitable<bounce::smtp_reply> read_reply(bounce::stage at, std::chrono::seconds timeout);
    boost::asio::awaitable<bool> write(std::string_view data, std::chrono::seconds timeout);
    boost::asio::awaitable<bounce::smtp_reply> ehlo();

    boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream_;
    const client_options& opt_;
    line_reader reader_;
    bool tls_ = false, usable_ = true;
    bool pipelining_ = false, starttls_ = false, smtputf8_ = false, eightbitmime_ = false;
    unsigned transactions_ = 0;
    // A MAIL was sent and its transaction has not ended with the reply to
    // the end of the data: the next transaction starts with RSET. After a
    // message's final reply, whatever its code, the server has cleared
    // its buffers (RFC 5321 4.1.1.4), so no RSET is sent between messages.
    bool open_transaction_ = false;
    std::string mx_, ip_;
};

}  // namespace ricochet::smtp
