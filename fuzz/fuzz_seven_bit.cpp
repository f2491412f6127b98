// Fuzz target: any message handed to the RFC 6152 downgrade
// (mime/seven_bit.hpp), which GMime parses and rewrites. Nothing may crash;
// a conversion that succeeds gives 7-bit text; a
// refusal always says why; CRLF-only input gives CRLF-only output.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "mime/seven_bit.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string in(reinterpret_cast<const char*>(data), size);
    std::string error;
    auto out = ricochet::mime::to_seven_bit(in, error);
    if (!out) {
        if (error.empty()) std::abort();
        return 0;
    }
    if (ricochet::mime::has_eight_bit(*out)) std::abort();
    // What the spool holds has CRLF line ends only (submission and injection
    // make it so); from such input, so must the output be.
    auto bare = [](const std::string& s) {
        for (std::size_t i = 0; i < s.size(); ++i)
            if ((s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) || (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n')))
                return true;
        return false;
    };
    if (!bare(in) && bare(*out)) std::abort();
    return 0;
}
