// outgoing — what delivery puts on top of each recipient's copy of a
// message (PRODUCT.md "DKIM", "One-click unsubscribe"):
//   - List-Unsubscribe: <URL_BASE TOKEN>, <mailto:u-TOKEN@BOUNCE_DOMAIN> and
//     List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058), TOKEN
//     naming this recipient and the campaign (unsubscribe/token.hpp), when
//     [unsubscribe] is enabled, the message has a campaign listed in
//     unsubscribe.campaigns ("*": any) and no List-Unsubscribe of its own;
//   - Feedback-ID: CAMPAIGN:SENDER_DOMAIN:ricochet (delivery.feedback_id)
//     when the message has a campaign and no Feedback-ID of its own;
//   - a DKIM-Signature per [[dkim]] entry of the From domain, covering the
//     fields above as well as the message's own.
// prepare() does what is the same for every recipient (the header fields,
// the body hash) once per message; head() is per recipient. Plain C++
// (OpenSSL inside dkim/), no Asio: delivery calls head() on its signing pool.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dkim/signer.hpp"
#include "unsubscribe/token.hpp"

namespace ricochet {
struct config;
}
namespace ricochet::queue {
struct envelope;
}

namespace ricochet::delivery {

class outgoing {
public:
    // signer: the loaded [[dkim]] keys (may be empty); secret: the token key.
    outgoing(const config& cfg, const dkim::signer& signer, std::string secret);
    // False when nothing is ever added (no DKIM, no unsubscribe, no Feedback-ID).
    bool active() const;

    struct prepared {
        dkim::signer::prepared dkim;  // views into the content
        bool unsubscribe = false;     // add List-Unsubscribe to each copy
        std::string feedback_id;      // the whole field, or empty
    };
    // content must outlive the result.
    prepared prepare(const queue::envelope& env, const std::string& content) const;
    // The fields for recipient `rcpt` of env (each ending in CRLF), to be
    // sent before the message: DKIM-Signature(s) first. now_s: the t= tag.
    std::string head(const prepared& p, const queue::envelope& env, const std::string& rcpt, std::int64_t now_s) const;

private:
    const config& cfg_;
    const dkim::signer& signer_;
    unsubscribe::token_signer tokens_;
};

}  // namespace ricochet::delivery
