// log_reader — see log_reader.hpp.
#include "events/log_reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <memory>

#include "base/unique_fd.hpp"

namespace ricochet::events {
namespace {

// pread until n bytes or end of file.
std::string read_at(int fd, std::uint64_t off, std::size_t n, std::error_code& ec) {
    std::string buf(n, '\0');
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::pread(fd, buf.data() + got, n - got, static_cast<off_t>(off + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            ec.assign(errno, std::generic_category());
            return {};
        }
        if (r == 0) break;
        got += static_cast<std::size_t>(r);
    }
    buf.resize(got);
    return buf;
}

struct line_at {
    std::uint64_t start = 0, end = 0;  // [start, end): the line, end is past its newline
    std::uint64_t seq = 0;
    bool found = false;
};

// The first whole line that starts at or after `from` (a line starts at 0
// or after a newline).
line_at first_line_from(int fd, std::uint64_t from, std::uint64_t size, std::error_code& ec) {
    line_at l;
    std::uint64_t pos = from;
    if (from > 0) {  // skip to just past the newline before or at from-1
        pos = from - 1;
        for (;;) {
            auto chunk = read_at(fd, pos, 16384, ec);
            if (ec || chunk.empty()) return l;
            auto nl = chunk.find('\n');
            if (nl != std::string::npos) {
                pos += nl + 1;
                break;
            }
            pos += chunk.size();
        }
    }
    std::string line;
    for (std::uint64_t p = pos; p < size;) {
        auto chunk = read_at(fd, p, 16384, ec);
        if (ec || chunk.empty()) return l;
        auto nl = chunk.find('\n');
        line.append(chunk, 0, nl == std::string::npos ? chunk.size() : nl);
        if (nl != std::string::npos) {
            l.start = pos;
            l.end = p + nl + 1;
            l.seq = line_seq(line);
            l.found = true;
            return l;
        }
        p += chunk.size();
    }
    return l;  // a torn last line
}

}  // namespace

std::uint64_t line_seq(std::string_view line) {
    constexpr std::string_view prefix = "{\"seq\":";
    if (line.substr(0, prefix.size()) != prefix) return 0;
    std::uint64_t v = 0;
    std::size_t i = prefix.size(), digits = 0;
    for (; i < line.size() && line[i] >= '0' && line[i] <= '9' && digits < 19; ++i, ++digits)
        v = v * 10 + static_cast<std::uint64_t>(line[i] - '0');
    return digits && i < line.size() && line[i] == ',' ? v : 0;
}

std::string_view line_type(std::string_view line) {
    constexpr std::string_view key = "\"type\":\"";
    auto at = line.find(key);
    if (at == std::string_view::npos) return {};
    auto start = at + key.size();
    auto end = line.find('"', start);
    return end == std::string_view::npos ? std::string_view{} : line.substr(start, end - start);
}

namespace {
log_batch read_log_fd(const base::unique_fd& fd, const log_query& q, std::error_code& ec);
std::uint64_t last_seq_in_fd(const base::unique_fd& fd, std::error_code& ec);
}  // namespace

log_batch read_log(const std::filesystem::path& path, const log_query& q, std::error_code& ec) {
    ec.clear();
    base::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno != ENOENT) ec.assign(errno, std::generic_category());
        return {};  // no log yet: nothing happened
    }
    return read_log_fd(fd, q, ec);
}

namespace {
log_batch read_log_fd(const base::unique_fd& fd, const log_query& q, std::error_code& ec) {
    log_batch out;
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        ec.assign(errno, std::generic_category());
        return out;
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);

    // Binary search: lo is a line start at or before the first line with
    // seq > after; narrowed until a linear read is cheap.
    std::uint64_t lo = 0, hi = size;
    while (q.after > 0 && hi - lo > 65536) {
        std::uint64_t mid = lo + (hi - lo) / 2;
        auto l = first_line_from(fd.get(), mid, size, ec);
        if (ec) return out;
        if (!l.found || l.start >= hi || l.seq == 0) hi = mid;  // nothing usable there: look left
        else if (l.seq <= q.after) lo = l.end;
        else hi = mid;
    }

    std::uint64_t pos = lo, scanned = 0;
    std::string carry;
    while (pos < size) {
        auto chunk = read_at(fd.get(), pos, 1 << 20, ec);
        if (ec) return out;
        if (chunk.empty()) break;
        pos += chunk.size();
        scanned += chunk.size();
        carry += chunk;
        std::size_t begin = 0;
        for (std::size_t nl; (nl = carry.find('\n', begin)) != std::string::npos; begin = nl + 1) {
            std::string_view line(carry.data() + begin, nl - begin);
            auto s = line_seq(line);
            if (s == 0 || s <= q.after) continue;
            if (out.lines.size() >= q.limit) {
                out.more = true;
                return out;
            }
            out.last_seq = std::max(out.last_seq, s);
            if (!q.keep || q.keep(line_type(line))) out.lines.emplace_back(line);
        }
        carry.erase(0, begin);  // a torn line waits for its end
        if (scanned >= q.max_scan_bytes && pos < size) {
            out.more = true;
            return out;
        }
    }
    return out;
}
}  // namespace

