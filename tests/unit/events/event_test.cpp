// Tests for events/: the JSON of each kind of event, the round trip the
// decision journal relies on, and the sequence (strictly increasing, never
// reused across restarts, unique ids).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "events/bus.hpp"
#include "events/event_json.hpp"
#include "events/jsonl_log.hpp"
#include "events/make.hpp"
#include "events/sequencer.hpp"

using namespace ricochet;
using namespace ricochet::events;
using nlohmann::json;

namespace {
struct tmpdir {
    std::filesystem::path p;
    tmpdir() {
        char t[] = "/tmp/ricochet-events-test.XXXXXX";
        p = ::mkdtemp(t);
    }
    ~tmpdir() { std::filesystem::remove_all(p); }
};
}  // namespace

TEST(Event, EachKindCarriesItsFieldsAndNullsTheRest) {
    struct row {
        const char* name;
        event e;
        json want;  // a subset of the JSON
    };
    std::vector<row> rows{
        {"queued", queued("Q1", "fall", "a@example.org", 0, "news@example.com", 1000),
         {{"type", "queued"}, {"queue_id", "Q1"}, {"campaign", "fall"}, {"recipient", "a@example.org"},
          {"code", nullptr}, {"kind", nullptr}, {"stage", nullptr}, {"attempt", nullptr}}},
        {"bounced in session",
         attempt_outcome(event_type::bounced, "Q1", "fall", "a@example.org",
                         {550, "5.1.1", "550 5.1.1 no such user", "mx.example.org[192.0.2.1]", "rcpt"},
                         {"hard", "user-unknown", "user-unknown"}, 2, 1000),
         {{"type", "bounced"}, {"code", 550}, {"enhanced", "5.1.1"}, {"kind", "hard"}, {"rule", "user-unknown"},
          {"stage", "rcpt"}, {"attempt", 2}, {"sync", true}}},
        {"a lost connection keeps code 0",
         attempt_outcome(event_type::deferred, "Q1", "", "a@example.org", {0, "", "connection lost", "mx", "end_of_data"},
                         {"technical", "network-error", "fallback"}, 1, 1000),
         {{"code", 0}, {"stage", "end_of_data"}, {"campaign", ""}}},
        {"reported later", reported_failure("Q1", "c", "a@example.org", {550, "5.2.2", "full", "mx", ""},
                                            {"soft", "mailbox-full", "r"}, 1000),
         {{"type", "bounced"}, {"stage", "dsn"}, {"sync", false}, {"attempt", nullptr}}},
        {"complaint", complaint("Q1", "c", "a@example.org", "abuse", "", 1000),
         {{"type", "complaint"}, {"reply", "feedback-type: abuse"}, {"category", "complaint"}, {"sync", false}}},
        {"queue admin", queue_admin("hold", "Q1", "c", "deferred", "", 1000),
         {{"type", "admin"}, {"action", "hold"}, {"from_state", "deferred"}, {"recipient", ""}}},
        {"address admin", address_admin("a@example.org", "clear", bounce::address_status::active, 1000),
         {{"type", "admin"}, {"action", "clear"}, {"status", "active"}}},
    };
    bounce::address_record after{"a@example.org", bounce::address_status::held, 3, 1000, 5000};
    rows.push_back({"status_changed", status_changed(after, bounce::address_status::bounced, "bounced: hard/x", 6000),
                    {{"type", "status_changed"}, {"from", "bounced"}, {"to", "held"}, {"bounce_count", 3},
                     {"first_bounce", "1970-01-01T00:00:01.000Z"}, {"last_bounce", "1970-01-01T00:00:05.000Z"}}});
    for (auto& r : rows) {
        auto j = to_json(r.e);
        for (auto& [k, v] : r.want.items()) EXPECT_EQ(j[k], v) << r.name << ": " << k << ": got " << j[k] << ", want " << v;
        for (auto* k : {"seq", "id", "time", "type", "queue_id", "campaign", "recipient", "kind", "category", "rule",
                        "code", "enhanced", "reply", "mx", "stage", "attempt", "sync"})
            EXPECT_TRUE(j.contains(k)) << r.name << " lacks " << k;
        EXPECT_FALSE(j.contains("index") || j.contains("sender")) << r.name << ": internal fields leak";
        auto back = from_json(to_json(r.e, true));
        ASSERT_TRUE(back) << r.name;
        EXPECT_EQ(to_json(*back, true), to_json(r.e, true)) << r.name << ": the journal's round trip";
    }
}

TEST(Sequencer, NumbersRiseAndAreNeverReusedAcrossRestarts) {
    tmpdir d;
    std::set<std::uint64_t> seen;
    std::uint64_t last = 0;
    for (int run = 0; run < 3; ++run) {  // three "restarts"
        sequencer s;
        ASSERT_FALSE(s.open(d.p / "events.seq"));
        for (int i = 0; i < 1000; ++i) {
            std::error_code ec;
            auto n = s.next(ec);
            ASSERT_FALSE(ec);
            EXPECT_GT(n, last) << "run " << run;
            EXPECT_TRUE(seen.insert(n).second);
            last = n;
        }
    }
    // A block runs out: the file moves ahead, numbering goes on.
    sequencer s;
    ASSERT_FALSE(s.open(d.p / "events.seq"));
    std::error_code ec;
    auto first = s.next(ec);
    for (std::uint64_t i = 1; i < sequencer::block + 10; ++i) ASSERT_EQ(s.next(ec), first + i);
    EXPECT_FALSE(ec);
}

