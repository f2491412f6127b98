// fault_inject — an LD_PRELOAD shim that makes one chosen file-system call
// fail, for tests/integration/test_faults.py.
//
// The calls that change what is on disk are counted, in order, across all
// threads: write, pwrite(64), writev, copy_file_range, fsync, fdatasync,
// syncfs, ftruncate(64), rename, renameat, renameat2, unlink, unlinkat.
// Only calls on a file or directory under RICOCHET_FAULT_DIR count (the
// path is read from /proc/self/fd for descriptors), and only once the file
// RICOCHET_FAULT_ARM exists, so the daemon's start-up is not counted unless
// the test wants it. The RICOCHET_FAULT_NTH-th counted call fails with
// RICOCHET_FAULT_ERRNO (a number; EIO when unset) without doing anything;
// with RICOCHET_FAULT_STICKY=1 every later one fails too (a disk that
// died). Every counted call is appended to RICOCHET_FAULT_TRACE as
// "n<TAB>call<TAB>path<TAB>result", so a test can tell what each failure
// point was and how many there are (NTH=0 only counts).
//
// RICOCHET_FAULT_MATCH="CALL PART" aims the fault at a kind of call rather
// than at a place in the count: the NTH counted call named CALL whose path
// contains PART fails (the trace still numbers every counted call). A
// test that means "the first writev of a queue file in incoming/" then
// hits it whatever a background thread (the spool's checkpointer, every
// 200 ms) did meanwhile. PART is looked for in the call's first path (a
// rename's source). With RICOCHET_FAULT_STICKY=1, every later matching
// call fails too. A value without a space (or with nothing on either side
// of it) stops the process at start with a message.
//
// RICOCHET_FAULT_CRASH=1 turns the N-th call into a power loss instead, in
// LazyFS's model: file data not covered by an fsync, fdatasync or syncfs is
// lost, while names (create, rename, unlink) are kept as they are. From the
// process's start, before the first change to a file's data after its last
// sync, the shim keeps a copy of the file as it was; at the N-th call it
// stops every thread that changes a file (they wait on its lock), writes
// each such file back to its copy, and SIGKILLs the process. SQLite's
// shared-memory index (*-shm, rebuilt at open) is not followed, nor are
// truncations by open(O_TRUNC), truncate() or fallocate() (the daemon
// uses O_TRUNC only on fresh temporary files it syncs before renaming).
// With RICOCHET_FAULT_TORN=K as well, files in a directory named active/
// are torn instead of rolled back whole: their first K octets as written
// reached the disk and their size is the new one, but past K they hold
// the old content (zeros where there was none), as when writeback had
// written some of a file's pages and not others.
//
// RICOCHET_FAULT_STALL=S with RICOCHET_FAULT_GATE=G is a slow disk
// instead: an fsync or fdatasync of a path under RICOCHET_FAULT_DIR that
// contains S waits while the file G exists, then goes on (and succeeds); so
// does an openat of such a path containing RICOCHET_FAULT_STALL_OPEN (a
// read from a cold disk). It creates G.stalled when it starts waiting, so
// a test knows the daemon is inside that call. Neither counted nor failed.
// (Listing a matching directory opens "DIR/." and waits too: a test that
// holds the gate does not list the queue meanwhile.)
//
// The real functions are looked up once each (a function-local static,
// which is thread-safe); a change to a followed file holds the shim's lock
// for its whole call, so a crash never races one.
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <map>
#include <string>
#include <utility>

