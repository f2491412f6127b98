// pg — the little of libpq the PostgreSQL backend uses, with ownership:
// a connection, a result, text parameters. libpq is the C client Debian
// ships with the server; libpqxx would add a C++ layer (and its compile
// time) over the same calls, for the dozen statements the backend runs.
// Only state/pg_storage.cpp and state/pg_listener.cpp include this.
#pragma once
#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/text.hpp"
#include "bounce/recipient_status.hpp"
#include "state/backend.hpp"

namespace ricochet::state::pg {
// libpq's message without its trailing newline and spaces ("" for null).
inline std::string trimmed(const char* m) {
    std::string s = m ? m : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

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
    // A statement that got no answer (the connection lost or timed out).
    static result failed(std::string why) {
        result r;
        r.why_ = std::move(why);
        return r;
    }
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
        if (!why_.empty()) return why_;
        const char* m = r_ ? PQresultErrorMessage(r_.get()) : nullptr;
        std::string s = trimmed((m && *m) ? m : (c ? PQerrorMessage(c) : "no connection"));
        return s.empty() ? "PostgreSQL error" : s;
    }
    // SQLSTATE (e.g. "40P01" deadlock), "" when there is none.
    std::string state() const {
        const char* s = r_ ? PQresultErrorField(r_.get(), PG_DIAG_SQLSTATE) : nullptr;
        return s ? s : "";
    }

private:
    std::unique_ptr<PGresult, result_free> r_;
    std::string why_;
};

// How long a statement may take before the node gives up on its
// connection (server.state_timeout; 0: no limit). The server is told the
// same (statement_timeout, lock_timeout, and twice that for an idle
// transaction), and TCP keepalives and TCP_USER_TIMEOUT notice a peer that
// vanished; the client-side deadline (5 s later, so the server's own
// cancel normally comes first) covers a path that silently drops packets.
inline std::atomic<int> default_timeout_s{30};

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
    // url: a libpq URI or key=value string; what it sets wins over the
    // defaults here (connect_timeout 5 s, or the time-out when shorter
    // (at least 2 s), keepalives, the time-outs).
    // application_name names the program in pg_stat_activity. timeout_s:
    // see default_timeout_s (-1: that).
    static std::unique_ptr<connection> open(const std::string& url, const char* application, std::string& error,
                                            int timeout_s = -1) {
        if (timeout_s < 0) timeout_s = default_timeout_s.load();
        std::string ms = std::to_string(timeout_s * 1000), idle_ms = std::to_string(timeout_s * 2000);
        // Keepalives on both ends give up on a silent peer within about
        // 5/6 of the time-out: idle t/3, then 3 probes t/6 apart.
        std::string ka_idle = std::to_string(timeout_s ? std::max(1, timeout_s / 3) : 10),
                    ka_every = std::to_string(timeout_s ? std::max(1, timeout_s / 6) : 5);
        std::string options = "-c statement_timeout=" + ms + " -c lock_timeout=" + ms +
                              " -c idle_in_transaction_session_timeout=" + idle_ms + " -c tcp_keepalives_idle=" +
                              ka_idle + " -c tcp_keepalives_interval=" + ka_every + " -c tcp_keepalives_count=3";
        const char* keys[] = {"connect_timeout", "keepalives",       "keepalives_idle", "keepalives_interval",
                              "keepalives_count", "tcp_user_timeout", "options",         "application_name",
                              "dbname",           nullptr};
        std::string connect_s = std::to_string(timeout_s ? std::clamp(timeout_s, 2, 5) : 5);
        const char* vals[] = {connect_s.c_str(), "1", ka_idle.c_str(), ka_every.c_str(), "3", ms.c_str(), options.c_str(), application,
                              url.c_str(), nullptr};
        std::unique_ptr<connection> c(new connection);
        c->c_.reset(PQconnectdbParams(keys, vals, 1));
        if (!c->c_ || PQstatus(c->c_.get()) != CONNECTION_OK) {
            error = trimmed(c->c_ ? PQerrorMessage(c->c_.get()) : "out of memory");
            return nullptr;
        }
        // Server notices (an existing table, a skipped index) are not ours to print.
        PQsetNoticeProcessor(c->c_.get(), [](void*, const char*) {}, nullptr);
        // With a deadline, statements go out and come back without blocking.
        if (timeout_s > 0) {
            c->deadline_ = std::chrono::seconds(timeout_s + 5);
            PQsetnonblocking(c->c_.get(), 1);
        }
        return c;
    }
    PGconn* raw() const { return c_.get(); }
    bool alive() const { return c_ && PQstatus(c_.get()) == CONNECTION_OK; }

    result exec(const std::string& sql) {
        if (!c_) return result::failed("no connection");
        return answer(PQsendQuery(c_.get(), sql.c_str()));
    }
    result exec(const std::string& sql, const params& p) {
        if (!c_) return result::failed("no connection");
        std::vector<std::string> fixed;
        auto vals = values(p, fixed);
        return answer(PQsendQueryParams(c_.get(), sql.c_str(), static_cast<int>(vals.size()), nullptr, vals.data(),
                                        nullptr, nullptr, 0));
    }
    // A statement prepared once per connection (by its text's address).
    result prepared(const char* sql, const params& p) {
        if (!c_) return result::failed("no connection");
        auto it = names_.find(sql);
        if (it == names_.end()) {
            std::string name = "s" + std::to_string(names_.size());
            result r = answer(PQsendPrepare(c_.get(), name.c_str(), sql, 0, nullptr));
            if (!r.ok()) return r;
            it = names_.emplace(sql, name).first;
        }
        std::vector<std::string> fixed;
        auto vals = values(p, fixed);
        return answer(PQsendQueryPrepared(c_.get(), it->second.c_str(), static_cast<int>(vals.size()), vals.data(),
                                          nullptr, nullptr, 0));
    }

