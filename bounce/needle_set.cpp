// needle_set — see needle_set.hpp.
#include "bounce/needle_set.hpp"

#include <algorithm>
#include <deque>

namespace ricochet::bounce {

void needle_set::build(const std::vector<std::string>& needles) {
    count_ = needles.size();
    std::fill(std::begin(cls_), std::end(cls_), 0);
    classes_ = 1;  // class 0: every byte no needle uses
    for (auto& n : needles)
        for (unsigned char c : n)
            if (!cls_[c]) cls_[c] = static_cast<std::uint8_t>(classes_++);
    // The trie, as a goto table (-1: no edge).
    std::vector<std::int32_t> go(static_cast<std::size_t>(classes_), -1);
    own_.assign(1, {});
    for (std::size_t id = 0; id < needles.size(); ++id) {
        if (needles[id].empty()) continue;
        std::int32_t s = 0;
        for (unsigned char c : needles[id]) {
            auto& e = go[static_cast<std::size_t>(s) * classes_ + cls_[c]];
            if (e < 0) {
                e = static_cast<std::int32_t>(own_.size());
                own_.emplace_back();
                go.resize(go.size() + static_cast<std::size_t>(classes_), -1);
            }
            s = go[static_cast<std::size_t>(s) * classes_ + cls_[c]];
        }
        own_[static_cast<std::size_t>(s)].push_back(static_cast<std::int32_t>(id));
    }
    // Breadth first: failure links, the full transition function, and the
    // output chains.
    std::size_t states = own_.size();
    std::vector<std::int32_t> fail(states, 0);
    out_link_.assign(states, -1);
    next_out_.assign(states, -1);
    delta_ = go;
    std::deque<std::int32_t> q;
    for (int k = 0; k < classes_; ++k) {
        auto& t = delta_[static_cast<std::size_t>(k)];
        if (t < 0) t = 0;
        else q.push_back(t);
    }
    if (!own_[0].empty()) out_link_[0] = 0;
    while (!q.empty()) {
        auto s = q.front();
        q.pop_front();
        auto f = fail[static_cast<std::size_t>(s)];
        out_link_[static_cast<std::size_t>(s)] = own_[static_cast<std::size_t>(s)].empty() ? out_link_[static_cast<std::size_t>(f)] : s;
        if (!own_[static_cast<std::size_t>(s)].empty()) next_out_[static_cast<std::size_t>(s)] = out_link_[static_cast<std::size_t>(f)];
        for (int k = 0; k < classes_; ++k) {
            auto idx = static_cast<std::size_t>(s) * classes_ + k;
            auto t = go[idx];
            auto via_fail = delta_[static_cast<std::size_t>(f) * classes_ + k];
            if (t < 0) {
                delta_[idx] = via_fail;
            } else {
                fail[static_cast<std::size_t>(t)] = via_fail;
                q.push_back(t);
            }
        }
    }
}

void needle_set::match(std::string_view text, std::vector<std::uint8_t>& hit) const {
    hit.assign(count_, 0);
    if (delta_.empty()) return;
    std::int32_t s = 0;
    for (unsigned char c : text) {
        s = delta_[static_cast<std::size_t>(s) * classes_ + cls_[c]];
        for (auto o = out_link_[static_cast<std::size_t>(s)]; o >= 0; o = next_out_[static_cast<std::size_t>(o)])
            for (auto id : own_[static_cast<std::size_t>(o)]) hit[static_cast<std::size_t>(id)] = 1;
    }
}

}  // namespace ricochet::bounce
