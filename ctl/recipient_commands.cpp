// recipient_commands — ricochetctl recipient show|list|clear|engage|unsubscribe:
// the state store read directly; changes through the daemon (so the RCPT
// check knows at once), or written directly while it is stopped.
#include "ctl/common.hpp"

#include <cstdio>
#include <iostream>

#include "bounce/suppression_list.hpp"
#include "events/make.hpp"
#include "queue/clock.hpp"
#include "views/views.hpp"

namespace ricochet::ctl {

int recipient_show(const config& cfg, const std::string& addr, bool as_json) {
    auto st = open_state(cfg, true);
    std::optional<json> shown;
    if (st) shown = views::recipient(*st, addr);
    if (!shown) die(1, addr + ": no record (never mailed, or never bounced)");
    json& j = *shown;
    if (as_json) {
        std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    auto text = [](const json& v) { return v.is_string() ? v.get<std::string>() : std::string("-"); };
    std::string kind = j["last_kind"], category = j["last_category"];
    std::printf("address:      %s\nstatus:       %s\nbounces:      %d\nfirst bounce: %s\nlast bounce:  %s\n"
                "last reply:   %s%s\nhistory (newest first):\n",
                text(j["address"]).c_str(), text(j["status"]).c_str(), j["bounce_count"].get<int>(),
                text(j["first_bounce"]).c_str(), text(j["last_bounce"]).c_str(), j["last_reply"].get<std::string>().c_str(),
                category.empty() ? "" : (" [" + kind + "/" + category + "]").c_str());
    for (auto& d : j["history"]) {
        std::string dk = d["kind"], dc = d["category"];
        std::printf("  %s  %-10s %s %s%s\n", text(d["time"]).c_str(), text(d["type"]).c_str(), text(d["queue_id"]).c_str(),
                    dc.empty() ? "" : (dk + "/" + dc + " ").c_str(), d["reply"].get<std::string>().c_str());
    }
    return 0;
}

int recipient_list(const config& cfg, const std::string& status, bool as_json) {
    auto s = bounce::parse_address_status(status);
    if (!s) die(2, "--status must be bounced, held or unsubscribed");
    json arr = json::array();
    if (auto st = open_state(cfg, true)) arr = views::recipients(*st, *s, "", 0)["recipients"];
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

int recipient_set(const config& cfg, const std::string& addr, bounce::address_status s, const std::string& why,
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

}  // namespace ricochet::ctl
