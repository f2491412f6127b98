// api — see api.hpp.
#include "http/api.hpp"

#include "http/dashboard.hpp"
#include "http/suppression_io.hpp"
#include "queue/logger.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <nlohmann/json.hpp>

#include "bounce/recipient_status.hpp"
#include "bounce/suppression_list.hpp"
#include "config/breaker_config.hpp"
#include "config/config.hpp"
#include "events/log_reader.hpp"
#include "events/metrics.hpp"
#include "queue/clock.hpp"
#include "queue/spool.hpp"
#include "state/recipient_state.hpp"
#include "submission/inject.hpp"
#include "views/views.hpp"

namespace ricochet::http {
using nlohmann::json;

namespace {

response json_reply(int status, const json& j) {
    response r;
    r.status = status;
    r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
    return r;
}

response method_not_allowed(std::string_view allow) {
    auto r = error_reply(405, "method not allowed");
    r.headers.emplace_back("Allow", std::string(allow));
    return r;
}

// "/v1/queue/ID" with prefix "/v1/queue/" -> "ID" (nothing when the path is the prefix or has more segments).
std::optional<std::string> tail(const std::string& path, std::string_view prefix) {
    if (path.size() <= prefix.size() || path.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
    return path.substr(prefix.size());
}

bool ends_with(std::string_view s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::optional<json> parse_body(const request& req, response& err) {
    if (req.body.empty()) {
        err = error_reply(400, "a JSON body is required");
        return std::nullopt;
    }
    auto j = json::parse(req.body, nullptr, false);
    if (j.is_discarded()) {
        err = error_reply(400, "the body is not valid JSON");
        return std::nullopt;
    }
    return j;
}

// A query parameter as a number in [lo, hi]; the default when absent.
bool number_param(const request& req, const char* key, std::uint64_t& out, std::uint64_t lo, std::uint64_t hi,
                  response& err) {
    auto it = req.query.find(key);
    if (it == req.query.end() || it->second.empty()) return true;
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
    if (ec != std::errc() || p != it->second.data() + it->second.size() || v < lo || v > hi) {
        err = error_reply(400, std::string(key) + " must be a number from " + std::to_string(lo) + " to " + std::to_string(hi));
        return false;
    }
    out = v;
    return true;
}

std::string param(const request& req, const char* key) {
    auto it = req.query.find(key);
    return it == req.query.end() ? std::string() : it->second;
}

// A control reply ({"ok", "error", ...}) as a response.
response from_control(const json& r, int refused_status = 400) {
    if (r.value("ok", false)) {
        json out = r;
        out.erase("ok");
        return json_reply(200, out);
    }
    return error_reply(refused_status, r.value("error", std::string("refused")));
}

}  // namespace

std::uint64_t api::body_limit(const std::string& method, const std::string& path) const {
    if (method == "PUT" && path == "/v1/suppressions") return ctx_.cfg.http.max_import_body;
    if (dashboard_path(path)) return 0;  // no body: these paths are public
    return ctx_.cfg.http.max_body;
}

bool api::is_public(const std::string& method, const std::string& path) const {
    return ctx_.cfg.http.dashboard && (method == "GET" || method == "HEAD") && dashboard_path(path);
}

void api::handle(const request& req, std::function<void(response)> reply) {
    bool deferred = false;
    response r;
    try {
        r = route(req, reply, deferred);
    } catch (const std::exception& e) {  // a bug must not take the listener down
        r = error_reply(500, std::string("internal error: ") + e.what());
    }
    if (!deferred) reply(std::move(r));
}

response api::route(const request& req, std::function<void(response)>& reply, bool& deferred) {
    const auto& p = req.path;
    const auto& m = req.method;
    response err;

    if (p == "/healthz") {
        if (m != "GET" && m != "HEAD") return method_not_allowed("GET, HEAD");
        json j;
        bool ok = true;
        // The spool: can a file be created (and synced) in its incoming/ now?
        auto probe = ctx_.spool.dir() / "incoming" / (".healthz." + std::to_string(::getpid()));
        int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || ::write(fd, "x", 1) != 1 || ::fdatasync(fd) != 0) {
            j["spool"] = std::string("not writable: ") + std::strerror(errno);
            ok = false;
        } else {
            j["spool"] = "ok";
        }
        if (fd >= 0) ::close(fd);
        ::unlink(probe.c_str());
        auto st = ctx_.state_health ? ctx_.state_health() : std::string();
        j["state"] = st.empty() ? "ok" : st;
        ok = ok && st.empty();
        j["status"] = ok ? "ok" : "failing";
        return json_reply(ok ? 200 : 503, j);
    }
    if (p == "/metrics") {
        if (m != "GET") return method_not_allowed("GET");
        response r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = ctx_.metrics.render();
        return r;
    }

    if (p == "/v1/messages") {
        if (m != "POST") return method_not_allowed("POST");
        if (req.body.empty()) return error_reply(400, "a JSON body is required");
        auto body = submission::body_json::parse(req.body, nullptr, false);
        if (body.is_discarded()) return error_reply(400, "the body is not valid JSON");
        submission::inject_limits lim{ctx_.cfg.server.hostname, ctx_.cfg.submission.campaign_header,
                                      ctx_.cfg.submission.max_message_size, ctx_.cfg.submission.max_recipients};
        std::string error;
        auto inj = submission::prepare_injection(body, lim, ctx_.suppression, req.client_ip, req.user,
                                                 [this] { return ctx_.spool.new_id(); }, now_ms(), error);
        if (!inj) return error_reply(error.rfind("message size", 0) == 0 ? 413 : 400, error);
        if (inj->env.recipients.empty()) return json_reply(200, submission::injection_reply(*inj));  // nothing queued
        if (ctx_.paused_scope)
            if (auto why = ctx_.paused_scope(inj->env.campaign, inj->env.sender)) return error_reply(409, *why);
        auto answer = submission::injection_reply(*inj);
        deferred = true;
        ctx_.spool.submit(std::move(inj->env), std::move(inj->content),
                          [reply, answer = std::move(answer)](std::error_code ec) {
                              if (ec) reply(error_reply(503, "insufficient system storage, try again later: " + ec.message()));
                              else reply(json_reply(202, answer));
                          });
        return {};
    }

    if (p == "/v1/queue/summary") {
        if (m != "GET") return method_not_allowed("GET");
        auto out = views::queue_summary(&ctx_.spool, ctx_.paused ? ctx_.paused() : std::map<std::string, std::int64_t>{});
        // Traffic shaping's state now: each destination's rate per source IP, rests, warm-up.
        if (auto sh = ctx_.control({{"command", "shaping.show"}}); sh.value("ok", false)) out["shaping"] = sh["destinations"];
        return json_reply(200, out);
    }
    if (p == "/v1/queue") {
        if (m != "GET") return method_not_allowed("GET");
        views::queue_filter f{param(req, "domain"), param(req, "campaign"), std::nullopt,
                              views::breaker_hold_reason(ctx_.state)};
        if (auto s = param(req, "state"); !s.empty()) {
            f.state = queue::parse_queue_state(s);
            if (!f.state) return error_reply(400, "state must be active, deferred or hold");
        }
        return json_reply(200, views::queue_list(ctx_.spool, f));
    }
    if (auto rest = tail(p, "/v1/queue/")) {
        static const std::map<std::string, std::string> ops{
            {"flush", "queue.flush"}, {"hold", "queue.hold"}, {"release", "queue.release"}, {"delete", "queue.delete"}};
        if (auto op = ops.find(*rest); op != ops.end() || *rest == "bounce") {
            if (m != "POST") return method_not_allowed("POST");
            if (*rest == "bounce") return error_reply(501, "queue bounce is not implemented yet");
            auto body = parse_body(req, err);
            if (!body) return err;
            if (!body->is_object()) return error_reply(400, "the body must be {\"id\"}, {\"domain\"}, {\"campaign\"} or {\"all\": true}");
            json cmd{{"command", op->second}};
            int given = 0;
            for (auto* k : {"id", "domain", "campaign"})
                if (auto it = body->find(k); it != body->end()) {
                    if (!it->is_string() || it->get<std::string>().empty())
                        return error_reply(400, std::string("\"") + k + "\" must be a non-empty string");
                    cmd[k] = *it;
                    ++given;
                }
            if (auto it = body->find("all"); it != body->end()) {
                if (!it->is_boolean() || !it->get<bool>()) return error_reply(400, "\"all\" must be true");
                cmd["all"] = true;
                ++given;
            }
            if (given != 1) return error_reply(400, "give exactly one of \"id\", \"domain\", \"campaign\", \"all\": true");
            auto r = ctx_.control(cmd);
            if (r.value("ok", false) && cmd.contains("id") && r.value("matched", 0) == 0)
                return error_reply(404, cmd["id"].get<std::string>() + ": not in the queue");
            return from_control(r);
        }
        if (m != "GET") return method_not_allowed("GET");
        std::string error;
        auto shown = views::queue_show(ctx_.spool, *rest, error, views::breaker_hold_reason(ctx_.state));
        if (!shown) return error_reply(error.find("cannot read") != std::string::npos ? 500 : 404, error);
        return json_reply(200, *shown);
    }

    if (p == "/v1/recipients") {
        if (m != "GET") return method_not_allowed("GET");
        auto s = bounce::parse_address_status(param(req, "status"));
        if (!s) return error_reply(400, "status must be active, bounced, held or unsubscribed");
        std::uint64_t limit = 100;
        if (!number_param(req, "limit", limit, 1, 10000, err)) return err;
        return json_reply(200, views::recipients(ctx_.state, *s, bounce::lower_address(param(req, "after")), limit));
    }
    if (auto rest = tail(p, "/v1/recipients/")) {
        for (auto [suffix, status, why] : {std::tuple{"/clear", "active", "clear"}, std::tuple{"/engage", "active", "engage"},
                                           std::tuple{"/unsubscribe", "unsubscribed", "unsubscribe"}}) {
            if (!ends_with(*rest, suffix)) continue;
            if (m != "POST") return method_not_allowed("POST");
            auto addr = rest->substr(0, rest->size() - std::string_view(suffix).size());
            if (addr.find('@') == std::string::npos) return error_reply(400, "not an address: " + addr);
            auto r = ctx_.control({{"command", "recipient.set"}, {"address", addr}, {"status", status}, {"why", why}});
            if (!r.value("ok", false)) {
                // engage on an unsubscribed address is a conflict; anything else is the store failing.
                auto why = r.value("error", std::string("refused"));
                return error_reply(why.find("is unsubscribed") != std::string::npos ? 409 : 503, why);
            }
            auto now = ctx_.state.get(addr);
            return json_reply(200, now ? views::record_json(*now) : json{{"address", bounce::lower_address(addr)}, {"status", status}});
        }
        if (m != "GET") return method_not_allowed("GET");
        if (rest->find('/') != std::string::npos || rest->find('@') == std::string::npos)
            return error_reply(404, "no such resource: " + p);
        std::uint64_t limit = 50;
        if (!number_param(req, "history", limit, 0, 1000, err)) return err;
        auto shown = views::recipient(ctx_.state, *rest, static_cast<int>(limit));
        if (!shown) return error_reply(404, *rest + ": no record (never mailed, or never bounced)");
        return json_reply(200, *shown);
    }

    if (p == "/v1/suppressions") {
        if (m == "GET") {
            bool csv = param(req, "format") == "csv";
            if (!csv && !param(req, "format").empty() && param(req, "format") != "jsonl")
                return error_reply(400, "format must be jsonl or csv");
            auto recipients = ctx_.state.list(bounce::address_status::held);
            auto unsub = ctx_.state.list(bounce::address_status::unsubscribed);
            recipients.insert(recipients.end(), unsub.begin(), unsub.end());
            response r;
            r.content_type = csv ? "text/csv; charset=utf-8" : "application/x-ndjson";
            r.body = export_suppressions(ctx_.state.suppressions(), recipients, csv);
            return r;
        }
        if (m != "PUT") return method_not_allowed("GET, PUT");
        auto parsed = parse_suppressions(req.body, req.content_type, now_ms());
        std::string error;
        auto written = ctx_.state.add_suppressions(parsed.entries, error);
        // Durable before the answer, like every change an outside party is
        // told is done (storage::sync).
        if (std::string serr; written && error.empty() && !ctx_.state.sync(serr))
            error = "imported, but not synced: " + serr;
        for (std::size_t i = 0; i < written; ++i) ctx_.suppression.add_entry(parsed.entries[i].entry);
        static auto log = named_logger("http");
        log->info("suppressions: {} entr(ies) imported by {} ({} invalid line(s)){}", written,
                  req.user.empty() ? "[" + req.client_ip + "]" : req.user, parsed.invalid, error.empty() ? "" : ": " + error);
        json out{{"imported", written}, {"lines", parsed.lines}, {"invalid", parsed.invalid}, {"errors", parsed.errors}};
        if (!error.empty()) {
            out["error"] = "the state store refused the rest: " + error;
            return json_reply(503, out);
        }
        return json_reply(200, out);
    }
    if (auto rest = tail(p, "/v1/suppressions/")) {
        if (m != "DELETE") return method_not_allowed("DELETE");
        auto entry = submission::suppression_entry_of(*rest);
        if (!entry) return error_reply(400, "not an address or @domain: " + *rest);
        std::string error;
        auto removed = ctx_.state.remove_suppression(*entry, error);
        if (!removed) return error_reply(503, "the state store refused: " + error);
        ctx_.suppression.remove_entry(*entry);
        bool cleared = false;
        if (entry->front() != '@') {
            // A held or unsubscribed recipient leaves the list too: the operator's clear.
            if (auto rec = ctx_.state.get(*entry); rec && bounce::suppressed(rec->status)) {
                auto r = ctx_.control({{"command", "recipient.set"}, {"address", *entry}, {"status", "active"}, {"why", "clear"}});
                if (!r.value("ok", false)) return error_reply(503, r.value("error", std::string("refused")));
                cleared = true;
            }
        }
        // Synced before it is said to be done, or gone (the clear above syncs
        // its own): a 404 after a 503 must not hide a removal still unsynced.
        if (std::string serr; !cleared && !ctx_.state.sync(serr))
            return error_reply(503, "the state store could not sync the removal: " + serr);
        if (!*removed && !cleared) return error_reply(404, *entry + ": not on the suppression list");
        return json_reply(200, {{"entry", *entry}, {"removed", *removed}, {"recipient_cleared", cleared}});
    }

    if (p == "/v1/stats") {
        if (m != "GET") return method_not_allowed("GET");
        std::int64_t since_ms = 0;
        if (auto since = param(req, "since"); !since.empty()) {
            seconds ago{0};
            if (!parse_duration(since, ago)) return error_reply(400, "since must be a duration such as 24h or 7d");
            since_ms = now_ms() - ago.count() * 1000;
        }
        return json_reply(200, views::stats(ctx_.state, param(req, "campaign"), param(req, "domain"), since_ms));
    }

    if (p == "/v1/stats/series") {
        if (m != "GET") return method_not_allowed("GET");
        views::series_query q;
        q.bucket = param(req, "bucket").empty() ? "hour" : param(req, "bucket");
        q.by = param(req, "by");
        q.campaign = param(req, "campaign");
        q.domain = param(req, "domain");
        std::uint64_t top = 10;
        if (!number_param(req, "top", top, 1, 100, err)) return err;
        q.top = top;
        seconds ago{q.bucket == "day" ? 30 * 86400 : 48 * 3600};
        if (auto since = param(req, "since"); !since.empty() && !parse_duration(since, ago))
            return error_reply(400, "since must be a duration such as 24h or 7d");
        auto now = now_ms();
        q.since_ms = now - ago.count() * 1000;
        std::string error;
        auto out = views::series(ctx_.state, q, now, error);
        if (!out) return error_reply(400, error);
        return json_reply(200, *out);
    }
    if (p == "/v1/stats/replies") {
        if (m != "GET") return method_not_allowed("GET");
        std::uint64_t limit = 20;
        if (!number_param(req, "limit", limit, 1, 1000, err)) return err;
        seconds ago{24 * 3600};
        if (auto since = param(req, "since"); !since.empty() && !parse_duration(since, ago))
            return error_reply(400, "since must be a duration such as 24h or 7d");
        return json_reply(200, views::replies(ctx_.state, param(req, "domain"), now_ms() - ago.count() * 1000, limit));
    }
    if (p == "/v1/classify") {
        if (m != "POST") return method_not_allowed("POST");
        if (!ctx_.classifier) return error_reply(404, "no such resource: " + p);
        auto body = parse_body(req, err);
        if (!body) return err;
        if (!body->is_object() || !body->contains("reply") || !(*body)["reply"].is_string())
            return error_reply(400, "the body must be {\"reply\": TEXT[, \"stage\": S][, \"domain\": D]}");
        for (auto* k : {"stage", "domain"})
            if (body->contains(k) && !(*body)[k].is_string()) return error_reply(400, std::string("\"") + k + "\" must be a string");
        auto text = (*body)["reply"].get<std::string>();
        if (text.empty() || text.size() > 65536) return error_reply(400, "\"reply\" must hold 1 to 65536 octets");
        std::string error;
        auto out = views::classify(*ctx_.classifier, text, body->value("domain", std::string()),
                                   body->value("stage", std::string("rcpt")), error);
        if (!out) return error_reply(400, error);
        return json_reply(200, *out);
    }

    if (dashboard_path(p)) {
        if (!ctx_.cfg.http.dashboard) return error_reply(404, "no such resource: " + p + " (http.dashboard = false)");
        if (m != "GET") return method_not_allowed("GET, HEAD");
        if (auto f = dashboard_file(p)) return *f;
        return error_reply(404, "no such resource: " + p);
    }

    if (p == "/v1/campaigns") {
        if (m != "GET") return method_not_allowed("GET");
        return json_reply(200, views::campaigns(ctx_.state, to_breaker_config(ctx_.cfg), now_ms()));
    }
    if (auto rest = tail(p, "/v1/campaigns/")) {
        for (auto [suffix, command] : {std::pair{"/pause", "campaign.pause"}, std::pair{"/resume", "campaign.resume"}}) {
            if (!ends_with(*rest, suffix)) continue;
            if (m != "POST") return method_not_allowed("POST");
            auto id = rest->substr(0, rest->size() - std::string_view(suffix).size());
            auto r = ctx_.control({{"command", command}, {"id", id}});
            if (!r.value("ok", false))
                return error_reply(r.value("unavailable", false) ? 503 : 409, r.value("error", std::string("refused")));
            auto shown = views::campaign(ctx_.state, to_breaker_config(ctx_.cfg), id, now_ms());
            return json_reply(200, shown ? *shown : json{{"id", id}, {"state", r.value("state", std::string())}});
        }
        if (m != "GET") return method_not_allowed("GET");
        auto shown = views::campaign(ctx_.state, to_breaker_config(ctx_.cfg), *rest, now_ms());
        if (!shown) return error_reply(404, *rest + ": nothing in the breaker's window and no state");
        return json_reply(200, *shown);
    }

    if (p == "/v1/events") {
        if (m != "GET") return method_not_allowed("GET");
        std::uint64_t after = 0, limit = 100;
        if (!number_param(req, "after", after, 0, UINT64_MAX / 2, err)) return err;
        if (!number_param(req, "limit", limit, 1, 10000, err)) return err;
        events::log_query q;
        q.after = after;
        q.limit = limit;
        std::vector<std::string> wanted_types;
        if (auto types = param(req, "types"); !types.empty()) {
            std::vector<std::string> wanted;
            for (std::size_t pos = 0; pos <= types.size();) {
                auto comma = types.find(',', pos);
                auto t = types.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
                if (!events::parse_event_type(t)) return error_reply(400, "not an event type: " + t);
                wanted.push_back(t);
                if (comma == std::string::npos) break;
                pos = comma + 1;
            }
            wanted_types = wanted;
            q.keep = [wanted](std::string_view t) {
                for (auto& w : wanted)
                    if (w == t) return true;
                return false;
            };
        }
        events::log_batch batch;
        if (ctx_.shared_events) {  // every node's, from the shared database
            auto pg = ctx_.shared_events(after, limit, wanted_types);
            if (!pg.error.empty()) return error_reply(503, "cannot read the shared event log: " + pg.error);
            batch.lines = std::move(pg.lines);
            batch.last_seq = pg.last;
            batch.more = pg.more;
        } else {
            std::error_code ec;
            batch = events::read_log_rotated(ctx_.cfg.server.events_log, q, ec);
            if (ec) return error_reply(500, "cannot read the event log: " + ec.message());
        }
        response r;
        r.body = "{\"events\":[";
        for (std::size_t i = 0; i < batch.lines.size(); ++i) {
            if (i) r.body += ',';
            r.body += batch.lines[i];
        }
        r.body += "],\"last_seq\":" + std::to_string(std::max(batch.last_seq, after)) +
                  ",\"more\":" + (batch.more ? "true" : "false") + "}";
        return r;
    }

    return error_reply(404, "no such resource: " + p);
}

}  // namespace ricochet::http
