// classifier — turns one reply (or failure without reply) into a decision:
// kind and category (bounce_kind.hpp), scope, whether this message may be
// retried, and the name of the rule that decided.
//
// Rules come from etc/bounce-rules.toml: ordered, first match wins, each with
// optional conditions on reply code, enhanced status (RFC 3463; prefixes such
// as "5.7." allowed), recipient domain (and its subdomains), stage, and a
// case-insensitive pattern of substrings separated by "|". They are compiled
// once at start. A reply no rule matches falls back on its enhanced code,
// then on its basic code (RFC 3463 and RFC 5321 4.2.3 tables in
// classifier.cpp). Retry is decided by the first digit; a 4xx whose text
// matches bounce.final_soft, or whose category is mailbox-full or
// inactive-mailbox, is not retried.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "bounce/bounce_kind.hpp"
#include "bounce/needle_set.hpp"
#include "bounce/smtp_reply.hpp"

namespace ricochet::bounce {

struct reply_facts {
    int code = 0;                // 0: no reply (DNS, connection, TLS, time-out)
    std::string_view enhanced;   // "5.1.1" or empty
    std::string_view text;       // the whole reply text, all lines
    stage at = stage::rcpt;
    std::string_view domain;     // the recipient's domain
    bool stage_known = true;     // false: a report that names no SMTP step (at is a guess)
    std::string_view reporter;   // the report's Reporting-MTA host; empty in our own sessions
    bool address_confirmed = false;  // the report's own verdict: the mailbox does not exist
};

struct classification {
    kind k = kind::soft;
    category c = category::other_temporary;
    scope s = scope::recipient;
    bool retry = true;    // may this message be tried again?
    std::string rule;     // rule name, or "enhanced:5.1.1" / "code:550" / "no-reply:connect" for fallbacks
};

struct rule {
    std::string name;
    std::vector<int> codes;
    std::vector<std::string> enhanced;  // exact ("5.7.26") or prefix ending in "." ("5.7.")
    std::vector<std::string> domains;
    std::vector<stage> stages;
    std::vector<std::string> needles;   // lower-case substrings; one must occur
    category cat = category::other_permanent;
    std::vector<std::string> reporters;  // Reporting-MTA host or a parent domain of it (reports only)
    std::string source;  // where the rule's reading comes from (RFC, provider documentation, MTA source)
    // The words are a vendor's fixed text for X.1.1 (bad destination
    // mailbox): evidence like the code itself ("user unknown" needs some).
    bool confirmed = false;
};

class classifier {
public:
    // Loads an ordered rules file. False with "FILE:LINE: what" on a mistake.
    bool load(const std::filesystem::path& file, std::string& error);
    void add(rule r) {
        rules_.push_back(std::move(r));
        compile();
    }
    void set_final_soft(const std::vector<std::string>& patterns);
    // Domains whose "user unknown" is believed without further evidence
    // (bounce.trusted_domains): their servers answer at RCPT and precisely.
    void set_trusted_domains(const std::vector<std::string>& domains);
    std::size_t size() const { return rules_.size(); }
    const std::vector<rule>& rules() const { return rules_; }
    void set_rules(std::vector<rule> rules) {
        rules_ = std::move(rules);
        compile();
    }

    classification classify(const reply_facts& f) const;
    classification classify(const smtp_reply& r, std::string_view domain) const;

private:
    bool load_rules(const std::filesystem::path& file, std::string& error);
    void compile();  // every rule's needles and final_soft_ into one needle_set

    std::vector<rule> rules_;
    std::vector<std::string> final_soft_;  // lower-case
    std::vector<std::string> trusted_;     // lower-case
    needle_set needles_;
    std::vector<std::vector<std::uint32_t>> rule_needles_;  // per rule: its ids in needles_
    std::vector<std::uint32_t> final_soft_ids_;
};

// Splits pattern "a|b|c" into lower-case needles, trimmed, empty ones dropped.
std::vector<std::string> split_pattern(std::string_view pattern);

// "550 5.1.1 user unknown" -> code 550, enhanced 5.1.1 (for `bounce classify`).
smtp_reply parse_reply_text(std::string_view text);

}  // namespace ricochet::bounce
