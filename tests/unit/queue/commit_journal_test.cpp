// Tests for queue/commit_journal.hpp on its own: what a record reads back
// as, which bytes can never read as a record (another lap's, a failed
// append's), and what a failed append leaves. The spool's use of it (crash
// images, write-back) is in spool_test.cpp.
//
// These tests know the record layout (commit_journal.cpp): magic, CRC-32 of
// everything after it, nonce, seq, length, count; then per message its
// 13-octet id, an 8-octet length and the file. They use it to forge records
// that are whole in every way but one.
#include "queue/commit_journal.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

using ricochet::queue::commit_journal;
namespace fs = std::filesystem;

namespace {
struct temp_dir {
    fs::path path;
    int fd = -1;
    temp_dir() {
        char tmpl[] = "/tmp/ricochet-journal-test.XXXXXX";
        path = ::mkdtemp(tmpl);
        fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    ~temp_dir() {
        ::close(fd);
        fs::remove_all(path);
    }
};

constexpr std::uint64_t size = 64 * 1024;
constexpr std::size_t record_head = 32;

std::unique_ptr<commit_journal> open_journal(const temp_dir& d, bool create = true) {
    std::error_code ec;
    auto j = commit_journal::open(d.fd, "journal", create, size, ec);
    EXPECT_FALSE(ec) << ec.message();
    return j;
}

using read_back = std::vector<std::pair<std::string, std::string>>;

read_back replay(commit_journal& j, std::size_t* records = nullptr) {
    read_back out;
    std::error_code ec;
    auto n = j.replay([&](std::string_view id, std::string_view file) { out.emplace_back(id, file); }, ec);
    EXPECT_FALSE(ec) << ec.message();
    if (records) *records = n;
    return out;
}

// What a fresh open of the file reads back, as the next start would.
read_back replay_fresh(const temp_dir& d) {
    auto j = open_journal(d, false);
    if (!j) return {{"<no journal>", ""}};
    return replay(*j);
}

std::string file_bytes(const temp_dir& d) {
    std::ifstream f(d.path / "journal", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_at(const temp_dir& d, std::uint64_t off, const std::string& bytes) {
    std::fstream f(d.path / "journal", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(off));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <class T> T get(const std::string& b, std::size_t at) {
    T v;
    std::memcpy(&v, b.data() + at, sizeof v);
    return v;
}
template <class T> void put(std::string& b, std::size_t at, T v) { std::memcpy(b.data() + at, &v, sizeof v); }

// The record at `off` in the file, whole (its length from its head).
std::string record_at(const std::string& file, std::uint64_t off) {
    auto len = get<std::uint32_t>(file, off + 24);
    return file.substr(off, record_head + len);
}

// The record with another nonce and seq, its CRC made to match again.
std::string reseal(std::string rec, std::uint64_t nonce, std::uint64_t seq) {
    put(rec, 8, nonce);
    put(rec, 16, seq);
    put(rec, 4, static_cast<std::uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(rec.data() + 8), rec.size() - 8)));
    return rec;
}

std::string id_of(int i) {
    auto s = std::to_string(i);
    return std::string(13 - s.size(), '0') + s;
}

std::error_code append_one(commit_journal& j, int i, const std::string& body) {
    std::string id = id_of(i), head = "H" + std::to_string(i) + "|";
    return j.append({{id, {head, body, "."}}});
}

// Appends fail with EFBIG at and past `limit` octets while it lives
// (RLIMIT_FSIZE; SIGXFSZ ignored): a disk that fails a write.
struct file_size_limit {
    rlimit old{};
    sighandler_t old_handler;
    explicit file_size_limit(rlim_t limit) {
        old_handler = std::signal(SIGXFSZ, SIG_IGN);
        ::getrlimit(RLIMIT_FSIZE, &old);
        rlimit r = old;
        r.rlim_cur = limit;
        EXPECT_EQ(::setrlimit(RLIMIT_FSIZE, &r), 0);
    }
    ~file_size_limit() {
        ::setrlimit(RLIMIT_FSIZE, &old);
        std::signal(SIGXFSZ, old_handler);
    }
};
}  // namespace

// Every entry of every record comes back in order, its pieces joined, to
// whoever opens the file next; each record starts on a 4 KiB block.
TEST(CommitJournal, RecordsReadBackAsAppended) {
    temp_dir d;
    {
        auto j = open_journal(d);
        ASSERT_TRUE(j);
        ASSERT_FALSE(j->append({{id_of(1), {"head1|", "body one", ""}}, {id_of(2), {"", "", ""}}}));
        ASSERT_FALSE(append_one(*j, 3, std::string(5000, 'x')));
        EXPECT_TRUE(j->dirty());
        auto at = j->mark();
        EXPECT_EQ(at.seq, 2u);
        EXPECT_EQ(at.off, commit_journal::data_start + 3 * 4096) << "two blocks for the second record";
    }
    auto back = replay_fresh(d);
    read_back want = {{id_of(1), "head1|body one"}, {id_of(2), ""}, {id_of(3), "H3|" + std::string(5000, 'x') + "."}};
    EXPECT_EQ(back, want);
}

// A checkpoint means the records before it are never read again; what is
// appended after it is.
TEST(CommitJournal, ACheckpointEndsWhatIsRead) {
    temp_dir d;
    auto j = open_journal(d);
    ASSERT_TRUE(j);
    ASSERT_FALSE(append_one(*j, 1, "one"));
    ASSERT_FALSE(j->checkpoint(j->mark()));
    EXPECT_FALSE(j->dirty());
    ASSERT_FALSE(append_one(*j, 2, "two"));
    EXPECT_EQ(replay_fresh(d), (read_back{{id_of(2), "H2|two."}}));
    ASSERT_FALSE(j->checkpoint(j->mark()));
    EXPECT_TRUE(replay_fresh(d).empty());
}

// A record is read only with its lap's nonce. A record from an earlier
// lap, or one a message body forged (the sender knows the layout, not the
// nonce), is never read even where a record of this lap would be, with
// the right sequence number and a CRC that matches.
TEST(CommitJournal, ARecordOfAnotherNonceIsNeverRead) {
    temp_dir d;
    auto j = open_journal(d);
    ASSERT_TRUE(j);
    ASSERT_FALSE(append_one(*j, 1, "earlier lap"));
    auto old_lap = j->mark();
    ASSERT_FALSE(j->restart());
    auto lap = j->mark();
    EXPECT_EQ(lap.lap, old_lap.lap + 1);
    EXPECT_EQ(lap.off, commit_journal::data_start);
    EXPECT_NE(lap.nonce, old_lap.nonce);
    EXPECT_TRUE(replay_fresh(d).empty()) << "the earlier lap's record at the start of this one";

    // Where this lap's first record goes: the earlier lap's record, its
    // seq made this lap's next and its CRC sealed again.
    auto old_rec = record_at(file_bytes(d), commit_journal::data_start);
    write_at(d, lap.off, reseal(old_rec, old_lap.nonce, lap.seq + 1));
    EXPECT_TRUE(replay_fresh(d).empty()) << "read with a nonce of another lap";
    // The control: the same bytes with this lap's nonce are a record.
    write_at(d, lap.off, reseal(old_rec, lap.nonce, lap.seq + 1));
    EXPECT_EQ(replay_fresh(d), (read_back{{id_of(1), "H1|earlier lap."}}));
}

// A record whose CRC matches but whose entries run past its end, and one
// out of sequence, end the read-back there.
TEST(CommitJournal, MalformedOrOutOfSequenceRecordsEndTheReadBack) {
    temp_dir d;
    auto j = open_journal(d);
    ASSERT_TRUE(j);
    ASSERT_FALSE(append_one(*j, 1, "one"));
    ASSERT_FALSE(append_one(*j, 2, "two"));
    auto lap = j->mark();
    auto file = file_bytes(d);
    auto second = record_at(file, commit_journal::data_start + 4096);
    ASSERT_EQ(replay_fresh(d).size(), 2u);

    auto bad = second;
    put(bad, record_head + 13, std::uint64_t{1} << 40);  // a file longer than the record
    write_at(d, commit_journal::data_start + 4096, reseal(bad, lap.nonce, 2));
    EXPECT_EQ(replay_fresh(d), (read_back{{id_of(1), "H1|one."}}));

    bad = second;
    put(bad, 28, std::uint32_t{2});  // two entries counted, one there
    write_at(d, commit_journal::data_start + 4096, reseal(bad, lap.nonce, 2));
    EXPECT_EQ(replay_fresh(d).size(), 1u);

    write_at(d, commit_journal::data_start + 4096, reseal(second, lap.nonce, 3));  // seq 3 where 2 belongs
    EXPECT_EQ(replay_fresh(d).size(), 1u);

    write_at(d, commit_journal::data_start + 4096, second);
    EXPECT_EQ(replay_fresh(d).size(), 2u) << "the original again";
}

// After a replay, appends wait for a new lap. A record whose CRC no longer
// matches (a block the disk lost) ends the read, but a whole record of the
// same lap may follow it: an append in its place must not make that one
// read next.
TEST(CommitJournal, AfterAReplayAppendsWaitForANewLap) {
    temp_dir d;
    {
        auto j = open_journal(d);
        ASSERT_TRUE(j);
        for (int i = 1; i <= 3; ++i) ASSERT_FALSE(append_one(*j, i, "record " + std::to_string(i)));
    }
    write_at(d, commit_journal::data_start + 4096 + record_head + 20, "#");  // the second record's body
    auto j = open_journal(d, false);
    ASSERT_TRUE(j);
    std::size_t records = 0;
    EXPECT_EQ(replay(*j, &records), (read_back{{id_of(1), "H1|record 1."}}));
    EXPECT_EQ(records, 1u);
    EXPECT_EQ(append_one(*j, 4, "four"), std::errc::operation_not_permitted);
    ASSERT_FALSE(j->restart());
    ASSERT_FALSE(append_one(*j, 4, "four"));
    EXPECT_EQ(replay_fresh(d), (read_back{{id_of(4), "H4|four."}})) << "the third record is of another lap now";
}

// An append that fails (here EFBIG: a disk that refuses the write) leaves
// the journal dirty. Its record (which may yet be whole on disk) is read no
// more once a checkpoint at the head covers the good ones: that checkpoint
// is a new lap. A checkpoint from a mark taken before the last good append
// (the checkpointer racing the commit) is an ordinary one: the records
// after that mark stay readable, and the lap stays.
TEST(CommitJournal, AFailedAppendsRecordIsReadNoMoreAfterTheNextCheckpoint) {
    temp_dir d;
    auto j = open_journal(d);
    ASSERT_TRUE(j);
    ASSERT_FALSE(append_one(*j, 1, "good one"));
    auto before = j->mark();  // the checkpointer's mark, before the last good append
    ASSERT_FALSE(append_one(*j, 2, "good two"));
    auto head = j->mark();
    {
        file_size_limit limit(head.off);
        auto ec = append_one(*j, 3, "failed");
        EXPECT_EQ(ec, std::errc::file_too_large);
    }
    EXPECT_EQ(j->mark().seq, head.seq) << "a failed append does not move the head";
    EXPECT_TRUE(j->dirty());
    // The failed record whole on disk after all (the page cache wrote it):
    // the second record's bytes under seq 3.
    auto two = record_at(file_bytes(d), commit_journal::data_start + 4096);
    write_at(d, head.off, reseal(two, head.nonce, head.seq + 1));
    EXPECT_EQ(replay_fresh(d).size(), 3u) << "the forged failed record reads as whole";

    ASSERT_FALSE(j->checkpoint(before));
    EXPECT_EQ(j->mark().lap, head.lap) << "a stale mark: no new lap";
    EXPECT_EQ(replay_fresh(d), (read_back{{id_of(2), "H2|good two."}, {id_of(2), "H2|good two."}}))
        << "the first record covered, the second still read";
    EXPECT_TRUE(j->dirty());

    ASSERT_FALSE(j->checkpoint(j->mark()));
    EXPECT_EQ(j->mark().lap, head.lap + 1) << "a new lap";
    EXPECT_FALSE(j->dirty());
    EXPECT_TRUE(replay_fresh(d).empty()) << "the failed record can never be read back";
    ASSERT_FALSE(append_one(*j, 4, "after"));
    EXPECT_EQ(replay_fresh(d), (read_back{{id_of(4), "H4|after."}}));
}

// A failed append clears its record's magic where the write still takes
// (a sync that failed, a write cut short): until the next checkpoint, a
// crash does not write back messages whose clients were told to retry.
TEST(CommitJournal, AFailedAppendClearsItsRecord) {
    temp_dir d;
    auto j = open_journal(d);
    ASSERT_TRUE(j);
    auto at = j->mark();
    {
        file_size_limit limit(at.off + 64);  // the record's head fits, the rest does not
        EXPECT_EQ(append_one(*j, 1, std::string(200, 'f')), std::errc::file_too_large);
    }
    auto file = file_bytes(d);
    EXPECT_EQ(get<std::uint32_t>(file, at.off), 0u) << "no magic";
    EXPECT_EQ(get<std::uint64_t>(file, at.off + 16), 1u) << "the rest of the head was written";
}

// The next header goes into the slot not in force, whatever its count
// (a journal whose winning count has the other parity: a hand, or a
// copy): a header write torn by a power loss then always leaves the one
// in force. Counts so high they could wrap are not ours.
TEST(CommitJournal, AHeaderNeverOverwritesTheOneInForce) {
    temp_dir d;
    {
        auto j = open_journal(d);
        ASSERT_TRUE(j);
    }
    auto file = file_bytes(d);
    auto slot_writes = [&](std::size_t slot) { return get<std::uint64_t>(file_bytes(d), slot * 4096 + 8); };
    ASSERT_EQ(get<std::uint32_t>(file, 0), 0u) << "made with its header in slot 1";
    auto header = file.substr(4096, 4096);
    put(header, 8, std::uint64_t{5});  // in force in slot 0, an odd count
    put(header, 4, static_cast<std::uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(header.data() + 8), 40)));
    write_at(d, 0, header);
    {
        auto j = open_journal(d, false);
        ASSERT_TRUE(j);
        ASSERT_FALSE(append_one(*j, 1, "one"));
        ASSERT_FALSE(j->checkpoint(j->mark()));
    }
    EXPECT_EQ(slot_writes(0), 5u) << "the header in force is left whole";
    EXPECT_EQ(slot_writes(1), 6u);
    EXPECT_TRUE(replay_fresh(d).empty()) << "the new header is read";

