// fuzz_journal — the spool's write-ahead journal (queue/commit_journal) as
// the next start reads it: whatever a disk, a crash or a hand can leave in
// spool_dir/journal. No crash, no hang, and what was read back is what a
// record held: ids of 13 octets, nothing read past a record.
//
// Input: the first octet chooses the shape.
//  - even: the file is the rest of the input, as it is.
//  - odd: a real journal (64 KiB) is made and records appended from the
//    input (a length octet then the body, a record each, up to 8); then
//    (offset u16, xor octet) triples change the file anywhere, headers
//    included; when bit 1 of the first octet is set, the CRCs of the
//    header slots and of the records are sealed again over what was
//    changed, so the parser's checks after the CRC are reached.
// Checked: unchanged records read back exactly as appended; after any
// read-back appends are refused until a new lap, and after it the next
// open reads the new lap's record and nothing of the old (a start that
// reads back and commits must never lose the commit, nor bring back a
// record it did not read).
//
// Each lap's nonce is random (getrandom), so a run is not octet for octet
// repeatable; nothing checked here depends on its value.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "queue/commit_journal.hpp"

using ricochet::queue::commit_journal;

namespace {
constexpr std::uint64_t size = 64 * 1024;
constexpr std::size_t record_head = 32;
int dir_fd = -1;

int workdir() {
    if (dir_fd >= 0) return dir_fd;
    // tmpfs where there is one: every append and open syncs.
    char shm[] = "/dev/shm/ricochet-fuzz-journal.XXXXXX";
    char tmp[] = "/tmp/ricochet-fuzz-journal.XXXXXX";
    const char* d = ::mkdtemp(shm);
    if (!d) d = ::mkdtemp(tmp);
    if (!d) std::abort();
    dir_fd = ::open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return dir_fd;
}

std::string id_of(std::size_t i) {
    auto s = std::to_string(i);
    return std::string(13 - s.size(), '0') + s;
}

using read_back = std::vector<std::pair<std::string, std::string>>;

bool replay(commit_journal& j, read_back& out) {
    std::error_code ec;
    j.replay([&](std::string_view id, std::string_view file) {
        if (id.size() != 13) __builtin_trap();
        out.emplace_back(id, file);
    }, ec);
    return !ec;
}

std::string read_file(int fd) {
    std::string b(size, '\0');
    if (::pread(fd, b.data(), b.size(), 0) != static_cast<ssize_t>(b.size())) std::abort();
    return b;
}

void seal(std::string& f, std::size_t at, std::size_t len) {
    if (at + 8 > f.size() || len > f.size() - at - 8) return;
    auto c = static_cast<std::uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(f.data() + at + 8), len));
    std::memcpy(f.data() + at + 4, &c, 4);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t n) {
    if (n == 0) return 0;
    int dir = workdir();
    ::unlinkat(dir, "journal", 0);
    std::uint8_t mode = data[0];
    std::string_view in(reinterpret_cast<const char*>(data) + 1, n - 1);
    read_back appended;
    bool changed = false;
    if (mode % 2 == 0) {
        int fd = ::openat(dir, "journal", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || ::write(fd, in.data(), in.size()) != static_cast<ssize_t>(in.size())) std::abort();
        ::close(fd);
        changed = true;
    } else {
        std::error_code ec;
        auto j = commit_journal::open(dir, "journal", true, size, ec);
        if (!j) std::abort();
        std::vector<std::uint64_t> offsets;
        std::size_t p = 0;
        for (std::size_t r = 0; r < 8 && p < in.size(); ++r) {
            std::size_t len = std::min<std::size_t>(static_cast<std::uint8_t>(in[p]), in.size() - p - 1);
            std::string id = id_of(r), body(in.substr(p + 1, len));
            p += 1 + len;
            auto at = j->mark().off;
            if (j->append({{id, {"", body, ""}}})) break;
            offsets.push_back(at);
            appended.emplace_back(id, body);
        }
        j.reset();
        // What is left changes the file.
        int fd = ::openat(dir, "journal", O_RDWR | O_CLOEXEC);
        auto f = read_file(fd);
        for (; p + 3 <= in.size(); p += 3) {
            std::size_t off = static_cast<std::uint8_t>(in[p]) | static_cast<std::size_t>(static_cast<std::uint8_t>(in[p + 1])) << 8;
            auto x = static_cast<char>(in[p + 2]);
            if (x == 0) continue;
            f[off] = static_cast<char>(f[off] ^ x);
            changed = true;
        }
        if (mode & 2) {
            seal(f, 0, 40);
            seal(f, 4096, 40);
            for (auto off : offsets) {
                std::uint32_t len;
                std::memcpy(&len, f.data() + off + 24, 4);
                seal(f, off, record_head - 8 + len);
            }
        }
        if (::pwrite(fd, f.data(), f.size(), 0) != static_cast<ssize_t>(f.size())) std::abort();
        ::close(fd);
    }

    std::error_code ec;
    auto j = commit_journal::open(dir, "journal", false, size, ec);
    if (!j) {
        if (!changed) __builtin_trap();  // a journal as made and appended to is always opened
        return 0;
    }
    read_back first;
    if (!replay(*j, first)) return 0;
    if (!changed && first != appended) __builtin_trap();  // the round trip
    if (first.size() > 64 * 1024) __builtin_trap();
    // As the spool goes on after a read-back: appends wait for a new lap,
    // and after it the next start reads the new record alone.
    std::string id = "9999999999999";
    if (j->append({{id, {"after", "", ""}}}) != std::errc::operation_not_permitted) __builtin_trap();
    if (j->restart()) return 0;
    if (auto e = j->append({{id, {"after", "", ""}}})) {
        if (e == std::errc::no_buffer_space) return 0;  // a file as short as 8 KiB and a little
        __builtin_trap();
    }
    j.reset();
    auto again = commit_journal::open(dir, "journal", false, size, ec);
    if (!again) __builtin_trap();
    read_back second;
    if (!replay(*again, second)) __builtin_trap();
    if (second != read_back{{id, "after"}}) __builtin_trap();
    return 0;
}
