// state_commands — ricochetctl state prune: retention now, all of it
// (state/retention.hpp), then the freed pages given back. Safe while the
// daemon runs: each batch is its own short transaction, and a decision the
// daemon could not write meanwhile waits in its journal.
#include <cstdio>
#include <iostream>

#include "ctl/common.hpp"
#include "queue/clock.hpp"
#include "queue/queue_id.hpp"
#include "state/backend.hpp"
#include "state/migrate.hpp"
#include "state/retention.hpp"

namespace ricochet::ctl {

int state_prune(const config& cfg, const std::string& older_than, bool as_json) {
    seconds keep = cfg.retention.decisions;
    if (!older_than.empty() && !parse_duration(older_than, keep)) die(2, "--older-than: a duration such as 90d or 12h");
    if (keep.count() == 0 && older_than.empty()) die(2, "retention.decisions is 0 (keep for ever): give --older-than");
    auto st = open_state(cfg, false);
    if (!st) die(1, "cannot open the state store " + cfg.server.state);
    auto now = now_ms();
    std::int64_t before = now - keep.count() * 1000;
    std::int64_t messages_before = std::min(before, now - cfg.retention.messages.count() * 1000);
    auto t = state::prune_state(*st, before, queue::queue_id_floor(static_cast<std::uint64_t>(messages_before) * 1000),
                                2000, static_cast<std::size_t>(-1));
    if (!t.error.empty()) die(1, "prune: " + t.error + " (what was pruned before stays pruned)");
    if (t.busy)
        die(1, "prune: another node is pruning the shared database now (" + std::to_string(t.decisions) +
                   " decision(s) pruned here before it); run it again later");
    st->reclaim_space();
    std::int64_t files = 0;
    if (cfg.retention.dsn_unparsed.count() > 0 || !older_than.empty()) {
        auto age = older_than.empty() ? cfg.retention.dsn_unparsed : keep;
        files = state::prune_files(cfg.server.spool_dir / "dsn-unparsed", std::filesystem::file_time_type::clock::now() - age);
    }
    json out{{"pruned", t.decisions}, {"messages", t.messages}, {"dsn_unparsed", files}, {"batches", t.batches},
             {"older_than_s", keep.count()}};
    if (as_json) std::cout << out.dump() << "\n";
    else
        std::printf("pruned %lld decision(s) (kept as daily totals), %lld message(s), %lld unreadable DSN file(s)\n",
                    (long long)t.decisions, (long long)t.messages, (long long)files);
    return 0;
}

int state_migrate(const config& cfg, std::string from, const std::string& to, bool force, bool as_json) {
    if (from.empty()) from = cfg.server.state;
    std::string error;
    if (state::backend_of(from, error) != state::backend::sqlite)
        die(2, std::string("--from: a SQLite state store, sqlite:PATH") + (from == cfg.server.state ? " (server.state is not one)" : ""));
    if (state::backend_of(to, error) != state::backend::postgresql) die(2, "--to: " + error);
    auto rep = state::migrate_sqlite_to_pg(from.substr(7), to, force);
    if (!rep.error.empty()) die(1, "migrate: " + rep.error + " (nothing was moved)");
    json rows = json::object();
    for (auto& [t, n] : rep.rows) rows[t] = n;
    if (as_json) {
        std::cout << json{{"source", rep.source}, {"rows", rows}}.dump() << "\n";
    } else {
        std::printf("moved %s into the shared database:\n", rep.source.c_str());
        for (auto& [t, n] : rep.rows) std::printf("  %-20s %lld row(s)\n", t.c_str(), (long long)n);
        std::printf("now set server.state to the PostgreSQL URL and start ricochetd\n");
    }
    return 0;
}

}  // namespace ricochet::ctl
