// delivery — see delivery.hpp.
#include "delivery/delivery.hpp"
#include "queue/clock.hpp"

#include <boost/asio.hpp>
#include <atomic>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "queue/logger.hpp"
#include <unordered_map>
#include <unordered_set>

#include "bounce/classifier.hpp"
#include "bounce/destination_backoff.hpp"
#include "bounce/verp.hpp"
#include "dns/idn.hpp"
#include "dns/resolver.hpp"
#include "config/config.hpp"
#include "smtp/network.hpp"
#include "smtp/smtp_client.hpp"
#include "queue/dsn_writer.hpp"
#include "events/make.hpp"
#include "events/publisher.hpp"
#include "queue/schedule.hpp"
#include "smtp/async_spool.hpp"
#include "queue/spool.hpp"

namespace ricochet::delivery {
namespace asio = boost::asio;
using smtp::client_options;
using smtp::smtp_connection;
using smtp::parse_host_port;
using smtp::async_commit;
using smtp::async_from_callback;
using asio::awaitable;
using asio::ip::tcp;
using bounce::smtp_reply;
using nlohmann::json;
constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

std::shared_ptr<spdlog::logger> log() {
    static auto l = named_logger("delivery");
    return l;
}

struct retry_policy {
    std::int64_t interval_ms, max_age_ms;
};
}  // namespace

struct delivery_agent::impl : std::enable_shared_from_this<impl> {
    asio::io_context& io;
    asio::strand<asio::io_context::executor_type> strand;
    const config& cfg;
    queue::spool& spool;
    queue::schedule& due;
    events::publisher& publisher;
    const bounce::verp_signer& verp;
    const bounce::classifier& classify;
    bounce::destination_backoff& backoff;
    asio::ssl::context tls{asio::ssl::context::tls_client};
    client_options copt;
    asio::steady_timer wakeup;
    dns::resolver resolver;
    bool stopping = false, woken = false;
    std::atomic<unsigned> inflight{0};
    static constexpr unsigned max_inflight = 2000;
    std::unordered_set<std::string> busy;
    std::unordered_set<std::string> rerun;  // became due again while being delivered

    struct pool {
        unsigned open = 0;
        std::vector<std::unique_ptr<smtp_connection>> idle;
        std::deque<std::shared_ptr<asio::steady_timer>> waiters;
    };
    std::unordered_map<std::string, pool> pools;

    impl(asio::io_context& i, const config& c, queue::spool& s, queue::schedule& d, events::publisher& e,
         const bounce::verp_signer& v, const bounce::classifier& cl, bounce::destination_backoff& bo)
        : io(i), strand(asio::make_strand(i)), cfg(c), spool(s), due(d), publisher(e), verp(v), classify(cl), backoff(bo),
          wakeup(strand),
          resolver(strand, c.delivery.dns_servers, c.delivery.dns_timeout) {
        std::string err;
        if (!resolver.ok(err)) log()->error("DNS resolver: {}", err);
        // Opportunistic and "required" encrypt without verifying the peer, as
        // most MX hosts have no certificate a sender could check (RFC 7435),
        // unless delivery.tls_verify asks for the chain and the MX name.
        if (cfg.delivery.tls_verify) {
            tls.set_verify_mode(asio::ssl::verify_peer);
            boost::system::error_code vec;
            if (!cfg.delivery.tls_ca_file.empty()) tls.load_verify_file(cfg.delivery.tls_ca_file.string(), vec);
            else tls.set_default_verify_paths(vec);
            if (vec) log()->error("delivery.tls_ca_file: {}", vec.message());
        } else {
            tls.set_verify_mode(asio::ssl::verify_none);
        }
        SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
        copt.helo_name = cfg.server.hostname;
        copt.tls = cfg.delivery.tls;
        copt.tls_verify = cfg.delivery.tls_verify;
        copt.connect_timeout = cfg.delivery.connect_timeout;
        copt.greeting_timeout = cfg.delivery.command_timeout;
        copt.command_timeout = cfg.delivery.command_timeout;
        copt.data_timeout = cfg.delivery.data_timeout;
    }

