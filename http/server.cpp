// server — see server.hpp. The only file of http/ that includes Beast.
#include "http/server.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <limits>
#include <mutex>
#include <unordered_map>

#include "base/log_rate.hpp"
#include "base/memory_budget.hpp"
#include "config/config.hpp"
#include "http/handler.hpp"
#include "http/http_util.hpp"
#include "queue/logger.hpp"
#include "smtp/async_spool.hpp"
#include "smtp/network.hpp"

namespace ricochet::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using asio::awaitable;
using asio::ip::tcp;
constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

namespace {
std::shared_ptr<spdlog::logger> log() {
    static auto l = named_logger("http");
    return l;
}
constexpr std::size_t header_limit = 16 * 1024;
constexpr unsigned auth_failures_allowed = 20;  // per address and minute
}  // namespace

struct server::impl : std::enable_shared_from_this<impl> {
    asio::io_context& io;
    listener_options opt;
    handler& a;
    ssl::context tls{ssl::context::tls_server};
    bool use_tls = false;
    token_list tokens;
    std::vector<smtp::cidr> trusted;
    std::vector<tcp::acceptor> acceptors;
    asio::thread_pool workers{2};
    std::atomic<unsigned> connections{0};
    base::log_rate refusals_logged;
    // Under stress (three quarters of max_connections open), what starts
    // waiting for a client has at most stress_timeout.
    std::chrono::seconds limit(std::chrono::seconds normal) const {
        bool stressed = connections.load() >= std::max(1u, opt.max_connections - opt.max_connections / 4);
        return stressed ? std::min(normal, opt.stress_timeout) : normal;
    }
    std::mutex mu;
    std::unordered_map<std::string, unsigned> per_ip;
    struct failures {
        unsigned count = 0;
        std::chrono::steady_clock::time_point since;
    };
    std::unordered_map<std::string, failures> auth_failed;

    impl(asio::io_context& i, listener_options o, handler& h) : io(i), opt(std::move(o)), a(h) {}

    bool auth_blocked(const std::string& ip) {
        std::lock_guard lk(mu);
        auto it = auth_failed.find(ip);
        if (it == auth_failed.end()) return false;
        if (std::chrono::steady_clock::now() - it->second.since > std::chrono::minutes(1)) {
            auth_failed.erase(it);
            return false;
        }
        return it->second.count >= auth_failures_allowed;
    }
    void auth_failure(const std::string& ip) {
        std::lock_guard lk(mu);
        auto& f = auth_failed[ip];
        auto now = std::chrono::steady_clock::now();
        if (f.count == 0 || now - f.since > std::chrono::minutes(1)) f = {0, now};
        ++f.count;
        if (auth_failed.size() > 100000) auth_failed.clear();  // bounded under a spray of addresses
    }

