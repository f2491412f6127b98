// state_store — see state_store.hpp.
#include "queue/state_store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <mutex>

namespace ricochet::queue {
namespace {
std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return c < 0x80 ? std::tolower(c) : c; });
    return s;
}
std::string domain_of(const std::string& a) {
    auto at = a.rfind('@');
    return at == std::string::npos ? std::string() : a.substr(at + 1);
}

// A prepared statement that finalizes itself.
struct stmt {
    sqlite3_stmt* s = nullptr;
    stmt(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &s, nullptr); }
    ~stmt() { sqlite3_finalize(s); }
    stmt& text(int i, const std::string& v) { sqlite3_bind_text(s, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT); return *this; }
    stmt& num(int i, std::int64_t v) { sqlite3_bind_int64(s, i, v); return *this; }
    bool step() { return sqlite3_step(s) == SQLITE_ROW; }
    int done() { return sqlite3_step(s); }
    // Ready to be bound and stepped again (one prepare for a whole batch).
    void reset() { sqlite3_reset(s); sqlite3_clear_bindings(s); }
    std::string col_text(int i) { auto* p = sqlite3_column_text(s, i); return p ? reinterpret_cast<const char*>(p) : ""; }
    std::int64_t col_num(int i) { return sqlite3_column_int64(s, i); }
};

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
constexpr const char* record_cols =
    "address, status, bounce_count, first_bounce_ms, last_bounce_ms, last_reply, last_kind, last_category";

std::optional<bounce::address_record> load(sqlite3* db, const std::string& address) {
    stmt q(db, (std::string("SELECT ") + record_cols + " FROM recipients WHERE address = ?").c_str());
    q.text(1, address);
    if (!q.step()) return std::nullopt;
    return read_record(q);
}

void save(sqlite3* db, const bounce::address_record& r, std::int64_t now) {
    stmt q(db,
           "INSERT INTO recipients(address, status, bounce_count, first_bounce_ms, last_bounce_ms, last_reply, "
           "last_kind, last_category, updated_ms) VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(address) DO UPDATE SET "
           "status=excluded.status, bounce_count=excluded.bounce_count, first_bounce_ms=excluded.first_bounce_ms, "
           "last_bounce_ms=excluded.last_bounce_ms, last_reply=excluded.last_reply, last_kind=excluded.last_kind, "
           "last_category=excluded.last_category, updated_ms=excluded.updated_ms");
    q.text(1, r.address).text(2, std::string(bounce::to_string(r.status))).num(3, r.bounce_count)
        .num(4, r.first_bounce_ms).num(5, r.last_bounce_ms).text(6, r.last_reply).text(7, r.last_kind)
        .text(8, r.last_category).num(9, now);
    q.done();
}

constexpr const char* insert_decision_sql =
    "INSERT INTO decisions(time_ms, type, queue_id, campaign, recipient, domain, kind, category, rule, reply) "
    "VALUES(?,?,?,?,?,?,?,?,?,?)";

void insert_decision(stmt& q, const decision& d) {
    q.reset();
    std::string rcpt = lower(d.recipient);
    q.num(1, d.time_ms).text(2, d.type).text(3, d.queue_id).text(4, d.campaign).text(5, rcpt).text(6, domain_of(rcpt))
        .text(7, d.kind).text(8, d.category).text(9, d.rule).text(10, d.reply);
    q.done();
}
}  // namespace

class sqlite_state_store final : public state_store {
public:
    ~sqlite_state_store() override {
        if (db_) sqlite3_close(db_);
    }
    std::vector<bounce::address_record> record(const std::vector<decision>& ds, std::string& error) override;
    std::optional<bounce::address_record> get(const std::string& address) const override;
    std::vector<decision> history(const std::string& address, int limit) const override;
    std::vector<bounce::address_record> list(bounce::address_status s) const override;
    bool set_status(const std::string& address, bounce::address_status s, const std::string& why, std::int64_t now_ms,
                    std::string& error) override;
    std::optional<bool> message_bounced(const std::string& queue_id) const override;
    std::optional<std::string> recipient_of(const std::string& queue_id, int index) const override;
    std::string campaign_of(const std::string& queue_id) const override;
    std::optional<std::string> sender_of(const std::string& queue_id) const override;
    bool final_failure_known(const std::string& queue_id, const std::string& recipient) const override;
    std::vector<stats_row> stats(const std::string& group_by, const std::string& campaign, const std::string& domain,
                                 std::int64_t since_ms) const override;

