// Tests for queue/envelope.hpp: the queue file header round trip.
#include "queue/envelope.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

using namespace ricochet::queue;

TEST(Envelope, RoundTrip) {
    envelope e;
    e.id = "0ABCDEFGHJKMN";
    e.arrival_ms = 1790000000123;
    e.sender = "\"john doe\"@example.com";
    e.recipients = {"a@example.com", "b@exämple.de", "c@[192.0.2.1]"};
    e.campaign = "spring-2026";
    e.client = "127.0.0.1";
    e.helo = "client.example";
    e.auth_user = "alice";
    e.smtputf8 = true;
    e.eightbit = true;
    e.content_size = 42;
    std::string file = encode_envelope(e) + std::string(42, 'x');
    std::size_t hs = 0;
    auto got = decode_envelope(file, hs);
    ASSERT_TRUE(got);
    EXPECT_EQ(hs, file.size() - 42);
    EXPECT_EQ(got->id, e.id);
    EXPECT_EQ(got->arrival_ms, e.arrival_ms);
    EXPECT_EQ(got->sender, e.sender);
    EXPECT_EQ(got->recipients, e.recipients);
    EXPECT_EQ(got->campaign, e.campaign);
    EXPECT_EQ(got->client, e.client);
    EXPECT_EQ(got->helo, e.helo);
    EXPECT_EQ(got->auth_user, e.auth_user);
    EXPECT_TRUE(got->smtputf8);
    EXPECT_TRUE(got->eightbit);
    EXPECT_EQ(got->content_size, 42u);
}

TEST(Envelope, NullSenderAndNewlinesCannotBreakTheFormat) {
    envelope e;
    e.id = "0ABCDEFGHJKMN";
    e.recipients = {"a@b.example"};
    e.helo = "evil\nrcpt victim@example.com";
    std::size_t hs = 0;
    auto got = decode_envelope(encode_envelope(e), hs);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->sender, "");
    EXPECT_EQ(got->recipients.size(), 1u) << "a newline in a value must not add a recipient";
}

TEST(Envelope, RejectsTruncatedOrForeignFiles) {
    envelope e;
    e.id = "0ABCDEFGHJKMN";
    e.recipients = {"a@b.example"};
    std::string full = encode_envelope(e);
    std::size_t hs = 0;
    for (std::size_t cut = 0; cut < full.size(); ++cut)
        EXPECT_FALSE(decode_envelope(full.substr(0, cut), hs)) << "accepted a file cut at " << cut;
    EXPECT_FALSE(decode_envelope("From: x\n\nbody\n", hs));
}

// The check line lets recovery tell a file a crash cut off (queue/README.md):
// it covers every octet of the file but its own line.
TEST(Envelope, CheckLineCoversTheHeaderAndTheContent) {
    envelope e;
    e.id = "0ABCDEFGHJKMN";
    e.sender = "s@example.com";
    e.recipients = {"a@example.com", "b@example.com"};
    std::string content = "Received: by us\r\nSubject: hi\r\n\r\nbody\r\n";
    e.content_size = content.size();
    auto crc = crc32_z(0, reinterpret_cast<const Bytef*>(content.data()), content.size());
    std::string file = encode_envelope(e, static_cast<std::uint32_t>(crc)) + content;
    ASSERT_EQ(check_seal(file), file_seal::intact);
    std::size_t hs = 0;
    auto back = decode_envelope(file, hs);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->recipients, e.recipients) << "old readers skip the check line";
    EXPECT_EQ(file.substr(hs), content);
    EXPECT_TRUE(file.starts_with("ricochet-spool 2\n")) << "a file with a check line says so on its first line";
    auto check_at = file.find("\ncheck ") + 1;
    // Any octet changed (a stale block, a zeroed page, a damaged check line
    // that would otherwise read as no check line) breaks it; so does a
    // shorter or longer content.
    for (std::size_t i = 0; i < file.size(); ++i) {
        std::string bad = file;
        bad[i] = static_cast<char>(bad[i] ^ 0x01);
        EXPECT_EQ(check_seal(bad), file_seal::broken) << "octet " << i;
    }
    EXPECT_EQ(check_seal(file.substr(0, file.size() - 1)), file_seal::broken);
    EXPECT_EQ(check_seal(file + "x"), file_seal::broken);
    EXPECT_EQ(check_seal(std::string(file.size(), '\0')), file_seal::broken);
    std::string bad_hex = file;
    bad_hex.replace(check_at + 6, 8, "zzzzzzzz");
    EXPECT_EQ(check_seal(bad_hex), file_seal::broken);
    // A file from before checks existed (or edited by hand, made version 1
    // and without its check line): read as before.
    EXPECT_TRUE(encode_envelope(e).starts_with("ricochet-spool 1\n"));
    EXPECT_EQ(check_seal(encode_envelope(e) + content), file_seal::none);
    std::string no_line = file;
    no_line.erase(check_at, file.find('\n', check_at) + 1 - check_at);
    EXPECT_EQ(check_seal(no_line), file_seal::broken) << "version 2 without its check line";
}

TEST(Envelope, RecipientDomain) {
    EXPECT_EQ(recipient_domain("a@Example.COM"), "example.com");
    EXPECT_EQ(recipient_domain("\"a@b\"@c.example"), "c.example");
}
