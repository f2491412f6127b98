// sqlite_storage — see sqlite_storage.hpp.
#include "state/sqlite_storage.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <tuple>
#include <unordered_map>

#include "base/unique_fd.hpp"

namespace ricochet::state {
namespace detail {

std::string domain_of(const std::string& a) {
    auto at = a.rfind('@');
    return at == std::string::npos ? std::string() : a.substr(at + 1);
}

// A prepared statement that finalizes itself. A prepare that fails (a
// schema older than the query, a read-only file) leaves ok() false and the
// message in error(); steps on it fail instead of crashing.
class stmt {
public:
    stmt(sqlite3* db, const std::string& sql) : db_(db) {
        if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s_, nullptr) != SQLITE_OK) {
            error_ = sqlite3_errmsg(db);
            s_ = nullptr;
        }
    }
    ~stmt() { sqlite3_finalize(s_); }
    stmt(const stmt&) = delete;
    stmt& operator=(const stmt&) = delete;

    bool ok() const { return s_ != nullptr; }
    const std::string& error() const { return error_; }
    stmt& text(int i, const std::string& v) {
        if (s_) sqlite3_bind_text(s_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        return *this;
    }
    stmt& num(int i, std::int64_t v) {
        if (s_) sqlite3_bind_int64(s_, i, v);
        return *this;
    }
    // A query's next row; false at the end or on an error (error() tells).
    bool row() {
        if (!s_) return false;
        int rc = sqlite3_step(s_);
        if (rc == SQLITE_ROW) return true;
        if (rc != SQLITE_DONE) error_ = sqlite3_errmsg(db_);
        return false;
    }
    // Runs a write; false with error() set when it failed.
    bool run() {
        if (!s_) return false;
        int rc = sqlite3_step(s_);
        if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
            error_ = sqlite3_errmsg(db_);
            return false;
        }
        return true;
    }
    // Ready to be bound and stepped again (one prepare for a whole batch).
    void reset() {
        if (!s_) return;
        sqlite3_reset(s_);
        sqlite3_clear_bindings(s_);
    }
    std::string col_text(int i) {
        auto* p = sqlite3_column_text(s_, i);
        return p ? reinterpret_cast<const char*>(p) : "";
    }
    std::int64_t col_num(int i) { return sqlite3_column_int64(s_, i); }

private:
    sqlite3* db_;
    sqlite3_stmt* s_ = nullptr;
    std::string error_;
};

bool fail(stmt& q, std::string& error) {
    error = q.error().empty() ? "SQLite error" : q.error();
    return false;
}

bounce::address_record read_record(stmt& q) {
    bounce::address_record r;
    r.address = q.col_text(0);
    r.status = bounce::parse_address_status(q.col_text(1)).value_or(bounce::address_status::active);
    r.bounce_count = static_cast<int>(q.col_num(2));
    r.first_bounce_ms = q.col_num(3);
    r.last_bounce_ms = q.col_num(4);
    r.last_reply = q.col_text(5);
    r.last_kind = q.col_text(6);
    r.last_category = q.col_text(7);
    return r;
}
#define RECORD_COLS "address, status, bounce_count, first_bounce_ms, last_bounce_ms, last_reply, last_kind, last_category"
constexpr const char* select_recipient_sql = "SELECT " RECORD_COLS " FROM recipients WHERE address = ?";
constexpr const char* select_status_sql = "SELECT " RECORD_COLS " FROM recipients WHERE status = ? AND address > ? ORDER BY address LIMIT ?";
#undef RECORD_COLS

