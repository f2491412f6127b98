// token — see token.hpp.
#include "unsubscribe/token.hpp"

#include "base/text.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cctype>

namespace ricochet::unsubscribe {
namespace {
constexpr char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";  // Crockford, lower case
constexpr std::size_t mac_chars = 16;                            // 80 bits
constexpr std::size_t max_payload = 1024;                        // an address (254) and a campaign id, with room

std::string encode(std::string_view bytes) {
    std::string out;
    std::uint32_t buf = 0;
    int bits = 0;
    for (unsigned char c : bytes) {
        buf = (buf << 8) | c;
        bits += 8;
        while (bits >= 5) {
            out += b32[(buf >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0) out += b32[(buf << (5 - bits)) & 31];
    return out;
}

int value_of(char c) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (int i = 0; i < 32; ++i)
        if (b32[i] == c) return i;
    return -1;
}

std::optional<std::string> decode(std::string_view text) {
    std::string out;
    std::uint32_t buf = 0;
    int bits = 0;
    for (char ch : text) {
        int v = value_of(ch);
        if (v < 0) return std::nullopt;
        buf = (buf << 5) | static_cast<std::uint32_t>(v);
        bits += 5;
        if (bits >= 8) {
            out += static_cast<char>((buf >> (bits - 8)) & 0xff);
            bits -= 8;
        }
    }
    if (bits >= 5 || (buf & ((1u << bits) - 1)) != 0) return std::nullopt;  // not what encode() writes
    return out;
}

}  // namespace

std::string token_signer::mac(std::string_view payload) const {
    std::string msg = std::string("unsubscribe", 11) + '\0' + std::string(payload);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
         reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len);
    return encode(std::string_view(reinterpret_cast<char*>(out), 10));  // 80 bits: 16 characters
}

std::string token_signer::make(const target& t) const {
    std::string payload = base::lower(t.recipient) + '\0' + t.campaign;
    return encode(payload) + "-" + mac(payload);
}

std::optional<target> token_signer::verify(std::string_view token) const {
    auto dash = token.rfind('-');
    if (dash == std::string_view::npos || token.size() - dash - 1 != mac_chars) return std::nullopt;
    if (dash > max_payload * 8 / 5 + 1) return std::nullopt;
    auto payload = decode(token.substr(0, dash));
    if (!payload) return std::nullopt;
    std::string want = mac(*payload), got = base::lower(token.substr(dash + 1));
    if (CRYPTO_memcmp(want.data(), got.data(), mac_chars) != 0) return std::nullopt;
    auto nul = payload->find('\0');
    if (nul == std::string::npos || nul == 0) return std::nullopt;
    target t{payload->substr(0, nul), payload->substr(nul + 1)};
    if (t.recipient != base::lower(t.recipient) || t.recipient.find('@') == std::string::npos) return std::nullopt;
    return t;
}

std::optional<std::string> token_of_mailto(std::string_view address, std::string_view domain) {
    auto at = address.rfind('@');
    if (at == std::string_view::npos || base::lower(address.substr(at + 1)) != base::lower(domain)) return std::nullopt;
    auto local = address.substr(0, at);
    if (local.size() < 3 || (local[0] != 'u' && local[0] != 'U') || local[1] != '-') return std::nullopt;
    return std::string(local.substr(2));
}

}  // namespace ricochet::unsubscribe
