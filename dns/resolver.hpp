// resolver — MX and address lookups for delivery, on c-ares driven by the
// Asio event loop (no blocking call, no thread per query). Results are values:
// permanent failures (NXDOMAIN, null MX, no address at all) are told apart
// from temporary ones (SERVFAIL, REFUSED, time-out), because the first fails
// a recipient and the second only defers it. Answers are cached for their
// TTL; temporary failures are not cached.
//
// All calls must come from the executor given at construction (a strand).
#pragma once
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "dns/lookup.hpp"

namespace ricochet::dns {

class resolver final : public lookup {
public:
    // servers: "ip:port" strings, or empty for /etc/resolv.conf.
    resolver(boost::asio::any_io_executor ex, const std::vector<std::string>& servers,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(5000), int tries = 2);
    ~resolver() override;
    bool ok(std::string& error) const;

    boost::asio::awaitable<mx_result> mx(const std::string& domain) override;
    boost::asio::awaitable<address_result> addresses(const std::string& host) override;
    boost::asio::awaitable<txt_result> txt(const std::string& name) override;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace ricochet::dns
