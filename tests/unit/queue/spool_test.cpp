// Tests for queue/spool.hpp: group commit, state moves, recovery.
#include "queue/spool.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <set>

#include "queue/queue_admin.hpp"

using namespace ricochet::queue;
namespace fs = std::filesystem;

namespace {
struct temp_dir {
    fs::path path;
    temp_dir() {
        char tmpl[] = "/tmp/ricochet-spool-test.XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~temp_dir() { fs::remove_all(path); }
};

envelope make_env(spool& s, std::vector<std::string> rcpts, std::string campaign = "") {
    envelope e;
    e.id = s.new_id();
    e.sender = "sender@example.com";
    e.recipients = std::move(rcpts);
    e.campaign = std::move(campaign);
    e.client = "127.0.0.1";
    return e;
}

std::error_code submit_sync(spool& s, envelope e, std::string content) {
    std::promise<std::error_code> p;
    s.submit(std::move(e), std::move(content), [&p](std::error_code ec) { p.set_value(ec); });
    return p.get_future().get();
}
}  // namespace

TEST(Spool, CommitIsDurableInActiveAndReadsBack) {
    temp_dir d;
    std::error_code ec;
    auto s = spool::open(d.path / "spool", true, ec);
    ASSERT_TRUE(s) << ec.message();
    auto env = make_env(*s, {"a@example.com"});
    std::string id = env.id;
    ASSERT_FALSE(submit_sync(*s, env, "Subject: hi\r\n\r\nbody\r\n"));
    EXPECT_TRUE(fs::exists(d.path / "spool/active" / id));
    EXPECT_TRUE(fs::is_empty(d.path / "spool/incoming"));
    EXPECT_EQ((fs::status(d.path / "spool").permissions() & fs::perms::others_all), fs::perms::none);
    envelope got;
    std::string content;
    ASSERT_FALSE(s->read_message(id, queue_state::active, got, content));
    EXPECT_EQ(content, "Subject: hi\r\n\r\nbody\r\n");
    EXPECT_EQ(got.recipients, env.recipients);
    EXPECT_GT(got.arrival_ms, 0);
}

TEST(Spool, ConcurrentSubmissionsShareCommitsAndAllLand) {
    temp_dir d;
    std::error_code ec;
    auto s = spool::open(d.path, true, ec);
    std::atomic<int> batches{0};
    std::atomic<std::size_t> max_batch{0};
    s->set_batch_hook([&](const std::vector<const envelope*>& b) {
        ++batches;
        if (b.size() > max_batch) max_batch = b.size();
    });
    constexpr int n = 2000;
    std::atomic<int> done{0}, failed{0};
    std::promise<void> all;
    for (int i = 0; i < n; ++i)
        s->submit(make_env(*s, {"x@example.com"}), std::string(1000, 'x'), [&](std::error_code e) {
            if (e) ++failed;
            if (++done == n) all.set_value();
        });
    all.get_future().get();
    EXPECT_EQ(failed, 0);
    EXPECT_EQ(s->list(queue_state::active).size(), static_cast<std::size_t>(n));
    // Group commit: 2000 submissions made at once need far fewer than 2000 syncs.
    EXPECT_LT(batches, n / 2) << "batches=" << batches << " max batch=" << max_batch;
}

TEST(Spool, WriteFailureReportsErrorAndLeavesNothing) {
    temp_dir d;
    std::error_code ec;
    auto s = spool::open(d.path, true, ec);
    // A file size limit makes write() fail with EFBIG, as a full disk would with ENOSPC.
    ::signal(SIGXFSZ, SIG_IGN);
    rlimit old{};
    ::getrlimit(RLIMIT_FSIZE, &old);
    rlimit small = old;
    small.rlim_cur = 64 * 1024;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
    auto big = submit_sync(*s, make_env(*s, {"a@example.com"}), std::string(200 * 1024, 'x'));
    auto ok = submit_sync(*s, make_env(*s, {"a@example.com"}), std::string(1024, 'x'));
    ::setrlimit(RLIMIT_FSIZE, &old);
    EXPECT_TRUE(big) << "a write that cannot complete must fail";
    EXPECT_FALSE(ok) << ok.message();
    EXPECT_EQ(s->list().size(), 1u);
    EXPECT_TRUE(fs::is_empty(d.path / "incoming"));
}

TEST(Spool, MovesRemovesAndAdmin) {
    temp_dir d;
    std::error_code ec;
    auto s = spool::open(d.path, true, ec);
    auto e1 = make_env(*s, {"a@one.example"}, "c1");
    auto e2 = make_env(*s, {"b@two.example", "c@one.example"}, "c2");
    auto e3 = make_env(*s, {"d@three.example"}, "c2");
    for (auto* e : {&e1, &e2, &e3}) ASSERT_FALSE(submit_sync(*s, *e, "x\r\n"));

    auto r = apply_admin(*s, nullptr, admin_op::hold, selector{"", "one.example", "", false});
    EXPECT_EQ(r.matched, 2u);
    EXPECT_EQ(s->locate(e1.id), queue_state::hold);
    EXPECT_EQ(s->locate(e2.id), queue_state::hold);
    EXPECT_EQ(s->locate(e3.id), queue_state::active);

    r = apply_admin(*s, nullptr, admin_op::release, selector{"", "", "c2", false});
    EXPECT_EQ(r.matched, 2u);
    EXPECT_EQ(r.ids, std::vector<std::string>{e2.id}) << "only the held one changes";
    EXPECT_EQ(s->locate(e2.id), queue_state::active);

    r = apply_admin(*s, nullptr, admin_op::remove, selector{e1.id, "", "", false});
    EXPECT_EQ(r.ids.size(), 1u);
    EXPECT_FALSE(s->locate(e1.id));

    r = apply_admin(*s, nullptr, admin_op::hold, selector{"", "", "", true});
    EXPECT_EQ(r.matched, 2u);
    EXPECT_EQ(s->list(queue_state::hold).size(), 2u);
}

TEST(Spool, RecoveryDropsUnacknowledgedAndQuarantinesCorrupt) {
    temp_dir d;
    std::error_code ec;
    std::string good_id;
    {
        auto s = spool::open(d.path, true, ec);
        auto e = make_env(*s, {"a@example.com"});
        good_id = e.id;
        ASSERT_FALSE(submit_sync(*s, e, "x\r\n"));
    }
    std::ofstream(d.path / "incoming" / "0AAAAAAAAAAAA") << "half a message";
    std::ofstream(d.path / "active" / "0BBBBBBBBBBBB") << "garbage";
    std::ofstream(d.path / "deferred" / "0CCCCCCCCCCCC") << "garbage";
    auto s = spool::open(d.path, false, ec);
    ASSERT_TRUE(s);
    ASSERT_TRUE(s->try_lock(ec));
    auto rep = s->recover();
    EXPECT_EQ(rep.discarded_incoming, 1u);
    EXPECT_EQ(rep.corrupt, 1u);
    EXPECT_EQ(rep.active, 1u);
    EXPECT_TRUE(fs::exists(d.path / "corrupt" / "0BBBBBBBBBBBB")) << "unreadable files are kept, not deleted";
    EXPECT_EQ(s->locate(good_id), queue_state::active);
    // deferred/ is listed, not read: its files are checked when they are due.
    EXPECT_EQ(rep.deferred, 1u);
    ASSERT_EQ(rep.entries.size(), 2u) << "the schedule gets every file left in place";
    EXPECT_EQ(rep.entries[0].id, "0CCCCCCCCCCCC");
    envelope env;
    std::string content;
    EXPECT_EQ(s->read_message("0CCCCCCCCCCCC", queue_state::deferred, env, content),
              std::make_error_code(std::errc::illegal_byte_sequence));
    EXPECT_FALSE(s->quarantine("0CCCCCCCCCCCC", queue_state::deferred));
    EXPECT_TRUE(fs::exists(d.path / "corrupt" / "0CCCCCCCCCCCC"));
    EXPECT_EQ(s->locate("0CCCCCCCCCCCC"), std::nullopt);
}

namespace {
std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}
}  // namespace

