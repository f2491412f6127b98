// Fuzz target: whatever a client sends the HTTP listener. The bytes go
// through Beast's request parser with the listener's limits; a request it
// accepts goes through our own checks (target, Host, bearer token, the
// dashboard's files), and its
// body through the injection's reading (JSON, addresses, headers, the
// message built with GMime or normalised). Nothing may crash, and what is
// refused must be refused with a reason.
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "bounce/suppression_list.hpp"
#include "http/dashboard.hpp"
#include "http/http_util.hpp"
#include "submission/inject.hpp"

using namespace ricochet;
namespace bhttp = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(64 * 1024);
    parser.eager(true);
    boost::beast::error_code ec;
    parser.put(boost::asio::buffer(data, size), ec);
    if (!ec && !parser.is_done()) parser.put_eof(ec);
    if (ec || !parser.is_header_done()) return 0;
    auto& req = parser.get();
    std::string path;
    std::map<std::string, std::string> query;
    if (http::parse_target(std::string(req.target()), path, query)) {
        if (path.empty() || path.front() != '/') std::abort();
        // The dashboard serves only its own files, and only under / and /ui/.
        if (auto f = http::dashboard_file(path); f && (!http::dashboard_path(path) || f->body.empty())) std::abort();
    }
    (void)http::host_allowed(std::string(req[bhttp::field::host]), "mta.example");
    if (auto t = http::bearer_token(std::string(req[bhttp::field::authorization])); t && t->empty()) std::abort();
    if (!parser.is_done()) return 0;
    auto body = submission::body_json::parse(req.body(), nullptr, false);
    if (body.is_discarded()) return 0;
    static bounce::suppression_list suppression;
    submission::inject_limits lim{"mta.example", "X-Campaign-ID", 1 << 20, 50};
    std::string error;
    auto inj = submission::prepare_injection(body, lim, suppression, "127.0.0.1", "", [] { return std::string("ID"); }, 0, error);
    if (!inj && error.empty()) std::abort();  // a refusal always says why
    if (inj && !inj->env.recipients.empty()) {
        // What is queued is CRLF text within RFC 5322's line limit.
        auto& c = inj->content;
        for (std::size_t pos = 0, eol; pos < c.size(); pos = eol + 2) {
            eol = c.find("\r\n", pos);
            if (eol == std::string::npos || eol - pos > 998) std::abort();
            if (c.substr(pos, eol - pos).find_first_of("\r\n") != std::string::npos) std::abort();
        }
    }
    return 0;
}
