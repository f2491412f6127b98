// ricochetctl — the operator's command line (PRODUCT.md "ricochetctl
// commands"). Reading commands read the spool directly, so they work with the
// daemon stopped; changing commands go through the daemon's control socket,
// or, when no daemon runs (the spool lock is free), act on the spool directly.
// Exit codes: 0 ok, 1 not found / refused, 2 usage.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

#include "bounce/classifier.hpp"
#include "bounce/dsn_json.hpp"
#include "bounce/dsn_parser.hpp"
#include "bounce/suppression_list.hpp"
#include "config/config.hpp"
#include "queue/clock.hpp"
#include "events/bus.hpp"
#include "events/jsonl_log.hpp"
#include "events/make.hpp"
#include "events/sequencer.hpp"
#include "queue/queue_admin.hpp"
#include "queue/spool.hpp"
#include "state/recipient_state.hpp"

using namespace ricochet;
using nlohmann::json;

namespace {

struct exit_code {
    int code;
};

[[noreturn]] void die(int code, const std::string& msg) {
    std::cerr << "ricochetctl: " << msg << "\n";
    throw exit_code{code};
}

std::string format_time(std::int64_t ms) {
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::unique_ptr<queue::spool> open_spool(const config& cfg, bool must_exist) {
    std::error_code ec;
    auto s = queue::spool::open(cfg.server.spool_dir, false, ec);
    if (!s && must_exist) die(1, "cannot open spool " + cfg.server.spool_dir.string() + ": " + ec.message());
    return s;
}

// Events written by ricochetctl itself, when it acts with the daemon
// stopped: numbered from the same sequence file, into the same log.
struct offline_events {
    events::sequencer seq;
    events::jsonl_log file;
    events::bus bus{seq};
    explicit offline_events(const config& cfg) {
        if (auto ec = seq.open(cfg.server.spool_dir / "events.seq"))
            std::cerr << "ricochetctl: " << (cfg.server.spool_dir / "events.seq").string() << ": " << ec.message() << "\n";
        if (auto ec = file.open(cfg.server.events_log))
            std::cerr << "ricochetctl: " << cfg.server.events_log.string() << ": " << ec.message() << "\n";
        bus.add(file);
    }
};

// Sends one request over the control socket. nullopt when no daemon listens.
std::optional<json> control_request(const std::filesystem::path& path, const json& req) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::nullopt;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::string p = path.string();
    if (p.size() >= sizeof sa.sun_path) die(1, "control socket path too long: " + p);
    std::memcpy(sa.sun_path, p.c_str(), p.size() + 1);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        ::close(fd);
        return std::nullopt;
    }
    std::string out = req.dump() + "\n";
    for (std::size_t off = 0; off < out.size();) {
        ssize_t n = ::write(fd, out.data() + off, out.size() - off);
        if (n <= 0) { ::close(fd); die(1, "control socket: write failed"); }
        off += static_cast<std::size_t>(n);
    }
    std::string in;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        in.append(buf, static_cast<std::size_t>(n));
        if (in.find('\n') != std::string::npos) break;
    }
    ::close(fd);
    if (in.empty()) die(1, "control socket: no answer from the daemon");
    return json::parse(in);
}

json message_json(const queue::envelope& env, queue::queue_state st) {
    return {{"id", env.id}, {"state", std::string(queue::to_string(st))}, {"arrival", format_time(env.arrival_ms)},
            {"size", env.content_size}, {"sender", env.sender}, {"campaign", env.campaign},
            {"recipients", env.recipients}};
}

struct list_filter {
    std::string domain, state, campaign;
};

