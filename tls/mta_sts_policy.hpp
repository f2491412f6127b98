// mta_sts_policy — the text of SMTP MTA Strict Transport Security (RFC 8461):
// the `_mta-sts.DOMAIN` TXT record that announces a policy and its id, the
// policy file served at https://mta-sts.DOMAIN/.well-known/mta-sts.txt, and
// which MX host names a policy allows. Pure: no I/O, so every rule of the
// RFC's grammar is tested without a network (tests/unit/tls) and fuzzed
// (fuzz/fuzz_mta_sts.cpp). The fetching and caching live in mta_sts.hpp.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ricochet::tls {

enum class sts_mode { enforce, testing, none };
std::string_view to_string(sts_mode m);

// One TXT record set at _mta-sts.DOMAIN (RFC 8461 3.1): the id of the
// policy in force, or why there is none. Records that do not begin with
// "v=STSv1" are ignored; more than one that does, or one that breaks the
// grammar, means "no policy announced".
struct sts_record {
    std::string id;      // 1*32(ALPHA / DIGIT)
    std::string error;   // set when the record set announces no usable policy
    bool found = false;  // a record starting with v=STSv1 was there (maybe invalid)
};
sts_record parse_sts_record(const std::vector<std::string>& txt_records);

// A policy file (RFC 8461 3.2): "key: value" lines, CRLF or LF.
struct sts_policy {
    sts_mode mode = sts_mode::none;
    std::vector<std::string> mx;    // patterns, lower case: "mx.example.net" or "*.example.net"
    std::uint32_t max_age = 0;      // seconds, at most 31557600 (one year)
    std::vector<std::string> lines;  // the policy as received, one entry per field (TLS-RPT's policy-string)
};
// The policy, or nullopt with why in error (sts-policy-invalid for TLS-RPT).
std::optional<sts_policy> parse_sts_policy(std::string_view text, std::string& error);

// Whether an MX host name matches one of the policy's patterns (RFC 8461
// 4.1): case-insensitive, a trailing dot ignored, "*." standing for exactly
// one leftmost label.
bool mx_matches(const std::string& mx_host, const std::vector<std::string>& patterns);

}  // namespace ricochet::tls
