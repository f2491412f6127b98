// suppression_list — see suppression_list.hpp.
#include "bounce/suppression_list.hpp"

#include <mutex>

namespace ricochet::bounce {

std::string lower_address(std::string_view address) {
    std::string s(address);
    for (auto& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
}

void suppression_list::update(const address_record& r) {
    std::unique_lock lk(mu_);
    auto key = lower_address(r.address);
    if (suppressed(r.status)) m_[key] = r;
    else m_.erase(key);
}

std::optional<address_record> suppression_list::find(std::string_view address) const {
    auto key = lower_address(address);
    std::shared_lock lk(mu_);
    auto it = m_.find(key);
    if (it == m_.end()) return std::nullopt;
    return it->second;
}

std::size_t suppression_list::size() const {
    std::shared_lock lk(mu_);
    return m_.size();
}

void suppression_list::add_entry(const std::string& entry) {
    std::unique_lock lk(mu_);
    entries_.insert(entry);
}

void suppression_list::remove_entry(const std::string& entry) {
    std::unique_lock lk(mu_);
    entries_.erase(entry);
}

std::optional<std::string> suppression_list::find_entry(std::string_view address) const {
    auto key = lower_address(address);
    auto at = key.rfind('@');
    std::shared_lock lk(mu_);
    if (entries_.empty()) return std::nullopt;
    if (entries_.count(key)) return key;
    if (at != std::string::npos) {
        auto domain = key.substr(at);
        if (entries_.count(domain)) return domain;
    }
    return std::nullopt;
}

std::size_t suppression_list::entries() const {
    std::shared_lock lk(mu_);
    return entries_.size();
}

}  // namespace ricochet::bounce

namespace ricochet::bounce {

void suppression_list::reset(const std::vector<address_record>& records, const std::vector<std::string>& entries) {
    std::unordered_map<std::string, address_record> m;
    for (auto& r : records)
        if (suppressed(r.status)) m[lower_address(r.address)] = r;
    std::unordered_set<std::string> es(entries.begin(), entries.end());
    std::unique_lock lk(mu_);
    m_.swap(m);
    entries_.swap(es);
}

}  // namespace ricochet::bounce
