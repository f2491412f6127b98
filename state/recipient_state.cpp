// recipient_state — see recipient_state.hpp.
#include "state/recipient_state.hpp"

#include <map>

#include <algorithm>

#include "events/event_json.hpp"
#include "events/make.hpp"
#include "state/backend.hpp"
#include "state/pg_storage.hpp"
#include "state/sqlite_storage.hpp"

namespace ricochet::state {
using events::event;
using events::event_type;

namespace {
std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return c < 0x80 ? std::tolower(c) : c; });
    return s;
}
}  // namespace

bool kept_as_decision(const event& e) {
    switch (e.type) {
        case event_type::queued:
        case event_type::delivered:
        case event_type::deferred:
        case event_type::bounced:
        case event_type::expired:
        case event_type::complaint: return true;
        default: return false;
    }
}

recipient_state::recipient_state(std::unique_ptr<storage> s, bounce::status_policy p)
    : store_(std::move(s)), policy_(std::move(p)) {}

// What one decision does to its address; false (with error) when the
// storage failed, so the whole batch is rolled back.
bool recipient_state::apply(const event& e, std::vector<event>& changes, std::string& error) {
    if (e.type == event_type::queued) {
        if (!store_->add_message(e.queue_id, e.campaign, e.sender, error)) return false;
        return e.index < 0 || store_->add_message_recipient(e.queue_id, e.index, lower(e.recipient), error);
    }
    bool failure = e.type == event_type::bounced || e.type == event_type::expired;
    if (!failure && e.type != event_type::complaint) return true;
    std::string addr = lower(e.recipient);
    auto loaded = store_->load_recipient(addr, error);
    if (!error.empty()) return false;
    auto rec = loaded.value_or(bounce::address_record{addr});
    auto before = rec.status;
    std::string reason;
    if (e.type == event_type::complaint) {
        rec.status = bounce::address_status::unsubscribed;
        reason = "complaint (" + e.reply + ")";
    } else {
        auto k = bounce::parse_kind(e.kind);
        auto c = bounce::parse_category(e.category);
        if (!k || !c) return true;  // not a reading this version knows: kept, not counted
        if (!e.queue_id.empty()) {
            auto fresh = store_->add_final_failure(e.queue_id, addr, error);
            if (!fresh) return false;
            if (!*fresh) return true;  // this message's failure is counted already
        }
        if (!bounce::apply_final_failure(rec, *k, *c, e.reply, e.time_ms, policy_)) return true;
        if (!store_->mark_message_bounced(e.queue_id, e.campaign, error)) return false;
        reason = std::string(to_string(e.type)) + ": " + e.kind + "/" + e.category;
    }
    if (!store_->save_recipient(rec, e.time_ms, error)) return false;
    if (rec.status != before) {
        changes.push_back(events::status_changed(rec, before, reason, e.time_ms));
        if (e.type == event_type::complaint) {  // the reading that moved it
            changes.back().kind = e.kind;
            changes.back().category = e.category;
        }
        if (rec.status == bounce::address_status::unsubscribed) {
            changes.push_back(events::unsubscribed(rec.address, e.campaign, e.queue_id,
                                                   e.type == event_type::complaint ? "complaint" : e.rule, e.time_ms));
            changes.back().sync = e.sync;  // a complaint came back later, like its cause
        }
    }
    return true;
}

