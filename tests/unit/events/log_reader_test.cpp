// Reading the event log back from a cursor: the binary search, filters,
// torn lines, rotation.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <thread>

#include "events/event_json.hpp"
#include "events/jsonl_log.hpp"
#include "events/log_reader.hpp"

using namespace ricochet::events;

namespace {
struct log_fixture : ::testing::Test {
    std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                ("ricochet-log-" + std::to_string(::getpid()) + "-" +
                                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::path path = dir / "events.jsonl";
    void SetUp() override { std::filesystem::create_directories(dir); }
    void TearDown() override { std::filesystem::remove_all(dir); }
    // Events seq from..to, alternating types, with a long reply now and then.
    void write(const std::filesystem::path& p, std::uint64_t from, std::uint64_t to, bool append = true) {
        std::ofstream out(p, append ? std::ios::app : std::ios::trunc);
        std::string buf;
        for (auto s = from; s <= to; ++s) {
            event e;
            e.type = s % 3 == 0 ? event_type::bounced : event_type::delivered;
            e.seq = s;
            e.id = "x-" + std::to_string(s);
            e.time_ms = 1796035230000;
            e.recipient = "r" + std::to_string(s) + "@example.com";
            e.reply = s % 97 == 0 ? std::string(3000, 'z') : "250 ok";
            append_json_line(buf, e);
        }
        out << buf;
    }
    std::vector<std::uint64_t> seqs(const log_batch& b) {
        std::vector<std::uint64_t> v;
        for (auto& l : b.lines) v.push_back(line_seq(l));
        return v;
    }
};
}  // namespace

TEST_F(log_fixture, LineFieldsAreReadWithoutAParser) {
    EXPECT_EQ(line_seq("{\"seq\":42,\"id\":\"a\"}"), 42u);
    EXPECT_EQ(line_seq("{\"seq\":0,\"id\":\"a\"}"), 0u);
    EXPECT_EQ(line_seq("{\"id\":\"a\",\"seq\":42}"), 0u) << "seq is first, as the writer puts it";
    EXPECT_EQ(line_seq("{\"seq\":42"), 0u) << "a torn line";
    EXPECT_EQ(line_type("{\"seq\":1,\"id\":\"x\",\"time\":\"t\",\"type\":\"bounced\",\"reply\":\"\\\"type\\\":\\\"x\\\"\"}"),
              "bounced");
}

TEST_F(log_fixture, EveryEventAfterTheCursorOnceAcrossPages) {
    write(path, 1, 20000);
    std::uint64_t after = 0;
    std::vector<std::uint64_t> all;
    for (int pages = 0; pages < 1000; ++pages) {
        std::error_code ec;
        auto b = read_log(path, {after, 777, nullptr}, ec);
        ASSERT_FALSE(ec);
        auto s = seqs(b);
        all.insert(all.end(), s.begin(), s.end());
        if (!b.more) break;
        after = b.last_seq;
    }
    ASSERT_EQ(all.size(), 20000u);
    for (std::size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], i + 1);
}

TEST_F(log_fixture, TheBinarySearchLandsOnTheFirstEventAfterAnyCursor) {
    write(path, 1, 30000);
    for (std::uint64_t after : {1ull, 2ull, 96ull, 97ull, 12345ull, 29998ull, 29999ull}) {
        std::error_code ec;
        auto b = read_log(path, {after, 3, nullptr}, ec);
        ASSERT_EQ(seqs(b).front(), after + 1) << after;
    }
    std::error_code ec;
    auto end = read_log(path, {30000, 10, nullptr}, ec);
    EXPECT_TRUE(end.lines.empty());
    EXPECT_FALSE(end.more);
    EXPECT_EQ(last_seq_in_log(path, ec), 30000u);
}

TEST_F(log_fixture, AFilterKeepsItsTypesAndTheCursorMovesPastTheRest) {
    write(path, 1, 100);
    std::error_code ec;
    auto b = read_log(path, {0, 10, [](std::string_view t) { return t == "bounced"; }}, ec);
    EXPECT_EQ(seqs(b), (std::vector<std::uint64_t>{3, 6, 9, 12, 15, 18, 21, 24, 27, 30}));
    EXPECT_EQ(b.last_seq, 30u);
    EXPECT_TRUE(b.more);
    auto none = read_log(path, {0, 10, [](std::string_view t) { return t == "complaint"; }}, ec);
    EXPECT_TRUE(none.lines.empty());
    EXPECT_EQ(none.last_seq, 100u) << "a cursor may move past a stretch of other types";
}