    retry_policy retry_for(const std::string& domain) const {
        for (auto& o : cfg.retry.domains)
            if (queue::recipient_domain("@" + o.domain) == domain)
                return {o.interval.count() * 1000, o.max_age.count() * 1000};
        return {cfg.retry.interval.count() * 1000, cfg.retry.max_age.count() * 1000};
    }

    std::optional<std::pair<std::string, std::uint16_t>> next_hop(const std::string& domain) const {
        for (auto& r : cfg.delivery.routes) {
            if (queue::recipient_domain("@" + r.domain) != domain) continue;
            std::string host;
            std::uint16_t port;
            if (parse_host_port(r.host, host, port)) return std::pair{host, port};
        }
        return std::nullopt;
    }

    void wake_on_strand() {
        woken = true;
        wakeup.cancel();
    }

    awaitable<void> dispatcher() {
        auto self = shared_from_this();
        while (!stopping) {
            woken = false;
            auto now = now_ms();
            while (inflight < max_inflight) {
                auto id = due.pop_due(now);
                if (!id) break;
                if (!busy.insert(*id).second) {
                    rerun.insert(*id);  // due again (release, flush) while in delivery: look again after
                    continue;
                }
                ++inflight;
                asio::co_spawn(strand, deliver_message(*id), [self, id = *id](std::exception_ptr e) {
                    if (e) {
                        try {
                            std::rethrow_exception(e);
                        } catch (const std::exception& ex) {
                            log()->error("{}: delivery ended by exception: {}; retried in 60 s", id, ex.what());
                        }
                        self->due.add(id, now_ms() + 60000);
                    }
                    --self->inflight;
                    self->busy.erase(id);
                    if (self->rerun.erase(id)) self->due.add(id, now_ms());
                    self->wake_on_strand();
                });
            }
            sweep_idle();
            if (woken) continue;
            auto next = due.next_due();
            std::int64_t wait = 1000;
            if (next && inflight < max_inflight) wait = std::clamp<std::int64_t>(*next - now_ms(), 0, 1000);
            wakeup.expires_after(std::chrono::milliseconds(wait));
            co_await wakeup.async_wait(as_tuple);
        }
    }

    static awaitable<void> close_connection(std::unique_ptr<smtp_connection> c) { co_await c->quit(); }

    // Idle connections are closed after a few seconds, before the server's
    // own time-out would close them under us.
    void sweep_idle() {
        auto limit = std::chrono::steady_clock::now() - std::chrono::seconds(5);
        for (auto& [domain, p] : pools) {
            for (auto it = p.idle.begin(); it != p.idle.end();) {
                if ((*it)->idle_since < limit || !(*it)->usable()) {
                    --p.open;
                    asio::co_spawn(strand, close_connection(std::move(*it)), asio::detached);
                    it = p.idle.erase(it);
                } else {
                    ++it;
                }
            }
        }
    }

    // A connection to the domain: an idle one, a new one within the limit,
    // or, at the limit, the next one released. nullptr with `failure` set
    // when no host could be reached.
    struct hop {
        std::string host;  // MX (or route) host name: SNI and the log
        tcp::endpoint ep;
    };

