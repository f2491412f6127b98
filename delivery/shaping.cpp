// shaping — see shaping.hpp.
#include "delivery/shaping.hpp"

#include "base/text.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "base/unique_fd.hpp"
#include "config/config.hpp"

namespace ricochet::delivery {
namespace {
constexpr std::int64_t minute_ms = 60000, day_ms = 86400000, max_rest_ms = 3600000;

std::string key_of(const std::string& key, const std::string& ip) { return key + "|" + ip; }
// Warm-up counts per provider: a [[shaping]] rule's key, or "*" for every
// domain without a rule together (one count per IP, not one per small domain).
std::string warm_key(const destination& d, const std::string& ip) { return (d.rule.empty() ? std::string("*") : d.key) + "|" + ip; }
}  // namespace

bool mx_matches(std::string_view pattern, std::string_view host) {
    if (!pattern.empty() && pattern.front() == '*') pattern.remove_prefix(1);
    if (pattern.empty() || pattern.front() != '.') return false;
    std::string h = base::lower(host);
    if (!h.empty() && h.back() == '.') h.pop_back();
    return h.size() > pattern.size() && h.compare(h.size() - pattern.size(), pattern.size(), base::lower(pattern)) == 0;
}

destination destination_for(const std::vector<shaping_rule>& rules, const shaping_limits& defaults,
                            const std::string& domain, const std::string& first_mx) {
    auto with = [&defaults](const shaping_rule& r) {
        destination d{r.match, r.match, r.limits};
        if (!d.limits.max_connections) d.limits.max_connections = defaults.max_connections;
        if (!d.limits.max_messages_per_connection)
            d.limits.max_messages_per_connection = defaults.max_messages_per_connection;
        return d;
    };
    for (auto& r : rules)
        if (r.match == domain) return with(r);
    if (!first_mx.empty())
        for (auto& r : rules)
            if (r.match.rfind("mx:", 0) == 0 && mx_matches(std::string_view(r.match).substr(3), first_mx)) return with(r);
    return {domain, "", defaults};
}

std::optional<std::int64_t> parse_day(std::string_view s) {
    if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
    int y = 0, m = 0, d = 0;
    for (int i : {0, 1, 2, 3}) y = y * 10 + (s[i] - '0');
    m = (s[5] - '0') * 10 + (s[6] - '0');
    d = (s[8] - '0') * 10 + (s[9] - '0');
    if (m < 1 || m > 12 || d < 1 || d > 31) return std::nullopt;
    // Days from civil (H. Hinnant's algorithm).
    y -= m <= 2;
    const int era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + static_cast<unsigned>(d) - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return std::int64_t(era) * 146097 + std::int64_t(doe) - 719468;
}

shaper::shaper(std::vector<shaping_rule> rules, std::vector<source_pool> pools, shaping_limits defaults,
               std::int64_t adaptive_interval_ms, std::int64_t rest_ms, std::filesystem::path state_file)
    : rules_(std::move(rules)),
      pools_(std::move(pools)),
      defaults_(defaults),
      adaptive_ms_(std::max<std::int64_t>(adaptive_interval_ms, 1000)),
      rest_ms_(std::max<std::int64_t>(rest_ms, 1000)),
      state_file_(std::move(state_file)) {
    load_warmup();
}

std::unique_ptr<shaper> shaper::from_config(const config& cfg, std::string& error) {
    std::vector<shaping_rule> rules;
    for (auto& s : cfg.shaping)
        rules.push_back({s.match, {s.max_connections, s.max_messages_per_connection, s.max_messages_per_minute}});
    std::vector<source_pool> pools;
    for (auto& p : cfg.pools) {
        source_pool sp{p.name, p.source_ips, p.warmup, 0};
        if (!p.warmup_start.empty()) {
            auto d = parse_day(p.warmup_start);
            if (!d) {
                error = "pool " + p.name + ": warmup_start: not a date: " + p.warmup_start;
                return nullptr;
            }
            sp.warmup_start_day = *d;
        }
        pools.push_back(std::move(sp));
    }
    shaping_limits defaults{cfg.delivery.max_connections_per_domain, cfg.delivery.max_messages_per_connection, 0};
    auto dir = cfg.server.spool_dir / "shaping";
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {  // (like the spool's own directories: not world-readable)
        error = "cannot create " + dir.string() + ": " + std::strerror(errno);
        return nullptr;
    }
    return std::make_unique<shaper>(std::move(rules), std::move(pools), defaults,
                                    std::int64_t(cfg.delivery.adaptive_interval.count()) * 1000,
                                    std::int64_t(cfg.bounce.destination_backoff.count()) * 1000, dir / "warmup");
}

destination shaper::find_and_note(const std::string& domain, const std::string& first_mx) {
    auto d = find(domain, first_mx);
    std::lock_guard lk(mu_);
    auto it = seen_.find(domain);
    if (it != seen_.end() && it->second.key == d.key) return d;  // (the common case: nothing to write)
    if (seen_.size() >= 100000) seen_.clear();                  // bounded under a spray of domains
    seen_[domain] = d;
    return d;
}

std::optional<destination> shaper::key_of_domain(const std::string& domain) const {
    std::lock_guard lk(mu_);
    auto it = seen_.find(domain);
    if (it == seen_.end()) return std::nullopt;
    return it->second;
}

const source_pool* shaper::pool(const std::string& name) const {
    for (auto& p : pools_)
        if (p.name == name) return &p;
    return nullptr;
}

shaper::bucket& shaper::bucket_of(const destination& d, const std::string& ip) {
    auto [it, fresh] = buckets_.try_emplace(key_of(d.key, ip));
    auto& b = it->second;
    if (fresh) b.warm = warm_key(d, ip);
    double ceiling = d.limits.max_messages_per_minute;
    if (fresh) {
        b.ceiling = b.rate = ceiling;
    } else if (b.ceiling != ceiling) {  // (a key whose rule changed: start from the new figure)
        b.ceiling = b.rate = ceiling;
    }
    return b;
}

void shaper::recover(bucket& b, std::int64_t now) {
    if (b.rate <= 0) return;                              // no limit now
    if (b.ceiling > 0 && b.rate >= b.ceiling) return;     // at its maximum
    if (now - b.last_change < adaptive_ms_) return;
    std::int64_t steps = (now - b.last_change) / adaptive_ms_;
    double top = b.ceiling > 0 ? b.ceiling : b.cut_from;
    double step = std::max(1.0, top / 10);
    b.rate += step * static_cast<double>(steps);
    b.last_change += steps * adaptive_ms_;
    if (b.ceiling > 0) b.rate = std::min(b.rate, b.ceiling);
    else if (b.rate >= b.cut_from) b.rate = 0;  // back to no limit
}

std::optional<std::uint64_t> shaper::cap_today(const source_pool* pool, std::int64_t day) const {
    if (!pool || pool->warmup.empty()) return std::nullopt;
    std::int64_t n = std::max<std::int64_t>(0, day - pool->warmup_start_day);
    if (n >= static_cast<std::int64_t>(pool->warmup.size())) return std::nullopt;  // warmed up
    return pool->warmup[static_cast<std::size_t>(n)];
}

std::optional<shaper::choice> shaper::choose(const destination& dest, const source_pool* pool, std::int64_t now,
                                             std::int64_t max_wait_ms, refusal& why_not) {
    std::lock_guard lk(mu_);
    prune(now);
    static const std::vector<std::string> system_choice{""};
    const auto& ips = pool ? pool->source_ips : system_choice;
    auto& rr = rr_[(pool ? pool->name : std::string()) + "|" + dest.key];
    std::int64_t day = now / day_ms;
    auto cap = cap_today(pool, day);
    std::int64_t best_at = 0, retry_at = 0;
    std::size_t best = ips.size();
    std::string why;
    for (std::size_t k = 0; k < ips.size(); ++k) {
        std::size_t i = (rr + k) % ips.size();
        auto& b = bucket_of(dest, ips[i]);
        auto note = [&](std::int64_t when, const std::string& what) {
            if (!retry_at || when < retry_at) retry_at = when;
            if (why.empty()) why = what;
        };
        if (b.rested_until > now) {
            note(b.rested_until, (ips[i].empty() ? std::string("the destination") : ips[i]) + " rests for " + dest.key);
            continue;
        }
        if (cap) {
            auto& w = warm_[warm_key(dest, ips[i])];
            if (w.day != day) w = {day, 0, 0};
            if (w.sent >= *cap) {
                note((day + 1) * day_ms, ips[i] + " reached today's warm-up cap of " + std::to_string(*cap) + " for " + dest.key);
                continue;
            }
        }
        recover(b, now);
        std::int64_t interval = b.rate > 0 ? static_cast<std::int64_t>(minute_ms / b.rate) : 0;
        if (b.tat > now + interval + max_rest_ms) b.tat = now;  // the clock stepped back: start again from now
        std::int64_t at = b.rate > 0 ? std::max(now, b.tat) : now;
        if (at - now > max_wait_ms) {
            // Those refused come back one interval apart, in their turn, not all at once.
            b.queue_tat = std::max(b.queue_tat, at) + interval;
            note(b.queue_tat - interval - max_wait_ms / 2,
                 "rate of " + dest.key + " (" + std::to_string(static_cast<int>(b.rate)) + "/min)");
            continue;
        }
        if (best == ips.size() || at < best_at) {
            best = i;
            best_at = at;
        }
    }
    if (best == ips.size()) {
        why_not = {retry_at ? retry_at : now + minute_ms, why};
        return std::nullopt;
    }
    if (cap) {
        auto& w = warm_[warm_key(dest, ips[best])];
        if (w.sent + 1 > w.reserved) {
            // Reserved ahead, a fiftieth of the cap at a time, and on disk
            // before the message goes: after a crash the reservation counts
            // as sent, so the cap is never exceeded. Not on disk: not sent.
            auto before = w.reserved;
            w.reserved = std::min<std::uint64_t>(*cap, w.sent + std::max<std::uint64_t>(1, *cap / 50));
            if (!save_warmup(day)) {
                w.reserved = before;
                why_not = {now + minute_ms, "the warm-up count cannot be written to " + state_file_.string()};
                return std::nullopt;
            }
        }
        ++w.sent;
    }
    rr = static_cast<unsigned>((best + 1) % ips.size());
    auto& b = bucket_of(dest, ips[best]);
    if (b.rate > 0) b.tat = best_at + static_cast<std::int64_t>(minute_ms / b.rate);
    if (now - b.minute_start >= minute_ms) {
        b.prev_minute = now - b.minute_start < 2 * minute_ms ? b.sent_in_minute : 0;
        b.minute_start = now;
        b.sent_in_minute = 0;
    }
    ++b.sent_in_minute;
    return choice{ips[best], best_at};
}

void shaper::rate_limited(const destination& dest, const std::string& ip, std::int64_t now) {
    std::lock_guard lk(mu_);
    auto& b = bucket_of(dest, ip);
    recover(b, now);  // (what the rate is now, before it is cut)
    // One cut per stretch: the replies of every connection in flight at the
    // moment of the throttle say the same thing once.
    if (b.last_cut && now - b.last_cut < adaptive_ms_) {
        b.last_change = now;
        return;
    }
    if (b.rate <= 0) {  // no limit yet: start from what was sent in the last minute
        // What went out in the last minute: this minute's count and the part
        // of the previous one still inside it.
        double into = static_cast<double>(now - b.minute_start) / minute_ms;
        double recent = into < 1 ? static_cast<double>(b.sent_in_minute) + static_cast<double>(b.prev_minute) * (1 - into)
                       : into < 2 ? static_cast<double>(b.sent_in_minute) * (2 - into)
                                  : 1.0;
        b.cut_from = std::max(2.0, recent);
        b.rate = b.cut_from;
    } else if (b.ceiling <= 0) {
        b.cut_from = std::max(b.cut_from, b.rate);
    }
    b.rate = std::max(1.0, b.rate / 2);
    b.last_change = b.last_cut = now;
    b.tat = std::max(b.tat, now + static_cast<std::int64_t>(minute_ms / b.rate));  // the next one waits its turn
}

bool shaper::rest(const destination& dest, const std::string& ip, const source_pool* pool, std::int64_t now) {
    std::lock_guard lk(mu_);
    auto& b = bucket_of(dest, ip);
    // The replies of connections already in flight when the rest began do
    // not make it longer; one after it ended does (twice as long).
    if (b.rested_until <= now) {
        b.rest_backoff = b.rest_backoff ? std::min(2 * b.rest_backoff, max_rest_ms) : rest_ms_;
        b.rested_until = now + b.rest_backoff;
    }
    if (!pool) return false;
    for (auto& other : pool->source_ips)
        if (other != ip && bucket_of(dest, other).rested_until <= now) return true;
    return false;
}

void shaper::succeeded(const destination& dest, const std::string& ip) {
    std::lock_guard lk(mu_);
    bucket_of(dest, ip).rest_backoff = 0;
}

std::vector<shaper::ip_state> shaper::state(std::int64_t now) const {
    std::lock_guard lk(mu_);
    std::vector<ip_state> out;
    std::int64_t day = now / day_ms;
    bool warmed = std::any_of(pools_.begin(), pools_.end(), [](auto& p) { return !p.warmup.empty(); });
    for (auto& [k, b] : buckets_) {
        // A destination without a limit, a rest or a warm-up says nothing: not listed.
        if (b.ceiling <= 0 && b.rate <= 0 && b.rested_until <= now && !warmed) continue;
        auto bar = k.rfind('|');
        ip_state s{k.substr(0, bar), k.substr(bar + 1), b.rate, b.ceiling, b.rested_until > now ? b.rested_until : 0};
        // The rate shown is the one the next message gets (a recovery not yet applied included).
        bucket copy = b;
        const_cast<shaper*>(this)->recover(copy, now);
        s.rate_per_minute = copy.rate;
        for (auto& p : pools_) {
            if (std::find(p.source_ips.begin(), p.source_ips.end(), s.ip) == p.source_ips.end()) continue;
            if (auto cap = cap_today(&p, day)) {
                s.warmup_day = std::max<std::int64_t>(0, day - p.warmup_start_day);
                s.warmup_cap = *cap;
                if (auto it = warm_.find(b.warm); it != warm_.end() && it->second.day == day) s.warmup_sent = it->second.sent;
            }
        }
        out.push_back(std::move(s));
    }
    return out;
}

void shaper::load_warmup() {
    if (state_file_.empty()) return;
    std::ifstream in(state_file_);
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::int64_t day;
        std::string k;
        std::uint64_t reserved;
        if (!(ls >> day >> k >> reserved)) continue;
        // What was reserved counts as sent: the cap holds whatever happened.
        warm_[k] = {day, reserved, reserved};
    }
}

bool shaper::save_warmup(std::int64_t today) {
    if (state_file_.empty()) return true;
    std::string text;
    for (auto it = warm_.begin(); it != warm_.end();) {
        if (it->second.day != today) {  // (yesterday's counts are of no use)
            it = warm_.erase(it);
            continue;
        }
        if (it->second.reserved)
            text += std::to_string(it->second.day) + " " + it->first + " " + std::to_string(it->second.reserved) + "\n";
        ++it;
    }
    return !base::replace_file(state_file_, text);
}

void shaper::prune(std::int64_t now) {
    // Bounded under a spray of domains: a bucket that holds nothing (no
    // rate, no rest, nothing due) is dropped; it would be made again as new.
    if (buckets_.size() < 20000) return;
    for (auto it = buckets_.begin(); it != buckets_.end();) {
        auto& b = it->second;
        bool idle = b.ceiling <= 0 && b.rate <= 0 && b.rested_until <= now && b.tat <= now && !b.rest_backoff;
        it = idle ? buckets_.erase(it) : std::next(it);
    }
    if (rr_.size() > 20000) rr_.clear();
}

}  // namespace ricochet::delivery
