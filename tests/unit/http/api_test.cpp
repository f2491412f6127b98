// The API's routes over a real spool and state store in a temporary
// directory, the control socket's handler faked (its own tests are the
// daemon's): what each malformed request gets, and that an injection is
// answered only once its commit is done.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <thread>
#include <future>
#include <nlohmann/json.hpp>

#include "bounce/classifier.hpp"
#include "bounce/suppression_list.hpp"
#include "config/config.hpp"
#include "events/event_json.hpp"
#include "events/metrics.hpp"
#include "http/api.hpp"
#include "http/dashboard.hpp"
#include "queue/clock.hpp"
#include "views/views.hpp"
#include "queue/spool.hpp"
#include "state/recipient_state.hpp"

using namespace ricochet;
using nlohmann::json;

namespace {
struct api_fixture : ::testing::Test {
    std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                ("ricochet-api-" + std::to_string(::getpid()) + "-" +
                                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
    config cfg;
    std::unique_ptr<queue::spool> spool;
    std::unique_ptr<state::recipient_state> st;
    bounce::suppression_list suppression;
    events::metrics metrics;
    std::vector<json> control_calls;
    json control_answer = {{"ok", true}, {"matched", 1}, {"changed", json::array()}};
    std::unique_ptr<http::api> a;

    void SetUp() override {
        std::filesystem::create_directories(dir);
        cfg.server.hostname = "mta.example";
        cfg.server.events_log = dir / "events.jsonl";
        std::error_code ec;
        spool = queue::spool::open(dir / "spool", true, ec);
        ASSERT_TRUE(spool) << ec.message();
        std::string err;
        st = state::open_state("sqlite:" + (dir / "state.db").string(), {}, false, err);
        ASSERT_TRUE(st) << err;
        a = std::make_unique<http::api>(http::api_context{
            cfg, *spool, *st, suppression, metrics,
            [this](const json& req) {
                control_calls.push_back(req);
                return control_answer;
            },
            [] { return std::map<std::string, std::int64_t>{{"slow.example", 1796035230000}}; }, [] { return std::string(); }, {}, nullptr, {}});
    }
    void TearDown() override {
        spool.reset();
        std::filesystem::remove_all(dir);
    }
    http::response call(std::string method, std::string target, std::string body = "") {
        http::request req;
        req.method = std::move(method);
        req.target = target;
        EXPECT_TRUE(http::parse_target(target, req.path, req.query)) << target;
        req.body = std::move(body);
        req.client_ip = "127.0.0.1";
        std::promise<http::response> p;
        auto f = p.get_future();
        a->handle(req, [&p](http::response r) { p.set_value(std::move(r)); });
        return f.get();
    }
    static std::string error_of(const http::response& r) { return json::parse(r.body).value("error", ""); }
};
}  // namespace

TEST_F(api_fixture, UnknownPathsAre404AndWrongMethods405WithAllow) {
    auto r = call("GET", "/v2/nothing");
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(error_of(r), "no such resource: /v2/nothing");
    r = call("DELETE", "/v1/messages");
    EXPECT_EQ(r.status, 405);
    ASSERT_EQ(r.headers.size(), 1u);
    EXPECT_EQ(r.headers[0], (std::pair<std::string, std::string>{"Allow", "POST"}));
    EXPECT_EQ(call("POST", "/metrics").status, 405);
    EXPECT_EQ(call("GET", "/v1/queue/hold").status, 405);
}

TEST_F(api_fixture, BadParametersAre400) {
    EXPECT_EQ(error_of(call("GET", "/v1/queue?state=frozen")), "state must be active, deferred or hold");
    EXPECT_EQ(error_of(call("GET", "/v1/recipients")), "status must be active, bounced, held or unsubscribed");
    EXPECT_EQ(error_of(call("GET", "/v1/recipients?status=held&limit=0")), "limit must be a number from 1 to 10000");
    EXPECT_EQ(error_of(call("GET", "/v1/recipients?status=held&limit=5x")), "limit must be a number from 1 to 10000");
    EXPECT_EQ(error_of(call("GET", "/v1/events?after=-1")).substr(0, 26), "after must be a number fro");
    EXPECT_EQ(error_of(call("GET", "/v1/events?types=bounced,nope")), "not an event type: nope");
    EXPECT_EQ(error_of(call("GET", "/v1/stats?since=yesterday")), "since must be a duration such as 24h or 7d");
    EXPECT_EQ(error_of(call("POST", "/v1/messages", "{not json")), "the body is not valid JSON");
    EXPECT_EQ(error_of(call("POST", "/v1/messages")), "a JSON body is required");
    EXPECT_EQ(error_of(call("POST", "/v1/queue/hold", "{}")), "give exactly one of \"id\", \"domain\", \"campaign\", \"all\": true");
    EXPECT_EQ(error_of(call("POST", "/v1/queue/hold", R"({"id":"A","domain":"b"})")),
              "give exactly one of \"id\", \"domain\", \"campaign\", \"all\": true");
    EXPECT_EQ(error_of(call("POST", "/v1/queue/hold", R"({"all":false})")), "\"all\" must be true");
    EXPECT_EQ(error_of(call("POST", "/v1/queue/hold", R"({"id":5})")), "\"id\" must be a non-empty string");
    EXPECT_EQ(error_of(call("POST", "/v1/queue/hold", "[1]")),
              "the body must be {\"id\"}, {\"domain\"}, {\"campaign\"} or {\"all\": true}");
    EXPECT_TRUE(control_calls.empty()) << "nothing malformed reaches the control handler";
}

TEST_F(api_fixture, QueueOperationsGoThroughControl) {
    auto r = call("POST", "/v1/queue/hold", R"({"domain":"example.com"})");
    EXPECT_EQ(r.status, 200);
    ASSERT_EQ(control_calls.size(), 1u);
    EXPECT_EQ(control_calls[0], (json{{"command", "queue.hold"}, {"domain", "example.com"}}));
    control_answer = {{"ok", true}, {"matched", 0}, {"changed", json::array()}};
    r = call("POST", "/v1/queue/release", R"({"id":"6C5Y0KTV2XG00"})");
    EXPECT_EQ(r.status, 404) << "an id that is not queued";
    control_answer = {{"ok", false}, {"error", "a@b.example is unsubscribed: only `recipient clear` makes it active again"}};
    r = call("POST", "/v1/recipients/a@b.example/engage");
    EXPECT_EQ(r.status, 409) << "engage cannot undo an unsubscribe: a conflict";
    control_answer = {{"ok", false}, {"error", "database is locked"}};
    r = call("POST", "/v1/recipients/a@b.example/engage");
    EXPECT_EQ(r.status, 503) << "the store failing is not the client's fault";
    EXPECT_EQ(error_of(r), "database is locked");
    EXPECT_EQ(control_calls.back(),
              (json{{"command", "recipient.set"}, {"address", "a@b.example"}, {"status", "active"}, {"why", "engage"}}));
    EXPECT_EQ(call("POST", "/v1/queue/bounce", R"({"all":true})").status, 501);
}

TEST_F(api_fixture, ReadsAnswerFromTheSpoolAndTheStore) {
    EXPECT_EQ(call("GET", "/v1/queue/NOTANID").status, 404);
    EXPECT_EQ(call("GET", "/v1/queue/6C5Y0KTV2XG00").status, 404);
    EXPECT_EQ(call("GET", "/v1/recipients/nobody@b.example").status, 404);
    EXPECT_EQ(call("GET", "/v1/campaigns/none").status, 404);
    auto summary = json::parse(call("GET", "/v1/queue/summary").body);
    EXPECT_EQ(summary["total"]["messages"], 0);
    EXPECT_EQ(summary["domains"][0]["domain"], "slow.example") << "a paused domain shows with nothing queued";
    EXPECT_EQ(summary["domains"][0]["paused_until"], "2026-11-30T10:40:30Z");
    auto page = json::parse(call("GET", "/v1/recipients?status=held").body);
    EXPECT_TRUE(page["recipients"].empty());
    EXPECT_TRUE(page["next"].is_null());
    auto health = call("GET", "/healthz");
    EXPECT_EQ(health.status, 200);
    EXPECT_EQ(json::parse(health.body)["spool"], "ok");
    auto m = call("GET", "/metrics");
    EXPECT_EQ(m.content_type, "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_NE(m.body.find("ricochet_submitted_total 0\n"), std::string::npos);
}

TEST_F(api_fixture, EventsArePagedFromTheLogAsWritten) {
    {
        std::ofstream out(cfg.server.events_log);
        std::string buf;
        for (std::uint64_t s = 1; s <= 25; ++s) {
            events::event e;
            e.type = s % 5 ? events::event_type::delivered : events::event_type::bounced;
            e.seq = s;
            e.id = "n-" + std::to_string(s);
            e.time_ms = 1796035230000;
            events::append_json_line(buf, e);
        }
        out << buf;
    }
    auto j = json::parse(call("GET", "/v1/events?after=3&limit=10").body);
    ASSERT_EQ(j["events"].size(), 10u);
    EXPECT_EQ(j["events"][0]["seq"], 4);
    EXPECT_EQ(j["events"][0]["id"], "n-4");
    EXPECT_EQ(j["last_seq"], 13);
    EXPECT_EQ(j["more"], true);
    j = json::parse(call("GET", "/v1/events?after=13&types=bounced").body);
    ASSERT_EQ(j["events"].size(), 3u);
    EXPECT_EQ(j["events"][0]["seq"], 15);
    EXPECT_EQ(j["last_seq"], 25);
    EXPECT_EQ(j["more"], false);
    j = json::parse(call("GET", "/v1/events?after=99").body);
    EXPECT_TRUE(j["events"].empty());
    EXPECT_EQ(j["last_seq"], 99) << "a cursor past the end stays where it is";
}

TEST_F(api_fixture, AnInjectionIsAnsweredAfterItsCommitAndIsOnDisk) {
    cfg.submission.max_message_size = 1 << 20;
    auto r = call("POST", "/v1/messages", R"({"from":"s@x.example","to":["a@b.example"],"campaign":"c","text":"hello"})");
    ASSERT_EQ(r.status, 202) << r.body;
    auto j = json::parse(r.body);
    std::string id = j["queue_id"];
    EXPECT_EQ(spool->locate(id), queue::queue_state::active) << "durable in active/ before the 202";
    auto shown = json::parse(call("GET", "/v1/queue/" + id).body);
    EXPECT_EQ(shown["campaign"], "c");
    EXPECT_EQ(shown["recipients"][0]["recipient"], "a@b.example");
    EXPECT_EQ(call("POST", "/v1/messages", R"({"from":"s@x.example","to":["a@b.example"],"text":")" +
                                               std::string(1100000, 'x') + "\"}")
                  .status,
              413);
}

// ---- the dashboard's files and the endpoints only it needed -------------

TEST_F(api_fixture, TheDashboardsFilesAreServedWithTheirTypesAndPolicy) {
    auto r = call("GET", "/");
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
    EXPECT_NE(r.body.find("<script src=\"/ui/app.js\" defer></script>"), std::string::npos);
    auto header = [](const http::response& r, const std::string& k) {
        for (auto& [n, v] : r.headers)
            if (n == k) return v;
        return std::string();
    };
    EXPECT_EQ(header(r, "Content-Security-Policy"), http::dashboard_csp);
    EXPECT_EQ(header(r, "X-Frame-Options"), "DENY");
    for (auto [path, type] : {std::pair{"/ui/app.js", "text/javascript; charset=utf-8"},
                              std::pair{"/ui/chart.js", "text/javascript; charset=utf-8"},
                              std::pair{"/ui/style.css", "text/css; charset=utf-8"},
                              std::pair{"/ui/icon.svg", "image/svg+xml"}}) {
        auto f = call("GET", path);
        EXPECT_EQ(f.status, 200) << path;
        EXPECT_EQ(f.content_type, type) << path;
        std::ifstream in(std::string(RICOCHET_SOURCE_DIR) + "/http/dashboard/" + (path + 4), std::ios::binary);
        std::string want((std::istreambuf_iterator<char>(in)), {});
        EXPECT_EQ(f.body, want) << path << ": the file compiled in is the one in the repository";
    }
    EXPECT_EQ(call("GET", "/ui/").status, 404);
    EXPECT_EQ(call("GET", "/ui/nothing.js").status, 404);
    EXPECT_EQ(call("GET", "/ui/embed.cmake").status, 404) << "only the dashboard's own kinds of file";
    EXPECT_EQ(call("POST", "/").status, 405);
    // Public (no token) only while on, only for reading, only these paths.
    EXPECT_TRUE(a->is_public("GET", "/"));
    EXPECT_TRUE(a->is_public("HEAD", "/ui/app.js"));
    EXPECT_FALSE(a->is_public("POST", "/"));
    EXPECT_FALSE(a->is_public("GET", "/v1/stats"));
    EXPECT_FALSE(a->is_public("GET", "/uix"));
    cfg.http.dashboard = false;
    EXPECT_FALSE(a->is_public("GET", "/"));
    r = call("GET", "/");
    EXPECT_EQ(r.status, 404);
    EXPECT_NE(error_of(r).find("http.dashboard = false"), std::string::npos);
}

TEST_F(api_fixture, SeriesHaveEveryBucketAndTheirCounts) {
    std::int64_t hour = 3600000;
    // The buckets are the clock's hours: not within a second of the next
    // one, so that the request below sees the same hour as the events.
    if (now_ms() % hour > hour - 1000) std::this_thread::sleep_for(std::chrono::milliseconds(hour - now_ms() % hour));
    auto now = now_ms();
    auto ev = [](std::int64_t t, const char* type, const char* q, const char* rcpt, const char* campaign,
                 const char* kind = "", const char* cat = "") {
        events::event e;
        e.type = *events::parse_event_type(type);
        e.time_ms = t;
        e.queue_id = q;
        e.recipient = rcpt;
        e.campaign = campaign;
        e.kind = kind;
        e.category = cat;
        return e;
    };
    std::string err;
    st->record({ev(now - 2 * hour, "queued", "Q1", "a@x.example", "spring"),
                ev(now - 2 * hour, "queued", "Q2", "b@y.example", "spring"),
                ev(now - 2 * hour, "queued", "Q3", "c@y.example", "autumn"),
                ev(now - 2 * hour, "delivered", "Q1", "a@x.example", "spring"),
                ev(now, "deferred", "Q2", "b@y.example", "spring", "technical", "rate-limited"),
                ev(now, "bounced", "Q2", "b@y.example", "spring", "hard", "user-unknown"),
                ev(now, "delivered", "Q3", "c@y.example", "autumn"), ev(now, "complaint", "Q3", "c@y.example", "autumn")},
               err);
    ASSERT_EQ(err, "");
    auto r = call("GET", "/v1/stats/series?since=3h");
    ASSERT_EQ(r.status, 200) << r.body;
    auto j = json::parse(r.body);
    EXPECT_EQ(j["bucket"], "hour");
    ASSERT_EQ(j["series"].size(), 1u);
    auto& pts = j["series"][0]["points"];
    ASSERT_EQ(pts.size(), 4u) << "from the hour 3h ago to this one, empty hours included";
    EXPECT_EQ(pts[0]["sent"], 0);
    EXPECT_EQ(pts[1]["sent"], 3);
    EXPECT_EQ(pts[1]["delivered"], 1);
    EXPECT_EQ(pts[3]["delivered"], 1);
    EXPECT_EQ(pts[3]["hard"], 1);
    EXPECT_EQ(pts[3]["deferred"], 1);
    EXPECT_EQ(pts[3]["complaints"], 1);
    EXPECT_DOUBLE_EQ(pts[3]["delivery_rate"].get<double>(), 1.0 / 3) << "delivered / (delivered + deferred + failed)";
    EXPECT_DOUBLE_EQ(pts[3]["complaint_rate"].get<double>(), 1.0);
    EXPECT_EQ(views::format_time(now / hour * hour), pts[3]["t"]);

    j = json::parse(call("GET", "/v1/stats/series?since=3h&by=campaign").body);
    ASSERT_EQ(j["series"].size(), 2u);
    EXPECT_EQ(j["series"][0]["campaign"], "spring") << "the busiest first";
    j = json::parse(call("GET", "/v1/stats/series?since=3h&by=domain&top=1").body);
    ASSERT_EQ(j["series"].size(), 1u);
    EXPECT_EQ(j["series"][0]["domain"], "y.example");
    j = json::parse(call("GET", "/v1/stats/series?since=3h&campaign=autumn").body);
    EXPECT_EQ(j["series"][0]["points"][1]["sent"], 1);
    j = json::parse(call("GET", "/v1/stats/series?bucket=day&since=2d").body);
    EXPECT_EQ(j["bucket"], "day");
    EXPECT_EQ(j["series"][0]["points"].size(), 3u);
    j = json::parse(call("GET", "/v1/stats/series?since=3h&campaign=none").body);
    EXPECT_EQ(j["series"][0]["points"][1]["sent"], 0) << "nothing matching: zeros";

    for (auto [target, words] : {std::pair{"/v1/stats/series?bucket=week", "bucket must be hour or day"},
                                 std::pair{"/v1/stats/series?by=rule", "by must be campaign or domain"},
                                 std::pair{"/v1/stats/series?since=soon", "since must be a duration"},
                                 std::pair{"/v1/stats/series?since=200d", "too many points"},
                                 std::pair{"/v1/stats/series?top=0", "top must be a number from 1 to 100"}}) {
        auto bad = call("GET", target);
        EXPECT_EQ(bad.status, 400) << target;
        EXPECT_NE(error_of(bad).find(words), std::string::npos) << target << ": " << bad.body;
    }
    EXPECT_EQ(call("POST", "/v1/stats/series").status, 405);

    r = call("GET", "/v1/stats/replies");
    ASSERT_EQ(r.status, 200);
    j = json::parse(r.body)["replies"];
    ASSERT_EQ(j.size(), 2u);
    EXPECT_EQ(j[0]["domain"], "y.example");
    EXPECT_EQ(j[0]["count"], 1);
    EXPECT_EQ(json::parse(call("GET", "/v1/stats/replies?domain=x.example").body)["replies"].size(), 0u);
    EXPECT_EQ(call("GET", "/v1/stats/replies?limit=0").status, 400);
    // stats has the complaints too
    j = json::parse(call("GET", "/v1/stats?campaign=autumn").body);
    EXPECT_EQ(j["by_campaign"][0]["complaints"], 1);
}

TEST_F(api_fixture, ClassifyReadsAReplyAsTheDaemonWould) {
    EXPECT_EQ(call("POST", "/v1/classify", R"({"reply":"550 5.1.1 no"})").status, 404) << "no classifier given";
    bounce::classifier cl;
    std::string err;
    ASSERT_TRUE(cl.load(std::string(RICOCHET_SOURCE_DIR) + "/etc/bounce-rules.toml", err)) << err;
    a = std::make_unique<http::api>(http::api_context{
        cfg, *spool, *st, suppression, metrics, [](const json&) { return json{{"ok", true}}; },
        [] { return std::map<std::string, std::int64_t>{}; }, [] { return std::string(); }, {}, &cl, {}});
    auto r = call("POST", "/v1/classify", R"({"reply":"550 5.1.1 <a@b.example>: Recipient address rejected: User unknown"})");
    ASSERT_EQ(r.status, 200) << r.body;
    auto j = json::parse(r.body);
    EXPECT_EQ(j["kind"], "hard");
    EXPECT_EQ(j["category"], "user-unknown");
    EXPECT_EQ(j["code"], 550);
    EXPECT_EQ(j["enhanced"], "5.1.1");
    EXPECT_FALSE(j["rule"].get<std::string>().empty());
    // The stage matters: the same words after DATA, with no code to confirm them, are not proof.
    j = json::parse(call("POST", "/v1/classify", R"({"reply":"550 User unknown","stage":"end_of_data"})").body);
    auto at_rcpt = json::parse(call("POST", "/v1/classify", R"({"reply":"550 User unknown","stage":"rcpt"})").body);
    EXPECT_EQ(at_rcpt["kind"], "hard");
    EXPECT_NE(j["kind"], "hard");
    for (auto [body, words] : {std::pair{"", "a JSON body is required"}, std::pair{"[1]", "the body must be"},
                               std::pair{"{\"reply\":5}", "the body must be"},
                               std::pair{"{\"reply\":\"\"}", "1 to 65536 octets"},
                               std::pair{"{\"reply\":\"550 x\",\"stage\":\"later\"}", "unknown stage later"},
                               std::pair{"{\"reply\":\"550 x\",\"domain\":1}", "\"domain\" must be a string"}}) {
        auto bad = call("POST", "/v1/classify", body);
        EXPECT_EQ(bad.status, 400) << body;
        EXPECT_NE(error_of(bad).find(words), std::string::npos) << body << ": " << bad.body;
    }
    EXPECT_EQ(call("POST", "/v1/classify", "{\"reply\":\"" + std::string(70000, 'x') + "\"}").status, 400);
    EXPECT_EQ(call("GET", "/v1/classify").status, 405);
}