    // fresh: a new connection, not an idle one (an idle one just turned out
    // to be closed by the server, and its siblings likely are too); one idle
    // connection is closed to make room when the pool is full.
    awaitable<std::unique_ptr<smtp_connection>> acquire(const std::string& domain, const std::vector<hop>& hops,
                                                        smtp_reply& failure, bool fresh = false) {
        auto& p = pools[domain];
        for (;;) {
            while (!p.idle.empty()) {
                auto c = std::move(p.idle.back());
                p.idle.pop_back();
                if (c->usable() && !fresh) co_return c;
                --p.open;
                if (fresh) {
                    if (c->usable()) asio::co_spawn(strand, close_connection(std::move(c)), asio::detached);
                    break;
                }
            }
            if (p.open < cfg.delivery.max_connections_per_domain) {
                ++p.open;
                // Gives the slot back on every way out but success, exceptions included.
                struct slot_guard {
                    pool& p;
                    bool armed = true;
                    ~slot_guard() {
                        if (!armed) return;
                        --p.open;
                        notify_waiter(p);
                    }
                } guard{p};
                // Each address of each exchanger in turn, until one answers
                // with a greeting we can use (RFC 5321 5.1). A temporary
                // failure anywhere makes the whole attempt temporary: one
                // host's 5xx greeting must not bounce mail another host
                // would have taken.
                asio::any_io_executor ex = strand;
                std::optional<smtp_reply> temporary;
                for (auto& h : hops) {
                    bool with_tls = copt.tls != "off";
                    for (int pass = 0; pass < 2; ++pass) {
                        auto r = co_await smtp_connection::open(ex, h.ep, h.host, copt, tls, with_tls);
                        if (r.conn) {
                            guard.armed = false;
                            co_return std::move(r.conn);
                        }
                        failure = std::move(r.failure);
                        log()->info("{}: {} [{}]: {}", domain, h.host, h.ep.address().to_string(), failure.text());
                        // Opportunistic TLS that fails in the handshake: once more in plain text.
                        if (!(r.tls_failed && copt.tls == "opportunistic" && with_tls)) break;
                        with_tls = false;
                    }
                    if (!failure.permanent() && !temporary) temporary = failure;
                }
                if (temporary) failure = *temporary;
                co_return nullptr;
            }
            auto t = std::make_shared<asio::steady_timer>(strand, asio::steady_timer::time_point::max());
            p.waiters.push_back(t);
            co_await t->async_wait(as_tuple);
        }
    }

    static void notify_waiter(pool& p) {
        if (p.waiters.empty()) return;
        p.waiters.front()->cancel();
        p.waiters.pop_front();
    }

    void release(const std::string& domain, std::unique_ptr<smtp_connection> c) {
        auto& p = pools[domain];
        if (c && c->usable() && c->transactions() < cfg.delivery.max_messages_per_connection) {
            p.idle.push_back(std::move(c));
        } else {
            --p.open;
            if (c) asio::co_spawn(strand, close_connection(std::move(c)), asio::detached);
        }
        notify_waiter(p);
    }

    static smtp_reply dns_reply(int code, std::string enhanced, std::string text) {
        smtp_reply r = smtp_reply::none(bounce::stage::dns, std::move(text));
        r.code = code;
        r.enhanced = std::move(enhanced);
        return r;
    }

    // Where mail for the domain goes: a [[delivery.route]], or its MX hosts
    // (A/AAAA of the domain itself when it has none) on delivery.port. False
    // with `why` set when there is nowhere to go: a 5xx `why` fails the
    // recipients (no such domain, null MX), one without a code defers them.
    awaitable<bool> find_hops(const std::string& domain, std::vector<hop>& hops, smtp_reply& why) {
        if (auto route = next_hop(domain)) {
            tcp::resolver res(strand);
            std::string service = std::to_string(route->second);  // named: no temporaries in co_await (GCC 12)
            auto [ec, results] = co_await res.async_resolve(route->first, service, as_tuple);
            if (ec) {
                why = smtp_reply::none(bounce::stage::dns, "cannot resolve route " + route->first + ": " + ec.message());
                co_return false;
            }
            for (auto& r : results) hops.push_back({route->first, r.endpoint()});
            co_return true;
        }
        auto ascii = dns::to_ascii_domain(domain);
        if (!ascii) {
            why = dns_reply(553, "5.1.2", "invalid internationalised domain name " + domain);
            co_return false;
        }
        auto mx = co_await resolver.mx(*ascii);
        switch (mx.status) {
            case dns::dns_status::ok: break;
            case dns::dns_status::null_mx:
                why = dns_reply(556, "5.1.10", mx.error);  // RFC 7505 3.2
                co_return false;
            case dns::dns_status::nxdomain:
            case dns::dns_status::no_data:
                why = dns_reply(550, "5.1.2", "Host or domain name not found: " + mx.error);
                co_return false;
            case dns::dns_status::temporary:
                why = smtp_reply::none(bounce::stage::dns, mx.error);
                co_return false;
        }
        bool temporary = false;
        std::string last_error;
        for (std::size_t i = 0; i < mx.hosts.size() && i < 10; ++i) {
            const std::string& name = mx.hosts[i].name;
            auto addrs = co_await resolver.addresses(name);
            if (addrs.status == dns::dns_status::temporary) temporary = true;
            if (addrs.status != dns::dns_status::ok) last_error = addrs.error;
            for (auto& a : addrs.addresses) {
                boost::system::error_code ec;
                auto ip = asio::ip::make_address(a, ec);
                if (!ec) hops.push_back({mx.hosts[i].name, tcp::endpoint(ip, cfg.delivery.port)});
            }
        }
        if (!hops.empty()) co_return true;
        if (mx.implicit && !temporary) {
            // No MX and no address: the domain cannot receive mail.
            why = dns_reply(550, "5.1.2", "Host or domain name not found: " + domain + " has no MX and no A/AAAA record");
        } else {
            // MX hosts without addresses are usually a passing mistake: retry.
            why = smtp_reply::none(bounce::stage::dns, "no address for any MX host of " + domain + ": " + last_error);
        }
        co_return false;
    }

