// Tests for config/config.hpp: the shipped file loads; every mistake names
// the file, line and key.
#include "config/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace ricochet;

namespace {
std::string load_text(const std::string& text, config& c, bool& ok) {
    auto path = std::filesystem::temp_directory_path() / ("ricochet-config-" + std::to_string(::getpid()) + ".toml");
    std::ofstream(path) << text;
    std::string err;
    ok = load_config(path, c, err);
    std::filesystem::remove(path);
    return err;
}
}  // namespace

TEST(Config, ShippedFileLoadsWithDefaults) {
    config c;
    std::string err;
    // Relative paths in the file are relative to where ricochetd starts: the repository.
    std::filesystem::current_path(RICOCHET_SOURCE_DIR);
    ASSERT_TRUE(load_config(std::string(RICOCHET_SOURCE_DIR) + "/etc/ricochet.toml", c, err)) << err;
    EXPECT_EQ(c.submission.listen, std::vector<std::string>{"127.0.0.1:2525"});
    EXPECT_EQ(c.submission.max_message_size, 26214400u);
    EXPECT_EQ(c.submission.max_recipients, 1000u);
    EXPECT_EQ(c.retry.interval, seconds(900));
    EXPECT_EQ(c.retry.max_age, seconds(72 * 3600));
    EXPECT_EQ(c.server.spool_dir, "var/spool");
    EXPECT_EQ(c.bounce_listener.max_connections, 100u) << "the open listener has its own, smaller limits";
    EXPECT_EQ(c.bounce_listener.max_message_size, 2097152u);
}

