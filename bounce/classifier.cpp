// classifier — see classifier.hpp.
#include "bounce/classifier.hpp"

#include <algorithm>
#include <cctype>
#include <toml++/toml.h>

namespace ricochet::bounce {
namespace {

// Lower case for matching: ASCII, and the capitals of the two scripts
// whose notices start sentences with them in the rules' languages: Latin-1
// (U+00C0-U+00DE but U+00D7: "État", "Überschritten") and Cyrillic
// (U+0410-U+042F: "Пользователь"). Other bytes are kept, so UTF-8 stays
// valid; CJK, Arabic and Persian have no case.
std::string lower(std::string_view s) {
    std::string o(s);
    for (std::size_t i = 0; i < o.size(); ++i) {
        auto c = static_cast<unsigned char>(o[i]);
        if (c >= 'A' && c <= 'Z') {
            o[i] = static_cast<char>(c - 'A' + 'a');
        } else if (i + 1 < o.size()) {
            auto d = static_cast<unsigned char>(o[i + 1]);
            if (c == 0xC3 && d >= 0x80 && d <= 0x9E && d != 0x97) {
                o[i + 1] = static_cast<char>(d + 0x20);
                ++i;
            } else if (c == 0xD0 && d >= 0x90 && d <= 0x9F) {  // А-П -> а-п
                o[i + 1] = static_cast<char>(d + 0x20);
                ++i;
            } else if (c == 0xD0 && d >= 0xA0 && d <= 0xAF) {  // Р-Я -> р-я (D1 80-8F)
                o[i] = static_cast<char>(0xD1);
                o[i + 1] = static_cast<char>(d - 0x20);
                ++i;
            }
        }
    }
    return o;
}

bool domain_matches(std::string_view domain, const std::string& want) {
    if (domain.size() == want.size()) return domain == want;
    return domain.size() > want.size() && domain.substr(domain.size() - want.size()) == want &&
           domain[domain.size() - want.size() - 1] == '.';
}

bool enhanced_matches(std::string_view have, const std::string& want) {
    if (!want.empty() && want.back() == '.') return have.substr(0, want.size()) == want;
    return have == want;
}

// RFC 3463 3.x subject.detail -> category, for permanent (5) and transient (4).
struct enhanced_row {
    std::string_view subject_detail;
    category perm, temp;
};
constexpr enhanced_row enhanced_table[] = {
    {"0.0", category::policy, category::other_temporary},  // "other undefined status": no reason given
    {"1.0", category::other_permanent, category::other_temporary},
    {"1.1", category::user_unknown, category::other_temporary},
    {"1.2", category::domain_unknown, category::temp_domain_failure},
    {"1.3", category::bad_syntax, category::other_temporary},
    {"1.4", category::user_unknown, category::other_temporary},
    {"1.5", category::other_permanent, category::other_temporary},
    {"1.6", category::user_unknown, category::other_temporary},  // mailbox has moved
    {"1.7", category::policy, category::policy},                 // bad sender address syntax
    {"1.8", category::policy, category::policy},                 // bad sender's system address
    {"1.10", category::domain_unknown, category::domain_unknown},  // RFC 7505 null MX
    // X.2.0: "the mailbox exists, but something about the destination
    // mailbox has caused the sending of this DSN" (RFC 3463 3.3).
    {"2.0", category::inactive_mailbox, category::other_temporary},
    {"2.1", category::inactive_mailbox, category::inactive_mailbox},
    {"2.2", category::mailbox_full, category::mailbox_full},
    {"2.3", category::message_too_large, category::message_too_large},
    {"2.4", category::policy, category::other_temporary},  // mailing list expansion problem
    {"3.0", category::temp_domain_failure, category::temp_domain_failure},  // the receiving system's trouble
    {"3.1", category::temp_domain_failure, category::temp_domain_failure},
    {"3.2", category::temp_domain_failure, category::temp_domain_failure},
    {"3.3", category::protocol_error, category::protocol_error},
    {"3.4", category::message_too_large, category::message_too_large},
    {"3.5", category::temp_domain_failure, category::temp_domain_failure},  // system incorrectly configured
    {"4.0", category::network_error, category::network_error},
    {"4.1", category::network_error, category::network_error},
    {"4.2", category::network_error, category::network_error},
    {"4.3", category::temp_domain_failure, category::temp_domain_failure},
    {"4.4", category::domain_unknown, category::temp_domain_failure},
    {"4.5", category::rate_limited, category::rate_limited},
    {"4.6", category::network_error, category::network_error},
    {"4.7", category::other_temporary, category::other_temporary},
    {"5.0", category::protocol_error, category::protocol_error},
    {"5.1", category::protocol_error, category::protocol_error},
    {"5.2", category::protocol_error, category::protocol_error},
    {"5.3", category::policy, category::other_temporary},  // too many recipients
    {"5.4", category::protocol_error, category::protocol_error},
    {"5.5", category::protocol_error, category::protocol_error},
    {"5.6", category::protocol_error, category::protocol_error},
    {"6.0", category::protocol_error, category::protocol_error},
    {"7.0", category::policy, category::policy},
    {"7.1", category::policy, category::policy},
    {"7.2", category::policy, category::policy},
    {"7.7", category::policy, category::policy},
    {"7.8", category::auth_failure, category::auth_failure},
    {"7.9", category::auth_failure, category::auth_failure},
    {"7.10", category::tls_failure, category::tls_failure},
    {"7.11", category::tls_failure, category::tls_failure},
    {"7.20", category::auth_failure, category::auth_failure},  // RFC 7372: DKIM
    {"7.21", category::auth_failure, category::auth_failure},
    {"7.22", category::auth_failure, category::auth_failure},
    {"7.23", category::auth_failure, category::auth_failure},  // SPF
    {"7.24", category::auth_failure, category::auth_failure},
    {"7.25", category::policy, category::policy},              // reverse DNS
    {"7.26", category::auth_failure, category::auth_failure},  // multiple checks (DMARC)
    {"7.27", category::policy, category::policy},              // sender has null MX
};

std::optional<category> from_enhanced(std::string_view enhanced) {
    if (enhanced.size() < 5) return std::nullopt;
    bool perm = enhanced[0] == '5';
    std::string_view sd = enhanced.substr(2);
    for (auto& r : enhanced_table)
        if (r.subject_detail == sd) return perm ? r.perm : r.temp;
    // Unknown detail: judge by subject (RFC 3463 3.x: X.<subject>.0 is the generic one).
    auto dot = sd.find('.');
    std::string generic = std::string(sd.substr(0, dot)) + ".0";
    if (sd.substr(0, dot) == "7") return category::policy;
    for (auto& r : enhanced_table)
        if (r.subject_detail == generic) return perm ? r.perm : r.temp;
    return std::nullopt;
}

// RFC 5321 4.2.3 basic codes, when nothing better is known.
category from_code(int code) {
    switch (code) {
        case 421: return category::rate_limited;  // "service not available, closing": mostly throttling
        case 450: return category::other_temporary;
        case 451: return category::temp_domain_failure;
        case 452: return category::other_temporary;
        // A bare 550 ("Rejected", "Blocked") gives no reason: it may refuse
        // the sender as well as the address, so it never suppresses one.
        case 550: return category::policy;
        case 551: return category::user_unknown;
        case 552: return category::mailbox_full;
        case 553: return category::bad_syntax;
        case 554: return category::policy;
        case 500: case 501: case 502: case 503: case 504: case 555: return category::protocol_error;
        default: return code >= 500 ? category::policy : category::other_temporary;
    }
}

category from_no_reply(stage at) {
    switch (at) {
        case stage::dns: return category::temp_domain_failure;
        case stage::starttls:
        case stage::tls: return category::tls_failure;
        default: return category::network_error;
    }
}
}  // namespace

std::vector<std::string> split_pattern(std::string_view pattern) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= pattern.size()) {
        auto bar = pattern.find('|', start);
        auto part = pattern.substr(start, bar == std::string_view::npos ? std::string_view::npos : bar - start);
        while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
        while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
        if (!part.empty()) out.push_back(lower(part));
        if (bar == std::string_view::npos) break;
        start = bar + 1;
    }
    return out;
}