TEST_F(log_fixture, ATornLastLineWaitsAndUnnumberedLinesAreSkipped) {
    write(path, 1, 5);
    {
        std::ofstream out(path, std::ios::app);
        out << "{\"seq\":0,\"id\":\"u\",\"type\":\"delivered\"}\n{\"seq\":6,\"id\":\"x-6\",\"ty";
    }
    std::error_code ec;
    auto b = read_log(path, {0, 100, nullptr}, ec);
    EXPECT_EQ(seqs(b), (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
    EXPECT_EQ(last_seq_in_log(path, ec), 5u);
}

TEST_F(log_fixture, NoLogIsNoEvents) {
    std::error_code ec;
    auto b = read_log(dir / "none.jsonl", {0, 10, nullptr}, ec);
    EXPECT_FALSE(ec);
    EXPECT_TRUE(b.lines.empty());
}

TEST_F(log_fixture, EventsBeforeALogrotateAreReadFromPathDot1First) {
    auto old = path;
    old += ".1";
    write(old, 1, 50);
    write(path, 51, 60);
    std::error_code ec;
    auto b = read_log_rotated(path, {40, 100, nullptr}, ec);
    EXPECT_EQ(seqs(b).front(), 41u);
    EXPECT_EQ(b.last_seq, 50u) << "the rotated file first; the next read goes on in the new one";
    auto c = read_log_rotated(path, {b.last_seq, 100, nullptr}, ec);
    EXPECT_EQ(seqs(c).front(), 51u);
    EXPECT_EQ(c.last_seq, 60u);
    auto f = read_log_rotated(path, {40, 100, [](std::string_view t) { return t == "complaint"; }}, ec);
    EXPECT_EQ(f.last_seq, 60u) << "nothing kept in either: the cursor moves to the end";
}

// The log rotating itself by size: every event lands in exactly one
// segment, the older ones gzip'd, at most `keep` kept, and a cursor that is
// behind reads on through all of them.
TEST_F(log_fixture, SizeRotationKeepsEveryEventOnceAndTheReaderFollowsIt) {
    jsonl_log log;
    ASSERT_FALSE(log.open(path, log_rotation{20000, std::chrono::seconds(0), 50}));
    for (std::uint64_t s = 1; s <= 3000; s += 10) {
        std::vector<event> batch;
        for (auto k = s; k < s + 10; ++k) {
            event e;
            e.type = event_type::delivered;
            e.seq = k;
            e.id = "x-" + std::to_string(k);
            e.recipient = "r" + std::to_string(k) + "@example.com";
            batch.push_back(e);
        }
        log.write(batch);
    }
    log.wait_for_compression();
    auto p1 = path, p2gz = path, p2 = path;
    p1 += ".1";
    p2gz += ".2.gz";
    p2 += ".2";
    EXPECT_TRUE(std::filesystem::exists(p1));
    EXPECT_TRUE(std::filesystem::exists(p2gz)) << "the second segment is compressed";
    EXPECT_FALSE(std::filesystem::exists(p2)) << "and its plain copy removed";
    EXPECT_LE(std::filesystem::file_size(p1), 20000u + 2000u) << "a segment stops near max_size (a batch is never split)";
    std::uint64_t after = 0;
    std::vector<std::uint64_t> all;
    std::error_code ec;
    for (int guard = 0; guard < 1000; ++guard) {
        auto b = read_log_rotated(path, {after, 97, nullptr}, ec);
        ASSERT_FALSE(ec) << ec.message();
        if (b.lines.empty()) break;
        for (auto s : seqs(b)) all.push_back(s);
        after = b.last_seq;
    }
    ASSERT_EQ(all.size(), 3000u);
    for (std::size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], i + 1) << "each event once, in order";
    EXPECT_EQ(last_seq_in_logs(path, ec), 3000u);
    // A cursor in the middle of an old, compressed segment starts there.
    auto mid = read_log_rotated(path, {1234, 5, nullptr}, ec);
    EXPECT_EQ(seqs(mid), (std::vector<std::uint64_t>{1235, 1236, 1237, 1238, 1239}));
}

TEST_F(log_fixture, OnlyKeepSegmentsAreKeptAndAnEmptyFileNeverRotates) {
    jsonl_log log;
    ASSERT_FALSE(log.open(path, log_rotation{0, std::chrono::seconds(0), 2}));
    EXPECT_FALSE(log.rotate()) << "nothing written yet";
    for (std::uint64_t s = 1; s <= 4; ++s) {
        event e;
        e.type = event_type::queued;
        e.seq = s;
        e.id = "x";
        log.write({e});
        EXPECT_TRUE(log.rotate());
    }
    log.wait_for_compression();
    std::vector<std::string> names;
    for (auto& f : std::filesystem::directory_iterator(dir)) names.push_back(f.path().filename().string());
    std::sort(names.begin(), names.end());
    EXPECT_EQ(names, (std::vector<std::string>{"events.jsonl", "events.jsonl.1", "events.jsonl.2.gz"}));
    std::error_code ec;
    EXPECT_EQ(last_seq_in_logs(path, ec), 4u) << "the current file is empty: the last event is in .1";
    auto b = read_log_rotated(path, {0, 10, nullptr}, ec);
    EXPECT_EQ(seqs(b), (std::vector<std::uint64_t>{3})) << "events 1 and 2 are gone with the segments not kept";
}

TEST_F(log_fixture, AgeRotationStartsANewFileForTheNextBatch) {
    jsonl_log log;
    ASSERT_FALSE(log.open(path, log_rotation{0, std::chrono::seconds(1), 5}));
    event e;
    e.type = event_type::queued;
    e.seq = 1;
    e.id = "x";
    log.write({e});
    // The segment's age is its birth time (seconds): wait until it is at least 1 s old.
    auto p1 = path;
    p1 += ".1";
    for (int i = 0; i < 300 && !std::filesystem::exists(p1); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        e.seq++;
        log.write({e});
    }
    ASSERT_TRUE(std::filesystem::exists(p1)) << "rotated by age within 3 s";
    std::error_code ec;
    auto first = read_log(p1, {0, 1000, nullptr}, ec);
    auto now = read_log(path, {0, 1000, nullptr}, ec);
    EXPECT_EQ(seqs(first).front(), 1u);
    EXPECT_EQ(seqs(first).size() + seqs(now).size(), e.seq) << "no event lost or doubled by the rotation";
}
