// verp — see verp.hpp.
#include "bounce/verp.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cctype>

namespace ricochet::bounce {
namespace {
constexpr char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";  // Crockford, lower case
constexpr std::size_t mac_chars = 10;                            // 50 bits

std::string lower(std::string_view s) {
    std::string o(s);
    for (auto& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return o;
}
std::string upper(std::string_view s) {
    std::string o(s);
    for (auto& c : o) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return o;
}
}  // namespace

std::string verp_signer::mac(const verp_target& t) const {
    std::string msg = t.queue_id + "/" + std::to_string(t.recipient);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
         reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len);
    std::string s;
    std::uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits = (bits << 8) | out[i];
    for (std::size_t i = 0; i < mac_chars; ++i) s += b32[(bits >> (59 - 5 * i)) & 31];
    return s;
}

std::string verp_signer::return_path(const verp_target& t, std::string_view domain) const {
    return "b-" + lower(t.queue_id) + "-" + std::to_string(t.recipient) + "-" + mac(t) + "@" + std::string(domain);
}

std::optional<verp_target> verp_signer::verify(std::string_view address, std::string_view domain) const {
    std::string a = lower(address);
    if (auto at = a.rfind('@'); at != std::string::npos) {
        if (a.substr(at + 1) != lower(domain)) return std::nullopt;
        a.resize(at);
    }
    if (a.size() < 2 || a.compare(0, 2, "b-") != 0) return std::nullopt;
    a.erase(0, 2);
    auto d1 = a.find('-');
    auto d2 = d1 == std::string::npos ? d1 : a.find('-', d1 + 1);
    if (d2 == std::string::npos || a.find('-', d2 + 1) != std::string::npos) return std::nullopt;
    std::string qid = a.substr(0, d1), idx = a.substr(d1 + 1, d2 - d1 - 1), m = a.substr(d2 + 1);
    if (qid.size() != 13 || idx.empty() || idx.size() > 6 || m.size() != mac_chars) return std::nullopt;
    for (char c : idx)
        if (c < '0' || c > '9') return std::nullopt;
    verp_target t{upper(qid), static_cast<std::uint32_t>(std::stoul(idx))};
    std::string want = mac(t);
    unsigned char diff = 0;  // constant-time compare
    for (std::size_t i = 0; i < mac_chars; ++i) diff |= static_cast<unsigned char>(want[i] ^ m[i]);
    if (diff) return std::nullopt;
    return t;
}

}  // namespace ricochet::bounce
