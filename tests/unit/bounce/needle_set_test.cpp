// Tests for bounce/needle_set.hpp: the one-pass matcher finds exactly what
// string::find finds, for overlapping needles, needles inside needles and
// bytes no needle uses.
#include "bounce/needle_set.hpp"

#include <gtest/gtest.h>

#include <random>

using namespace ricochet::bounce;

TEST(NeedleSet, OverlapsSuffixesAndRepeats) {
    needle_set s;
    s.build({"he", "she", "his", "hers", "", "rs", "x.y", "user unknown", "unknown"});
    std::vector<std::uint8_t> hit;
    s.match("ushers", hit);
    EXPECT_EQ(hit, (std::vector<std::uint8_t>{1, 1, 0, 1, 0, 1, 0, 0, 0}));
    s.match("550 5.1.1 user unknown", hit);
    EXPECT_EQ(hit, (std::vector<std::uint8_t>{0, 0, 0, 0, 0, 0, 0, 1, 1}));
    s.match("", hit);
    EXPECT_EQ(hit, std::vector<std::uint8_t>(9, 0)) << "the empty needle never matches";
    s.match("x.yx-y", hit);
    EXPECT_EQ(hit[6], 1);
}

TEST(NeedleSet, AgreesWithFindOnRandomText) {
    std::mt19937 rng(7);
    auto word = [&](int len, const char* alphabet) {
        std::string w;
        for (int i = 0; i < len; ++i) w += alphabet[rng() % 5];
        return w;
    };
    std::vector<std::string> needles;
    for (int i = 0; i < 200; ++i) needles.push_back(word(1 + static_cast<int>(rng() % 6), "ab c."));
    needle_set s;
    s.build(needles);
    std::vector<std::uint8_t> hit;
    for (int t = 0; t < 300; ++t) {
        auto text = word(static_cast<int>(rng() % 80), "ab cz");  // 'z' is in no needle
        s.match(text, hit);
        for (std::size_t i = 0; i < needles.size(); ++i)
            ASSERT_EQ(hit[i] != 0, text.find(needles[i]) != std::string::npos) << "\"" << needles[i] << "\" in \"" << text << "\"";
    }
}