constexpr const char* schema =
    // Pages freed by retention can be given back (PRAGMA incremental_vacuum);
    // takes effect for a database created from now on.
    "PRAGMA auto_vacuum=INCREMENTAL;"
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"  // WAL + NORMAL: a crash may lose the last decisions, never corrupt
    // The decisions' indexes (recipient, campaign, domain) take inserts
    // all over their B-trees: with SQLite's default 2 MiB cache each
    // batch rereads pages through the kernel. Up to 32 MiB, as used.
    "PRAGMA cache_size=-32768;"
    // One transaction for the whole schema: page 1 is written once, not
    // once per table (a new database stays a few pages of WAL).
    "BEGIN IMMEDIATE;"
    "CREATE TABLE IF NOT EXISTS recipients(address TEXT PRIMARY KEY, status TEXT NOT NULL,"
    " bounce_count INTEGER NOT NULL DEFAULT 0, first_bounce_ms INTEGER NOT NULL DEFAULT 0,"
    " last_bounce_ms INTEGER NOT NULL DEFAULT 0, last_reply TEXT, last_kind TEXT, last_category TEXT,"
    " updated_ms INTEGER);"
    "CREATE INDEX IF NOT EXISTS recipients_status ON recipients(status);"
    "CREATE INDEX IF NOT EXISTS recipients_status_address ON recipients(status, address);"
    "CREATE TABLE IF NOT EXISTS decisions(id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, type TEXT NOT NULL,"
    " queue_id TEXT, campaign TEXT, recipient TEXT, domain TEXT, kind TEXT, category TEXT, rule TEXT, reply TEXT);"
    "CREATE INDEX IF NOT EXISTS decisions_recipient ON decisions(recipient);"
    "CREATE INDEX IF NOT EXISTS decisions_campaign ON decisions(campaign, time_ms);"
    "CREATE INDEX IF NOT EXISTS decisions_domain ON decisions(domain, time_ms);"
    // Per day, campaign and domain: what `stats` counts, for decisions that
    // retention deleted (day = time_ms / 86400000, UTC).
    "CREATE TABLE IF NOT EXISTS daily_totals(day INTEGER NOT NULL, campaign TEXT NOT NULL, domain TEXT NOT NULL,"
    " queued INTEGER NOT NULL, delivered INTEGER NOT NULL, deferred INTEGER NOT NULL, hard INTEGER NOT NULL,"
    " soft INTEGER NOT NULL, block INTEGER NOT NULL, technical INTEGER NOT NULL,"
    " PRIMARY KEY(day, campaign, domain)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS messages(queue_id TEXT PRIMARY KEY, campaign TEXT,"
    " bounced INTEGER NOT NULL DEFAULT 0, sender TEXT);"
    "CREATE TABLE IF NOT EXISTS message_recipients(queue_id TEXT NOT NULL, idx INTEGER NOT NULL,"
    " recipient TEXT NOT NULL, PRIMARY KEY(queue_id, idx));"
    "CREATE TABLE IF NOT EXISTS final_failures(queue_id TEXT NOT NULL, recipient TEXT NOT NULL,"
    " PRIMARY KEY(queue_id, recipient));"
    "CREATE TABLE IF NOT EXISTS suppressions(entry TEXT PRIMARY KEY, reason TEXT, created_ms INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS breaker_counts(scope TEXT NOT NULL, bucket INTEGER NOT NULL,"
    " attempted INTEGER NOT NULL, delivered INTEGER NOT NULL, hard INTEGER NOT NULL, soft INTEGER NOT NULL,"
    " block INTEGER NOT NULL, complaints INTEGER NOT NULL, PRIMARY KEY(scope, bucket)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS breaker_scopes(scope TEXT PRIMARY KEY, state TEXT NOT NULL, reason TEXT,"
    " since_ms INTEGER NOT NULL, manual INTEGER NOT NULL, b_attempted INTEGER NOT NULL, b_delivered INTEGER NOT NULL,"
    " b_hard INTEGER NOT NULL, b_soft INTEGER NOT NULL, b_block INTEGER NOT NULL, b_complaints INTEGER NOT NULL,"
    " b_bucket INTEGER NOT NULL) WITHOUT ROWID;"
    "COMMIT;";

bool exec(sqlite3* db, const char* sql, std::string& error) {
    char* msg = nullptr;
    if (sqlite3_exec(db, sql, nullptr, nullptr, &msg) == SQLITE_OK) return true;
    error = msg ? msg : sqlite3_errmsg(db);
    sqlite3_free(msg);
    return false;
}

// The schema's versions after the first (PRAGMA user_version, 0 for a
// database of the first version). Each runs once, in order, in a
// transaction of its own; BEGIN IMMEDIATE makes a second process that
// opens the database at the same moment wait, then find the work done.
struct migration {
    int version;
    const char* sql;
};
constexpr migration migrations[] = {
    // 1: complaints in the daily totals; counts per hour, campaign and
    // domain, and per hour, domain and reply category (the dashboard's
    // series), filled from the decisions already kept.
    {1,
     "ALTER TABLE daily_totals ADD COLUMN complaints INTEGER NOT NULL DEFAULT 0;"
     "CREATE TABLE hourly_totals(hour INTEGER NOT NULL, campaign TEXT NOT NULL, domain TEXT NOT NULL,"
     " queued INTEGER NOT NULL, delivered INTEGER NOT NULL, deferred INTEGER NOT NULL, hard INTEGER NOT NULL,"
     " soft INTEGER NOT NULL, block INTEGER NOT NULL, technical INTEGER NOT NULL, complaints INTEGER NOT NULL,"
     " PRIMARY KEY(hour, campaign, domain)) WITHOUT ROWID;"
     "CREATE TABLE hourly_replies(hour INTEGER NOT NULL, domain TEXT NOT NULL, outcome TEXT NOT NULL,"
     " kind TEXT NOT NULL, category TEXT NOT NULL, n INTEGER NOT NULL,"
     " PRIMARY KEY(hour, domain, outcome, kind, category)) WITHOUT ROWID;"
     "INSERT INTO hourly_totals SELECT time_ms / 3600000, IFNULL(campaign,''), IFNULL(domain,''),"
     " SUM(type='queued'), SUM(type='delivered'), SUM(type='deferred'),"
     " SUM(type IN ('bounced','expired') AND kind='hard'), SUM(type IN ('bounced','expired') AND kind='soft'),"
     " SUM(type IN ('bounced','expired') AND kind='block'), SUM(type IN ('bounced','expired') AND kind='technical'),"
     " SUM(type='complaint') FROM decisions WHERE type <> 'admin' GROUP BY 1, 2, 3;"
     "INSERT INTO hourly_replies SELECT time_ms / 3600000, IFNULL(domain,''), type, IFNULL(kind,''),"
     " IFNULL(category,''), COUNT(*) FROM decisions WHERE type IN ('deferred','bounced','expired')"
     " GROUP BY 1, 2, 3, 4, 5;"},
    // 2: the tokens of the batches recorded (a replayed batch whose commit
    // had gone through is not recorded twice).
    {2, "CREATE TABLE applied_batches(token TEXT PRIMARY KEY, at_ms INTEGER NOT NULL) WITHOUT ROWID;"},
    // 3: with the status changes each batch made (published by a replay that
    // finds its batch recorded).
    {3, "ALTER TABLE applied_batches ADD COLUMN changes TEXT;"},
};

