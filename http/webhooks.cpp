// webhooks — see webhooks.hpp. Beast's HTTP client, one keep-alive
// connection per endpoint, on the endpoint's own thread and io_context.
#include "http/webhooks.hpp"

#include <fcntl.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "base/unique_fd.hpp"
#include "config/config.hpp"
#include "events/log_reader.hpp"
#include "events/event_json.hpp"
#include "events/metrics.hpp"
#include "http/http_util.hpp"
#include "queue/logger.hpp"

namespace ricochet::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using asio::ip::tcp;

namespace {
std::shared_ptr<spdlog::logger> log() {
    static auto l = named_logger("webhook");
    return l;
}

std::string short_hash(const std::string& s) {
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), md);
    static const char* d = "0123456789abcdef";
    std::string out;
    for (int i = 0; i < 8; ++i) {
        out += d[md[i] >> 4];
        out += d[md[i] & 15];
    }
    return out;
}

// The result of one POST: the status (0: none came) and what went wrong.
struct post_result {
    int status = 0;
    std::string error;
    bool timed_out = false;  // the receiver took longer than `timeout`
};

}  // namespace

struct webhook_dispatcher::endpoint {
    const config& cfg;
    const webhook& w;
    std::string label;  // host:port/path (no query: it may hold a key)
    std::filesystem::path cursor_file;
    std::atomic<std::uint64_t> cursor{0}, newest{0};
    std::atomic<std::uint64_t> delivered{0}, dropped{0}, failures{0};
    std::mutex mu;
    std::condition_variable cv;
    bool stopping = false;
    std::atomic<bool> halted{false};  // stop(): no new I/O is started
    std::thread thread;

    // The connection, kept between batches.
    asio::io_context io;
    ssl::context tls{ssl::context::tls_client};
    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;

    endpoint(const config& c, const webhook& wh) : cfg(c), w(wh) {
        // host:port/path; the query may hold a key, so only a hash of the
        // URL stands for it (two URLs that differ in the query stay apart).
        label = w.endpoint.host + ":" + std::to_string(w.endpoint.port) +
                w.endpoint.target.substr(0, w.endpoint.target.find('?'));
        if (w.endpoint.target.find('?') != std::string::npos) label += "?" + short_hash(w.url).substr(0, 6);
        cursor_file = cfg.server.spool_dir / "webhooks" / (short_hash(w.url) + ".cursor");
        if (w.endpoint.tls) {
            tls.set_verify_mode(ssl::verify_peer);
            boost::system::error_code ec;
            if (!cfg.delivery.tls_ca_file.empty()) tls.load_verify_file(cfg.delivery.tls_ca_file.string(), ec);
            else tls.set_default_verify_paths(ec);
        }
    }

    // Runs the io_context until its work is done (or for `limit`); false
    // once stop() was called: io.stop() from there must not be undone by a
    // restart here.
    bool run_io(std::optional<std::chrono::seconds> limit = std::nullopt) {
        if (halted) return false;
        io.restart();
        if (limit) io.run_for(*limit);
        else io.run();
        return !halted;
    }

    bool keep(std::string_view type) const {
        for (auto& e : w.events)
            if (e == "*" || e == type) return true;
        return false;
    }

    bool save_cursor(std::uint64_t seq) {
        if (auto ec = base::replace_file(cursor_file, std::to_string(seq) + "\n")) {
            log()->error("{}: cannot save the cursor in {}: {}", label, cursor_file.string(), ec.message());
            return false;
        }
        return true;
    }

    void close_connection() {
        boost::system::error_code ec;
        if (plain) plain->socket().close(ec);
        if (secure) beast::get_lowest_layer(*secure).socket().close(ec);
        plain.reset();
        secure.reset();
    }

    template <class Stream>
    post_result exchange(Stream& s, bhttp::request<bhttp::string_body>& req) {
        post_result r;
        auto& lowest = beast::get_lowest_layer(s);
        lowest.expires_after(std::chrono::seconds(w.timeout));
        boost::system::error_code ec;
        bhttp::response<bhttp::string_body> res;
        beast::flat_buffer buf;
        bhttp::response_parser<bhttp::string_body> parser;
        parser.body_limit(1 << 20);  // what the receiver says is read and dropped
        bool done = false;
        bhttp::async_write(s, req, [&](boost::system::error_code wec, std::size_t) {
            if (wec) {
                ec = wec;
                done = true;
                return;
            }
            bhttp::async_read(s, buf, parser, [&](boost::system::error_code rec, std::size_t) {
                ec = rec;
                done = true;
            });
        });
        if (!run_io()) return {0, "stopping"};
        if (!done || ec) {
            r.error = ec ? ec.message() : "no answer";
            r.timed_out = ec == beast::error::timeout;
            close_connection();
            return r;
        }
        r.status = static_cast<int>(parser.get().result_int());
        if (!parser.get().keep_alive()) close_connection();
        return r;
    }

