// Fuzz target: the bounce rules file (etc/bounce-rules.toml's format), as an
// operator may edit it, then a few replies through what it loaded. Loading
// must either succeed or give "FILE:LINE: what"; classifying never fails.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "bounce/classifier.hpp"

using namespace ricochet::bounce;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    // The loader reads a file: an anonymous one in memory.
    static int fd = ::memfd_create("rules.toml", MFD_CLOEXEC);
    if (fd < 0 || ::ftruncate(fd, 0) != 0 || ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) return 0;
    classifier c;
    std::string error;
    if (!c.load("/proc/self/fd/" + std::to_string(fd), error)) {
        if (error.empty()) __builtin_trap();  // a refusal always says why
        return 0;
    }
    for (const char* r : {"550 5.1.1 <a@example.com>: Recipient address rejected: User unknown",
                          "421 4.7.0 Try again later, closing connection.", "452 4.2.2 Mailbox full",
                          "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org"})
        (void)c.classify(parse_reply_text(r), "example.com");
    return 0;
}