// A group commit renames its files into active/ before its one syncfs, so a
// crash (power loss) before that returns can leave, in active/, files whose
// data did not all reach the disk. Their clients never got a 250. Recovery
// removes an empty one (none of its data written) and moves one whose check
// line does not match to corrupt/ (kept for a human: it may also be a file
// damaged on disk); whole files, and files from before check lines, stay.
TEST(Spool, RecoveryTellsFilesOfACommitACrashCutOff) {
    temp_dir d;
    std::error_code ec;
    std::string good, torn, empty = "0EEEEEEEEEEEE", legacy = "0DDDDDDDDDDDD";
    {
        auto s = spool::open(d.path, true, ec);
        auto a = make_env(*s, {"a@example.com"});
        good = a.id;
        ASSERT_FALSE(submit_sync(*s, a, std::string(5000, 'a') + "\r\n"));
        auto b = make_env(*s, {"b@example.com"});
        torn = b.id;
        ASSERT_FALSE(submit_sync(*s, b, std::string(9000, 'b') + "\r\n"));
    }
    auto text = slurp(d.path / "active" / good);
    ASSERT_NE(text.find("\ncheck "), std::string::npos) << "every committed file carries its check line";
    ASSERT_EQ(check_seal(text), file_seal::intact);
    // torn: its second 4 KiB page never written (zeros where data should be).
    {
        auto t = slurp(d.path / "active" / torn);
        std::fill(t.begin() + 4096, t.begin() + 8192, '\0');
        std::ofstream(d.path / "active" / torn, std::ios::trunc | std::ios::binary) << t;
    }
    std::ofstream(d.path / "active" / empty).close();
    // reused: a free/ file renamed to a new message's name, none of the new
    // data on disk: the finished message it held, whole (removed); damaged:
    // the same with its id line hit (kept: it cannot be told from a damaged
    // file of that name).
    std::string reused = "0RRRRRRRRRRRR", damaged = "0SSSSSSSSSSSS";
    std::ofstream(d.path / "active" / reused, std::ios::binary) << text;
    {
        auto t = text;
        t[t.find("id " + good) + 3 + good.size() - 1] ^= 0x01;
        std::ofstream(d.path / "active" / damaged, std::ios::binary) << t;
    }
    // held: a torn file an operator (or the breaker) moved to hold/ before
    // the syncfs; recovery does not read hold/, so delivery checks too.
    std::string held;
    {
        auto t = text;
        t.replace(t.find("id " + good), 3 + good.size(), "id " + legacy);
        auto check = t.find("\ncheck ");
        t.erase(check + 1, t.find('\n', check + 1) - check);
        t.replace(0, 16, "ricochet-spool 1");
        std::ofstream(d.path / "active" / legacy, std::ios::binary) << t;
    }
    {
        auto s = spool::open(d.path, false, ec);
        auto h = make_env(*s, {"h@example.com"});
        held = h.id;
        ASSERT_FALSE(submit_sync(*s, h, std::string(9000, 'h') + "\r\n"));
        ASSERT_FALSE(s->move(held, queue_state::active, queue_state::hold));
        auto t = slurp(d.path / "hold" / held);
        std::fill(t.begin() + 4096, t.end(), '\0');
        std::ofstream(d.path / "hold" / held, std::ios::trunc | std::ios::binary) << t;
    }
    auto s = spool::open(d.path, false, ec);
    ASSERT_TRUE(s->try_lock(ec));
    auto rep = s->recover();
    EXPECT_EQ(rep.active, 2u);
    EXPECT_EQ(rep.corrupt, 2u);
    EXPECT_FALSE(fs::exists(d.path / "active" / reused));
    EXPECT_FALSE(fs::exists(d.path / "corrupt" / reused));
    EXPECT_TRUE(fs::exists(d.path / "corrupt" / damaged)) << "another id and a broken check: kept for a human";
    envelope env;
    std::string content;
    EXPECT_EQ(s->read_message(held, queue_state::hold, env, content), std::make_error_code(std::errc::illegal_byte_sequence))
        << "a torn file outside active/ is never sent";
    EXPECT_EQ(rep.discarded_incoming, 1u) << "the empty file counts as unacknowledged";
    EXPECT_EQ(s->locate(good), queue_state::active);
    EXPECT_EQ(s->locate(legacy), queue_state::active);
    EXPECT_FALSE(s->locate(torn));
    EXPECT_TRUE(fs::exists(d.path / "corrupt" / torn)) << "a file whose check fails is kept, not deleted";
    EXPECT_FALSE(fs::exists(d.path / "active" / empty));
    EXPECT_FALSE(fs::exists(d.path / "corrupt" / empty));
}