int user_version(sqlite3* db) {
    stmt q(db, "PRAGMA user_version");
    return q.row() ? static_cast<int>(q.col_num(0)) : -1;
}

bool migrate(sqlite3* db, std::string& error) {
    for (auto& m : migrations) {
        if (user_version(db) >= m.version) continue;
        if (!exec(db, "BEGIN IMMEDIATE", error)) return false;
        int v = user_version(db);  // another process may have done it meanwhile
        if (v < m.version) {
            std::string sql = std::string(m.sql) + "PRAGMA user_version=" + std::to_string(m.version) + ";";
            if (!exec(db, sql.c_str(), error)) {
                sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
                error = "schema migration to version " + std::to_string(m.version) + ": " + error;
                return false;
            }
        }
        if (!exec(db, "COMMIT", error)) return false;
    }
    return true;
}

}  // namespace detail
using namespace detail;

void sqlite_storage::db_closer::operator()(sqlite3* db) const { sqlite3_close(db); }

// Every fixed statement is prepared once per connection and reset before
// each use: a batch from the recorder runs the same few statements for
// thousands of decisions, and preparing is most of their cost.
struct sqlite_storage::statements {
    std::unordered_map<const char*, std::unique_ptr<stmt>> by_sql;
};

sqlite_storage::stmt_use sqlite_storage::prepared(const char* sql) {
    auto& slot = cache_->by_sql[sql];
    if (!slot || !slot->ok()) slot = std::make_unique<stmt>(db_.get(), sql);
    return stmt_use{slot.get()};
}

// Reset after each use, not only before the next: a query left on a row
// would keep its read transaction (and the WAL) open.
sqlite_storage::stmt_use::~stmt_use() {
    if (s) s->reset();
}

sqlite_storage::sqlite_storage() = default;
sqlite_storage::~sqlite_storage() = default;

