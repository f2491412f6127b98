// pg_event_feed — see pg_event_feed.hpp.
#include "state/pg_event_feed.hpp"

#include <chrono>

#include "events/log_reader.hpp"
#include "state/pg.hpp"

namespace ricochet::state {
namespace {
constexpr std::int64_t events_lock = 0x52696333;
constexpr std::size_t per_copy = 2000;
// The node's position: kept in nodes, or (rows copied by a version that did
// not keep it) where its rows end.
constexpr const char* cursor_sql =
    "SELECT GREATEST((SELECT events_seq FROM nodes WHERE id = $1), (SELECT MAX(seq) FROM events WHERE node = $1), 0)";
}  // namespace

std::uint64_t pg_event_feed::last_copied(std::string& error) {
    auto c = pg::connection::open(url_, "ricochetd events", error);
    if (!c) return 0;
    auto r = c->exec(cursor_sql, pg::params().num(node_));
    if (!r.ok()) {
        error = r.error(c->raw());
        return 0;
    }
    return static_cast<std::uint64_t>(r.num(0, 0));
}

pg_event_feed::pg_event_feed(std::string url, std::filesystem::path events_log, int node)
    : url_(std::move(url)), log_(std::move(events_log)), node_(node) {}

pg_event_feed::~pg_event_feed() { stop(); }

void pg_event_feed::start() {
    thread_ = std::thread([this] { run(); });
}

void pg_event_feed::stop() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void pg_event_feed::nudge() {
    {
        std::lock_guard lk(mu_);
        nudged_ = true;
    }
    cv_.notify_all();
}

void pg_event_feed::run() {
    std::chrono::milliseconds backoff{0};
    for (;;) {
        {
            std::unique_lock lk(mu_);
            cv_.wait_for(lk, backoff.count() ? backoff : std::chrono::milliseconds(1000),
                         [this, &backoff] { return stopping_ || (nudged_ && !backoff.count()); });
            if (stopping_) return;
            nudged_ = false;
        }
        std::string error;
        bool more = true;
        while (more && error.empty()) {
            more = copy_some(error);
            std::lock_guard lk(mu_);
            if (stopping_) return;
        }
        if (!error.empty()) {
            writer_.reset();
            cursor_known_ = false;
            backoff = std::clamp(backoff * 2, std::chrono::milliseconds(500), std::chrono::milliseconds(10000));
        } else {
            backoff = {};
            // At most four copies a second: under load each is thousands of
            // lines in one statement, not a transaction per recorder batch.
            std::unique_lock lk(mu_);
            cv_.wait_for(lk, std::chrono::milliseconds(250), [this] { return stopping_; });
            if (stopping_) return;
        }
    }
}

bool pg_event_feed::copy_some(std::string& error) {
    if (!writer_ || !writer_->alive()) {
        writer_ = pg::connection::open(url_, "ricochetd events", error);
        if (!writer_) return false;
        cursor_known_ = false;
    }
    if (!cursor_known_) {  // where this node's copy stopped
        auto r = writer_->exec(cursor_sql, pg::params().num(node_));
        if (!r.ok()) {
            error = r.error(writer_->raw());
            return false;
        }
        copied_ = static_cast<std::uint64_t>(r.num(0, 0));
        cursor_known_ = true;
    }
    events::log_query q;
    q.after = copied_;
    q.limit = per_copy;
    std::error_code ec;
    auto batch = events::read_log_rotated(log_, q, ec);
    if (ec || batch.lines.empty()) return false;
    pg::params p;
    std::string sql = "INSERT INTO events(node, seq, type, line) VALUES ";
    std::size_t n = 1;
    for (auto& l : batch.lines) {
        if (n > 1) sql += ',';
        sql += "($" + std::to_string(n) + ",$" + std::to_string(n + 1) + ",$" + std::to_string(n + 2) + ",$" +
               std::to_string(n + 3) + ")";
        n += 4;
        p.num(node_).num(static_cast<std::int64_t>(events::line_seq(l))).text(std::string(events::line_type(l))).text(l);
    }
    sql += " ON CONFLICT DO NOTHING";
    auto& c = *writer_;
    auto fail = [&](const pg::result& r) {
        error = r.error(c.raw());
        c.exec("ROLLBACK");
        return false;
    };
    auto r = c.exec("BEGIN");
    if (!r.ok()) return fail(r);
    // gids are taken under the lock and committed before it is let go: rows
    // become visible in gid order, across nodes.
    if (!(r = c.exec("SELECT pg_advisory_xact_lock(" + std::to_string(events_lock) + ")")).ok()) return fail(r);
    if (!(r = c.exec(sql, p)).ok()) return fail(r);
    if (!(r = c.exec("UPDATE nodes SET events_seq = $2 WHERE id = $1",
                     pg::params().num(node_).num(static_cast<std::int64_t>(batch.last_seq))))
             .ok())
        return fail(r);
    if (!(r = c.exec("COMMIT")).ok() || r.command() != "COMMIT") return fail(r);
    copied_ = batch.last_seq;
    return batch.more || batch.lines.size() == per_copy;
}

pg_event_feed::page pg_event_feed::read(std::uint64_t after, std::size_t limit, const std::vector<std::string>& types) {
    page out;
    out.last = after;
    std::lock_guard lk(read_mu_);
    if (!reader_ || !reader_->alive()) {
        reader_ = pg::connection::open(url_, "ricochetd api", out.error);
        if (!reader_) {
            out.error = "PostgreSQL unreachable: " + out.error;
            return out;
        }
    }
    std::string list;
    for (auto& t : types) list += (list.empty() ? "" : ",") + t;
    auto r = reader_->prepared(
        "SELECT gid, line FROM events WHERE gid > $1 AND ($2 = '' OR type = ANY(string_to_array($2, ',')))"
        " ORDER BY gid LIMIT $3",
        pg::params().num(static_cast<std::int64_t>(after)).text(list).num(static_cast<std::int64_t>(limit)));
    if (!r.ok()) {
        out.error = r.error(reader_->raw());
        return out;
    }
    for (int i = 0; i < r.rows(); ++i) {
        out.lines.push_back(r.text(i, 1));
        out.last = static_cast<std::uint64_t>(r.num(i, 0));
    }
    out.more = static_cast<std::size_t>(r.rows()) == limit;
    return out;
}

}  // namespace ricochet::state