void classifier::set_trusted_domains(const std::vector<std::string>& domains) {
    trusted_.clear();
    for (auto& d : domains) trusted_.push_back(lower(d));
}

void classifier::set_final_soft(const std::vector<std::string>& patterns) {
    final_soft_.clear();
    for (auto& p : patterns)
        for (auto& n : split_pattern(p)) final_soft_.push_back(n);
    compile();
}

void classifier::compile() {
    std::vector<std::string> all;
    rule_needles_.assign(rules_.size(), {});
    for (std::size_t i = 0; i < rules_.size(); ++i)
        for (auto& n : rules_[i].needles) {
            rule_needles_[i].push_back(static_cast<std::uint32_t>(all.size()));
            all.push_back(n);
        }
    final_soft_ids_.clear();
    for (auto& n : final_soft_) {
        final_soft_ids_.push_back(static_cast<std::uint32_t>(all.size()));
        all.push_back(n);
    }
    needles_.build(all);
}

bool classifier::load(const std::filesystem::path& file, std::string& error) {
    bool ok = load_rules(file, error);
    compile();  // whatever was read, the needle set matches the rules
    return ok;
}

bool classifier::load_rules(const std::filesystem::path& file, std::string& error) {
    rules_.clear();
    auto where = [&](const toml::node& n) {
        return file.string() + ":" + std::to_string(n.source().begin.line) + ": ";
    };
    try {
        toml::table root = toml::parse_file(file.string());
        for (auto&& [k, v] : root)
            if (k.str() != "rule") {
                error = where(v) + std::string(k.str()) + ": unknown key (expected [[rule]] tables)";
                return false;
            }
        auto* arr = root.get("rule");
        if (!arr) return true;
        if (!arr->is_array_of_tables()) {
            error = where(*arr) + "rule: expected [[rule]] tables";
            return false;
        }
        for (auto& node : *arr->as_array()) {
            auto& t = *node.as_table();
            rule r;
            auto strs = [&](std::string_view key, std::vector<std::string>& out) -> bool {
                auto* n = t.get(key);
                if (!n) return true;
                if (n->is_string()) { out.push_back(n->as_string()->get()); return true; }
                if (!n->is_array()) return false;
                for (auto& e : *n->as_array()) {
                    if (!e.is_string()) return false;
                    out.push_back(e.as_string()->get());
                }
                return true;
            };
            for (auto&& [k, v] : t) {
                std::string_view key = k.str();
                if (key != "name" && key != "code" && key != "enhanced" && key != "domain" && key != "stage" &&
                    key != "pattern" && key != "category" && key != "note" && key != "source" &&
                    key != "confirmed" && key != "reporter") {
                    error = where(v) + "rule." + std::string(key) + ": unknown key";
                    return false;
                }
            }
            if (auto* n = t.get("name"); n && n->is_string()) r.name = n->as_string()->get();
            if (auto* n = t.get("source"); n && n->is_string()) r.source = n->as_string()->get();
            if (auto* n = t.get("confirmed")) {
                if (!n->is_boolean()) {
                    error = where(*n) + "rule " + r.name + ": confirmed: expected true or false";
                    return false;
                }
                r.confirmed = n->as_boolean()->get();
            }
            if (r.name.empty()) {
                error = where(t) + "rule.name: missing";
                return false;
            }
            auto bad = [&](std::string_view key, std::string what) {
                auto* n = t.get(key);
                error = where(n ? *n : static_cast<const toml::node&>(t)) + "rule " + r.name + ": " + std::string(key) + ": " + what;
                return false;
            };
            if (auto* n = t.get("code")) {
                auto add = [&](const toml::node& e) {
                    if (!e.is_integer()) return false;
                    auto v = e.as_integer()->get();
                    if (v < 200 || v > 599) return false;
                    r.codes.push_back(static_cast<int>(v));
                    return true;
                };
                bool ok = n->is_array() ? std::all_of(n->as_array()->begin(), n->as_array()->end(), add) : add(*n);
                if (!ok) return bad("code", "expected SMTP reply codes (200-599)");
            }
            if (!strs("enhanced", r.enhanced)) return bad("enhanced", "expected strings such as \"5.1.1\" or \"5.7.\"");
            std::vector<std::string> domains, stages, patterns;
            if (!strs("domain", domains)) return bad("domain", "expected strings");
            for (auto& d : domains) r.domains.push_back(lower(d));
            std::vector<std::string> reporters;
            if (!strs("reporter", reporters)) return bad("reporter", "expected strings");
            for (auto& d : reporters) r.reporters.push_back(lower(d));
            if (!strs("stage", stages)) return bad("stage", "expected strings");
            for (auto& s : stages) {
                bool found = false;
                for (auto st : {stage::dns, stage::connect, stage::greeting, stage::ehlo, stage::starttls, stage::tls,
                                stage::mail, stage::rcpt, stage::data, stage::end_of_data, stage::quit})
                    if (to_string(st) == s) { r.stages.push_back(st); found = true; }
                if (!found) return bad("stage", "unknown stage \"" + s + "\"");
            }
            if (!strs("pattern", patterns)) return bad("pattern", "expected a string");
            for (auto& p : patterns)
                for (auto& n : split_pattern(p)) r.needles.push_back(n);
            std::string cat;
            if (auto* n = t.get("category"); n && n->is_string()) cat = n->as_string()->get();
            auto c = parse_category(cat);
            if (!c) return bad("category", "unknown category \"" + cat + "\"");
            r.cat = *c;
            rules_.push_back(std::move(r));
        }
    } catch (const toml::parse_error& e) {
        error = file.string() + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description());
        return false;
    }
    return true;
}

