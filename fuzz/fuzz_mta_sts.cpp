// fuzz_mta_sts — the MTA-STS policy file and TXT record grammars, the
// TLSRPT record and TLSA RDATA (tls/), fed whatever a receiver's web server or DNS could
// send: no crash, no hang, and a parsed policy keeps its promises.
#include <cstdint>
#include <string>
#include <string_view>

#include "tls/dane.hpp"
#include "tls/mta_sts_policy.hpp"
#include "tls/tls_report.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::string error;
    if (auto p = ricochet::tls::parse_sts_policy(in, error)) {
        if (p->max_age > 31557600) __builtin_trap();
        if (p->mode != ricochet::tls::sts_mode::none && p->mx.empty()) __builtin_trap();
        for (auto& m : p->mx) (void)ricochet::tls::mx_matches(m, p->mx);
    }
    std::string s(in);
    auto rec = ricochet::tls::parse_sts_record({s});
    if (rec.error.empty() && rec.found && (rec.id.empty() || rec.id.size() > 32)) __builtin_trap();
    (void)ricochet::tls::parse_tlsrpt_record({s, "v=TLSRPTv1; rua=mailto:a@b.example"});
    (void)ricochet::tls::mx_matches(s, {"*.example.com", s});
    if (auto t = ricochet::tls::parse_tlsa(in)) {
        if (ricochet::tls::usable_for_smtp(*t) && t->usage != 2 && t->usage != 3) __builtin_trap();
        (void)ricochet::tls::to_text(*t);
    }
    return 0;
}
