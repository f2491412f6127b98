// make_spool — fills a fresh spool with N deferred messages, fast, for
// bench/spool_scale.sh: how long a restart takes and how much memory the
// daemon needs with a large deferred queue.
//
//   make_spool SPOOL_DIR N [--domain example.com] [--size 1024] [--due-in 3600] [--threads 2]
//
// Files are in the daemon's own on-disk format: the directory tree comes from
// spool::open(), ids from the spool's id generator, the header block from
// encode_envelope(). Each message has one recipient rI@DOMAIN and lies in
// deferred/ with its mtime (= when it is due, as spool::defer sets it)
// --due-in seconds from now; one more message, due-now@DOMAIN, is due at
// once. Unlike the daemon, nothing is fsynced per file: one syncfs() at the
// end, so that the measurement that follows does not compete with writeback.
// Prints the id of the message due now on stdout.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "queue/clock.hpp"
#include "queue/envelope.hpp"
#include "queue/spool.hpp"

using namespace ricochet;

namespace {

bool write_all(int fd, std::string_view a, std::string_view b) {
    iovec iov[2] = {{const_cast<char*>(a.data()), a.size()}, {const_cast<char*>(b.data()), b.size()}};
    std::size_t want = a.size() + b.size();
    ssize_t n = ::writev(fd, iov, 2);
    if (n == static_cast<ssize_t>(want)) return true;
    if (n < 0) return false;
    // Short write (rare on a regular file): finish it the plain way.
    std::string rest = std::string(a) + std::string(b);
    std::size_t done = static_cast<std::size_t>(n);
    while (done < want) {
        ssize_t w = ::write(fd, rest.data() + done, want - done);
        if (w <= 0) return false;
        done += static_cast<std::size_t>(w);
    }
    return true;
}

// The message as it would have been queued: CRLF, our Received: on top.
std::string content_for(const std::string& id, const std::string& rcpt, std::size_t size) {
    std::string c;
    c.reserve(size + 512);
    c += "Received: from bench.invalid ([127.0.0.1])\r\n\tby ricochet.bench.invalid with ESMTP id " + id + "\r\n";
    c += "From: <sender@bench.invalid>\r\nTo: <" + rcpt + ">\r\nSubject: spool scale " + id + "\r\n";
    c += "Message-ID: <" + id + "@bench.invalid>\r\nX-Campaign-ID: spool-scale\r\n\r\n";
    static const std::string line(76, 'x');
    while (c.size() < size) c += line + "\r\n";
    return c;
}

bool write_one(queue::spool& sp, int deferred_fd, const std::string& rcpt, std::int64_t arrival_ms,
               std::int64_t due_ms, std::size_t size, std::string& id_out) {
    queue::envelope env;
    env.id = sp.new_id();
    env.arrival_ms = arrival_ms;
    env.sender = "sender@bench.invalid";
    env.recipients = {rcpt};
    env.campaign = "spool-scale";
    env.client = "127.0.0.1";
    env.helo = "bench.invalid";
    std::string content = content_for(env.id, rcpt, size);
    env.content_size = content.size();
    std::string head = queue::encode_envelope(env);
    int fd = ::openat(deferred_fd, env.id.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        std::perror(("make_spool: create deferred/" + env.id).c_str());
        return false;
    }
    bool ok = write_all(fd, head, content);
    // After the last write: the mtime of a deferred file is when it is due.
    timespec times[2];
    times[0].tv_sec = times[1].tv_sec = static_cast<time_t>(due_ms / 1000);
    times[0].tv_nsec = times[1].tv_nsec = static_cast<long>(due_ms % 1000) * 1000000;
    if (ok && ::futimens(fd, times) != 0) ok = false;
    if (::close(fd) != 0) ok = false;
    if (!ok) std::perror(("make_spool: write deferred/" + env.id).c_str());
    id_out = env.id;
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"make_spool - a spool of N deferred messages in Ricochet's on-disk format (benchmarks)"};
    std::string dir, domain = "example.com";
    std::size_t n = 0, size = 1024;
    std::int64_t due_in = 3600;
    unsigned threads = 2;
    app.add_option("spool_dir", dir, "spool directory (must not exist or be empty)")->required();
    app.add_option("n", n, "deferred messages")->required();
    app.add_option("--domain", domain, "recipients' domain")->capture_default_str();
    app.add_option("--size", size, "approximate message size in bytes")->capture_default_str();
    app.add_option("--due-in", due_in, "seconds until the deferred messages are due")->capture_default_str();
    app.add_option("--threads", threads, "writer threads")->capture_default_str()->check(CLI::Range(1u, 64u));
    CLI11_PARSE(app, argc, argv);

    std::error_code ec;
    if (std::filesystem::exists(dir, ec) && !std::filesystem::is_empty(dir, ec)) {
        std::cerr << "make_spool: " << dir << " is not empty\n";
        return 2;
    }
    auto sp = queue::spool::open(dir, true, ec);
    if (!sp) {
        std::cerr << "make_spool: cannot open spool " << dir << ": " << ec.message() << "\n";
        return 1;
    }
    int deferred_fd = ::open((std::filesystem::path(dir) / "deferred").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (deferred_fd < 0) {
        std::perror("make_spool: open deferred/");
        return 1;
    }

    auto t0 = std::chrono::steady_clock::now();
    const std::int64_t now = now_ms(), due = now + due_in * 1000;
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            std::string id;
            while (!failed) {
                std::size_t i = next.fetch_add(1);
                if (i >= n) break;
                if (!write_one(*sp, deferred_fd, "r" + std::to_string(i) + "@" + domain, now, due, size, id))
                    failed = true;
            }
        });
    for (auto& t : pool) t.join();
    std::string due_now_id;
    if (failed || !write_one(*sp, deferred_fd, "due-now@" + domain, now, now, size, due_now_id)) return 1;
    auto t1 = std::chrono::steady_clock::now();
    if (::syncfs(deferred_fd) != 0) {
        std::perror("make_spool: syncfs");
        return 1;
    }
    ::fsync(deferred_fd);
    auto t2 = std::chrono::steady_clock::now();
    ::close(deferred_fd);

    // Read the due message back with the daemon's own reader.
    queue::envelope env;
    std::string content;
    auto mt = sp->mtime_ms(due_now_id, queue::queue_state::deferred);
    if (auto rec = sp->read_message(due_now_id, queue::queue_state::deferred, env, content); rec || !mt || *mt != now) {
        std::cerr << "make_spool: cannot read back " << due_now_id << "\n";
        return 1;
    }
    sp->stop();
    auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
    std::cerr << "make_spool: " << n << " deferred (due in " << due_in << " s) + 1 due now in " << dir << "/deferred: "
              << secs(t1 - t0) << " s writing (" << static_cast<long>((n + 1) / std::max(secs(t1 - t0), 1e-9))
              << " files/s), " << secs(t2 - t1) << " s syncfs\n";
    std::cout << due_now_id << "\n";
    return 0;
}
