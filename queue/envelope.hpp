// envelope — what the spool keeps about a message besides its content, and
// the on-disk form of it.
//
// A queue file is this envelope as text, one "key value" line each, ended by
// a line "end", followed by the message content exactly as it will be sent
// (CRLF line ends, not dot-stuffed). The text form is readable with `less`,
// so an operator can look at the spool without our tools, and new keys can be
// added without breaking old readers (unknown keys are ignored).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ricochet::queue {

struct envelope {
    std::string id;
    std::int64_t arrival_ms = 0;       // when the 250 was given, ms since the epoch
    std::string sender;                // MAIL FROM address; empty for the null sender <>
    std::vector<std::string> recipients;
    std::string campaign;              // from submission.campaign_header, may be empty
    std::string client;                // submitting client's IP address
    std::string helo;
    std::string auth_user;             // empty when the client did not authenticate
    bool smtputf8 = false;             // MAIL FROM ... SMTPUTF8
    bool eightbit = false;             // MAIL FROM ... BODY=8BITMIME
    std::uint64_t content_size = 0;    // bytes of content after the header block
};

// The header block of a queue file, ending with "end\n".
std::string encode_envelope(const envelope& env);

// The same with a "check" line just before "end": the CRC-32 (zlib's) of the
// file's bytes before that line, continued over the content, whose own CRC-32
// the caller gives (env.content_size octets). The committer writes it so that
// recovery can tell a file whose commit a crash cut short (queue/README.md).
std::string encode_envelope(const envelope& env, std::uint32_t content_crc);

// Such a file's first line is "ricochet-spool 2" (1 without a check line).
enum class file_seal {
    none,    // version 1, no check line: a file written before checks existed
    intact,  // the check matches, and the content is content_size octets
    broken,  // it does not, the check line is missing or damaged, or the
             // header block does not decode
};
// Checks a whole queue file against its check line.
file_seal check_seal(std::string_view file);
// The same for a file whose header block the caller has decoded already
// (env and header_size from decode_envelope): the block is not parsed twice.
file_seal check_seal(std::string_view file, const envelope& env, std::size_t header_size);

// Parses the header block at the start of `file`. On success returns the
// envelope and sets header_size to the offset where the content starts.
// Returns nullopt for anything that is not a complete header block.
std::optional<envelope> decode_envelope(std::string_view file, std::size_t& header_size);

// Domain part of an address (after the last '@'), lower-cased ASCII.
std::string recipient_domain(std::string_view address);

// domain is parent or a subdomain of it (both lower-case).
bool domain_within(std::string_view domain, std::string_view parent);

}  // namespace ricochet::queue
