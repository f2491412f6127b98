// connection_pool — see connection_pool.hpp.
#include "delivery/connection_pool.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "queue/logger.hpp"

namespace ricochet::delivery {
namespace asio = boost::asio;
using asio::awaitable;

namespace {
std::shared_ptr<spdlog::logger> log() {
    static auto l = named_logger("delivery");
    return l;
}
awaitable<void> quit(std::unique_ptr<connection> c) { co_await c->quit(); }
}  // namespace

connection_pool::connection_pool(asio::any_io_executor strand, transport& t, pool_limits lim)
    : strand_(std::move(strand)), transport_(t), lim_(std::move(lim)) {}

void connection_pool::close(std::unique_ptr<connection> c) {
    asio::co_spawn(strand_, quit(std::move(c)), asio::detached);
}

void connection_pool::notify_waiter(pool& p) {
    if (p.waiters.empty()) return;
    p.waiters.front()->cancel();
    p.waiters.pop_front();
}

unsigned connection_pool::open(const std::string& domain) const {
    auto it = pools_.find(domain);
    return it == pools_.end() ? 0 : it->second.open;
}

awaitable<connection_pool::acquired> connection_pool::acquire(const std::string& domain, const std::vector<hop>& hops,
                                                              bool fresh, key_limits kl) {
    auto& p = pools_[domain];
    p.max_messages = kl.max_messages ? kl.max_messages : lim_.max_messages;
    const unsigned max_connections = kl.max_connections ? kl.max_connections : lim_.max_connections;
    for (;;) {
        while (!p.idle.empty()) {
            auto c = std::move(p.idle.back());
            p.idle.pop_back();
            if (c->usable() && !fresh) co_return acquired{std::move(c), {}};
            --p.open;
            if (fresh) {
                if (c->usable()) close(std::move(c));  // one idle connection makes room
                break;
            }
        }
        if (p.open < max_connections) {
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
            acquired out;
            std::optional<bounce::smtp_reply> temporary;
            for (auto& h : hops) {
                // MTA-STS enforce and DANE ask for TLS even where delivery.tls
                // is off (testing mode does not: it must never stop delivery).
                bool with_tls = lim_.tls != "off" || (h.tls && (h.tls->demand.verify || h.tls->demand.dane));
                for (int pass = 0; pass < 2; ++pass) {
                    auto r = co_await transport_.open(h, with_tls, kl.source_ip);
                    if (observer_ && r.tls.evaluated) observer_(h, kl.source_ip, r.tls);
                    if (r.conn) {
                        guard.armed = false;
                        co_return acquired{std::move(r.conn), {}};
                    }
                    out.failure = std::move(r.failure);
                    log()->info("{}: {} [{}]: {}", domain, h.host, h.ep.address().to_string(), out.failure.text());
                    // Opportunistic TLS that fails in the handshake: once more in plain text.
                    // Never when the receiver demands TLS (MTA-STS enforce, DANE).
                    bool demanded = h.tls && (h.tls->demand.verify || h.tls->demand.dane);
                    if (!(r.tls_failed && lim_.tls == "opportunistic" && with_tls && !demanded)) break;
                    with_tls = false;
                }
                if (!out.failure.permanent() && !temporary) temporary = out.failure;
            }
            if (temporary) out.failure = *temporary;
            co_return out;
        }
        auto t = std::make_shared<asio::steady_timer>(strand_, asio::steady_timer::time_point::max());
        p.waiters.push_back(t);
        co_await t->async_wait(asio::as_tuple(asio::use_awaitable));
    }
}

void connection_pool::release(const std::string& domain, std::unique_ptr<connection> c) {
    auto& p = pools_[domain];
    if (c && c->usable() && c->transactions() < (p.max_messages ? p.max_messages : lim_.max_messages)) {
        c->idle_since = std::chrono::steady_clock::now();
        p.idle.push_back(std::move(c));
    } else {
        --p.open;
        if (c) close(std::move(c));
    }
    notify_waiter(p);
}

void connection_pool::sweep_idle() {
    auto limit = std::chrono::steady_clock::now() - lim_.idle_close;
    for (auto& [domain, p] : pools_) {
        for (auto it = p.idle.begin(); it != p.idle.end();) {
            if ((*it)->idle_since < limit || !(*it)->usable()) {
                --p.open;
                close(std::move(*it));
                it = p.idle.erase(it);
            } else {
                ++it;
            }
        }
    }
}

}  // namespace ricochet::delivery