TEST(Config, Errors) {
    struct { const char* name; std::string text; std::string want; } rows[] = {
        {"unknown key", "[submission]\nlisen = [\"127.0.0.1:1\"]\n", ":2: submission.lisen: unknown key"},
        {"unknown table", "[sumbission]\n", ":1: sumbission: unknown key"},
        {"wrong type", "[submission]\n\nmax_recipients = \"ten\"\n", ":3: submission.max_recipients: expected an integer, got a string"},
        {"out of range", "[delivery]\nport = 70000\n", ":2: delivery.port: must be between 1 and 65535"},
        {"bad duration", "[retry]\ninterval = \"15 minutes\"\n", ":2: retry.interval: expected a duration"},
        {"bad enum", "[delivery]\ntls = \"maybe\"\n", ":2: delivery.tls: must be one of opportunistic, required, off"},
        {"bad listen", "[submission]\nlisten = [\"localhost\"]\n", ":2: submission.listen: expected \"host:port\""},
        {"bad network", "[submission]\ntrusted_networks = [\"10.0.0.0/40\"]\n", ":2: submission.trusted_networks: not a network"},
        {"missing rules file", "[bounce]\nrules = \"/nonexistent/rules.toml\"\n", ":2: bounce.rules: file not found"},
        {"missing file", "[submission]\ntls_cert = \"/nonexistent/cert.pem\"\ntls_key = \"/nonexistent/key.pem\"\n", ":2: submission.tls_cert: file not found"},
        {"toml syntax", "[server\n", ":1: "},
        // A name the OS refuses to look up (ENAMETOOLONG) is "not found", not an exception (found by fuzz_config).
        {"path too long", "[bounce]\nrules = \"/" + std::string(5000, 'x') + "\"\n", ":2: bounce.rules: file not found"},
        {"route without host", "[[delivery.route]]\ndomain = \"a.example\"\n", "delivery.route.host"},
        {"unknown state backend", "[server]\nstate = \"mysql://db/ricochet\"\n", ":2: server.state: \"mysql:...\": unknown backend \"mysql\""},
        {"state without scheme", "[server]\nstate = \"var/state.db\"\n", ":2: server.state: \"var/state.db\": unknown backend (expected sqlite:PATH or postgresql://user:password@host:port/database)"},
        {"postgresql without //", "[server]\nstate = \"postgresql:u:pw@h/db\"\n", ":2: server.state: \"postgresql:...\": expected postgresql://"},
        {"verify without required", "[delivery]\ntls_verify = true\n", ":1: delivery.tls_verify: needs tls = \"required\""},
        {"http unknown key", "[http]\nport = 1\n", ":2: http.port: unknown key"},
        {"dkim without key", "[[dkim]]\ndomain = \"a.example\"\nselector = \"s\"\n", "dkim.key_file: missing"},
        {"dkim missing key file", "[[dkim]]\ndomain = \"a.example\"\nselector = \"s\"\nkey_file = \"/nonexistent/k.pem\"\n", ":4: dkim.key_file: file not found"},
        {"dkim without From", "[[dkim]]\ndomain = \"a.example\"\nselector = \"s\"\nkey_file = \"" RICOCHET_SOURCE_DIR "/etc/ricochet.toml\"\nheaders = [\"To\"]\n", "dkim.headers: must include From"},
        {"dkim bad canon", "[[dkim]]\ndomain = \"*\"\nselector = \"s\"\nkey_file = \"" RICOCHET_SOURCE_DIR "/etc/ricochet.toml\"\ncanonicalization = \"loose\"\n", "dkim.canonicalization: must be one of"},
        {"dkim twice", "[[dkim]]\ndomain = \"a.example\"\nselector = \"s\"\nkey_file = \"" RICOCHET_SOURCE_DIR "/etc/ricochet.toml\"\n[[dkim]]\ndomain = \"A.example\"\nselector = \"s\"\nkey_file = \"" RICOCHET_SOURCE_DIR "/etc/ricochet.toml\"\n", "dkim.selector: two [[dkim]] tables for a.example"},
        {"unsubscribe url with query", "[unsubscribe]\nurl_base = \"https://u.example/u?x=/\"\n", "unsubscribe.url_base: expected"},
        {"unsubscribe url without slash", "[unsubscribe]\nurl_base = \"https://u.example/u\"\n", "unsubscribe.url_base: expected"},
        {"unsubscribe enabled nowhere", "[unsubscribe]\nenabled = true\nlisten = []\n", "unsubscribe.listen: empty while enabled"},
        {"http bad network", "[http]\ntrusted_networks = [\"everyone\"]\n", ":2: http.trusted_networks: not a network"},
        {"http half a TLS pair", "[http]\ntls_key = \"" RICOCHET_SOURCE_DIR "/etc/ricochet.toml\"\n", "http.tls_cert: tls_cert and tls_key must be set together"},
        {"http missing tokens file", "[http]\ntokens_file = \"/nonexistent/tokens\"\n", ":2: http.tokens_file: file not found"},
        {"http body limit", "[http]\nmax_body = 10\n", ":2: http.max_body: must be between 1024"},
        {"http zero timeout", "[http]\nrequest_timeout = \"0s\"\n", "http.request_timeout: must be at least 1s"},
        {"webhook without url", "[[webhook]]\nsecret = \"0123456789abcdef\"\n", "webhook.url: missing"},
        {"webhook bad url", "[[webhook]]\nurl = \"ftp://x/\"\nsecret = \"0123456789abcdef\"\n", ":2: webhook.url: expected \"http://host[:port]/path\""},
        {"webhook short secret", "[[webhook]]\nurl = \"http://127.0.0.1/\"\nsecret = \"short\"\n", "webhook.secret: missing or shorter than 16"},
        {"webhook unknown event", "[[webhook]]\nurl = \"http://127.0.0.1/\"\nsecret = \"0123456789abcdef\"\nevents = [\"bounce\"]\n", ":4: webhook.events: not an event type: \"bounce\""},
        {"webhook twice", "[[webhook]]\nurl = \"http://a/\"\nsecret = \"0123456789abcdef\"\n[[webhook]]\nurl = \"http://a/\"\nsecret = \"0123456789abcdef\"\n", ":5: webhook.url: two [[webhook]] tables with the same url"},
        {"webhook batch", "[[webhook]]\nurl = \"http://a/\"\nsecret = \"0123456789abcdef\"\nbatch = 0\n", ":4: webhook.batch: must be between 1 and 10000"},
    };
    for (auto& r : rows) {
        config c;
        bool ok = true;
        auto err = load_text(r.text, c, ok);
        EXPECT_FALSE(ok) << r.name;
        EXPECT_NE(err.find(r.want), std::string::npos) << r.name << ": got \"" << err << "\", want it to contain \"" << r.want << "\"";
    }
}

