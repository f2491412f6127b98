// stats_command — ricochetctl stats: sent, delivered, deferred and bounces by kind per
// campaign or domain, from the state store.
#include "ctl/common.hpp"

#include <cstdio>
#include <iostream>

#include "queue/clock.hpp"
#include "views/views.hpp"

namespace ricochet::ctl {

int stats(const config& cfg, const std::string& campaign, const std::string& domain, const std::string& since,
              bool as_json) {
    std::int64_t since_ms = 0;
    if (!since.empty()) {
        seconds ago{0};
        if (!parse_duration(since, ago)) die(2, "--since: a duration such as 24h or 7d");
        since_ms = now_ms() - ago.count() * 1000;
    }
    json out{{"by_campaign", json::array()}, {"by_domain", json::array()}};
    if (auto st = open_state(cfg, true)) out = views::stats(*st, campaign, domain, since_ms);
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

}  // namespace ricochet::ctl