    static bhttp::response<bhttp::string_body> to_beast(const response& r, unsigned version, bool keep_alive) {
        bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), version};
        res.set(bhttp::field::content_type, r.content_type);
        res.set(bhttp::field::cache_control, "no-store");
        res.set("X-Content-Type-Options", "nosniff");
        for (auto& [k, v] : r.headers) res.set(k, v);
        res.body() = r.body;
        res.keep_alive(keep_alive);
        res.prepare_payload();
        return res;
    }

    // What is checked before the body is read: Host, token, size. nullopt: go on.
    std::optional<response> check(const bhttp::request_parser<bhttp::string_body>& parser, const std::string& ip,
                                  request& out) {
        auto& h = parser.get();
        auto host = h[bhttp::field::host];
        if (opt.check_host && !host_allowed(std::string_view(host.data(), host.size()), opt.hostname))
            return error_reply(403, "Host \"" + std::string(host) + "\" is not this server (DNS rebinding?)");
        if (opt.need_token) {
            auto origin = h[bhttp::field::origin];
            auto site = h["Sec-Fetch-Site"];
            if (cross_origin_write(std::string_view(h.method_string().data(), h.method_string().size()),
                                   std::string_view(host.data(), host.size()), std::string_view(origin.data(), origin.size()),
                                   std::string_view(site.data(), site.size())))
                return error_reply(403, "cross-origin request refused (Origin \"" + std::string(origin) + "\")");
        }
        bool public_path = false;
        if (opt.need_token) {
            std::string path;
            std::map<std::string, std::string> query;
            public_path = parse_target(std::string(h.target()), path, query) &&
                          a.is_public(std::string(h.method_string()), path);
        }
        if (opt.need_token && !public_path && !smtp::in_networks(trusted, ip)) {
            if (auth_blocked(smtp::client_group(ip, opt.ipv6_prefix)))
                return error_reply(429, "too many failed authentications from your address");
            auto auth = h[bhttp::field::authorization];
            auto token = bearer_token(std::string_view(auth.data(), auth.size()));
            if (!token) {
                auto r = error_reply(401, "a bearer token is required from your address");
                r.headers.emplace_back("WWW-Authenticate", "Bearer");
                return r;
            }
            auto name = tokens.find(*token);
            if (!name) {
                auth_failure(smtp::client_group(ip, opt.ipv6_prefix));
                auto r = error_reply(401, "invalid token");
                r.headers.emplace_back("WWW-Authenticate", "Bearer error=\"invalid_token\"");
                return r;
            }
            out.user = *name;
        }
        out.method = std::string(h.method_string());
        out.target = std::string(h.target());
        if (!parse_target(out.target, out.path, out.query)) return error_reply(400, "malformed request target");
        if (auto len = parser.content_length(); len && *len > a.body_limit(out.method, out.path))
            return error_reply(413, "body of " + std::to_string(*len) + " bytes is over the limit of " +
                                        std::to_string(a.body_limit(out.method, out.path)));
        out.content_type = std::string(h[bhttp::field::content_type]);
        out.client_ip = ip;
        return std::nullopt;
    }

    template <class Stream>
    static awaitable<void> serve(std::shared_ptr<impl> self, Stream& stream, std::string ip) {
        auto& lowest = beast::get_lowest_layer(stream);
        beast::flat_buffer buf;  // no cap of its own: the parser's header limit applies
        for (;;) {
            auto timeout = self->limit(self->opt.request_timeout);
            bhttp::request_parser<bhttp::string_body> parser;
            parser.header_limit(header_limit);
            // The body's limit depends on the route: check() compares the
            // Content-Length with it (413) once the header is read, and it is
            // set before the body is.
            parser.body_limit(std::numeric_limits<std::uint64_t>::max());
            lowest.expires_after(timeout);
            auto [ec, n] = co_await bhttp::async_read_header(stream, buf, parser, as_tuple);
            if (ec) {
                if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::eof ||
                    ec == asio::error::connection_reset || ec == asio::error::operation_aborted)
                    co_return;
                int status = ec == bhttp::error::header_limit ? 431 : 400;
                auto res = to_beast(error_reply(status, "malformed request: " + ec.message()), 11, false);
                lowest.expires_after(std::chrono::seconds(10));
                co_await bhttp::async_write(stream, res, as_tuple);
                co_return;
            }
            request req;
            auto refused = self->check(parser, ip, req);
            unsigned version = parser.get().version();
            if (refused) {
                // The body (if any) is not read: the connection closes after the answer.
                auto res = to_beast(*refused, version, false);
                lowest.expires_after(std::chrono::seconds(10));
                co_await bhttp::async_write(stream, res, as_tuple);
                co_return;
            }
            std::uint64_t limit = self->a.body_limit(req.method, req.path);
            parser.body_limit(limit);
            // The body is held in memory until the answer: it counts against
            // the process's budget for message data (server.data_memory_budget).
            struct reservation {
                std::uint64_t n = 0;
                ~reservation() {
                    if (n) base::release_data_memory(n);
                }
            } held;
            if (!parser.is_done()) {
                auto want = parser.content_length().value_or(limit);
                if (!base::reserve_data_memory(want, self->opt.memory_budget)) {
                    log()->warn("{}: [{}] body of {} octets refused: over the memory budget of {}", self->opt.name, ip,
                                want, self->opt.memory_budget);
                    auto res = to_beast(error_reply(503, "too much data in memory, try again later"), version, false);
                    res.set(bhttp::field::retry_after, "5");
                    lowest.expires_after(std::chrono::seconds(10));
                    co_await bhttp::async_write(stream, res, as_tuple);
                    co_return;
                }
                held.n = want;
                if (beast::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
                    bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, version};
                    co_await bhttp::async_write(stream, cont, as_tuple);
                }
                // A large import is given time by its size (1 MiB/s at least).
                auto len = parser.content_length().value_or(0);
                lowest.expires_after(timeout + std::chrono::seconds(len >> 20));
                auto [bec, bn] = co_await bhttp::async_read(stream, buf, parser, as_tuple);
                if (bec) {
                    if (bec == beast::error::timeout || bec == asio::error::eof || bec == bhttp::error::end_of_stream ||
                        bec == asio::error::connection_reset)
                        co_return;
                    int status = bec == bhttp::error::body_limit ? 413 : 400;
                    auto res = to_beast(error_reply(status, bec == bhttp::error::body_limit
                                                                ? "body over the limit of " + std::to_string(limit) + " bytes"
                                                                : "malformed request: " + bec.message()),
                                        version, false);
                    lowest.expires_after(std::chrono::seconds(10));
                    co_await bhttp::async_write(stream, res, as_tuple);
                    co_return;
                }
            }
            bool keep_alive = parser.get().keep_alive();
            req.body = std::move(parser.get().body());
            bool head = req.method == "HEAD";
            if (head) req.method = "GET";
            lowest.expires_never();  // the API's own time; its answer is bounded below
            bool inline_ok = self->a.runs_inline(req.method, req.path);
            std::string user = req.user;
            auto start = [self, inline_ok, r = std::move(req)](auto done) mutable {
                auto run = [self, r = std::move(r), done = std::move(done)]() mutable {
                    self->a.handle(r, [done = std::move(done)](response res) mutable { done(std::move(res)); });
                };
                if (inline_ok) run();
                else asio::post(self->workers, std::move(run));
            };
            response res = co_await smtp::async_from_callback<void(response)>(std::move(start), asio::use_awaitable);
            log()->info("{}: [{}] {} {} -> {}{}", self->opt.name, ip, head ? "HEAD" : std::string(parser.get().method_string()),
                        std::string(parser.get().target()).substr(0, 200), res.status,
                        user.empty() ? "" : " (token " + user + ")");
            auto out = to_beast(res, version, keep_alive);
            if (head) out.body().clear();  // Content-Length stays that of the GET
            lowest.expires_after(timeout);
            auto [wec, wn] = co_await bhttp::async_write(stream, out, as_tuple);
            if (wec || !keep_alive) co_return;
        }
    }

    static awaitable<void> session(std::shared_ptr<impl> self, tcp::socket sock) {
        boost::system::error_code ec;
        auto remote = sock.remote_endpoint(ec);
        if (ec) co_return;
        auto addr = remote.address();
        if (addr.is_v6() && addr.to_v6().is_v4_mapped()) addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
        std::string ip = addr.to_string();
        std::string group = smtp::client_group(ip, self->opt.ipv6_prefix);
        unsigned from_ip;
        {
            std::lock_guard lk(self->mu);
            from_ip = ++self->per_ip[group];
        }
        struct guard {
            impl& s;
            std::string ip;
            ~guard() {
                s.connections.fetch_sub(1);
                std::lock_guard lk(s.mu);
                if (auto it = s.per_ip.find(ip); it != s.per_ip.end() && --it->second == 0) s.per_ip.erase(it);
            }
        } g{*self, group};
        bool too_many = self->connections.fetch_add(1) >= self->opt.max_connections;
        bool too_many_here = self->opt.max_connections_per_ip && from_ip > self->opt.max_connections_per_ip;
        beast::tcp_stream plain(std::move(sock));
        if (too_many || too_many_here) {
            if (auto dropped = self->refusals_logged.admit())  // one line a second under a flood
                log()->warn("{}: refused [{}]: {}.{}{}", self->opt.name, ip, self->opt.name,
                            too_many ? "max_connections" : "max_connections_per_ip",
                            *dropped ? " (and " + std::to_string(*dropped) + " more since the last line)" : "");
            // Plain text even on a TLS port would be garbage to the client: there it is just closed.
            if (!self->use_tls) {
                auto res = to_beast(error_reply(503, too_many ? "too many connections" : "too many connections from your address"),
                                    11, false);
                plain.expires_after(std::chrono::seconds(5));
                co_await bhttp::async_write(plain, res, as_tuple);
            }
            co_return;
        }
        if (!self->use_tls) {
            co_await serve(self, plain, ip);
            plain.socket().shutdown(tcp::socket::shutdown_send, ec);
            co_return;
        }
        beast::ssl_stream<beast::tcp_stream> tls(std::move(plain), self->tls);
        beast::get_lowest_layer(tls).expires_after(self->limit(self->opt.request_timeout));
        auto [hec] = co_await tls.async_handshake(ssl::stream_base::server, as_tuple);
        if (hec) {
            log()->debug("[{}] TLS handshake: {}", ip, hec.message());
            co_return;
        }
        co_await serve(self, tls, ip);
        beast::get_lowest_layer(tls).expires_after(std::chrono::seconds(5));
        co_await tls.async_shutdown(as_tuple);
    }

    static awaitable<void> accept_loop(std::shared_ptr<impl> self, tcp::acceptor& acc) {
        for (;;) {
            auto [ec, sock] = co_await acc.async_accept(asio::make_strand(self->io), as_tuple);
            if (ec) {
                if (ec == asio::error::operation_aborted || !acc.is_open()) co_return;
                log()->warn("accept: {}", ec.message());
                asio::steady_timer t(self->io, std::chrono::milliseconds(100));
                co_await t.async_wait(as_tuple);
                continue;
            }
            auto ex = sock.get_executor();
            asio::co_spawn(ex, session(self, std::move(sock)), [](std::exception_ptr e) {
                if (!e) return;
                try {
                    std::rethrow_exception(e);
                } catch (const std::exception& ex) {
                    log()->error("session ended by exception: {}", ex.what());
                }
            });
        }
    }
};

