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
        rule ses{"ses", {}, {}, {}, {}, {"mailbox does not exist"}, category::policy};
        ses.reporters = {"amazonaws.com"};
        k.add(ses);
        k.set_trusted_domains({"gmail.com"});
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
    // The same read as a report that names no step, from a reporter (the
    // evidence rules and the reporter condition).
    auto report = parse_reply_text(in);
    report.stage_known = false;
    report.reporter = size % 2 ? "inbound-smtp.us-west-2.amazonaws.com" : "";
    report.address_confirmed = size % 3 == 0;
    (void)c.classify(report, size % 5 ? "example.org" : "gmail.com");
    return 0;
}
