// memory_storage — a storage backend in plain maps, for tests: the recipient
// state's rules run against it exactly as against SQLite, so a rule that
// only held because of SQLite would show here. Transactions are copies.
#pragma once
#include <algorithm>
#include <map>
#include <tuple>
#include <set>

#include "state/storage.hpp"

namespace ricochet::state::fake {

class memory_storage final : public storage {
public:
    bool fail_writes = false;  // every write fails (a store that is down)
    int fail_after = -1;       // >= 0: writes succeed this many times, then fail (a disk that fills up mid-batch)

    bool begin(std::string& error) override {
        if (fail_writes) return refuse(error);
        saved_ = data_;
        return true;
    }
    bool lose_commit_reply = false;  // the next commit goes through, but the caller hears it failed
    std::size_t batch_tokens() const { return data_.batches.size(); }  // applied_batches' rows
    bool fail_sync = false;  // storage::sync fails (a disk that lost a write)
    bool sync(std::string& error) override {
        if (fail_sync) error = "memory storage: sync failed";
        return !fail_sync;
    }
    bool commit(std::string& error) override {
        if (!lose_commit_reply) return true;
        lose_commit_reply = false;
        saved_ = data_;  // it is committed: a rollback now changes nothing
        error = "memory storage: connection lost before COMMIT's answer";
        return false;
    }
    std::optional<bool> claim_batch(const std::string& token, std::int64_t, std::string& error) override {
        if (refusing()) {
            refuse(error);
            return std::nullopt;
        }
        return data_.batches.insert(token).second;
    }
    bool forget_batches(const std::vector<std::string>& tokens, std::string& error) override {
        if (refusing()) {
            refuse(error);
            return false;
        }
        for (auto& t : tokens) {
            data_.batches.erase(t);
            data_.batch_changes.erase(t);
        }
        return true;
    }
    bool keep_batch_changes(const std::string& token, const std::string& lines, std::string&) override {
        data_.batch_changes[token] = lines;
        return true;
    }
    std::string batch_changes(const std::string& token) override {
        auto it = data_.batch_changes.find(token);
        return it == data_.batch_changes.end() ? std::string() : it->second;
    }
    void rollback() override { data_ = saved_; }
    std::optional<bounce::address_record> load_recipient(const std::string& a, std::string&) override {
        auto it = data_.recipients.find(a);
        if (it == data_.recipients.end()) return std::nullopt;
        return it->second;
    }
    bool save_recipient(const bounce::address_record& r, std::int64_t, std::string& error) override {
        if (refusing()) return refuse(error);
        data_.recipients[r.address] = r;
        return true;
    }
    std::vector<bounce::address_record> recipients_with(bounce::address_status s, const std::string& after = "",
                                                        std::size_t limit = 0) override {
        std::vector<bounce::address_record> out;
        for (auto& [a, r] : data_.recipients)  // a std::map: in address order
            if (r.status == s && a > after && (!limit || out.size() < limit)) out.push_back(r);
        return out;
    }
    bool add_decisions(const std::vector<const events::event*>& evs, std::string& error) override {
        if (refusing()) return refuse(error);
        for (auto* e : evs) {
            auto copy = *e;
            for (auto& c : copy.recipient) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            data_.decisions.push_back(copy);
        }
        return true;
    }
    std::vector<events::event> history(const std::string& address, int limit) override {
        std::vector<events::event> out;
        for (auto it = data_.decisions.rbegin(); it != data_.decisions.rend() && int(out.size()) < limit; ++it)
            if (it->recipient == address) out.push_back(*it);
        return out;
    }
    std::vector<stats_row> stats(const std::string& group_by, const std::string& campaign, const std::string& domain,
                                 std::int64_t since_ms) override {
        std::map<std::string, stats_row> rows;
        std::set<std::string> deferred;
        for (auto& e : data_.decisions) {
            std::string dom = e.recipient.substr(e.recipient.rfind('@') + 1);
            if (e.time_ms < since_ms || (!campaign.empty() && e.campaign != campaign) || (!domain.empty() && dom != domain) ||
                e.type == events::event_type::admin)
                continue;
            auto key = group_by == "domain" ? dom : e.campaign;
            auto& r = rows[key];
            r.key = key;
            using t = events::event_type;
            if (e.type == t::queued) ++r.sent;
            if (e.type == t::delivered) ++r.delivered;
            if (e.type == t::deferred && deferred.insert(key + " " + e.queue_id + " " + e.recipient).second) ++r.deferred;
            if (e.type == t::bounced || e.type == t::expired) {
                if (e.kind == "hard") ++r.hard;
                if (e.kind == "soft") ++r.soft;
                if (e.kind == "block") ++r.block;
                if (e.kind == "technical") ++r.technical;
            }
            if (e.type == t::complaint) ++r.complaints;
        }
        std::vector<stats_row> out;
        for (auto& [k, r] : rows) out.push_back(r);
        return out;
    }
    // Straight from the decisions (SQLite keeps hourly counts instead; the
    // tests compare the two).
    std::vector<series_row> series(std::int64_t bucket_ms, const std::string& group_by, const std::string& campaign,
                                   const std::string& domain, std::int64_t since_ms) override {
        std::map<std::pair<std::string, std::int64_t>, stats_row> rows;
        for (auto& e : data_.decisions) {
            std::string dom = e.recipient.substr(e.recipient.rfind('@') + 1);
            using t = events::event_type;
            if (e.time_ms / 3600000 < since_ms / 3600000 || (!campaign.empty() && e.campaign != campaign) ||
                (!domain.empty() && dom != domain) || e.type == t::admin)
                continue;
            auto key = group_by == "domain" ? dom : group_by == "campaign" ? e.campaign : std::string();
            auto& r = rows[{key, e.time_ms / bucket_ms * bucket_ms}];
            r.key = key;
            if (e.type == t::queued) ++r.sent;
            if (e.type == t::delivered) ++r.delivered;
            if (e.type == t::deferred) ++r.deferred;
            if (e.type == t::complaint) ++r.complaints;
            if (e.type == t::bounced || e.type == t::expired) {
                if (e.kind == "hard") ++r.hard;
                if (e.kind == "soft") ++r.soft;
                if (e.kind == "block") ++r.block;
                if (e.kind == "technical") ++r.technical;
            }
        }
        std::vector<series_row> out;
        for (auto& [k, r] : rows) out.push_back({k.second, r});
        return out;
    }
    std::vector<reply_row> replies(const std::string& domain, std::int64_t since_ms, std::size_t limit) override {
        std::map<std::tuple<std::string, std::string, std::string, std::string>, std::int64_t> n;
        for (auto& e : data_.decisions) {
            using t = events::event_type;
            std::string dom = e.recipient.substr(e.recipient.rfind('@') + 1);
            if (e.time_ms / 3600000 < since_ms / 3600000 || (!domain.empty() && dom != domain) ||
                (e.type != t::deferred && e.type != t::bounced && e.type != t::expired))
                continue;
            ++n[{dom, std::string(events::to_string(e.type)), e.kind, e.category}];
        }
        std::vector<reply_row> out;
        for (auto& [k, c] : n) out.push_back({std::get<0>(k), std::get<1>(k), std::get<2>(k), std::get<3>(k), c});
        std::stable_sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.count > b.count; });
        if (limit && out.size() > limit) out.resize(limit);
        return out;
    }
    bool add_message(const std::string& q, const std::string& campaign, const std::string& sender, std::string& error) override {
        if (refusing()) return refuse(error);
        data_.messages.emplace(q, message{campaign, sender, false});
        return true;
    }
    bool add_message_recipient(const std::string& q, int index, const std::string& a, std::string& error) override {
        if (refusing()) return refuse(error);
        data_.message_recipients.emplace(std::pair{q, index}, a);
        return true;
    }
    bool mark_message_bounced(const std::string& q, const std::string& campaign, std::string& error) override {
        if (refusing()) return refuse(error);
        auto& m = data_.messages.try_emplace(q, message{campaign, "", false}).first->second;
        m.bounced = true;
        return true;
    }
    std::optional<bool> message_bounced(const std::string& q) override {
        auto it = data_.messages.find(q);
        if (it == data_.messages.end()) return std::nullopt;
        return it->second.bounced;
    }
    std::optional<std::string> recipient_of(const std::string& q, int index) override {
        auto it = data_.message_recipients.find({q, index});
        if (it == data_.message_recipients.end()) return std::nullopt;
        return it->second;
    }
    std::string campaign_of(const std::string& q) override {
        auto it = data_.messages.find(q);
        return it == data_.messages.end() ? std::string() : it->second.campaign;
    }
    std::optional<std::string> sender_of(const std::string& q) override {
        auto it = data_.messages.find(q);
        if (it == data_.messages.end()) return std::nullopt;
        return it->second.sender;
    }
    std::optional<bool> add_final_failure(const std::string& q, const std::string& a, std::string& error) override {
        if (refusing()) {
            refuse(error);
            return std::nullopt;
        }
        return data_.final_failures.insert({q, a}).second;
    }
    bool final_failure_known(const std::string& q, const std::string& a) override {
        return data_.final_failures.count({q, a}) > 0;
    }
    bool add_window_counts(const std::vector<breaker::delta>& ds, std::string& error) override {
        if (refusing()) return refuse(error);
        for (auto& d : ds) data_.window[{d.key, d.bucket}] += d.c;
        return true;
    }
    std::vector<breaker::delta> window_counts(std::int64_t since) override {
        std::vector<breaker::delta> out;
        for (auto& [k, c] : data_.window)
            if (k.second >= since) out.push_back({k.first, k.second, c});
        return out;
    }
    bool prune_window_counts(std::int64_t before, std::string& error) override {
        if (refusing()) return refuse(error);
        for (auto it = data_.window.begin(); it != data_.window.end();)
            it = it->first.second < before ? data_.window.erase(it) : std::next(it);
        return true;
    }
    bool save_scope(const std::string& key, const breaker::scope_state& st, std::string& error) override {
        if (refusing()) return refuse(error);
        data_.scopes[key] = st;
        return true;
    }
    std::vector<std::pair<std::string, breaker::scope_state>> scopes() override {
        return {data_.scopes.begin(), data_.scopes.end()};
    }
    bool add_suppressions(const std::vector<suppression_entry>& es, std::string& error) override {
        if (refusing()) return refuse(error);
        for (auto& e : es) data_.suppressions[e.entry] = e;
        return true;
    }
    std::optional<bool> remove_suppression(const std::string& entry, std::string& error) override {
        if (refusing()) {
            refuse(error);
            return std::nullopt;
        }
        return data_.suppressions.erase(entry) > 0;
    }
    std::vector<suppression_entry> suppressions(const std::string& after, std::size_t limit) override {
        std::vector<suppression_entry> out;
        for (auto it = data_.suppressions.upper_bound(after); it != data_.suppressions.end() && (!limit || out.size() < limit); ++it)
            out.push_back(it->second);
        return out;
    }

    // Retention is SQLite's (its tests are in recipient_state_test): the fake keeps everything.
    bool prune(std::int64_t, const std::string&, std::size_t, prune_counts& out, std::string&) override {
        out = {};
        return true;
    }
    void reclaim_space() override {}

private:
    bool refusing() {
        if (fail_writes) return true;
        if (fail_after < 0) return false;
        if (fail_after == 0) return true;
        --fail_after;
        return false;
    }
    static bool refuse(std::string& error) {
        error = "memory storage: writes refused";
        return false;
    }
    struct message {
        std::string campaign, sender;
        bool bounced = false;
    };
    struct tables {
        std::map<std::string, bounce::address_record> recipients;
        std::map<std::string, suppression_entry> suppressions;
        std::map<std::pair<std::string, std::int64_t>, breaker::counts> window;
        std::map<std::string, breaker::scope_state> scopes;
        std::vector<events::event> decisions;
        std::map<std::string, message> messages;
        std::map<std::pair<std::string, int>, std::string> message_recipients;
        std::set<std::pair<std::string, std::string>> final_failures;
        std::set<std::string> batches;
        std::map<std::string, std::string> batch_changes;
    };
    tables data_, saved_;
};

}  // namespace ricochet::state::fake
