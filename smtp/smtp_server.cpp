// smtp_server — see smtp_server.hpp.
//
// Each connection is one coroutine on its own strand. A watchdog coroutine
// on the same strand enforces the deadline for the current step (RFC 5321
// 4.5.3.2: a time-out covers a whole command or data chunk, set before each
// read and write), cancelling the socket when it passes.
#include "smtp/smtp_server.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>
#include <list>
#include <mutex>
#include <unordered_map>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <spdlog/spdlog.h>

#include "base/log_rate.hpp"
#include "base/memory_budget.hpp"
#include "base/unique_fd.hpp"
#include "queue/logger.hpp"

#include "smtp/network.hpp"
#include "smtp/async_spool.hpp"
#include "queue/spool.hpp"

namespace ricochet::smtp {
namespace {
// Octets of DATA every session of every listener holds in memory now
// (smtp_server_options::memory_budget), with the HTTP listener's bodies.
std::atomic<std::uint64_t>& data_in_memory = base::data_in_memory();
}  // namespace
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using asio::awaitable;
using asio::ip::tcp;
using asio::use_awaitable;
constexpr auto as_tuple = asio::as_tuple(use_awaitable);

namespace {
std::shared_ptr<spdlog::logger> log() {
    static auto l = named_logger("mta");
    return l;
}

}  // namespace

struct smtp_server::impl : std::enable_shared_from_this<impl> {
    asio::io_context& io;
    smtp_server_options opt;
    queue::spool& spool;
    ssl::context tls{ssl::context::tls_server};
    bool tls_ready = false;
    std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
    std::atomic<unsigned> connections{0};
    std::atomic<unsigned> committing{0};  // messages being committed, or whose reply is not yet written
    std::mutex per_ip_mu;
    std::unordered_map<std::string, unsigned> per_ip;  // open sessions per client address
    struct auth_failures {
        unsigned count = 0;
        std::int64_t since_ms = 0;  // wall clock: the counts outlive the process
    };
    std::unordered_map<std::string, auth_failures> auth_failed;  // by client group, under per_ip_mu
    base::unique_fd auth_log;                                   // opt.auth_failures_file, O_APPEND
    std::size_t auth_log_lines = 0;

    static std::int64_t wall_ms() {
        return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    }
    bool expired(const auth_failures& f, std::int64_t now) const {
        return now - f.since_ms > opt.auth_failure_window.count() * 1000 || f.since_ms > now + 60000;
    }

