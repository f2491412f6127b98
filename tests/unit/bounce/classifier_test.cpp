// Tests for bounce/classifier.hpp: the shipped rules against a table of real
// replies (tests/unit/bounce/data/replies.tsv, each with its source), the
// fallbacks, final soft replies, and the rules loader's errors.
#include "bounce/classifier.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

using namespace ricochet::bounce;

namespace {
classifier shipped() {
    classifier c;
    std::string err;
    EXPECT_TRUE(c.load(std::string(RICOCHET_SOURCE_DIR) + "/etc/bounce-rules.toml", err)) << err;
    c.set_final_soft({"mailbox full", "over quota", "quota exceeded", "mailbox disabled", "account disabled", "inactive"});
    c.set_trusted_domains({"gmail.com", "googlemail.com", "hotmail.com", "outlook.com", "yahoo.com"});  // as config's defaults
    return c;
}

// "report": a DSN that names no SMTP step (the guess is RCPT, unconfirmed).
stage parse_stage(const std::string& s) {
    if (s == "report") return stage::rcpt;
    for (auto st : {stage::dns, stage::connect, stage::greeting, stage::ehlo, stage::starttls, stage::tls, stage::mail,
                    stage::rcpt, stage::data, stage::end_of_data})
        if (to_string(st) == s) return st;
    ADD_FAILURE() << "unknown stage " << s;
    return stage::rcpt;
}
}  // namespace

// One row of replies.tsv: domain, stage ("report": a DSN that names no
// step), reply ("(no reply) ..." for a failure without one), kind/category,
// source, and optionally the report's Reporting-MTA.
struct reply_row {
    std::string domain, want, source, text;
    smtp_reply reply;
};

std::vector<reply_row> reply_rows(const std::string& file = "replies.tsv") {
    std::vector<reply_row> rows;
    std::ifstream in(std::string(RICOCHET_SOURCE_DIR) + "/tests/unit/bounce/data/" + file);
    EXPECT_TRUE(in);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::vector<std::string> f;
        std::stringstream ss(line);
        for (std::string part; std::getline(ss, part, '\t');) f.push_back(part);
        if (f.size() != 5u && f.size() != 6u) {
            ADD_FAILURE() << "bad row: " << line;
            continue;
        }
        reply_row row{f[0], f[3], f[4], f[2], {}};
        if (f[2].rfind("(no reply) ", 0) == 0) row.reply.lines.push_back(f[2].substr(11));
        else row.reply = parse_reply_text(f[2]);
        row.reply.at = parse_stage(f[1]);
        row.reply.stage_known = f[1] != "report";
        if (f.size() == 6) row.reply.reporter = f[5];
        rows.push_back(std::move(row));
    }
    return rows;
}

TEST(Classifier, RealWorldReplies) {
    auto c = shipped();
    int rows = 0, agree = 0;
    int read_hard = 0, read_hard_right = 0, labelled_hard = 0;  // the precision view
    for (auto& row : reply_rows()) {
        auto got = c.classify(row.reply, row.domain);
        std::string have = std::string(to_string(got.k)) + "/" + std::string(to_string(got.c));
        ++rows;
        bool want_hard = row.want.rfind("hard/", 0) == 0;
        labelled_hard += want_hard;
        if (got.k == kind::hard) {
            ++read_hard;
            read_hard_right += want_hard;
        }
        if (have == row.want) ++agree;
        else ADD_FAILURE() << "\"" << row.text << "\" (" << row.source << ")\n  got " << have << " (rule " << got.rule
                           << "), want " << row.want;
    }
    std::printf("bounce rules: %d of %d real-world replies classified as labelled (%.1f%%)\n", agree, rows,
                rows ? 100.0 * agree / rows : 0.0);
    std::printf("hard precision %d/%d, recall %d/%d\n", read_hard_right, read_hard, read_hard_right, labelled_hard);
    EXPECT_GE(rows, 200);
    // Of the replies read hard, at least 97% must be bad addresses: a hard
    // reading suppresses the address at once for a trusted domain.
    EXPECT_GE(100.0 * read_hard_right, 97.0 * read_hard);
    EXPECT_GE(100.0 * read_hard_right, 90.0 * labelled_hard);
}

