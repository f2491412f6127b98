// state_store — the recipient state of PRODUCT.md ("Recipient status"), in
// SQLite (WAL; one transaction per batch of decisions). It keeps:
//   recipients  one row per address: status, bounce count, first/last bounce,
//               last reply and its reading;
//   decisions   every decision (queued, delivered, deferred, bounced, expired,
//               suppressed, admin): the history of an address and the source
//               of `stats`;
//   messages    per queue id its campaign and `bounced` flag.
// The status rules themselves are bounce/recipient_status.hpp; time comes in
// with each call. Addresses are keys in lower case. Thread-safe.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bounce/recipient_status.hpp"

namespace ricochet::queue {

struct decision {
    std::int64_t time_ms = 0;
    std::string type;  // queued, delivered, deferred, bounced, expired, suppressed, complaint, admin
    std::string queue_id, campaign, recipient, kind, category, rule, reply;
    int index = -1;  // for `queued`: the recipient's index in its message (VERP tokens name it)
    std::string sender{};  // for `queued`: the message's envelope sender (a later DSN may go back to it)
};

struct stats_row {
    std::string key;  // campaign or domain
    std::int64_t sent = 0, delivered = 0, deferred = 0, hard = 0, soft = 0, block = 0, technical = 0;
    double bounce_rate() const { return sent ? double(hard + soft) / double(sent) : 0.0; }
};

// The store, behind an interface so another backend can replace SQLite.
class state_store {
public:
    virtual ~state_store() = default;

    // Records decisions in one transaction and applies the status rules to
    // final failures. Returns the addresses whose status changed.
    virtual std::vector<bounce::address_record> record(const std::vector<decision>& ds, std::string& error) = 0;

    virtual std::optional<bounce::address_record> get(const std::string& address) const = 0;
    virtual std::vector<decision> history(const std::string& address, int limit = 50) const = 0;
    virtual std::vector<bounce::address_record> list(bounce::address_status s) const = 0;
    // clear / engage (-> active, count reset) and unsubscribe, with an `admin` decision.
    virtual bool set_status(const std::string& address, bounce::address_status s, const std::string& why,
                            std::int64_t now_ms, std::string& error) = 0;
    virtual std::optional<bool> message_bounced(const std::string& queue_id) const = 0;
    // Who a VERP token (queue id, recipient index) names, and the campaign,
    // long after the message left the spool.
    virtual std::optional<std::string> recipient_of(const std::string& queue_id, int index) const = 0;
    virtual std::string campaign_of(const std::string& queue_id) const = 0;
    // The envelope sender of a message that was queued; nullopt when unknown.
    virtual std::optional<std::string> sender_of(const std::string& queue_id) const = 0;
    // Whether a final failure of this message to this recipient is counted already.
    virtual bool final_failure_known(const std::string& queue_id, const std::string& recipient) const = 0;
    // group_by: "campaign" or "domain"; empty filters mean all.
    virtual std::vector<stats_row> stats(const std::string& group_by, const std::string& campaign,
                                         const std::string& domain, std::int64_t since_ms) const = 0;

    // The SQLite store (the default, server.state = "sqlite:PATH"); readonly
    // for ricochetctl's readers.
    static std::unique_ptr<state_store> open(const std::filesystem::path& path, bounce::status_policy policy,
                                             std::string& error, bool readonly = false);
};

// "sqlite:var/state.db" -> "var/state.db"; empty for anything else.
std::filesystem::path sqlite_path(const std::string& state_setting);

}  // namespace ricochet::queue
