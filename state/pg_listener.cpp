// pg_listener — see pg_listener.hpp.
#include "state/pg_listener.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "state/pg.hpp"

namespace ricochet::state {

struct pg_listener::state {
    std::unique_ptr<pg::connection> conn;
    int wake = -1;  // eventfd: stop() writes it
    std::atomic<bool> stopping{false};
    ~state() {
        if (wake >= 0) ::close(wake);
    }
};

namespace {
constexpr const char* channel = "ricochet_suppression";
constexpr std::int32_t node_claim = 0x52696340;  // pg_try_advisory_lock(node_claim, node): the node's number in use
constexpr const char* record_cols = RICOCHET_PG_RECORD_COLS;
using pg::read_record;

std::unique_ptr<pg::connection> listen(const std::string& url, const std::string& application, std::string& error) {
    auto c = pg::connection::open(url, application.c_str(), error);
    if (!c) return nullptr;
    auto r = c->exec(std::string("LISTEN ") + channel);
    if (!r.ok()) {
        error = r.error(c->raw());
        return nullptr;
    }
    return c;
}
}  // namespace

pg_listener::pg_listener(std::string url, handler h, int node)
    : url_(std::move(url)), h_(std::move(h)), node_(node), st_(new state) {}

pg_listener::~pg_listener() { stop(); }

bool pg_listener::start(std::string& error) {
    st_->wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (st_->wake < 0) {
        error = "eventfd failed";
        return false;
    }
    // Named per process: after a reconnect, a session of ours the server
    // still keeps (its peer vanished without a word) can be told apart.
    char tag[24];
    std::snprintf(tag, sizeof tag, " %08x", static_cast<unsigned>(std::random_device{}()));
    application_ = std::string("ricochetd listener") + tag;
    st_->conn = listen(url_, application_, error);
    if (!st_->conn) return false;
    // A process that died may still hold the claim until the server notices.
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(pg::default_timeout_s.load() + 5);
    while (!claim(error)) {
        if (!st_->conn->alive() || std::chrono::steady_clock::now() >= until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    if (!load_all(error)) return false;
    thread_ = std::thread([this] { run(); });
    return true;
}

void pg_listener::stop() {
    if (!thread_.joinable()) return;
    st_->stopping = true;
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(st_->wake, &one, sizeof one);
    thread_.join();
}

std::string pg_listener::health() const {
    std::lock_guard lk(mu_);
    return down_.empty() ? std::string() : "not hearing other nodes' changes: " + down_;
}

bool pg_listener::claim(std::string& error, bool again) {
    if (node_ <= 0) return true;
    auto& c = *st_->conn;
    std::string key = std::to_string(node_claim) + ", " + std::to_string(node_);
    for (int tries = 0; tries < 20; ++tries) {
        auto r = c.exec("SELECT pg_try_advisory_lock(" + key + ")");
        if (!r.ok()) {
            error = r.error(c.raw());
            return false;
        }
        if (r.text(0, 0) == "t") return true;
        if (!again) break;
        // Our own earlier session may still hold it (the server did not
        // notice its peer go, as behind a NAT that drops silently): it is
        // ended, the lock comes free.
        if (tries == 0) {
            auto k = c.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1"
                            " AND pid <> pg_backend_pid()",
                            pg::params().text(application_));
            if (!k.ok() || k.rows() == 0) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    error = "node " + std::to_string(node_) +
            " is in use by another running ricochetd with the same node name (give each node its own "
            "server.node_name, or host name and spool directory)";
    return false;
}

bool pg_listener::load_all(std::string& error) {
    auto& c = *st_->conn;
    auto recs = c.exec(std::string("SELECT ") + record_cols + " FROM recipients WHERE status IN ('held', 'unsubscribed')");
    auto ents = c.exec("SELECT entry FROM suppressions");
    if (!recs.ok() || !ents.ok()) {
        error = (recs.ok() ? ents : recs).error(c.raw());
        return false;
    }
    std::vector<bounce::address_record> rs;
    for (int i = 0; i < recs.rows(); ++i) rs.push_back(read_record(recs, i));
    std::vector<std::string> es;
    for (int i = 0; i < ents.rows(); ++i) es.push_back(ents.text(i, 0));
    if (h_.reload) h_.reload(rs, es);
    return true;
}

void pg_listener::run() {
    auto& s = *st_;
    std::chrono::milliseconds backoff{0};
    // Waits for the socket (or, without one, the back-off), or stop().
    // True when stop() was called.
    auto wait = [&s](int sock, int timeout_ms) {
        pollfd fds[2] = {{s.wake, POLLIN, 0}, {sock, POLLIN, 0}};
        ::poll(fds, sock >= 0 ? 2 : 1, timeout_ms);
        return s.stopping.load();
    };
    auto set_down = [this](const std::string& why) {
        {
            std::lock_guard lk(mu_);
            if (!down_.empty()) return;
            down_ = why.empty() ? "connection lost" : why;
        }
        if (h_.down) h_.down(why);
    };
    const std::chrono::seconds quiet(pg::default_timeout_s.load());
    const int quiet_ms = quiet.count() > 0 ? static_cast<int>(quiet.count() * 1000) : -1;
    auto heard = std::chrono::steady_clock::now();
    while (!s.stopping) {
        if (!s.conn || !s.conn->alive()) {
            backoff = std::clamp(backoff * 2, std::chrono::milliseconds(500), std::chrono::milliseconds(10000));
            if (wait(-1, static_cast<int>(backoff.count()))) break;
            std::string why;
            s.conn = listen(url_, application_, why);
            if (!s.conn) {
                set_down(why);
                continue;
            }
            // Whatever changed while we were away: read it all again.
            if (std::string err; !claim(err, true) || !load_all(err)) {
                set_down(err);
                s.conn.reset();
                continue;
            }
            if (h_.scope) h_.scope("");
            backoff = {};
            {
                std::lock_guard lk(mu_);
                down_.clear();
            }
            if (h_.up) h_.up();
        }
        PGconn* c = s.conn->raw();
        auto drain = [c] {
            std::vector<std::string> out;
            while (PGnotify* n = PQnotifies(c)) {
                out.emplace_back(n->extra ? n->extra : "");
                PQfreemem(n);
            }
            return out;
        };
        // Some may have come in with the answer to our last query: those
        // are in libpq's buffer already, and the socket would not wake us.
        auto payloads = drain();
        if (payloads.empty()) {
            if (wait(PQsocket(c), quiet_ms)) break;
            if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK) {
                std::string why = pg::trimmed(PQerrorMessage(c));
                set_down(why);
                s.conn.reset();
                continue;
            }
            payloads = drain();
            // Quiet for a while: is the server still there? A path that
            // drops packets silently shows only when something is sent
            // (TCP keepalives answered by a middlebox would not show it).
            if (payloads.empty() && quiet_ms > 0 && std::chrono::steady_clock::now() - heard >= quiet) {
                auto r = s.conn->exec("SELECT 1");
                if (!r.ok()) {
                    set_down(r.error(s.conn->raw()));
                    s.conn.reset();
                    continue;
                }
                payloads = drain();
                heard = std::chrono::steady_clock::now();
            }
        }
        if (!payloads.empty()) heard = std::chrono::steady_clock::now();
        for (auto& p : payloads) {
            if (p.starts_with("b")) {
                if (h_.scope) h_.scope(p.substr(1));
            } else if (p.starts_with("s+") || p.starts_with("s-")) {
                if (h_.entry) h_.entry(p.substr(2), p[1] == '+');
            } else if (p.starts_with("r")) {
                std::string address = p.substr(1);
                auto r = s.conn->exec(std::string("SELECT ") + record_cols + " FROM recipients WHERE address = $1",
                                      pg::params().text(address));
                if (!r.ok()) {
                    // This and the rest are read again with the whole list after a reconnect.
                    set_down(r.error(s.conn->raw()));
                    s.conn.reset();
                    break;
                }
                bounce::address_record rec{address};
                if (r.rows()) rec = read_record(r, 0);
                if (h_.record) h_.record(rec);
            } else {
                continue;
            }
            ++applied_;
        }
    }
    s.conn.reset();
}

}  // namespace ricochet::state
