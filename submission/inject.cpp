// inject — see inject.hpp.
#include "submission/inject.hpp"

#include <openssl/rand.h>

#include <ctime>
#include <nlohmann/json.hpp>

#include "bounce/suppression_list.hpp"
#include "queue/clock.hpp"
#include "smtp/address.hpp"
#include "submission/compose.hpp"

namespace ricochet::submission {
using nlohmann::json;

std::optional<std::string> suppressed_because(const bounce::suppression_list& s, std::string_view address) {
    auto r = s.find(address);
    if (!r) {
        if (auto e = s.find_entry(address)) return "is on the suppression list (" + *e + ")";
        return std::nullopt;
    }
    if (r->status == bounce::address_status::held)
        return "is held after " + std::to_string(r->bounce_count) + " bounce(s)" +
               (r->last_category.empty() ? "" : " (last: " + r->last_category + ")");
    return std::string("has unsubscribed");
}

std::optional<std::string> suppression_entry_of(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.front() == '<')) text.remove_prefix(1);
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' || text.back() == '>'))
        text.remove_suffix(1);
    if (text.empty() || text.size() > 320) return std::nullopt;
    auto e = bounce::lower_address(text);
    if (e.front() == '@') {
        // "@domain": labels of letters, digits and hyphens (or UTF-8), at most 253 octets.
        std::string_view d(e);
        d.remove_prefix(1);
        if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.') return std::nullopt;
        std::size_t label = 0;
        for (char c : d) {
            if (c == '.') {
                if (label == 0) return std::nullopt;
                label = 0;
                continue;
            }
            bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || static_cast<unsigned char>(c) >= 0x80;
            if (!ok || ++label > 63) return std::nullopt;
        }
        return e;
    }
    if (!smtp::is_valid_mailbox(e)) return std::nullopt;
    return e;
}

namespace {

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
    return true;
}

std::string random_hex(std::size_t bytes) {
    unsigned char b[16] = {};
    RAND_bytes(b, static_cast<int>(bytes));
    static const char* d = "0123456789abcdef";
    std::string s;
    for (std::size_t i = 0; i < bytes; ++i) {
        s += d[b[i] >> 4];
        s += d[b[i] & 15];
    }
    return s;
}

// Raw content: bare LF and bare CR become CRLF (as on the submission port,
// so no receiver can read a smuggled end of data); lines over 998 octets
// and a missing header section are refused.
bool normalise(std::string_view in, std::string& out, std::string& error, bool whole_message = true) {
    out.clear();
    out.reserve(in.size() + in.size() / 40);
    std::size_t line = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
        char c = in[i];
        if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < in.size() && in[i + 1] == '\n') ++i;
            out += "\r\n";
            line = 0;
            continue;
        }
        if (c == '\0') {
            error = "content holds a NUL octet";
            return false;
        }
        if (++line > 998 && whole_message) {
            error = "content has a line longer than 998 octets (RFC 5322 2.1.1)";
            return false;
        }
        out += c;
    }
    if (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0) out += "\r\n";
    if (!whole_message) return true;  // a text or html part: GMime encodes its long lines
    // The header section: at least one field "Name: value" before the first empty line.
    auto first_colon = out.find(':');
    auto first_eol = out.find("\r\n");
    if (first_colon == std::string::npos || first_colon > first_eol || first_colon == 0) {
        error = "content does not start with a header field (RFC 5322 2.1)";
        return false;
    }
    for (std::size_t i = 0; i < first_colon; ++i)
        if (out[i] < 33 || out[i] > 126) {
            error = "content does not start with a header field (RFC 5322 2.1)";
            return false;
        }
    return true;
}

// Calls f(name, value) for each header field of a CRLF message (unfolded
// enough to compare names and read short values).
template <class F>
void each_header(std::string_view msg, F&& f) {
    std::size_t pos = 0;
    while (pos < msg.size()) {
        auto eol = msg.find("\r\n", pos);
        if (eol == std::string_view::npos || eol == pos) return;  // end of the header section
        auto line = msg.substr(pos, eol - pos);
        pos = eol + 2;
        if (line.front() == ' ' || line.front() == '\t') continue;  // a continuation
        auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        auto value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        f(line.substr(0, colon), value);
    }
}

