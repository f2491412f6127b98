// Tests for smtp/base64.hpp.
#include "smtp/base64.hpp"

#include <gtest/gtest.h>

using namespace ricochet::smtp;

TEST(Base64, RoundTripAndRejects) {
    struct { std::string plain, encoded; } rows[] = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="},
        {std::string("\0alice\0secret", 13), "AGFsaWNlAHNlY3JldA=="}};
    for (auto& r : rows) {
        EXPECT_EQ(base64_encode(r.plain), r.encoded);
        EXPECT_EQ(base64_decode(r.encoded), r.plain) << r.encoded;
    }
    for (std::string bad : {"Zg=", "Z===", "Zm9v!", "Zg==Zg==", "=Zm9"}) EXPECT_FALSE(base64_decode(bad)) << bad;
}
