// canon — the parts of DKIM (RFC 6376) that are text, not cryptography:
// splitting a message into header fields and body, the "simple" and
// "relaxed" canonicalizations of both (3.4), choosing which header field
// instances a signature covers (5.4.2), and the From domain. Plain C++, no
// OpenSSL: its tests build in seconds.
//
// Lines end in CRLF on the wire. A bare LF in a stored message is read as
// CRLF, as every receiving MTA that repairs it does; a last line without an
// end gets one (the SMTP client sends it so).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace ricochet::dkim {

enum class canon { simple, relaxed };

struct canonicalization {
    canon header = canon::relaxed;
    canon body = canon::relaxed;
};
// "relaxed/relaxed", "simple/relaxed", ... or one word (its body is simple,
// RFC 6376 3.5 c=). False for anything else.
bool parse_canonicalization(std::string_view text, canonicalization& out);
std::string to_string(const canonicalization& c);

// One header field as it stands in the message: name as written and the
// whole field with its folding and final line end.
struct header_field {
    std::string_view name;
    std::string_view raw;
};

struct message_parts {
    std::vector<header_field> headers;  // in message order
    std::string_view body;              // after the empty line; empty if none
};
// Views into content (which must outlive the result).
message_parts split_message(std::string_view content);
// Header fields of a block of whole fields (the ones delivery adds).
std::vector<header_field> split_headers(std::string_view block);

// The body canonicalized (3.4.3, 3.4.4), ready to hash.
std::string canon_body(std::string_view body, canon c);
// One header field canonicalized (3.4.1, 3.4.2), with its CRLF.
std::string canon_header(std::string_view raw_field, canon c);

// For each name of `names` (case-insensitive) as many entries as the fields
// have instances of it: the h= list, in the order of `names`.
std::vector<std::string> signed_names(const std::vector<std::string>& names, const std::vector<header_field>& fields);
// The instances h= selects (5.4.2): for each name, the last instance not yet
// used, counting from the bottom. Nullptr-free: names without an instance
// left are skipped (they sign nothing, as a verifier reads them).
std::vector<const header_field*> select_fields(const std::vector<std::string>& h, const std::vector<header_field>& fields);

// The domain of the (first) address in the From field, lower case; empty if
// there is no From or no address in it.
std::string from_domain(const std::vector<header_field>& fields);

bool iequals(std::string_view a, std::string_view b);

}  // namespace ricochet::dkim
