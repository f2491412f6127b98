// unsubscribe — the public one-click unsubscribe endpoint (RFC 8058) on
// unsubscribe.listen, at the path of unsubscribe.url_base followed by a
// token (unsubscribe/token.hpp):
//   - POST with the body List-Unsubscribe=One-Click (form-urlencoded or
//     multipart/form-data, as RFC 8058 3.1 allows) makes the recipient the
//     token names `unsubscribed` (event `unsubscribed`, via one-click) and
//     answers 200 with a short page; a POST without that body: 400, nothing
//     changes;
//   - GET (and HEAD) shows a page with a confirm button, which posts that
//     body, and changes nothing: link scanners and previews follow GETs;
//   - a token that does not verify (forged, altered, cut): 404, nothing
//     changes; any other path: 404; any other method: 405.
// Asking again is answered the same and records nothing new. No Asio: the
// listener (http/server.hpp) runs it on its worker pool.
#pragma once
#include <functional>
#include <string>

#include "http/handler.hpp"
#include "unsubscribe/token.hpp"

namespace ricochet::http {

class unsubscribe_page final : public handler {
public:
    // path_prefix: the path of url_base ("/u/"). act: makes the target
    // unsubscribed (via "one-click"); "" when done, else why not (503).
    unsubscribe_page(const unsubscribe::token_signer& tokens, std::string path_prefix,
                     std::function<std::string(const unsubscribe::target&)> act)
        : tokens_(tokens), prefix_(std::move(path_prefix)), act_(std::move(act)) {}

    void handle(const request& req, std::function<void(response)> reply) override { reply(answer(req)); }
    bool runs_inline(const std::string&, const std::string&) const override { return false; }
    std::uint64_t body_limit(const std::string&, const std::string&) const override { return 8192; }

    response answer(const request& req) const;

private:
    const unsubscribe::token_signer& tokens_;
    std::string prefix_;
    std::function<std::string(const unsubscribe::target&)> act_;
};

// Whether a POST body is RFC 8058's List-Unsubscribe=One-Click, in either
// of the two form encodings.
bool one_click_body(std::string_view content_type, std::string_view body);

}  // namespace ricochet::http