std::vector<event> recipient_state::record(const std::vector<event>& evs, std::string& error,
                                          std::vector<breaker::delta>* counted, const std::vector<std::string>* tokens,
                                          std::size_t* skipped) {
    if (skipped) *skipped = 0;
    std::vector<const event*> kept;
    for (auto& e : evs)
        if (kept_as_decision(e)) kept.push_back(&e);
    error.clear();
    if (kept.empty()) return {};
    std::lock_guard lk(mu_);
    if (!store_->begin(error)) return {};
    std::vector<event> changes;
    bool ok = forget_.empty() || store_->forget_batches(forget_, error);
    std::vector<const std::string*> kept_tokens;  // each kept event's batch token, when given
    if (tokens && tokens->size() == evs.size()) {
        // Claim each batch's token; leave out the batches recorded before.
        std::map<std::string, bool> fresh;
        std::int64_t now = 0;
        for (auto& e : evs) now = std::max(now, e.time_ms);
        for (auto& t : *tokens) {
            if (t.empty() || fresh.count(t) || !ok) continue;
            auto f = store_->claim_batch(t, now, error);
            ok = f.has_value();
            fresh[t] = f.value_or(false);
        }
        if (ok) {
            kept.clear();
            for (std::size_t i = 0; i < evs.size(); ++i) {
                if (!kept_as_decision(evs[i])) continue;
                if ((*tokens)[i].empty() || fresh[(*tokens)[i]]) {
                    kept.push_back(&evs[i]);
                    kept_tokens.push_back(&(*tokens)[i]);
                } else if (skipped) {
                    ++*skipped;
                }
            }
            // Recorded before, but the attempt that did it heard of no
            // success and published nothing: its status changes are
            // published now, from where that attempt kept them.
            for (auto& [t, f] : fresh) {
                if (f) continue;
                auto lines = store_->batch_changes(t);
                for (std::size_t at = 0; at < lines.size();) {
                    auto nl = lines.find('\n', at);
                    if (nl == std::string::npos) nl = lines.size();
                    auto j = nlohmann::json::parse(lines.substr(at, nl - at), nullptr, false);
                    if (auto e = j.is_discarded() ? std::nullopt : events::from_json(j)) changes.push_back(std::move(*e));
                    at = nl + 1;
                }
            }
        }
        if (ok && kept.empty()) {  // all of it was recorded before
            ok = store_->commit(error);
            if (!ok) {
                store_->rollback();
                return {};
            }
            forget_.clear();
            return changes;
        }
    }
    ok = ok && store_->add_decisions(kept, error);
    if (ok) {
        std::vector<std::string> addresses;
        for (auto* e : kept)
            if (e->type == event_type::bounced || e->type == event_type::expired || e->type == event_type::complaint)
                addresses.push_back(lower(e->recipient));
        ok = store_->lock_addresses(addresses, error);
    }
    std::map<std::string, std::string> made;  // token -> the status changes its events made, as log lines
    for (std::size_t i = 0; i < kept.size() && ok; ++i) {
        auto before = changes.size();
        ok = apply(*kept[i], changes, error);
        if (ok && i < kept_tokens.size() && !kept_tokens[i]->empty())
            for (auto k = before; k < changes.size(); ++k) events::append_json_line(made[*kept_tokens[i]], changes[k], true);
    }
    for (auto it = made.begin(); ok && it != made.end(); ++it) ok = store_->keep_batch_changes(it->first, it->second, error);
    std::vector<breaker::delta> ds;
    if (ok && breaker_) {
        std::map<std::string, std::string> domain_of;  // queue id -> sender domain, once per message in a batch
        for (auto* e : kept) {
            std::string domain;
            if (breaker_->by_sender_domain && e->type != event_type::queued && !e->queue_id.empty()) {
                // The envelope sender's domain, from the message's row (written with its `queued` events).
                auto [it, fresh] = domain_of.try_emplace(e->queue_id);
                if (fresh) {
                    auto sender = store_->sender_of(e->queue_id);
                    if (sender && sender->find('@') != std::string::npos)
                        it->second = lower(sender->substr(sender->rfind('@') + 1));
                }
                domain = it->second;
            }
            breaker::count_event(*e, domain, *breaker_, ds);
        }
        // One row per scope and bucket for the whole batch.
        std::map<std::pair<std::string, std::int64_t>, breaker::counts> merged;
        for (auto& d : ds) merged[{d.key, d.bucket}] += d.c;
        std::vector<breaker::delta> rows;
        for (auto& [k, c] : merged) rows.push_back({k.first, k.second, c});
        if (!rows.empty()) ok = store_->add_window_counts(rows, error);
        ds = std::move(rows);
    }
    if (!ok || !store_->commit(error)) {
        store_->rollback();
        return {};
    }
    forget_.clear();  // committed: those tokens are gone
    if (counted) *counted = std::move(ds);
    return changes;
}

void recipient_state::forget_batches(const std::vector<std::string>& tokens) {
    std::lock_guard lk(mu_);
    for (auto& t : tokens)
        if (!t.empty() && std::find(forget_.begin(), forget_.end(), t) == forget_.end()) forget_.push_back(t);
}

