// The HTTP listener's pure checks: targets, Host (DNS rebinding), tokens,
// the webhook signature.
#include <gtest/gtest.h>

#include "http/http_util.hpp"

using namespace ricochet::http;

TEST(HttpTarget, PathAndQueryAreDecoded) {
    std::string path;
    std::map<std::string, std::string> q;
    ASSERT_TRUE(parse_target("/v1/recipients/a%40b.example?status=held&after=x%2By&limit=5&empty", path, q));
    EXPECT_EQ(path, "/v1/recipients/a@b.example");
    EXPECT_EQ(q["status"], "held");
    EXPECT_EQ(q["after"], "x+y");
    EXPECT_EQ(q["limit"], "5");
    EXPECT_EQ(q["empty"], "");
    ASSERT_TRUE(parse_target("/x?a=1&a=2&b=c+d", path, q));
    EXPECT_EQ(q["a"], "1") << "the first of a repeated key wins";
    EXPECT_EQ(q["b"], "c d") << "+ is a space in a query";
}

TEST(HttpTarget, MalformedTargetsAreRefused) {
    std::string path;
    std::map<std::string, std::string> q;
    for (auto t : {"", "v1/queue", "http://x/v1", "/v1/%4", "/v1/%zz", "/v1/%00", "/v1/../metrics", "/..",
                   "/a/%2e%2e/b", "/a?x=%", "/a%0d%0aX: y"})
        EXPECT_FALSE(parse_target(t, path, q)) << t;
    EXPECT_TRUE(parse_target("/a..b/c", path, q)) << "dots inside a segment are no dot segment";
}

TEST(HttpHost, OnlyIpLiteralsLocalhostAndOurNamePass) {
    for (auto h : {"127.0.0.1", "127.0.0.1:8025", "[::1]", "[::1]:8025", "localhost", "LOCALHOST:80", "localhost.",
                   "mta.example.com", "MTA.example.com:8025", "10.1.2.3"})
        EXPECT_TRUE(host_allowed(h, "mta.example.com")) << h;
    for (auto h : {"", "evil.example", "evil.example:8025", "mta.example.com.evil.example", "127.0.0.1.nip.io",
                   "[::1", "[::1]x", "[::1/128]", "1.2.3.0/24", "localhost:abc", "localhost:123456", "999.1.1.1", ":80"})
        EXPECT_FALSE(host_allowed(h, "mta.example.com")) << h;
    EXPECT_FALSE(host_allowed("anything", "")) << "no hostname configured: names other than localhost fail";
}

TEST(HttpCsrf, OnlyABrowsersCrossOriginWritesAreRefused) {
    // Clients that are not browsers send neither header.
    EXPECT_FALSE(cross_origin_write("POST", "127.0.0.1:8025", "", ""));
    EXPECT_FALSE(cross_origin_write("POST", "127.0.0.1:8025", "http://127.0.0.1:8025", "same-origin"));
    EXPECT_FALSE(cross_origin_write("DELETE", "MTA.example.com", "https://mta.example.com", ""));
    EXPECT_FALSE(cross_origin_write("POST", "127.0.0.1:8025", "", "none")) << "typed by the user";
    EXPECT_FALSE(cross_origin_write("GET", "127.0.0.1:8025", "https://evil.example", "cross-site")) << "reads are not writes";
    EXPECT_FALSE(cross_origin_write("HEAD", "127.0.0.1:8025", "https://evil.example", "cross-site"));
    EXPECT_TRUE(cross_origin_write("POST", "127.0.0.1:8025", "https://evil.example", ""));
    EXPECT_TRUE(cross_origin_write("PUT", "127.0.0.1:8025", "null", ""));
    EXPECT_TRUE(cross_origin_write("POST", "127.0.0.1:8025", "http://127.0.0.1:8026", "")) << "another port is another origin";
    EXPECT_TRUE(cross_origin_write("POST", "127.0.0.1:8025", "http://127.0.0.1:8025", "same-site"));
    EXPECT_TRUE(cross_origin_write("POST", "127.0.0.1:8025", "", "cross-site"));
    EXPECT_TRUE(cross_origin_write("POST", "127.0.0.1:8025", "ftp://127.0.0.1:8025", ""));
}

TEST(HttpAuth, BearerTokens) {
    EXPECT_EQ(bearer_token("Bearer abc").value_or(""), "abc");
    EXPECT_EQ(bearer_token("bearer   abc  ").value_or(""), "abc");
    EXPECT_FALSE(bearer_token("Basic abc"));
    EXPECT_FALSE(bearer_token("Bearer "));
    EXPECT_FALSE(bearer_token("Bearerabc"));
    EXPECT_FALSE(bearer_token(""));
}

TEST(HttpAuth, TokensFile) {
    token_list t;
    std::string err;
    ASSERT_TRUE(t.load_text("# campaign systems\n\ncrm:0123456789abcdef\r\n  ops : fedcba9876543210xyz\n", "tokens", err)) << err;
    EXPECT_EQ(t.size(), 2u);
    EXPECT_EQ(t.find("0123456789abcdef").value_or(""), "crm");
    EXPECT_EQ(t.find(" fedcba9876543210xyz").value_or(""), "ops ");
    EXPECT_FALSE(t.find("0123456789abcde"));
    EXPECT_FALSE(t.find(""));
    EXPECT_FALSE(t.load_text("nocolon\n", "tokens", err));
    EXPECT_EQ(err, "tokens:1: expected NAME:TOKEN");
    EXPECT_FALSE(t.load_text("a:short\n", "tokens", err));
    EXPECT_NE(err.find("shorter than 16"), std::string::npos);
    EXPECT_FALSE(t.load_text("a:0123456789abcdef\na:0123456789abcdeg\n", "tokens", err));
    EXPECT_EQ(err, "tokens:2: the name a is given twice");
    EXPECT_FALSE(t.load_text(":0123456789abcdef\n", "tokens", err));
}

TEST(HttpWebhook, SignatureIsHmacSha256OfTimeDotBody) {
    // Computed independently: python3 -c 'import hmac,hashlib;
    //   print(hmac.new(b"0123456789abcdef0123", b"1700000000.[]", hashlib.sha256).hexdigest())'
    EXPECT_EQ(webhook_signature("0123456789abcdef0123", 1700000000, "[]"),
              "t=1700000000,v1=31b54fadd6609c68efe2195603f03083b609029d7f211cc0342003e507f38903");
}

TEST(HttpError, IsJsonEvenForBadUtf8) {
    auto r = error_reply(400, std::string("bad \xff byte \"quoted\""));
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(r.body, "{\"error\":\"bad \xef\xbf\xbd byte \\\"quoted\\\"\"}");
}