// Every shipped rule says where its reading comes from, and decides at
// least one row of replies.tsv (so that no rule is there for nothing, and
// each is covered by a reply with its source).
TEST(Classifier, EveryRuleNamesItsSourceAndDecidesARow) {
    auto c = shipped();
    std::map<std::string, int> decided;
    for (auto& row : reply_rows()) {
        auto rule = c.classify(row.reply, row.domain).rule;
        decided[rule.substr(0, rule.find('@'))]++;
    }
    for (auto& r : c.rules()) {
        EXPECT_FALSE(r.source.empty()) << "rule " << r.name << " names no source";
        EXPECT_GT(decided[r.name], 0) << "rule " << r.name << " decides no row of replies.tsv";
    }
}

// documented-blind.tsv: replies providers and MTAs document, labelled from
// their documentation by someone who had not read the rules (a helper
// session, 2026-11-30). Measured, not required to agree row by row: its
// labels are one careful reading, some of them arguable. Read blind, the
// rules of 318f72a gave kinds 99/120 (82.5%) and hard precision 22/25; the
// evidence-based rules, before anything was fitted to this table, 102/120
// (85.0%) and 22/23; after its misses were read (README), 111/120, 24/24.
TEST(Classifier, DocumentedRepliesWrittenBlind) {
    auto c = shipped();
    int rows = 0, kinds = 0, categories = 0, read_hard = 0, read_hard_right = 0, labelled_hard = 0;
    for (auto& row : reply_rows("documented-blind.tsv")) {
        // A report's text quotes its reply somewhere inside ("host x said:
        // 550 5.1.1 ...", qmail's "(#5.1.1)"): the DSN reader finds the
        // first code; here the same, roughly.
        smtp_reply& r = row.reply;
        if (!r.code) {
            std::smatch m;
            static const std::regex code(R"((?:^|[\s:(])([45][0-9][0-9])[ -]+(?:([45]\.[0-9]{1,3}\.[0-9]{1,3})\b)?)");
            static const std::regex qmail(R"(\(#([45])\.([0-9]{1,3})\.([0-9]{1,3})\))");
            if (std::regex_search(row.text, m, code)) {
                r.code = std::stoi(m[1]);
                r.enhanced = m[2];
            } else if (std::regex_search(row.text, m, qmail)) {
                r.code = m[1] == "5" ? 550 : 450;
                r.enhanced = m[1].str() + "." + m[2].str() + "." + m[3].str();
            }
        }
        auto got = c.classify(r, row.domain);
        std::string want_kind = row.want.substr(0, row.want.find('/'));
        ++rows;
        kinds += want_kind == to_string(got.k);
        categories += row.want == std::string(to_string(got.k)) + "/" + std::string(to_string(got.c));
        labelled_hard += want_kind == "hard";
        if (got.k == kind::hard) {
            ++read_hard;
            read_hard_right += want_kind == "hard";
        }
    }
    std::printf("documented replies written blind: %d rows, kinds %d (%.1f%%), categories %d, hard precision %d/%d, recall %d/%d\n",
                rows, kinds, 100.0 * kinds / rows, categories, read_hard_right, read_hard, read_hard_right, labelled_hard);
    EXPECT_GE(rows, 100);
    EXPECT_GE(100 * kinds, 85 * rows);                   // floors: the figures in the README, rounded down
    EXPECT_GE(100 * read_hard_right, 95 * read_hard);
}

TEST(Classifier, RetryFollowsTheFirstDigitExceptFinalSoft) {
    auto c = shipped();
    struct { std::string reply; bool retry; } rows[] = {
        {"451 4.3.0 temporary failure, try again later", true},
        {"421 4.7.0 [TSS04] Messages temporarily deferred due to user complaints", true},
        {"452 4.2.2 The email account that you tried to reach is over quota.", false},  // final soft
        {"450 4.2.1 mailbox disabled", false},
        {"550 5.1.1 user unknown", false},
        {"550 5.7.26 DMARC policy", false},
    };
    for (auto& r : rows) EXPECT_EQ(c.classify(parse_reply_text(r.reply), "example.com").retry, r.retry) << r.reply;
    smtp_reply none = smtp_reply::none(stage::connect, "socket error 113");
    auto got = c.classify(none, "example.com");
    EXPECT_TRUE(got.retry);
    EXPECT_EQ(got.rule, "no-reply:connect");
}