std::unique_ptr<sqlite_storage> sqlite_storage::open(const std::string& path, bool readonly, std::string& error) {
    std::unique_ptr<sqlite_storage> st(new sqlite_storage);
    st->cache_ = std::make_unique<statements>();
    std::filesystem::path p(path);
    std::error_code ec;
    if (!readonly && p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
    int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    sqlite3* db = nullptr;
    int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    st->db_.reset(db);
    if (rc != SQLITE_OK) {
        error = path + ": " + (db ? sqlite3_errmsg(db) : "cannot open");
        return nullptr;
    }
    sqlite3_busy_timeout(db, 5000);  // the daemon and ricochetctl may write at once
    if (readonly) {
        // An older file (the daemon not yet restarted on this version): its
        // queries leave out what it does not have yet.
        st->version_ = user_version(db);
        return st;
    }
    std::string why;
    if (!exec(db, schema, why)) {
        error = path + ": " + why;
        return nullptr;
    }
    // A database from before messages.sender: add the column (fails
    // harmlessly when it is there).
    sqlite3_exec(db, "ALTER TABLE messages ADD COLUMN sender TEXT", nullptr, nullptr, nullptr);
    // A migration fills its tables from every decision kept: on a large
    // database another process opening it meanwhile waits that long.
    sqlite3_busy_timeout(db, 600000);
    bool migrated = migrate(db, why);
    sqlite3_busy_timeout(db, 5000);
    if (!migrated) {
        error = path + ": " + why;
        return nullptr;
    }
    st->version_ = user_version(db);
    st->path_ = path;
    return st;
}

// WAL with synchronous=NORMAL syncs the WAL only at checkpoints: a commit
// is atomic and consistent at once, durable later. The acknowledged inputs
// (a report's 250, an unsubscribe's page, an operator's command) ask for
// it now: one fdatasync of the WAL covers every frame committed so far, as
// synchronous=FULL would have. Through one descriptor kept open: a
// writeback error is reported once per open file, and one reported to a
// descriptor opened later would go unseen. A failure is for good (the
// PostgreSQL fsync lesson: the frames may be gone, and SQLite's recovery
// stops at the first missing one): every later sync fails too, and
// health() says so, until the daemon is restarted.
bool sqlite_storage::sync(std::string& error) {
    std::lock_guard lk(sync_mu_);
    if (!sync_failed_.empty()) {
        error = sync_failed_;
        return false;
    }
    auto fail = [&](std::string why) {
        sync_failed_ = why + " (not retried: restart the daemon once the disk is sound)";
        error = sync_failed_;
        return false;
    };
    auto wal = path_ + "-wal";
    if (!wal_fd_) {
        wal_fd_.reset(::open(wal.c_str(), O_RDONLY | O_CLOEXEC));
        if (!wal_fd_) {
            if (errno == ENOENT) return true;  // nothing committed yet
            error = wal + ": " + base::last_error().message();
            return false;
        }
    }
    if (::fdatasync(wal_fd_.get()) != 0) return fail(wal + ": fdatasync: " + base::last_error().message());
    if (!dir_synced_) {  // the WAL's name, once: it stays while the daemon runs
        auto dir = std::filesystem::path(path_).parent_path();
        if (auto ec = base::fsync_dir(dir.empty() ? std::filesystem::path(".") : dir))
            return fail(dir.string() + ": fsync: " + ec.message());
        dir_synced_ = true;
    }
    return true;
}

std::string sqlite_storage::health() {
    std::lock_guard lk(sync_mu_);
    return sync_failed_.empty() ? std::string() : "state store: " + sync_failed_;
}

bool sqlite_storage::begin(std::string& error) { return exec(db_.get(), "BEGIN IMMEDIATE", error); }
bool sqlite_storage::commit(std::string& error) { return exec(db_.get(), "COMMIT", error); }
void sqlite_storage::rollback() {
    if (!sqlite3_get_autocommit(db_.get())) sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
}

std::optional<bounce::address_record> sqlite_storage::load_recipient(const std::string& address, std::string& error) {
    auto use = prepared(select_recipient_sql);
    auto& q = *use;
    q.text(1, address);
    if (q.row()) return read_record(q);
    if (!q.ok() || !q.error().empty()) fail(q, error);
    return std::nullopt;
}

bool sqlite_storage::save_recipient(const bounce::address_record& r, std::int64_t now, std::string& error) {
    auto use = prepared("INSERT INTO recipients(address, status, bounce_count, first_bounce_ms, last_bounce_ms, last_reply, "
           "last_kind, last_category, updated_ms) VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(address) DO UPDATE SET "
           "status=excluded.status, bounce_count=excluded.bounce_count, first_bounce_ms=excluded.first_bounce_ms, "
           "last_bounce_ms=excluded.last_bounce_ms, last_reply=excluded.last_reply, last_kind=excluded.last_kind, "
           "last_category=excluded.last_category, updated_ms=excluded.updated_ms");
    auto& q = *use;
    q.text(1, r.address).text(2, std::string(bounce::to_string(r.status))).num(3, r.bounce_count)
        .num(4, r.first_bounce_ms).num(5, r.last_bounce_ms).text(6, r.last_reply).text(7, r.last_kind)
        .text(8, r.last_category).num(9, now);
    return q.run() || fail(q, error);
}

std::vector<bounce::address_record> sqlite_storage::recipients_with(bounce::address_status s, const std::string& after,
                                                                   std::size_t limit) {
    auto use = prepared(select_status_sql);
    auto& q = *use;
    q.text(1, std::string(bounce::to_string(s))).text(2, after).num(3, limit ? static_cast<std::int64_t>(limit) : -1);
    std::vector<bounce::address_record> out;
    while (q.row()) out.push_back(read_record(q));
    return out;
}

// One prepare for the whole batch: a batch from the recorder holds every
// decision of many messages.
bool sqlite_storage::add_decisions(const std::vector<const events::event*>& evs, std::string& error) {
    auto use = prepared("INSERT INTO decisions(time_ms, type, queue_id, campaign, recipient, domain, kind, category, rule, reply) "
           "VALUES(?,?,?,?,?,?,?,?,?,?)");
    auto& q = *use;
    for (auto* e : evs) {
        q.reset();
        std::string rcpt = e->recipient;
        for (auto& c : rcpt)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        q.num(1, e->time_ms).text(2, std::string(to_string(e->type))).text(3, e->queue_id).text(4, e->campaign)
            .text(5, rcpt).text(6, domain_of(rcpt)).text(7, e->kind).text(8, e->category).text(9, e->rule)
            .text(10, e->reply);
        if (!q.run()) return fail(q, error);
    }
    return add_hourly(evs, error);
}

// The batch's counts per hour, summed in memory first: one upsert per
// (hour, campaign, domain) and per (hour, domain, reply category) in the
// batch, not one per decision.
bool sqlite_storage::add_hourly(const std::vector<const events::event*>& evs, std::string& error) {
    using events::event_type;
    std::map<std::tuple<std::int64_t, std::string, std::string>, stats_row> totals;
    std::map<std::tuple<std::int64_t, std::string, std::string, std::string, std::string>, std::int64_t> replies;
    for (auto* e : evs) {
        if (e->type == event_type::admin) continue;
        std::string dom = domain_of(e->recipient);
        for (auto& c : dom)
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        std::int64_t hour = e->time_ms / 3600000;
        auto& t = totals[{hour, e->campaign, dom}];
        bool failed = e->type == event_type::bounced || e->type == event_type::expired;
        switch (e->type) {
            case event_type::queued: ++t.sent; break;
            case event_type::delivered: ++t.delivered; break;
            case event_type::deferred: ++t.deferred; break;
            case event_type::complaint: ++t.complaints; break;
            default: break;
        }
        if (failed) {
            if (e->kind == "hard") ++t.hard;
            else if (e->kind == "soft") ++t.soft;
            else if (e->kind == "block") ++t.block;
            else if (e->kind == "technical") ++t.technical;
        }
        if (failed || e->type == event_type::deferred)
            ++replies[{hour, dom, std::string(to_string(e->type)), e->kind, e->category}];
    }
    {
        auto use = prepared(
            "INSERT INTO hourly_totals(hour, campaign, domain, queued, delivered, deferred, hard, soft, block, technical,"
            " complaints) VALUES(?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(hour, campaign, domain) DO UPDATE SET"
            " queued = queued + excluded.queued, delivered = delivered + excluded.delivered,"
            " deferred = deferred + excluded.deferred, hard = hard + excluded.hard, soft = soft + excluded.soft,"
            " block = block + excluded.block, technical = technical + excluded.technical,"
            " complaints = complaints + excluded.complaints");
        auto& q = *use;
        for (auto& [k, t] : totals) {
            q.reset();
            q.num(1, std::get<0>(k)).text(2, std::get<1>(k)).text(3, std::get<2>(k)).num(4, t.sent).num(5, t.delivered)
                .num(6, t.deferred).num(7, t.hard).num(8, t.soft).num(9, t.block).num(10, t.technical).num(11, t.complaints);
            if (!q.run()) return fail(q, error);
        }
    }
    auto use = prepared(
        "INSERT INTO hourly_replies(hour, domain, outcome, kind, category, n) VALUES(?,?,?,?,?,?)"
        " ON CONFLICT(hour, domain, outcome, kind, category) DO UPDATE SET n = n + excluded.n");
    auto& q = *use;
    for (auto& [k, n] : replies) {
        q.reset();
        q.num(1, std::get<0>(k)).text(2, std::get<1>(k)).text(3, std::get<2>(k)).text(4, std::get<3>(k))
            .text(5, std::get<4>(k)).num(6, n);
        if (!q.run()) return fail(q, error);
    }
    return true;
}

std::vector<events::event> sqlite_storage::history(const std::string& address, int limit) {
    auto use = prepared("SELECT time_ms, type, queue_id, campaign, recipient, kind, category, rule, reply FROM decisions "
                      "WHERE recipient = ? ORDER BY id DESC LIMIT ?");
    auto& q = *use;
    q.text(1, address).num(2, limit);
    std::vector<events::event> out;
    while (q.row()) {
        events::event e;
        e.time_ms = q.col_num(0);
        e.type = events::parse_event_type(q.col_text(1)).value_or(events::event_type::admin);
        e.queue_id = q.col_text(2);
        e.campaign = q.col_text(3);
        e.recipient = q.col_text(4);
        e.kind = q.col_text(5);
        e.category = q.col_text(6);
        e.rule = q.col_text(7);
        e.reply = q.col_text(8);
        out.push_back(std::move(e));
    }
    return out;
}

std::vector<stats_row> sqlite_storage::stats(const std::string& group_by, const std::string& campaign,
                                             const std::string& domain, std::int64_t since_ms) {
    std::string key = group_by == "domain" ? "domain" : "campaign";
    // The decisions still kept, plus the daily totals of those retention
    // deleted (a day counts when it starts at or after since_ms). A
    // recipient deferred both in a folded day and later is counted by its
    // last deferral only (prune() leaves it to the rows that remain).
    std::string sql =
        "SELECT k, SUM(q), SUM(d), SUM(df), SUM(h), SUM(s), SUM(b), SUM(t), SUM(c) FROM ("
        " SELECT IFNULL(" + key + ",'') AS k, SUM(type='queued') AS q, SUM(type='delivered') AS d,"
        " COUNT(DISTINCT CASE WHEN type='deferred' THEN queue_id || ' ' || recipient END) AS df,"
        " SUM(type IN ('bounced','expired') AND kind='hard') AS h, SUM(type IN ('bounced','expired') AND kind='soft') AS s,"
        " SUM(type IN ('bounced','expired') AND kind='block') AS b, SUM(type IN ('bounced','expired') AND kind='technical') AS t,"
        " SUM(type='complaint') AS c"
        " FROM decisions WHERE time_ms >= ?1 AND (?2 = '' OR campaign = ?2) AND (?3 = '' OR domain = ?3)"
        " AND type <> 'admin' GROUP BY k"
        " UNION ALL"
        " SELECT " + key + ", SUM(queued), SUM(delivered), SUM(deferred), SUM(hard), SUM(soft), SUM(block), SUM(technical),"
        + std::string(version_ >= 1 ? " SUM(complaints)" : " 0") + " FROM daily_totals WHERE day * 86400000 >= ?1 AND (?2 = '' OR campaign = ?2) AND (?3 = '' OR domain = ?3)"
        " GROUP BY " + key +
        ") GROUP BY k ORDER BY k";
    stmt q(db_.get(), sql);
    q.num(1, since_ms).text(2, campaign).text(3, domain);
    std::vector<stats_row> out;
    while (q.row())
        out.push_back({q.col_text(0), q.col_num(1), q.col_num(2), q.col_num(3), q.col_num(4), q.col_num(5),
                       q.col_num(6), q.col_num(7), q.col_num(8)});
    return out;
}

std::vector<series_row> sqlite_storage::series(std::int64_t bucket_ms, const std::string& group_by,
                                               const std::string& campaign, const std::string& domain,
                                               std::int64_t since_ms) {
    std::string key = group_by == "domain" ? "domain" : group_by == "campaign" ? "campaign" : "''";
    std::int64_t hours = std::max<std::int64_t>(1, bucket_ms / 3600000);
    std::string sql =
        "SELECT " + key + ", hour / ?4 * ?4, SUM(queued), SUM(delivered), SUM(deferred), SUM(hard), SUM(soft),"
        " SUM(block), SUM(technical), SUM(complaints) FROM hourly_totals"
        " WHERE hour >= ?1 AND (?2 = '' OR campaign = ?2) AND (?3 = '' OR domain = ?3)"
        " GROUP BY 1, 2 ORDER BY 1, 2";
    stmt q(db_.get(), sql);
    q.num(1, since_ms / 3600000).text(2, campaign).text(3, domain).num(4, hours);
    std::vector<series_row> out;
    while (q.row()) {
        series_row r;
        r.start_ms = q.col_num(1) * 3600000;
        r.counts = {q.col_text(0), q.col_num(2), q.col_num(3), q.col_num(4), q.col_num(5), q.col_num(6),
                    q.col_num(7), q.col_num(8), q.col_num(9)};
        out.push_back(std::move(r));
    }
    return out;
}

std::vector<reply_row> sqlite_storage::replies(const std::string& domain, std::int64_t since_ms, std::size_t limit) {
    stmt q(db_.get(),
           "SELECT domain, outcome, kind, category, SUM(n) AS c FROM hourly_replies WHERE hour >= ?1"
           " AND (?2 = '' OR domain = ?2) GROUP BY 1, 2, 3, 4 ORDER BY c DESC, 1, 2, 3, 4 LIMIT ?3");
    q.num(1, since_ms / 3600000).text(2, domain).num(3, limit ? static_cast<std::int64_t>(limit) : -1);
    std::vector<reply_row> out;
    while (q.row()) out.push_back({q.col_text(0), q.col_text(1), q.col_text(2), q.col_text(3), q.col_num(4)});
    return out;
}

bool sqlite_storage::prune(std::int64_t before_ms, const std::string& id_before, std::size_t batch, prune_counts& out,
                           std::string& error) {
    out = {};
    // The batch: the oldest `batch` rows (by id, the order they were
    // written) older than before_ms; old rows are at the start of the table.
    std::int64_t last_id = 0;
    {
        stmt q(db_.get(), "SELECT id FROM decisions WHERE time_ms < ?1 ORDER BY id LIMIT 1 OFFSET ?2");
        q.num(1, before_ms).num(2, static_cast<std::int64_t>(batch) - 1);
        if (q.row()) {
            last_id = q.col_num(0);
            out.more = true;
        } else {
            stmt m(db_.get(), "SELECT IFNULL(MAX(id), 0) FROM decisions WHERE time_ms < ?1");
            m.num(1, before_ms);
            if (m.row()) last_id = m.col_num(0);
            if (!m.error().empty()) return fail(m, error);
        }
        if (!q.error().empty()) return fail(q, error);
    }
    if (last_id > 0) {
        // Folded by day, campaign and domain. A deferral counts once per
        // message and recipient: at its last deferral row, so here only
        // when no later one (a larger id: decisions are written as they
        // happen) exists, in this batch or among the rows that stay.
        stmt fold(db_.get(),
                  "INSERT INTO daily_totals(day, campaign, domain, queued, delivered, deferred, hard, soft, block, technical,"
                  " complaints)"
                  " SELECT time_ms / 86400000, IFNULL(campaign,''), IFNULL(domain,''), SUM(type='queued'), SUM(type='delivered'),"
                  " COUNT(DISTINCT CASE WHEN type='deferred' AND NOT EXISTS (SELECT 1 FROM decisions l WHERE l.type='deferred'"
                  "   AND l.recipient = o.recipient AND l.queue_id = o.queue_id AND l.id > o.id)"
                  "   THEN queue_id || ' ' || recipient END),"
                  " SUM(type IN ('bounced','expired') AND kind='hard'), SUM(type IN ('bounced','expired') AND kind='soft'),"
                  " SUM(type IN ('bounced','expired') AND kind='block'), SUM(type IN ('bounced','expired') AND kind='technical'),"
                  " SUM(type='complaint')"
                  " FROM decisions o WHERE id <= ?2 AND time_ms < ?1 AND type <> 'admin'"
                  " GROUP BY 1, 2, 3"
                  " ON CONFLICT(day, campaign, domain) DO UPDATE SET queued = queued + excluded.queued,"
                  " delivered = delivered + excluded.delivered, deferred = deferred + excluded.deferred,"
                  " hard = hard + excluded.hard, soft = soft + excluded.soft, block = block + excluded.block,"
                  " technical = technical + excluded.technical, complaints = complaints + excluded.complaints");
        fold.num(1, before_ms).num(2, last_id);
        if (!fold.run()) return fail(fold, error);
        stmt del(db_.get(), "DELETE FROM decisions WHERE id <= ?2 AND time_ms < ?1");
        del.num(1, before_ms).num(2, last_id);
        if (!del.run()) return fail(del, error);
        out.decisions = sqlite3_changes(db_.get());
    }
    for (const char* sql : {"DELETE FROM hourly_totals WHERE hour < ?1", "DELETE FROM hourly_replies WHERE hour < ?1"}) {
        stmt d(db_.get(), sql);
        d.num(1, before_ms / 3600000);
        if (!d.run()) return fail(d, error);
    }
    {  // tokens forget_batches missed (a stop before the next batch); a journal is replayed within hours
        stmt d(db_.get(), "DELETE FROM applied_batches WHERE at_ms < (SELECT MAX(at_ms) FROM applied_batches) - ?1");
        d.num(1, 7LL * 86400 * 1000);
        if (!d.run()) return fail(d, error);
    }
    if (!id_before.empty()) {
        // Queue ids sort by arrival time: the oldest messages first, a batch at a time.
        stmt ids(db_.get(), "SELECT queue_id FROM messages WHERE queue_id < ?1 ORDER BY queue_id LIMIT 1 OFFSET ?2");
        ids.text(1, id_before).num(2, static_cast<std::int64_t>(batch) - 1);
        std::string upto = id_before;
        if (ids.row()) {
            upto = ids.col_text(0) + "\x01";  // up to and including this id
            out.more = true;
        }
        for (const char* sql : {"DELETE FROM message_recipients WHERE queue_id < ?1",
                                "DELETE FROM final_failures WHERE queue_id < ?1", "DELETE FROM messages WHERE queue_id < ?1"}) {
            stmt d(db_.get(), sql);
            d.text(1, upto);
            if (!d.run()) return fail(d, error);
            if (std::string_view(sql).find("FROM messages") != std::string_view::npos) out.messages = sqlite3_changes(db_.get());
        }
    }
    return true;
}

void sqlite_storage::reclaim_space() {
    sqlite3_exec(db_.get(), "PRAGMA incremental_vacuum", nullptr, nullptr, nullptr);
}

std::optional<bool> sqlite_storage::claim_batch(const std::string& token, std::int64_t now_ms, std::string& error) {
    auto use = prepared("INSERT OR IGNORE INTO applied_batches(token, at_ms) VALUES(?,?)");
    auto& q = *use;
    q.text(1, token).num(2, now_ms);
    if (!q.run()) {
        fail(q, error);
        return std::nullopt;
    }
    return sqlite3_changes(db_.get()) > 0;
}

bool sqlite_storage::forget_batches(const std::vector<std::string>& tokens, std::string& error) {
    for (auto& t : tokens) {
        auto use = prepared("DELETE FROM applied_batches WHERE token = ?");
        auto& q = *use;
        q.text(1, t);
        if (!q.run()) return fail(q, error);
    }
    return true;
}

bool sqlite_storage::keep_batch_changes(const std::string& token, const std::string& lines, std::string& error) {
    auto use = prepared("UPDATE applied_batches SET changes = ? WHERE token = ?");
    auto& q = *use;
    q.text(1, lines).text(2, token);
    if (!q.run()) return fail(q, error);
    return true;
}

std::string sqlite_storage::batch_changes(const std::string& token) {
    auto use = prepared("SELECT changes FROM applied_batches WHERE token = ?");
    auto& q = *use;
    q.text(1, token);
    return q.row() ? q.col_text(0) : std::string();
}

bool sqlite_storage::add_message(const std::string& queue_id, const std::string& campaign, const std::string& sender,
                                 std::string& error) {
    auto use = prepared("INSERT OR IGNORE INTO messages(queue_id, campaign, sender) VALUES(?,?,?)");
    auto& q = *use;
    q.text(1, queue_id).text(2, campaign).text(3, sender);
    return q.run() || fail(q, error);
}

bool sqlite_storage::add_message_recipient(const std::string& queue_id, int index, const std::string& address,
                                           std::string& error) {
    auto use = prepared("INSERT OR IGNORE INTO message_recipients(queue_id, idx, recipient) VALUES(?,?,?)");
    auto& q = *use;
    q.text(1, queue_id).num(2, index).text(3, address);
    return q.run() || fail(q, error);
}

bool sqlite_storage::mark_message_bounced(const std::string& queue_id, const std::string& campaign,
                                          std::string& error) {
    auto use = prepared("INSERT INTO messages(queue_id, campaign, bounced) VALUES(?,?,1) "
                      "ON CONFLICT(queue_id) DO UPDATE SET bounced = 1");
    auto& q = *use;
    q.text(1, queue_id).text(2, campaign);
    return q.run() || fail(q, error);
}

std::optional<bool> sqlite_storage::message_bounced(const std::string& queue_id) {
    auto use = prepared("SELECT bounced FROM messages WHERE queue_id = ?");
    auto& q = *use;
    q.text(1, queue_id);
    if (!q.row()) return std::nullopt;
    return q.col_num(0) != 0;
}

std::optional<std::string> sqlite_storage::recipient_of(const std::string& queue_id, int index) {
    auto use = prepared("SELECT recipient FROM message_recipients WHERE queue_id = ? AND idx = ?");
    auto& q = *use;
    q.text(1, queue_id).num(2, index);
    if (!q.row()) return std::nullopt;
    return q.col_text(0);
}

std::string sqlite_storage::campaign_of(const std::string& queue_id) {
    auto use = prepared("SELECT campaign FROM messages WHERE queue_id = ?");
    auto& q = *use;
    q.text(1, queue_id);
    return q.row() ? q.col_text(0) : std::string();
}

std::optional<std::string> sqlite_storage::sender_of(const std::string& queue_id) {
    auto use = prepared("SELECT sender FROM messages WHERE queue_id = ? AND sender IS NOT NULL");
    auto& q = *use;
    q.text(1, queue_id);
    if (!q.row()) return std::nullopt;
    return q.col_text(0);
}

std::optional<bool> sqlite_storage::add_final_failure(const std::string& queue_id, const std::string& address,
                                                      std::string& error) {
    auto use = prepared("INSERT OR IGNORE INTO final_failures(queue_id, recipient) VALUES(?,?)");
    auto& q = *use;
    q.text(1, queue_id).text(2, address);
    if (!q.run()) {
        fail(q, error);
        return std::nullopt;
    }
    return sqlite3_changes(db_.get()) > 0;
}

bool sqlite_storage::final_failure_known(const std::string& queue_id, const std::string& address) {
    auto use = prepared("SELECT 1 FROM final_failures WHERE queue_id = ? AND recipient = ?");
    auto& q = *use;
    q.text(1, queue_id).text(2, address);
    return q.row();
}

bool sqlite_storage::add_suppressions(const std::vector<suppression_entry>& es, std::string& error) {
    auto use = prepared("INSERT OR REPLACE INTO suppressions(entry, reason, created_ms) VALUES(?,?,?)");
    auto& q = *use;
    for (auto& e : es) {
        q.reset();
        q.text(1, e.entry).text(2, e.reason).num(3, e.created_ms);
        if (!q.run()) return fail(q, error);
    }
    return true;
}

std::optional<bool> sqlite_storage::remove_suppression(const std::string& entry, std::string& error) {
    auto use = prepared("DELETE FROM suppressions WHERE entry = ?");
    auto& q = *use;
    q.text(1, entry);
    if (!q.run()) {
        fail(q, error);
        return std::nullopt;
    }
    return sqlite3_changes(db_.get()) > 0;
}

std::vector<suppression_entry> sqlite_storage::suppressions(const std::string& after, std::size_t limit) {
    auto use = prepared("SELECT entry, reason, created_ms FROM suppressions WHERE entry > ? ORDER BY entry LIMIT ?");
    auto& q = *use;
    q.text(1, after).num(2, limit ? static_cast<std::int64_t>(limit) : -1);
    std::vector<suppression_entry> out;
    while (q.row()) out.push_back({q.col_text(0), q.col_text(1), q.col_num(2)});
    return out;
}

bool sqlite_storage::add_window_counts(const std::vector<breaker::delta>& ds, std::string& error) {
    auto use = prepared("INSERT INTO breaker_counts(scope, bucket, attempted, delivered, hard, soft, block, complaints) "
                        "VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(scope, bucket) DO UPDATE SET "
                        "attempted = attempted + excluded.attempted, delivered = delivered + excluded.delivered, "
                        "hard = hard + excluded.hard, soft = soft + excluded.soft, block = block + excluded.block, "
                        "complaints = complaints + excluded.complaints");
    auto& q = *use;
    for (auto& d : ds) {
        q.reset();
        q.text(1, d.key).num(2, d.bucket).num(3, d.c.attempted).num(4, d.c.delivered).num(5, d.c.hard).num(6, d.c.soft)
            .num(7, d.c.block).num(8, d.c.complaints);
        if (!q.run()) return fail(q, error);
    }
    return true;
}

bool sqlite_storage::prune_window_counts(std::int64_t before_bucket, std::string& error) {
    auto use = prepared("DELETE FROM breaker_counts WHERE bucket < ?");
    auto& q = *use;
    q.num(1, before_bucket);
    return q.run() || fail(q, error);
}

std::vector<breaker::delta> sqlite_storage::window_counts(std::int64_t since_bucket) {
    auto use = prepared("SELECT scope, bucket, attempted, delivered, hard, soft, block, complaints FROM breaker_counts "
                        "WHERE bucket >= ?");
    auto& q = *use;
    q.num(1, since_bucket);
    std::vector<breaker::delta> out;
    while (q.row())
        out.push_back({q.col_text(0), q.col_num(1),
                       {q.col_num(2), q.col_num(3), q.col_num(4), q.col_num(5), q.col_num(6), q.col_num(7)}});
    return out;
}

bool sqlite_storage::save_scope(const std::string& key, const breaker::scope_state& s, std::string& error) {
    auto use = prepared("INSERT OR REPLACE INTO breaker_scopes(scope, state, reason, since_ms, manual, b_attempted, "
                        "b_delivered, b_hard, b_soft, b_block, b_complaints, b_bucket) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)");
    auto& q = *use;
    q.text(1, key).text(2, std::string(breaker::to_string(s.st))).text(3, s.reason).num(4, s.since_ms).num(5, s.manual)
        .num(6, s.baseline.attempted).num(7, s.baseline.delivered).num(8, s.baseline.hard).num(9, s.baseline.soft)
        .num(10, s.baseline.block).num(11, s.baseline.complaints).num(12, s.baseline_bucket);
    return q.run() || fail(q, error);
}

std::vector<std::pair<std::string, breaker::scope_state>> sqlite_storage::scopes() {
    auto use = prepared("SELECT scope, state, reason, since_ms, manual, b_attempted, b_delivered, b_hard, b_soft, b_block, "
                        "b_complaints, b_bucket FROM breaker_scopes");
    auto& q = *use;
    std::vector<std::pair<std::string, breaker::scope_state>> out;
    while (q.row()) {
        breaker::scope_state s;
        s.st = breaker::parse_state(q.col_text(1)).value_or(breaker::state::ok);
        s.reason = q.col_text(2);
        s.since_ms = q.col_num(3);
        s.manual = q.col_num(4) != 0;
        s.baseline = {q.col_num(5), q.col_num(6), q.col_num(7), q.col_num(8), q.col_num(9), q.col_num(10)};
        s.baseline_bucket = q.col_num(11);
        out.emplace_back(q.col_text(0), s);
    }
    return out;
}

}  // namespace ricochet::state
