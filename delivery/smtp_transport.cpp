// smtp_transport — see smtp_transport.hpp.
#include "delivery/smtp_transport.hpp"

#include <boost/asio/ssl.hpp>

#include "config/config.hpp"
#include "queue/logger.hpp"
#include "smtp/smtp_client.hpp"

namespace ricochet::delivery {
namespace asio = boost::asio;
using asio::awaitable;

namespace {

class smtp_connection_adapter final : public connection {
public:
    explicit smtp_connection_adapter(std::unique_ptr<smtp::smtp_connection> c) : c_(std::move(c)) {}
    awaitable<transaction> send(const std::string& return_path, const std::string& rcpt, const std::string& head,
                                const std::string& content, bool smtputf8, bool eightbit) override {
        auto t = co_await c_->send(return_path, rcpt, head, content, smtputf8, eightbit);
        co_return transaction{std::move(t.reply), t.connection_lost, t.before_data};
    }
    awaitable<void> quit() override { co_await c_->quit(); }
    bool usable() const override { return c_->usable(); }
    unsigned transactions() const override { return c_->transactions(); }
    const std::string& mx() const override { return c_->mx(); }
    const std::string& ip() const override { return c_->ip(); }
    bool eightbitmime() const override { return c_->eightbitmime(); }

private:
    std::unique_ptr<smtp::smtp_connection> c_;
};

class smtp_transport final : public transport {
public:
    smtp_transport(asio::any_io_executor ex, const config& cfg) : ex_(std::move(ex)) {
        static auto log = named_logger("delivery");
        // Opportunistic and "required" encrypt without verifying the peer, as
        // most MX hosts have no certificate a sender could check (RFC 7435),
        // unless delivery.tls_verify asks for the chain and the MX name.
        // The trust anchors are loaded whatever the mode: an MTA-STS policy
        // asks for a verified certificate, or (testing) for a report of one.
        tls_.set_verify_mode(cfg.delivery.tls_verify ? asio::ssl::verify_peer : asio::ssl::verify_none);
        boost::system::error_code vec;
        if (!cfg.delivery.tls_ca_file.empty()) tls_.load_verify_file(cfg.delivery.tls_ca_file.string(), vec);
        else tls_.set_default_verify_paths(vec);
        if (vec) log->error("delivery.tls_ca_file: {}", vec.message());
        SSL_CTX_set_min_proto_version(tls_.native_handle(), TLS1_2_VERSION);
        // DANE (RFC 7672) per connection when an MX has TLSA records (a
        // failure here makes each DANE connection fail, never go unchecked).
        if (SSL_CTX_dane_enable(tls_.native_handle()) <= 0) log->error("OpenSSL: cannot enable DANE");
        opt_.helo_name = cfg.server.hostname;
        opt_.tls = cfg.delivery.tls;
        opt_.tls_verify = cfg.delivery.tls_verify;
        opt_.connect_timeout = cfg.delivery.connect_timeout;
        opt_.greeting_timeout = cfg.delivery.command_timeout;
        opt_.command_timeout = cfg.delivery.command_timeout;
        opt_.data_timeout = cfg.delivery.data_timeout;
    }

    awaitable<open_result> open(const hop& h, bool use_tls, const std::string& source_ip) override {
        smtp::tls_demand demand = h.tls ? h.tls->demand : smtp::tls_demand{};
        auto r = co_await smtp::smtp_connection::open(ex_, h.ep, h.host, opt_, tls_, use_tls, source_ip, demand);
        open_result out;
        out.failure = std::move(r.failure);
        out.tls_failed = r.tls_failed;
        out.tls = std::move(r.tls);
        if (r.conn) out.conn = std::make_unique<smtp_connection_adapter>(std::move(r.conn));
        co_return out;
    }

private:
    asio::any_io_executor ex_;
    asio::ssl::context tls_{asio::ssl::context::tls_client};
    smtp::client_options opt_;
};

}  // namespace

std::unique_ptr<transport> make_smtp_transport(asio::any_io_executor ex, const config& cfg) {
    return std::make_unique<smtp_transport>(std::move(ex), cfg);
}

}  // namespace ricochet::delivery