int cmd_list(const config& cfg, const list_filter& f, bool as_json) {
    std::optional<queue::queue_state> st;
    if (!f.state.empty()) {
        st = queue::parse_queue_state(f.state);
        if (!st) die(2, "--state must be active, deferred or hold");
    }
    json arr = json::array();
    if (auto sp = open_spool(cfg, false)) {
        auto entries = sp->list(st);
        std::sort(entries.begin(), entries.end(), [](auto& a, auto& b) { return a.id < b.id; });
        queue::selector sel;
        sel.domain = f.domain;
        sel.campaign = f.campaign;
        sel.all = f.domain.empty() && f.campaign.empty();
        for (auto& e : entries) {
            if (!queue::matches(*sp, e, sel)) continue;
            if (auto env = sp->find_envelope(e.id, e.state)) {
                if (st && e.state != *st) continue;  // moved out of the state asked for
                arr.push_back(message_json(*env, e.state));
            }
        }
    }
    if (as_json) {
        std::cout << arr.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    if (arr.empty()) {
        std::cout << "Mail queue is empty\n";
        return 0;
    }
    std::printf("%-13s %-8s %9s  %-20s  %s\n", "ID", "STATE", "SIZE", "ARRIVAL", "SENDER / RECIPIENTS");
    for (auto& m : arr) {
        std::printf("%-13s %-8s %9llu  %-20s  <%s>%s\n", m["id"].get<std::string>().c_str(),
                    m["state"].get<std::string>().c_str(), static_cast<unsigned long long>(m["size"].get<std::uint64_t>()),
                    m["arrival"].get<std::string>().c_str(), m["sender"].get<std::string>().c_str(),
                    m["campaign"].get<std::string>().empty() ? "" : ("  campaign=" + m["campaign"].get<std::string>()).c_str());
        for (auto& r : m["recipients"]) std::printf("%55s<%s>\n", "", r.get<std::string>().c_str());
    }
    std::printf("-- %zu message(s)\n", arr.size());
    return 0;
}

int cmd_summary(const config& cfg, bool as_json) {
    struct counts {
        std::size_t active = 0, deferred = 0, hold = 0;
        std::size_t total() const { return active + deferred + hold; }
        void add(queue::queue_state s) {
            (s == queue::queue_state::active ? active : s == queue::queue_state::deferred ? deferred : hold)++;
        }
    };
    std::map<std::string, counts> by_domain;
    counts all;
    if (auto sp = open_spool(cfg, false)) {
        for (auto& e : sp->list()) {
            auto env = sp->find_envelope(e.id, e.state);
            if (!env) continue;
            all.add(e.state);
            std::vector<std::string> domains;
            for (auto& r : env->recipients) domains.push_back(queue::recipient_domain(r));
            std::sort(domains.begin(), domains.end());
            domains.erase(std::unique(domains.begin(), domains.end()), domains.end());
            for (auto& d : domains) by_domain[d].add(e.state);
        }
    }
    // Paused destinations are known to the running daemon only.
    std::map<std::string, std::int64_t> paused;
    if (auto r = control_request(cfg.server.control_socket, json{{"command", "pauses"}}); r && r->value("ok", false))
        for (auto& p : (*r)["paused"]) paused[p["domain"].get<std::string>()] = p["until_ms"].get<std::int64_t>();
    for (auto& [d, until] : paused) by_domain[d];  // a paused domain shows even with nothing queued
    std::vector<std::pair<std::string, counts>> rows(by_domain.begin(), by_domain.end());
    std::stable_sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.second.total() > b.second.total(); });
    if (as_json) {
        json d = json::array();
        for (auto& [name, c] : rows) {
            json row{{"domain", name}, {"total", c.total()}, {"active", c.active}, {"deferred", c.deferred}, {"hold", c.hold}};
            if (paused.count(name)) row["paused_until"] = format_time(paused[name]);
            d.push_back(row);
        }
        json out{{"domains", d},
                 {"total", {{"messages", all.total()}, {"active", all.active}, {"deferred", all.deferred}, {"hold", all.hold}}}};
        std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    std::printf("%-40s %8s %8s %8s %8s  %s\n", "DOMAIN", "TOTAL", "ACTIVE", "DEFERRED", "HOLD", "PAUSED UNTIL");
    for (auto& [name, c] : rows)
        std::printf("%-40s %8zu %8zu %8zu %8zu  %s\n", name.c_str(), c.total(), c.active, c.deferred, c.hold,
                    paused.count(name) ? format_time(paused[name]).c_str() : "");
    std::printf("%-40s %8zu %8zu %8zu %8zu\n", "TOTAL (messages)", all.total(), all.active, all.deferred, all.hold);
    return 0;
}

