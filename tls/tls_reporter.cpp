// tls_reporter — see tls_reporter.hpp.
#include "tls/tls_reporter.hpp"

#include <algorithm>
#include <fstream>

#include "base/unique_fd.hpp"
#include "queue/logger.hpp"

namespace ricochet::tls {
namespace {
std::shared_ptr<spdlog::logger> log() {
    static auto l = named_logger("delivery");
    return l;
}
bool is_day(const std::string& s) {
    return s.size() == 10 && s[4] == '-' && s[7] == '-' &&
           std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || c == '-'; });
}
}  // namespace

tls_reporter::tls_reporter(std::filesystem::path dir, std::int64_t now_ms) : dir_(std::move(dir)), today_(utc_day(now_ms)) {
    if (dir_.empty()) return;
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    std::filesystem::permissions(dir_, std::filesystem::perms::owner_all, ec);  // (for the daemon's user only)
    std::set<std::string> reported;
    if (auto d = read_file(today_.day(), reported)) {  // a restart today goes on counting
        today_ = std::move(*d);
        today_reported_ = std::move(reported);
    }
}

std::string tls_reporter::today() const {
    std::lock_guard lk(mu_);
    return today_.day();
}

std::filesystem::path tls_reporter::file_of(const std::string& day) const { return dir_ / (day + ".json"); }

void tls_reporter::record(const session_result& r) {
    std::lock_guard lk(mu_);
    today_.record(r);
    dirty_ = true;
    if (!r.mx_host.empty()) {
        auto& l = last_[r.domain][r.mx_host];
        l = {r.at_ms, r.success, r.result_type, r.detail, r.receiving_ip, r.sending_ip, r.policy_type,
             r.policy_type == "tlsa" ? r.policy_string : std::vector<std::string>{}};
    }
}

void tls_reporter::write(const std::string& day, const day_counts& c, const std::set<std::string>& reported) const {
    if (dir_.empty()) return;
    auto j = c.to_json();
    j["reported"] = reported;
    auto path = file_of(day);
    if (auto ec = base::replace_file(path, j.dump() + "\n"))
        log()->error("TLS-RPT: cannot write {}: {}", path.string(), ec.message());
}

void tls_reporter::flush(std::int64_t now_ms) {
    // The counts' lock only for a copy: delivery's record() takes it at
    // every TLS session, and the write below syncs twice. write_mu_ keeps
    // the writes in the order of their copies.
    std::lock_guard wl(write_mu_);
    std::optional<std::pair<std::string, std::pair<day_counts, std::set<std::string>>>> copy;
    {
        std::lock_guard lk(mu_);
        if (dirty_) copy.emplace(today_.day(), std::make_pair(today_, today_reported_));
        dirty_ = false;
        auto day = utc_day(now_ms);
        if (day != today_.day()) {
            today_ = day_counts(day);
            today_reported_.clear();
            last_.clear();
        }
    }
    if (copy) write(copy->first, copy->second.first, copy->second.second);
}

nlohmann::json tls_reporter::show(const std::string& domain) const {
    std::lock_guard lk(mu_);
    auto [ok, fail] = today_.totals(domain);
    nlohmann::json mx = nlohmann::json::object();
    if (auto it = last_.find(domain); it != last_.end())
        for (auto& [host, l] : it->second)
            mx[host] = {{"at_ms", l.at_ms}, {"ok", l.ok},      {"result_type", l.type}, {"detail", l.detail},
                        {"ip", l.ip},       {"sending_ip", l.sending_ip}, {"policy_type", l.policy_type}, {"tlsa", l.tlsa}};
    return {{"day", today_.day()}, {"successful_sessions", ok}, {"failed_sessions", fail}, {"last_per_mx", mx}};
}

std::vector<std::string> tls_reporter::pending_days() const {
    std::vector<std::string> out;
    if (dir_.empty()) return out;
    std::lock_guard lk(mu_);
    std::error_code ec;
    for (auto& e : std::filesystem::directory_iterator(dir_, ec)) {
        if (e.path().extension() != ".json") continue;
        auto day = e.path().stem().string();
        if (is_day(day) && day < today_.day()) out.push_back(day);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::optional<day_counts> tls_reporter::load_day(const std::string& day, std::set<std::string>& reported) const {
    {
        std::lock_guard lk(mu_);
        if (day == today_.day()) {
            reported = today_reported_;
            return today_;
        }
    }
    return read_file(day, reported);
}

std::optional<day_counts> tls_reporter::read_file(const std::string& day, std::set<std::string>& reported) const {
    if (dir_.empty() || !is_day(day)) return std::nullopt;
    std::ifstream in(file_of(day));
    if (!in) return std::nullopt;
    try {
        auto j = nlohmann::json::parse(in);
        reported = j.value("reported", std::set<std::string>{});
        return day_counts::from_json(j);
    } catch (const std::exception& e) {
        log()->error("TLS-RPT: {} is unreadable ({}): moved aside", file_of(day).string(), e.what());
        std::error_code ec;
        auto bad = file_of(day);
        bad += ".bad";
        std::filesystem::rename(file_of(day), bad, ec);
        return std::nullopt;
    }
}

void tls_reporter::save_reported(const std::string& day, const day_counts& counts, const std::set<std::string>& reported) {
    std::lock_guard wl(write_mu_);
    std::lock_guard lk(mu_);
    if (day == today_.day()) {
        // Today's counts go on growing: only the reported set is taken.
        today_reported_.insert(reported.begin(), reported.end());
        write(day, today_, today_reported_);
        dirty_ = false;
        return;
    }
    write(day, counts, reported);
}

void tls_reporter::finish_day(const std::string& day) {
    if (dir_.empty() || day == today()) return;
    std::lock_guard wl(write_mu_);
    std::error_code ec;
    std::filesystem::remove(file_of(day), ec);
}

}  // namespace ricochet::tls
