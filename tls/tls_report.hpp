// tls_report — SMTP TLS Reporting (RFC 8460) on the sending side: the
// `_smtp._tls.DOMAIN` TXT record that says where reports go, the counts of
// TLS sessions per receiving domain and UTC day (successes, and failures by
// result type, sending IP and MX), and the daily report built from them:
// the JSON of RFC 8460 section 4, gzip'd, in a multipart/report mail
// (section 5.3). Pure: no I/O (the daemon's tls_reporter keeps the counts
// on disk and queues the mail).
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ricochet::tls {

// One TXT record set at _smtp._tls.DOMAIN (RFC 8460 3): the mailto:
// addresses and https: URLs of rua, or error.
struct tlsrpt_record {
    std::vector<std::string> mailto;  // addresses, without "mailto:"
    std::vector<std::string> https;   // URLs (not sent: mail only; see docs/tls.md)
    std::string error;
    bool found = false;
};
tlsrpt_record parse_tlsrpt_record(const std::vector<std::string>& txt_records);

// RFC 8460 4.3 result types used here.
namespace result_type {
inline constexpr const char* starttls_not_supported = "starttls-not-supported";
inline constexpr const char* certificate_host_mismatch = "certificate-host-mismatch";
inline constexpr const char* certificate_expired = "certificate-expired";
inline constexpr const char* certificate_not_trusted = "certificate-not-trusted";
inline constexpr const char* validation_failure = "validation-failure";
inline constexpr const char* sts_policy_fetch_error = "sts-policy-fetch-error";
inline constexpr const char* sts_policy_invalid = "sts-policy-invalid";
inline constexpr const char* sts_webpki_invalid = "sts-webpki-invalid";
}  // namespace result_type

// What a delivery attempt found about one TLS session (or one policy
// fetch) towards a receiving domain.
struct session_result {
    std::string domain;                     // the policy domain (the recipient's)
    std::string policy_type = "no-policy-found";  // "sts" or "no-policy-found"
    std::vector<std::string> policy_string;  // the policy's lines (sts)
    std::vector<std::string> mx_patterns;    // the policy's mx (sts)
    bool success = false;
    std::string result_type;   // failures: one of result_type
    std::string sending_ip;    // "" when the system chose
    std::string mx_host;       // receiving-mx-hostname
    std::string receiving_ip;
    std::string detail;        // additional-information (free text)
    std::int64_t at_ms = 0;
};

// The counts of one UTC day, per receiving domain.
class day_counts {
public:
    explicit day_counts(std::string day = {}) : day_(std::move(day)) {}
    const std::string& day() const { return day_; }  // "YYYY-MM-DD"
    void record(const session_result& r);
    bool empty() const { return domains_.empty(); }
    std::vector<std::string> domains() const;
    // The totals of one domain: {successes, failures}.
    std::pair<std::uint64_t, std::uint64_t> totals(const std::string& domain) const;

    // RFC 8460 4.4 report for one domain, or null when it had no sessions.
    nlohmann::json report(const std::string& domain, const std::string& organization, const std::string& contact,
                          const std::string& report_id) const;

    nlohmann::json to_json() const;
    static day_counts from_json(const nlohmann::json& j);  // throws nlohmann::json::exception on a bad file

private:
    struct failure_key {
        std::string type, sending_ip, mx_host, receiving_ip;
        auto operator<=>(const failure_key&) const = default;
    };
    struct failure {
        std::uint64_t count = 0;
        std::string detail;  // the last one seen
    };
    // One policy of a domain ("sts", "tlsa" or "no-policy-found"): a
    // domain whose policy changed during the day has one entry per type.
    struct per_policy {
        std::vector<std::string> policy_string, mx_patterns;
        std::uint64_t success = 0, fail = 0;
        std::map<failure_key, failure> failures;
    };
    std::string day_;
    std::map<std::string, std::map<std::string, per_policy>> domains_;  // domain -> policy type -> counts
};

// "YYYY-MM-DD" of a time in UTC.
std::string utc_day(std::int64_t ms);

// The report mail (RFC 8460 5.3), CRLF line ends: From reporter, To the
// rua addresses, Subject "Report Domain: D Submitter: S Report-ID: <id>",
// TLS-Report-Domain and TLS-Report-Submitter fields, and a multipart/report;
// report-type="tlsrpt" body whose second part is the JSON, gzip'd
// (application/tlsrpt+gzip, base64).
std::string report_mail(const nlohmann::json& report, const std::string& domain, const std::string& submitter,
                        const std::string& from, const std::vector<std::string>& to, std::int64_t now_ms);

// gzip (RFC 1952) of data; and back, for tests ("" when it is not gzip).
std::string gzip(const std::string& data);
std::string gunzip(const std::string& data);

}  // namespace ricochet::tls