namespace {

char g_dir[4096];
std::size_t g_dir_len = 0;
char g_arm[4096];
long g_nth = 0;
char g_match_call[64];
char g_match_part[4096];
std::atomic<long> g_matched{0};
int g_errno = EIO;
bool g_sticky = false;
int g_trace = -1;
std::atomic<bool> g_armed{false};
std::atomic<long> g_count{0};
bool g_crash = false;
long g_torn = 0;
char g_stall[256];
char g_stall_open[256];
char g_gate[4096];
pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
// (device, inode) -> the file's content at its last sync, for files changed since.
std::map<std::pair<dev_t, ino_t>, std::string>* g_copies = nullptr;

__attribute__((constructor)) void init() {
    if (const char* d = getenv("RICOCHET_FAULT_DIR")) {
        // The directory as the kernel names it (readlink of /proc/self/fd
        // gives canonical paths).
        if (!realpath(d, g_dir)) snprintf(g_dir, sizeof g_dir, "%s", d);
        g_dir_len = strlen(g_dir);
    }
    if (const char* a = getenv("RICOCHET_FAULT_ARM")) snprintf(g_arm, sizeof g_arm, "%s", a);
    else g_armed = true;
    if (const char* n = getenv("RICOCHET_FAULT_NTH")) g_nth = atol(n);
    if (const char* e = getenv("RICOCHET_FAULT_ERRNO")) g_errno = atoi(e);
    if (const char* m = getenv("RICOCHET_FAULT_MATCH")) {
        const char* sp = strchr(m, ' ');
        if (!sp || sp == m || !sp[1] || static_cast<std::size_t>(sp - m) >= sizeof g_match_call) {
            // A test that aims at nothing must not pass as one that hit nothing.
            fprintf(stderr, "fault_inject: RICOCHET_FAULT_MATCH=\"%s\" is not \"CALL PART\"\n", m);
            abort();
        }
        memcpy(g_match_call, m, static_cast<std::size_t>(sp - m));
        snprintf(g_match_part, sizeof g_match_part, "%s", sp + 1);
    }
    if (const char* s = getenv("RICOCHET_FAULT_STICKY")) g_sticky = atoi(s) == 1;
    if (const char* c = getenv("RICOCHET_FAULT_CRASH")) g_crash = atoi(c) == 1;
    if (const char* t = getenv("RICOCHET_FAULT_TORN")) g_torn = atol(t);
    if (const char* st = getenv("RICOCHET_FAULT_STALL")) snprintf(g_stall, sizeof g_stall, "%s", st);
    if (const char* so = getenv("RICOCHET_FAULT_STALL_OPEN")) snprintf(g_stall_open, sizeof g_stall_open, "%s", so);
    if (const char* g = getenv("RICOCHET_FAULT_GATE")) snprintf(g_gate, sizeof g_gate, "%s", g);
    if (g_crash) g_copies = new std::map<std::pair<dev_t, ino_t>, std::string>();
    if (const char* t = getenv("RICOCHET_FAULT_TRACE"))
        g_trace = static_cast<int>(syscall(SYS_openat, AT_FDCWD, t, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
}

bool under_dir(const char* path) {
    return g_dir_len > 0 && strncmp(path, g_dir, g_dir_len) == 0 && (path[g_dir_len] == '/' || path[g_dir_len] == 0);
}

// The slow disk: waits while the gate file exists (see the top).
void stall_if_gated(const char* path, const char* part = g_stall) {
    if (!part[0] || !g_gate[0] || !under_dir(path) || !strstr(path, part)) return;
    if (access(g_gate, F_OK) != 0) return;
    char marker[4200];
    snprintf(marker, sizeof marker, "%s.stalled", g_gate);
    int m = static_cast<int>(syscall(SYS_openat, AT_FDCWD, marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    if (m >= 0) close(m);
    timespec tick{0, 5000000};
    while (access(g_gate, F_OK) == 0) nanosleep(&tick, nullptr);
}

void fd_path(int fd, char* out, std::size_t n) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, out, n - 1);
    out[len < 0 ? 0 : len] = 0;
}

void at_path(int dirfd, const char* path, char* out, std::size_t n) {
    if (path[0] == '/') {
        snprintf(out, n, "%s", path);
        return;
    }
    char base[4096];
    if (dirfd == AT_FDCWD) {
        if (!getcwd(base, sizeof base)) base[0] = 0;
    } else {
        fd_path(dirfd, base, sizeof base);
    }
    snprintf(out, n, "%s/%s", base, path);
}

void trace(long n, const char* call, const char* path, const char* path2, const char* result) {
    if (g_trace < 0) return;
    char line[9000];
    int len = snprintf(line, sizeof line, "%ld\t%s\t%s%s%s\t%s\n", n, call, path, path2 ? " -> " : "",
                       path2 ? path2 : "", result);
    if (len > 0) syscall(SYS_write, g_trace, line, static_cast<std::size_t>(len) < sizeof line ? len : sizeof line - 1);
}

bool followed(const char* path) {
    std::size_t n = strlen(path);
    return under_dir(path) && !(n > 4 && strcmp(path + n - 4, "-shm") == 0);
}

// The copy of fd's file as it was, before its first change since a sync.
void keep_copy(int fd) {
    struct stat st{};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
    auto key = std::make_pair(st.st_dev, st.st_ino);
    if (g_copies->count(key)) return;
    // Read through a descriptor of its own: fd may be write-only.
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int rfd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, link, O_RDONLY | O_CLOEXEC));
    std::string content(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (rfd >= 0 && got < content.size()) {
        ssize_t r = pread(rfd, content.data() + got, content.size() - got, static_cast<off_t>(got));
        if (r <= 0) break;
        got += static_cast<std::size_t>(r);
    }
    if (rfd >= 0) close(rfd);
    if (got != content.size()) return;  // unreadable: not rolled back (the trace's count still holds)
    (*g_copies)[key] = std::move(content);
}

void synced(int fd) {
    struct stat st{};
    if (fstat(fd, &st) == 0) g_copies->erase(std::make_pair(st.st_dev, st.st_ino));
}

// Writes every changed file under dir back to its copy.
void restore_under(const char* dir) {
    DIR* d = opendir(dir);
    if (!d) return;
    while (auto* e = readdir(d)) {
        if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0))) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st{};
        if (lstat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            restore_under(p);
            continue;
        }
        auto it = g_copies->find(std::make_pair(st.st_dev, st.st_ino));
        if (!S_ISREG(st.st_mode) || it == g_copies->end()) continue;
        int fd = static_cast<int>(syscall(SYS_openat, AT_FDCWD, p, O_WRONLY | O_CLOEXEC));
        if (fd < 0) continue;
        if (g_torn > 0 && strstr(p, "/active/")) {
            // Torn: the new first g_torn octets and size, the old rest.
            std::size_t k = static_cast<std::size_t>(g_torn), size = static_cast<std::size_t>(st.st_size);
            if (size > k) {
                std::string rest(size - k, '\0');
                if (it->second.size() > k) it->second.copy(rest.data(), std::min(rest.size(), it->second.size() - k), k);
                syscall(SYS_pwrite64, fd, rest.data(), rest.size(), static_cast<off_t>(k));
            }
            close(fd);
            continue;
        }
        syscall(SYS_ftruncate, fd, static_cast<off_t>(it->second.size()));
        syscall(SYS_pwrite64, fd, it->second.data(), it->second.size(), 0);
        close(fd);
    }
    closedir(d);
}

