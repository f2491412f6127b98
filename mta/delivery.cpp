// delivery — see delivery.hpp.
#include "mta/delivery.hpp"

#include <boost/asio.hpp>
#include <deque>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "queue/logger.hpp"
#include <unordered_map>
#include <unordered_set>

#include "bounce/verp.hpp"
#include "dns/idn.hpp"
#include "dns/resolver.hpp"
#include "mta/config.hpp"
#include "mta/smtp_client.hpp"
#include "queue/events_log.hpp"
#include "queue/schedule.hpp"
#include "queue/spool.hpp"

namespace ricochet::mta {
namespace asio = boost::asio;
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

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch()).count();
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
    queue::events_log& events;
    const bounce::verp_signer& verp;
    asio::ssl::context tls{asio::ssl::context::tls_client};
    client_options copt;
    asio::steady_timer wakeup;
    dns::resolver resolver;
    bool stopping = false, woken = false;
    unsigned inflight = 0;
    static constexpr unsigned max_inflight = 2000;
    std::unordered_set<std::string> busy;

    struct pool {
        unsigned open = 0;
        std::vector<std::unique_ptr<smtp_connection>> idle;
        std::deque<std::shared_ptr<asio::steady_timer>> waiters;
    };
    std::unordered_map<std::string, pool> pools;

    impl(asio::io_context& i, const config& c, queue::spool& s, queue::schedule& d, queue::events_log& e,
         const bounce::verp_signer& v)
        : io(i), strand(asio::make_strand(i)), cfg(c), spool(s), due(d), events(e), verp(v), wakeup(strand),
          resolver(strand, c.delivery.dns_servers, c.delivery.dns_timeout) {
        std::string err;
        if (!resolver.ok(err)) log()->error("DNS resolver: {}", err);
        // Opportunistic and "required" both encrypt without verifying the peer,
        // as most MX hosts have no certificate a sender could check (RFC 7435).
        tls.set_verify_mode(asio::ssl::verify_none);
        SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
        copt.helo_name = cfg.server.hostname;
        copt.tls = cfg.delivery.tls;
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
                if (!busy.insert(*id).second) continue;  // already being delivered; it reschedules itself
                ++inflight;
                asio::co_spawn(strand, deliver_message(*id), [self, id = *id](std::exception_ptr e) {
                    if (e) {
                        try {
                            std::rethrow_exception(e);
                        } catch (const std::exception& ex) {
                            log()->error("{}: delivery ended by exception: {}; retried at next start", id, ex.what());
                        }
                    }
                    --self->inflight;
                    self->busy.erase(id);
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

    awaitable<std::unique_ptr<smtp_connection>> acquire(const std::string& domain, const std::vector<hop>& hops,
                                                        smtp_reply& failure) {
        auto& p = pools[domain];
        for (;;) {
            while (!p.idle.empty()) {
                auto c = std::move(p.idle.back());
                p.idle.pop_back();
                if (c->usable()) co_return c;
                --p.open;
            }
            if (p.open < cfg.delivery.max_connections_per_domain) {
                ++p.open;
                // Each address of each exchanger in turn, until one answers
                // with a greeting we can use (RFC 5321 5.1).
                for (auto& h : hops) {
                    auto r = co_await smtp_connection::open(strand, h.ep, h.host, copt, tls);
                    if (r.conn) co_return std::move(r.conn);
                    failure = std::move(r.failure);
                    log()->info("{}: {} [{}]: {}", domain, h.host, h.ep.address().to_string(), failure.text());
                }
                --p.open;
                notify_waiter(p);
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
            auto [ec, results] = co_await res.async_resolve(route->first, std::to_string(route->second), as_tuple);
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
            auto addrs = co_await resolver.addresses(mx.hosts[i].name);
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
            smtp_reply failure;
            auto conn = co_await acquire(domain, hops, failure);
            if (!conn) {
                defer_all(k, failure, "");
                co_return;
            }
            std::string rp = env.sender.empty() ? std::string()
                                                : verp.return_path({id, static_cast<std::uint32_t>(idx)},
                                                                   cfg.bounce_listener.domain);
            auto t = co_await conn->send(rp, env.recipients[idx], content, env.smtputf8, env.eightbit);
            if (t.connection_lost && t.before_data && t.reply.code == 0 && conn->transactions() > 1) {
                // A reused connection the server had already closed: that says
                // nothing about this recipient. Once more on a fresh connection.
                release(domain, nullptr);
                conn.reset();
                conn = co_await acquire(domain, hops, failure);
                if (!conn) {
                    defer_all(k, failure, "");
                    co_return;
                }
                t = co_await conn->send(rp, env.recipients[idx], content, env.smtputf8, env.eightbit);
            }
            std::string mx = conn->mx() + "[" + conn->ip() + "]";
            out.push_back({idx, std::move(t.reply), mx});
            release(domain, std::move(conn));
        }
    }

    awaitable<void> deliver_message(std::string id) {
        auto st = spool.locate(id);
        if (!st) co_return;  // delivered, bounced or deleted meanwhile
        if (*st == queue::queue_state::hold) {
            log()->info("{}: on hold, not delivered", id);  // release schedules it again
            co_return;
        }
        queue::envelope env;
        std::string content;
        if (auto ec = spool.read_message(id, *st, env, content)) {
            log()->error("{}: cannot read queue file: {}", id, ec.message());
            co_return;
        }
        auto status = spool.read_status(id, env.recipients.size());
        std::map<std::string, std::vector<std::size_t>> by_domain;
        for (std::size_t i = 0; i < env.recipients.size(); ++i)
            if (!status[i].final()) by_domain[queue::recipient_domain(env.recipients[i])].push_back(i);

        std::vector<outcome> results;
        std::vector<std::size_t> expired;
        auto start = now_ms();
        for (auto& [domain, idxs] : by_domain) {
            auto pol = retry_for(domain);
            if (start >= env.arrival_ms + pol.max_age_ms) {
                expired.insert(expired.end(), idxs.begin(), idxs.end());
                continue;
            }
            co_await deliver_domain(id, domain, idxs, env, content, results);
        }

        // Record every decision: status file (durable), events, log lines.
        auto now = now_ms();
        std::vector<std::pair<std::size_t, queue::recipient_status>> updates;
        std::vector<json> evs;
        auto event = [&](std::string_view type, std::size_t idx, const queue::recipient_status& rs) {
            evs.push_back({{"type", type}, {"queue_id", id}, {"campaign", env.campaign},
                           {"recipient", env.recipients[idx]}, {"kind", nullptr}, {"category", nullptr},
                           {"rule", nullptr}, {"code", rs.code}, {"enhanced", rs.enhanced}, {"reply", rs.reply},
                           {"mx", rs.mx}, {"stage", rs.stage}, {"attempt", rs.attempts}, {"sync", true}});
        };
        for (auto& o : results) {
            auto rs = status[o.idx];
            rs.attempts += 1;
            rs.last_attempt_ms = now;
            rs.code = o.reply.code;
            rs.enhanced = o.reply.enhanced;
            rs.stage = std::string(bounce::to_string(o.reply.at));
            rs.mx = o.mx;
            rs.reply = o.reply.text();
            rs.status = o.reply.positive() ? "delivered" : o.reply.permanent() ? "bounced" : "deferred";
            log()->info("{}: to=<{}>, relay={}, delay={}, dsn={}, status={} ({})", id, env.recipients[o.idx],
                        o.mx.empty() ? "none" : o.mx, (now - env.arrival_ms) / 1000,
                        rs.enhanced.empty() ? (rs.code ? std::to_string(rs.code / 100) + ".0.0" : "4.4.1") : rs.enhanced,
                        rs.status, rs.reply);
            event(rs.status, o.idx, rs);
            status[o.idx] = rs;
            updates.emplace_back(o.idx, rs);
        }
        for (auto idx : expired) {
            auto rs = status[idx];
            rs.status = "expired";  // category and reply kept from the last attempt
            log()->info("{}: to=<{}>, delay={}, status=expired ({})", id, env.recipients[idx],
                        (now - env.arrival_ms) / 1000, rs.reply);
            event("expired", idx, rs);
            status[idx] = rs;
            updates.emplace_back(idx, rs);
        }
        if (auto ec = spool.append_status(id, updates)) {
            // Not recorded: the message stays where it is and is tried again,
            // which may deliver twice but never loses a decision's mail.
            log()->error("{}: cannot record recipient status: {}; will retry", id, ec.message());
            due.add(id, now + 60000);
            co_return;
        }
        events.append(evs);

        auto where = spool.locate(id);  // an operator may have held or deleted it meanwhile
        if (!where) co_return;
        std::int64_t next = 0;
        bool pending = false;
        for (std::size_t i = 0; i < env.recipients.size(); ++i) {
            if (status[i].final()) continue;
            pending = true;
            auto pol = retry_for(queue::recipient_domain(env.recipients[i]));
            // Retry after the interval, but never later than expiry.
            std::int64_t when = std::min(now + pol.interval_ms, env.arrival_ms + pol.max_age_ms);
            next = next ? std::min(next, when) : when;
        }
        if (!pending) {
            if (auto ec = spool.remove(id, *where)) log()->error("{}: cannot remove: {}", id, ec.message());
            else log()->info("{}: removed", id);
            co_return;
        }
        if (*where == queue::queue_state::hold) co_return;  // stays parked; release reschedules
        if (auto ec = spool.defer(id, *where, next)) log()->error("{}: cannot defer: {}", id, ec.message());
        due.add(id, next);
    }
};

delivery_agent::delivery_agent(asio::io_context& io, const config& cfg, queue::spool& spool, queue::schedule& due,
                               queue::events_log& events, const bounce::verp_signer& verp)
    : impl_(std::make_shared<impl>(io, cfg, spool, due, events, verp)) {}

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

}  // namespace ricochet::mta