    sqlite3* db_ = nullptr;
    bounce::status_policy policy_;
    mutable std::mutex mu_;
};

std::filesystem::path sqlite_path(const std::string& s) {
    return s.rfind("sqlite:", 0) == 0 ? std::filesystem::path(s.substr(7)) : std::filesystem::path();
}

std::unique_ptr<state_store> state_store::open(const std::filesystem::path& path, bounce::status_policy policy,
                                               std::string& error, bool readonly) {
    auto st = std::make_unique<sqlite_state_store>();
    st->policy_ = std::move(policy);
    std::error_code ec;
    if (!readonly && path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
    int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path.c_str(), &st->db_, flags | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
        error = path.string() + ": " + (st->db_ ? sqlite3_errmsg(st->db_) : "cannot open");
        return nullptr;
    }
    sqlite3_busy_timeout(st->db_, 5000);  // the daemon and ricochetctl may write at once
    if (readonly) return st;
    const char* schema =
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=NORMAL;"  // WAL + NORMAL: a crash may lose the last decisions, never corrupt
        // The decisions' indexes (recipient, campaign, domain) take inserts
        // all over their B-trees: with SQLite's default 2 MiB cache each
        // batch rereads pages through the kernel. Up to 32 MiB, as used.
        "PRAGMA cache_size=-32768;"
        "CREATE TABLE IF NOT EXISTS recipients(address TEXT PRIMARY KEY, status TEXT NOT NULL,"
        " bounce_count INTEGER NOT NULL DEFAULT 0, first_bounce_ms INTEGER NOT NULL DEFAULT 0,"
        " last_bounce_ms INTEGER NOT NULL DEFAULT 0, last_reply TEXT, last_kind TEXT, last_category TEXT,"
        " updated_ms INTEGER);"
        "CREATE INDEX IF NOT EXISTS recipients_status ON recipients(status);"
        "CREATE TABLE IF NOT EXISTS decisions(id INTEGER PRIMARY KEY, time_ms INTEGER NOT NULL, type TEXT NOT NULL,"
        " queue_id TEXT, campaign TEXT, recipient TEXT, domain TEXT, kind TEXT, category TEXT, rule TEXT, reply TEXT);"
        "CREATE INDEX IF NOT EXISTS decisions_recipient ON decisions(recipient);"
        "CREATE INDEX IF NOT EXISTS decisions_campaign ON decisions(campaign, time_ms);"
        "CREATE INDEX IF NOT EXISTS decisions_domain ON decisions(domain, time_ms);"
        "CREATE TABLE IF NOT EXISTS messages(queue_id TEXT PRIMARY KEY, campaign TEXT,"
        " bounced INTEGER NOT NULL DEFAULT 0, sender TEXT);"
        "CREATE TABLE IF NOT EXISTS message_recipients(queue_id TEXT NOT NULL, idx INTEGER NOT NULL,"
        " recipient TEXT NOT NULL, PRIMARY KEY(queue_id, idx));"
        // One final failure per message and recipient counts: an in-session
        // 5xx and a later DSN for the same message, or a DSN sent twice.
        "CREATE TABLE IF NOT EXISTS final_failures(queue_id TEXT NOT NULL, recipient TEXT NOT NULL,"
        " PRIMARY KEY(queue_id, recipient));";
    char* msg = nullptr;
    if (sqlite3_exec(st->db_, schema, nullptr, nullptr, &msg) != SQLITE_OK) {
        error = path.string() + ": " + (msg ? msg : "schema");
        sqlite3_free(msg);
        return nullptr;
    }
    // A database from before messages.sender: add the column (fails
    // harmlessly when it is there).
    sqlite3_exec(st->db_, "ALTER TABLE messages ADD COLUMN sender TEXT", nullptr, nullptr, nullptr);
    return st;
}

