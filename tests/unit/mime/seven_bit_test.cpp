// Tests for mime/seven_bit.hpp: what the RFC 6152 downgrade does to each
// kind of part, that every part decodes to the same octets afterwards (read
// back with GMime), and what it refuses.
#include "mime/seven_bit.hpp"

#include <gmime/gmime.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

using namespace ricochet;

namespace {

// Each leaf part's content type and decoded octets, walking into attached messages.
struct leaf {
    std::string type, encoding, octets;
};
void walk(GMimeObject* obj, std::vector<leaf>& out) {
    if (GMIME_IS_MULTIPART(obj)) {
        auto* mp = GMIME_MULTIPART(obj);
        for (int i = 0; i < g_mime_multipart_get_count(mp); ++i) walk(g_mime_multipart_get_part(mp, i), out);
    } else if (GMIME_IS_MESSAGE_PART(obj)) {
        if (auto* m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj))) walk(g_mime_message_get_mime_part(m), out);
    } else if (GMIME_IS_PART(obj)) {
        auto* part = GMIME_PART(obj);
        char* ct = g_mime_content_type_get_mime_type(g_mime_object_get_content_type(obj));
        GMimeStream* mem = g_mime_stream_mem_new();
        g_mime_data_wrapper_write_to_stream(g_mime_part_get_content(part), mem);
        GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
        const char* cte = g_mime_object_get_header(obj, "Content-Transfer-Encoding");
        out.push_back({ct, cte ? cte : "", std::string(reinterpret_cast<char*>(bytes->data), bytes->len)});
        g_free(ct);
        g_object_unref(mem);
    }
}
std::vector<leaf> leaves(const std::string& message) {
    g_mime_init();
    GMimeStream* s = g_mime_stream_mem_new_with_buffer(message.data(), message.size());
    GMimeParser* p = g_mime_parser_new_with_stream(s);
    GMimeMessage* m = g_mime_parser_construct_message(p, nullptr);
    std::vector<leaf> out;
    if (m) walk(g_mime_message_get_mime_part(m), out);
    if (m) g_object_unref(m);
    g_object_unref(p);
    g_object_unref(s);
    return out;
}

const std::string text = "Gr\xC3\xBC\xC3\x9F" "e aus K\xC3\xB6ln: 10 \xE2\x82\xAC.\r\n" + std::string(120, 'x') + " \xC3\xA9\r\n";
std::string blob() {
    std::string b;
    for (int i = 0; i < 1024; ++i) b += static_cast<char>(i % 256);
    return b;
}

std::string multipart(const std::string& subject = "Angebot") {
    return "From: a@shop.example\r\nTo: b@x.example\r\nSubject: " + subject +
           "\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"B1\"\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\nprologue\r\n"
           "--B1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + text +
           "--B1\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>" + text + "</p>\r\n"
           "--B1\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\nplain ascii\r\n"
           "--B1\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           "From: c@d.example\r\nSubject: inner\r\nContent-Type: text/plain; charset=utf-8\r\n"
           "Content-Transfer-Encoding: 8bit\r\n\r\nInnen " + text +
           "--B1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + blob() +
           "\r\n--B1--\r\n";
}

}  // namespace

TEST(SevenBit, EveryPartDecodesToTheSameOctetsAndTheWireIs7Bit) {
    auto in = multipart();
    std::string err;
    auto out = mime::to_seven_bit(in, err);
    ASSERT_TRUE(out) << err;
    EXPECT_FALSE(mime::has_eight_bit(*out));
    // CRLF only, lines within RFC 5322's limit.
    for (std::size_t pos = 0, eol; pos < out->size(); pos = eol + 2) {
        eol = out->find("\r\n", pos);
        ASSERT_NE(eol, std::string::npos) << "ends with CRLF";
        ASSERT_LE(eol - pos, 998u);
        ASSERT_EQ(out->substr(pos, eol - pos).find('\n'), std::string::npos) << "no bare LF";
    }
    auto a = leaves(in), b = leaves(*out);
    ASSERT_EQ(a.size(), 5u);
    ASSERT_EQ(b.size(), a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].type, b[i].type) << i;
        EXPECT_EQ(a[i].octets, b[i].octets) << i << " " << a[i].type;
    }
    EXPECT_EQ(b[0].encoding, "quoted-printable") << "text as quoted-printable";
    EXPECT_EQ(b[1].encoding, "quoted-printable") << "undeclared 8-bit text too";
    EXPECT_EQ(b[2].encoding, "7bit") << "a 7-bit part is left alone";
    EXPECT_EQ(b[2].octets, "plain ascii") << "(the CRLF before a boundary belongs to the boundary)";
    EXPECT_EQ(b[3].encoding, "quoted-printable") << "inside the attached message";
    EXPECT_EQ(b[4].encoding, "base64") << "anything else as base64";
    EXPECT_EQ(b[4].octets, blob());
    EXPECT_NE(out->find("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit"), std::string::npos);
    EXPECT_NE(out->find("Subject: Angebot\r\n"), std::string::npos) << "headers as they were";
}

