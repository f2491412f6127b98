// Fuzz target: DKIM's text half on any message: header splitting, both
// canonicalizations of header fields and body, the h= selection and the
// From domain. Nothing may crash, and the canonical forms keep their
// promises: CRLF line ends only, no trailing empty lines, relaxed bodies
// without whitespace runs or WSP at a line's end.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "dkim/canon.hpp"

using namespace ricochet;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string content(reinterpret_cast<const char*>(data), size);
    auto parts = dkim::split_message(content);
    for (auto c : {dkim::canon::simple, dkim::canon::relaxed}) {
        auto b = dkim::canon_body(parts.body, c);
        if (c == dkim::canon::simple && b.empty()) std::abort();
        if (!b.empty() && (b.size() < 2 || b.compare(b.size() - 2, 2, "\r\n") != 0)) std::abort();
        if (b.size() >= 4 && b.compare(b.size() - 4, 4, "\r\n\r\n") == 0 && b != "\r\n") std::abort();
        if (c == dkim::canon::relaxed) {
            if (b.find("  ") != std::string::npos || b.find('\t') != std::string::npos ||
                b.find(" \r\n") != std::string::npos)
                std::abort();
        }
        for (auto& f : parts.headers) {
            auto h = dkim::canon_header(f.raw, c);
            if (h.size() < 2 || h.compare(h.size() - 2, 2, "\r\n") != 0) std::abort();
            if (c == dkim::canon::relaxed && h.substr(0, h.size() - 2).find_first_of("\r\n") != std::string::npos)
                std::abort();
        }
    }
    auto h = dkim::signed_names({"From", "To", "Subject", "Received"}, parts.headers);
    if (dkim::select_fields(h, parts.headers).size() != h.size()) std::abort();
    (void)dkim::from_domain(parts.headers);
    return 0;
}