// A message received in pieces (a spill file) gets the same check line,
// computed over what came from the spill file too.
TEST(Spool, SpilledMessagesAreSealedToo) {
    temp_dir d;
    std::error_code ec;
    auto s = spool::open(d.path, true, ec);
    ASSERT_TRUE(s) << ec.message();
    auto spill = s->open_spill(ec);
    ASSERT_FALSE(ec) << ec.message();
    std::string middle(300 * 1024, 'm');
    ASSERT_EQ(::write(spill.get(), middle.data(), middle.size()), static_cast<ssize_t>(middle.size()));
    auto e = make_env(*s, {"a@example.com"});
    std::string before = "Received: by us\r\n", rest = "the end\r\n";
    e.content_size = before.size() + middle.size() + rest.size();
    std::promise<std::error_code> p;
    s->submit(e, before, std::move(spill), middle.size(), rest, [&p](std::error_code ec) { p.set_value(ec); });
    ASSERT_FALSE(p.get_future().get());
    auto text = slurp(d.path / "active" / e.id);
    EXPECT_EQ(check_seal(text), file_seal::intact);
    EXPECT_EQ(text.substr(text.size() - e.content_size), before + middle + rest);
}

// Gathering: while a submission session has a transaction open, the
// committer waits (here up to 30 s) for its message before committing the
// batch it has, so both share one syncfs.
TEST(Spool, CommitterWaitsForOpenTransactionsAndSharesTheCommit) {
    temp_dir d;
    std::error_code ec;
    auto s = spool::open(d.path, true, ec);
    ASSERT_TRUE(s) << ec.message();
    std::mutex mu;
    std::vector<std::size_t> batches;
    s->set_batch_hook([&](const std::vector<const envelope*>& b) {
        std::lock_guard lk(mu);
        batches.push_back(b.size());
    });
    s->set_gather_wait(std::chrono::seconds(30));
    std::promise<std::error_code> a_done, b_done;
    auto a = a_done.get_future();
    {
        spool::transaction_mark other(*s);
        EXPECT_EQ(s->open_transactions(), 1);
        s->submit(make_env(*s, {"a@example.com"}), "a\r\n", [&](std::error_code e) { a_done.set_value(e); });
        // Without gathering, a commits at once (a few ms); with it, not
        // before the other transaction ends (or 30 s).
        EXPECT_EQ(a.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
            << "a was committed while another transaction was open";
        // The other session's message arrives, then its transaction ends.
        s->submit(make_env(*s, {"b@example.com"}), "b\r\n", [&](std::error_code e) { b_done.set_value(e); });
    }
    EXPECT_EQ(s->open_transactions(), 0);
    EXPECT_FALSE(a.get());
    EXPECT_FALSE(b_done.get_future().get());
    std::lock_guard lk(mu);
    EXPECT_EQ(batches, std::vector<std::size_t>{2}) << "the first message waited for the open transaction";
}

// A transaction that stays open (a slow client) delays a commit by the
// gathering wait at most, and does not hold up stop().
TEST(Spool, AStalledTransactionDelaysACommitOnlyByTheWait) {
    temp_dir d;
    std::error_code ec;
    auto s = spool::open(d.path, true, ec);
    ASSERT_TRUE(s) << ec.message();
    s->set_gather_wait(std::chrono::milliseconds(20));
    spool::transaction_mark stalled(*s);
    auto e = make_env(*s, {"a@example.com"});
    auto id = e.id;
    EXPECT_FALSE(submit_sync(*s, e, "x\r\n"));
    EXPECT_EQ(s->locate(id), queue_state::active);
    s->set_gather_wait(std::chrono::hours(1));
    std::promise<std::error_code> late;
    s->submit(make_env(*s, {"b@example.com"}), "y\r\n", [&](std::error_code e) { late.set_value(e); });
    s->stop();  // stopping ends the gathering: the message is committed, not lost
    EXPECT_FALSE(late.get_future().get());
    stalled.reset();
}

TEST(Spool, LockIsExclusive) {
    temp_dir d;
    std::error_code ec;
    auto a = spool::open(d.path, true, ec);
    auto b = spool::open(d.path, false, ec);
    EXPECT_TRUE(a->try_lock(ec));
    EXPECT_FALSE(b->try_lock(ec));
}

TEST(Spool, RecoveryReadsHugeEnvelopesAndKeepsIdsAboveExistingOnes) {
    temp_dir d;
    std::error_code ec;
    std::string big_id;
    {
        auto s = spool::open(d.path, true, ec);
        std::vector<std::string> rcpts;
        for (int i = 0; i < 1000; ++i) rcpts.push_back("recipient-number-" + std::to_string(i) + "@a-rather-long-domain.example");
        auto e = make_env(*s, rcpts);
        big_id = e.id;
        ASSERT_FALSE(submit_sync(*s, e, "x\r\n"));
    }
    // A message queued "in the future" (the clock stepped back since).
    std::string future = "9ZZZZZZZZZZZ0";
    fs::copy_file(d.path / "active" / big_id, d.path / "active" / future);
    {
        std::string text;
        std::ifstream in(d.path / "active" / future);
        text.assign(std::istreambuf_iterator<char>(in), {});
        text.replace(text.find("id " + big_id), 3 + big_id.size(), "id " + future);
        // An edited file no longer matches its check line; made version 1
        // and without the line, it reads as a file from before checks existed.
        auto check = text.find("\ncheck ");
        ASSERT_NE(check, std::string::npos);
        text.erase(check + 1, text.find('\n', check + 1) - check);
        text.replace(0, 16, "ricochet-spool 1");
        std::ofstream(d.path / "active" / future, std::ios::trunc) << text;
    }
    auto s = spool::open(d.path, false, ec);
    ASSERT_TRUE(s->try_lock(ec));
    auto rep = s->recover();
    EXPECT_EQ(rep.corrupt, 0u) << "a 1000-recipient envelope is bigger than one read, not corrupt";
    EXPECT_EQ(rep.active, 2u);
    EXPECT_EQ(s->read_envelope(big_id, queue_state::active)->recipients.size(), 1000u);
    EXPECT_GT(s->new_id(), future) << "new ids never collide with queued ones";
}

// A finished message's file is renamed to free/ and written over by the next
// message: on a file system mounted with `discard`, freeing blocks costs a
// journal commit each (~900/s here), which capped delivery.
TEST(Spool, FinishedFilesAreWrittenOverByNewMessages) {
    temp_dir d;
    std::error_code ec;
    auto s = spool::open(d.path, true, ec);
    ASSERT_TRUE(s) << ec.message();
    auto e1 = make_env(*s, {"a@example.com"});
    ASSERT_FALSE(submit_sync(*s, e1, std::string(9000, 'x') + "\r\n"));
    struct stat before{};
    ASSERT_EQ(::stat((d.path / "active" / e1.id).c_str(), &before), 0);
    ASSERT_FALSE(s->remove(e1.id, queue_state::active));
    EXPECT_FALSE(s->locate(e1.id)) << "removed means gone from every state";
    EXPECT_EQ(s->free_files(), 1u);
    EXPECT_EQ((fs::status(d.path / "free").permissions() & fs::perms::others_all), fs::perms::none);

    // Not by the very next commit: the rename into free/ is not on disk
    // until a syncfs covers it, and a crash could bring e1's name back over
    // e2's data. The commit after that may reuse it.
    auto e2 = make_env(*s, {"b@example.com"});
    ASSERT_FALSE(submit_sync(*s, e2, "first\r\n"));
    struct stat second{};
    ASSERT_EQ(::stat((d.path / "active" / e2.id).c_str(), &second), 0);
    EXPECT_NE(second.st_ino, before.st_ino) << "a free name is written over only after a syncfs covered its rename";
    EXPECT_EQ(s->free_files(), 1u);

    // A shorter message in the same file: nothing of the old one is left.
    auto e3 = make_env(*s, {"c@example.com"});
    ASSERT_FALSE(submit_sync(*s, e3, "short\r\n"));
    EXPECT_EQ(s->free_files(), 0u);
    struct stat after{};
    ASSERT_EQ(::stat((d.path / "active" / e3.id).c_str(), &after), 0);
    EXPECT_EQ(after.st_ino, before.st_ino) << "the finished file was reused";
    envelope got;
    std::string content;
    ASSERT_FALSE(s->read_message(e3.id, queue_state::active, got, content));
    EXPECT_EQ(got.id, e3.id);
    EXPECT_EQ(content, "short\r\n");
    EXPECT_TRUE(fs::is_empty(d.path / "free"));
}

// A file whose envelope names another id is never read as this message
// (a reused file under an old name): it reads as one that does not decode.
TEST(Spool, AFileHoldingAnotherIdDoesNotReadAsThisMessage) {
    temp_dir d;
    std::error_code ec;
    auto s = spool::open(d.path, true, ec);
    auto e = make_env(*s, {"a@example.com"});
    ASSERT_FALSE(submit_sync(*s, e, "x\r\n"));
    fs::copy_file(d.path / "active" / e.id, d.path / "deferred" / "0EEEEEEEEEEEE");
    envelope got;
    std::string content;
    EXPECT_EQ(s->read_message("0EEEEEEEEEEEE", queue_state::deferred, got, content),
              std::make_error_code(std::errc::illegal_byte_sequence));
    auto st = queue_state::deferred;
    EXPECT_FALSE(s->find_envelope("0EEEEEEEEEEEE", st));
}

// remove() of a message that is not where the caller thought (an operator
// moved it): nothing changes, its status file included.
TEST(Spool, RemoveFromTheWrongStateKeepsTheStatusFile) {
    temp_dir d;
    std::error_code ec;
    auto s = spool::open(d.path, true, ec);
    auto e = make_env(*s, {"a@example.com", "b@example.com"});
    ASSERT_FALSE(submit_sync(*s, e, "x\r\n"));
    recipient_status delivered;
    delivered.status = "delivered";
    ASSERT_FALSE(s->append_status(e.id, {{0, delivered}}));
    EXPECT_TRUE(s->remove(e.id, queue_state::deferred)) << "it is in active/";
    EXPECT_TRUE(fs::exists(d.path / "status" / e.id));
    EXPECT_EQ(s->locate(e.id), queue_state::active);
}

// A status write that failed half-way (a full disk) leaves a torn line: it
// is cut off before the next decision is written, so that one is read back
// (not glued onto it and lost) and the torn one never is.
TEST(Spool, AStatusLineAfterATornOneIsRead) {
    temp_dir d;
    std::error_code ec;
    auto s = spool::open(d.path, true, ec);
    auto e = make_env(*s, {"a@example.com", "b@example.com"});
    ASSERT_FALSE(submit_sync(*s, e, "x\r\n"));
    recipient_status deferred;
    deferred.status = "deferred";
    deferred.attempts = 1;
    ASSERT_FALSE(s->append_status(e.id, {{0, deferred}}));
    {
        std::ofstream torn(d.path / "status" / e.id, std::ios::app | std::ios::binary);
        torn << "1\tdeliv";  // what a short write leaves
    }
    recipient_status delivered;
    delivered.status = "delivered";
    delivered.attempts = 2;
    ASSERT_FALSE(s->append_status(e.id, {{1, delivered}}));
    auto st = s->read_status(e.id, 2, ec);
    ASSERT_FALSE(ec);
    EXPECT_EQ(st[0].status, "deferred");
    EXPECT_EQ(st[1].status, "delivered");
    EXPECT_EQ(st[1].attempts, 2);
    // Torn inside its last field, a line has all its fields: it is cut off
    // all the same, never read as a decision that was not recorded.
    {
        std::ofstream torn(d.path / "status" / e.id, std::ios::app | std::ios::binary);
        torn << "0\tbounced\t3\t0\t550\t5.1.1\trcpt\tmx\tno such user\thard\tuser-unknown\tus";
    }
    recipient_status again = deferred;
    again.attempts = 3;
    ASSERT_FALSE(s->append_status(e.id, {{1, again}}));
    st = s->read_status(e.id, 2, ec);
    EXPECT_EQ(st[0].status, "deferred") << "the torn line was read";
    EXPECT_EQ(st[1].attempts, 3);
}

TEST(Spool, FreeFilesSurviveARestart) {
    temp_dir d;
    std::error_code ec;
    {
        auto s = spool::open(d.path, true, ec);
        std::vector<std::string> ids;
        for (int i = 0; i < 3; ++i) {
            auto e = make_env(*s, {"a@example.com"});
            ids.push_back(e.id);
            ASSERT_FALSE(submit_sync(*s, e, "x\r\n"));
        }
        for (auto& id : ids) ASSERT_FALSE(s->remove(id, queue_state::active));
        EXPECT_EQ(s->free_files(), 3u);
    }
    auto s = spool::open(d.path, true, ec);  // as the daemon opens it
    ASSERT_TRUE(s->try_lock(ec));
    auto rep = s->recover();
    EXPECT_EQ(rep.active, 0u);
    EXPECT_EQ(s->free_files(), 3u) << "free/ is read back at start";
    auto e = make_env(*s, {"b@example.com"});
    ASSERT_FALSE(submit_sync(*s, e, "y\r\n"));
    EXPECT_EQ(s->free_files(), 2u);
}

// A delivery that finishes during a shutdown (after stop()) still renames
// its file into free/ rather than unlinking it: the unlink stays the
// fallback when the rename fails (one failed call then costs nothing, where
// a failed unlink would send the message again after the restart).
TEST(Spool, RemoveAfterStopStillKeepsTheFileForReuse) {
    temp_dir d;
    std::error_code ec;
    auto s = spool::open(d.path, true, ec);
    auto e = make_env(*s, {"a@example.com"});
    ASSERT_FALSE(submit_sync(*s, e, "x\r\n"));
    s->stop();
    ASSERT_FALSE(s->remove(e.id, queue_state::active));
    EXPECT_FALSE(fs::exists(d.path / "active" / e.id));
    EXPECT_TRUE(fs::exists(d.path / "free" / e.id));
}

// A crash can leave a reused file under its old name (the rename to free/
// lost, the new message's data written): that name's message was finished.
TEST(Spool, RecoveryRemovesAFileThatHoldsAnotherMessage) {
    temp_dir d;
    std::error_code ec;
    std::string id;
    {
        auto s = spool::open(d.path, true, ec);
        auto e = make_env(*s, {"a@example.com"});
        id = e.id;
        ASSERT_FALSE(submit_sync(*s, e, "x\r\n"));
    }
    fs::copy_file(d.path / "active" / id, d.path / "active" / "0DDDDDDDDDDDD");
    auto s = spool::open(d.path, false, ec);
    ASSERT_TRUE(s->try_lock(ec));
    auto rep = s->recover();
    EXPECT_EQ(rep.corrupt, 0u);
    EXPECT_EQ(rep.active, 1u);
    EXPECT_FALSE(fs::exists(d.path / "active" / "0DDDDDDDDDDDD"));
    EXPECT_EQ(s->locate(id), queue_state::active);
}

// Beyond max_free_files() the spool's reaper thread unlinks the oldest
// free files; remove() itself only renames.
TEST(Spool, TheReaperKeepsFreeFilesUnderTheCap) {
    temp_dir d;
    std::error_code ec;
    auto s = spool::open(d.path, true, ec);
    s->set_max_free_files(2);
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) {
        auto e = make_env(*s, {"a@example.com"});
        ids.push_back(e.id);
        ASSERT_FALSE(submit_sync(*s, e, "x\r\n"));
    }
    for (auto& id : ids) ASSERT_FALSE(s->remove(id, queue_state::active));
    auto count = [&] { return std::distance(fs::directory_iterator(d.path / "free"), fs::directory_iterator()); };
    for (int i = 0; i < 500 && (s->free_files() > 2 || count() > 2); ++i) ::usleep(10000);  // bounded wait for the reaper
    EXPECT_EQ(s->free_files(), 2u);
    EXPECT_EQ(count(), 2);
    EXPECT_TRUE(fs::exists(d.path / "free" / ids[4])) << "the newest are kept, the oldest reaped";
    EXPECT_FALSE(fs::exists(d.path / "free" / ids[0]));
}

