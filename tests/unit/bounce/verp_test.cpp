// Tests for bounce/verp.hpp: signed return paths round-trip; forgeries fail.
#include "bounce/verp.hpp"

#include <gtest/gtest.h>

using namespace ricochet::bounce;

TEST(Verp, RoundTripAndShape) {
    verp_signer s("secret-1");
    verp_target t{"6C3PMK2CEFR00", 7};
    std::string rp = s.return_path(t, "bnc.example.com");
    EXPECT_EQ(rp.rfind("b-6c3pmk2cefr00-7-", 0), 0u) << rp;
    EXPECT_LE(rp.find('@'), 64u) << "local part within RFC 5321's 64 octets";
    auto got = s.verify(rp, "bnc.example.com");
    ASSERT_TRUE(got);
    EXPECT_EQ(got->queue_id, "6C3PMK2CEFR00");
    EXPECT_EQ(got->recipient, 7u);
    std::string upper = rp;
    for (auto& c : upper) c = static_cast<char>(std::toupper(c));
    EXPECT_TRUE(s.verify(upper, "BNC.EXAMPLE.COM")) << "case folded by a relay";
}

TEST(Verp, ForgeriesAndOtherAddressesFail) {
    verp_signer s("secret-1");
    std::string rp = s.return_path({"6C3PMK2CEFR00", 0}, "bnc.example.com");
    std::string other_index = rp;
    other_index[rp.find("-0-") + 1] = '1';
    std::string other_mac = rp;
    other_mac[rp.find('@') - 1] = other_mac[rp.find('@') - 1] == 'a' ? 'b' : 'a';
    for (std::string bad : {other_index, other_mac, verp_signer("secret-2").return_path({"6C3PMK2CEFR00", 0}, "bnc.example.com"),
                            std::string("postmaster@bnc.example.com"), std::string("b-@bnc.example.com"),
                            std::string("b-6c3pmk2cefr00-0@bnc.example.com"), rp.substr(0, rp.find('@')) + "@other.example"})
        EXPECT_FALSE(s.verify(bad, "bnc.example.com")) << bad;
}