std::optional<std::string> string_field(const body_json& body, const char* key, std::string& error, bool required) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) {
        if (required) error = std::string("missing \"") + key + "\"";
        return required ? std::nullopt : std::optional<std::string>(std::string());
    }
    if (!it->is_string()) {
        error = std::string("\"") + key + "\" must be a string";
        return std::nullopt;
    }
    return it->get<std::string>();
}

bool eight_bit(std::string_view s) {
    for (char c : s)
        if (static_cast<unsigned char>(c) >= 0x80) return true;
    return false;
}

}  // namespace

std::optional<injection> prepare_injection(const body_json& body, const inject_limits& lim,
                                           const bounce::suppression_list& suppression, const std::string& client_ip,
                                           const std::string& user, const std::function<std::string()>& new_id,
                                           std::int64_t now_ms, std::string& error) {
    if (!body.is_object()) {
        error = "the body must be a JSON object";
        return std::nullopt;
    }
    static const char* known[] = {"from", "to", "campaign", "content", "subject", "text", "html", "headers"};
    for (auto& [k, v] : body.items()) {
        bool ok = false;
        for (auto* n : known) ok = ok || k == n;
        if (!ok) {
            error = "unknown field \"" + k + "\"";
            return std::nullopt;
        }
    }
    auto from = string_field(body, "from", error, true);
    if (!from) return std::nullopt;
    injection inj;
    auto& env = inj.env;
    // "from" is the envelope sender and, for a built message, the From
    // header: an address, or "Name <address>" for the header.
    std::string sender = *from;
    if (auto lt = sender.rfind('<'); lt != std::string::npos && sender.back() == '>')
        sender = sender.substr(lt + 1, sender.size() - lt - 2);
    if (!sender.empty() && !smtp::is_valid_mailbox(sender)) {
        error = "\"from\" is not an address: " + *from;
        return std::nullopt;
    }
    env.sender = sender;

    auto to = body.find("to");
    if (to == body.end() || !to->is_array() || to->empty()) {
        error = "\"to\" must be a non-empty array of addresses";
        return std::nullopt;
    }
    if (to->size() > lim.max_recipients) {
        error = "too many recipients: " + std::to_string(to->size()) + " (at most " + std::to_string(lim.max_recipients) + ")";
        return std::nullopt;
    }
    std::vector<std::string> header_to;
    for (auto& r : *to) {
        if (!r.is_string()) {
            error = "\"to\" must be a non-empty array of addresses";
            return std::nullopt;
        }
        auto a = r.get<std::string>();
        smtp::parsed_path pp;
        if (smtp::parse_path("<" + a + ">", false, true, pp) != smtp::address_error::none) {
            error = "not an address in \"to\": " + a;
            return std::nullopt;
        }
        auto addr = pp.address();
        header_to.push_back(addr);
        if (pp.utf8) env.smtputf8 = true;
        if (auto why = suppressed_because(suppression, addr)) {
            inj.results.push_back({addr, "refused", "recipient " + *why});
            continue;
        }
        bool dup = false;
        for (auto& e : env.recipients) dup = dup || bounce::lower_address(e) == bounce::lower_address(addr);
        if (dup) {  // one copy per address, as an MTA collapses duplicate RCPTs
            inj.results.push_back({addr, "queued", "duplicate: the message goes to this address once"});
            continue;
        }
        env.recipients.push_back(addr);
        inj.results.push_back({addr, "queued", ""});
    }
    if (eight_bit(sender)) env.smtputf8 = true;

    auto campaign = string_field(body, "campaign", error, false);
    if (!campaign) return std::nullopt;
    if (campaign->size() > 200 || campaign->find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
        error = "\"campaign\" must be at most 200 characters on one line";
        return std::nullopt;
    }

    auto content = string_field(body, "content", error, false);
    if (!content) return std::nullopt;
    std::string id = env.recipients.empty() ? std::string() : new_id();
    std::string message;
    if (!content->empty()) {
        for (auto* k : {"subject", "text", "html", "headers"})
            if (body.contains(k)) {
                error = std::string("\"content\" and \"") + k + "\" exclude each other";
                return std::nullopt;
            }
        if (!normalise(*content, message, error)) return std::nullopt;
    } else {
        parts p;
        p.from = *from;
        p.to = header_to;
        auto subject = string_field(body, "subject", error, false);
        auto text = string_field(body, "text", error, false);
        auto html = string_field(body, "html", error, false);
        if (!subject || !text || !html) return std::nullopt;
        p.subject = *subject;
        std::string t, h;
        if (!text->empty() && !normalise(*text, t, error, false)) return std::nullopt;
        if (!html->empty() && !normalise(*html, h, error, false)) return std::nullopt;
        p.text = t;
        p.html = h;
        if (auto hs = body.find("headers"); hs != body.end() && !hs->is_null()) {
            if (!hs->is_object()) {
                error = "\"headers\" must be an object of strings";
                return std::nullopt;
            }
            for (auto& [k, v] : hs->items()) {
                if (!v.is_string()) {
                    error = "\"headers\" must be an object of strings";
                    return std::nullopt;
                }
                p.headers.emplace_back(k, v.get<std::string>());
            }
        }
        bool has_campaign_header = false;
        for (auto& [n, v] : p.headers) has_campaign_header = has_campaign_header || iequals(n, lim.campaign_header);
        if (!campaign->empty() && !has_campaign_header) p.headers.emplace_back(lim.campaign_header, *campaign);
        auto built = compose(p, (id.empty() ? random_hex(8) : id) + "." + random_hex(6) + "@" + lim.hostname, now_ms, error);
        if (!built) return std::nullopt;
        message = std::move(*built);
    }
    // Date and Message-ID when the content has none (RFC 6409 8.2, 8.3).
    bool has_date = false, has_id = false;
    std::string header_campaign;
    each_header(message, [&](std::string_view n, std::string_view v) {
        has_date = has_date || iequals(n, "Date");
        has_id = has_id || iequals(n, "Message-ID");
        if (header_campaign.empty() && iequals(n, lim.campaign_header)) {
            // As the submission port reads it: printable characters, trimmed, at most 200.
            for (char c : v.substr(0, 200))
                if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) header_campaign += c;
            while (!header_campaign.empty() && header_campaign.back() == ' ') header_campaign.pop_back();
        }
    });
    std::string added;
    if (!has_date) added += "Date: " + rfc5322_date(now_ms) + "\r\n";
    if (!has_id) added += "Message-ID: <" + (id.empty() ? random_hex(8) : id) + "." + random_hex(6) + "@" + lim.hostname + ">\r\n";
    message.insert(0, added);
    env.campaign = campaign->empty() ? header_campaign : *campaign;
    env.eightbit = eight_bit(message);

    std::string received = "Received: from api ([" + client_ip + "])\r\n\tby " + lim.hostname +
                           " (Ricochet) with HTTP" + (user.empty() ? "" : "A") + " id " + id +
                           (env.recipients.size() == 1 ? "\r\n\tfor <" + env.recipients[0] + ">" : "") + "; " +
                           rfc5322_date(now_ms) + "\r\n";
    if (received.size() + message.size() > lim.max_message_size) {
        error = "message size " + std::to_string(message.size()) + " exceeds " + std::to_string(lim.max_message_size) +
                " (submission.max_message_size)";
        return std::nullopt;
    }
    env.id = id;
    env.arrival_ms = now_ms;
    env.client = client_ip;
    env.helo = "api";
    env.auth_user = user;
    inj.content = env.recipients.empty() ? std::string() : received + message;
    return inj;
}

nlohmann::json injection_reply(const injection& inj) {
    json rs = json::array();
    for (auto& r : inj.results) {
        json o{{"address", r.address}, {"status", r.status}};
        if (!r.reason.empty()) o["reason"] = r.reason;
        rs.push_back(o);
    }
    return {{"queue_id", inj.env.id.empty() ? json(nullptr) : json(inj.env.id)}, {"recipients", rs}};
}

}  // namespace ricochet::submission
