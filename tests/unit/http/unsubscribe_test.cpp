// The unsubscribe endpoint's routes, without a socket: what each method,
// path, token and body gets, and that only the RFC 8058 POST acts.
#include <gtest/gtest.h>

#include "http/unsubscribe.hpp"

using namespace ricochet;

namespace {
struct fixture {
    unsubscribe::token_signer tokens{"k"};
    std::vector<unsubscribe::target> acted;
    std::string fail;
    http::unsubscribe_page page{tokens, "/u/", [this](const unsubscribe::target& t) {
                                    if (fail.empty()) acted.push_back(t);
                                    return fail;
                                }};
    http::response ask(std::string method, std::string path, std::string body = "",
                       std::string ct = "application/x-www-form-urlencoded") {
        http::request r;
        r.method = std::move(method);
        r.path = std::move(path);
        r.body = std::move(body);
        r.content_type = std::move(ct);
        return page.answer(r);
    }
};
}  // namespace

TEST(UnsubscribePage, OnlyTheOneClickPostActs) {
    fixture f;
    auto token = f.tokens.make({"a@x.example", "c1"});
    EXPECT_EQ(f.ask("GET", "/u/" + token).status, 200);
    EXPECT_EQ(f.ask("POST", "/u/" + token, "List-Unsubscribe=No").status, 400);
    EXPECT_EQ(f.ask("POST", "/u/" + token, "List-Unsubscribe=One-Click", "text/plain").status, 400);
    EXPECT_EQ(f.ask("PUT", "/u/" + token).status, 405);
    EXPECT_EQ(f.ask("POST", "/u/" + token + "x", "List-Unsubscribe=One-Click").status, 404);
    EXPECT_EQ(f.ask("POST", "/v/" + token, "List-Unsubscribe=One-Click").status, 404);
    EXPECT_EQ(f.ask("GET", "/u/").status, 404);
    EXPECT_TRUE(f.acted.empty());
    EXPECT_EQ(f.ask("POST", "/u/" + token, "List-Unsubscribe=One-Click").status, 200);
    ASSERT_EQ(f.acted.size(), 1u);
    EXPECT_EQ(f.acted[0].recipient, "a@x.example");
    EXPECT_EQ(f.acted[0].campaign, "c1");
    f.fail = "store down";
    EXPECT_EQ(f.ask("POST", "/u/" + token, "x=1&List-Unsubscribe=One-Click").status, 503);
}

TEST(UnsubscribePage, PagesEscapeWhatTheTokenCarries) {
    fixture f;
    auto token = f.tokens.make({"<script>@x.example", "\"><img src=x>"});
    auto r = f.ask("GET", "/u/" + token);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body.find("<script>"), std::string::npos);
    EXPECT_EQ(r.body.find("<img"), std::string::npos);
    EXPECT_NE(r.body.find("&lt;script&gt;"), std::string::npos);
}

TEST(UnsubscribePage, OneClickBodies) {
    EXPECT_TRUE(http::one_click_body("application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"));
    EXPECT_TRUE(http::one_click_body("", "List-Unsubscribe=One-Click\r\n"));
    EXPECT_TRUE(http::one_click_body("application/x-www-form-urlencoded; charset=utf-8", "a=b&List-Unsubscribe=One-Click"));
    EXPECT_FALSE(http::one_click_body("application/x-www-form-urlencoded", "List-Unsubscribe=One-Clicks"));
    EXPECT_FALSE(http::one_click_body("application/json", "List-Unsubscribe=One-Click"));
    EXPECT_TRUE(http::one_click_body("multipart/form-data; boundary=b",
                                     "--b\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--b--\r\n"));
    EXPECT_FALSE(http::one_click_body("multipart/form-data; boundary=b",
                                      "--b\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nNo\r\n--b--\r\n"));
    EXPECT_FALSE(http::one_click_body("multipart/form-data; boundary=b", "name=\"List-Unsubscribe\""));
}
