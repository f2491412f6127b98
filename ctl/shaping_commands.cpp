// shaping_commands — ricochetctl shaping show [DOMAIN]: the [[shaping]]
// rules and [[pool]]s, and, from the running daemon, each destination's
// state per source IP: its rate now (cut by rate-limited replies, raised
// again after clean stretches), whether the IP rests there after a
// blocklist reply, and the warm-up day and what is left of today's cap.
#include <cstdio>
#include <iostream>

#include "ctl/common.hpp"

namespace ricochet::ctl {

int shaping_show(const config& cfg, const std::string& domain, bool as_json) {
    json req{{"command", "shaping.show"}};
    if (!domain.empty()) req["domain"] = domain;
    auto r = control_request(cfg.server.control_socket, req);
    if (!r) die(1, "the daemon is not running (" + cfg.server.control_socket.string() + "): rates and warm-up live in it");
    if (!r->value("ok", false)) die(1, r->value("error", std::string("refused")));
    r->erase("ok");
    if (as_json) {
        std::cout << r->dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    auto lim = [](const json& j) {
        auto rate = j["max_messages_per_minute"].get<unsigned>();
        return std::to_string(j["max_connections"].get<unsigned>()) + " conn, " +
               std::to_string(j["max_messages_per_connection"].get<unsigned>()) + " msg/conn, " +
               (rate ? std::to_string(rate) + " msg/min" : std::string("no rate limit"));
    };
    if (r->contains("domain")) {
        auto& d = (*r)["domain"];
        std::printf("%s: %s (%s)\n  limits: %s\n", d["domain"].get<std::string>().c_str(),
                    d["rule"].get<std::string>().empty() ? "no [[shaping]] rule" : ("rule " + d["rule"].get<std::string>()).c_str(),
                    d["how"].get<std::string>().c_str(), lim(d).c_str());
    } else {
        std::printf("rules:\n");
        for (auto& rule : (*r)["rules"]) std::printf("  %-32s %s\n", rule["match"].get<std::string>().c_str(), lim(rule).c_str());
        std::printf("  %-32s %s\n", "(any other domain)", lim((*r)["defaults"]).c_str());
        std::printf("pools:\n");
        for (auto& p : (*r)["pools"]) {
            std::string ips;
            for (auto& ip : p["source_ips"]) ips += (ips.empty() ? "" : " ") + ip.get<std::string>();
            std::printf("  %-16s %s%s%s\n", p["name"].get<std::string>().c_str(), ips.c_str(),
                        p["warmup_start"].get<std::string>().empty() ? "" : "  warm-up from ",
                        p["warmup_start"].get<std::string>().c_str());
        }
    }
    std::printf("%-32s %-16s %10s %10s %-28s %s\n", "DESTINATION", "SOURCE IP", "RATE/MIN", "MAX/MIN", "RESTED UNTIL",
                "WARM-UP (day: left of cap)");
    for (auto& s : (*r)["destinations"]) {
        auto per_min = [](double v) { return v > 0 ? std::to_string(static_cast<long>(v)) : std::string("-"); };
        std::string warm = s.contains("warmup_day") ? std::to_string(s["warmup_day"].get<long>()) + ": " +
                                                          std::to_string(s["warmup_left"].get<unsigned long>()) + " of " +
                                                          std::to_string(s["warmup_cap"].get<unsigned long>())
                                                    : "-";
        std::printf("%-32s %-16s %10s %10s %-28s %s\n", s["key"].get<std::string>().c_str(),
                    s["source_ip"].get<std::string>().c_str(), per_min(s["rate_per_minute"].get<double>()).c_str(),
                    per_min(s["max_per_minute"].get<double>()).c_str(), s.value("rested_until", std::string("-")).c_str(),
                    warm.c_str());
    }
    return 0;
}

}  // namespace ricochet::ctl
