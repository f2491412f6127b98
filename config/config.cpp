// config — see config.hpp. The only file that includes toml++.
#include "config/config.hpp"

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "events/event.hpp"
#include "smtp/network.hpp"
#include "state/backend.hpp"

namespace ricochet {
using smtp::parse_cidr;
using smtp::parse_host_port;
namespace {

struct config_error {
    std::string text;
};

std::string where(const config& c, const toml::source_region& r) {
    std::ostringstream o;
    o << (r.path ? *r.path : c.file.string());  // (the shaping file's tables name their own file)
    if (r.begin.line > 0) o << ':' << r.begin.line;
    return o.str();
}

[[noreturn]] void fail(const config& c, const toml::node& n, std::string_view key, std::string_view what) {
    throw config_error{where(c, n.source()) + ": " + std::string(key) + ": " + std::string(what)};
}

bool events_known(std::string_view name) { return events::parse_event_type(name).has_value(); }

std::string_view type_name(const toml::node& n) {
    switch (n.type()) {
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a number";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::array: return "an array";
        case toml::node_type::table: return "a table";
        default: return "a date/time";
    }
}

// Reads one table, checking each key against the set the table allows.
class table_reader {
public:
    table_reader(const config& c, const toml::table& t, std::string prefix)
        : c_(c), t_(t), prefix_(std::move(prefix)) {}

    void known(std::initializer_list<std::string_view> keys) {
        std::set<std::string_view> ok(keys);
        for (auto&& [k, v] : t_)
            if (!ok.count(k.str())) fail(c_, v, name(k.str()), "unknown key");
    }
    std::string name(std::string_view k) const { return prefix_.empty() ? std::string(k) : prefix_ + "." + std::string(k); }

