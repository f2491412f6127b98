// tls_commands — ricochetctl tls show DOMAIN: the MTA-STS policy in force
// for a receiving domain (mode, mx patterns, id, cache age, the last fetch
// problem), whether DANE is on, and today's TLS sessions towards it with
// the last result per MX host and the TLSA records it was held to; ricochetctl tls report [--day DAY]: the TLS-RPT reports of a day
// queued now (today's: the counts so far). Both ask the running daemon.
#include <cstdio>
#include <iostream>

#include "ctl/common.hpp"

namespace ricochet::ctl {

int tls_show(const config& cfg, const std::string& domain, bool as_json) {
    auto r = control_request(cfg.server.control_socket, {{"command", "tls.show"}, {"domain", domain}});
    if (!r) die(1, "the daemon is not running (" + cfg.server.control_socket.string() + "): policies and results live in it");
    if (!r->value("ok", false)) die(1, r->value("error", std::string("refused")));
    r->erase("ok");
    if (as_json) {
        std::cout << r->dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    std::printf("%s\n", (*r)["domain"].get<std::string>().c_str());
    auto& sts = (*r)["mta_sts"];
    if (sts.value("off", false)) {
        std::printf("  MTA-STS: off (delivery.mta_sts)\n");
    } else if (sts["policy"].is_null()) {
        std::printf("  MTA-STS: no policy cached\n");
    } else {
        auto& p = sts["policy"];
        std::string mx;
        for (auto& m : p["mx"]) mx += (mx.empty() ? "" : ", ") + m.get<std::string>();
        std::printf("  MTA-STS: mode %s%s, mx %s\n", p["mode"].get<std::string>().c_str(),
                    p["in_force"].get<bool>() ? "" : " (expired, not in force)", mx.empty() ? "-" : mx.c_str());
        std::printf("  policy id %s, fetched %lld s ago, max_age %u s\n", p["id"].get<std::string>().c_str(),
                    static_cast<long long>(p["age_s"].get<std::int64_t>()), p["max_age"].get<unsigned>());
    }
    if (sts.contains("last_fetch_failure"))
        std::printf("  last fetch failed (%s): %s\n", sts["last_fetch_failure"]["type"].get<std::string>().c_str(),
                    sts["last_fetch_failure"]["error"].get<std::string>().c_str());
    std::printf("  DANE: %s\n", r->value("dane", false) ? "on (TLSA records of each MX host, DNSSEC-validated)"
                                                      : r->value("dane_status", std::string("off")).c_str());
    auto& rpt = (*r)["tls_rpt"];
    if (rpt.value("off", false)) {
        std::printf("  TLS-RPT: off (delivery.tls_rpt)\n");
        return 0;
    }
    std::printf("  TLS sessions %s: %llu successful, %llu failed\n", rpt["day"].get<std::string>().c_str(),
                static_cast<unsigned long long>(rpt["successful_sessions"].get<std::uint64_t>()),
                static_cast<unsigned long long>(rpt["failed_sessions"].get<std::uint64_t>()));
    for (auto& [host, l] : rpt["last_per_mx"].items()) {
        std::printf("  %-40s [%s] %s%s%s\n", host.c_str(), l["ip"].get<std::string>().c_str(),
                    l["ok"].get<bool>() ? "ok" : l["result_type"].get<std::string>().c_str(),
                    l["detail"].get<std::string>().empty() ? "" : ": ", l["detail"].get<std::string>().c_str());
        for (auto& t : l.value("tlsa", json::array())) std::printf("    TLSA %s\n", t.get<std::string>().c_str());
    }
    return 0;
}

int tls_report(const config& cfg, const std::string& day, bool as_json) {
    auto r = control_request(cfg.server.control_socket, {{"command", "tls.report"}, {"day", day}});
    if (!r) die(1, "the daemon is not running (" + cfg.server.control_socket.string() + ")");
    if (!r->value("ok", false)) die(1, r->value("error", std::string("refused")));
    if (as_json) {
        std::cout << r->dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    for (auto& q : (*r)["queued"])
        std::printf("%s: report queued as %s to %s\n", q["domain"].get<std::string>().c_str(),
                    q["id"].get<std::string>().c_str(), q["to"][0].get<std::string>().c_str());
    for (auto& s : (*r)["skipped"])
        std::printf("%s: not reported: %s\n", s["domain"].get<std::string>().c_str(), s["why"].get<std::string>().c_str());
    for (auto& w : (*r)["waiting"])
        std::printf("%s: later: %s\n", w["domain"].get<std::string>().c_str(), w["why"].get<std::string>().c_str());
    return 0;
}

}  // namespace ricochet::ctl