std::vector<bounce::address_record> sqlite_state_store::record(const std::vector<decision>& ds, std::string& error) {
    std::vector<bounce::address_record> changed;
    std::lock_guard lk(mu_);
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
        error = sqlite3_errmsg(db_);  // nothing written: the caller logs it
        return {};
    }
    // Prepared once per batch: a batch from the recorder holds every
    // decision of many messages.
    stmt ins_decision(db_, insert_decision_sql);
    stmt ins_message(db_, "INSERT OR IGNORE INTO messages(queue_id, campaign, sender) VALUES(?,?,?)");
    stmt ins_recipient(db_, "INSERT OR IGNORE INTO message_recipients(queue_id, idx, recipient) VALUES(?,?,?)");
    for (auto& d : ds) {
        insert_decision(ins_decision, d);
        if (d.type == "queued") {
            ins_message.reset();
            ins_message.text(1, d.queue_id).text(2, d.campaign).text(3, d.sender);
            ins_message.done();
            if (d.index >= 0) {
                ins_recipient.reset();
                ins_recipient.text(1, d.queue_id).num(2, d.index).text(3, lower(d.recipient));
                ins_recipient.done();
            }
            continue;
        }
        if (d.type != "bounced" && d.type != "expired" && d.type != "complaint") continue;
        std::string addr = lower(d.recipient);
        auto rec = load(db_, addr).value_or(bounce::address_record{addr});
        auto before = rec.status;
        if (d.type == "complaint") {
            rec.status = bounce::address_status::unsubscribed;
        } else {
            auto k = bounce::parse_kind(d.kind);
            auto c = bounce::parse_category(d.category);
            if (!k || !c) continue;
            if (!d.queue_id.empty()) {
                stmt f(db_, "INSERT OR IGNORE INTO final_failures(queue_id, recipient) VALUES(?,?)");
                f.text(1, d.queue_id).text(2, addr);
                f.done();
                if (sqlite3_changes(db_) == 0) continue;  // this message's failure is counted already
            }
            if (!bounce::apply_final_failure(rec, *k, *c, d.reply, d.time_ms, policy_)) continue;
            stmt q(db_, "INSERT INTO messages(queue_id, campaign, bounced) VALUES(?,?,1) "
                        "ON CONFLICT(queue_id) DO UPDATE SET bounced = 1");
            q.text(1, d.queue_id).text(2, d.campaign);
            q.done();
        }
        save(db_, rec, d.time_ms);
        if (rec.status != before) changed.push_back(rec);
    }
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
        error = sqlite3_errmsg(db_);
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return {};
    }
    return changed;
}

std::optional<bounce::address_record> sqlite_state_store::get(const std::string& address) const {
    std::lock_guard lk(mu_);
    return load(db_, lower(address));
}

std::vector<decision> sqlite_state_store::history(const std::string& address, int limit) const {
    std::lock_guard lk(mu_);
    stmt q(db_, "SELECT time_ms, type, queue_id, campaign, recipient, kind, category, rule, reply FROM decisions "
                "WHERE recipient = ? ORDER BY id DESC LIMIT ?");
    q.text(1, lower(address)).num(2, limit);
    std::vector<decision> out;
    while (q.step())
        out.push_back({q.col_num(0), q.col_text(1), q.col_text(2), q.col_text(3), q.col_text(4), q.col_text(5),
                       q.col_text(6), q.col_text(7), q.col_text(8)});
    return out;
}

std::vector<bounce::address_record> sqlite_state_store::list(bounce::address_status s) const {
    std::lock_guard lk(mu_);
    stmt q(db_, (std::string("SELECT ") + record_cols + " FROM recipients WHERE status = ? ORDER BY address").c_str());
    q.text(1, std::string(bounce::to_string(s)));
    std::vector<bounce::address_record> out;
    while (q.step()) out.push_back(read_record(q));
    return out;
}

