// queue_commands — ricochetctl queue summary|list|show|flush|hold|release|delete: reading
// straight from the spool (works with the daemon stopped); changes through
// the control socket, or on the spool under its lock when no daemon runs.
#include "ctl/common.hpp"

#include <cstdio>
#include <iostream>
#include <map>

#include "queue/clock.hpp"
#include "queue/queue_admin.hpp"
#include "views/views.hpp"

namespace ricochet::ctl {


int queue_list(const config& cfg, const list_filter& f, bool as_json) {
    std::optional<queue::queue_state> st;
    if (!f.state.empty()) {
        st = queue::parse_queue_state(f.state);
        if (!st) die(2, "--state must be active, deferred or hold");
    }
    json arr = json::array();
    views::hold_reason_fn why;
    if (auto store = open_state(cfg, true)) why = views::breaker_hold_reason(*store);
    if (auto sp = open_spool(cfg, false)) arr = views::queue_list(*sp, {f.domain, f.campaign, st, why});
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
        if (m.contains("hold_reason")) std::printf("%55s(held: %s)\n", "", m["hold_reason"].get<std::string>().c_str());
    }
    std::printf("-- %zu message(s)\n", arr.size());
    return 0;
}

int queue_summary(const config& cfg, bool as_json) {
    // Paused destinations are known to the running daemon only.
    std::map<std::string, std::int64_t> paused;
    if (auto r = control_request(cfg.server.control_socket, json{{"command", "pauses"}}); r && r->value("ok", false))
        for (auto& p : (*r)["paused"]) paused[p["domain"].get<std::string>()] = p["until_ms"].get<std::int64_t>();
    auto sp = open_spool(cfg, false);
    json out = views::queue_summary(sp.get(), paused);
    // Traffic shaping's rates now (known to the running daemon only).
    if (auto r = control_request(cfg.server.control_socket, json{{"command", "shaping.show"}}); r && r->value("ok", false))
        out["shaping"] = (*r)["destinations"];
    if (as_json) {
        std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    std::printf("%-40s %8s %8s %8s %8s  %s\n", "DOMAIN", "TOTAL", "ACTIVE", "DEFERRED", "HOLD", "PAUSED UNTIL");
    for (auto& r : out["domains"])
        std::printf("%-40s %8zu %8zu %8zu %8zu  %s\n", r["domain"].get<std::string>().c_str(), r["total"].get<std::size_t>(),
                    r["active"].get<std::size_t>(), r["deferred"].get<std::size_t>(), r["hold"].get<std::size_t>(),
                    r.value("paused_until", std::string()).c_str());
    auto& t = out["total"];
    std::printf("%-40s %8zu %8zu %8zu %8zu\n", "TOTAL (messages)", t["messages"].get<std::size_t>(),
                t["active"].get<std::size_t>(), t["deferred"].get<std::size_t>(), t["hold"].get<std::size_t>());
    // Destinations whose pace is limited now (a rate, a resting IP, a warm-up cap).
    bool header = false;
    for (auto& s : out.value("shaping", json::array())) {
        double rate = s["rate_per_minute"].get<double>();
        if (rate <= 0 && !s.contains("rested_until") && !s.contains("warmup_cap")) continue;
        if (!header) std::printf("\n%-40s %-16s %10s  %s\n", "DESTINATION (shaping)", "SOURCE IP", "RATE/MIN", "NOTE");
        header = true;
        std::string note = s.contains("rested_until") ? "resting until " + s["rested_until"].get<std::string>() : "";
        if (s.contains("warmup_cap"))
            note += (note.empty() ? "" : "; ") + std::string("warm-up ") + std::to_string(s["warmup_left"].get<unsigned long>()) +
                    " of " + std::to_string(s["warmup_cap"].get<unsigned long>()) + " left today";
        std::printf("%-40s %-16s %10s  %s\n", s["key"].get<std::string>().c_str(), s["source_ip"].get<std::string>().c_str(),
                    rate > 0 ? std::to_string(static_cast<long>(rate)).c_str() : "-", note.c_str());
    }
    return 0;
}

int queue_show(const config& cfg, const std::string& id, bool as_json) {
    if (!queue::is_queue_id(id)) die(1, "not a queue id: " + id);
    auto sp = open_spool(cfg, false);
    if (!sp) die(1, id + ": not in the queue");
    std::string error;
    views::hold_reason_fn why;
    if (auto store = open_state(cfg, true)) why = views::breaker_hold_reason(*store);
    auto shown = views::queue_show(*sp, id, error, why);
    if (!shown) die(1, error);
    json& j = *shown;
    if (as_json) {
        std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    std::printf("id:        %s\nstate:     %s\narrival:   %s\nsize:      %llu\nsender:    <%s>\ncampaign:  %s\n"
                "client:    [%s] helo=%s%s%s\n",
                j["id"].get<std::string>().c_str(), j["state"].get<std::string>().c_str(),
                j["arrival"].get<std::string>().c_str(), static_cast<unsigned long long>(j["size"].get<std::uint64_t>()),
                j["sender"].get<std::string>().c_str(), j["campaign"].get<std::string>().c_str(),
                j["client"].get<std::string>().c_str(), j["helo"].get<std::string>().c_str(),
                j["auth_user"].get<std::string>().empty() ? "" : " auth=", j["auth_user"].get<std::string>().c_str());
    std::printf("recipients:\n");
    for (auto& r : j["recipients"]) {
        std::printf("  <%s>  %s, %d attempt(s)", r["recipient"].get<std::string>().c_str(),
                    r["status"].get<std::string>().c_str(), r["attempts"].get<int>());
        if (r["attempts"].get<int>() > 0)
            std::printf(", last %s at %s via %s: %s", r["last_attempt"].get<std::string>().c_str(),
                        r["stage"].get<std::string>().c_str(),
                        r["mx"].get<std::string>().empty() ? "-" : r["mx"].get<std::string>().c_str(),
                        r["last_reply"].get<std::string>().c_str());
        std::printf("\n");
    }
    std::printf("headers:\n");
    std::string h = j["headers"].get<std::string>();
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