    struct outcome {
        std::size_t idx;
        smtp_reply reply;
        std::string mx;
    };

    awaitable<void> deliver_domain(const std::string& id, const std::string& domain, const std::vector<std::size_t>& idxs,
                                   const queue::envelope& env, const std::string& content, std::vector<outcome>& out) {
        auto defer_all = [&](std::size_t from, const smtp_reply& why, const std::string& mx) {
            for (std::size_t k = from; k < idxs.size(); ++k) out.push_back({idxs[k], why, mx});
        };
        std::vector<hop> hops;
        smtp_reply why;
        if (!co_await find_hops(domain, hops, why)) {
            defer_all(0, why, "");
            co_return;
        }
        for (std::size_t k = 0; k < idxs.size(); ++k) {
            std::size_t idx = idxs[k];
            // A paused destination (rate limit, reputation, blocklist) is not
            // tried: the recipients left stay pending until the pause ends.
            if (auto until = backoff.paused_until(domain, now_ms())) {
                log()->info("{}: {} paused for {} s more: {} recipient(s) not tried", id, domain,
                            (*until - now_ms() + 999) / 1000, idxs.size() - k);
                co_return;
            }
            smtp_reply failure;
            auto conn = co_await acquire(domain, hops, failure);
            if (!conn) {
                // A throttling greeting or EHLO reply pauses the destination too.
                if (auto c = classify.classify(failure, domain); c.s == bounce::scope::destination) {
                    auto until = backoff.pause(domain, now_ms());
                    log()->warn("{}: destination {} paused for {} s after a {} reply ({})", id, domain,
                                (until - now_ms() + 999) / 1000, bounce::to_string(c.c), failure.text());
                }
                defer_all(k, failure, "");
                co_return;
            }
            std::string rp = env.sender.empty() ? std::string()
                                                : verp.return_path({id, static_cast<std::uint32_t>(idx)},
                                                                   cfg.bounce_listener.domain);
            smtp_connection::transaction t;
            try {
                t = co_await conn->send(rp, env.recipients[idx], content, env.smtputf8, env.eightbit);
            } catch (...) {
                release(domain, nullptr);  // the slot, not the broken connection
                throw;
            }
            if (t.connection_lost && t.before_data && t.reply.code == 0 && conn->transactions() > 1) {
                // A reused connection the server had already closed: that says
                // nothing about this recipient. Once more on a fresh connection.
                release(domain, nullptr);
                conn.reset();
                conn = co_await acquire(domain, hops, failure, true);
                if (!conn) {
                    defer_all(k, failure, "");
                    co_return;
                }
                try {
                    t = co_await conn->send(rp, env.recipients[idx], content, env.smtputf8, env.eightbit);
                } catch (...) {
                    release(domain, nullptr);
                    throw;
                }
            }
            std::string mx = conn->mx() + "[" + conn->ip() + "]";
            if (t.reply.positive()) {
                backoff.reset(domain);
            } else if (auto c = classify.classify(t.reply, domain); c.s == bounce::scope::destination) {
                auto until = backoff.pause(domain, now_ms());
                log()->warn("{}: destination {} paused for {} s after a {} reply ({})", id, domain,
                            (until - now_ms() + 999) / 1000, bounce::to_string(c.c), t.reply.text());
            }
            out.push_back({idx, std::move(t.reply), mx});
            release(domain, std::move(conn));
        }
    }