bool recipient_state::set_status(const std::string& address, bounce::address_status s, const std::string& why,
                                 std::int64_t now_ms, std::vector<event>& changes, std::string& error,
                                 const std::string& campaign) {
    std::lock_guard lk(mu_);
    error.clear();
    std::string addr = lower(address);
    // Read and written in one transaction: with PostgreSQL the read takes
    // the address's lock, so another node's change to it waits, and is not
    // overwritten by a status decided on what it was before.
    if (!store_->begin(error)) return false;
    auto loaded = store_->load_recipient(addr, error);
    if (!error.empty()) {
        store_->rollback();
        return false;
    }
    auto rec = loaded.value_or(bounce::address_record{addr});
    if (why == "engage" && rec.status == bounce::address_status::unsubscribed) {
        // An open or click does not undo an unsubscribe or a complaint; only an operator's clear does.
        store_->rollback();
        error = addr + " is unsubscribed: only `recipient clear` makes it active again";
        return false;
    }
    auto before = rec.status;
    // The recipient asking again (a second click, a retried POST): already
    // done, nothing to write (a valid token must not grow the history).
    if ((why == "one-click" || why == "mailto") && before == s) {
        store_->rollback();
        return true;
    }
    rec.status = s;
    if (s == bounce::address_status::active) {  // the operator vouches for it: start counting again
        rec.bounce_count = 0;
        rec.first_bounce_ms = rec.last_bounce_ms = 0;
    }
    event admin;
    admin.type = event_type::admin;
    admin.time_ms = now_ms;
    admin.recipient = addr;
    admin.rule = why;
    admin.campaign = campaign;
    admin.reply = "status set to " + std::string(bounce::to_string(s));
    if (!store_->save_recipient(rec, now_ms, error) || !store_->add_decisions({&admin}, error) ||
        !store_->commit(error)) {
        store_->rollback();
        return false;
    }
    bool own = why == "one-click" || why == "mailto";  // the recipient asked, not an operator
    if (before != s)
        changes.push_back(events::status_changed(rec, before, (own ? "unsubscribed via " : "admin: ") + why, now_ms));
    if (before != s && s == bounce::address_status::unsubscribed)
        changes.push_back(events::unsubscribed(addr, campaign, "", why == "unsubscribe" ? "admin" : why, now_ms));
    return true;
}

int recipient_state::node_number(const std::string& name, std::string& error) {
    std::lock_guard lk(mu_);
    error.clear();
    return store_->node_number(name, error);
}
std::vector<std::string> recipient_state::nodes_with_another_key(const std::string& name, const std::string& key,
                                                                 std::string& error) {
    std::lock_guard lk(mu_);
    error.clear();
    return store_->nodes_with_another_key(name, key, error);
}
std::string recipient_state::health() const {
    std::lock_guard lk(mu_);
    return store_->health();
}
bool recipient_state::sync(std::string& error) {
    // Not under mu_: a sync may take a while, and the storage's own is
    // thread-safe (storage::sync).
    error.clear();
    return store_->sync(error);
}

