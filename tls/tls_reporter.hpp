// tls_reporter — the TLS-RPT counts of a running node (RFC 8460): every
// TLS session delivery opens (and every MTA-STS policy fetch that fails) is
// counted under its receiving domain and UTC day, with the last result per
// MX host for ricochetctl tls show. The current day is kept in memory and
// written to SPOOL/tls-rpt/DAY.json by flush() (the daemon calls it every
// minute and at stop: a crash loses at most a minute of counts, never a
// message). Days before today are reported once: each domain reported is
// noted in the file, so a restart in the middle of sending sends the rest.
// Thread-safe.
#pragma once
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tls/tls_report.hpp"

namespace ricochet::tls {

class tls_reporter {
public:
    // dir: where the days are kept ("" in memory only).
    tls_reporter(std::filesystem::path dir, std::int64_t now_ms);
    void record(const session_result& r);
    // Writes the current day when it changed; after midnight (UTC) starts
    // the next one (and forgets the last results per MX host).
    void flush(std::int64_t now_ms);
    // Today's counts and the last result per MX host of a domain.
    nlohmann::json show(const std::string& domain) const;

    // Days before today's with counts not yet all reported, oldest first.
    std::vector<std::string> pending_days() const;
    // A day's counts and the domains already reported (today's from memory).
    std::optional<day_counts> load_day(const std::string& day, std::set<std::string>& reported) const;
    // Notes which domains of a day are reported (written at once: the
    // sender calls it every few hundred domains and at the end, not per
    // domain, as a day may count a hundred thousand of them).
    void save_reported(const std::string& day, const day_counts& counts, const std::set<std::string>& reported);
    // Every domain of a past day is reported: its file is removed.
    void finish_day(const std::string& day);
    std::string today() const;

private:
    std::filesystem::path file_of(const std::string& day) const;
    std::optional<day_counts> read_file(const std::string& day, std::set<std::string>& reported) const;
    void write(const std::string& day, const day_counts& c, const std::set<std::string>& reported) const;

    std::filesystem::path dir_;
    mutable std::mutex mu_;
    std::mutex write_mu_;  // one writer of the day files at a time (taken before mu_)
    day_counts today_;
    std::set<std::string> today_reported_;
    bool dirty_ = false;  // today's counts changed since they were written
    struct last {
        std::int64_t at_ms = 0;
        bool ok = false;
        std::string type, detail, ip, sending_ip;
        std::string policy_type;                 // sts, tlsa, no-policy-found
        std::vector<std::string> tlsa;           // the TLSA records in force for the host (DANE)
    };
    std::map<std::string, std::map<std::string, last>> last_;  // domain -> mx -> last result
};

}  // namespace ricochet::tls