[[noreturn]] void power_loss(long n, const char* call, const char* path, const char* path2) {
    restore_under(g_dir);
    char what[64];
    snprintf(what, sizeof what, "power loss (%zu file(s) rolled back)", g_copies->size());
    trace(n, call, path, path2, what);
    kill(getpid(), SIGKILL);
    for (;;) pause();
}

// One intercepted call on a file or directory: counted, maybe failed (or,
// in crash mode, the power lost before it); in crash mode a change to a
// followed file holds the lock until the call is done.
struct call_ctx {
    bool fail = false;
    bool locked = false;
    int fd = -1;
    call_ctx(const char* call, const char* path, const char* path2, int data_fd, bool is_sync) {
        bool here = under_dir(path) || (path2 && under_dir(path2));
        if (!here) return;
        if (g_crash) {
            pthread_mutex_lock(&g_mu);  // held for ever once the power is lost
            locked = true;
        }
        bool counted = g_armed.load(std::memory_order_acquire) || access(g_arm, F_OK) == 0;
        if (counted) {
            g_armed.store(true, std::memory_order_release);
            long n = g_count.fetch_add(1) + 1;
            long k = n;  // which call this is, of those the fault is aimed at
            if (g_match_call[0])
                k = strcmp(call, g_match_call) == 0 && strstr(path, g_match_part) ? g_matched.fetch_add(1) + 1 : 0;
            bool hit = g_nth > 0 && k > 0 && (k == g_nth || (g_sticky && k > g_nth));
            if (hit && g_crash) power_loss(n, call, path, path2);
            trace(n, call, path, path2, hit ? strerror(g_errno) : "ok");
            if (hit) {
                fail = true;
                errno = g_errno;
                return;
            }
        }
        if (g_crash && data_fd >= 0 && followed(path)) {
            if (is_sync) fd = data_fd;  // forgotten once the sync succeeded
            else keep_copy(data_fd);
        }
    }
    // A name about to go (unlink, or a rename over it): when it is the
    // file's last, the copy goes with the file (its inode may be reused).
    bool has_victim = false;
    std::pair<dev_t, ino_t> victim{};
    void last_name(const char* path) {
        struct stat st{};
        if (locked && path && lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1) {
            has_victim = true;
            victim = {st.st_dev, st.st_ino};
        }
    }
    template <typename R>
    R done(R r) {
        if (fd >= 0 && r == 0) synced(fd);
        if (has_victim && r == 0) g_copies->erase(victim);
        return r;
    }
    ~call_ctx() {
        if (locked) pthread_mutex_unlock(&g_mu);
    }
};

