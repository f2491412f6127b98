// destination_backoff — see destination_backoff.hpp.
#include "bounce/destination_backoff.hpp"

#include <algorithm>

namespace ricochet::bounce {

std::int64_t destination_backoff::pause(const std::string& domain, std::int64_t now_ms) {
    std::lock_guard lk(mu_);
    auto& st = s_[domain];
    if (st.until > now_ms) return st.until;  // replies from attempts already under way: one pause
    st.backoff = st.backoff ? std::min(st.backoff * 2, max_) : base_;
    st.until = now_ms + st.backoff;
    return st.until;
}

void destination_backoff::reset(const std::string& domain) {
    std::lock_guard lk(mu_);
    s_.erase(domain);
}

std::optional<std::int64_t> destination_backoff::paused_until(const std::string& domain, std::int64_t now_ms) const {
    std::lock_guard lk(mu_);
    auto it = s_.find(domain);
    if (it == s_.end() || it->second.until <= now_ms) return std::nullopt;
    return it->second.until;
}

std::vector<destination_backoff::entry> destination_backoff::paused(std::int64_t now_ms) const {
    std::lock_guard lk(mu_);
    std::vector<entry> out;
    for (auto& [d, st] : s_)
        if (st.until > now_ms) out.push_back({d, st.until, st.backoff});
    return out;
}

}  // namespace ricochet::bounce