TEST(Classifier, FallbacksWhenNoRuleMatches) {
    classifier empty;  // no rules at all: only the code tables
    struct { std::string reply; std::string want; std::string rule; } rows[] = {
        {"550 5.1.1 xyzzy", "user-unknown", "enhanced:5.1.1"},
        {"452 4.2.2 xyzzy", "mailbox-full", "enhanced:4.2.2"},
        {"550 5.7.23 xyzzy", "auth-failure", "enhanced:5.7.23"},
        {"550 5.7.99 xyzzy", "policy", "enhanced:5.7.99"},
        {"554 xyzzy", "policy", "code:554"},
        {"552 xyzzy", "mailbox-full", "code:552"},
        {"421 xyzzy", "rate-limited", "code:421"},
        {"599 xyzzy", "policy", "code:599"},  // no reason given: never a bad address
        {"550 xyzzy", "policy", "code:550"},
        {"550 5.0.0 xyzzy", "policy", "enhanced:5.0.0"},
        {"550 5.2.0 xyzzy", "inactive-mailbox", "enhanced:5.2.0"},  // X.2.0: the mailbox exists (RFC 3463)
        {"451 5.1.1 class does not match the code", "temp-domain-failure", "code:451"},
    };
    for (auto& r : rows) {
        auto got = empty.classify(parse_reply_text(r.reply), "example.com");
        EXPECT_EQ(to_string(got.c), r.want) << r.reply;
        EXPECT_EQ(got.rule, r.rule) << r.reply;
    }
}

TEST(Classifier, AddressesInRepliesAreNotReasons) {
    auto c = shipped();
    for (std::string reply : {"550 5.1.1 <nospam@example.org>: Recipient address rejected: User unknown",
                              "550 5.1.1 <jane@marbleworks.com>: Recipient address rejected: User unknown"}) {
        auto got = c.classify(parse_reply_text(reply), "example.org");
        EXPECT_EQ(to_string(got.c), "user-unknown") << reply << " (rule " << got.rule << ")";
    }
}

TEST(Classifier, FallbacksBeforeRcptNeverCountAgainstTheAddress) {
    classifier empty;
    auto r = parse_reply_text("550 5.1.0 Address rejected");
    r.at = stage::mail;
    auto got = empty.classify(r, "gmail.com");
    EXPECT_EQ(got.k, kind::block) << got.rule;
    r = parse_reply_text("451 4.3.0 xyzzy");
    r.at = stage::greeting;
    EXPECT_EQ(empty.classify(r, "gmail.com").k, kind::technical);
}

TEST(Classifier, UserUnknownAfterDataIsAFilterUnlessItSaysX11) {
    auto c = shipped();
    auto at_end = [&](std::string text) {
        auto r = parse_reply_text(text);
        r.at = stage::end_of_data;
        return c.classify(r, "example.com");
    };
    EXPECT_EQ(at_end("550 User unknown").k, kind::block) << "no enhanced code at all must not crash, and reads as a filter";
    EXPECT_EQ(at_end("550 5.2.1 <a@example.com>... User Unknown").k, kind::block);
    EXPECT_EQ(at_end("550 5.1.1 <a@example.com>... User Unknown").k, kind::hard) << "an explicit 5.1.1 is believed";
}

