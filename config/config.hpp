// config — etc/ricochet.toml, loaded and checked once at start.
//
// Every key of PRODUCT.md's "Configuration" section, with its default, lives
// in struct config. load_config() refuses unknown keys, wrong types, bad
// values and missing files, naming the file, line and key, so a typo can
// never silently fall back on a default. Relative paths are taken relative
// to the directory ricochetd is started in.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ricochet {

using seconds = std::chrono::seconds;

struct route {
    std::string domain;
    std::string host;  // "127.0.0.1:2600" or "[::1]:2600"
};

struct retry_override {
    std::string domain;
    seconds interval{0};
    seconds max_age{0};
};

// An http:// or https:// URL, split (webhook endpoints).
struct http_url {
    bool tls = false;
    std::string host;  // name or IP literal (without brackets)
    std::uint16_t port = 80;
    std::string target = "/";  // path and query
};
// False when text is not "http[s]://host[:port][/path]" (no user info, no fragment).
bool parse_http_url(std::string_view text, http_url& out);

struct webhook {
    std::string url;
    http_url endpoint;
    std::string secret;
    std::vector<std::string> events{"bounced",         "expired",         "complaint",       "status_changed",
                                    "unsubscribed",    "campaign_paused", "campaign_warned", "campaign_resumed"};
    std::uint32_t batch = 100;
    seconds timeout{10};
    seconds max_age{72 * 3600};
};

// One [[shaping]] table: the limits of a destination (PRODUCT.md "Traffic
// shaping"). 0 in a limit: [delivery]'s (connections, messages per
// connection), or none (messages per minute).
struct shaping_entry {
    std::string match;  // a domain, or "mx:*.google.com"
    std::uint32_t max_connections = 0;
    std::uint32_t max_messages_per_minute = 0;
    std::uint32_t max_messages_per_connection = 0;
};
// One [[pool]] table: source addresses, and their warm-up schedule.
struct pool_entry {
    std::string name;
    std::vector<std::string> source_ips;
    std::vector<std::uint64_t> warmup;  // messages/day per IP per destination, day by day; then none
    std::string warmup_start;           // "YYYY-MM-DD" (UTC): day 0 of warmup
};
// One [[campaign]] table: settings per campaign id.
struct campaign_entry {
    std::string id;
    std::string pool;
};

// One [[dkim]] table: a key that signs mail From one domain.
struct dkim_entry {
    std::string domain;  // lower case; "*": any From domain without entries of its own
    std::string selector;
    std::filesystem::path key_file;
    std::vector<std::string> headers{"From",       "To",           "Subject",          "Date",
                                     "Message-ID", "MIME-Version", "Content-Type",     "List-Unsubscribe",
                                     "List-Unsubscribe-Post",      "Feedback-ID"};
    std::string canonicalization = "relaxed/relaxed";
};

struct config {
    std::filesystem::path file;

    struct {
        std::string hostname;  // empty: gethostname()
        std::filesystem::path spool_dir = "var/spool";
        std::string state = "sqlite:var/state.db";
        // PostgreSQL: a statement unanswered this long gives the connection
        // up as lost (decisions then wait in the journal); 0: no limit.
        seconds state_timeout{30};
        // PostgreSQL: this node's name in the shared `nodes` table, which
        // gives it its number (queue ids); empty: host name + ":" + the
        // spool directory's absolute path.
        std::string node_name;
        std::filesystem::path control_socket = "var/ricochetd.sock";
        std::filesystem::path events_log = "var/events.jsonl";
        // Built-in rotation of events_log (0: off, e.g. when logrotate does it).
        std::uint64_t events_max_size = 1ULL << 30;  // "1GiB"
        seconds events_max_age{86400};               // "1d"
        std::uint32_t events_keep = 14;              // rotated segments kept, gzip'd but the newest
        std::string log_level = "info";
        // Per-address limits (connections, failed AUTH, the API's failed
        // tokens) count an IPv6 client by its network of this many bits.
        std::uint32_t client_ipv6_prefix = 64;
        // DATA held in memory by every SMTP session at once (beyond it a
        // message spills to disk early, or gets 452 4.3.1 on the bounce listener).
        std::uint64_t data_memory_budget = 512ULL << 20;  // "512MiB"
        // Threads that run the SMTP and HTTP sessions and delivery (0: half
        // the machine's cores, at least one; see io_threads_for).
        std::uint32_t io_threads = 0;
        // Group commits append to spool_dir/journal and fdatasync it instead
        // of a syncfs each (queue/commit_journal.hpp); false: a syncfs each.
        bool spool_journal = true;
        // Its size, fixed when it is made (a record that does not fit before
        // the end: a syncfs and a new lap from the beginning).
        std::uint64_t spool_journal_size = 64ULL << 20;  // "64MiB"
    } server;

