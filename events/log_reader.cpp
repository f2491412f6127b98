// log_reader — see log_reader.hpp.
#include "events/log_reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

log_batch read_log(const std::filesystem::path& path, const log_query& q, std::error_code& ec) {
    log_batch out;
    ec.clear();
    base::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno != ENOENT) ec.assign(errno, std::generic_category());
        return out;  // no log yet: nothing happened
    }
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

log_batch read_log_rotated(const std::filesystem::path& path, const log_query& q, std::error_code& ec) {
    auto older = path;
    older += ".1";
    std::error_code oec;
    if (last_seq_in_log(older, oec) > q.after && !oec) {
        auto b = read_log(older, q, ec);
        if (ec || !b.lines.empty() || b.more) return b;
        // Nothing kept there (all filtered out): go on in the current file from where it ended.
        log_query next = q;
        next.after = std::max(q.after, b.last_seq);
        auto c = read_log(path, next, ec);
        c.last_seq = std::max(c.last_seq, b.last_seq);
        return c;
    }
    return read_log(path, q, ec);
}

std::uint64_t last_seq_in_log(const std::filesystem::path& path, std::error_code& ec) {
    ec.clear();
    base::unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        if (errno != ENOENT) ec.assign(errno, std::generic_category());
        return 0;
    }
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

}  // namespace ricochet::events
