// campaign_commands — ricochetctl campaign list|show|pause|resume: the
// campaign circuit breaker's scopes (a campaign ID, or @domain for a sender
// domain). Figures are read from the state store (the daemon writes the
// counts with the decisions); pause and resume go through the daemon, or,
// while it is stopped, change the store and the spool directly.
#include "ctl/common.hpp"

#include <cstdio>
#include <iostream>

#include "bounce/suppression_list.hpp"
#include "config/breaker_config.hpp"
#include "queue/clock.hpp"
#include "views/views.hpp"

namespace ricochet::ctl {

namespace {
std::string percent(double r) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f%%", r * 100.0);
    return buf;
}
void print_row(const json& c) {
    std::printf("%-30s %-13s %9lld %6lld %8s %10s %8s %-7s %s\n", c["id"].get<std::string>().c_str(),
                c["scope"].get<std::string>().c_str(), (long long)c["attempted"].get<std::int64_t>(),
                (long long)c["hard"].get<std::int64_t>(), percent(c["hard_rate"].get<double>()).c_str(),
                std::to_string(c["complaints"].get<std::int64_t>()).c_str(),
                percent(c["complaint_rate"].get<double>()).c_str(), c["state"].get<std::string>().c_str(),
                c["reason"].is_string() ? c["reason"].get<std::string>().c_str() : "");
}
void print_header() {
    std::printf("%-30s %-13s %9s %6s %8s %10s %8s %-7s %s\n", "ID", "SCOPE", "ATTEMPTED", "HARD", "HARD%", "COMPLAINTS",
                "COMPL%", "STATE", "REASON");
}
}  // namespace

int campaign_list(const config& cfg, bool as_json) {
    json arr = json::array();
    if (auto st = open_state(cfg, true)) arr = views::campaigns(*st, to_breaker_config(cfg), now_ms());
    if (as_json) {
        std::cout << arr.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    print_header();
    for (auto& c : arr) print_row(c);
    std::printf("-- %zu scope(s) in the last %s\n", arr.size(), arr.empty() ? "window" : arr[0]["window"].get<std::string>().c_str());
    return 0;
}

int campaign_show(const config& cfg, const std::string& id, bool as_json) {
    std::optional<json> c;
    if (auto st = open_state(cfg, true)) c = views::campaign(*st, to_breaker_config(cfg), id, now_ms());
    if (!c) die(1, id + ": nothing in the breaker's window and no state");
    if (as_json) {
        std::cout << c->dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    auto& j = *c;
    std::printf("id:          %s (%s)\nstate:       %s%s%s\nsince:       %s\nwindow:      %s\n"
                "attempted:   %lld\ndelivered:   %lld\nhard:        %lld (%s)\nsoft:        %lld\nblock:       %lld\n"
                "complaints:  %lld (%s)\n",
                j["id"].get<std::string>().c_str(), j["scope"].get<std::string>().c_str(), j["state"].get<std::string>().c_str(),
                j["reason"].is_string() ? (": " + j["reason"].get<std::string>()).c_str() : "",
                j["manual"].get<bool>() ? " (manual)" : "", j["since"].is_string() ? j["since"].get<std::string>().c_str() : "-",
                j["window"].get<std::string>().c_str(), (long long)j["attempted"].get<std::int64_t>(),
                (long long)j["delivered"].get<std::int64_t>(), (long long)j["hard"].get<std::int64_t>(),
                percent(j["hard_rate"].get<double>()).c_str(), (long long)j["soft"].get<std::int64_t>(),
                (long long)j["block"].get<std::int64_t>(), (long long)j["complaints"].get<std::int64_t>(),
                percent(j["complaint_rate"].get<double>()).c_str());
    return 0;
}

int campaign_set(const config& cfg, const std::string& given, bool pause, bool as_json) {
    if (given.empty() || given == "@") die(2, "need a campaign ID or @sender.domain");
    if (!cfg.breaker.enabled) die(1, "the campaign breaker is off ([breaker] enabled = false)");
    std::string id = given;
    if (id.front() == '@') id = bounce::lower_address(id);  // sender domains are kept in lower case
    json reply;
    if (auto r = control_request(cfg.server.control_socket, {{"command", pause ? "campaign.pause" : "campaign.resume"}, {"id", id}})) {
        reply = *r;
    } else {
        // No daemon: the store and the spool directly, under the spool's lock.
        auto sp = open_spool(cfg, false);
        if (sp) {
            std::error_code lec;
            if (!sp->try_lock(lec))
                die(1, "the spool is locked by a running ricochetd, but its control socket " +
                           cfg.server.control_socket.string() + " does not answer");
        }
        auto st = open_state(cfg, false);
        auto bc = to_breaker_config(cfg);
        breaker::monitor m(bc);
        auto now = now_ms();
        st->load_breaker(m, now);
        auto t = pause ? m.pause(id, now) : m.resume(id, now);
        reply = {{"ok", true}, {"state", pause ? "paused" : "ok"}, {"changed", t.has_value()}};
        if (t) {
            std::string error;
            if (!st->save_scope(id, m.state_of(id), error)) die(1, "state store: " + error);
            offline_events events(cfg);
            auto e = breaker::transition_event(*t, m.window(id, now), now);
            std::vector<events::event> evs{e};
            events.bus.write(evs);
            if (sp) {
                queue::selector sel;
                if (id.front() == '@') sel.sender_domain = id.substr(1);
                else sel.campaign = id;
                queue::apply_admin(*sp, &events.bus, pause ? queue::admin_op::hold : queue::admin_op::release, sel);
            }
        }
    }
    if (!reply.value("ok", false)) die(1, reply.value("error", std::string("refused")));
    if (as_json) std::cout << reply.dump(2) << "\n";
    else std::printf("%s: %s%s\n", id.c_str(), reply.value("state", std::string()).c_str(),
                     reply.value("changed", false) ? "" : " (already)");
    return 0;
}

}  // namespace ricochet::ctl