    struct {
        std::vector<std::string> listen{"127.0.0.1:2525"};
        std::vector<std::string> trusted_networks{"127.0.0.0/8", "::1/128"};
        std::filesystem::path auth_users_file;
        std::filesystem::path tls_cert, tls_key;
        std::uint64_t max_message_size = 26214400;
        std::uint64_t data_memory = 256 * 1024;  // a message's part kept in memory while received ("256KiB"); the rest goes to disk
        std::uint32_t max_recipients = 1000;
        std::string campaign_header = "X-Campaign-ID";
        std::uint32_t max_connections = 1000;
        std::uint32_t max_connections_per_ip = 0;  // 0: no limit (campaign systems open many)
        seconds command_timeout{300};  // RFC 5321 4.5.3.2.7: at least 5 minutes
        seconds data_timeout{600};     // whole DATA phase, per chunk read
        // From stress_connections open sessions (0: three quarters of
        // max_connections), every session must make progress within
        // stress_timeout (0: no stress mode), like Postfix's stress mode.
        std::uint32_t stress_connections = 0;
        seconds stress_timeout{10};
    } submission;

    struct {
        std::uint16_t port = 25;
        std::vector<std::string> dns_servers;
        std::string tls = "opportunistic";
        bool tls_verify = false;            // with tls = "required": check the certificate chain and the MX name
        std::filesystem::path tls_ca_file;  // trust anchors for tls_verify; empty: the system's
        std::uint32_t max_connections_per_domain = 20;
        std::uint32_t max_messages_per_connection = 100;
        seconds dns_timeout{5};        // per DNS query try (2 tries)
        seconds connect_timeout{30};
        seconds command_timeout{300};  // RFC 5321 4.5.3.2: greeting, MAIL, RCPT
        seconds data_timeout{600};     // RFC 5321 4.5.3.2.6: reply to the final dot
        std::vector<route> routes;
        bool feedback_id = true;  // Feedback-ID: CAMPAIGN:SENDER_DOMAIN:ricochet on mail with a campaign
        std::filesystem::path shaping_file;  // more [[shaping]] tables (etc/shaping.toml); "" none
        std::string pool;                    // the [[pool]] of mail that names none; "" the system's address
        seconds adaptive_interval{60};       // a clean stretch this long raises a cut rate one step
        // Transport security of delivery (tls/, docs/tls.md).
        std::string mta_sts = "on";          // RFC 8461 policies: on | off
        std::uint16_t mta_sts_port = 443;    // where policies are fetched (tests serve them elsewhere)
        std::string dane = "on";             // RFC 7672 TLSA records, DNSSEC-validated: on | off
        std::filesystem::path dnssec_trust_anchor = "/usr/share/dns/root.key";  // for DANE's validation
        std::string tls_rpt = "on";          // RFC 8460 daily reports: on | off
        std::string tls_rpt_contact;         // report sender and contact-info; "" postmaster@server.hostname
    } delivery;

    std::vector<shaping_entry> shaping;  // this file's first, then shaping_file's
    std::vector<pool_entry> pools;
    std::vector<campaign_entry> campaigns;

    struct {
        seconds interval{15 * 60};
        seconds max_age{72 * 3600};
        std::vector<retry_override> domains;
    } retry;

    struct {
        std::vector<std::string> listen{"127.0.0.1:2526"};
        std::string domain = "bnc.localhost";
        std::string secret;
        std::uint32_t max_connections = 100;        // bounces come from anywhere: a small pool
        std::uint32_t max_connections_per_ip = 10;  // no one sender holds the pool
        std::uint32_t stress_connections = 0;       // 0: three quarters of max_connections
        seconds stress_timeout{10};                 // the time-outs under stress (0: no stress mode)
        std::uint64_t max_message_size = 2097152;  // a DSN with the original (or its headers) attached
    } bounce_listener;