TEST(Config, ValuesAndOverrides) {
    config c;
    bool ok = false;
    auto err = load_text(R"(
[server]
hostname = "mta.example"
[submission]
listen = ["127.0.0.1:2600", "[::1]:2600"]
max_message_size = 2048
[retry]
interval = "1m"
[[retry.domain]]
domain = "slow.example"
interval = "2h"
[[delivery.route]]
domain = "test.example"
host = "127.0.0.1:2601"
[bounce_listener]
max_connections = 7
max_message_size = 65536
)", c, ok);
    ASSERT_TRUE(ok) << err;
    EXPECT_EQ(c.server.hostname, "mta.example");
    EXPECT_EQ(c.submission.listen.size(), 2u);
    EXPECT_EQ(c.submission.max_message_size, 2048u);
    ASSERT_EQ(c.retry.domains.size(), 1u);
    EXPECT_EQ(c.retry.domains[0].interval, seconds(7200));
    EXPECT_EQ(c.retry.domains[0].max_age, seconds(72 * 3600)) << "inherits the global max_age";
    ASSERT_EQ(c.delivery.routes.size(), 1u);
    EXPECT_EQ(c.delivery.routes[0].host, "127.0.0.1:2601");
    EXPECT_EQ(c.bounce_listener.max_connections, 7u);
    EXPECT_EQ(c.bounce_listener.max_message_size, 65536u);
}

TEST(Config, Durations) {
    struct { std::string in; bool ok; long long secs; } rows[] = {
        {"30s", true, 30}, {"15m", true, 900}, {"72h", true, 259200}, {"2d", true, 172800}, {"500ms", true, 1},
        {"", false, 0}, {"m", false, 0}, {"10", false, 0}, {"10x", false, 0}, {"-1s", false, 0}};
    for (auto& r : rows) {
        seconds s{0};
        EXPECT_EQ(parse_duration(r.in, s), r.ok) << r.in;
        if (r.ok) {
            EXPECT_EQ(s.count(), r.secs) << r.in;
        }
    }
}

TEST(Config, SizesAndRetention) {
    struct { std::string in; bool ok; std::uint64_t bytes; } rows[] = {
        {"1GiB", true, 1ULL << 30}, {"512MiB", true, 512ULL << 20}, {"64KiB", true, 65536}, {"10MB", true, 10000000},
        {"1000", true, 1000}, {"0", true, 0}, {"7B", true, 7}, {"", false, 0}, {"GiB", false, 0}, {"1TiB", false, 0},
        {"-1", false, 0}};
    for (auto& r : rows) {
        std::uint64_t v = 99;
        EXPECT_EQ(parse_size(r.in, v), r.ok) << r.in;
        if (r.ok) EXPECT_EQ(v, r.bytes) << r.in;
    }
    config c;
    std::string err;
    ASSERT_TRUE(load_config_text("[server]\nevents_max_size = \"16KiB\"\nevents_max_age = \"0\"\nevents_keep = 3\nstate_timeout = \"0\"\n"
                                 "[retention]\ndecisions = \"0\"\ndsn_unparsed = \"7d\"\nfree_files = 100\n", "t.toml", c, err)) << err;
    EXPECT_EQ(c.retention.free_files, 100u);
    EXPECT_EQ(c.server.events_max_size, 16384u);
    EXPECT_EQ(c.server.events_max_age.count(), 0);
    EXPECT_EQ(c.server.events_keep, 3u);
    EXPECT_EQ(c.server.state_timeout.count(), 0);
    EXPECT_EQ(c.retention.decisions.count(), 0);
    EXPECT_EQ(c.retention.dsn_unparsed.count(), 7 * 86400);
    config d;
    ASSERT_TRUE(load_config_text("", "t.toml", d, err));
    EXPECT_EQ(d.server.events_max_size, 1ULL << 30);
    EXPECT_EQ(d.retention.decisions.count(), 90 * 86400);
    EXPECT_EQ(d.server.state_timeout.count(), 30);
    ASSERT_TRUE(load_config_text("[server]\nstate_timeout = \"2m\"\n", "t.toml", d, err)) << err;
    EXPECT_EQ(d.server.state_timeout.count(), 120);
    for (std::string bad : {"[server]\nevents_max_size = \"lots\"\n", "[server]\nevents_keep = 0\n",
                            "[retention]\ndecisions = \"soon\"\n",
                            "[server]\nstate_timeout = \"never\"\n", "[retention]\nkeep = \"1d\"\n"})
        EXPECT_FALSE(load_config_text(bad, "t.toml", c, err)) << bad;
}

