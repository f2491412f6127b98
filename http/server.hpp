// server — the HTTP listener (Boost.Beast) in front of http/api: on
// http.listen, plain or TLS (http.tls_cert/tls_key), HTTP/1.1 keep-alive.
// For every request, before the API sees it:
//   - the Host header must be an IP literal, localhost or server.hostname
//     (a browser tricked by DNS rebinding sends another name): else 403;
//   - a client outside http.trusted_networks must send a bearer token from
//     http.tokens_file: else 401 (and 429 after 20 failures in a minute);
//   - the headers are at most 16 KiB and the body at most http.max_body
//     (http.max_import_body for PUT /v1/suppressions): else 431 / 413;
//   - the whole request must arrive within http.request_timeout, and a
//     keep-alive connection idle that long is closed;
//   - at most http.max_connections connections, http.max_connections_per_ip
//     from one address: others get 503 and are closed.
// A request Beast cannot parse gets a 400 with a JSON error and the
// connection is closed. The API runs on a small pool of its own, so a slow
// listing never holds an I/O thread.
#pragma once
#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>

namespace ricochet {
struct config;
}

namespace ricochet::http {

class api;

class server {
public:
    server(boost::asio::io_context& io, const config& cfg, api& a);
    ~server();
    // Loads the tokens and the TLS pair, binds every http.listen address.
    // False with error (naming the key) when one of them fails.
    bool start(std::string& error);
    void stop();

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace ricochet::http
