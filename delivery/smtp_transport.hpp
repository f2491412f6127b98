// smtp_transport — the real transport: SMTP over TCP (smtp/smtp_client),
// STARTTLS per delivery.tls, the peer's certificate checked only with
// delivery.tls_verify, TLS 1.2 at least, RFC 5321 time-outs from [delivery].
#pragma once
#include <boost/asio/any_io_executor.hpp>
#include <memory>

#include "delivery/transport.hpp"

namespace ricochet {
struct config;
}

namespace ricochet::delivery {

// ex: the strand every connection runs on. cfg must outlive the transport.
std::unique_ptr<transport> make_smtp_transport(boost::asio::any_io_executor ex, const config& cfg);

}  // namespace ricochet::delivery