int cmd_show(const config& cfg, const std::string& id, bool as_json) {
    if (!queue::is_queue_id(id)) die(1, "not a queue id: " + id);
    auto sp = open_spool(cfg, false);
    std::optional<queue::queue_state> st;
    if (sp) st = sp->locate(id);
    if (!st) die(1, id + ": not in the queue");
    queue::envelope env;
    std::string content;
    if (auto ec = sp->read_message(id, *st, env, content)) die(1, id + ": cannot read: " + ec.message());
    auto header_end = content.find("\r\n\r\n");
    std::string headers = content.substr(0, header_end == std::string::npos ? content.size() : header_end + 2);
    json j = message_json(env, *st);
    j["client"] = env.client;
    j["helo"] = env.helo;
    j["auth_user"] = env.auth_user;
    j["smtputf8"] = env.smtputf8;
    j["8bitmime"] = env.eightbit;
    j["headers"] = headers;
    std::error_code sec;
    auto status = sp->read_status(id, env.recipients.size(), sec);
    if (sec) die(1, id + ": cannot read recipient status: " + sec.message());
    json rc = json::array();
    for (std::size_t i = 0; i < env.recipients.size(); ++i) {
        auto& st = status[i];
        json r{{"recipient", env.recipients[i]}, {"status", st.status}, {"attempts", st.attempts}};
        if (st.attempts > 0 || st.final()) {
            r["last_attempt"] = format_time(st.last_attempt_ms);
            r["code"] = st.code;
            r["enhanced"] = st.enhanced;
            r["stage"] = st.stage;
            r["mx"] = st.mx;
            r["last_reply"] = st.reply;
        } else {
            r["last_reply"] = nullptr;
        }
        rc.push_back(r);
    }
    j["recipients"] = rc;
    if (as_json) {
        std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    std::printf("id:        %s\nstate:     %s\narrival:   %s\nsize:      %llu\nsender:    <%s>\ncampaign:  %s\n"
                "client:    [%s] helo=%s%s%s\n",
                env.id.c_str(), std::string(queue::to_string(*st)).c_str(), format_time(env.arrival_ms).c_str(),
                static_cast<unsigned long long>(env.content_size), env.sender.c_str(), env.campaign.c_str(),
                env.client.c_str(), env.helo.c_str(), env.auth_user.empty() ? "" : " auth=", env.auth_user.c_str());
    std::printf("recipients:\n");
    for (std::size_t i = 0; i < env.recipients.size(); ++i) {
        auto& st = status[i];
        std::printf("  <%s>  %s, %d attempt(s)", env.recipients[i].c_str(), st.status.c_str(), st.attempts);
        if (st.attempts > 0)
            std::printf(", last %s at %s via %s: %s", format_time(st.last_attempt_ms).c_str(), st.stage.c_str(),
                        st.mx.empty() ? "-" : st.mx.c_str(), st.reply.c_str());
        std::printf("\n");
    }
    std::printf("headers:\n");
    std::string h = headers;
    for (std::size_t pos = 0; pos < h.size();) {
        auto eol = h.find("\r\n", pos);
        std::printf("  %s\n", h.substr(pos, eol - pos).c_str());
        if (eol == std::string::npos) break;
        pos = eol + 2;
    }
    return 0;
}

int cmd_admin(const config& cfg, queue::admin_op op, const queue::selector& sel, bool as_json) {
    int given = !sel.id.empty() + !sel.domain.empty() + !sel.campaign.empty() + sel.all;
    if (given != 1) die(2, "give exactly one of: a queue ID, --domain D, --campaign C, --all");
    if (!sel.id.empty() && !queue::is_queue_id(sel.id)) die(1, "not a queue id: " + sel.id);
    json req{{"command", "queue." + std::string(queue::to_string(op))}, {"id", sel.id}, {"domain", sel.domain},
             {"campaign", sel.campaign}, {"all", sel.all}};
    json reply;
    if (auto r = control_request(cfg.server.control_socket, req)) {
        reply = *r;
    } else {
        // No daemon answers: act on the spool ourselves, under its lock.
        auto sp = open_spool(cfg, true);
        std::error_code ec;
        if (!sp->try_lock(ec))
            die(1, "the spool is locked by a running ricochetd, but its control socket " +
                       cfg.server.control_socket.string() + " does not answer");
        offline_events events(cfg);
        auto res = queue::apply_admin(*sp, &events.bus, op, sel);
        reply = {{"ok", res.error.empty()}, {"matched", res.matched}, {"changed", res.ids}};
        if (!res.error.empty()) reply["error"] = res.error;
    }
    if (as_json) std::cout << reply.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    else
        std::printf("%s: %zu message(s) matched, %zu changed\n", std::string(queue::to_string(op)).c_str(),
                    reply.value("matched", std::size_t{0}), reply["changed"].size());
    if (!reply.value("ok", false)) die(1, reply.value("error", std::string("refused")));
    if (reply.value("matched", 0) == 0) return 1;  // nothing found
    return 0;
}

std::unique_ptr<state::recipient_state> open_state(const config& cfg, bool readonly) {
    const auto& url = cfg.server.state;
    if (readonly && url.rfind("sqlite:", 0) == 0 && !std::filesystem::exists(url.substr(7)))
        return nullptr;  // nothing recorded yet
    std::string error;
    bounce::status_policy policy{cfg.bounce.trusted_domains, static_cast<int>(cfg.bounce.held_after_bounces),
                                 std::int64_t(cfg.bounce.held_after_days) * 86400 * 1000};
    auto st = state::open_state(url, policy, readonly, error);
    if (!st) die(1, "server.state: " + error);
    return st;
}

json record_json(const bounce::address_record& r) {
    return {{"address", r.address}, {"status", std::string(bounce::to_string(r.status))},
            {"bounce_count", r.bounce_count},
            {"first_bounce", r.first_bounce_ms ? json(format_time(r.first_bounce_ms)) : json(nullptr)},
            {"last_bounce", r.last_bounce_ms ? json(format_time(r.last_bounce_ms)) : json(nullptr)},
            {"last_reply", r.last_reply}, {"last_kind", r.last_kind}, {"last_category", r.last_category}};
}

int cmd_recipient_show(const config& cfg, const std::string& addr, bool as_json) {
    auto st = open_state(cfg, true);
    std::optional<bounce::address_record> r;
    std::vector<events::event> hist;
    if (st) {
        r = st->get(addr);
        hist = st->history(addr);
    }
    if (!r && hist.empty()) die(1, addr + ": no record (never mailed, or never bounced)");
    bounce::address_record rec = r.value_or(bounce::address_record{bounce::lower_address(addr)});
    json j = record_json(rec);
    json h = json::array();
    for (auto& d : hist)
        h.push_back({{"time", format_time(d.time_ms)}, {"type", events::to_string(d.type)}, {"queue_id", d.queue_id},
                     {"campaign", d.campaign}, {"kind", d.kind}, {"category", d.category}, {"rule", d.rule},
                     {"reply", d.reply}});
    j["history"] = h;
    if (as_json) {
        std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    std::printf("address:      %s\nstatus:       %s\nbounces:      %d\nfirst bounce: %s\nlast bounce:  %s\n"
                "last reply:   %s%s\nhistory (newest first):\n",
                rec.address.c_str(), std::string(bounce::to_string(rec.status)).c_str(), rec.bounce_count,
                rec.first_bounce_ms ? format_time(rec.first_bounce_ms).c_str() : "-",
                rec.last_bounce_ms ? format_time(rec.last_bounce_ms).c_str() : "-", rec.last_reply.c_str(),
                rec.last_category.empty() ? "" : (" [" + rec.last_kind + "/" + rec.last_category + "]").c_str());
    for (auto& d : hist)
        std::printf("  %s  %-10s %s %s%s\n", format_time(d.time_ms).c_str(), std::string(events::to_string(d.type)).c_str(), d.queue_id.c_str(),
                    d.category.empty() ? "" : (d.kind + "/" + d.category + " ").c_str(), d.reply.c_str());
    return 0;
}

int cmd_recipient_list(const config& cfg, const std::string& status, bool as_json) {
    auto s = bounce::parse_address_status(status);
    if (!s) die(2, "--status must be bounced, held or unsubscribed");
    json arr = json::array();
    if (auto st = open_state(cfg, true))
        for (auto& r : st->list(*s)) arr.push_back(record_json(r));
    if (as_json) {
        std::cout << arr.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    for (auto& r : arr)
        std::printf("%-40s %-12s %3d bounce(s)  %s\n", r["address"].get<std::string>().c_str(),
                    r["status"].get<std::string>().c_str(), r["bounce_count"].get<int>(),
                    r["last_category"].get<std::string>().c_str());
    std::printf("-- %zu address(es)\n", arr.size());
    return 0;
}

int cmd_recipient_set(const config& cfg, const std::string& addr, bounce::address_status s, const std::string& why,
                      bool as_json) {
    json req{{"command", "recipient.set"}, {"address", addr}, {"status", std::string(bounce::to_string(s))}, {"why", why}};
    json reply;
    if (auto r = control_request(cfg.server.control_socket, req)) {
        reply = *r;
    } else {
        // No daemon: write the state store directly (it picks the change up at start).
        if (auto sp = open_spool(cfg, false)) {
            std::error_code lec;
            if (!sp->try_lock(lec))
                die(1, "the spool is locked by a running ricochetd, but its control socket " +
                           cfg.server.control_socket.string() + " does not answer");
        }
        auto st = open_state(cfg, false);
        std::string error;
        auto now = now_ms();
        std::vector<events::event> evs;
        bool ok = st->set_status(addr, s, why, now, evs, error);
        reply = {{"ok", ok}};
        if (!ok) reply["error"] = error;
        if (ok) {
            evs.insert(evs.begin(), events::address_admin(bounce::lower_address(addr), why, s, now));
            offline_events(cfg).bus.write(evs);
        }
    }
    if (!reply.value("ok", false)) die(1, reply.value("error", std::string("refused")));
    if (as_json) std::cout << json{{"address", bounce::lower_address(addr)}, {"status", std::string(bounce::to_string(s))}}.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    else std::printf("%s: %s\n", bounce::lower_address(addr).c_str(), std::string(bounce::to_string(s)).c_str());
    return 0;
}

int cmd_stats(const config& cfg, const std::string& campaign, const std::string& domain, const std::string& since,
              bool as_json) {
    std::int64_t since_ms = 0;
    if (!since.empty()) {
        seconds ago{0};
        if (!parse_duration(since, ago)) die(2, "--since: a duration such as 24h or 7d");
        since_ms = now_ms() - ago.count() * 1000;
    }
    json out = json::object();
    auto st = open_state(cfg, true);
    for (std::string group : {"campaign", "domain"}) {
        json rows = json::array();
        if (st)
            for (auto& r : st->stats(group, campaign, domain, since_ms))
                rows.push_back({{group, r.key}, {"sent", r.sent}, {"delivered", r.delivered}, {"deferred", r.deferred},
                                {"hard", r.hard}, {"soft", r.soft}, {"block", r.block}, {"technical", r.technical},
                                {"bounce_rate", r.bounce_rate()}});
        out[group == "campaign" ? "by_campaign" : "by_domain"] = rows;
    }
    if (as_json) {
        std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    for (auto [title, key] : {std::pair{"CAMPAIGN", "campaign"}, std::pair{"DOMAIN", "domain"}}) {
        std::printf("%-30s %8s %9s %8s %6s %6s %6s %9s %7s\n", title, "SENT", "DELIVERED", "DEFERRED", "HARD", "SOFT",
                    "BLOCK", "TECHNICAL", "BOUNCE%");
        for (auto& r : out[std::string(key) == "campaign" ? "by_campaign" : "by_domain"])
            std::printf("%-30s %8lld %9lld %8lld %6lld %6lld %6lld %9lld %6.1f%%\n",
                        r[key].get<std::string>().empty() ? "(none)" : r[key].get<std::string>().c_str(),
                        (long long)r["sent"].get<std::int64_t>(), (long long)r["delivered"].get<std::int64_t>(),
                        (long long)r["deferred"].get<std::int64_t>(), (long long)r["hard"].get<std::int64_t>(),
                        (long long)r["soft"].get<std::int64_t>(), (long long)r["block"].get<std::int64_t>(),
                        (long long)r["technical"].get<std::int64_t>(), 100.0 * r["bounce_rate"].get<double>());
        std::printf("\n");
    }
    return 0;
}

// `bounce parse FILE.eml`: the records found, in the events' field names.
int cmd_parse(const config& cfg, const std::string& file, bool as_json) {
    std::ifstream in(file, std::ios::binary);
    if (!in) die(1, file + ": cannot read");
    std::string raw((std::istreambuf_iterator<char>(in)), {});
    auto rep = bounce::parse_dsn(raw);
    bounce::classifier cl;
    std::string error;
    if (!cl.load(cfg.bounce.rules, error)) die(1, "bounce.rules: " + error);
    cl.set_final_soft(cfg.bounce.final_soft);
    json arr = bounce::dsn_records_json(rep, cl);
    if (as_json) {
        std::cout << arr.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return arr.empty() ? 1 : 0;
    }
    if (arr.empty()) std::printf("no delivery report found (format: %s)\n", rep.format.c_str());
    for (auto& j : arr)
        std::printf("%-9s <%s> %s %s %s/%s: %s\n", j["type"].get<std::string>().c_str(),
                    j["recipient"].get<std::string>().c_str(), j["enhanced"].get<std::string>().c_str(),
                    j.value("rule", std::string()).c_str(), j.value("kind", std::string("-")).c_str(),
                    j.value("category", std::string("-")).c_str(), j["reply"].get<std::string>().substr(0, 200).c_str());
    return arr.empty() ? 1 : 0;
}

int cmd_classify(const config& cfg, const std::string& text, const std::string& domain,
                 const std::string& stage_name, bool as_json) {
    bounce::classifier cl;
    std::string error;
    if (!cl.load(cfg.bounce.rules, error)) die(1, "bounce.rules: " + error);
    cl.set_final_soft(cfg.bounce.final_soft);
    auto reply = bounce::parse_reply_text(text);
    bounce::stage at = bounce::stage::rcpt;
    bool found = false;
    for (auto st : {bounce::stage::dns, bounce::stage::connect, bounce::stage::greeting, bounce::stage::ehlo,
                    bounce::stage::starttls, bounce::stage::tls, bounce::stage::mail, bounce::stage::rcpt,
                    bounce::stage::data, bounce::stage::end_of_data})
        if (bounce::to_string(st) == stage_name) { at = st; found = true; }
    if (!found) die(2, "--stage: unknown stage " + stage_name);
    reply.at = at;
    auto c = cl.classify(reply, domain);
    json j{{"code", reply.code}, {"enhanced", reply.enhanced}, {"kind", std::string(bounce::to_string(c.k))},
           {"category", std::string(bounce::to_string(c.c))}, {"retry", c.retry},
           {"scope", std::string(bounce::to_string(c.s))}, {"rule", c.rule}};
    if (as_json) {
        std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    std::printf("kind:     %s\ncategory: %s\nretry:    %s\nscope:    %s\nrule:     %s\n",
                std::string(bounce::to_string(c.k)).c_str(), std::string(bounce::to_string(c.c)).c_str(),
                c.retry ? "yes" : "no", std::string(bounce::to_string(c.s)).c_str(), c.rule.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ricochetctl - inspect and steer the Ricochet queue"};
    app.require_subcommand(1);
    std::string config_path = "etc/ricochet.toml";
    app.add_option("--config", config_path, "configuration file")->capture_default_str();
    bool as_json = false;

    auto* q = app.add_subcommand("queue", "inspect and change the queue");
    q->require_subcommand(1);
    auto* summary = q->add_subcommand("summary", "counts by destination domain and state");
    summary->add_flag("--json", as_json);
    list_filter lf;
    auto* list = q->add_subcommand("list", "messages in the queue");
    list->add_option("--domain", lf.domain);
    list->add_option("--state", lf.state)->check(CLI::IsMember({"active", "deferred", "hold"}));
    list->add_option("--campaign", lf.campaign);
    list->add_flag("--json", as_json);
    std::string show_id;
    auto* show = q->add_subcommand("show", "one message: envelope, headers, recipients");
    show->add_option("ID", show_id)->required();
    show->add_flag("--json", as_json);

    queue::selector sel;
    std::optional<queue::admin_op> op;
    for (auto [name, o, help] : {std::tuple{"flush", queue::admin_op::flush, "retry deferred messages now"},
                                 std::tuple{"hold", queue::admin_op::hold, "park messages (no delivery attempts)"},
                                 std::tuple{"release", queue::admin_op::release, "unpark held messages"},
                                 std::tuple{"delete", queue::admin_op::remove, "remove messages without bouncing"}}) {
        auto* sc = q->add_subcommand(name, help);
        sc->add_option("ID", sel.id, "queue id");
        sc->add_option("--domain", sel.domain, "every message with a recipient in this domain");
        sc->add_option("--campaign", sel.campaign, "every message of this campaign");
        sc->add_flag("--all", sel.all, "every message");
        sc->add_flag("--json", as_json);
        sc->callback([&op, o = o] { op = o; });
    }

    auto* b = app.add_subcommand("bounce", "the bounce engine");
    b->require_subcommand(1);
    std::string reply_text, reply_domain, reply_stage = "rcpt";
    auto* classify = b->add_subcommand("classify", "how a reply is classified, and which rule matched");
    classify->add_option("REPLY", reply_text, "the reply, e.g. \"550 5.1.1 user unknown\"")->required();
    classify->add_option("--domain", reply_domain, "the recipient's domain");
    classify->add_option("--stage", reply_stage, "the stage it came at (rcpt, mail, data, end_of_data, ...)");
    classify->add_flag("--json", as_json);
    std::string eml;
    auto* parse = b->add_subcommand("parse", "the delivery reports found in a bounce message");
    parse->add_option("FILE", eml, "a bounce message (.eml)")->required();
    parse->add_flag("--json", as_json);

    auto* rc = app.add_subcommand("recipient", "what is known about an address");
    rc->require_subcommand(1);
    std::string addr, list_status;
    auto* rshow = rc->add_subcommand("show", "status, bounce count, first/last bounce, reason, history");
    rshow->add_option("ADDR", addr)->required();
    rshow->add_flag("--json", as_json);
    auto* rlist = rc->add_subcommand("list", "addresses with a status");
    rlist->add_option("--status", list_status)->required()->check(CLI::IsMember({"bounced", "held", "unsubscribed"}));
    rlist->add_flag("--json", as_json);
    std::optional<std::pair<bounce::address_status, std::string>> set_to;
    for (auto [name, st, help] : {std::tuple{"clear", bounce::address_status::active, "operator confirmed the address: back to active"},
                                  std::tuple{"engage", bounce::address_status::active, "an open or click was seen: back to active"},
                                  std::tuple{"unsubscribe", bounce::address_status::unsubscribed, "suppress for good"}}) {
        auto* sc = rc->add_subcommand(name, help);
        sc->add_option("ADDR", addr)->required();
        sc->add_flag("--json", as_json);
        sc->callback([&set_to, st = st, name = std::string(name)] { set_to = std::pair{st, name}; });
    }
    std::string st_campaign, st_domain, st_since;
    auto* stats = app.add_subcommand("stats", "sent, delivered, deferred, bounces by kind, bounce rate");
    stats->add_option("--campaign", st_campaign);
    stats->add_option("--domain", st_domain);
    stats->add_option("--since", st_since, "e.g. 24h, 7d");
    stats->add_flag("--json", as_json);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return 2;
    }

    try {
        config cfg;
        std::string error;
        if (!load_config(config_path, cfg, error)) die(2, error);
        if (summary->parsed()) return cmd_summary(cfg, as_json);
        if (list->parsed()) return cmd_list(cfg, lf, as_json);
        if (show->parsed()) return cmd_show(cfg, show_id, as_json);
        if (op) return cmd_admin(cfg, *op, sel, as_json);
        if (classify->parsed()) return cmd_classify(cfg, reply_text, reply_domain, reply_stage, as_json);
        if (parse->parsed()) return cmd_parse(cfg, eml, as_json);
        if (rshow->parsed()) return cmd_recipient_show(cfg, addr, as_json);
        if (rlist->parsed()) return cmd_recipient_list(cfg, list_status, as_json);
        if (set_to) return cmd_recipient_set(cfg, addr, set_to->first, set_to->second, as_json);
        if (stats->parsed()) return cmd_stats(cfg, st_campaign, st_domain, st_since, as_json);
    } catch (const exit_code& e) {
        return e.code;
    } catch (const std::exception& e) {
        std::cerr << "ricochetctl: " << e.what() << "\n";
        return 1;
    }
    return 2;
}
