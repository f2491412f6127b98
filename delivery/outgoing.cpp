// outgoing — see outgoing.hpp.
#include "delivery/outgoing.hpp"

#include "config/config.hpp"
#include "queue/envelope.hpp"

namespace ricochet::delivery {
namespace {

bool has_field(const std::vector<dkim::header_field>& fields, std::string_view name) {
    for (auto& f : fields)
        if (dkim::iequals(f.name, name)) return true;
    return false;
}

// Gmail's Feedback-ID is colon-separated: a campaign id with a colon (or
// anything outside a token's characters) would shift the fields.
std::string fbl_part(std::string_view s) {
    std::string o;
    for (char c : s) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
                  c == '_';
        o.push_back(ok ? c : '_');
    }
    return o;
}

}  // namespace

outgoing::outgoing(const config& cfg, const dkim::signer& signer, std::string secret)
    : cfg_(cfg), signer_(signer), tokens_(std::move(secret)) {}

bool outgoing::active() const { return !signer_.empty() || cfg_.unsubscribe.enabled || cfg_.delivery.feedback_id; }

outgoing::prepared outgoing::prepare(const queue::envelope& env, const std::string& content) const {
    prepared p;
    if (!active()) return p;
    p.dkim = signer_.prepare(content);
    // (Without keys, prepare() leaves the fields unparsed: parse them here.)
    std::vector<dkim::header_field> own;
    const auto* fields = &p.dkim.headers;
    if (signer_.empty()) {
        own = dkim::split_message(content).headers;
        fields = &own;
    }
    if (cfg_.unsubscribe.enabled && !env.campaign.empty() && !has_field(*fields, "List-Unsubscribe")) {
        for (auto& c : cfg_.unsubscribe.campaigns)
            if (c == "*" || c == env.campaign) p.unsubscribe = true;
    }
    if (cfg_.delivery.feedback_id && !env.campaign.empty() && !has_field(*fields, "Feedback-ID"))
        p.feedback_id = "Feedback-ID: " + fbl_part(env.campaign) + ":" + fbl_part(queue::recipient_domain(env.sender)) +
                        ":ricochet\r\n";
    return p;
}

std::string outgoing::head(const prepared& p, const queue::envelope& env, const std::string& rcpt,
                           std::int64_t now_s) const {
    std::string added;
    if (p.unsubscribe) {
        auto token = tokens_.make({rcpt, env.campaign});
        added = "List-Unsubscribe: <" + cfg_.unsubscribe.url_base + token + ">,\r\n <mailto:" +
                unsubscribe::mailto_local(token) + "@" + cfg_.bounce_listener.domain + ">\r\n" +
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n";
    }
    added += p.feedback_id;
    return signer_.sign(p.dkim, added, now_s) + added;
}

}  // namespace ricochet::delivery