TEST(SevenBit, ASinglePartMessage) {
    std::string in = "From: a@b.example\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text;
    std::string err;
    auto out = mime::to_seven_bit(in, err);
    ASSERT_TRUE(out) << err;
    EXPECT_FALSE(mime::has_eight_bit(*out));
    auto b = leaves(*out);
    ASSERT_EQ(b.size(), 1u);
    EXPECT_EQ(b[0].octets, text);
    EXPECT_EQ(b[0].encoding, "quoted-printable");
}

TEST(SevenBit, EightBitHeadersAreRefusedWithTheFieldsName) {
    std::string err;
    EXPECT_FALSE(mime::to_seven_bit(multipart("Gr\xC3\xBC\xC3\x9F" "e"), err));
    EXPECT_EQ(err, "header field Subject has 8-bit characters");
    std::string inner = "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
                        "Content-Type: message/rfc822\r\n\r\nFrom: c@d.example\r\nSubject: \xC3\xA9t\xC3\xA9\r\n\r\nx\r\n--B--\r\n";
    EXPECT_FALSE(mime::to_seven_bit(inner, err));
    EXPECT_EQ(err, "header field Subject of an attached message has 8-bit characters");
    std::string part_header = "From: a@b.example\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
                              "Content-Type: text/plain; name=\"r\xC3\xA9sum\xC3\xA9.txt\"\r\n\r\nx\r\n--B--\r\n";
    EXPECT_FALSE(mime::to_seven_bit(part_header, err));
    EXPECT_EQ(err, "header field Content-Type has 8-bit characters");
}

TEST(SevenBit, HasEightBit) {
    EXPECT_FALSE(mime::has_eight_bit("plain\r\n"));
    EXPECT_TRUE(mime::has_eight_bit("caf\xC3\xA9"));
    EXPECT_FALSE(mime::has_eight_bit(std::string("nul\0", 4)));
}

// What the fuzzer found (fuzz/regressions/seven_bit/): a NUL in a part
// once cut the output short, and a malformed part came back with LF alone.
// Every line end of the output is CRLF and nothing is lost.
TEST(SevenBit, FuzzerFindingsStayFixed) {
    for (auto& e : std::filesystem::directory_iterator(std::string(RICOCHET_SOURCE_DIR) + "/fuzz/regressions/seven_bit")) {
        std::ifstream f(e.path(), std::ios::binary);
        std::string in((std::istreambuf_iterator<char>(f)), {});
        std::string err;
        auto out = mime::to_seven_bit(in, err);
        if (!out) {
            EXPECT_FALSE(err.empty()) << e.path();
            continue;
        }
        EXPECT_FALSE(mime::has_eight_bit(*out)) << e.path();
        for (std::size_t i = 0; i < out->size(); ++i) {
            bool bare = ((*out)[i] == '\n' && (i == 0 || (*out)[i - 1] != '\r')) ||
                        ((*out)[i] == '\r' && (i + 1 == out->size() || (*out)[i + 1] != '\n'));
            ASSERT_FALSE(bare) << e.path() << " at " << i;
        }
    }
    std::string with_nul = "From: a@b.example\r\nContent-Type: text/plain\r\n\r\nbefore";
    with_nul += '\0';
    with_nul += "after \xC3\xA9\r\nend\r\n";
    std::string want = with_nul.substr(with_nul.find("before"));
    std::string err;
    auto out = mime::to_seven_bit(with_nul, err);
    ASSERT_TRUE(out) << err;
    auto b = leaves(*out);
    ASSERT_EQ(b.size(), 1u);
    EXPECT_EQ(b[0].octets, want) << "nothing after the NUL is lost";
}