// "User unknown" is believed on evidence; without any, in a report that
// names no step, it reads soft (counted as a bounce, not held at once).
TEST(Classifier, UserUnknownNeedsEvidence) {
    auto c = shipped();
    auto read = [&](std::string text, std::string_view domain, bool stage_known, bool confirmed = false) {
        auto r = parse_reply_text(text);
        r.stage_known = stage_known;
        r.address_confirmed = confirmed;
        return c.classify(r, domain);
    };
    EXPECT_EQ(read("550 5.0.0 <u@example.com>: User unknown", "example.com", true).k, kind::hard) << "in reply to RCPT TO";
    auto unconfirmed = read("550 5.0.0 <u@example.com>: User unknown", "example.com", false);
    EXPECT_EQ(unconfirmed.k, kind::soft);
    EXPECT_EQ(unconfirmed.rule, "user-unknown@unconfirmed");
    EXPECT_FALSE(unconfirmed.retry) << "a 5xx is final for this message whatever the reading";
    EXPECT_EQ(read("550 5.1.1 <u@example.com>: User unknown", "example.com", false).k, kind::hard) << "X.1.1";
    EXPECT_EQ(read("550 5.0.0 <u@gmail.com>: User unknown", "gmail.com", false).k, kind::hard) << "a trusted domain";
    EXPECT_EQ(read("554 5.0.0 delivery error: this user doesn't have an account", "example.com", false, true).k, kind::hard)
        << "the report's own verdict (PowerMTA bad-mailbox)";
    EXPECT_EQ(read("550 5.2.1 <u@example.com>... User Unknown", "example.com", false, true).k, kind::hard);
    EXPECT_EQ(read("550 5.2.1 <u@example.com>... User Unknown", "example.com", false).c, category::inactive_mailbox);
    // A rule the classifier is given without trusted domains trusts none.
    classifier plain;
    std::string err;
    ASSERT_TRUE(plain.load(std::string(RICOCHET_SOURCE_DIR) + "/etc/bounce-rules.toml", err)) << err;
    auto r = parse_reply_text("550 5.0.0 User unknown");
    r.stage_known = false;
    EXPECT_EQ(plain.classify(r, "gmail.com").k, kind::soft);
}

TEST(Classifier, ConditionsAndScope) {
    classifier c;
    rule r;
    r.name = "gmail-only";
    r.domains = {"gmail.com"};
    r.codes = {550};
    r.stages = {stage::end_of_data};
    r.needles = split_pattern("Foo | BAR");
    r.cat = category::reputation;
    c.add(r);
    auto at = [&](std::string_view domain, stage st, std::string text) {
        auto rep = parse_reply_text(text);
        rep.at = st;
        return c.classify(rep, domain);
    };
    EXPECT_EQ(at("gmail.com", stage::end_of_data, "550 bar!").rule, "gmail-only");
    EXPECT_EQ(at("sub.gmail.com", stage::end_of_data, "550 foo").rule, "gmail-only") << "subdomains match";
    EXPECT_NE(at("notgmail.com", stage::end_of_data, "550 foo").rule, "gmail-only");
    EXPECT_NE(at("gmail.com", stage::rcpt, "550 foo").rule, "gmail-only");
    EXPECT_NE(at("gmail.com", stage::end_of_data, "551 foo").rule, "gmail-only");
    EXPECT_NE(at("gmail.com", stage::end_of_data, "550 baz").rule, "gmail-only");
    auto g = at("gmail.com", stage::end_of_data, "550 foo");
    EXPECT_EQ(g.k, kind::block);
    EXPECT_EQ(g.s, scope::destination) << "reputation slows the whole destination";
}

TEST(Classifier, LoaderNamesLineAndKey) {
    struct { std::string text, want; } rows[] = {
        {"[[rule]]\nname = \"x\"\ncategory = \"nope\"\n", ":3: rule x: category: unknown category"},
        {"[[rule]]\nname = \"x\"\ncategory = \"policy\"\nstage = \"later\"\n", ":4: rule x: stage: unknown stage"},
        {"[[rule]]\nname = \"x\"\ncategory = \"policy\"\ncode = [999]\n", ":4: rule x: code: expected SMTP reply codes"},
        {"[[rule]]\ncategory = \"policy\"\n", "rule.name: missing"},
        {"[[rule]]\nname = \"x\"\ncategory = \"policy\"\npatern = \"a\"\n", ":4: rule.patern: unknown key"},
        {"[rules]\n", "rules: unknown key"},
        {"[[rule]]\nname = \"x\"\ncategory = \"policy\"\nconfirmed = \"yes\"\n", ":4: rule x: confirmed: expected true or false"},
        {"[[rule]]\nname = \"x\"\ncategory = \"policy\"\nreporter = 7\n", "rule x: reporter: expected strings"},
    };
    for (auto& r : rows) {
        auto path = std::filesystem::temp_directory_path() / ("rules-" + std::to_string(::getpid()) + ".toml");
        std::ofstream(path) << r.text;
        classifier c;
        std::string err;
        EXPECT_FALSE(c.load(path, err)) << r.text;
        EXPECT_NE(err.find(r.want), std::string::npos) << "got \"" << err << "\", want \"" << r.want << "\"";
        std::filesystem::remove(path);
    }
}