bool sqlite_state_store::set_status(const std::string& address, bounce::address_status s, const std::string& why,
                             std::int64_t now_ms, std::string& error) {
    std::lock_guard lk(mu_);
    std::string addr = lower(address);
    auto rec = load(db_, addr).value_or(bounce::address_record{addr});
    if (why == "engage" && rec.status == bounce::address_status::unsubscribed) {
        // An open or click does not undo an unsubscribe or a complaint; only an operator's clear does.
        error = addr + " is unsubscribed: only `recipient clear` makes it active again";
        return false;
    }
    rec.status = s;
    if (s == bounce::address_status::active) {  // the operator vouches for it: start counting again
        rec.bounce_count = 0;
        rec.first_bounce_ms = rec.last_bounce_ms = 0;
    }
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
        error = sqlite3_errmsg(db_);
        return false;
    }
    save(db_, rec, now_ms);
    {
        stmt ins(db_, insert_decision_sql);
        insert_decision(ins, {now_ms, "admin", "", "", addr, "", "", why, "status set to " + std::string(bounce::to_string(s))});
    }
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
        error = sqlite3_errmsg(db_);
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return false;
    }
    return true;
}

std::optional<bool> sqlite_state_store::message_bounced(const std::string& queue_id) const {
    std::lock_guard lk(mu_);
    stmt q(db_, "SELECT bounced FROM messages WHERE queue_id = ?");
    q.text(1, queue_id);
    if (!q.step()) return std::nullopt;
    return q.col_num(0) != 0;
}

std::optional<std::string> sqlite_state_store::recipient_of(const std::string& queue_id, int index) const {
    std::lock_guard lk(mu_);
    stmt q(db_, "SELECT recipient FROM message_recipients WHERE queue_id = ? AND idx = ?");
    q.text(1, queue_id).num(2, index);
    if (!q.step()) return std::nullopt;
    return q.col_text(0);
}

std::string sqlite_state_store::campaign_of(const std::string& queue_id) const {
    std::lock_guard lk(mu_);
    stmt q(db_, "SELECT campaign FROM messages WHERE queue_id = ?");
    q.text(1, queue_id);
    return q.step() ? q.col_text(0) : std::string();
}

std::optional<std::string> sqlite_state_store::sender_of(const std::string& queue_id) const {
    std::lock_guard lk(mu_);
    stmt q(db_, "SELECT sender FROM messages WHERE queue_id = ? AND sender IS NOT NULL");
    q.text(1, queue_id);
    if (!q.step()) return std::nullopt;
    return q.col_text(0);
}

bool sqlite_state_store::final_failure_known(const std::string& queue_id, const std::string& recipient) const {
    std::lock_guard lk(mu_);
    stmt q(db_, "SELECT 1 FROM final_failures WHERE queue_id = ? AND recipient = ?");
    q.text(1, queue_id).text(2, lower(recipient));
    return q.step();
}

std::vector<stats_row> sqlite_state_store::stats(const std::string& group_by, const std::string& campaign,
                                          const std::string& domain, std::int64_t since_ms) const {
    std::lock_guard lk(mu_);
    std::string key = group_by == "domain" ? "domain" : "campaign";
    std::string sql =
        "SELECT " + key +
        ", SUM(type='queued'), SUM(type='delivered'),"
        " COUNT(DISTINCT CASE WHEN type='deferred' THEN queue_id || ' ' || recipient END),"
        " SUM(type IN ('bounced','expired') AND kind='hard'), SUM(type IN ('bounced','expired') AND kind='soft'),"
        " SUM(type IN ('bounced','expired') AND kind='block'), SUM(type IN ('bounced','expired') AND kind='technical')"
        " FROM decisions WHERE time_ms >= ? AND (? = '' OR campaign = ?) AND (? = '' OR domain = ?)"
        " AND type <> 'admin' GROUP BY " + key + " ORDER BY " + key;
    stmt q(db_, sql.c_str());
    q.num(1, since_ms).text(2, campaign).text(3, campaign).text(4, lower(domain)).text(5, lower(domain));
    std::vector<stats_row> out;
    while (q.step())
        out.push_back({q.col_text(0), q.col_num(1), q.col_num(2), q.col_num(3), q.col_num(4), q.col_num(5),
                       q.col_num(6), q.col_num(7)});
    return out;
}

}  // namespace ricochet::queue