    // Reads the counts a previous run left (the last line per client wins),
    // drops the expired ones and rewrites the file with what is left.
    void load_auth_failures() {
        if (opt.auth_failures_file.empty()) return;
        auto now = wall_ms();
        {
            std::ifstream in(opt.auth_failures_file);
            std::string key;
            auth_failures f;
            while (in >> key >> f.count >> f.since_ms) auth_failed[key] = f;
        }
        std::erase_if(auth_failed, [&](auto& kv) { return expired(kv.second, now); });
        rewrite_auth_log();
        if (!auth_failed.empty())
            log()->info("{}: {} client(s) with failed authentications in the last {} s (from {})", opt.name,
                        auth_failed.size(), opt.auth_failure_window.count(), opt.auth_failures_file.string());
    }
    void rewrite_auth_log() {
        auto tmp = opt.auth_failures_file;
        tmp += ".tmp";
        {
            std::string text;
            for (auto& [k, f] : auth_failed) text += k + ' ' + std::to_string(f.count) + ' ' + std::to_string(f.since_ms) + '\n';
            base::unique_fd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));  // like every spool file
            if (!out || ::fchmod(out.get(), 0600) != 0 || base::write_all(out.get(), text))
                log()->warn("{}: cannot write {}", opt.name, tmp.string());
        }
        std::error_code ec;
        std::filesystem::rename(tmp, opt.auth_failures_file, ec);
        if (ec) log()->warn("{}: {}: {}", opt.name, opt.auth_failures_file.string(), ec.message());
        auth_log.reset(::open(opt.auth_failures_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600));
        auth_log_lines = auth_failed.size();
    }

    // Adds a session's failed AUTH attempts; true when the client is over its limit.
    bool auth_blocked(const std::string& key, unsigned add) {
        auto now = wall_ms();
        std::lock_guard lk(per_ip_mu);
        if (auth_failed.size() > 100000)  // bounded: forget expired entries
            std::erase_if(auth_failed, [&](auto& kv) { return expired(kv.second, now); });
        auto it = auth_failed.find(key);
        if (it == auth_failed.end()) {
            if (!add) return false;
            it = auth_failed.emplace(key, auth_failures{0, now}).first;
        }
        if (expired(it->second, now)) it->second = {0, now};
        if (add) {
            it->second.count += add;
            if (auth_log) {  // a line per change; compacted when it has grown well past the table
                if (++auth_log_lines > 2 * auth_failed.size() + 10000) {
                    rewrite_auth_log();
                } else {
                    auto line = key + ' ' + std::to_string(it->second.count) + ' ' + std::to_string(it->second.since_ms) + '\n';
                    if (base::write_all(auth_log.get(), line))
                        log()->warn("{}: cannot write {}", opt.name, opt.auth_failures_file.string());
                }
            }
        }
        return it->second.count >= opt.max_auth_failures_per_ip;
    }
    // message_sink runs here, off the I/O threads: parsing a hostile
    // message or waiting on the state store never stalls other sessions.
    std::unique_ptr<asio::thread_pool> sink_pool;

    impl(asio::io_context& i, smtp_server_options o, queue::spool& s) : io(i), opt(std::move(o)), spool(s) {
        if (opt.message_sink) sink_pool = std::make_unique<asio::thread_pool>(1);
    }

    bool load_tls(std::string& error) {
        if (opt.tls_cert.empty()) return true;
        boost::system::error_code ec;
        // TLS 1.2 minimum; no compression, no renegotiation, server cipher order.
        tls.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                        ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression);
        SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
        SSL_CTX_set_options(tls.native_handle(), SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
        // TLS 1.2 suites: forward-secret AEAD only (no static RSA key
        // exchange, no CBC); TLS 1.3 keeps OpenSSL's own (all AEAD, all FS).
        SSL_CTX_set_cipher_list(tls.native_handle(),
                                "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!kRSA");
        tls.use_certificate_chain_file(opt.tls_cert.string(), ec);
        if (!ec) tls.use_private_key_file(opt.tls_key.string(), ssl::context::pem, ec);
        if (ec) {
            error = "cannot load TLS certificate/key (" + opt.tls_cert.string() + ", " + opt.tls_key.string() +
                    "): " + ec.message();
            return false;
        }
        tls_ready = true;
        opt.policy.tls_available = true;
        return true;
    }

    bool bind_all(std::string& error) {
        for (auto& l : opt.listen) {
            std::string host;
            std::uint16_t port;
            if (!parse_host_port(l, host, port)) {
                error = "bad listen address " + l;
                return false;
            }
            boost::system::error_code ec;
            auto addr = asio::ip::make_address(host, ec);
            if (ec) {
                error = "bad listen address " + l + ": " + ec.message();
                return false;
            }
            // Each acceptor on a strand of its own, so stop() (from the signal
            // handler's thread) never touches it concurrently with the accept loop.
            auto a = std::make_unique<tcp::acceptor>(asio::make_strand(io));
            tcp::endpoint ep(addr, port);
            a->open(ep.protocol(), ec);
            if (!ec) a->set_option(tcp::acceptor::reuse_address(true), ec);
            if (!ec) a->bind(ep, ec);
            if (!ec) a->listen(asio::socket_base::max_listen_connections, ec);
            if (ec) {
                error = "cannot listen on " + l + ": " + ec.message();
                return false;
            }
            log()->info("{}: listening on {}", opt.name, l);
            acceptors.push_back(std::move(a));
        }
        return true;
    }

    static awaitable<void> accept_loop(std::shared_ptr<impl> self, tcp::acceptor& acc) {
        auto& io = self->io;
        auto& opt = self->opt;
        for (;;) {
            auto [ec, sock] = co_await acc.async_accept(asio::make_strand(io), as_tuple);
            if (ec) {
                if (ec == asio::error::operation_aborted || !acc.is_open()) co_return;
                log()->warn("{}: accept: {}", opt.name, ec.message());  // e.g. EMFILE: keep serving
                asio::steady_timer t(io, std::chrono::milliseconds(100));
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

    // The TLS stream is made at STARTTLS only: asio's engine takes two 17 KiB
    // BIO buffers and an SSL object, most of an idle session's cost.
    struct conn {
        tcp::socket sock;
        ssl::context& ctx;
        std::optional<ssl::stream<tcp::socket&>> stream;  // from STARTTLS on
        asio::steady_timer deadline;
        bool tls = false;  // the handshake is done
        bool timed_out = false;
        bool done = false;
        unsigned committing = 0;  // messages from their end until their reply is written
        conn(tcp::socket s, ssl::context& c) : sock(std::move(s)), ctx(c), deadline(sock.get_executor()) {}
        void expire_in(std::chrono::seconds s) { deadline.expires_after(s); }
    };

    // Stress (Postfix's word): from stress_at() open sessions on, every
    // session must make progress within opt.stress_timeout, so clients that
    // connect and sit idle cannot keep real ones out for the five minutes
    // RFC 5321 grants a command. Sessions already waiting are cut short by
    // the sweep that runs when a session opens, or is refused, under stress.
    std::mutex live_mu;
    std::list<std::weak_ptr<conn>> live;  // admitted sessions, for the sweep
    std::atomic<std::int64_t> last_sweep_ms{0};
    std::atomic<bool> stress_logged{false};
    base::log_rate refusals_logged;

    unsigned stress_at() const {
        if (opt.stress_connections) return opt.stress_connections;
        return std::max(1u, opt.max_connections - opt.max_connections / 4);
    }
    bool stressed() const { return opt.stress_timeout.count() > 0 && connections.load() >= stress_at(); }
    std::chrono::seconds limit(std::chrono::seconds normal) const {
        return stressed() ? std::min(normal, opt.stress_timeout) : normal;
    }
    void sweep_if_stressed() {
        if (!stressed()) {
            if (stress_logged.exchange(false)) log()->info("{}: {} sessions: no longer under stress", opt.name, connections.load());
            return;
        }
        auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch()).count();
        auto last = last_sweep_ms.load();
        if (now - last < 1000 || !last_sweep_ms.compare_exchange_strong(last, now)) return;  // at most once a second
        if (!stress_logged.exchange(true))
            log()->warn("{}: {} sessions (stress from {}): every session must make progress within {} s", opt.name,
                        connections.load(), stress_at(), opt.stress_timeout.count());
        std::lock_guard lk(live_mu);
        for (auto& w : live) {
            auto c = w.lock();
            if (!c) continue;
            asio::post(c->sock.get_executor(), [c, t = opt.stress_timeout] {
                // A session whose message is being committed keeps its time:
                // cut off before its 250, its client would send it again.
                if (!c->done && !c->timed_out && !c->committing &&
                    c->deadline.expiry() > asio::steady_timer::clock_type::now() + t)
                    c->expire_in(t);  // the watchdog's wait ends and waits again for the new time
            });
        }
    }

    static awaitable<void> watchdog(std::shared_ptr<conn> c) {
        while (!c->done) {
            co_await c->deadline.async_wait(as_tuple);
            if (c->done) co_return;
            if (c->deadline.expiry() <= asio::steady_timer::clock_type::now()) {
                c->timed_out = true;
                boost::system::error_code ignored;
                c->sock.cancel(ignored);
                c->expire_in(std::chrono::seconds(10));  // bound the 421 write, then give up
            }
        }
    }

    // A session's replies in the order of its commands. A message's reply
    // waits for its commit while the commands after it are read and
    // answered (RFC 2920 pipelining, RFC 3030 BDAT), their replies queued
    // behind it: one connection's messages then share group commits.
    // Shared with the spool's callbacks, which may outlive the session; only
    // touched on the session's strand.
    struct reply_queue {
        struct slot {
            std::string text;
            bool commit = false;   // a message's reply
            bool pending = false;  // ... that the spool has not given yet
            bool queued = false;   // ... that is a 250
            std::uint64_t errors_before = 0;  // the protocol's error_count() when its message ended
        };
        std::deque<slot> slots;
        std::uint64_t first = 0;  // the number of slots.front()
        unsigned pending = 0;     // messages committing
        std::size_t bytes = 0;    // text of the slots that are not messages' replies
        asio::steady_timer wake;  // cancelled when one of them is answered
        explicit reply_queue(const asio::any_io_executor& ex) : wake(ex) {}

        // Queues `out` (the replies so far) and a place for a message's reply.
        std::uint64_t add_commit(std::string& out, std::uint64_t errors_before) {
            bytes += out.size();
            if (!out.empty()) slots.push_back({std::move(out)});
            out.clear();
            slots.push_back({{}, true, true, false, errors_before});
            ++pending;
            return first + slots.size() - 1;
        }
        void resolve(std::uint64_t n, std::string text, bool ok) {
            auto& s = slots[n - first];
            s.text = std::move(text);
            s.pending = false;
            s.queued = ok;
            --pending;
            wake.cancel();
        }
        bool head_pending() const { return !slots.empty() && slots.front().pending; }
        bool ready() const { return !slots.empty() && !slots.front().pending; }
        // The replies that can go out now (up to the first message still
        // committing; then `out` too when none is), with how many of them
        // are messages' replies; `queued` is set when one of those said 250,
        // to the error count when the last of those ended.
        std::string take_ready(std::string& out, unsigned& commits, std::optional<std::uint64_t>& queued) {
            std::string text;
            while (!slots.empty() && !slots.front().pending) {
                auto& s = slots.front();
                commits += s.commit;
                if (s.queued) queued = s.errors_before;
                if (!s.commit) bytes -= s.text.size();
                text += s.text;
                slots.pop_front();
                ++first;
            }
            if (slots.empty()) {
                text += out;
                out.clear();
            }
            return text;
        }
    };
    // Per session; each holds its message in memory (at most the spill
    // threshold; a larger one is in its spill file) until it is written.
    static constexpr unsigned max_commits_in_flight = 32;
    static constexpr std::size_t max_queued_replies = 16 * 1024;

    static awaitable<boost::system::error_code> write(conn& c, std::string_view data) {
        boost::system::error_code ec;
        if (c.tls) std::tie(ec, std::ignore) = co_await asio::async_write(*c.stream, asio::buffer(data), as_tuple);
        else std::tie(ec, std::ignore) = co_await asio::async_write(c.sock, asio::buffer(data), as_tuple);
        co_return ec;
    }

    static awaitable<void> session(std::shared_ptr<impl> self, tcp::socket sock) {
        boost::system::error_code ec;
        auto remote = sock.remote_endpoint(ec);
        if (ec) co_return;
        auto addr = remote.address();
        if (addr.is_v6() && addr.to_v6().is_v4_mapped()) addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
        std::string ip = addr.to_string();
        std::string group = client_group(ip, self->opt.ipv6_prefix);  // what the per-address limits count

        auto c = std::make_shared<conn>(std::move(sock), self->tls);
        unsigned from_ip = 0;
        {
            std::lock_guard lk(self->per_ip_mu);
            from_ip = ++self->per_ip[group];
        }
        struct guard {
            impl& s;
            std::shared_ptr<conn> c;
            std::string ip;
            ~guard() {
                c->done = true;
                s.committing.fetch_sub(c->committing);
                c->deadline.cancel();
                s.connections.fetch_sub(1);
                std::lock_guard lk(s.per_ip_mu);
                if (auto it = s.per_ip.find(ip); it != s.per_ip.end() && --it->second == 0) s.per_ip.erase(it);
            }
        } g{*self, c, group};
        bool too_many = self->connections.fetch_add(1) >= self->opt.max_connections;
        self->sweep_if_stressed();
        bool too_many_here = self->opt.max_connections_per_ip && from_ip > self->opt.max_connections_per_ip;
        bool auth_abuse = self->opt.max_auth_failures_per_ip && self->auth_blocked(group, 0);
        if (too_many || too_many_here || auth_abuse) {
            c->expire_in(std::chrono::seconds(10));
            asio::co_spawn(c->sock.get_executor(), watchdog(c), asio::detached);
            std::string busy = too_many ? smtp_server_protocol::busy_reply(self->opt.policy.hostname)
                               : auth_abuse ? "421 4.7.0 " + self->opt.policy.hostname +
                                                  " Error: too many failed authentications from your address\r\n"
                                            : "421 4.7.0 " + self->opt.policy.hostname +
                                                  " Error: too many connections from your address\r\n";
            co_await write(*c, busy);
            auto dropped = self->refusals_logged.admit();  // a flood writes one line a second, not one per connection
            if (!dropped) co_return;
            std::string more = *dropped ? " (and " + std::to_string(*dropped) + " more refused since the last line)" : "";
            if (too_many)
                log()->warn("{}: refused [{}]: {} connections{}", self->opt.name, ip, self->opt.max_connections, more);
            else if (auth_abuse)
                log()->warn("{}: refused [{}]: {} failed authentications{}", self->opt.name, ip,
                            self->opt.max_auth_failures_per_ip, more);
            else
                log()->warn("{}: refused [{}]: {} connections from {}{}", self->opt.name, ip, group,
                            self->opt.max_connections_per_ip, more);
            co_return;
        }
        log()->debug("{}: connect from [{}]", self->opt.name, ip);
        // Replies go out as soon as they are ready: a pipelining client
        // waits for them, and Nagle would hold each one behind the ACK of
        // the one before.
        c->sock.set_option(tcp::no_delay(true), ec);
        c->expire_in(self->limit(self->opt.command_timeout));
        std::list<std::weak_ptr<conn>>::iterator live_at;
        {
            std::lock_guard lk(self->live_mu);
            live_at = self->live.insert(self->live.end(), c);
        }
        struct unlist {
            impl& s;
            std::list<std::weak_ptr<conn>>::iterator at;
            ~unlist() {
                std::lock_guard lk(s.live_mu);
                s.live.erase(at);
            }
        } unlist_guard{*self, live_at};
        asio::co_spawn(c->sock.get_executor(), watchdog(c), asio::detached);

        smtp_server_protocol proto(self->opt.policy, ip);
        struct count_auth_failures {  // however the session ends
            impl& s;
            const smtp_server_protocol& p;
            const std::string& group;
            ~count_auth_failures() {
                if (p.auth_failures() && s.opt.max_auth_failures_per_ip && s.auth_blocked(group, p.auth_failures()))
                    log()->warn("{}: [{}] reached {} failed authentications; refused for {} s", s.opt.name, group,
                                s.opt.max_auth_failures_per_ip, s.opt.auth_failure_window.count());
            }
        } auth_guard{*self, proto, group};
        line_reader reader;
        // The spool's committer waits a little for sessions about to submit
        // (queue::spool::transaction_mark): this one holds a mark while it has
        // a transaction open and no message of its own committing (a session
        // waiting for its own commit must not hold that commit up), until
        // it ends.
        queue::spool::transaction_mark mark;
        bool ending = false;
        // DATA held in memory, counted against the budget of the whole process.
        struct held_data {
            std::size_t counted = 0;
            base::unique_fd spill;
            void set(std::size_t now) {
                if (now >= counted) data_in_memory.fetch_add(now - counted);
                else data_in_memory.fetch_sub(counted - now);
                counted = now;
            }
            ~held_data() { set(0); }
        } held;
        bool can_spill = self->opt.spill_threshold > 0 && !self->opt.message_sink;
        // What this session holds of a message in DATA: past the threshold,
        // or when the process is over its budget, it goes to the spill file.
        auto hold = [&] {
            // A spill file is the message's that spilled it: one that ended
            // without a commit (refused at its end) leaves it behind, and
            // the next message, read in the same pass, must not append to it.
            if (held.spill && proto.spilled() == 0) held.spill.reset();
            auto now = proto.buffered();
            if (now == held.counted && now < self->opt.spill_threshold) return;
            held.set(now);
            bool over = self->opt.memory_budget && data_in_memory.load() > self->opt.memory_budget;
            if (now == 0 || !((can_spill && now >= self->opt.spill_threshold) || over)) return;
            std::error_code sec;
            if (!can_spill) {
                proto.refuse_data("452 4.3.1 Error: too much mail in memory, try again later");
                log()->warn("{}: [{}] message refused: {} octets of DATA in memory, over the budget of {}",
                            self->opt.name, ip, data_in_memory.load(), self->opt.memory_budget);
            } else {
                if (!held.spill) held.spill = self->spool.open_spill(sec);
                if (!sec) sec = base::write_all(held.spill.get(), proto.take_for_spill());
                if (sec) {
                    proto.refuse_data("452 4.3.1 Error: insufficient system storage, try again later");
                    held.spill.reset();
                    log()->error("{}: [{}] cannot write DATA to the spool: {}", self->opt.name, ip, sec.message());
                }
            }
            held.set(proto.buffered());
        };
        auto replies = std::make_shared<reply_queue>(c->sock.get_executor());
        std::string out = proto.greeting();  // replies after the last commit in `replies`
        auto sync_mark = [&] {
            bool want = !ending && !self->opt.message_sink && proto.in_transaction() && replies->pending == 0;
            if (want != bool(mark))
                mark = want ? queue::spool::transaction_mark(self->spool) : queue::spool::transaction_mark();
        };
        // Writes every reply that is ready: all of them up to the first
        // message still committing. False when the client is gone.
        auto flush = [&]() -> awaitable<bool> {
            unsigned commits = 0;
            std::optional<std::uint64_t> queued;
            std::string text = replies->take_ready(out, commits, queued);
            if (queued) proto.commit_succeeded(*queued);
            sync_mark();  // before the replies go out: a client may act on them at once
            if (!text.empty()) {
                c->expire_in(self->limit(self->opt.command_timeout));
                if (co_await write(*c, text)) co_return false;
            }
            c->committing -= commits;
            self->committing.fetch_sub(commits);
            co_return true;
        };
        // Writes what is ready, then waits for the first message still
        // committing and writes its reply (and what is ready after it).
        auto wait_next = [&]() -> awaitable<bool> {
            if (!co_await flush()) co_return false;
            while (replies->head_pending()) {
                replies->wake.expires_at(asio::steady_timer::time_point::max());
                co_await replies->wake.async_wait(as_tuple);
            }
            co_return co_await flush();
        };
        // Writes every reply, after waiting for the messages still committing.
        auto drain = [&]() -> awaitable<bool> {
            while (replies->pending)
                if (!co_await wait_next()) co_return false;
            co_return co_await flush();
        };
        // One read from the client into the line reader. False at the end
        // of the session (time-out, connection lost).
        auto read_more = [&]() -> awaitable<bool> {
            std::size_t cap = 0;
            char* p = reader.prepare(cap);
            std::size_t n = 0;
            if (c->tls) std::tie(ec, n) = co_await c->stream->async_read_some(asio::buffer(p, cap), as_tuple);
            else std::tie(ec, n) = co_await c->sock.async_read_some(asio::buffer(p, cap), as_tuple);
            if (ec) {
                ending = true;
                mark.reset();
                if (c->timed_out) {
                    log()->info("{}: timeout after {} from [{}]", self->opt.name, proto.in_data() ? "DATA" : "command", ip);
                    // The messages still committing are (or will be) queued:
                    // their replies go first, or the client sends them again.
                    if (!co_await drain()) co_return false;
                    std::string bye = proto.timeout_reply();
                    co_await write(*c, bye);
                } else if (proto.in_data() || proto.chunk_left()) {
                    log()->info("{}: lost connection after {} from [{}]", self->opt.name,
                                proto.chunk_left() ? "BDAT" : "DATA", ip);
                }
                co_return false;
            }
            reader.commit(n);
            co_return true;
        };
        // BDAT: exactly the chunk's octets, from what is buffered and then
        // from the socket. As in DATA, where the deadline moves with each
        // whole line, it moves with each 1000 octets (a line's worth), so a
        // client trickling a byte at a time cannot hold the session.
        auto read_chunk = [&]() -> awaitable<std::optional<smtp_server_protocol::action>> {
            std::uint64_t since = 0;  // octets since the deadline was set
            c->expire_in(self->limit(self->opt.data_timeout));
            while (proto.chunk_left() > 0) {
                auto piece = reader.take(proto.chunk_left());
                if (!piece.empty()) {
                    proto.on_chunk(piece);
                    hold();
                    if ((since += piece.size()) >= 1000) {
                        c->expire_in(self->limit(self->opt.data_timeout));
                        since = 0;
                    }
                    continue;
                }
                if (replies->ready()) {  // replies of commits that ended meanwhile
                    auto deadline = c->deadline.expiry();
                    if (!co_await flush()) co_return std::nullopt;
                    c->deadline.expires_at(deadline);
                }
                if (!co_await read_more()) co_return std::nullopt;
            }
            co_return proto.on_chunk_end(out);
        };
        // Hands the message to the spool and reads on: its reply keeps its
        // place in `replies` until the group commit answers.
        auto start_commit = [&]() -> awaitable<void> {
            auto id = proto.envelope().id;
            auto slot = replies->add_commit(out, proto.error_count());
            sync_mark();  // its own message committing: the mark ends before the submit
            ++c->committing;
            self->committing.fetch_add(1);
            std::uint64_t bytes = proto.content().size() + proto.before().size();
            held.set(0);
            data_in_memory.fetch_add(bytes);  // until the spool has written it
            auto done = asio::bind_executor(c->sock.get_executor(), [r = replies, slot, id, bytes](std::error_code ec) {
                data_in_memory.fetch_sub(bytes);
                r->resolve(slot, smtp_server_protocol::commit_reply(ec, id), !ec);
            });
            if (self->opt.message_sink) {
                // The task owns the message: it may outlive this session's
                // frame if the server is torn down mid-call.
                auto run_sink = [&sink = self->opt.message_sink, env = std::move(proto.envelope()),
                                 content = std::move(proto.content())]() mutable -> awaitable<std::error_code> {
                    co_return sink(env, content);
                };
                proto.commit_started();
                // One at a time: a DSN's 250 says its decisions are recorded.
                auto cec = co_await asio::co_spawn(self->sink_pool->get_executor(), run_sink, use_awaitable);
                done(cec);
            } else if (proto.spilled()) {
                async_commit_spilled(self->spool, std::move(proto.envelope()), std::move(proto.before()),
                                     std::move(held.spill), proto.spilled(), std::move(proto.content()), std::move(done));
                proto.commit_started();
            } else {
                async_commit(self->spool, std::move(proto.envelope()), std::move(proto.content()), std::move(done));
                proto.commit_started();
            }
            held.spill.reset();
        };
        bool closing = false;
        bool progressed = true;  // a whole line arrived since the deadline was set
        while (!closing) {
            for (;;) {
                // Bounded per session: the messages committing, and the
                // replies queued behind them (a client may stream NOOPs
                // while a commit is slow).
                if (replies->pending &&
                    (replies->pending >= max_commits_in_flight || replies->bytes + out.size() > max_queued_replies) &&
                    !co_await wait_next())
                    goto end;
                auto l = reader.next();
                if (!l) break;
                progressed = true;
                auto act = proto.on_line(*l, out);
                if (act == smtp_server_protocol::action::chunk) {
                    sync_mark();  // a BDAT refused (552) is read and dropped without a transaction
                    auto after = co_await read_chunk();
                    if (!after) goto end;
                    act = *after;
                }
                if (act == smtp_server_protocol::action::commit) co_await start_commit();
                sync_mark();  // after the submit: a message's own mark ends there
                if (act == smtp_server_protocol::action::starttls) {
                    if (!co_await drain()) goto end;  // the 220 last, under the command time-out
                    reader.clear();  // RFC 3207 4.2 / CVE-2011-0411: no plaintext carried over
                    c->stream.emplace(c->sock, c->ctx);
                    auto [hec] = co_await c->stream->async_handshake(ssl::stream_base::server, as_tuple);
                    if (hec) {
                        log()->info("{}: TLS handshake failed from [{}]: {}", self->opt.name, ip, hec.message());
                        goto end;
                    }
                    c->tls = true;
                    proto.on_tls_started();
                    sync_mark();
                    break;
                } else if (act == smtp_server_protocol::action::close) {
                    closing = true;
                    ending = true;
                    mark.reset();
                    break;
                }
            }
            // Replies to pipelined commands go out together, when no further
            // complete command is waiting (RFC 2920 3.2).
            if (!co_await flush()) break;
            if (closing) {
                co_await drain();
                break;
            }
            if (!proto.in_data()) held.spill.reset();  // a transaction ended without a commit
            hold();
            // Messages still committing and nothing more to read yet: their
            // replies first (the client may be waiting for them).
            if (replies->pending && !c->sock.available(ec)) {
                if (!co_await wait_next()) break;
                continue;
            }
            if (progressed)
                c->expire_in(self->limit(proto.in_data() ? self->opt.data_timeout : self->opt.command_timeout));
            progressed = false;
            if (!co_await read_more()) break;
        }
    end:
        ending = true;
        mark.reset();
        if (c->tls) {
            c->expire_in(std::chrono::seconds(5));
            co_await c->stream->async_shutdown(as_tuple);
        }
        c->sock.shutdown(tcp::socket::shutdown_both, ec);
        c->sock.close(ec);
        log()->debug("{}: disconnect from [{}]", self->opt.name, ip);
    }
};

smtp_server::smtp_server(asio::io_context& io, smtp_server_options options, queue::spool& spool)
    : impl_(std::make_shared<impl>(io, std::move(options), spool)) {}

smtp_server::~smtp_server() = default;

bool smtp_server::start(std::string& error) {
    if (!impl_->load_tls(error) || !impl_->bind_all(error)) return false;
    {
        std::lock_guard lk(impl_->per_ip_mu);
        impl_->load_auth_failures();
    }
    for (auto& a : impl_->acceptors)
        asio::co_spawn(a->get_executor(), impl::accept_loop(impl_, *a), asio::detached);
    return true;
}

bool smtp_server::busy() const { return impl_->committing.load() > 0; }

void smtp_server::stop() {
    for (auto& a : impl_->acceptors)
        asio::post(a->get_executor(), [self = impl_, acc = a.get()] {
            boost::system::error_code ec;
            acc->close(ec);
        });
}

}  // namespace ricochet::smtp