listener_options api_listener(const config& cfg) {
    listener_options o;
    o.name = "http";
    o.listen = cfg.http.listen;
    o.tls_cert = cfg.http.tls_cert;
    o.tls_key = cfg.http.tls_key;
    o.request_timeout = cfg.http.request_timeout;
    o.max_connections = cfg.http.max_connections;
    o.max_connections_per_ip = cfg.http.max_connections_per_ip;
    o.ipv6_prefix = static_cast<int>(cfg.server.client_ipv6_prefix);
    o.memory_budget = cfg.server.data_memory_budget;
    o.check_host = true;
    o.hostname = cfg.server.hostname;
    o.trusted_networks = cfg.http.trusted_networks;
    o.tokens_file = cfg.http.tokens_file;
    o.need_token = true;
    return o;
}

listener_options unsubscribe_listener(const config& cfg) {
    listener_options o;
    o.name = "unsubscribe";
    o.listen = cfg.unsubscribe.listen;
    o.tls_cert = cfg.unsubscribe.tls_cert;
    o.tls_key = cfg.unsubscribe.tls_key;
    o.request_timeout = cfg.unsubscribe.request_timeout;
    o.max_connections = cfg.unsubscribe.max_connections;
    o.max_connections_per_ip = cfg.unsubscribe.max_connections_per_ip;
    o.ipv6_prefix = static_cast<int>(cfg.server.client_ipv6_prefix);
    o.memory_budget = cfg.server.data_memory_budget;
    return o;
}

