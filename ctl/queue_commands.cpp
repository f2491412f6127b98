// queue_commands — ricochetctl queue summary|list|show|flush|hold|release|delete: reading
// straight from the spool (works with the daemon stopped); changes through
// the control socket, or on the spool under its lock when no daemon runs.
#include "ctl/common.hpp"

#include <cstdio>
#include <iostream>
#include <map>

#include "queue/clock.hpp"
#include "queue/queue_admin.hpp"

namespace ricochet::ctl {

namespace {
json message_json(const queue::envelope& env, queue::queue_state st) {
    return {{"id", env.id}, {"state", std::string(queue::to_string(st))}, {"arrival", format_time(env.arrival_ms)},
            {"size", env.content_size}, {"sender", env.sender}, {"campaign", env.campaign},
            {"recipients", env.recipients}};
}
}  // namespace

int queue_list(const config& cfg, const list_filter& f, bool as_json) {
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

int queue_summary(const config& cfg, bool as_json) {
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

int queue_show(const config& cfg, const std::string& id, bool as_json) {
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

int queue_admin(const config& cfg, queue::admin_op op, const queue::selector& sel, bool as_json) {
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

}  // namespace ricochet::ctl