    struct {
        std::filesystem::path rules = "etc/bounce-rules.toml";
        std::vector<std::string> trusted_domains{
            "gmail.com", "googlemail.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr",
            "hotmail.de", "hotmail.it", "hotmail.es", "outlook.com", "live.com",
            "yahoo.com", "aol.com", "icloud.com"};
        std::uint32_t held_after_bounces = 3;
        std::uint32_t held_after_days = 15;
        std::vector<std::string> final_soft{"mailbox full", "over quota", "quota exceeded",
                                            "mailbox disabled", "account disabled", "inactive"};
        std::string suppressed = "reject";
        bool return_to_sender = false;
        seconds destination_backoff{300};
    } bounce;

    struct {
        std::vector<std::string> listen{"127.0.0.1:8025"};  // [] turns the API off
        std::vector<std::string> trusted_networks{"127.0.0.0/8", "::1/128"};
        std::filesystem::path tokens_file;  // lines NAME:TOKEN
        std::filesystem::path tls_cert, tls_key;
        std::uint64_t max_body = 26214400;           // a request body (an injected message)
        std::uint64_t max_import_body = 1073741824;  // PUT /v1/suppressions (a million entries is ~40 MB)
        std::uint32_t max_connections = 256;
        std::uint32_t max_connections_per_ip = 64;
        seconds request_timeout{30};  // reading one request, and an idle keep-alive connection
        bool dashboard = true;        // GET / serves the dashboard (docs/dashboard.md)
    } http;

    std::vector<webhook> webhooks;

    std::vector<dkim_entry> dkim;

    struct {
        bool enabled = false;
        std::vector<std::string> listen{"127.0.0.1:8026"};  // public: the mailbox providers call it
        std::string url_base = "http://127.0.0.1:8026/u/";
        std::vector<std::string> campaigns{"*"};
        std::filesystem::path tls_cert, tls_key;
        std::uint32_t max_connections = 512;
        std::uint32_t max_connections_per_ip = 16;
        seconds request_timeout{10};
    } unsubscribe;

    struct {
        bool enabled = true;
        seconds window{24 * 3600};
        std::uint64_t min_messages = 500;
        double hard_rate_warn = 0.02, hard_rate_pause = 0.05;
        double complaint_rate_warn = 0.001, complaint_rate_pause = 0.003;
        std::vector<std::string> scopes{"campaign", "sender_domain"};
    } breaker;

    // What the state store and the spool keep, and for how long ("0": for ever).
    struct {
        seconds decisions{90 * 86400};     // per-message history rows (stats keep daily totals)
        seconds dsn_unparsed{30 * 86400};  // spool_dir/dsn-unparsed/ files
        seconds messages{7 * 86400};       // a message's rows stay at least this long (late DSNs name them)
        std::uint64_t free_files = 16384;  // finished spool files kept for reuse (spool_dir/free/)
    } retention;
};

// Loads and checks path into out. On failure returns false and sets error to
// one line: "FILE:LINE: KEY: what is wrong".
bool load_config(const std::filesystem::path& path, config& out, std::string& error);
// The same from text (errors name `name` as the file): for tests and fuzzing.
bool load_config_text(std::string_view text, const std::filesystem::path& name, config& out, std::string& error);

// The I/O threads to run: server.io_threads, or for 0 half of `cores` (at
// least one). The committer, the recorder, delivery's sync and signing
// pools and the kernel's network work need the rest: on 2 cores one I/O
// thread relayed as fast as two with 3-19% less CPU per message, and
// accepted as fast while every delivery deferred (README, issue 20).
inline unsigned io_threads_for(const config& c, unsigned cores) {
    if (c.server.io_threads) return c.server.io_threads;
    return cores / 2 ? cores / 2 : 1;
}

// "30s", "15m", "72h", "2d" (also "500ms" rounded up to 1s). False when malformed.
bool parse_duration(std::string_view text, seconds& out);
// "1GiB", "512MiB", "64KiB", "10MB", "1000", "0" -> bytes (KiB/MiB/GiB are
// powers of 1024, KB/MB/GB of 1000, B or nothing: bytes).
bool parse_size(std::string_view text, std::uint64_t& out);

}  // namespace ricochet