namespace {

// A gzip'd segment (logrotate's "compress", or ricochetd's own rotation):
// read from the start, as it cannot be searched; bounded by max_scan_bytes
// of decompressed text like a plain one.
struct gz_closer {
    void operator()(gzFile f) const { gzclose(f); }
};
using gz_ptr = std::unique_ptr<gzFile_s, gz_closer>;

// From the start of fd, which stays open (zlib reads a duplicate).
gz_ptr gz_open(const base::unique_fd& fd, std::error_code& ec) {
    ec.clear();
    int dup = ::dup(fd.get());
    if (dup < 0 || ::lseek(dup, 0, SEEK_SET) < 0) {
        ec.assign(errno, std::generic_category());
        if (dup >= 0) ::close(dup);
        return nullptr;
    }
    gz_ptr f(gzdopen(dup, "rb"));
    if (!f) {
        ::close(dup);
        ec = std::make_error_code(std::errc::io_error);
        return nullptr;
    }
    gzbuffer(f.get(), 1 << 17);
    return f;
}

// Calls on_line for each line until it returns false; false when the read failed.
template <class F>
bool gz_lines(gzFile f, F&& on_line) {
    std::string carry;
    std::vector<char> buf(1 << 17);
    for (;;) {
        int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
        if (n < 0) return false;
        if (n == 0) return true;  // a last line without its newline is torn: not read
        carry.append(buf.data(), static_cast<std::size_t>(n));
        std::size_t begin = 0;
        for (std::size_t nl; (nl = carry.find('\n', begin)) != std::string::npos; begin = nl + 1)
            if (!on_line(std::string_view(carry.data() + begin, nl - begin), static_cast<std::size_t>(n))) return true;
        carry.erase(0, begin);
    }
}

log_batch read_gz(const base::unique_fd& fd, const log_query& q, std::error_code& ec) {
    log_batch out;
    auto f = gz_open(fd, ec);
    if (!f) return out;
    std::uint64_t scanned = 0;
    bool ok = gz_lines(f.get(), [&](std::string_view line, std::size_t) {
        scanned += line.size() + 1;
        auto s = line_seq(line);
        if (s == 0 || s <= q.after) return scanned < q.max_scan_bytes || (out.more = true, false);
        if (out.lines.size() >= q.limit) {
            out.more = true;
            return false;
        }
        out.last_seq = std::max(out.last_seq, s);
        if (!q.keep || q.keep(line_type(line))) out.lines.emplace_back(line);
        if (scanned >= q.max_scan_bytes) {
            out.more = true;
            return false;
        }
        return true;
    });
    if (!ok) ec = std::make_error_code(std::errc::io_error);
    return out;
}

// One segment of the log: PATH.N.gz, PATH.N or PATH itself, opened.
struct segment {
    base::unique_fd fd;
    bool gz = false;
};

// Oldest first: ..., PATH.3.gz, PATH.2.gz, PATH.1, PATH (either name per
// number, as logrotate's delaycompress and ricochetd's own rotation leave
// them). Each is opened as it is found, newest first, so that a rotation
// while the names are looked at cannot hide a segment: names only move
// towards older numbers, so a segment may be seen twice (the same inode,
// kept once) but none is skipped between the newest and the oldest found.
namespace {
// One pass over the names: what each segment's name held, and the fds.
std::vector<segment> scan_segments(const std::filesystem::path& path,
                                   std::vector<std::pair<std::filesystem::path, ino_t>>& names) {
    std::vector<segment> newest_first;
    std::vector<std::pair<dev_t, ino_t>> seen;
    names.clear();
    auto take = [&](const std::filesystem::path& p, bool gz) {
        base::unique_fd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
        if (!fd) return false;
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) return false;
        names.emplace_back(p, st.st_ino);
        for (auto& s : seen)
            if (s.first == st.st_dev && s.second == st.st_ino) return true;
        seen.emplace_back(st.st_dev, st.st_ino);
        newest_first.push_back({std::move(fd), gz});
        return true;
    };
    if (!take(path, false)) newest_first.push_back({base::unique_fd(), false});  // no current file yet
    for (int k = 1; k < 10000; ++k) {
        auto plain = path;
        plain += "." + std::to_string(k);
        auto gz = plain;
        gz += ".gz";
        if (!take(gz, true) && !take(plain, false)) {
            names.emplace_back(gz, 0);  // the end: nothing there
            names.emplace_back(plain, 0);
            break;
        }
    }
    return {std::make_move_iterator(newest_first.rbegin()), std::make_move_iterator(newest_first.rend())};
}
}  // namespace