    retry_policy policy_for(const queue::envelope& env, std::size_t idx) const {
        return retry_for(queue::recipient_domain(env.recipients[idx]));
    }

    // One decision for one recipient, from one attempt's reply.
    queue::recipient_status decide(const queue::envelope& env, const queue::recipient_status& prev, const outcome& o,
                                   std::int64_t now) const {
        auto rs = prev;
        rs.attempts += 1;
        rs.last_attempt_ms = now;
        rs.code = o.reply.code;
        rs.enhanced = o.reply.enhanced;
        rs.stage = std::string(bounce::to_string(o.reply.at));
        rs.mx = o.mx;
        rs.reply = o.reply.text();
        if (o.reply.positive()) {
            rs.status = "delivered";
            rs.kind = rs.category = rs.rule = "";
            return rs;
        }
        auto c = classify.classify(o.reply, queue::recipient_domain(env.recipients[o.idx]));
        rs.kind = std::string(bounce::to_string(c.k));
        rs.category = std::string(bounce::to_string(c.c));
        rs.rule = c.rule;
        rs.status = c.retry ? "deferred" : "bounced";  // a final soft reply stops here too
        return rs;
    }

    // Makes decisions durable (status file first), then tells the world.
    // durable = false when the message is about to be removed anyway: its
    // status file would be written, synced and deleted in the same breath
    // (the hot path of every delivered message; at worst a crash in between
    // repeats a delivery, as any MTA's at-least-once promise allows).
    bool record(const std::string& id, const queue::envelope& env, std::vector<queue::recipient_status>& status,
                const std::vector<std::pair<std::size_t, queue::recipient_status>>& updates, std::int64_t now,
                bool durable = true) {
        if (updates.empty()) return true;
        if (auto ec = durable ? spool.append_status(id, updates) : std::error_code()) {
            // Not recorded: tried again later, which may repeat a delivery but
            // never loses a decision or the mail.
            log()->error("{}: cannot record recipient status: {}; retried in 60 s", id, ec.message());
            return false;
        }
        std::vector<events::event> evs;
        for (auto& [idx, rs] : updates) {
            status[idx] = rs;
            log()->info("{}: to=<{}>, relay={}, delay={}, dsn={}, status={}{}{} ({})", id, env.recipients[idx],
                        rs.mx.empty() ? "none" : rs.mx, (now - env.arrival_ms) / 1000,
                        rs.enhanced.empty() ? (rs.code ? std::to_string(rs.code / 100) + ".0.0" : "4.4.1") : rs.enhanced,
                        rs.status, rs.kind.empty() ? "" : " " + rs.kind + "/" + rs.category,
                        rs.rule.empty() ? "" : " rule=" + rs.rule, rs.reply);
            evs.push_back(events::attempt_outcome(*events::parse_event_type(rs.status), id, env.campaign,
                                                  env.recipients[idx], {rs.code, rs.enhanced, rs.reply, rs.mx, rs.stage},
                                                  {rs.kind, rs.category, rs.rule}, rs.attempts, now));
        }
        publisher.publish(std::move(evs));
        return true;
    }

    // Resumes once every decision posted so far is in the state store,
    // without holding a thread meanwhile. A finished message's file is
    // removed only after: its decisions (a hard bounce that suppresses the
    // address) must survive a crash, and the file is their only other record.
    awaitable<void> decisions_stored() {
        auto start = [this](auto done) { publisher.publish({}, std::move(done)); };  // an empty batch, applied in order
        co_await async_from_callback<void()>(start, asio::use_awaitable);
    }

