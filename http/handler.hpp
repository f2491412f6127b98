// handler — what an HTTP listener (http/server.hpp) serves: the API, or the
// public unsubscribe endpoint. No Asio, no Beast.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "http/http_util.hpp"

namespace ricochet::http {

class handler {
public:
    virtual ~handler() = default;
    // reply is called once, maybe later and from another thread.
    virtual void handle(const request& req, std::function<void(response)> reply) = 0;
    // Whether handle() may run on the I/O thread (short CPU work only);
    // otherwise it runs on the listener's worker pool.
    virtual bool runs_inline(const std::string& method, const std::string& path) const = 0;
    // The body limit for a request: larger gets 413 before it is read.
    virtual std::uint64_t body_limit(const std::string& method, const std::string& path) const = 0;
    // Whether a request may come without a token from outside the trusted
    // networks (the Host check still applies).
    virtual bool is_public(const std::string& /*method*/, const std::string& /*path*/) const { return false; }
};

}  // namespace ricochet::http
