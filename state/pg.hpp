// pg — the little of libpq the PostgreSQL backend uses, with ownership:
// a connection, a result, text parameters. libpq is the C client Debian
// ships with the server; libpqxx would add a C++ layer (and its compile
// time) over the same calls, for the dozen statements the backend runs.
// Only state/pg_storage.cpp and state/pg_listener.cpp include this.
#pragma once
#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bounce/recipient_status.hpp"
#include "state/backend.hpp"

namespace ricochet::state::pg {

struct result_free {
    void operator()(PGresult* r) const { PQclear(r); }
};
struct conn_free {
    void operator()(PGconn* c) const { PQfinish(c); }
};

class result {
public:
    result() = default;
    explicit result(PGresult* r) : r_(r) {}
    bool ok() const {
        auto s = r_ ? PQresultStatus(r_.get()) : PGRES_FATAL_ERROR;
        return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_COPY_IN;
    }
    int rows() const { return r_ ? PQntuples(r_.get()) : 0; }
    std::string text(int row, int col) const {
        return std::string(PQgetvalue(r_.get(), row, col), static_cast<std::size_t>(PQgetlength(r_.get(), row, col)));
    }
    std::int64_t num(int row, int col) const { return std::strtoll(PQgetvalue(r_.get(), row, col), nullptr, 10); }
    bool null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
    // The command tag: "COMMIT", "ROLLBACK", "INSERT 0 3"...
    std::string command() const { return r_ ? PQcmdStatus(r_.get()) : ""; }
    // Rows a write touched (INSERT/UPDATE/DELETE).
    std::int64_t affected() const { return r_ ? std::strtoll(PQcmdTuples(r_.get()), nullptr, 10) : 0; }
    // The server's message, or libpq's when the statement never reached it.
    std::string error(PGconn* c) const {
        const char* m = r_ ? PQresultErrorMessage(r_.get()) : nullptr;
        std::string s = (m && *m) ? m : (c ? PQerrorMessage(c) : "no connection");
        while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
        return s.empty() ? "PostgreSQL error" : s;
    }
    // SQLSTATE (e.g. "40P01" deadlock), "" when there is none.
    std::string state() const {
        const char* s = r_ ? PQresultErrorField(r_.get(), PG_DIAG_SQLSTATE) : nullptr;
        return s ? s : "";
    }

private:
    std::unique_ptr<PGresult, result_free> r_;
};

// Text parameters: every value goes as text and the server casts it to the
// column's type (numbers by to_string).
struct params {
    std::vector<std::string> v;
    params& text(std::string s) {
        v.push_back(std::move(s));
        return *this;
    }
    params& num(std::int64_t n) {
        v.push_back(std::to_string(n));
        return *this;
    }
};

class connection {
public:
    // url: a libpq URI or key=value string. connect_timeout 5 s unless the
    // URL says otherwise; application_name names the program in
    // pg_stat_activity.
    static std::unique_ptr<connection> open(const std::string& url, const char* application, std::string& error) {
        const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
        const char* vals[] = {"5", application, url.c_str(), nullptr};
        std::unique_ptr<connection> c(new connection);
        c->c_.reset(PQconnectdbParams(keys, vals, 1));
        if (!c->c_ || PQstatus(c->c_.get()) != CONNECTION_OK) {
            error = c->c_ ? PQerrorMessage(c->c_.get()) : "out of memory";
            while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
            return nullptr;
        }
        // Server notices (an existing table, a skipped index) are not ours to print.
        PQsetNoticeProcessor(c->c_.get(), [](void*, const char*) {}, nullptr);
        return c;
    }
    PGconn* raw() const { return c_.get(); }
    bool alive() const { return c_ && PQstatus(c_.get()) == CONNECTION_OK; }

    result exec(const std::string& sql) { return result(PQexec(c_.get(), sql.c_str())); }
    result exec(const std::string& sql, const params& p) {
        std::vector<const char*> vals;
        for (auto& s : p.v) vals.push_back(s.c_str());
        return result(PQexecParams(c_.get(), sql.c_str(), static_cast<int>(vals.size()), nullptr, vals.data(), nullptr,
                                   nullptr, 0));
    }
    // A statement prepared once per connection (by its text's address).
    result prepared(const char* sql, const params& p) {
        auto it = names_.find(sql);
        if (it == names_.end()) {
            std::string name = "s" + std::to_string(names_.size());
            result r(PQprepare(c_.get(), name.c_str(), sql, 0, nullptr));
            if (!r.ok()) return r;
            it = names_.emplace(sql, name).first;
        }
        std::vector<const char*> vals;
        for (auto& s : p.v) vals.push_back(s.c_str());
        return result(PQexecPrepared(c_.get(), it->second.c_str(), static_cast<int>(vals.size()), vals.data(), nullptr,
                                     nullptr, 0));
    }

private:
    connection() = default;
    std::unique_ptr<PGconn, conn_free> c_;
    std::unordered_map<const char*, std::string> names_;
};

// The recipients table's columns a record is read from, in this order.
#define RICOCHET_PG_RECORD_COLS \
    "address, status, bounce_count, first_bounce_ms, last_bounce_ms, last_reply, last_kind, last_category"
inline bounce::address_record read_record(const result& r, int row) {
    bounce::address_record a;
    a.address = r.text(row, 0);
    a.status = bounce::parse_address_status(r.text(row, 1)).value_or(bounce::address_status::active);
    a.bounce_count = static_cast<int>(r.num(row, 2));
    a.first_bounce_ms = r.num(row, 3);
    a.last_bounce_ms = r.num(row, 4);
    a.last_reply = r.text(row, 5);
    a.last_kind = r.text(row, 6);
    a.last_category = r.text(row, 7);
    return a;
}

// True for a URL this backend takes.
inline bool is_url(std::string_view url) {
    return url.starts_with("postgresql://") || url.starts_with("postgres://");
}

}  // namespace ricochet::state::pg
