// common — what every ricochetctl command group shares: exiting with the
// documented codes (0 ok, 1 not found / refused, 2 usage), the control
// socket, opening the spool and the state store, and the events ricochetctl
// writes itself while the daemon is stopped.
#pragma once
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "bounce/recipient_status.hpp"
#include "config/config.hpp"
#include "events/bus.hpp"
#include "events/jsonl_log.hpp"
#include "events/sequencer.hpp"
#include "queue/queue_admin.hpp"
#include "queue/spool.hpp"
#include "state/recipient_state.hpp"

namespace ricochet::ctl {
using nlohmann::json;

// Thrown to leave with a code; caught once, in main().
struct exit_code {
    int code;
};
[[noreturn]] void die(int code, const std::string& msg);

std::string format_time(std::int64_t ms);
std::unique_ptr<queue::spool> open_spool(const config& cfg, bool must_exist);
// Sends one request over the control socket. nullopt when no daemon listens.
std::optional<json> control_request(const std::filesystem::path& path, const json& req);
// The state store; readonly and nothing recorded yet: null.
std::unique_ptr<state::recipient_state> open_state(const config& cfg, bool readonly);
json record_json(const bounce::address_record& r);

// Events written by ricochetctl itself, when it acts with the daemon
// stopped: numbered from the same sequence file, into the same log.
struct offline_events {
    events::sequencer seq;
    events::jsonl_log file;
    events::bus bus{seq};
    explicit offline_events(const config& cfg);
};

// The commands, one file per group.
struct list_filter {
    std::string domain, state, campaign;
};
int queue_list(const config& cfg, const list_filter& f, bool as_json);
int queue_summary(const config& cfg, bool as_json);
int queue_show(const config& cfg, const std::string& id, bool as_json);
int queue_admin(const config& cfg, queue::admin_op op, const queue::selector& sel, bool as_json);
int recipient_show(const config& cfg, const std::string& addr, bool as_json);
int recipient_list(const config& cfg, const std::string& status, bool as_json);
int recipient_set(const config& cfg, const std::string& addr, bounce::address_status s, const std::string& why,
                  bool as_json);
int stats(const config& cfg, const std::string& campaign, const std::string& domain, const std::string& since,
          bool as_json);
int bounce_parse(const config& cfg, const std::string& file, bool as_json);
int state_prune(const config& cfg, const std::string& older_than, bool as_json);
int state_migrate(const config& cfg, std::string from, const std::string& to, bool force, bool as_json);
int campaign_list(const config& cfg, bool as_json);
int campaign_show(const config& cfg, const std::string& id, bool as_json);
int campaign_set(const config& cfg, const std::string& id, bool pause, bool as_json);
int shaping_show(const config& cfg, const std::string& domain, bool as_json);
int tls_show(const config& cfg, const std::string& domain, bool as_json);
int tls_report(const config& cfg, const std::string& day, bool as_json);
int bounce_classify(const config& cfg, const std::string& text, const std::string& domain, const std::string& stage,
                    bool as_json);

}  // namespace ricochet::ctl
