// migrate — see migrate.hpp.
#include "state/migrate.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include "state/pg.hpp"
#include "state/pg_storage.hpp"
#include "state/sqlite_storage.hpp"

namespace ricochet::state {
namespace {
constexpr std::int64_t migrate_lock = 0x52696334;  // one import at a time (the other keys: pg_storage.cpp)

struct table {
    const char* name;
    const char* cols;   // the same in both databases
    const char* order;  // SQLite ORDER BY ("" for none)
    const char* merge;  // INSERT ... SELECT ... <merge> from the temporary table
};

// In an order where nothing refers to what comes later (nothing does: the
// tables have no foreign keys, but a reader sees messages before their rows).
constexpr table tables[] = {
    {"recipients", "address, status, bounce_count, first_bounce_ms, last_bounce_ms, last_reply, last_kind, last_category, updated_ms",
     "", "ON CONFLICT(address) DO UPDATE SET status = excluded.status, bounce_count = excluded.bounce_count,"
         " first_bounce_ms = excluded.first_bounce_ms, last_bounce_ms = excluded.last_bounce_ms,"
         " last_reply = excluded.last_reply, last_kind = excluded.last_kind, last_category = excluded.last_category,"
         " updated_ms = excluded.updated_ms WHERE COALESCE(t.updated_ms, 0) < COALESCE(excluded.updated_ms, 0)"},
    {"messages", "queue_id, campaign, bounced, sender", "",
     "ON CONFLICT(queue_id) DO UPDATE SET bounced = GREATEST(t.bounced, excluded.bounced),"
     " sender = COALESCE(t.sender, excluded.sender)"},
    {"message_recipients", "queue_id, idx, recipient", "", "ON CONFLICT DO NOTHING"},
    {"final_failures", "queue_id, recipient", "", "ON CONFLICT DO NOTHING"},
    {"decisions", "time_ms, type, queue_id, campaign, recipient, domain, kind, category, rule, reply", "ORDER BY id", ""},
    {"daily_totals", "day, campaign, domain, queued, delivered, deferred, hard, soft, block, technical, complaints", "",
     "ON CONFLICT(day, campaign, domain) DO UPDATE SET queued = t.queued + excluded.queued,"
     " delivered = t.delivered + excluded.delivered, deferred = t.deferred + excluded.deferred, hard = t.hard + excluded.hard,"
     " soft = t.soft + excluded.soft, block = t.block + excluded.block, technical = t.technical + excluded.technical,"
     " complaints = t.complaints + excluded.complaints"},
    {"hourly_totals", "hour, campaign, domain, queued, delivered, deferred, hard, soft, block, technical, complaints", "",
     "ON CONFLICT(hour, campaign, domain) DO UPDATE SET queued = t.queued + excluded.queued,"
     " delivered = t.delivered + excluded.delivered, deferred = t.deferred + excluded.deferred, hard = t.hard + excluded.hard,"
     " soft = t.soft + excluded.soft, block = t.block + excluded.block, technical = t.technical + excluded.technical,"
     " complaints = t.complaints + excluded.complaints"},
    {"hourly_replies", "hour, domain, outcome, kind, category, n", "",
     "ON CONFLICT(hour, domain, outcome, kind, category) DO UPDATE SET n = t.n + excluded.n"},
    {"suppressions", "entry, reason, created_ms", "", "ON CONFLICT DO NOTHING"},
    {"breaker_counts", "scope, bucket, attempted, delivered, hard, soft, block, complaints", "",
     "ON CONFLICT(scope, bucket) DO UPDATE SET attempted = t.attempted + excluded.attempted,"
     " delivered = t.delivered + excluded.delivered, hard = t.hard + excluded.hard, soft = t.soft + excluded.soft,"
     " block = t.block + excluded.block, complaints = t.complaints + excluded.complaints"},
    {"breaker_scopes",
     "scope, state, reason, since_ms, manual, b_attempted, b_delivered, b_hard, b_soft, b_block, b_complaints, b_bucket", "",
     "ON CONFLICT(scope) DO UPDATE SET state = excluded.state, reason = excluded.reason, since_ms = excluded.since_ms,"
     " manual = excluded.manual, b_attempted = excluded.b_attempted, b_delivered = excluded.b_delivered,"
     " b_hard = excluded.b_hard, b_soft = excluded.b_soft, b_block = excluded.b_block,"
     " b_complaints = excluded.b_complaints, b_bucket = excluded.b_bucket WHERE t.since_ms < excluded.since_ms"},
};

// One value in COPY's text format.
void copy_value(std::string& out, const unsigned char* v, int n) {
    for (int i = 0; i < n; ++i) {
        switch (v[i]) {
            case '\\': out += "\\\\"; break;
            case '\t': out += "\\t"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            default: out += static_cast<char>(v[i]);
        }
    }
}

std::string host_name() {
    char buf[256] = {};
    ::gethostname(buf, sizeof buf - 1);
    return buf;
}

}  // namespace

migrate_report migrate_sqlite_to_pg(const std::string& sqlite_path, const std::string& pg_url, bool force) {
    migrate_report rep;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(sqlite_path, ec)) {
        rep.error = sqlite_path + ": no such SQLite file";
        return rep;
    }
    // The file at this program's schema version first (its migrations run).
    if (!sqlite_storage::open(sqlite_path, false, rep.error)) return rep;
    // The shared database, created or migrated like ricochetd does.
    if (!pg_storage::open(pg_url, false, rep.error)) return rep;
    auto c = pg::connection::open(pg_url, "ricochetctl migrate", rep.error, 0);  // a large file takes as long as it takes
    if (!c) {
        rep.error = redact_url(pg_url) + ": " + rep.error;
        return rep;
    }
    sqlite3* raw = nullptr;
    if (sqlite3_open_v2(sqlite_path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
        rep.error = sqlite_path + ": " + (raw ? sqlite3_errmsg(raw) : "cannot open");
        sqlite3_close(raw);
        return rep;
    }
    std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close);
    rep.source = "sqlite:" + std::filesystem::canonical(sqlite_path, ec).string() + " on " + host_name();