    post_result connect() {
        post_result r;
        tcp::resolver resolver(io);
        boost::system::error_code ec;
        tcp::resolver::results_type addrs;
        bool resolved = false;
        resolver.async_resolve(w.endpoint.host, std::to_string(w.endpoint.port),
                               [&](boost::system::error_code e, tcp::resolver::results_type res) {
                                   ec = e;
                                   addrs = std::move(res);
                                   resolved = true;
                               });
        if (!run_io(std::chrono::seconds(w.timeout))) return {0, "stopping"};
        if (!resolved) {  // too slow: cancelled, and its handler run now, while what it refers to exists
            resolver.cancel();
            io.restart();
            io.run();
            ec = asio::error::timed_out;
        }
        if (ec || addrs.empty()) {
            r.error = "cannot resolve " + w.endpoint.host + (ec ? ": " + ec.message() : "");
            return r;
        }
        auto stream = std::make_unique<beast::tcp_stream>(io);
        stream->expires_after(std::chrono::seconds(w.timeout));
        bool done = false;
        stream->async_connect(addrs, [&](boost::system::error_code e, const tcp::endpoint&) {
            ec = e;
            done = true;
        });
        if (!run_io()) return {0, "stopping"};
        if (!done || ec) {
            r.error = "cannot connect to " + label + ": " + (ec ? ec.message() : "time-out");
            return r;
        }
        if (!w.endpoint.tls) {
            plain = std::move(stream);
            return r;
        }
        auto s = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(*stream), tls);
        SSL_set_tlsext_host_name(s->native_handle(), w.endpoint.host.c_str());
        s->set_verify_callback(ssl::host_name_verification(w.endpoint.host));
        beast::get_lowest_layer(*s).expires_after(std::chrono::seconds(w.timeout));
        done = false;
        s->async_handshake(ssl::stream_base::client, [&](boost::system::error_code e) {
            ec = e;
            done = true;
        });
        if (!run_io()) return {0, "stopping"};
        if (!done || ec) {
            r.error = "TLS with " + label + ": " + (ec ? ec.message() : "time-out");
            return r;
        }
        secure = std::move(s);
        return r;
    }

    post_result post(const std::string& body) {
        bhttp::request<bhttp::string_body> req{bhttp::verb::post, w.endpoint.target, 11};
        bool ipv6 = w.endpoint.host.find(':') != std::string::npos;
        std::string host = ipv6 ? "[" + w.endpoint.host + "]" : w.endpoint.host;
        bool default_port = w.endpoint.port == (w.endpoint.tls ? 443 : 80);
        req.set(bhttp::field::host, default_port ? host : host + ":" + std::to_string(w.endpoint.port));
        req.set(bhttp::field::user_agent, "Ricochet-Webhook/1");
        req.set(bhttp::field::content_type, "application/json");
        req.set("Ricochet-Signature", webhook_signature(w.secret, std::time(nullptr), body));
        req.keep_alive(true);
        req.body() = body;
        req.prepare_payload();
        // A kept connection the receiver closed meanwhile fails at once: one fresh try.
        for (int attempt = 0; attempt < 2; ++attempt) {
            bool reused = plain || secure;
            if (!reused) {
                auto c = connect();
                if (!c.error.empty()) return c;
            }
            auto r = plain ? exchange(*plain, req) : exchange(*secure, req);
            // Only a connection found closed is tried again at once; a
            // receiver that was too slow waits for the backoff like any failure.
            if (r.status || !reused || r.timed_out || halted) return r;
        }
        return {0, "connection lost"};
    }

    void run() {
        auto backoff = std::chrono::seconds(5);
        const auto max_backoff = std::chrono::seconds(600);
        for (;;) {
            {
                std::unique_lock lk(mu);
                cv.wait_for(lk, std::chrono::seconds(5), [&] { return stopping || newest.load() > cursor.load(); });
                if (stopping) return;
            }
            events::log_query q;
            q.after = cursor.load();
            q.limit = w.batch;
            q.keep = [this](std::string_view t) { return keep(t); };
            std::error_code ec;
            auto batch = events::read_log_rotated(cfg.server.events_log, q, ec);
            if (ec) {
                log()->error("{}: cannot read {}: {}", label, cfg.server.events_log.string(), ec.message());
                if (wait(std::chrono::seconds(5))) return;
                continue;
            }
            newest = std::max(newest.load(), batch.last_seq);
            if (batch.lines.empty()) {
                if (batch.last_seq > cursor.load()) {  // only filtered-out events: move past them
                    cursor = batch.last_seq;
                    save_cursor(cursor);
                }
                continue;
            }
            std::string body = "[";
            for (std::size_t i = 0; i < batch.lines.size(); ++i) {
                if (i) body += ',';
                body += batch.lines[i];
            }
            body += "]";
            for (;;) {
                auto r = post(body);
                if (r.status >= 200 && r.status < 300) {
                    // Counted before the cursor moves: a reader that sees
                    // no backlog sees these counted too.
                    delivered += batch.lines.size();
                    cursor = batch.last_seq;
                    save_cursor(cursor);
                    backoff = std::chrono::seconds(5);
                    break;
                }
                ++failures;
                // The oldest event of the batch decides whether it is still worth sending.
                auto oldest = events::from_json(nlohmann::json::parse(batch.lines.front(), nullptr, false));
                auto age_ms = oldest ? std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::system_clock::now().time_since_epoch()).count() - oldest->time_ms
                                     : 0;
                if (age_ms > std::int64_t(w.max_age.count()) * 1000) {
                    log()->error("{}: dropped {} event(s) (seq {}..{}) older than max_age {}s after: {}", label,
                                 batch.lines.size(), events::line_seq(batch.lines.front()), batch.last_seq,
                                 w.max_age.count(), r.status ? "status " + std::to_string(r.status) : r.error);
                    dropped += batch.lines.size();
                    cursor = batch.last_seq;
                    save_cursor(cursor);
                    break;
                }
                log()->warn("{}: {} event(s) not accepted ({}); again in {}s", label, batch.lines.size(),
                            r.status ? "status " + std::to_string(r.status) : r.error, backoff.count());
                if (wait(backoff)) return;
                backoff = std::min(backoff * 2, max_backoff);
            }
        }
    }

    // Sleeps d unless stopped (true: stop).
    bool wait(std::chrono::seconds d) {
        std::unique_lock lk(mu);
        return cv.wait_for(lk, d, [&] { return stopping; });
    }
};