// ---- The write-ahead journal (queue/commit_journal.hpp) ----
//
// A crash's image is taken by copying the spool while it runs, with
// checkpoints paused: everything written is in the copy, as after a kill -9;
// a power loss is then modelled by taking away, in the copy, what only the
// page cache held (a file's data, a name).
namespace {
std::unique_ptr<spool> open_journaled(const fs::path& dir, std::uint64_t size = 1 << 20) {
    std::error_code ec;
    auto s = spool::open(dir, true, ec, true, size);
    EXPECT_TRUE(s) << ec.message();
    if (s) {
        s->pause_checkpoints(true);
        EXPECT_TRUE(s->try_lock(ec));  // the journal is opened (and read back) under the lock
        EXPECT_TRUE(s->journaling());
    }
    return s;
}

void crash_image(const fs::path& from, const fs::path& to) {
    fs::copy(from, to, fs::copy_options::recursive);
    fs::remove(to / "lock");
}

std::string file_bytes(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// A journaled spool in dir/run commits one message, `then` acts on it, and
// dir/crash is left as the crash's image; returns the message's id.
std::string crash_after_one(const fs::path& dir, const std::string& body,
                            const std::function<void(spool&, const std::string&)>& then = {}) {
    auto s = open_journaled(dir / "run");
    if (!s) return {};
    auto e = make_env(*s, {"a@example.com"});
    EXPECT_FALSE(submit_sync(*s, e, body));
    if (then) then(*s, e.id);
    crash_image(dir / "run", dir / "crash");
    return e.id;
}

std::string content_of(spool& s, const std::string& id, queue_state st = queue_state::active) {
    envelope env;
    std::string content;
    if (s.read_message(id, st, env, content)) return "<unreadable>";
    return content;
}
}  // namespace

// A committed message whose file (data or name) did not reach the disk is
// written back from the journal at the next start, octet for octet.
TEST(SpoolJournal, LostFilesAreWrittenBackAtStart) {
    temp_dir d;
    std::vector<std::string> ids;
    std::vector<std::string> bodies;
    {
        auto s = open_journaled(d.path / "run");
        ASSERT_TRUE(s);
        for (int i = 0; i < 4; ++i) {
            auto e = make_env(*s, {"a@example.com"});
            ids.push_back(e.id);
            bodies.push_back("Subject: " + std::to_string(i) + "\r\n\r\n" + std::string(3000 + i, 'a' + i) + "\r\n");
            ASSERT_FALSE(submit_sync(*s, e, bodies.back()));
        }
        crash_image(d.path / "run", d.path / "crash");
    }
    auto img = d.path / "crash";
    fs::resize_file(img / "active" / ids[0], 0);  // created, none of its data on disk
    fs::remove(img / "active" / ids[1]);          // its name never reached the disk
    {
        std::fstream f(img / "active" / ids[2], std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(-10, std::ios::end);
        f.put('#');  // part of its data lost
    }
    auto s = open_journaled(img);
    std::error_code ec;
    ASSERT_TRUE(s->try_lock(ec));
    auto rep = s->recover();
    EXPECT_EQ(rep.active, 4u);
    EXPECT_EQ(rep.corrupt, 0u);
    EXPECT_EQ(rep.discarded_incoming, 0u);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(content_of(*s, ids[i]), bodies[i]) << i;
    EXPECT_TRUE(fs::is_empty(img / "incoming"));
}

// ricochetctl opens the spool without create and takes the lock: the
// journal is read back then too, so it never acts on a spool missing a
// message that had its 250.
TEST(SpoolJournal, ReadBackByWhoeverTakesTheLock) {
    temp_dir d;
    auto id = crash_after_one(d.path, "x\r\n");
    fs::remove(d.path / "crash" / "active" / id);
    std::error_code ec;
    auto s = spool::open(d.path / "crash", false, ec);
    ASSERT_TRUE(s) << ec.message();
    EXPECT_FALSE(s->journaling());
    EXPECT_FALSE(s->locate(id));
    ASSERT_TRUE(s->try_lock(ec));
    EXPECT_EQ(s->locate(id), queue_state::active);
    EXPECT_EQ(content_of(*s, id), "x\r\n");
}

// A message finished after its commit (its name in free/) or moved by an
// operator is not brought back, nor written twice.
TEST(SpoolJournal, FinishedAndMovedMessagesStayAsTheyAre) {
    temp_dir d;
    std::string done, held, later;
    std::int64_t due = 0;
    {
        auto s = open_journaled(d.path / "run");
        auto e1 = make_env(*s, {"a@example.com"});
        auto e2 = make_env(*s, {"b@example.com"});
        auto e3 = make_env(*s, {"c@example.com"});
        done = e1.id;
        held = e2.id;
        later = e3.id;
        ASSERT_FALSE(submit_sync(*s, e1, "one\r\n"));
        ASSERT_FALSE(submit_sync(*s, e2, "two\r\n"));
        ASSERT_FALSE(submit_sync(*s, e3, "three\r\n"));
        ASSERT_FALSE(s->remove(done, queue_state::active));
        ASSERT_FALSE(s->move(held, queue_state::active, queue_state::hold));
        due = (std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() + 3600) * 1000;
        ASSERT_FALSE(s->defer(later, queue_state::active, due));
        crash_image(d.path / "run", d.path / "crash");
    }
    // Moved, their data not yet on disk (the deferred one keeps its due time, its mtime).
    fs::resize_file(d.path / "crash" / "hold" / held, 0);
    auto deferred_file = d.path / "crash" / "deferred" / later;
    fs::resize_file(deferred_file, 0);
    timespec times[2];
    times[0].tv_sec = times[1].tv_sec = static_cast<time_t>(due / 1000);
    times[0].tv_nsec = times[1].tv_nsec = 0;
    ASSERT_EQ(::utimensat(AT_FDCWD, deferred_file.c_str(), times, 0), 0);  // a copy does not keep it
    auto s = open_journaled(d.path / "crash");
    std::error_code ec;
    ASSERT_TRUE(s->try_lock(ec));
    auto rep = s->recover();
    EXPECT_FALSE(s->locate(done)) << "a finished message is not delivered again";
    EXPECT_EQ(s->locate(held), queue_state::hold);
    EXPECT_EQ(content_of(*s, held, queue_state::hold), "two\r\n");
    EXPECT_EQ(s->locate(later), queue_state::deferred);
    EXPECT_EQ(content_of(*s, later, queue_state::deferred), "three\r\n");
    EXPECT_EQ(s->mtime_ms(later, queue_state::deferred), due) << "still due when it was";
    EXPECT_EQ(rep.active, 0u);
    EXPECT_EQ(rep.hold, 1u);
    EXPECT_EQ(rep.deferred, 1u);
}

// Records a checkpoint covered are never read again: by then the files
// were synced, and a finished message's name may be gone from free/.
TEST(SpoolJournal, CheckpointedRecordsAreNotReadAgain) {
    temp_dir d;
    auto id = crash_after_one(d.path, "x\r\n", [](spool& s, const std::string& id) {
        EXPECT_FALSE(s.remove(id, queue_state::active));
        EXPECT_FALSE(s.checkpoint());
    });
    fs::remove(d.path / "crash" / "free" / id);  // reaped, or written over by another message
    auto s = open_journaled(d.path / "crash");
    std::error_code ec;
    ASSERT_TRUE(s->try_lock(ec));
    s->recover();
    EXPECT_FALSE(s->locate(id));
}

// Until a checkpoint covers its record, a finished message's name stays in
// free/: neither reaped nor written over (either would let the record bring
// the message back after a crash).
TEST(SpoolJournal, FreeNamesWaitForACheckpoint) {
    temp_dir d;
    auto s = open_journaled(d.path);
    s->set_max_free_files(0);
    auto e1 = make_env(*s, {"a@example.com"});
    ASSERT_FALSE(submit_sync(*s, e1, "x\r\n"));
    ASSERT_FALSE(s->remove(e1.id, queue_state::active));
    auto e2 = make_env(*s, {"b@example.com"});
    ASSERT_FALSE(submit_sync(*s, e2, "y\r\n"));
    EXPECT_TRUE(fs::exists(d.path / "free" / e1.id)) << "a journal commit does not cover the rename";
    EXPECT_EQ(s->free_files(), 1u);
    ASSERT_FALSE(s->checkpoint());
    for (int i = 0; i < 500 && fs::exists(d.path / "free" / e1.id); ++i) ::usleep(10000);  // bounded wait for the reaper
    EXPECT_FALSE(fs::exists(d.path / "free" / e1.id)) << "reaped once covered";
}

// A record torn by the crash (its fdatasync had not returned: no 250) is
// not read, nor anything after it.
TEST(SpoolJournal, ATornRecordEndsTheReadBack) {
    temp_dir d;
    std::string first, second, third;
    {
        auto s = open_journaled(d.path / "run");
        auto e1 = make_env(*s, {"a@example.com"});
        auto e2 = make_env(*s, {"b@example.com"});
        auto e3 = make_env(*s, {"c@example.com"});
        first = e1.id;
        second = e2.id;
        third = e3.id;
        ASSERT_FALSE(submit_sync(*s, e1, "one\r\n"));
        ASSERT_FALSE(submit_sync(*s, e2, "two-" + std::string(5000, 'z') + "\r\n"));
        ASSERT_FALSE(submit_sync(*s, e3, "three\r\n"));
        crash_image(d.path / "run", d.path / "crash");
    }
    auto img = d.path / "crash";
    {
        // The second record's last octets did not reach the disk.
        auto j = file_bytes(img / "journal");
        auto at = j.find("two-");
        ASSERT_NE(at, std::string::npos);
        std::fstream f(img / "journal", std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(at + 4000));
        f.put('\0');
    }
    fs::remove(img / "active" / first);
    fs::remove(img / "active" / second);
    fs::remove(img / "active" / third);
    auto s = open_journaled(img);
    std::error_code ec;
    ASSERT_TRUE(s->try_lock(ec));
    auto rep = s->recover();
    EXPECT_EQ(content_of(*s, first), "one\r\n");
    EXPECT_FALSE(s->locate(second)) << "a torn record is not written back";
    EXPECT_FALSE(s->locate(third)) << "nor one after it";
    EXPECT_EQ(rep.corrupt, 0u);
}

// When the next record does not fit before the end, everything is synced
// and the journal starts over; it never grows, and what is committed after
// the turn is still read back.
TEST(SpoolJournal, AFullJournalStartsOverAfterASync) {
    temp_dir d;
    std::vector<std::string> ids;
    // Each record of a 4 KiB message takes two 4 KiB blocks: seven fit in a
    // lap, and one block is left for a small last one, wherever the laps
    // turned.
    constexpr std::uint64_t size = 68 * 1024;
    std::string tail;
    {
        auto s = open_journaled(d.path / "run", size);
        for (int i = 0; i < 40; ++i) {
            auto e = make_env(*s, {"a@example.com"});
            ids.push_back(e.id);
            ASSERT_FALSE(submit_sync(*s, e, std::string(4000, 'm') + std::to_string(i) + "\r\n"));
            if (i == 1) {
                ASSERT_FALSE(s->remove(ids[0], queue_state::active));  // finished in the first lap
            }
        }
        auto e = make_env(*s, {"a@example.com"});
        tail = e.id;
        ASSERT_FALSE(submit_sync(*s, e, "tail\r\n"));
        EXPECT_TRUE(s->journaling());
        crash_image(d.path / "run", d.path / "crash");
    }
    EXPECT_EQ(fs::file_size(d.path / "crash" / "journal"), size);
    fs::remove(d.path / "crash" / "active" / tail);
    fs::remove(d.path / "crash" / "free" / ids[0]);  // reaped or reused since
    auto s = open_journaled(d.path / "crash", size);
    std::error_code ec;
    ASSERT_TRUE(s->try_lock(ec));
    auto rep = s->recover();
    EXPECT_EQ(rep.active, 40u);
    EXPECT_EQ(content_of(*s, tail), "tail\r\n");
    EXPECT_FALSE(s->locate(ids[0])) << "an earlier lap's record is never read";
    for (int i = 1; i < 40; ++i) EXPECT_EQ(content_of(*s, ids[i]), std::string(4000, 'm') + std::to_string(i) + "\r\n");
}

// The two header slots are written in turn, the first checkpoint into the
// slot the journal was not made with: a header torn by a power loss leaves
// the one before it, and the records after that are read.
TEST(SpoolJournal, ATornHeaderLeavesTheOtherSlot) {
    temp_dir d;
    std::string first, second;
    {
        auto s = open_journaled(d.path / "run");
        ASSERT_FALSE(s->checkpoint());  // the journal is clean after a start: this writes nothing
        auto e1 = make_env(*s, {"a@example.com"});
        first = e1.id;
        ASSERT_FALSE(submit_sync(*s, e1, "one\r\n"));
        ASSERT_FALSE(s->checkpoint());  // one header write
        auto e2 = make_env(*s, {"b@example.com"});
        second = e2.id;
        ASSERT_FALSE(submit_sync(*s, e2, "two\r\n"));
        crash_image(d.path / "run", d.path / "crash");
    }
    auto img = d.path / "crash";
    // Find the slot the last header went to: tear it.
    auto j = file_bytes(img / "journal");
    auto writes = [&](std::size_t slot) {
        std::uint64_t w;
        std::memcpy(&w, j.data() + slot * 4096 + 8, 8);
        return w;
    };
    std::size_t last = writes(0) > writes(1) ? 0 : 1;
    {
        std::fstream f(img / "journal", std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(last * 4096 + 20));
        f.put('\x7f');
    }
    fs::remove(img / "active" / first);
    fs::remove(img / "active" / second);
    auto s = open_journaled(img);
    s->recover();
    EXPECT_EQ(content_of(*s, first), "one\r\n") << "read from the header before the torn one";
    EXPECT_EQ(content_of(*s, second), "two\r\n");
    for (auto& e : fs::directory_iterator(img)) EXPECT_EQ(e.path().filename().string().find("journal.bad"), std::string::npos);
}

// A clean stop leaves nothing to read back; a file that is not a journal
// is made anew by the daemon and refused by a reader.
TEST(SpoolJournal, StopCheckpointsAndABadFileIsRemade) {
    temp_dir d;
    std::string id;
    {
        auto s = open_journaled(d.path);
        auto e = make_env(*s, {"a@example.com"});
        id = e.id;
        ASSERT_FALSE(submit_sync(*s, e, "x\r\n"));
        s->stop();
        ASSERT_FALSE(s->remove(id, queue_state::active));
    }
    fs::remove(d.path / "free" / id);
    {
        auto s = open_journaled(d.path);
        std::error_code ec;
        ASSERT_TRUE(s->try_lock(ec));
        s->recover();
        EXPECT_FALSE(s->locate(id)) << "stop() recorded a checkpoint";
    }
    std::string junk = "not a journal" + std::string(9000, '?');
    { std::ofstream(d.path / "journal", std::ios::trunc) << junk; }
    std::error_code ec;
    {
        auto r = spool::open(d.path, false, ec);  // as ricochetctl opens it
        ASSERT_TRUE(r);
        ASSERT_TRUE(r->try_lock(ec));
        EXPECT_FALSE(r->journaling());
    }
    EXPECT_EQ(fs::file_size(d.path / "journal"), junk.size()) << "a reader leaves it alone";
    auto s = open_journaled(d.path, 1 << 20);
    EXPECT_EQ(fs::file_size(d.path / "journal"), 1u << 20);
    int set_aside = 0;
    for (auto& e : fs::directory_iterator(d.path))
        if (e.path().filename().string().rfind("journal.bad.", 0) == 0) {
            ++set_aside;
            EXPECT_EQ(fs::file_size(e.path()), junk.size()) << "kept for a human, as it was";
        }
    EXPECT_EQ(set_aside, 1);
}

// A journal that is there but cannot be read (here a directory where the
// file should be) may hold records naming finished messages: it is frozen
// until a start can read it. Commits still succeed, synced; no finished
// name in free/ goes (reaped or written over), so no record of it could
// bring a message back; the journal is left as it is.
TEST(SpoolJournal, AnUnreadableJournalIsFrozen) {
    temp_dir d;
    fs::create_directories(d.path / "journal");
    std::error_code ec;
    auto s = spool::open(d.path, true, ec, true, 1 << 20);
    ASSERT_TRUE(s) << ec.message();
    ASSERT_TRUE(s->try_lock(ec));
    EXPECT_FALSE(s->journaling());
    s->set_max_free_files(100);  // the next commit would reuse a covered name
    auto e1 = make_env(*s, {"a@example.com"});
    ASSERT_FALSE(submit_sync(*s, e1, "x\r\n")) << "a commit is synced instead";
    ASSERT_FALSE(s->remove(e1.id, queue_state::active));
    ASSERT_FALSE(s->checkpoint()) << "the files are synced all the same";
    auto e2 = make_env(*s, {"b@example.com"});
    ASSERT_FALSE(submit_sync(*s, e2, "y\r\n"));
    s->stop();
    EXPECT_TRUE(fs::exists(d.path / "free" / e1.id)) << "not written over while the journal is frozen";
    EXPECT_EQ(s->free_files(), 1u);
    EXPECT_TRUE(fs::is_directory(d.path / "journal")) << "left for the next start";
    for (auto& e : fs::directory_iterator(d.path)) EXPECT_EQ(e.path().filename().string().find("journal.bad"), std::string::npos);
}

// A finished message whose name cannot go to free/ is unlinked: with a
// journal, a checkpoint first covers its record, so no start brings it
// back from the journal.
TEST(SpoolJournal, AFinishedMessageUnlinkedIsNotBroughtBack) {
    temp_dir d;
    auto id = crash_after_one(d.path, "x\r\n", [&](spool& s, const std::string& id) {
        fs::create_directories(d.path / "run" / "free" / id / "in-the-way");  // the rename to free/ fails
        EXPECT_FALSE(s.remove(id, queue_state::active));
        EXPECT_FALSE(fs::exists(d.path / "run" / "active" / id));
    });
    fs::remove_all(d.path / "crash" / "free" / id);
    auto s = open_journaled(d.path / "crash");
    s->recover();
    EXPECT_FALSE(s->locate(id)) << "a finished message is not delivered again";
}