    void str(std::string_view k, std::string& out) {
        if (auto* n = t_.get(k)) {
            if (!n->is_string()) fail(c_, *n, name(k), std::string("expected a string, got ") + std::string(type_name(*n)));
            out = n->as_string()->get();
        }
    }
    void path(std::string_view k, std::filesystem::path& out) {
        std::string s = out.string();
        str(k, s);
        out = s;
    }
    void existing_file(std::string_view k, std::filesystem::path& out) {
        path(k, out);
        std::error_code ec;  // a name the OS refuses (too long, ...) is "not found", never a throw
        // Only a file the table names is checked here (with its line); a
        // default that is missing is reported by whoever opens it.
        auto* n = t_.get(k);
        if (n && !out.empty() && !std::filesystem::is_regular_file(out, ec))
            fail(c_, *n, name(k), "file not found: " + out.string());
    }
    template <class T>
    void integer(std::string_view k, T& out, std::int64_t lo, std::int64_t hi) {
        if (auto* n = t_.get(k)) {
            if (!n->is_integer()) fail(c_, *n, name(k), std::string("expected an integer, got ") + std::string(type_name(*n)));
            std::int64_t v = n->as_integer()->get();
            if (v < lo || v > hi)
                fail(c_, *n, name(k), "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
            out = static_cast<T>(v);
        }
    }
    void boolean(std::string_view k, bool& out) {
        if (auto* n = t_.get(k)) {
            if (!n->is_boolean()) fail(c_, *n, name(k), std::string("expected true or false, got ") + std::string(type_name(*n)));
            out = n->as_boolean()->get();
        }
    }
    // A rate in [0, 1], written 0.05 (an integer 0 or 1 is taken too).
    void rate(std::string_view k, double& out) {
        if (auto* n = t_.get(k)) {
            double v;
            if (n->is_floating_point()) v = n->as_floating_point()->get();
            else if (n->is_integer()) v = static_cast<double>(n->as_integer()->get());
            else fail(c_, *n, name(k), std::string("expected a rate such as 0.05, got ") + std::string(type_name(*n)));
            if (!(v >= 0.0 && v <= 1.0)) fail(c_, *n, name(k), "must be between 0 and 1");
            out = v;
        }
    }
    void duration(std::string_view k, seconds& out) {
        if (auto* n = t_.get(k)) {
            if (!n->is_string() || !parse_duration(n->as_string()->get(), out))
                fail(c_, *n, name(k), "expected a duration such as \"30s\", \"15m\", \"72h\"");
        }
    }
    void strings(std::string_view k, std::vector<std::string>& out) {
        if (auto* n = t_.get(k)) {
            if (!n->is_array()) fail(c_, *n, name(k), std::string("expected an array of strings, got ") + std::string(type_name(*n)));
            out.clear();
            for (auto& e : *n->as_array()) {
                if (!e.is_string()) fail(c_, e, name(k), "expected an array of strings");
                out.push_back(e.as_string()->get());
            }
        }
    }
    void integers(std::string_view k, std::vector<std::uint64_t>& out, std::int64_t lo, std::int64_t hi) {
        if (auto* n = t_.get(k)) {
            if (!n->is_array()) fail(c_, *n, name(k), std::string("expected an array of integers, got ") + std::string(type_name(*n)));
            out.clear();
            for (auto& e : *n->as_array()) {
                if (!e.is_integer()) fail(c_, e, name(k), "expected an array of integers");
                auto v = e.as_integer()->get();
                if (v < lo || v > hi)
                    fail(c_, e, name(k), "each must be between " + std::to_string(lo) + " and " + std::to_string(hi));
                out.push_back(static_cast<std::uint64_t>(v));
            }
        }
    }
    void one_of(std::string_view k, std::string& out, std::initializer_list<std::string_view> allowed) {
        str(k, out);
        for (auto a : allowed)
            if (out == a) return;
        std::string list;
        for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
        fail(c_, *t_.get(k), name(k), "must be one of " + list);
    }
    void listen_list(std::string_view k, std::vector<std::string>& out) {
        strings(k, out);
        for (auto& s : out) {
            std::string h;
            std::uint16_t p;
            if (!parse_host_port(s, h, p)) fail(c_, *t_.get(k), name(k), "expected \"host:port\", got \"" + s + "\"");
        }
    }
    const toml::table* sub(std::string_view k) {
        auto* n = t_.get(k);
        if (!n) return nullptr;
        if (!n->is_table()) fail(c_, *n, name(k), "expected a table");
        return n->as_table();
    }
    const toml::array* array_of_tables(std::string_view k) {
        auto* n = t_.get(k);
        if (!n) return nullptr;
        if (!n->is_array_of_tables()) fail(c_, *n, name(k), "expected [[" + name(k) + "]] tables");
        return n->as_array();
    }
    const toml::node* node(std::string_view k) { return t_.get(k); }

private:
    const config& c_;
    const toml::table& t_;
    std::string prefix_;
};

// A size key: an integer of octets or a string such as "256KiB", at least `min`.
void read_size(const config& c, table_reader& r, std::string_view key, std::string_view full, std::uint64_t& out,
               std::uint64_t min) {
    auto* n = r.node(key);
    if (!n) return;
    std::uint64_t v = 0;
    bool ok = n->is_integer() ? n->as_integer()->get() >= 0 && (v = static_cast<std::uint64_t>(n->as_integer()->get()), true)
                              : n->is_string() && parse_size(n->as_string()->get(), v);
    if (!ok || v < min)
        fail(c, *n, full, "expected a size of at least " + std::to_string(min) + " octets, such as \"256KiB\" or \"512MiB\"");
    out = v;
}

bool valid_day(const std::string& s) {
    if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
    for (int i : {0, 1, 2, 3, 5, 6, 8, 9})
        if (s[i] < '0' || s[i] > '9') return false;
    int y = std::stoi(s.substr(0, 4)), m = std::stoi(s.substr(5, 2)), d = std::stoi(s.substr(8, 2));
    static const int days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m >= 1 && m <= 12 && d >= 1 && d <= (m == 2 && !leap ? 28 : days[m - 1]);
}

void shaping_tables(const toml::array& a, config& c) {
    for (auto& e : a) {
        table_reader r(c, *e.as_table(), "shaping");
        r.known({"match", "max_connections", "max_messages_per_minute", "max_messages_per_connection"});
        shaping_entry s;
        r.str("match", s.match);
        for (auto& ch : s.match) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        bool mx = s.match.rfind("mx:", 0) == 0;
        if (mx && s.match.rfind("mx:.", 0) == 0) s.match = "mx:*" + s.match.substr(3);  // one spelling per pattern
        if (s.match.empty() || s.match.find_first_of(" \t,;@") != std::string::npos ||
            (mx && (s.match.rfind("mx:*.", 0) != 0 || s.match.size() < 7)))
            fail(c, e, "shaping.match", "missing, or neither a domain nor \"mx:*.host.suffix\"");
        r.integer("max_connections", s.max_connections, 0, 10000);
        r.integer("max_messages_per_minute", s.max_messages_per_minute, 0, 60000);  // (ms spacing: 1000/s at most)
        r.integer("max_messages_per_connection", s.max_messages_per_connection, 0, 100000);
        bool dup = false;  // the first table for a match wins (this file's before the shaping file's)
        for (auto& other : c.shaping) dup = dup || other.match == s.match;
        if (!dup) c.shaping.push_back(std::move(s));
    }
}

// [[shaping]] of this file, then of delivery.shaping_file (whose only tables they are).
void read_shaping(const toml::table& root_table, config& c) {
    table_reader main(c, root_table, "");
    if (auto* a = main.array_of_tables("shaping")) shaping_tables(*a, c);
    if (c.delivery.shaping_file.empty()) return;
    std::ifstream in(c.delivery.shaping_file, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    toml::table root;
    try {
        root = toml::parse(text, c.delivery.shaping_file.string());
    } catch (const toml::parse_error& e) {
        std::ostringstream o;
        o << c.delivery.shaping_file.string() << ':' << e.source().begin.line << ": " << e.description();
        throw config_error{o.str()};
    }
    table_reader file(c, root, "");
    file.known({"shaping"});
    if (auto* a = file.array_of_tables("shaping")) shaping_tables(*a, c);
}

void load(const toml::table& root, config& c) {
    table_reader top(c, root, "");
    top.known({"server", "submission", "delivery", "retry", "bounce_listener", "bounce", "http", "webhook", "breaker", "dkim",
               "unsubscribe", "shaping", "pool", "campaign", "retention"});

    if (auto* t = top.sub("server")) {
        table_reader r(c, *t, "server");
        r.known({"hostname", "spool_dir", "state", "control_socket", "events_log", "events_max_size", "events_max_age",
                 "events_keep", "log_level", "client_ipv6_prefix", "data_memory_budget", "state_timeout",
                 "node_name", "io_threads", "spool_journal", "spool_journal_size"});
        r.str("hostname", c.server.hostname);
        r.boolean("spool_journal", c.server.spool_journal);
        r.integer("io_threads", c.server.io_threads, 0, 256);
        r.str("node_name", c.server.node_name);
        r.integer("client_ipv6_prefix", c.server.client_ipv6_prefix, 32, 128);
        read_size(c, r, "data_memory_budget", "server.data_memory_budget", c.server.data_memory_budget, 1 << 20);
        read_size(c, r, "spool_journal_size", "server.spool_journal_size", c.server.spool_journal_size, 1 << 20);
        r.path("spool_dir", c.server.spool_dir);
        r.str("state", c.server.state);
        if (auto* n = r.node("state_timeout"); n && n->is_string() && n->as_string()->get() == "0") c.server.state_timeout = seconds(0);
        else r.duration("state_timeout", c.server.state_timeout);
        if (std::string why; r.node("state") && state::backend_of(c.server.state, why) == state::backend::none)
            fail(c, *r.node("state"), "server.state", why);
        r.path("control_socket", c.server.control_socket);
        r.path("events_log", c.server.events_log);
        if (auto* n = r.node("events_max_size")) {
            bool ok = n->is_integer() ? n->as_integer()->get() >= 0 : n->is_string() && parse_size(n->as_string()->get(), c.server.events_max_size);
            if (n->is_integer() && ok) c.server.events_max_size = static_cast<std::uint64_t>(n->as_integer()->get());
            if (!ok) fail(c, *n, "server.events_max_size", "expected a size such as \"1GiB\", \"512MiB\" or 0 (no rotation by size)");
        }
        if (auto* n = r.node("events_max_age"); n && n->is_string() && n->as_string()->get() == "0") c.server.events_max_age = seconds(0);
        else r.duration("events_max_age", c.server.events_max_age);
        r.integer("events_keep", c.server.events_keep, 1, 1000);
        r.one_of("log_level", c.server.log_level, {"trace", "debug", "info", "warn", "error", "critical", "off"});
    }
    if (auto* t = top.sub("submission")) {
        table_reader r(c, *t, "submission");
        r.known({"listen", "trusted_networks", "auth_users_file", "tls_cert", "tls_key", "max_message_size",
                 "max_recipients", "campaign_header", "max_connections", "max_connections_per_ip", "command_timeout",
                 "data_timeout", "data_memory", "stress_connections", "stress_timeout"});
        r.listen_list("listen", c.submission.listen);
        read_size(c, r, "data_memory", "submission.data_memory", c.submission.data_memory, 4096);
        r.strings("trusted_networks", c.submission.trusted_networks);
        for (auto& n : c.submission.trusted_networks)
            if (!parse_cidr(n)) fail(c, *r.node("trusted_networks"), "submission.trusted_networks", "not a network: \"" + n + "\"");
        r.existing_file("auth_users_file", c.submission.auth_users_file);
        r.existing_file("tls_cert", c.submission.tls_cert);
        r.existing_file("tls_key", c.submission.tls_key);
        if (c.submission.tls_cert.empty() != c.submission.tls_key.empty())
            fail(c, *t, "submission.tls_cert", "tls_cert and tls_key must be set together");
        r.integer("max_message_size", c.submission.max_message_size, 1024, 1LL << 31);
        r.integer("max_recipients", c.submission.max_recipients, 1, 100000);
        r.str("campaign_header", c.submission.campaign_header);
        r.integer("max_connections", c.submission.max_connections, 1, 100000);
        r.integer("max_connections_per_ip", c.submission.max_connections_per_ip, 0, 100000);
        r.duration("command_timeout", c.submission.command_timeout);
        r.duration("data_timeout", c.submission.data_timeout);
        r.integer("stress_connections", c.submission.stress_connections, 0, 100000);
        r.duration("stress_timeout", c.submission.stress_timeout);
    }
    if (auto* t = top.sub("delivery")) {
        table_reader r(c, *t, "delivery");
        r.known({"port", "dns_servers", "tls", "tls_verify", "tls_ca_file", "max_connections_per_domain", "max_messages_per_connection", "route",
                 "connect_timeout", "command_timeout", "data_timeout", "dns_timeout", "feedback_id", "shaping_file",
                 "pool", "adaptive_interval", "mta_sts", "mta_sts_port", "tls_rpt", "tls_rpt_contact", "dane", "dnssec_trust_anchor"});
        r.one_of("dane", c.delivery.dane, {"on", "off"});
        // (The default, missing, turns DANE off with a warning at start.)
        r.existing_file("dnssec_trust_anchor", c.delivery.dnssec_trust_anchor);
        r.one_of("mta_sts", c.delivery.mta_sts, {"on", "off"});
        r.integer("mta_sts_port", c.delivery.mta_sts_port, 1, 65535);
        r.one_of("tls_rpt", c.delivery.tls_rpt, {"on", "off"});
        r.str("tls_rpt_contact", c.delivery.tls_rpt_contact);
        if (!c.delivery.tls_rpt_contact.empty() &&
            (c.delivery.tls_rpt_contact.find('@') == std::string::npos ||
             c.delivery.tls_rpt_contact.find_first_of(" <>\"\r\n") != std::string::npos))
            fail(c, *t, "delivery.tls_rpt_contact", "expected an address like postmaster@example.com");
        r.boolean("feedback_id", c.delivery.feedback_id);
        r.existing_file("shaping_file", c.delivery.shaping_file);
        r.str("pool", c.delivery.pool);
        r.duration("adaptive_interval", c.delivery.adaptive_interval);
        if (c.delivery.adaptive_interval.count() < 1) fail(c, *t, "delivery.adaptive_interval", "must be at least 1s");
        r.duration("dns_timeout", c.delivery.dns_timeout);
        r.duration("connect_timeout", c.delivery.connect_timeout);
        r.duration("command_timeout", c.delivery.command_timeout);
        r.duration("data_timeout", c.delivery.data_timeout);
        r.integer("port", c.delivery.port, 1, 65535);
        r.strings("dns_servers", c.delivery.dns_servers);
        for (auto& sv : c.delivery.dns_servers) {
            std::string h;
            std::uint16_t p;
            if (!parse_host_port(sv, h, p) || !parse_cidr(h))
                fail(c, *r.node("dns_servers"), "delivery.dns_servers", "expected \"ip:port\", got \"" + sv + "\"");
        }
        r.one_of("tls", c.delivery.tls, {"opportunistic", "required", "off"});
        r.boolean("tls_verify", c.delivery.tls_verify);
        r.existing_file("tls_ca_file", c.delivery.tls_ca_file);
        if (c.delivery.tls_verify && c.delivery.tls != "required")
            fail(c, *t, "delivery.tls_verify", "needs tls = \"required\" (an opportunistic sender falls back to plain text)");
        r.integer("max_connections_per_domain", c.delivery.max_connections_per_domain, 1, 10000);
        r.integer("max_messages_per_connection", c.delivery.max_messages_per_connection, 1, 100000);
        if (auto* a = r.array_of_tables("route")) {
            for (auto& e : *a) {
                table_reader rr(c, *e.as_table(), "delivery.route");
                rr.known({"domain", "host"});
                route ro;
                rr.str("domain", ro.domain);
                rr.str("host", ro.host);
                std::string h;
                std::uint16_t p;
                if (ro.domain.empty()) fail(c, e, "delivery.route.domain", "missing");
                if (!parse_host_port(ro.host, h, p)) fail(c, e, "delivery.route.host", "expected \"host:port\"");
                c.delivery.routes.push_back(ro);
            }
        }
    }
    if (auto* t = top.sub("retry")) {
        table_reader r(c, *t, "retry");
        r.known({"interval", "max_age", "domain"});
        r.duration("interval", c.retry.interval);
        r.duration("max_age", c.retry.max_age);
        if (auto* a = r.array_of_tables("domain")) {
            for (auto& e : *a) {
                table_reader rr(c, *e.as_table(), "retry.domain");
                rr.known({"domain", "interval", "max_age"});
                retry_override o{"", c.retry.interval, c.retry.max_age};
                rr.str("domain", o.domain);
                if (o.domain.empty()) fail(c, e, "retry.domain.domain", "missing");
                rr.duration("interval", o.interval);
                rr.duration("max_age", o.max_age);
                c.retry.domains.push_back(o);
            }
        }
    }
    if (auto* t = top.sub("bounce_listener")) {
        table_reader r(c, *t, "bounce_listener");
        r.known({"listen", "domain", "secret", "max_connections", "max_connections_per_ip", "max_message_size",
                 "stress_connections", "stress_timeout"});
        r.listen_list("listen", c.bounce_listener.listen);
        r.integer("max_connections", c.bounce_listener.max_connections, 1, 100000);
        r.integer("max_connections_per_ip", c.bounce_listener.max_connections_per_ip, 0, 100000);
        r.integer("max_message_size", c.bounce_listener.max_message_size, 1024, 1LL << 30);
        r.integer("stress_connections", c.bounce_listener.stress_connections, 0, 100000);
        r.duration("stress_timeout", c.bounce_listener.stress_timeout);
        r.str("domain", c.bounce_listener.domain);
        r.str("secret", c.bounce_listener.secret);
    }
    if (auto* t = top.sub("bounce")) {
        table_reader r(c, *t, "bounce");
        r.known({"rules", "trusted_domains", "held_after_bounces", "held_after_days", "final_soft", "suppressed",
                 "return_to_sender", "destination_backoff"});
        r.existing_file("rules", c.bounce.rules);
        r.strings("trusted_domains", c.bounce.trusted_domains);
        r.integer("held_after_bounces", c.bounce.held_after_bounces, 1, 1000);
        r.integer("held_after_days", c.bounce.held_after_days, 0, 3650);
        r.strings("final_soft", c.bounce.final_soft);
        r.one_of("suppressed", c.bounce.suppressed, {"reject", "drop"});
        r.boolean("return_to_sender", c.bounce.return_to_sender);
        r.duration("destination_backoff", c.bounce.destination_backoff);
    }
    if (auto* t = top.sub("http")) {
        table_reader r(c, *t, "http");
        r.known({"listen", "trusted_networks", "tokens_file", "tls_cert", "tls_key", "max_body", "max_import_body",
                 "max_connections", "max_connections_per_ip", "request_timeout", "dashboard"});
        r.listen_list("listen", c.http.listen);
        r.boolean("dashboard", c.http.dashboard);
        r.strings("trusted_networks", c.http.trusted_networks);
        for (auto& n : c.http.trusted_networks)
            if (!parse_cidr(n)) fail(c, *r.node("trusted_networks"), "http.trusted_networks", "not a network: \"" + n + "\"");
        r.existing_file("tokens_file", c.http.tokens_file);
        r.existing_file("tls_cert", c.http.tls_cert);
        r.existing_file("tls_key", c.http.tls_key);
        if (c.http.tls_cert.empty() != c.http.tls_key.empty())
            fail(c, *t, "http.tls_cert", "tls_cert and tls_key must be set together");
        r.integer("max_body", c.http.max_body, 1024, 1LL << 31);
        r.integer("max_import_body", c.http.max_import_body, 1024, 1LL << 34);
        r.integer("max_connections", c.http.max_connections, 1, 100000);
        r.integer("max_connections_per_ip", c.http.max_connections_per_ip, 0, 100000);
        r.duration("request_timeout", c.http.request_timeout);
        if (c.http.request_timeout.count() < 1) fail(c, *t, "http.request_timeout", "must be at least 1s");
    }
    if (auto* t = top.sub("retention")) {
        table_reader r(c, *t, "retention");
        r.known({"decisions", "dsn_unparsed", "messages", "free_files"});
        r.integer("free_files", c.retention.free_files, 0, 1000000);
        for (auto [key, out] : {std::pair{"decisions", &c.retention.decisions}, std::pair{"dsn_unparsed", &c.retention.dsn_unparsed},
                                std::pair{"messages", &c.retention.messages}}) {
            if (auto* n = r.node(key); n && n->is_string() && n->as_string()->get() == "0") *out = seconds(0);
            else r.duration(key, *out);
        }
    }
    if (auto* t = top.sub("breaker")) {
        table_reader r(c, *t, "breaker");
        r.known({"enabled", "window", "min_messages", "hard_rate_warn", "hard_rate_pause", "complaint_rate_warn",
                 "complaint_rate_pause", "scopes"});
        r.boolean("enabled", c.breaker.enabled);
        r.duration("window", c.breaker.window);
        if (c.breaker.window.count() < 60) fail(c, *t, "breaker.window", "must be at least 1m");
        r.integer("min_messages", c.breaker.min_messages, 1, 100000000);
        r.rate("hard_rate_warn", c.breaker.hard_rate_warn);
        r.rate("hard_rate_pause", c.breaker.hard_rate_pause);
        r.rate("complaint_rate_warn", c.breaker.complaint_rate_warn);
        r.rate("complaint_rate_pause", c.breaker.complaint_rate_pause);
        if (c.breaker.hard_rate_warn > c.breaker.hard_rate_pause)
            fail(c, *t, "breaker.hard_rate_warn", "must not be above hard_rate_pause");
        if (c.breaker.complaint_rate_warn > c.breaker.complaint_rate_pause)
            fail(c, *t, "breaker.complaint_rate_warn", "must not be above complaint_rate_pause");
        r.strings("scopes", c.breaker.scopes);
        for (auto& sc : c.breaker.scopes)
            if (sc != "campaign" && sc != "sender_domain")
                fail(c, *r.node("scopes"), "breaker.scopes", "each must be \"campaign\" or \"sender_domain\", got \"" + sc + "\"");
    }
    read_shaping(root, c);
    if (auto* a = top.array_of_tables("pool")) {
        for (auto& e : *a) {
            table_reader r(c, *e.as_table(), "pool");
            r.known({"name", "source_ips", "warmup", "warmup_start"});
            pool_entry p;
            r.str("name", p.name);
            if (p.name.empty()) fail(c, e, "pool.name", "missing");
            for (auto& other : c.pools)
                if (other.name == p.name) fail(c, *r.node("name"), "pool.name", "two [[pool]] tables named " + p.name);
            r.strings("source_ips", p.source_ips);
            if (p.source_ips.empty()) fail(c, e, "pool.source_ips", "missing or empty");
            for (auto& ip : p.source_ips)
                if (!parse_cidr(ip + (ip.find(':') == std::string::npos ? "/32" : "/128")))
                    fail(c, *r.node("source_ips"), "pool.source_ips", "not an IP address: \"" + ip + "\"");
            r.integers("warmup", p.warmup, 1, 100000000);
            r.str("warmup_start", p.warmup_start);
            if (!p.warmup.empty() && p.warmup_start.empty())
                fail(c, e, "pool.warmup_start", "missing: the day warmup's first figure applies (\"YYYY-MM-DD\")");
            if (!p.warmup_start.empty() && !valid_day(p.warmup_start))
                fail(c, *r.node("warmup_start"), "pool.warmup_start", "expected a date \"YYYY-MM-DD\", got \"" + p.warmup_start + "\"");
            c.pools.push_back(std::move(p));
        }
    }
    if (auto* a = top.array_of_tables("campaign")) {
        for (auto& e : *a) {
            table_reader r(c, *e.as_table(), "campaign");
            r.known({"id", "pool"});
            campaign_entry ce;
            r.str("id", ce.id);
            r.str("pool", ce.pool);
            if (ce.id.empty()) fail(c, e, "campaign.id", "missing");
            c.campaigns.push_back(std::move(ce));
        }
    }
    auto pool_known = [&c](const std::string& n) {
        for (auto& p : c.pools)
            if (p.name == n) return true;
        return false;
    };
    if (!c.delivery.pool.empty() && !pool_known(c.delivery.pool))
        fail(c, *top.node("delivery"), "delivery.pool", "no [[pool]] named \"" + c.delivery.pool + "\"");
    if (auto* a = top.array_of_tables("campaign"))
        for (std::size_t i = 0; i < c.campaigns.size(); ++i)
            if (!c.campaigns[i].pool.empty() && !pool_known(c.campaigns[i].pool))
                fail(c, (*a)[i], "campaign.pool", "no [[pool]] named \"" + c.campaigns[i].pool + "\"");
    if (auto* a = top.array_of_tables("dkim")) {
        for (auto& e : *a) {
            table_reader r(c, *e.as_table(), "dkim");
            r.known({"domain", "selector", "key_file", "headers", "canonicalization"});
            dkim_entry d;
            r.str("domain", d.domain);
            for (auto& ch : d.domain) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            if (d.domain.empty() || (d.domain != "*" && d.domain.find('.') == std::string::npos))
                fail(c, e, "dkim.domain", "missing, or not a domain name nor \"*\"");
            r.str("selector", d.selector);
            if (d.selector.empty() || d.selector.find_first_of(" ;=\t") != std::string::npos)
                fail(c, e, "dkim.selector", "missing, or not a DNS label");
            for (auto& other : c.dkim)
                if (other.domain == d.domain && other.selector == d.selector)
                    fail(c, e, "dkim.selector", "two [[dkim]] tables for " + d.domain + " with selector " + d.selector);
            r.existing_file("key_file", d.key_file);
            if (d.key_file.empty()) fail(c, e, "dkim.key_file", "missing");
            r.strings("headers", d.headers);
            bool from = false;
            for (auto& h : d.headers) {
                if (h.empty() || h.find_first_of(": \t;") != std::string::npos)
                    fail(c, *r.node("headers"), "dkim.headers", "not a header field name: \"" + h + "\"");
                std::string l = h;
                for (auto& ch : l) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                from = from || l == "from";
            }
            if (!from) fail(c, *r.node("headers"), "dkim.headers", "must include From (RFC 6376 5.4)");
            r.one_of("canonicalization", d.canonicalization,
                     {"relaxed/relaxed", "relaxed/simple", "simple/relaxed", "simple/simple", "relaxed", "simple"});
            c.dkim.push_back(std::move(d));
        }
    }
    if (auto* t = top.sub("unsubscribe")) {
        table_reader r(c, *t, "unsubscribe");
        r.known({"enabled", "listen", "url_base", "campaigns", "tls_cert", "tls_key", "max_connections",
                 "max_connections_per_ip", "request_timeout"});
        r.boolean("enabled", c.unsubscribe.enabled);
        r.listen_list("listen", c.unsubscribe.listen);
        r.str("url_base", c.unsubscribe.url_base);
        http_url u;
        if (!parse_http_url(c.unsubscribe.url_base, u) || c.unsubscribe.url_base.back() != '/' ||
            c.unsubscribe.url_base.find_first_of("?#") != std::string::npos)
            fail(c, *t, "unsubscribe.url_base", "expected \"https://host[:port]/path/\" ending in /, without a query, got \"" +
                                                    c.unsubscribe.url_base + "\"");
        if (c.unsubscribe.enabled && c.unsubscribe.listen.empty())
            fail(c, *t, "unsubscribe.listen", "empty while enabled: the links in the mail would lead nowhere");
        r.strings("campaigns", c.unsubscribe.campaigns);
        r.existing_file("tls_cert", c.unsubscribe.tls_cert);
        r.existing_file("tls_key", c.unsubscribe.tls_key);
        if (c.unsubscribe.tls_cert.empty() != c.unsubscribe.tls_key.empty())
            fail(c, *t, "unsubscribe.tls_cert", "tls_cert and tls_key must be set together");
        r.integer("max_connections", c.unsubscribe.max_connections, 1, 100000);
        r.integer("max_connections_per_ip", c.unsubscribe.max_connections_per_ip, 0, 100000);
        r.duration("request_timeout", c.unsubscribe.request_timeout);
        if (c.unsubscribe.request_timeout.count() < 1) fail(c, *t, "unsubscribe.request_timeout", "must be at least 1s");
    }
    if (auto* a = top.array_of_tables("webhook")) {
        for (auto& e : *a) {
            table_reader r(c, *e.as_table(), "webhook");
            r.known({"url", "secret", "events", "batch", "timeout", "max_age"});
            webhook w;
            r.str("url", w.url);
            if (w.url.empty()) fail(c, e, "webhook.url", "missing");
            if (!parse_http_url(w.url, w.endpoint))
                fail(c, *r.node("url"), "webhook.url", "expected \"http://host[:port]/path\" or https://, got \"" + w.url + "\"");
            for (auto& other : c.webhooks)
                if (other.url == w.url) fail(c, *r.node("url"), "webhook.url", "two [[webhook]] tables with the same url");
            r.str("secret", w.secret);
            if (w.secret.size() < 16) fail(c, e, "webhook.secret", "missing or shorter than 16 characters");
            r.strings("events", w.events);
            for (auto& ev : w.events)
                if (ev != "*" && !events_known(ev))
                    fail(c, *r.node("events"), "webhook.events", "not an event type: \"" + ev + "\"");
            r.integer("batch", w.batch, 1, 10000);
            r.duration("timeout", w.timeout);
            r.duration("max_age", w.max_age);
            if (w.timeout.count() < 1) fail(c, e, "webhook.timeout", "must be at least 1s");
            c.webhooks.push_back(std::move(w));
        }
    }
}
}  // namespace

bool parse_http_url(std::string_view text, http_url& out) {
    http_url u;
    if (text.rfind("https://", 0) == 0) {
        u.tls = true;
        u.port = 443;
        text.remove_prefix(8);
    } else if (text.rfind("http://", 0) == 0) {
        text.remove_prefix(7);
    } else {
        return false;
    }
    auto slash = text.find('/');
    std::string_view authority = text.substr(0, slash);
    if (slash != std::string_view::npos) u.target = std::string(text.substr(slash));
    if (authority.empty() || authority.find('@') != std::string_view::npos) return false;
    if (u.target.find('#') != std::string::npos) return false;
    for (char ch : u.target)
        if (static_cast<unsigned char>(ch) <= ' ' || ch == 0x7f) return false;
    if (authority.front() == '[') {  // [v6]:port
        auto close = authority.find(']');
        if (close == std::string_view::npos) return false;
        u.host = std::string(authority.substr(1, close - 1));
        authority.remove_prefix(close + 1);
        if (!authority.empty() && authority.front() != ':') return false;
    } else {
        auto colon = authority.find(':');
        u.host = std::string(authority.substr(0, colon));
        authority.remove_prefix(colon == std::string_view::npos ? authority.size() : colon);
    }
    if (u.host.empty()) return false;
    for (char ch : u.host)
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' || ch == ':' || ch == '_')) return false;
    if (!authority.empty()) {  // ":port"
        authority.remove_prefix(1);
        if (authority.empty() || authority.size() > 5) return false;
        unsigned p = 0;
        for (char ch : authority) {
            if (ch < '0' || ch > '9') return false;
            p = p * 10 + unsigned(ch - '0');
        }
        if (p == 0 || p > 65535) return false;
        u.port = static_cast<std::uint16_t>(p);
    }
    out = std::move(u);
    return true;
}

bool parse_duration(std::string_view text, seconds& out) {
    if (text.empty()) return false;
    std::size_t i = 0;
    std::uint64_t n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        n = n * 10 + static_cast<std::uint64_t>(text[i] - '0');
        if (n > 100000000) return false;
        ++i;
    }
    if (i == 0) return false;
    std::string_view unit = text.substr(i);
    if (unit == "ms") out = seconds((n + 999) / 1000);
    else if (unit == "s") out = seconds(n);
    else if (unit == "m") out = seconds(n * 60);
    else if (unit == "h") out = seconds(n * 3600);
    else if (unit == "d") out = seconds(n * 86400);
    else return false;
    return true;
}


bool parse_size(std::string_view text, std::uint64_t& out) {
    std::size_t i = 0;
    std::uint64_t n = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        n = n * 10 + static_cast<std::uint64_t>(text[i] - '0');
        if (n > (1ULL << 40)) return false;
        ++i;
    }
    if (i == 0) return false;
    std::string_view unit = text.substr(i);
    std::uint64_t mult = 0;
    if (unit.empty() || unit == "B") mult = 1;
    else if (unit == "KiB") mult = 1ULL << 10;
    else if (unit == "MiB") mult = 1ULL << 20;
    else if (unit == "GiB") mult = 1ULL << 30;
    else if (unit == "KB") mult = 1000;
    else if (unit == "MB") mult = 1000 * 1000;
    else if (unit == "GB") mult = 1000ULL * 1000 * 1000;
    else return false;
    out = n * mult;
    return true;
}

bool load_config(const std::filesystem::path& path, config& out, std::string& error) {
    std::error_code fec;
    if (!std::filesystem::is_regular_file(path, fec)) {
        out = config{};
        out.file = path;
        error = path.string() + ": cannot read the configuration file";
        return false;
    }
    std::ifstream in(path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    return load_config_text(text, path, out, error);
}

bool load_config_text(std::string_view text, const std::filesystem::path& path, config& out, std::string& error) {
    out = config{};
    out.file = path;
    try {
        toml::table root = toml::parse(text, path.string());
        load(root, out);
    } catch (const toml::parse_error& e) {
        std::ostringstream o;
        o << path.string() << ':' << e.source().begin.line << ": " << e.description();
        error = o.str();
        return false;
    } catch (const config_error& e) {
        error = e.text;
        return false;
    }
    return true;
}

}  // namespace ricochet