webhook_dispatcher::webhook_dispatcher(const config& cfg) : cfg_(cfg) {
    for (auto& w : cfg.webhooks) endpoints_.push_back(std::make_unique<endpoint>(cfg, w));
}

webhook_dispatcher::~webhook_dispatcher() { stop(); }

bool webhook_dispatcher::start(std::string& error) {
    if (endpoints_.empty()) return true;
    std::error_code ec;
    auto dir = cfg_.server.spool_dir / "webhooks";
    std::filesystem::create_directories(dir, ec);
    if (ec) {
        error = "cannot create " + dir.string() + ": " + ec.message();
        return false;
    }
    std::error_code lec;
    auto end_of_log = events::last_seq_in_logs(cfg_.server.events_log, lec);
    for (auto& e : endpoints_) {
        std::ifstream in(e->cursor_file);
        std::uint64_t c = 0;
        std::error_code fec;
        bool exists = std::filesystem::exists(e->cursor_file, fec);
        if (in >> c) {
            e->cursor = c;
        } else if (exists) {
            // A cursor file that does not read (a disk fault): everything in
            // the log is sent again (at least once) rather than skipped.
            log()->error("{}: cursor file {} does not read: sending the whole event log again", e->label,
                         e->cursor_file.string());
            e->cursor = 0;
        } else {
            e->cursor = end_of_log;  // a new endpoint: from now on
            if (!e->save_cursor(end_of_log)) {
                error = "cannot write " + e->cursor_file.string();
                return false;
            }
        }
        e->newest = std::max<std::uint64_t>(end_of_log, e->cursor);
        log()->info("{}: events after seq {} ({} waiting)", e->label, e->cursor.load(),
                    e->newest.load() - e->cursor.load());
        e->thread = std::thread([ep = e.get()] { ep->run(); });
    }
    return true;
}

void webhook_dispatcher::stop() {
    for (auto& e : endpoints_) {
        {
            std::lock_guard lk(e->mu);
            e->stopping = true;
        }
        e->cv.notify_all();
        e->halted = true;
        e->io.stop();  // a POST in flight ends now (it is sent again after the restart)
        if (e->thread.joinable()) e->thread.join();
    }
}

void webhook_dispatcher::write(const std::vector<events::event>& evs) {
    if (evs.empty() || endpoints_.empty()) return;
    std::uint64_t top = 0;
    for (auto& e : evs) top = std::max(top, e.seq);
    for (auto& ep : endpoints_) {
        if (top <= ep->newest.load()) continue;
        ep->newest = top;
        ep->cv.notify_all();
    }
}

void webhook_dispatcher::add_metrics(events::metrics& m) {
    if (endpoints_.empty()) return;
    auto each = [this](auto value) {
        return [this, value] {
            std::vector<events::gauge_sample> out;
            for (auto& e : endpoints_) out.push_back({{{"webhook", e->label}}, double(value(*e))});
            return out;
        };
    };
    m.add_gauge("ricochet_webhook_backlog", "Events after the endpoint's cursor (of every type; its own are a part).",
                each([](endpoint& e) { return e.newest.load() > e.cursor.load() ? e.newest.load() - e.cursor.load() : 0; }));
    m.add_counter("ricochet_webhook_delivered_total", "Events the endpoint acknowledged.",
                  each([](endpoint& e) { return e.delivered.load(); }));
    m.add_counter("ricochet_webhook_dropped_total", "Events dropped after max_age without a 2xx.",
                  each([](endpoint& e) { return e.dropped.load(); }));
    m.add_counter("ricochet_webhook_failures_total", "POSTs that failed (no connection, time-out, not 2xx).",
                  each([](endpoint& e) { return e.failures.load(); }));
}

}  // namespace ricochet::http
