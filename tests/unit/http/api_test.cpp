// The API's routes over a real spool and state store in a temporary
// directory, the control socket's handler faked (its own tests are the
// daemon's): what each malformed request gets, and that an injection is
// answered only once its commit is done.
#include <gtest/gtest.h>

#include <fstream>
#include <future>
#include <nlohmann/json.hpp>

#include "bounce/suppression_list.hpp"
#include "config/config.hpp"
#include "events/event_json.hpp"
#include "events/metrics.hpp"
#include "http/api.hpp"
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
            [] { return std::map<std::string, std::int64_t>{{"slow.example", 1796035230000}}; }, [] { return std::string(); }, {}});
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
