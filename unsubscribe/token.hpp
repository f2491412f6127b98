// token — the signed token of a one-click unsubscribe (RFC 8058): it names
// a recipient and a campaign, so the click (or the mail to the mailto
// address) days later needs nothing but the token: no lookup, and no queue
// entry, which is long gone by then.
//
// TOKEN = base32(recipient NUL campaign) "-" mac, lower case, where mac is
// the first 80 bits of HMAC-SHA256(secret, "unsubscribe" NUL recipient NUL
// campaign) in base32 (Crockford's alphabet, as the VERP tokens). The
// recipient is stored in lower case. Decoding is case-insensitive (some MTAs
// fold the case of local parts). A token we did not make, or one changed by
// a single character, does not verify: a forged click unsubscribes no one.
//
// The token grows with the address: about 1.6 characters per octet of
// recipient and campaign, plus 17. In the mailto address u-TOKEN@domain a
// recipient and campaign of more than about 25 octets together go over RFC
// 5321's 64-octet local part, which receiving MTAs (Postfix, Exim, Gmail)
// accept; the HTTPS URL has no such limit.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace ricochet::unsubscribe {

struct target {
    std::string recipient;  // lower case
    std::string campaign;
};

class token_signer {
public:
    explicit token_signer(std::string secret) : secret_(std::move(secret)) {}
    std::string make(const target& t) const;
    // nullopt for anything make() did not produce with this secret.
    std::optional<target> verify(std::string_view token) const;

private:
    std::string mac(std::string_view payload) const;
    std::string secret_;
};

// The local part of the mailto address: "u-" TOKEN.
inline std::string mailto_local(std::string_view token) { return "u-" + std::string(token); }
// The token of a mailto address u-TOKEN@domain (domain compared without
// case); nullopt when the address is not one.
std::optional<std::string> token_of_mailto(std::string_view address, std::string_view domain);

}  // namespace ricochet::unsubscribe