TEST(Config, IoThreadsDefaultToHalfTheCores) {
    config c;
    std::string err;
    EXPECT_EQ(c.server.io_threads, 0u);
    EXPECT_EQ(io_threads_for(c, 0), 1u) << "an unknown core count: one thread";
    EXPECT_EQ(io_threads_for(c, 1), 1u);
    EXPECT_EQ(io_threads_for(c, 2), 1u);
    EXPECT_EQ(io_threads_for(c, 3), 1u);
    EXPECT_EQ(io_threads_for(c, 8), 4u);
    ASSERT_TRUE(load_config_text("[server]\nio_threads = 3\n", "t.toml", c, err)) << err;
    EXPECT_EQ(io_threads_for(c, 2), 3u) << "a set figure wins";
    for (std::string bad : {"[server]\nio_threads = -1\n", "[server]\nio_threads = 257\n", "[server]\nio_threads = \"2\"\n"})
        EXPECT_FALSE(load_config_text(bad, "t.toml", c, err)) << bad;
}

TEST(Config, ATableWithoutAFileKeyDoesNotCheckTheDefaultPath) {
    // [bounce] without `rules`, run where etc/bounce-rules.toml does not
    // exist: not a config error (the daemon reports the missing rules when
    // it loads them), and never a crash (it dereferenced the absent key).
    auto here = std::filesystem::current_path();
    std::filesystem::current_path("/");
    config c;
    bool ok = false;
    auto err = load_text("[bounce]\nheld_after_bounces = 4\n", c, ok);
    std::filesystem::current_path(here);
    EXPECT_TRUE(ok) << err;
    EXPECT_EQ(c.bounce.held_after_bounces, 4u);
}

TEST(Config, HttpAndWebhooks) {
    config c;
    bool ok = false;
    auto err = load_text(R"(
[http]
listen = ["127.0.0.1:9000", "[::1]:9000"]
trusted_networks = ["10.0.0.0/8"]
max_body = 4096
request_timeout = "5s"
[[webhook]]
url = "https://hooks.example:8443/ricochet?key=1"
secret = "0123456789abcdef"
events = ["bounced", "complaint"]
batch = 10
[[webhook]]
url = "http://[::1]/h"
secret = "fedcba9876543210"
)", c, ok);
    ASSERT_TRUE(ok) << err;
    EXPECT_EQ(c.http.listen.size(), 2u);
    EXPECT_EQ(c.http.max_body, 4096u);
    EXPECT_EQ(c.http.max_import_body, 1073741824u);
    EXPECT_EQ(c.http.request_timeout, seconds(5));
    ASSERT_EQ(c.webhooks.size(), 2u);
    EXPECT_TRUE(c.webhooks[0].endpoint.tls);
    EXPECT_EQ(c.webhooks[0].endpoint.host, "hooks.example");
    EXPECT_EQ(c.webhooks[0].endpoint.port, 8443);
    EXPECT_EQ(c.webhooks[0].endpoint.target, "/ricochet?key=1");
    EXPECT_EQ(c.webhooks[0].events, (std::vector<std::string>{"bounced", "complaint"}));
    EXPECT_EQ(c.webhooks[0].max_age, seconds(72 * 3600));
    EXPECT_EQ(c.webhooks[1].endpoint.host, "::1");
    EXPECT_EQ(c.webhooks[1].endpoint.port, 80);
    EXPECT_EQ(c.webhooks[1].events.size(), 8u) << "the default: what a CRM acts on";
    config none;
    ASSERT_TRUE(load_config_text("[http]\nlisten = []\n", "t", none, err)) << err;
    EXPECT_TRUE(none.http.listen.empty()) << "[] turns the API off";
}

TEST(Config, HttpUrls) {
    http_url u;
    for (auto bad : {"", "http://", "http:///x", "http://a b/", "http://u@h/", "http://h:0/", "http://h:65536/",
                     "http://h:12x/", "http://[::1/", "http://h/#frag", "https//h/", "http://h/a b"})
        EXPECT_FALSE(parse_http_url(bad, u)) << bad;
    ASSERT_TRUE(parse_http_url("http://127.0.0.1:8080", u));
    EXPECT_EQ(u.target, "/");
    EXPECT_EQ(u.port, 8080);
}