// Addresses in a reply ("<nospam@example.org>", "jane@marbleworks.com")
// are blanked before patterns are matched, so a name never reads as a
// reason ("spam", "rbl").
std::string without_addresses(std::string text) {
    for (std::size_t at = text.find('@'); at != std::string::npos; at = text.find('@', at + 1)) {
        std::size_t b = at, e = at + 1;
        auto part = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("._%+-=").find(c) != std::string_view::npos; };
        while (b > 0 && part(text[b - 1])) --b;
        while (e < text.size() && part(text[e])) ++e;
        std::fill(text.begin() + static_cast<long>(b), text.begin() + static_cast<long>(e), ' ');
    }
    return text;
}

classification classifier::classify(const reply_facts& f) const {
    classification out;
    std::string text = without_addresses(lower(f.text));
    std::string domain = lower(f.domain);
    std::string reporter = lower(f.reporter);
    thread_local std::vector<std::uint8_t> hit;
    needles_.match(text, hit);
    bool matched = false;
    const rule* by = nullptr;
    for (std::size_t ri = 0; ri < rules_.size(); ++ri) {
        auto& r = rules_[ri];
        if (!r.codes.empty() && std::find(r.codes.begin(), r.codes.end(), f.code) == r.codes.end()) continue;
        if (!r.enhanced.empty() && std::none_of(r.enhanced.begin(), r.enhanced.end(),
                                                [&](auto& e) { return enhanced_matches(f.enhanced, e); }))
            continue;
        if (!r.domains.empty() && std::none_of(r.domains.begin(), r.domains.end(),
                                               [&](auto& d) { return domain_matches(domain, d); }))
            continue;
        if (!r.reporters.empty() && std::none_of(r.reporters.begin(), r.reporters.end(),
                                                 [&](auto& d) { return domain_matches(reporter, d); }))
            continue;
        if (!r.stages.empty() && std::find(r.stages.begin(), r.stages.end(), f.at) == r.stages.end()) continue;
        if (!r.needles.empty() && std::none_of(rule_needles_[ri].begin(), rule_needles_[ri].end(),
                                               [&](std::uint32_t id) { return hit[id] != 0; }))
            continue;
        out.c = r.cat;
        out.rule = r.name;
        matched = true;
        by = &r;
        break;
    }
    if (!matched) {
        if (f.code == 0) {
            out.c = from_no_reply(f.at);
            out.rule = "no-reply:" + std::string(to_string(f.at));
        } else if (auto c = from_enhanced(f.enhanced); c && f.enhanced[0] - '0' == f.code / 100) {
            out.c = *c;
            out.rule = "enhanced:" + std::string(f.enhanced);
        } else {
            out.c = from_code(f.code);
            out.rule = "code:" + std::to_string(f.code);
        }
    }
    bool trusted = std::any_of(trusted_.begin(), trusted_.end(), [&](auto& d) { return domain_matches(domain, d); });
    // Before RCPT, a reply speaks about us (the connection, the sender), never
    // about the recipient: a fallback reading must not count against it.
    bool before_rcpt = f.at == stage::connect || f.at == stage::greeting || f.at == stage::ehlo || f.at == stage::mail;
    // A hard reading ("invalid domain name" in reply to our EHLO) never
    // applies to the recipient there, whichever rule made it.
    bool hard = kind_of(out.c) == kind::hard;
    // RFC 7504's 521 ("this host does not accept mail") is the one greeting
    // that speaks of the destination: its domain takes no mail at all.
    bool host_refuses_all = f.code == 521 && out.c == category::domain_unknown;
    if ((!matched || f.at == stage::mail || hard) && before_rcpt && f.code != 0 && !host_refuses_all &&
        (hard || kind_of(out.c) == kind::soft) && out.c != category::message_too_large) {
        out.c = f.code >= 500 ? category::policy : category::network_error;
        out.rule += "@" + std::string(to_string(f.at));
    }
    // After DATA the address was already taken: a reply no rule explains
    // refuses the message, and says nothing about the address.
    bool after_data = f.at == stage::data || f.at == stage::end_of_data;
    if (!matched && after_data && kind_of(out.c) == kind::hard) {
        out.c = category::policy;
        out.rule += "@" + std::string(to_string(f.at));
    }
    // "User unknown" after the message was sent, for an address the server
    // took at RCPT, is a filter speaking, not a bad address, unless the
    // server says so precisely with X.1.1 (bad destination mailbox), the
    // words are a vendor's fixed directory text, or the domain is trusted
    // (Yahoo documents "554 delivery error: dd This user doesn't have a
    // yahoo.com account" after DATA).
    if (f.at == stage::end_of_data && out.c == category::user_unknown && !trusted && !(by && by->confirmed) &&
        !(f.enhanced.size() == 5 && f.enhanced.compare(1, 4, ".1.1") == 0)) {
        out.c = category::policy;
        out.rule += "@end_of_data";
    }
    // The enhanced code weighs more than a generic phrase. Its subject
    // (RFC 3463 3.x) says what the trouble is: only X.1.x (addressing) and
    // X.0.x (undefined) may speak of a bad address; X.2 (mailbox), X.3
    // (the receiving system), X.4 (network and routing), X.5 (protocol),
    // X.6 (content) and X.7 (security and policy) do not, whatever words
    // come with them ("550 5.7.1 Recipient address rejected: ..."). Only a
    // specific detail counts: X.Y.0 is each subject's "other or undefined"
    // status, the catch-all servers send when they say nothing precise.
    // For X.2 (the mailbox's status) a "user unknown" in reply to RCPT TO
    // is the evidence that the mailbox is not there. A rule that names
    // enhanced codes itself has already weighed them.
    std::string_view enhanced = f.enhanced;
    bool code_agrees = enhanced.size() >= 5 && f.code != 0 && enhanced[0] - '0' == f.code / 100 && enhanced[1] == '.';
    char subject = code_agrees ? enhanced[2] : '0';
    bool specific = code_agrees && enhanced.substr(enhanced.find('.', 2) + 1) != "0";
    bool at_rcpt = f.stage_known && f.at == stage::rcpt;
    bool mailbox_gone = subject == '2' && out.c == category::user_unknown && (at_rcpt || f.address_confirmed);
    if (kind_of(out.c) == kind::hard && specific && subject != '0' && subject != '1' && !mailbox_gone &&
        (!by || by->enhanced.empty())) {
        if (auto c = from_enhanced(enhanced); c && *c != out.c) {
            out.c = *c;
            out.rule += "@" + std::string(enhanced);
        }
    }
    // "User unknown" is believed on evidence: the code says so precisely
    // (X.1.x), the reply answered RCPT TO (RFC 5321 3.3: where a server
    // says whether it knows the mailbox), or the domain is one trusted to
    // answer precisely, or the words are a vendor's fixed text for X.1.1
    // (a rule marked confirmed), or the report's own verdict says so
    // (PowerMTA's bad-mailbox). Without any of those (a report that names no step,
    // with X.0.0 or no code) a filter and a dead address read the same, and
    // the reading that does not suppress the address wins: soft, counted
    // as a bounce, held only when it repeats (bounce.held_after_bounces).
    // (A reply whose step is known and is not RCPT was read above.)
    if (out.c == category::user_unknown && subject != '1' && !f.stage_known && !trusted && !(by && by->confirmed) &&
        !f.address_confirmed) {
        out.c = category::other_temporary;
        out.rule += "@unconfirmed";
    }
    out.k = kind_of(out.c);
    out.s = scope_of(out.c);
    // The first digit decides for this message (RFC 5321 4.2.1); a transient
    // reply that says the mailbox is full or gone for good is final anyway.
    out.retry = f.code == 0 || (f.code >= 400 && f.code < 500);
    if (out.retry && f.code != 0) {
        if (out.c == category::mailbox_full || out.c == category::inactive_mailbox) out.retry = false;
        for (auto id : final_soft_ids_)
            if (hit[id]) out.retry = false;
    }
    return out;
}

classification classifier::classify(const smtp_reply& r, std::string_view domain) const {
    std::string text = r.text();
    return classify(reply_facts{r.code, r.enhanced, text, r.at, domain, r.stage_known, r.reporter, r.address_confirmed});
}

smtp_reply parse_reply_text(std::string_view text) {
    smtp_reply r;
    r.at = stage::rcpt;  // the usual place; callers that know better set it
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    if (text.size() >= 3 && std::all_of(text.begin(), text.begin() + 3, [](char c) { return c >= '0' && c <= '9'; }) &&
        (text.size() == 3 || text[3] == ' ' || text[3] == '-')) {
        r.code = (text[0] - '0') * 100 + (text[1] - '0') * 10 + (text[2] - '0');
        text.remove_prefix(std::min<std::size_t>(4, text.size()));
    }
    std::size_t len = 0;
    if (auto e = enhanced_code_prefix(text, r.code, len)) {
        r.enhanced = *e;
        text.remove_prefix(len);
    }
    r.lines.emplace_back(text);
    return r;
}

}  // namespace ricochet::bounce
