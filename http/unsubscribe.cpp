// unsubscribe — see unsubscribe.hpp.
#include "http/unsubscribe.hpp"

#include "base/text.hpp"

#include <cctype>

namespace ricochet::http {
namespace {

std::string html_escape(std::string_view s) {
    std::string o;
    for (char c : s) {
        switch (c) {
            case '&': o += "&amp;"; break;
            case '<': o += "&lt;"; break;
            case '>': o += "&gt;"; break;
            case '"': o += "&quot;"; break;
            case '\'': o += "&#39;"; break;
            default: o.push_back(c);
        }
    }
    return o;
}


std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

response page(int status, std::string_view title, std::string_view body_html) {
    response r;
    r.status = status;
    r.content_type = "text/html; charset=utf-8";
    r.body = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             "<meta name=\"robots\" content=\"noindex\"><title>" +
             std::string(title) +
             "</title><style>body{font-family:sans-serif;max-width:32em;margin:4em auto;padding:0 1em}"
             "button{font-size:1.1em;padding:.5em 1.2em}</style></head><body><h1>" +
             std::string(title) + "</h1>\n" + std::string(body_html) + "\n</body></html>\n";
    // Nothing from elsewhere, no framing (a click cannot be stolen), the form posts here only.
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'");
    r.headers.emplace_back("X-Frame-Options", "DENY");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
    return r;
}

response not_found() {
    return page(404, "Not found", "<p>This unsubscribe link is not valid. Use the link in the message as it came.</p>");
}

}  // namespace

bool one_click_body(std::string_view content_type, std::string_view body) {
    auto ct = base::lower(trim(content_type.substr(0, content_type.find(';'))));
    if (ct == "multipart/form-data") {
        // A part named List-Unsubscribe whose value is One-Click.
        auto lb = base::lower(body);
        for (std::size_t pos = 0; (pos = lb.find("name=\"list-unsubscribe\"", pos)) != std::string::npos; ++pos) {
            auto start = lb.find("\r\n\r\n", pos);
            std::size_t skip = 4;
            if (start == std::string::npos) {
                start = lb.find("\n\n", pos);
                skip = 2;
            }
            if (start == std::string::npos) return false;
            auto end = lb.find('\n', start + skip);
            if (trim(body.substr(start + skip, end == std::string::npos ? std::string_view::npos : end - start - skip)) ==
                "One-Click")
                return true;
        }
        return false;
    }
    if (!ct.empty() && ct != "application/x-www-form-urlencoded") return false;
    // key=value pairs separated by '&'; one of them must be the pair.
    std::string_view rest = trim(body);
    while (!rest.empty()) {
        auto amp = rest.find('&');
        auto pair = rest.substr(0, amp);
        if (pair == "List-Unsubscribe=One-Click") return true;
        if (amp == std::string_view::npos) break;
        rest.remove_prefix(amp + 1);
    }
    return false;
}

response unsubscribe_page::answer(const request& req) const {
    if (req.path.size() <= prefix_.size() || req.path.compare(0, prefix_.size(), prefix_) != 0) return not_found();
    std::string_view token = std::string_view(req.path).substr(prefix_.size());
    if (token.find('/') != std::string_view::npos) return not_found();
    auto t = tokens_.verify(token);
    if (!t) return not_found();
    std::string who = html_escape(t->recipient);
    std::string what = t->campaign.empty() ? "" : " (" + html_escape(t->campaign) + ")";
    if (req.method == "GET") {
        // The form posts what a mailbox provider's one-click POST sends.
        return page(200, "Unsubscribe",
                    "<p>Stop sending mail from this sender" + what + " to <b>" + who +
                        "</b>?</p>\n<form method=\"post\">"
                        "<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"
                        "<button type=\"submit\" id=\"confirm\">Unsubscribe</button></form>");
    }
    if (req.method != "POST") {
        auto r = page(405, "Method not allowed", "<p>Use the link in the message.</p>");
        r.headers.emplace_back("Allow", "GET, HEAD, POST");
        return r;
    }
    if (!one_click_body(req.content_type, req.body))
        return page(400, "Bad request", "<p>An unsubscribe is posted with the body List-Unsubscribe=One-Click (RFC 8058).</p>");
    if (auto why = act_(*t); !why.empty())
        return page(503, "Try again later", "<p>Your request could not be recorded just now. Please try again.</p>");
    return page(200, "Unsubscribed", "<p><b>" + who + "</b> will get no more mail from this sender" + what + ".</p>");
}

}  // namespace ricochet::http