// A shared store has this node's events up to n (its spool was new):
// numbering continues above n, also after a restart; a lower n changes nothing.
TEST(Sequencer, ContinuesAboveWhatASharedStoreHasAlsoAfterARestart) {
    tmpdir d;
    std::error_code ec;
    {
        sequencer s;
        ASSERT_FALSE(s.open(d.p / "events.seq"));
        EXPECT_EQ(s.next(ec), 1u);
        ASSERT_FALSE(s.continue_after(5'000'000));
        EXPECT_EQ(s.next(ec), 5'000'001u);
        ASSERT_FALSE(s.continue_after(10));
        EXPECT_EQ(s.next(ec), 5'000'002u);
    }
    sequencer again;
    ASSERT_FALSE(again.open(d.p / "events.seq"));
    EXPECT_GT(again.next(ec), 5'000'002u);
}

TEST(Sequencer, AnUnreadableFileNeverRestartsTheNumbering) {
    tmpdir d;
    sequencer s;
    ASSERT_FALSE(s.open(d.p / "events.seq"));
    std::error_code ec;
    auto before = s.next(ec);
    std::ofstream(d.p / "events.seq", std::ios::trunc) << "garbage";  // a disk fault
    sequencer again;
    ASSERT_FALSE(again.open(d.p / "events.seq"));
    EXPECT_GT(again.next(ec), before);
}

TEST(Bus, StampsEveryEventAndWritesOneLineEach) {
    tmpdir d;
    sequencer s;
    ASSERT_FALSE(s.open(d.p / "events.seq"));
    jsonl_log file;
    ASSERT_FALSE(file.open(d.p / "events.jsonl"));
    bus b(s);
    b.add(file);
    b.publish({queued("Q1", "", "a@example.org", 0, "", 0), queued("Q1", "", "b@example.org", 1, "", 0)});
    std::vector<event> more{queue_admin("hold", "Q1", "", "active", "", 0)};
    b.write(more);
    std::ifstream in(d.p / "events.jsonl");
    std::vector<json> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(json::parse(l));
    ASSERT_EQ(lines.size(), 3u);
    std::set<std::string> ids;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        EXPECT_TRUE(ids.insert(lines[i]["id"].get<std::string>()).second);
        EXPECT_NE(lines[i]["time"], "1970-01-01T00:00:00.000Z") << "time 0 means now";
        if (i) {
            EXPECT_EQ(lines[i]["seq"].get<std::uint64_t>(), lines[i - 1]["seq"].get<std::uint64_t>() + 1);
        }
    }
    EXPECT_EQ(lines[0]["id"], s.instance() + "-" + std::to_string(lines[0]["seq"].get<std::uint64_t>()));
}

// A write that fails (here /dev/full: ENOSPC) loses no line: the lines are
// kept and written, whole and in order, by the next write that succeeds
// (after a SIGHUP re-open, here onto a file that can be written).
TEST(JsonlLog, LinesAFailedWriteLeftAreWrittenNext) {
    tmpdir d;
    jsonl_log file;
    ASSERT_FALSE(file.open("/dev/full"));
    file.write({queued("Q1", "", "a@example.org", 0, "", 0)});
    file.write({queued("Q2", "", "b@example.org", 0, "", 0)});
    ASSERT_FALSE(file.open(d.p / "events.jsonl"));
    file.write({queued("Q3", "", "c@example.org", 0, "", 0)});
    std::ifstream in(d.p / "events.jsonl");
    std::vector<std::string> ids;
    for (std::string l; std::getline(in, l);) ids.push_back(json::parse(l)["queue_id"].get<std::string>());
    EXPECT_EQ(ids, (std::vector<std::string>{"Q1", "Q2", "Q3"}));
}

TEST(Event, EveryLineIsValidJsonAndValidUtf8WhateverTheReplyCarries) {
    struct row {
        const char* name;
        std::string reply, want;  // want: the string nlohmann reads back
    };
    const std::string fffd = "\xEF\xBF\xBD";
    for (auto& r : std::vector<row>{
             {"quotes and backslashes", "say \"hi\" \\ bye", "say \"hi\" \\ bye"},
             {"control characters", std::string("a\tb\r\nc\x01\x1f", 9), std::string("a\tb\r\nc\x01\x1f", 9)},
             {"UTF-8 kept", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x93\xAB", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x93\xAB"},
             {"a stray continuation byte", "a\x80z", "a" + fffd + "z"},
             {"latin-1", "caf\xE9!", "caf" + fffd + "!"},
             {"a truncated sequence at the end", "ok \xE2\x82", "ok " + fffd},
             {"an overlong encoding", "\xC0\xAF", fffd + fffd},
             {"a surrogate", "\xED\xA0\x80", fffd + fffd + fffd},
         }) {
        auto e = attempt_outcome(event_type::deferred, "Q1", "c", "a@example.org", {451, "4.0.0", r.reply, "mx", "rcpt"},
                                 {"soft", "other-temporary", "r"}, 1, 1000);
        std::string line;
        append_json_line(line, e);
        ASSERT_EQ(line.back(), '\n') << r.name;
        auto j = json::parse(line, nullptr, false);
        ASSERT_FALSE(j.is_discarded()) << r.name << ": " << line;
        EXPECT_EQ(j["reply"], r.want) << r.name;
    }
}
