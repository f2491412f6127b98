// server — an HTTP listener (Boost.Beast) in front of a handler: the API
// (http/api, on http.listen) or the public one-click unsubscribe endpoint
// (http/unsubscribe, on unsubscribe.listen). Plain or TLS, HTTP/1.1
// keep-alive. For every request, before the handler sees it (the API's
// options; the unsubscribe listener checks neither Host nor tokens, since
// anyone may call it, and has its own limits):
//   - the Host header must be an IP literal, localhost or server.hostname
//     (a browser tricked by DNS rebinding sends another name): else 403;
//   - a client outside http.trusted_networks must send a bearer token from
//     http.tokens_file: else 401 (and 429 after 20 failures in a minute);
//   - the headers are at most 16 KiB and the body at most http.max_body
//     (http.max_import_body for PUT /v1/suppressions): else 431 / 413;
//   - the whole request must arrive within http.request_timeout, and a
//     keep-alive connection idle that long is closed; from three quarters
//     of max_connections on (stress), within stress_timeout (10 s) for each
//     request that starts then, so idle connections cannot lock clients out;
//   - at most http.max_connections connections, http.max_connections_per_ip
//     from one address: others get 503 and are closed.
// A request Beast cannot parse gets a 400 with a JSON error and the
// connection is closed. The API runs on a small pool of its own, so a slow
// listing never holds an I/O thread.
#pragma once
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace ricochet {
struct config;
}

namespace ricochet::http {

class handler;

struct listener_options {
    std::string name;  // the config table, for logs and errors: "http", "unsubscribe"
    std::vector<std::string> listen;
    std::filesystem::path tls_cert, tls_key;
    std::chrono::seconds request_timeout{30};
    std::chrono::seconds stress_timeout{10};
    unsigned max_connections = 256, max_connections_per_ip = 0;
    int ipv6_prefix = 64;  // per-address limits count IPv6 clients by this network (smtp/network.hpp client_group)
    std::uint64_t memory_budget = 0;  // request bodies held at once, with SMTP DATA (base/memory_budget.hpp); 0: none
    // A private listener (the API) checks Host against DNS rebinding and
    // wants a token from outside trusted_networks.
    bool check_host = false;
    std::string hostname;
    std::vector<std::string> trusted_networks;
    std::filesystem::path tokens_file;
    bool need_token = false;
};
listener_options api_listener(const config& cfg);
listener_options unsubscribe_listener(const config& cfg);

class server {
public:
    server(boost::asio::io_context& io, listener_options opt, handler& h);
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