    put(header, 8, std::uint64_t{1} << 62);
    put(header, 4, static_cast<std::uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(header.data() + 8), 40)));
    write_at(d, 0, header);
    auto j = open_journal(d, false);
    ASSERT_TRUE(j);
    EXPECT_EQ(j->mark().seq, 1u) << "slot 1 in force: a count that could wrap is not read";
}

// The end of the journal: an append that does not fit says so and writes
// nothing; a restart makes room from the first block again.
TEST(CommitJournal, ARecordThatDoesNotFitIsRefused) {
    temp_dir d;
    auto j = open_journal(d);
    ASSERT_TRUE(j);
    auto ec = append_one(*j, 1, std::string(size, 'b'));
    EXPECT_EQ(ec, std::errc::no_buffer_space);
    EXPECT_FALSE(j->dirty());
    EXPECT_TRUE(replay_fresh(d).empty());
    EXPECT_EQ(j->append({{"short-id", {"x", "", ""}}}), std::errc::invalid_argument) << "ids are 13 octets";
    ASSERT_FALSE(append_one(*j, 2, std::string(40000, 'c')));
    EXPECT_EQ(append_one(*j, 3, std::string(20000, 'c')), std::errc::no_buffer_space);
    ASSERT_FALSE(j->restart());
    ASSERT_FALSE(append_one(*j, 3, std::string(20000, 'c')));
    auto back = replay_fresh(d);
    ASSERT_EQ(back.size(), 1u);
    EXPECT_EQ(back[0].first, id_of(3));
}

// A file that is not a journal: refused without create, set aside whole
// with it; one too short to hold the header slots the same.
TEST(CommitJournal, AFileThatIsNotAJournalIsNeverRead) {
    temp_dir d;
    { std::ofstream(d.path / "journal") << "short"; }
    std::error_code ec;
    EXPECT_FALSE(commit_journal::open(d.fd, "journal", false, size, ec));
    EXPECT_EQ(ec, std::errc::illegal_byte_sequence);
    auto j = commit_journal::open(d.fd, "journal", true, size, ec);
    ASSERT_TRUE(j);
    EXPECT_EQ(ec, std::errc::illegal_byte_sequence) << "said, beside the new one";
    EXPECT_EQ(fs::file_size(d.path / "journal"), size);
    int aside = 0;
    for (auto& e : fs::directory_iterator(d.path))
        if (e.path().filename().string().rfind("journal.bad.", 0) == 0) ++aside;
    EXPECT_EQ(aside, 1);
    EXPECT_FALSE(fs::exists(d.path / "journal.new"));
}
