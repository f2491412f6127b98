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
// C library and system calls only, no allocation, so it is safe in any
// thread; the real functions are looked up once each (a function-local
// static, which is thread-safe).
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
#include <unistd.h>

#include <atomic>

namespace {

char g_dir[4096];
std::size_t g_dir_len = 0;
char g_arm[4096];
long g_nth = 0;
int g_errno = EIO;
bool g_sticky = false;
int g_trace = -1;
std::atomic<bool> g_armed{false};
std::atomic<long> g_count{0};

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
    if (const char* s = getenv("RICOCHET_FAULT_STICKY")) g_sticky = atoi(s) == 1;
    if (const char* t = getenv("RICOCHET_FAULT_TRACE"))
        g_trace = static_cast<int>(syscall(SYS_openat, AT_FDCWD, t, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
}

bool under_dir(const char* path) {
    return g_dir_len > 0 && strncmp(path, g_dir, g_dir_len) == 0 && (path[g_dir_len] == '/' || path[g_dir_len] == 0);
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

// Decides one call: true when it is to fail (errno is set then).
bool fail(const char* call, const char* path, const char* path2 = nullptr) {
    if (!under_dir(path) && !(path2 && under_dir(path2))) return false;
    if (!g_armed.load(std::memory_order_acquire)) {
        if (access(g_arm, F_OK) != 0) return false;
        g_armed.store(true, std::memory_order_release);
    }
    long n = g_count.fetch_add(1) + 1;
    bool failing = g_nth > 0 && (n == g_nth || (g_sticky && n > g_nth));
    if (g_trace >= 0) {
        char line[9000];
        int len = snprintf(line, sizeof line, "%ld\t%s\t%s%s%s\t%s\n", n, call, path, path2 ? " -> " : "",
                           path2 ? path2 : "", failing ? strerror(g_errno) : "ok");
        if (len > 0) syscall(SYS_write, g_trace, line, static_cast<std::size_t>(len) < sizeof line ? len : sizeof line - 1);
    }
    if (failing) errno = g_errno;
    return failing;
}

bool fail_fd(const char* call, int fd) {
    if (g_dir_len == 0) return false;
    char p[4096];
    fd_path(fd, p, sizeof p);
    return fail(call, p);
}

bool fail_at(const char* call, int dirfd, const char* path, int dirfd2 = AT_FDCWD, const char* path2 = nullptr) {
    if (g_dir_len == 0) return false;
    char p[4096], q[4096];
    at_path(dirfd, path, p, sizeof p);
    if (path2) at_path(dirfd2, path2, q, sizeof q);
    return fail(call, p, path2 ? q : nullptr);
}

template <typename F>
F real(const char* name) {
    return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" {

ssize_t write(int fd, const void* buf, size_t n) {
    static auto f = real<ssize_t (*)(int, const void*, size_t)>("write");
    return fail_fd("write", fd) ? -1 : f(fd, buf, n);
}
ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
    static auto f = real<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
    return fail_fd("pwrite", fd) ? -1 : f(fd, buf, n, off);
}
ssize_t pwrite64(int fd, const void* buf, size_t n, off64_t off) {
    static auto f = real<ssize_t (*)(int, const void*, size_t, off64_t)>("pwrite64");
    return fail_fd("pwrite", fd) ? -1 : f(fd, buf, n, off);
}
ssize_t writev(int fd, const struct iovec* iov, int cnt) {
    static auto f = real<ssize_t (*)(int, const struct iovec*, int)>("writev");
    return fail_fd("writev", fd) ? -1 : f(fd, iov, cnt);
}
ssize_t copy_file_range(int in, off64_t* in_off, int out, off64_t* out_off, size_t n, unsigned flags) {
    static auto f = real<ssize_t (*)(int, off64_t*, int, off64_t*, size_t, unsigned)>("copy_file_range");
    return fail_fd("copy_file_range", out) ? -1 : f(in, in_off, out, out_off, n, flags);
}
int fsync(int fd) {
    static auto f = real<int (*)(int)>("fsync");
    return fail_fd("fsync", fd) ? -1 : f(fd);
}
int fdatasync(int fd) {
    static auto f = real<int (*)(int)>("fdatasync");
    return fail_fd("fdatasync", fd) ? -1 : f(fd);
}
int syncfs(int fd) {
    static auto f = real<int (*)(int)>("syncfs");
    return fail_fd("syncfs", fd) ? -1 : f(fd);
}
int ftruncate(int fd, off_t len) {
    static auto f = real<int (*)(int, off_t)>("ftruncate");
    return fail_fd("ftruncate", fd) ? -1 : f(fd, len);
}
int ftruncate64(int fd, off64_t len) {
    static auto f = real<int (*)(int, off64_t)>("ftruncate64");
    return fail_fd("ftruncate", fd) ? -1 : f(fd, len);
}
int rename(const char* a, const char* b) {
    static auto f = real<int (*)(const char*, const char*)>("rename");
    return fail_at("rename", AT_FDCWD, a, AT_FDCWD, b) ? -1 : f(a, b);
}
int renameat(int da, const char* a, int db, const char* b) {
    static auto f = real<int (*)(int, const char*, int, const char*)>("renameat");
    return fail_at("renameat", da, a, db, b) ? -1 : f(da, a, db, b);
}
int renameat2(int da, const char* a, int db, const char* b, unsigned flags) {
    static auto f = real<int (*)(int, const char*, int, const char*, unsigned)>("renameat2");
    return fail_at("renameat2", da, a, db, b) ? -1 : f(da, a, db, b, flags);
}
int unlink(const char* p) {
    static auto f = real<int (*)(const char*)>("unlink");
    return fail_at("unlink", AT_FDCWD, p) ? -1 : f(p);
}
int unlinkat(int d, const char* p, int flags) {
    static auto f = real<int (*)(int, const char*, int)>("unlinkat");
    return fail_at("unlinkat", d, p) ? -1 : f(d, p, flags);
}

}  // extern "C"