    // bounce.return_to_sender: when a message is finished, one DSN to its
    // sender listing every recipient that failed, queued like any message
    // from the null sender. True when there is nothing to send or it is
    // queued (durably: the original is removed only after).
    awaitable<bool> return_to_sender(const std::string& id, const queue::envelope& env, const std::string& content,
                                     const std::vector<queue::recipient_status>& status) {
        if (!cfg.bounce.return_to_sender) co_return true;
        if (env.sender.empty()) co_return true;  // never answer a bounce with a bounce
        if (queue::domain_within(queue::recipient_domain(env.sender), queue::recipient_domain("@" + cfg.bounce_listener.domain)))
            co_return true;  // our own return path: the DSN would come straight back to the listener
        std::vector<queue::failed_recipient> failed;
        for (std::size_t i = 0; i < status.size(); ++i) {
            auto& rs = status[i];
            if (rs.status == "bounced" || rs.status == "expired")
                failed.push_back({env.recipients[i],
                                  rs.enhanced.empty() ? (rs.code >= 500 ? "5.0.0" : "4.0.0") : rs.enhanced, rs.reply,
                                  rs.mx});
        }
        if (failed.empty()) co_return true;
        auto dsn = queue::dsn_envelope(spool.new_id(), env, cfg.server.hostname);
        dsn.arrival_ms = now_ms();
        auto text = queue::write_dsn(cfg.server.hostname, env, content, failed, dsn.arrival_ms);
        auto dsn_id = dsn.id;
        auto op = async_commit(spool, std::move(dsn), std::move(text), asio::use_awaitable);
        std::error_code ec = co_await std::move(op);
        if (ec) {
            log()->error("{}: cannot queue the DSN for <{}>: {}; tried again in 60 s", id, env.sender, ec.message());
            co_return false;
        }
        log()->info("{}: returned {} failure(s) to <{}> as {}", id, failed.size(), env.sender, dsn_id);
        co_return true;
    }

