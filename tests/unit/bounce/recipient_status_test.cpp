// Tests for bounce/recipient_status.hpp: one test per rule of PRODUCT.md's
// recipient status list, with the clock passed in.
#include "bounce/recipient_status.hpp"

#include <gtest/gtest.h>

using namespace ricochet::bounce;

namespace {
constexpr std::int64_t day = 86400 * 1000;
status_policy policy() { return {{"gmail.com", "yahoo.com"}, 3, 15 * day}; }
address_record addr(std::string a) {
    address_record r;
    r.address = std::move(a);
    return r;
}
}  // namespace

TEST(RecipientStatus, HardOrSoftBounceMakesTheAddressBouncedAndCounts) {
    auto r = addr("a@example.com");
    EXPECT_TRUE(apply_final_failure(r, kind::soft, category::mailbox_full, "452 4.2.2 full", 1000, policy()));
    EXPECT_EQ(r.status, address_status::bounced);
    EXPECT_EQ(r.bounce_count, 1);
    EXPECT_EQ(r.first_bounce_ms, 1000);
    EXPECT_EQ(r.last_bounce_ms, 1000);
    EXPECT_EQ(r.last_category, "mailbox-full");
    EXPECT_TRUE(apply_final_failure(r, kind::hard, category::user_unknown, "550 5.1.1", 2000, policy()));
    EXPECT_EQ(r.bounce_count, 2);
    EXPECT_EQ(r.first_bounce_ms, 1000);
    EXPECT_EQ(r.last_bounce_ms, 2000);
    EXPECT_EQ(r.last_reply, "550 5.1.1");
}

TEST(RecipientStatus, HardBounceFromATrustedDomainHoldsAtOnce) {
    auto r = addr("someone@Gmail.com");
    apply_final_failure(r, kind::hard, category::user_unknown, "550 5.1.1", 1000, policy());
    EXPECT_EQ(r.status, address_status::held);
    auto s = addr("someone@gmail.com");
    apply_final_failure(s, kind::soft, category::mailbox_full, "452 4.2.2", 1000, policy());
    EXPECT_EQ(s.status, address_status::bounced) << "a soft bounce from a trusted domain does not hold";
    auto u = addr("someone@example.com");
    apply_final_failure(u, kind::hard, category::user_unknown, "550 5.1.1", 1000, policy());
    EXPECT_EQ(u.status, address_status::bounced) << "other domains need more evidence";
}

TEST(RecipientStatus, HeldAfterThreeBouncesWithTheFirstOlderThan15Days) {
    auto r = addr("a@example.com");
    std::int64_t t0 = 100 * day;
    apply_final_failure(r, kind::hard, category::user_unknown, "550", t0, policy());
    apply_final_failure(r, kind::hard, category::user_unknown, "550", t0 + 1 * day, policy());
    apply_final_failure(r, kind::hard, category::user_unknown, "550", t0 + 2 * day, policy());
    EXPECT_EQ(r.status, address_status::bounced) << "3 bounces, but the first is only 2 days old";
    apply_final_failure(r, kind::soft, category::mailbox_full, "452", t0 + 15 * day, policy());
    EXPECT_EQ(r.status, address_status::bounced) << "exactly 15 days is not more than 15";
    apply_final_failure(r, kind::soft, category::mailbox_full, "452", t0 + 15 * day + 1, policy());
    EXPECT_EQ(r.status, address_status::held);
    EXPECT_EQ(r.bounce_count, 5);
}

TEST(RecipientStatus, BlockAndTechnicalNeverCount) {
    auto r = addr("a@gmail.com");
    for (auto [k, c] : {std::pair{kind::block, category::auth_failure}, std::pair{kind::block, category::blocklisted},
                        std::pair{kind::technical, category::rate_limited}, std::pair{kind::technical, category::network_error}})
        EXPECT_FALSE(apply_final_failure(r, k, c, "550 5.7.26", 1000, policy()));
    EXPECT_EQ(r.status, address_status::active);
    EXPECT_EQ(r.bounce_count, 0);
}

TEST(RecipientStatus, UnsubscribedStaysUnsubscribed) {
    auto r = addr("a@example.com");
    r.status = address_status::unsubscribed;
    apply_final_failure(r, kind::hard, category::user_unknown, "550", 1000, policy());
    EXPECT_EQ(r.status, address_status::unsubscribed);
    EXPECT_TRUE(suppressed(r.status));
    EXPECT_TRUE(suppressed(address_status::held));
    EXPECT_FALSE(suppressed(address_status::bounced));
}