server::server(asio::io_context& io, listener_options opt, handler& h)
    : impl_(std::make_shared<impl>(io, std::move(opt), h)) {}
server::~server() {
    stop();
    // A request still on the pool finishes before what it uses goes away.
    impl_->workers.stop();
    impl_->workers.join();
}

bool server::start(std::string& error) {
    auto& s = *impl_;
    for (auto& n : s.opt.trusted_networks) s.trusted.push_back(*smtp::parse_cidr(n));
    if (!s.opt.tokens_file.empty() && !s.tokens.load(s.opt.tokens_file, error)) {
        error = s.opt.name + ".tokens_file: " + error;
        return false;
    }
    if (!s.opt.tls_cert.empty()) {
        boost::system::error_code ec;
        s.tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                          ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
        s.tls.use_certificate_chain_file(s.opt.tls_cert.string(), ec);
        if (!ec) s.tls.use_private_key_file(s.opt.tls_key.string(), ssl::context::pem, ec);
        if (ec) {
            error = s.opt.name + ".tls_cert/tls_key: " + ec.message();
            return false;
        }
        s.use_tls = true;
    }
    for (auto& l : s.opt.listen) {
        std::string host;
        std::uint16_t port = 0;
        smtp::parse_host_port(l, host, port);
        boost::system::error_code ec;
        auto addr = asio::ip::make_address(host, ec);
        if (ec) {
            error = s.opt.name + ".listen: " + l + ": not an IP address";
            return false;
        }
        tcp::endpoint ep(addr, port);
        tcp::acceptor a(s.io);
        a.open(ep.protocol(), ec);
        if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
        if (!ec && addr.is_v6()) a.set_option(asio::ip::v6_only(true), ec);
        if (!ec) a.bind(ep, ec);
        if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) {
            error = s.opt.name + ".listen: cannot listen on " + l + ": " + ec.message();
            return false;
        }
        log()->info("{}: listening on {}{}", s.opt.name, l, s.use_tls ? " (TLS)" : "");
        s.acceptors.push_back(std::move(a));
    }
    for (auto& a : s.acceptors) asio::co_spawn(s.io, impl::accept_loop(impl_, a), asio::detached);
    return true;
}

void server::stop() {
    boost::system::error_code ec;
    for (auto& a : impl_->acceptors) a.close(ec);
}

}  // namespace ricochet::http