// A rotation may rename the segments while they are opened one by one (and
// a compressed one appears only after its plain one went): a segment could
// then be missed. The names are checked again after the pass; when any
// changed, the pass is made again (a rotation is rare: once is enough).
std::vector<segment> segments_of(const std::filesystem::path& path) {
    std::vector<std::pair<std::filesystem::path, ino_t>> names;
    std::vector<segment> segs;
    for (int tries = 0; tries < 5; ++tries) {
        segs = scan_segments(path, names);
        bool same = true;
        for (auto& [p, ino] : names) {
            struct stat st {};
            ino_t now = ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
            if (now != ino) {
                same = false;
                break;
            }
        }
        if (same) break;
    }
    return segs;
}

// The first numbered seq of a segment (0: none, or unreadable).
std::uint64_t first_seq(const segment& s) {
    std::error_code ec;
    if (!s.fd) return 0;
    if (!s.gz) {
        struct stat st {};
        if (::fstat(s.fd.get(), &st) != 0) return 0;
        for (std::uint64_t at = 0; at < static_cast<std::uint64_t>(st.st_size);) {
            auto l = first_line_from(s.fd.get(), at, static_cast<std::uint64_t>(st.st_size), ec);
            if (ec || !l.found) return 0;
            if (l.seq) return l.seq;
            at = l.end;
        }
        return 0;
    }
    auto f = gz_open(s.fd, ec);
    std::uint64_t seq = 0;
    if (f) gz_lines(f.get(), [&](std::string_view line, std::size_t) { return (seq = line_seq(line)) == 0; });
    return seq;
}

log_batch read_segment(const segment& s, const log_query& q, std::error_code& ec) {
    ec.clear();
    if (!s.fd) return {};
    return s.gz ? read_gz(s.fd, q, ec) : read_log_fd(s.fd, q, ec);
}

}  // namespace

log_batch read_log_rotated(const std::filesystem::path& path, const log_query& q, std::error_code& ec) {
    ec.clear();
    auto segs = segments_of(path);
    // Start in the newest segment that begins at or before the cursor's
    // next event: the ones before it hold only what was read already.
    std::size_t start = 0;
    for (std::size_t i = 0; i + 1 < segs.size(); ++i) {
        auto f = first_seq(segs[i]);
        if (f == 0) continue;
        if (f > q.after + 1) break;
        start = i;
    }
    log_query next = q;
    std::uint64_t seen = 0;
    for (std::size_t i = start; i < segs.size(); ++i) {
        auto b = read_segment(segs[i], next, ec);
        b.last_seq = std::max(b.last_seq, seen);
        // A segment that gave something (or stopped early) answers this
        // read; the next one goes on from its last_seq, and `more` says
        // that newer segments follow.
        if (ec || !b.lines.empty() || b.more || i + 1 == segs.size()) {
            b.more = b.more || i + 1 < segs.size();
            return b;
        }
        seen = b.last_seq;
        next.after = std::max(next.after, b.last_seq);
    }
    return {};
}

std::uint64_t last_seq_in_logs(const std::filesystem::path& path, std::error_code& ec) {
    auto segs = segments_of(path);
    for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
        if (!it->fd) continue;
        std::uint64_t last = 0;
        if (!it->gz) {
            last = last_seq_in_fd(it->fd, ec);
        } else if (auto f = gz_open(it->fd, ec)) {
            gz_lines(f.get(), [&](std::string_view line, std::size_t) {
                if (auto s = line_seq(line)) last = s;
                return true;
            });
        }
        if (ec || last) return last;
    }
    return 0;
}

std::uint64_t last_seq_in_log(const std::filesystem::path& path, std::error_code& ec) {
    ec.clear();
    base::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno != ENOENT) ec.assign(errno, std::generic_category());
        return 0;
    }
    return last_seq_in_fd(fd, ec);
}

namespace {
std::uint64_t last_seq_in_fd(const base::unique_fd& fd, std::error_code& ec) {
    ec.clear();
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        ec.assign(errno, std::generic_category());
        return 0;
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    // Read backwards in growing windows until a whole numbered line is found.
    for (std::uint64_t window = 65536;; window *= 4) {
        std::uint64_t from = size > window ? size - window : 0;
        auto buf = read_at(fd.get(), from, static_cast<std::size_t>(size - from), ec);
        if (ec) return 0;
        std::uint64_t best = 0;
        std::size_t begin = 0;
        if (from > 0) {  // the first partial line is not whole
            auto nl = buf.find('\n');
            begin = nl == std::string::npos ? buf.size() : nl + 1;
        }
        for (std::size_t nl; (nl = buf.find('\n', begin)) != std::string::npos; begin = nl + 1)
            best = std::max(best, line_seq(std::string_view(buf).substr(begin, nl - begin)));
        if (best || from == 0) return best;
    }
}

}  // namespace

}  // namespace ricochet::events
