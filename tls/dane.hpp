// dane — TLSA records (RFC 6698, as SMTP uses them: RFC 7672): their wire
// format, their text form (for logs, ricochetctl tls show and TLS-RPT's
// policy-string), and which are usable for SMTP (DANE-TA(2) and
// DANE-EE(3) with a known selector and matching type; PKIX-TA(0) and
// PKIX-EE(1) are not, RFC 7672 3.1.3). Pure.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/tls_outcome.hpp"

namespace ricochet::tls {

// RDATA: usage, selector, matching type (one octet each), then the data.
std::optional<smtp::tlsa_rr> parse_tlsa(std::string_view rdata);
// "3 1 1 8A3F..." (presentation format, RFC 6698 2.2).
std::string to_text(const smtp::tlsa_rr& r);
bool usable_for_smtp(const smtp::tlsa_rr& r);
// The owner name of the first record in a trust anchor file (zone file
// format, DS or DNSKEY: "." for the root's), "" when there is none.
std::string trust_anchor_zone(const std::string& path);
// "_PORT._tcp.HOST" (RFC 6698 3), without a trailing dot.
std::string tlsa_name(const std::string& host, unsigned port);

}  // namespace ricochet::tls