private:
    connection() = default;

    // The values as C strings, each valid UTF-8 without NUL (a reply or an
    // address may carry any bytes; the server refuses those in text, and
    // would refuse the whole batch): ill-formed bytes become U+FFFD, as in
    // the event log. `fixed` keeps the repaired copies alive.
    static std::vector<const char*> values(const params& p, std::vector<std::string>& fixed) {
        std::vector<const char*> vals;
        vals.reserve(p.v.size());
        for (auto& s : p.v) {
            bool plain = true;
            for (char ch : s) plain = plain && ch != 0 && static_cast<unsigned char>(ch) < 0x80;
            if (plain) {
                vals.push_back(s.c_str());
                continue;
            }
            std::string t = s;
            if (!base::to_valid_utf8(t)) {
                vals.push_back(s.c_str());
                continue;
            }
            fixed.reserve(p.v.size());  // no reallocation: the pointers stay valid
            fixed.push_back(std::move(t));
            vals.push_back(fixed.back().c_str());
        }
        return vals;
    }

    // The answer to what was just sent, as PQexec gives it (the first error,
    // else the last result; a COPY's start at once), waiting no longer than
    // the deadline. A connection that misses it is closed: its state is
    // unknown, and the caller's next statement reconnects.
    result answer(int sent) {
        PGconn* c = c_.get();
        if (!sent) return result::failed(message());
        auto until = std::chrono::steady_clock::now() + deadline_;
        auto wait = [&](short events) {
            if (deadline_.count() == 0) return true;
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
            if (left.count() <= 0) return false;
            pollfd p{PQsocket(c), events, 0};
            int n;
            while ((n = ::poll(&p, 1, static_cast<int>(left.count()))) < 0 && errno == EINTR) {
            }
            return n > 0;
        };
        auto timed_out = [&] {
            c_.reset();
            return result::failed("no answer from PostgreSQL within " + std::to_string(deadline_.count()) +
                                  " s (connection closed)");
        };
        for (int f; (f = PQflush(c)) != 0;) {
            if (f < 0) return result::failed(message());
            if (!wait(POLLIN | POLLOUT)) return timed_out();
            if (!PQconsumeInput(c)) return result::failed(message());
        }
        result out;
        bool failed = false;
        for (;;) {
            while (deadline_.count() && PQisBusy(c)) {
                if (!wait(POLLIN)) return timed_out();
                if (!PQconsumeInput(c)) return result::failed(message());
            }
            PGresult* r = PQgetResult(c);
            if (!r) break;
            auto st = PQresultStatus(r);
            if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT) return result(r);
            bool bad = st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY;
            if (failed) {
                PQclear(r);
                continue;
            }
            out = result(r);
            failed = bad;
        }
        return out;
    }
    std::string message() const {
        std::string s = trimmed(c_ ? PQerrorMessage(c_.get()) : "no connection");
        return s.empty() ? "PostgreSQL error" : s;
    }

    std::unique_ptr<PGconn, conn_free> c_;
    std::chrono::seconds deadline_{0};
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
