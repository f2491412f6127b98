// Fuzz target: the SMTP client's reply side — a receiver's reply lines, and
// the classifier reading the resulting reply (with an inline rule set).
#include <cstdint>
#include <string>
#include <string_view>

#include "bounce/classifier.hpp"
#include "bounce/smtp_reply.hpp"

using namespace ricochet::bounce;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static classifier c = [] {
        classifier k;
        k.add({"unknown", {550}, {"5.1.1"}, {}, {}, {"user unknown", "no such"}, category::user_unknown});
        k.add({"rate", {}, {}, {}, {}, {"rate limit", "tss04", "too many"}, category::rate_limited});
        k.set_final_soft({"over quota|mailbox full"});
        return k;
    }();
    std::string_view in(reinterpret_cast<const char*>(data), size);
    reply_parser p;
    std::size_t pos = 0;
    while (pos <= in.size()) {
        auto eol = in.find('\n', pos);
        auto line = in.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        bool done = p.feed(line);
        if (done || p.malformed()) {
            auto r = p.take(stage::rcpt);
            (void)c.classify(r, "example.org");
            (void)r.text();
        }
        if (eol == std::string_view::npos) break;
        pos = eol + 1;
    }
    (void)c.classify(parse_reply_text(in), "example.org");
    return 0;
}