std::optional<bounce::address_record> recipient_state::get(const std::string& address) const {
    std::lock_guard lk(mu_);
    std::string error;  // for display: a failed read shows as no record
    return store_->load_recipient(lower(address), error);
}
std::vector<event> recipient_state::history(const std::string& address, int limit) const {
    std::lock_guard lk(mu_);
    return store_->history(lower(address), limit);
}
std::vector<bounce::address_record> recipient_state::list(bounce::address_status s, const std::string& after,
                                                          std::size_t limit) const {
    std::lock_guard lk(mu_);
    return store_->recipients_with(s, after, limit);
}
std::size_t recipient_state::add_suppressions(const std::vector<suppression_entry>& es, std::string& error) {
    constexpr std::size_t chunk = 10000;
    std::size_t done = 0;
    error.clear();
    while (done < es.size()) {
        std::vector<suppression_entry> part(es.begin() + static_cast<std::ptrdiff_t>(done),
                                            es.begin() + static_cast<std::ptrdiff_t>(std::min(es.size(), done + chunk)));
        std::lock_guard lk(mu_);
        if (!store_->begin(error)) return done;
        if (!store_->add_suppressions(part, error) || !store_->commit(error)) {
            store_->rollback();
            return done;
        }
        done += part.size();
    }
    return done;
}
std::optional<bool> recipient_state::remove_suppression(const std::string& entry, std::string& error) {
    std::lock_guard lk(mu_);
    error.clear();
    return store_->remove_suppression(entry, error);
}
std::vector<suppression_entry> recipient_state::suppressions(const std::string& after, std::size_t limit) const {
    std::lock_guard lk(mu_);
    return store_->suppressions(after, limit);
}
std::vector<breaker::delta> recipient_state::window_counts(std::int64_t since_bucket) const {
    std::lock_guard lk(mu_);
    return store_->window_counts(since_bucket);
}
std::vector<std::pair<std::string, breaker::scope_state>> recipient_state::scopes() const {
    std::lock_guard lk(mu_);
    return store_->scopes();
}
bool recipient_state::save_scope(const std::string& key, const breaker::scope_state& s, std::string& error) {
    std::lock_guard lk(mu_);
    error.clear();
    return store_->save_scope(key, s, error);
}
void recipient_state::load_breaker(breaker::monitor& m, std::int64_t now_ms) const {
    std::lock_guard lk(mu_);
    for (auto& d : store_->window_counts(m.cfg().window_start(now_ms))) m.load_counts(d.key, d.bucket, d.c);
    for (auto& [k, s] : store_->scopes()) m.load_state(k, s);
}
bool recipient_state::prune(std::int64_t before_ms, const std::string& id_before, std::size_t batch, prune_counts& out,
                            std::string& error) {
    std::lock_guard lk(mu_);
    error.clear();
    if (!store_->begin(error)) return false;
    if (!store_->prune(before_ms, id_before, batch, out, error) || !store_->commit(error)) {
        store_->rollback();
        out = {};
        return false;
    }
    return true;
}
void recipient_state::reclaim_space() {
    std::lock_guard lk(mu_);
    store_->reclaim_space();
}
bool recipient_state::prune_window_counts(std::int64_t before_bucket, std::string& error) {
    std::lock_guard lk(mu_);
    error.clear();
    return store_->prune_window_counts(before_bucket, error);
}
std::optional<bool> recipient_state::message_bounced(const std::string& queue_id) const {
    std::lock_guard lk(mu_);
    return store_->message_bounced(queue_id);
}
std::optional<std::string> recipient_state::recipient_of(const std::string& queue_id, int index) const {
    std::lock_guard lk(mu_);
    return store_->recipient_of(queue_id, index);
}
std::string recipient_state::campaign_of(const std::string& queue_id) const {
    std::lock_guard lk(mu_);
    return store_->campaign_of(queue_id);
}
std::optional<std::string> recipient_state::sender_of(const std::string& queue_id) const {
    std::lock_guard lk(mu_);
    return store_->sender_of(queue_id);
}
bool recipient_state::final_failure_known(const std::string& queue_id, const std::string& recipient) const {
    std::lock_guard lk(mu_);
    return store_->final_failure_known(queue_id, lower(recipient));
}
std::vector<stats_row> recipient_state::stats(const std::string& group_by, const std::string& campaign,
                                              const std::string& domain, std::int64_t since_ms) const {
    std::lock_guard lk(mu_);
    return store_->stats(group_by, campaign, lower(domain), since_ms);
}
std::vector<series_row> recipient_state::series(std::int64_t bucket_ms, const std::string& group_by,
                                                const std::string& campaign, const std::string& domain,
                                                std::int64_t since_ms) const {
    std::lock_guard lk(mu_);
    return store_->series(bucket_ms, group_by, campaign, lower(domain), since_ms);
}
std::vector<reply_row> recipient_state::replies(const std::string& domain, std::int64_t since_ms,
                                                std::size_t limit) const {
    std::lock_guard lk(mu_);
    return store_->replies(lower(domain), since_ms, limit);
}

std::unique_ptr<recipient_state> open_state(const std::string& url, bounce::status_policy policy, bool readonly,
                                            std::string& error) {
    std::unique_ptr<storage> s;
    switch (backend_of(url, error)) {
        case backend::sqlite: s = sqlite_storage::open(url.substr(url.find(':') + 1), readonly, error); break;
        case backend::postgresql: s = pg_storage::open(url, readonly, error); break;
        case backend::none: break;
    }
    if (!s) return nullptr;
    return std::make_unique<recipient_state>(std::move(s), std::move(policy));
}

}  // namespace ricochet::state
