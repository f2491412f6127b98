// needle_set — many substrings found in one pass over a text (Aho-Corasick
// over a byte alphabet reduced to the bytes the needles use). The
// classifier's patterns are hundreds of needles; matching each with
// string::find costs a pass per needle, this one pass per reply.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ricochet::bounce {

class needle_set {
public:
    // Replaces the set; needle i is reported as id i. Empty needles never match.
    void build(const std::vector<std::string>& needles);
    std::size_t size() const { return count_; }

    // hit[i] = 1 for every needle i that occurs in text (hit is resized to
    // size() and cleared first).
    void match(std::string_view text, std::vector<std::uint8_t>& hit) const;

private:
    std::size_t count_ = 0;
    int classes_ = 1;
    std::uint8_t cls_[256] = {};
    std::vector<std::int32_t> delta_;      // state * classes_ + class -> state
    std::vector<std::int32_t> out_link_;   // nearest state (self included) with outputs, or -1
    std::vector<std::int32_t> next_out_;   // for a state with outputs: the next one down its failure chain, or -1
    std::vector<std::vector<std::int32_t>> own_;  // needles ending exactly at a state
};

}  // namespace ricochet::bounce