struct fd_call : call_ctx {
    static const char* path_of(int fd, char* p) {
        if (g_dir_len == 0) {
            p[0] = 0;
            return p;
        }
        fd_path(fd, p, 4096);
        return p;
    }
    char p[4096];
    fd_call(const char* call, int fd, bool is_sync = false) : call_ctx(call, path_of(fd, p), nullptr, fd, is_sync) {}
};

struct at_call : call_ctx {
    static const char* at(int dirfd, const char* path, char* out) {
        if (g_dir_len == 0 || !path) {
            out[0] = 0;
            return path ? out : nullptr;
        }
        at_path(dirfd, path, out, 4096);
        return out;
    }
    char p[4096], q[4096];
    at_call(const char* call, int dirfd, const char* path, int dirfd2 = AT_FDCWD, const char* path2 = nullptr)
        : call_ctx(call, at(dirfd, path, p), at(dirfd2, path2, q), -1, false) {
        if (!fail && g_crash) last_name(path2 ? q : p);  // a rename's target, or the unlinked name
    }
};

template <typename F>
F real(const char* name) {
    return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" {

ssize_t write(int fd, const void* buf, size_t n) {
    static auto f = real<ssize_t (*)(int, const void*, size_t)>("write");
    fd_call c("write", fd);
    return c.fail ? -1 : f(fd, buf, n);
}
ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
    static auto f = real<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
    fd_call c("pwrite", fd);
    return c.fail ? -1 : f(fd, buf, n, off);
}
ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) {
    static auto f = real<ssize_t (*)(int, const void*, size_t, off64_t)>("pwrite64");
    fd_call c("pwrite", fd);
    return c.fail ? -1 : f(fd, buf, n, off);
}
ssize_t writev(int fd, const struct iovec* iov, int cnt) {
    static auto f = real<ssize_t (*)(int, const struct iovec*, int)>("writev");
    fd_call c("writev", fd);
    return c.fail ? -1 : f(fd, iov, cnt);
}
ssize_t copy_file_range(int in, off64_t* in_off, int out, off64_t* out_off, size_t n, unsigned flags) {
    static auto f = real<ssize_t (*)(int, off64_t*, int, off64_t*, size_t, unsigned)>("copy_file_range");
    fd_call c("copy_file_range", out);
    return c.fail ? -1 : f(in, in_off, out, out_off, n, flags);
}
int openat(int dirfd, const char* path, int flags, ...) {
    static auto f = real<int (*)(int, const char*, int, ...)>("openat");
    mode_t mode = 0;
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {  // (glibc's own test: O_TMPFILE holds O_DIRECTORY)
        va_list ap;
        va_start(ap, flags);
        mode = static_cast<mode_t>(va_arg(ap, int));
        va_end(ap);
    }
    if (g_stall_open[0] && g_dir_len > 0) {  // (path: non-null, as glibc declares it)
        char p[4096];
        at_path(dirfd, path, p, sizeof p);
        stall_if_gated(p, g_stall_open);
    }
    return f(dirfd, path, flags, mode);
}
int fsync(int fd) {
    static auto f = real<int (*)(int)>("fsync");
    fd_call c("fsync", fd, true);
    if (!c.fail) stall_if_gated(c.p);
    return c.fail ? -1 : c.done(f(fd));
}
int fdatasync(int fd) {
    static auto f = real<int (*)(int)>("fdatasync");
    fd_call c("fdatasync", fd, true);
    if (!c.fail) stall_if_gated(c.p);
    return c.fail ? -1 : c.done(f(fd));
}
int syncfs(int fd) {
    static auto f = real<int (*)(int)>("syncfs");
    fd_call c("syncfs", fd);
    if (c.fail) return -1;
    int r = f(fd);
    struct stat fs_of{};
    if (r == 0 && g_crash && c.locked && fstat(fd, &fs_of) == 0)  // everything on that file system is on disk
        for (auto it = g_copies->begin(); it != g_copies->end();)
            it = it->first.first == fs_of.st_dev ? g_copies->erase(it) : std::next(it);
    return r;
}
int ftruncate(int fd, off_t len) {
    static auto f = real<int (*)(int, off_t)>("ftruncate");
    fd_call c("ftruncate", fd);
    return c.fail ? -1 : f(fd, len);
}
int ftruncate64(int fd, off64_t len) {
    static auto f = real<int (*)(int, off64_t)>("ftruncate64");
    fd_call c("ftruncate", fd);
    return c.fail ? -1 : f(fd, len);
}
int rename(const char* a, const char* b) {
    static auto f = real<int (*)(const char*, const char*)>("rename");
    at_call c("rename", AT_FDCWD, a, AT_FDCWD, b);
    return c.fail ? -1 : c.done(f(a, b));
}
int renameat(int da, const char* a, int db, const char* b) {
    static auto f = real<int (*)(int, const char*, int, const char*)>("renameat");
    at_call c("renameat", da, a, db, b);
    return c.fail ? -1 : c.done(f(da, a, db, b));
}
int renameat2(int da, const char* a, int db, const char* b, unsigned flags) {
    static auto f = real<int (*)(int, const char*, int, const char*, unsigned)>("renameat2");
    at_call c("renameat2", da, a, db, b);
    return c.fail ? -1 : c.done(f(da, a, db, b, flags));
}
int unlink(const char* p) {
    static auto f = real<int (*)(const char*)>("unlink");
    at_call c("unlink", AT_FDCWD, p);
    return c.fail ? -1 : c.done(f(p));
}
int unlinkat(int d, const char* p, int flags) {
    static auto f = real<int (*)(int, const char*, int)>("unlinkat");
    at_call c("unlinkat", d, p);
    return c.fail ? -1 : c.done(f(d, p, flags));
}

}  // extern "C"
