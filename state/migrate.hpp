// migrate — moves one node's SQLite state into the shared PostgreSQL
// database (`ricochetctl state migrate --from sqlite:PATH --to
// postgresql://...`), in one transaction: all of it or nothing.
//
// Each table is sent with COPY into a temporary table, then merged:
//   recipients           the more recently updated row wins
//   decisions            added (history and stats of both)
//   daily/hourly totals, breaker counts   added to what is there
//   messages             added; `bounced` kept if either says so
//   message recipients, final failures, suppressions   added where new
//   breaker scopes       the more recent state wins
// A file once moved is recorded (ricochet_imports, by host and path) and
// refused a second time unless `force`: its decisions would count twice.
// Run it with the node's ricochetd stopped.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ricochet::state {

struct migrate_report {
    std::vector<std::pair<std::string, std::int64_t>> rows;  // per table, rows read from SQLite
    std::string source;                                       // as recorded in ricochet_imports
    std::string error;                                        // "" when done
};

migrate_report migrate_sqlite_to_pg(const std::string& sqlite_path, const std::string& pg_url, bool force);

}  // namespace ricochet::state
