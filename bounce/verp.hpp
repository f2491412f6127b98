// verp — signed per-recipient return paths (VERP).
//
// Each recipient of each message gets its own envelope sender
// "b-TOKEN@<bounce domain>", TOKEN = "<queue id>-<recipient index>-<mac>",
// all lower case: e.g. b-6c3pmk2cefr00-0-k3j9x0a2bq@bnc.example.com.
// mac is the first 50 bits of HMAC-SHA256(secret, "<QUEUEID>/<index>") in
// base32, so a bounce for a token we did not make — forged, guessed or
// mangled — is recognised and changes nothing. The token is 28 octets or so,
// well inside RFC 5321's 64-octet local part whatever the recipient's length;
// the recipient itself is found again from (queue id, index).
// Tokens are decoded case-insensitively, since some MTAs fold case.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ricochet::bounce {

struct verp_target {
    std::string queue_id;     // upper case, as in the spool
    std::uint32_t recipient;  // index in the message's recipient list
};

class verp_signer {
public:
    explicit verp_signer(std::string secret) : secret_(std::move(secret)) {}
    // "b-TOKEN@domain"
    std::string return_path(const verp_target& t, std::string_view domain) const;
    // Verifies an address (or local part) made by return_path(); nullopt for
    // anything else, including a right-looking token with a wrong mac.
    std::optional<verp_target> verify(std::string_view address, std::string_view domain) const;

private:
    std::string mac(const verp_target& t) const;
    std::string secret_;
};

}  // namespace ricochet::bounce
