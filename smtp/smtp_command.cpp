// smtp_command — see smtp_command.hpp.
#include "smtp/smtp_command.hpp"

#include <algorithm>
#include <charconv>

namespace ricochet::smtp {
namespace {
bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return (x >= 'a' && x <= 'z' ? x - 32 : x) == (y >= 'a' && y <= 'z' ? y - 32 : y);
           });
}
bool istarts(std::string_view s, std::string_view prefix) {
    return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}
std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}
param_error from_address_error(address_error e) {
    switch (e) {
        case address_error::none: return param_error::none;
        case address_error::too_long: return param_error::too_long;
        case address_error::non_ascii: return param_error::non_ascii;
        case address_error::syntax: break;
    }
    return param_error::bad_address;
}

// Splits "<path> P1 P2=V" into the path part (parsed by the caller) and the
// parameters that follow it.
struct param {
    std::string_view key, value;
    bool has_value;
};
template <class F>
param_error for_each_param(std::string_view rest, F&& f) {
    rest = trim(rest);
    while (!rest.empty()) {
        auto sp = rest.find(' ');
        std::string_view tok = rest.substr(0, sp);
        rest = sp == std::string_view::npos ? std::string_view{} : trim(rest.substr(sp + 1));
        auto eq = tok.find('=');
        param p{tok.substr(0, eq), eq == std::string_view::npos ? std::string_view{} : tok.substr(eq + 1),
                eq != std::string_view::npos};
        if (p.key.empty()) return param_error::syntax;
        if (auto e = f(p); e != param_error::none) return e;
    }
    return param_error::none;
}
}  // namespace

command parse_command(std::string_view line) {
    command c;
    auto sp = line.find(' ');
    c.name = line.substr(0, sp);
    c.arg = sp == std::string_view::npos ? std::string_view{} : trim(line.substr(sp + 1));
    static constexpr std::pair<std::string_view, verb> verbs[] = {
        {"HELO", verb::helo}, {"EHLO", verb::ehlo}, {"MAIL", verb::mail}, {"RCPT", verb::rcpt},
        {"DATA", verb::data}, {"BDAT", verb::bdat}, {"RSET", verb::rset}, {"NOOP", verb::noop},
        {"QUIT", verb::quit}, {"VRFY", verb::vrfy}, {"EXPN", verb::expn}, {"HELP", verb::help},
        {"STARTTLS", verb::starttls}, {"AUTH", verb::auth}};
    for (auto& [n, v] : verbs)
        if (iequals(c.name, n)) c.v = v;
    return c;
}

param_error parse_mail_from(std::string_view arg, mail_from& out, std::string& bad_param) {
    out = mail_from{};
    if (!istarts(arg, "FROM:")) return param_error::syntax;
    std::string_view rest = trim(arg.substr(5));
    // SMTPUTF8 must be known before the address is judged, so scan the
    // parameters first (they follow the path; the path itself has no spaces
    // outside quotes in practice, and quoted spaces are re-checked below).
    bool utf8 = false;
    {
        std::string_view s = rest;
        for (std::size_t pos; (pos = s.find(' ')) != std::string_view::npos;) {
            s = s.substr(pos + 1);
            auto tok = s.substr(0, s.find(' '));
            if (iequals(tok, "SMTPUTF8")) utf8 = true;
        }
    }
    auto aerr = parse_path(rest, /*allow_null=*/true, utf8, out.path);
    if (aerr != address_error::none) return from_address_error(aerr);
    std::string_view params = rest.substr(out.path.consumed);
    if (!params.empty() && params.front() != ' ') return param_error::syntax;
    return for_each_param(params, [&](const param& p) {
        bad_param = std::string(p.key);
        if (iequals(p.key, "SIZE")) {
            std::uint64_t v = 0;
            auto [ptr, ec] = std::from_chars(p.value.data(), p.value.data() + p.value.size(), v);
            if (!p.has_value || p.value.empty() || ec != std::errc() || ptr != p.value.data() + p.value.size())
                return param_error::bad_param_value;
            out.size = v;
        } else if (iequals(p.key, "BODY")) {
            if (iequals(p.value, "8BITMIME")) out.eightbit = true;
            else if (!iequals(p.value, "7BIT")) return param_error::bad_param_value;
        } else if (iequals(p.key, "SMTPUTF8")) {
            if (p.has_value) return param_error::bad_param_value;
            out.smtputf8 = true;
        } else if (iequals(p.key, "AUTH")) {
            // RFC 4954 5: accepted and not trusted; we record our own AUTH.
        } else {
            return param_error::unknown_param;
        }
        return param_error::none;
    });
}

param_error parse_rcpt_to(std::string_view arg, bool smtputf8, rcpt_to& out, std::string& bad_param) {
    out = rcpt_to{};
    if (!istarts(arg, "TO:")) return param_error::syntax;
    std::string_view rest = trim(arg.substr(3));
    auto aerr = parse_path(rest, /*allow_null=*/false, smtputf8, out.path);
    if (aerr != address_error::none) return from_address_error(aerr);
    std::string_view params = rest.substr(out.path.consumed);
    if (!params.empty() && params.front() != ' ') return param_error::syntax;
    return for_each_param(params, [&](const param& p) {
        bad_param = std::string(p.key);
        return param_error::unknown_param;  // no DSN extension (yet): no RCPT parameters
    });
}

}  // namespace ricochet::smtp
