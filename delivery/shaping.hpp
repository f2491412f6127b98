// shaping — the pace each destination gets (PRODUCT.md "Traffic shaping"):
// which [[shaping]] rule applies to a domain (by the domain, or by its MX
// host: "mx:*.google.com" puts every domain Google hosts under one limit),
// which source IP of the message's [[pool]] sends (round-robin, skipping
// an IP resting after a blocklist/reputation reply from that destination
// and one at today's warm-up cap), and when it may send: a token bucket
// per destination and source IP whose rate adapts, halved by a rate-limited
// reply (never below 1/min) and raised by a tenth of the configured maximum
// after each clean delivery.adaptive_interval.
//
// Plain C++ with the time passed in; thread-safe (delivery's strand asks,
// the control socket and /metrics read). The warm-up counts survive a
// restart: they are reserved ahead in chunks in a small file (written
// atomically), so a crash can only leave some of today's cap unused, never
// exceed it.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace ricochet {
struct config;
}

namespace ricochet::delivery {

struct shaping_limits {
    unsigned max_connections = 20;
    unsigned max_messages_per_connection = 100;
    unsigned max_messages_per_minute = 0;  // 0: no limit
};

// A destination as shaping sees it: the key its limits are shared under
// (the rule's match, or the domain itself when no rule matches) and the limits.
struct destination {
    std::string key;
    std::string rule;  // the [[shaping]] match that applies, "" for none
    shaping_limits limits;
};

struct shaping_rule {
    std::string match;  // "gmail.com", or "mx:*.google.com" / "mx:.google.com"
    shaping_limits limits;
};

struct source_pool {
    std::string name;
    std::vector<std::string> source_ips;
    std::vector<std::uint64_t> warmup;  // messages per day per IP per destination, day by day
    std::int64_t warmup_start_day = 0;  // days since the epoch (UTC) of day 0
};

// True when a host name falls under an "mx:" pattern ("*.google.com" and
// ".google.com" both match "aspmx.l.google.com"; neither "google.com").
bool mx_matches(std::string_view pattern, std::string_view host);
// The rule for a domain: an exact domain rule first, then the first "mx:"
// rule its first MX host falls under; else the defaults under the domain's own key.
destination destination_for(const std::vector<shaping_rule>& rules, const shaping_limits& defaults,
                            const std::string& domain, const std::string& first_mx);
// "2026-11-30" -> days since 1970-01-01; nullopt when malformed.
std::optional<std::int64_t> parse_day(std::string_view text);

class shaper {
public:
    // rules, pools and defaults from the configuration; state_file: where
    // warm-up reservations are kept ("" keeps them in memory only).
    shaper(std::vector<shaping_rule> rules, std::vector<source_pool> pools, shaping_limits defaults,
           std::int64_t adaptive_interval_ms, std::int64_t rest_ms, std::filesystem::path state_file);
    // Built from [delivery], [[shaping]] (the config's, then its shaping file's) and [[pool]].
    static std::unique_ptr<shaper> from_config(const config& cfg, std::string& error);

    destination find(const std::string& domain, const std::string& first_mx) const {
        return destination_for(rules_, defaults_, domain, first_mx);
    }
    // The same, remembering the answer for key_of_domain (delivery calls this).
    destination find_and_note(const std::string& domain, const std::string& first_mx);
    // What find_and_note last said for a domain (ricochetctl shaping show).
    std::optional<destination> key_of_domain(const std::string& domain) const;
    // The pool a message sends from: the one named (X-Pool, or its
    // campaign's [[campaign]] pool), else delivery.pool, else none (null:
    // the system picks the source address).
    const source_pool* pool(const std::string& name) const;

    struct choice {
        std::string ip;          // "" : no pool, the system's choice
        std::int64_t at_ms = 0;  // send at (<= now: at once); a token is reserved for it
    };
    struct refusal {
        std::int64_t retry_at_ms;  // when to look again
        std::string why;           // for the log
    };
    // An IP and a time to send one message to dest, or why not now (every
    // IP resting or at its cap, or the next token further than max_wait_ms).
    // Reserves the token and counts the message against the warm-up cap.
    std::optional<choice> choose(const destination& dest, const source_pool* pool, std::int64_t now_ms,
                                 std::int64_t max_wait_ms, refusal& why_not);

    // What a reply says about dest from ip: a rate-limited reply halves its
    // rate; a success counts as clean. (Blocklist and reputation: rest().)
    void rate_limited(const destination& dest, const std::string& ip, std::int64_t now_ms);
    // Rests ip for dest (blocklisted, bad reputation): rest_ms, doubling
    // while it goes on, up to an hour. True when the pool has another IP
    // that is not resting for dest.
    bool rest(const destination& dest, const std::string& ip, const source_pool* pool, std::int64_t now_ms);
    void succeeded(const destination& dest, const std::string& ip);

    // For ricochetctl shaping show and /metrics.
    struct ip_state {
        std::string key, ip;
        double rate_per_minute = 0;     // now (0: no limit)
        double ceiling_per_minute = 0;  // configured (0: no limit)
        std::int64_t rested_until_ms = 0;
        std::int64_t warmup_day = -1;   // -1: no warm-up
        std::uint64_t warmup_cap = 0, warmup_sent = 0;
    };
    std::vector<ip_state> state(std::int64_t now_ms) const;
    const std::vector<shaping_rule>& rules() const { return rules_; }
    const std::vector<source_pool>& pools() const { return pools_; }
    const shaping_limits& defaults() const { return defaults_; }

private:
    struct bucket {
        double ceiling = 0;       // per minute; 0: none
        double rate = 0;          // per minute now; 0: none
        double cut_from = 0;      // the rate before the last cut (for a bucket without a ceiling)
        std::int64_t tat = 0;     // GCRA: the theoretical arrival time of the next message
        std::int64_t last_change = 0, last_cut = 0;
        std::int64_t rested_until = 0, rest_backoff = 0;
        std::uint64_t sent_in_minute = 0, prev_minute = 0;
        std::int64_t minute_start = 0;
        std::int64_t queue_tat = 0;  // where the messages refused for the rate come back, one interval apart
        std::string warm;            // the key of its warm-up count (warm_)
    };
    struct warm {
        std::int64_t day = -1;
        std::uint64_t sent = 0, reserved = 0;
    };
    bucket& bucket_of(const destination& d, const std::string& ip);
    void recover(bucket& b, std::int64_t now_ms);
    std::optional<std::uint64_t> cap_today(const source_pool* pool, std::int64_t day) const;
    void load_warmup();
    bool save_warmup(std::int64_t today);
    void prune(std::int64_t now_ms);

    std::vector<shaping_rule> rules_;
    std::vector<source_pool> pools_;
    shaping_limits defaults_;
    std::int64_t adaptive_ms_, rest_ms_;
    std::filesystem::path state_file_;
    mutable std::mutex mu_;
    std::map<std::string, bucket> buckets_;  // key "|" ip
    std::map<std::string, warm> warm_;       // key "|" ip
    std::map<std::string, unsigned> rr_;     // pool "|" key -> next index
    std::map<std::string, destination> seen_;  // domain -> its destination (bounded)
};

}  // namespace ricochet::delivery