    awaitable<void> deliver_message(std::string id) {
        auto st = spool.locate(id);
        if (!st) co_return;  // delivered, bounced or deleted meanwhile
        auto now = now_ms();
        if (*st == queue::queue_state::deferred) {
            // A stale schedule entry (e.g. from before a hold/release): not due yet.
            if (auto m = spool.mtime_ms(id, *st); m && *m > now + 1000) co_return;
        }
        queue::envelope env;
        std::string content;
        std::error_code ec;
        if ((ec = spool.read_message(id, *st, env, content))) {
            if (ec == std::errc::illegal_byte_sequence) {
                // Written whole once, unreadable now (a disk fault): kept for a human.
                auto qec = spool.quarantine(id, *st);
                log()->error("{}: queue file in {}/ does not decode; moved to corrupt/{}", id, queue::to_string(*st),
                             qec ? " failed: " + qec.message() : "");
                if (qec) due.add(id, now + 60000);
            } else if (ec != std::errc::no_such_file_or_directory) {
                log()->error("{}: cannot read queue file: {}; retried in 60 s", id, ec.message());
                due.add(id, now + 60000);
            } else if (auto moved = spool.locate(id)) {
                due.add(id, now);  // moved under us (hold/release/flush): look again
            }
            co_return;
        }
        auto status = spool.read_status(id, env.recipients.size(), ec);
        if (ec) {
            log()->error("{}: cannot read recipient status: {}; retried in 60 s", id, ec.message());
            due.add(id, now + 60000);
            co_return;
        }

        // Expiry comes first and holds whatever the message's state (held,
        // never tried): the recipient fails with its last reply's reading.
        std::vector<std::pair<std::size_t, queue::recipient_status>> expired;
        std::map<std::string, std::vector<std::size_t>> by_domain;
        for (std::size_t i = 0; i < env.recipients.size(); ++i) {
            if (status[i].final()) continue;
            if (now >= env.arrival_ms + policy_for(env, i).max_age_ms) {
                auto rs = status[i];
                rs.status = "expired";
                if (rs.category.empty()) {  // never answered (held, paused): nothing against the address
                    rs.kind = "technical";
                    rs.category = "network-error";
                }
                expired.emplace_back(i, rs);
            } else {
                by_domain[queue::recipient_domain(env.recipients[i])].push_back(i);
            }
        }
        if (!record(id, env, status, expired, now)) {
            due.add(id, now + 60000);
            co_return;
        }
        if (*st == queue::queue_state::hold) {
            log()->info("{}: on hold, not delivered", id);  // release schedules it again
        } else {
            for (auto& [domain, idxs] : by_domain) {
                std::vector<outcome> results;
                co_await deliver_domain(id, domain, idxs, env, content, results);
                // Recorded per domain, so a stop or crash later in this message
                // never sends these recipients again.
                auto t = now_ms();
                std::vector<std::pair<std::size_t, queue::recipient_status>> updates;
                for (auto& o : results) updates.emplace_back(o.idx, decide(env, status[o.idx], o, t));
                // Will every recipient be final after these? Then the message
                // is removed next, and its status need not be synced first.
                auto after = status;
                for (auto& [i, rs] : updates) after[i] = rs;
                bool all_final = std::all_of(after.begin(), after.end(), [](auto& r) { return r.final(); });
                if (!record(id, env, status, updates, t, !all_final)) {
                    due.add(id, t + 60000);
                    co_return;
                }
            }
        }

        now = now_ms();
        auto where = spool.locate(id);  // an operator may have held or deleted it meanwhile
        if (!where) co_return;
        std::int64_t next = 0;
        bool pending = false;
        for (std::size_t i = 0; i < env.recipients.size(); ++i) {
            if (status[i].final()) continue;
            pending = true;
            auto pol = policy_for(env, i);
            // Held: look again at expiry. Otherwise retry after the interval,
            // but never later than expiry.
            std::int64_t expiry = env.arrival_ms + pol.max_age_ms;
            std::int64_t retry = now + pol.interval_ms;
            // A paused destination is tried again when the pause ends, not before.
            if (auto until = backoff.paused_until(queue::recipient_domain(env.recipients[i]), now)) retry = *until;
            std::int64_t when = *where == queue::queue_state::hold ? expiry : std::min(retry, expiry);
            next = next ? std::min(next, when) : when;
        }
        if (!pending) {
            if (!co_await return_to_sender(id, env, content, status)) {
                due.add(id, now + 60000);  // finished, but its DSN is not queued yet
                co_return;
            }
            co_await decisions_stored();
            where = spool.locate(id);  // an operator may have held it meanwhile
            if (!where) co_return;
            if (auto rec = spool.remove(id, *where)) log()->error("{}: cannot remove: {}", id, rec.message());
            else log()->info("{}: removed", id);
            co_return;
        }
        if (*where != queue::queue_state::hold) {
            if (auto dec = spool.defer(id, *where, next)) log()->error("{}: cannot defer: {}", id, dec.message());
        }
        due.add(id, next);
    }
};

delivery_agent::delivery_agent(asio::io_context& io, const config& cfg, queue::spool& spool, queue::schedule& due,
                               events::publisher& publisher, const bounce::verp_signer& verp,
                               const bounce::classifier& classify, bounce::destination_backoff& backoff)
    : impl_(std::make_shared<impl>(io, cfg, spool, due, publisher, verp, classify, backoff)) {}

unsigned delivery_agent::in_flight() const { return impl_->inflight.load(); }

delivery_agent::~delivery_agent() = default;

void delivery_agent::start() { asio::co_spawn(impl_->strand, impl_->dispatcher(), asio::detached); }

void delivery_agent::wake() {
    asio::post(impl_->strand, [self = impl_] { self->wake_on_strand(); });
}

void delivery_agent::stop() {
    asio::post(impl_->strand, [self = impl_] {
        self->stopping = true;
        self->wakeup.cancel();
    });
}

}  // namespace ricochet::delivery