    auto fail = [&](const pg::result& r) {
        rep.error = r.error(c->raw());
        c->exec("ROLLBACK");
        return rep;
    };
    auto r = c->exec("BEGIN");
    if (!r.ok()) return fail(r);
    // One import at a time; a second run of the same file waits, then finds it recorded.
    if (!(r = c->exec("SELECT pg_advisory_xact_lock(" + std::to_string(migrate_lock) + ")")).ok()) return fail(r);
    r = c->exec("SELECT imported_at FROM ricochet_imports WHERE source = $1", pg::params().text(rep.source));
    if (!r.ok()) return fail(r);
    if (r.rows() && !force) {
        rep.error = rep.source + " was moved into this database already (at " + r.text(0, 0) +
                    "): its decisions would count twice (--force moves it again)";
        c->exec("ROLLBACK");
        return rep;
    }
    sqlite3_exec(db.get(), "BEGIN", nullptr, nullptr, nullptr);  // one snapshot of the file
    std::int64_t decisions = 0;
    for (auto& t : tables) {
        std::string tmp = std::string("import_") + t.name;
        if (!(r = c->exec("CREATE TEMP TABLE " + tmp + " ON COMMIT DROP AS SELECT " + t.cols + " FROM " + t.name +
                          " WITH NO DATA"))
                 .ok())
            return fail(r);
        if (!(r = c->exec("COPY " + tmp + "(" + t.cols + ") FROM STDIN")).ok()) return fail(r);
        sqlite3_stmt* q = nullptr;
        std::string sql = std::string("SELECT ") + t.cols + " FROM " + t.name + " " + t.order;
        if (sqlite3_prepare_v2(db.get(), sql.c_str(), -1, &q, nullptr) != SQLITE_OK) {
            rep.error = sqlite_path + ": " + sqlite3_errmsg(db.get());
            PQputCopyEnd(c->raw(), "cancelled");
            while (PGresult* x = PQgetResult(c->raw())) PQclear(x);
            c->exec("ROLLBACK");
            return rep;
        }
        std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> own(q, sqlite3_finalize);
        std::int64_t n = 0;
        std::string buf;
        int cols = sqlite3_column_count(q);
        int rc;
        bool sent = true;
        while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
            for (int i = 0; i < cols; ++i) {
                if (i) buf += '\t';
                if (sqlite3_column_type(q, i) == SQLITE_NULL) buf += "\\N";
                else copy_value(buf, sqlite3_column_text(q, i), sqlite3_column_bytes(q, i));
            }
            buf += '\n';
            ++n;
            if (buf.size() > (1 << 20)) {
                sent = PQputCopyData(c->raw(), buf.data(), static_cast<int>(buf.size())) == 1;
                buf.clear();
                if (!sent) break;
            }
        }
        if (sent && !buf.empty()) sent = PQputCopyData(c->raw(), buf.data(), static_cast<int>(buf.size())) == 1;
        std::string sqlite_error = rc == SQLITE_DONE || rc == SQLITE_ROW ? "" : sqlite3_errmsg(db.get());
        PQputCopyEnd(c->raw(), sqlite_error.empty() && sent ? nullptr : "the source failed");
        pg::result end(PQgetResult(c->raw()));
        while (PGresult* x = PQgetResult(c->raw())) PQclear(x);
        if (!sqlite_error.empty()) {
            rep.error = sqlite_path + ": " + sqlite_error;
            c->exec("ROLLBACK");
            return rep;
        }
        if (!end.ok()) return fail(end);
        if (!(r = c->exec(std::string("INSERT INTO ") + t.name + " AS t(" + t.cols + ") SELECT " + t.cols + " FROM " +
                          tmp + " " + t.merge))
                 .ok())
            return fail(r);
        rep.rows.emplace_back(t.name, n);
        if (std::string_view(t.name) == "decisions") decisions = n;
    }
    sqlite3_exec(db.get(), "COMMIT", nullptr, nullptr, nullptr);
    r = c->exec("INSERT INTO ricochet_imports(source, decisions) VALUES($1, $2) ON CONFLICT(source) DO UPDATE SET"
                " imported_at = now(), decisions = ricochet_imports.decisions + excluded.decisions",
                pg::params().text(rep.source).num(decisions));
    if (!r.ok()) return fail(r);
    if (!(r = c->exec("COMMIT")).ok() || r.command() != "COMMIT") return fail(r);
    return rep;
}

}  // namespace ricochet::state
