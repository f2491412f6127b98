// Fuzz target: whatever a client sends the public unsubscribe listener.
// The bytes go through Beast's request parser with the listener's limits;
// a request it accepts goes to the endpoint's routes (token check, form
// bodies). Nothing may crash; only a POST with a token we made and RFC
// 8058's body may act, and a page never carries the token's text unescaped.
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "http/unsubscribe.hpp"

using namespace ricochet;
namespace bhttp = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static unsubscribe::token_signer tokens("fuzz-secret");
    static const std::string valid = tokens.make({"a@b.example", "<c>"});
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(8192);
    parser.eager(true);
    boost::beast::error_code ec;
    parser.put(boost::asio::buffer(data, size), ec);
    if (!ec && !parser.is_done()) parser.put_eof(ec);
    if (ec || !parser.is_done()) return 0;
    auto& req = parser.get();
    http::request r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    if (!http::parse_target(r.target, r.path, r.query)) return 0;
    // "/u/VALID..." in the input stands for the real token, so the fuzzer reaches the acting path.
    if (auto p = r.path.find("VALID"); p != std::string::npos) r.path.replace(p, 5, valid);
    r.content_type = std::string(req[bhttp::field::content_type]);
    r.body = req.body();
    bool acted = false;
    http::unsubscribe_page page(tokens, "/u/", [&acted](const unsubscribe::target& t) {
        if (t.recipient != "a@b.example") std::abort();  // only what the token names
        acted = true;
        return std::string();
    });
    auto res = page.answer(r);
    if (acted && (r.method != "POST" || res.status != 200)) std::abort();
    if (res.body.find("<c>") != std::string::npos) std::abort();
    return 0;
}
