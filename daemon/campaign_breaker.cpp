// campaign_breaker — see campaign_breaker.hpp.
#include "daemon/campaign_breaker.hpp"

#include "config/config.hpp"
#include "delivery/delivery.hpp"
#include "events/publisher.hpp"
#include "queue/clock.hpp"
#include "queue/logger.hpp"
#include "queue/queue_admin.hpp"
#include "queue/schedule.hpp"
#include "queue/spool.hpp"
#include "state/recipient_state.hpp"

namespace ricochet::daemon {
using nlohmann::json;

namespace {
std::shared_ptr<spdlog::logger> log() {
    static auto l = named_logger("breaker");
    return l;
}
queue::selector scope_selector(const std::string& key) {
    queue::selector sel;
    if (!key.empty() && key.front() == '@') sel.sender_domain = key.substr(1);
    else sel.campaign = key;
    return sel;
}
}  // namespace

campaign_breaker::campaign_breaker(const config& cfg, breaker::monitor& m, state::recipient_state& st,
                                   queue::spool& spool, queue::schedule& due, events::publisher& pub)
    : cfg_(cfg), m_(m), st_(st), spool_(spool), due_(due), pub_(pub) {}

campaign_breaker::~campaign_breaker() { stop(); }

std::string campaign_breaker_key(std::string key) {
    if (!key.empty() && key.front() == '@')
        for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return key;
}

void campaign_breaker::start() {
    auto now = now_ms();
    prune();
    st_.load_breaker(m_, now);
    for (auto& k : m_.keys(now))
        if (auto s = m_.state_of(k); s.st == breaker::state::paused) log()->warn("{}", breaker::paused_text(k, s));
    thread_ = std::thread([this] { worker(); });
}

void campaign_breaker::stop() {
    {
        std::lock_guard lk(mu_);
        if (stopping_ && !thread_.joinable()) return;
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}


bool campaign_breaker::save(const std::string& key) {
    std::string error;
    if (st_.save_scope(key, m_.state_of(key), error)) return true;
    log()->error("{}: cannot keep its state in the store: {} (it holds until the daemon stops)", key, error);
    return false;
}

namespace {
// An operator's pause or resume that holds now but may not survive a
// restart: not reported done ("unavailable": the API answers 503).
json not_kept(const std::string& state, const std::string& done) {
    return {{"ok", false},
            {"unavailable", true},
            {"state", state},
            {"error", done + " now, but the state store could not keep it (see the daemon's log); it holds until "
                              "the daemon stops"}};
}
}  // namespace

std::vector<events::event> campaign_breaker::on_counts(const std::vector<breaker::delta>& ds, std::int64_t now_ms) {
    std::vector<events::event> out;
    if (ds.empty()) return out;
    for (auto& t : m_.apply(ds, now_ms)) {
        save(t.key);
        out.push_back(breaker::transition_event(t, m_.window(t.key, now_ms), now_ms));
        if (t.to == breaker::state::paused) {
            log()->warn("{}: holding its queued messages", breaker::paused_text(t.key, m_.state_of(t.key)));
            enqueue([this, key = t.key] { hold_scope(key); });
        } else {
            log()->warn("{} warned: {}", breaker::scope_name(t.key), t.reason);
        }
    }
    return out;
}

bool campaign_breaker::kept_again(const std::string& key) {
    if (m_.state_of(key).since_ms == 0) return true;  // never changed: nothing to keep
    std::string error;
    if (save(key) && st_.sync(error)) return true;
    if (!error.empty()) log()->error("{}: cannot sync its state in the store: {}", key, error);
    return false;
}

json campaign_breaker::pause(const std::string& given) {
    auto key = campaign_breaker_key(given);
    if (key.empty() || key == "@") return {{"ok", false}, {"error", "need a campaign ID or @sender.domain"}};
    auto now = now_ms();
    auto t = m_.pause(key, now);
    // Nothing changes here, but an earlier pause may have held without
    // being kept (a 503): asked again, it is written and synced now.
    if (!t) return kept_again(key) ? json{{"ok", true}, {"state", "paused"}, {"changed", false}} : not_kept("paused", "paused");
    bool kept = save(key);
    // Recorded and synced (the sync covers the save before it too).
    kept = pub_.publish_now({breaker::transition_event(*t, m_.window(key, now), now)}) && kept;
    log()->warn("{} paused by an operator", breaker::scope_name(key));
    enqueue([this, key] { hold_scope(key); });
    if (!kept) return not_kept("paused", "paused");
    return {{"ok", true}, {"state", "paused"}, {"changed", true}};
}

json campaign_breaker::resume(const std::string& given) {
    auto key = campaign_breaker_key(given);
    if (key.empty() || key == "@") return {{"ok", false}, {"error", "need a campaign ID or @sender.domain"}};
    auto now = now_ms();
    auto t = m_.resume(key, now);
    if (!t) return kept_again(key) ? json{{"ok", true}, {"state", "ok"}, {"changed", false}} : not_kept("ok", "resumed");
    bool kept = save(key);
    kept = pub_.publish_now({breaker::transition_event(*t, m_.window(key, now), now)}) && kept;
    log()->info("{} resumed: its held messages are released", breaker::scope_name(key));
    enqueue([this, key] { release_scope(key); });
    if (!kept) return not_kept("ok", "resumed");
    return {{"ok", true}, {"state", "ok"}, {"changed", true}};
}

void campaign_breaker::remote_change(const std::string& key) {
    enqueue([this, key] {
        for (auto& [k, s] : st_.scopes()) {
            if (!key.empty() && k != key) continue;
            auto before = m_.state_of(k);
            if (before.st == s.st && before.since_ms == s.since_ms) continue;  // ours, or known already
            m_.load_state(k, s);
            log()->warn("{} is {} (changed on another node{})", breaker::scope_name(k), breaker::to_string(s.st),
                        s.reason.empty() ? "" : ": " + s.reason);
            if (s.st == breaker::state::paused) hold_scope(k);
            else if (before.st == breaker::state::paused) release_scope(k);
        }
    });
}

void campaign_breaker::enqueue(std::function<void()> job) {
    {
        std::lock_guard lk(mu_);
        jobs_.push_back(std::move(job));
    }
    cv_.notify_all();
}

void campaign_breaker::prune() {
    std::string error;
    if (!st_.prune_window_counts(m_.cfg().window_start(now_ms()) - m_.cfg().bucket_ms(), error))
        log()->warn("cannot prune old breaker counts: {}", error);
}

void campaign_breaker::worker() {
    auto next_prune = std::chrono::steady_clock::now() + std::chrono::hours(1);
    for (;;) {
        std::function<void()> job;
        {
            std::unique_lock lk(mu_);
            cv_.wait_until(lk, next_prune, [&] { return stopping_ || !jobs_.empty(); });
            if (stopping_) return;
            if (!jobs_.empty()) {
                job = std::move(jobs_.front());
                jobs_.pop_front();
            }
        }
        if (job) job();
        if (std::chrono::steady_clock::now() >= next_prune) {
            prune();
            next_prune = std::chrono::steady_clock::now() + std::chrono::hours(1);
        }
    }
}

void campaign_breaker::hold_scope(const std::string& key) {
    if (m_.state_of(key).st != breaker::state::paused) return;  // resumed meanwhile
    auto res = queue::apply_admin(spool_, &pub_, queue::admin_op::hold, scope_selector(key));
    log()->info("{}: {} queued message(s) held{}", breaker::scope_name(key), res.ids.size(),
                res.error.empty() ? "" : " (" + res.error + ")");
}

void campaign_breaker::release_scope(const std::string& key) {
    if (m_.state_of(key).st == breaker::state::paused) return;  // paused again meanwhile
    auto res = queue::apply_admin(spool_, &pub_, queue::admin_op::release, scope_selector(key));
    auto now = now_ms();
    for (auto& id : res.ids) due_.add(id, now);
    if (delivery_ && !res.ids.empty()) delivery_->wake();
    log()->info("{}: {} held message(s) released", breaker::scope_name(key), res.ids.size());
}


}  // namespace ricochet::daemon
