// dsn_accuracy — runs the DSN parser and the shipped classifier over a folder
// of .eml bounces with a labels file (tests/data/bounces format, see its
// README) and prints how often they agree with the labels:
//   recipients  share of messages whose recipients are found: every
//               labelled address (the recipient column) among the records'
//               (case-insensitive), and, when some rows have no address, at
//               least as many distinct valid addresses as rows, each of them
//               standing literally in the message;
//   status      share of labelled status codes found (per row: row N
//               against record N; no record N is wrong);
//   kind        share of rows whose kind matches (corpus README mapping;
//               no record N is wrong);
//   hard        precision (of the rows read hard, the share labelled hard:
//               the addresses we would suppress wrongly) and recall (of the
//               rows labelled hard, the share read hard);
// plus a confusion table of kinds and the parser's speed.
//
// --folds K splits the corpus into K folds by message family (the MTA or
// vendor: the file name without "-NN.eml"), prints kinds and hard precision
// per fold and their spread, and for every rule of the rules file how many
// rows it decides rightly or wrongly in each fold (the rule removed, the
// rest kept): a rule that helps in one fold only was likely tuned to the
// messages of that family, and should rest on a documented source instead.
//
//   dsn_accuracy CORPUS_DIR RULES_FILE [--min-recipients P --min-status P --min-kind P
//                --min-hard-precision P --min-hard-recall P] [--list] [--folds K]
//
// With --min-*, exits 1 when a share is below P percent (used by a test so
// the figures cannot silently get worse).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "bounce/classifier.hpp"
#include "bounce/dsn_parser.hpp"

using namespace ricochet::bounce;
namespace fs = std::filesystem;

namespace {
struct label {
    std::string file, status, reply_code, reason, recipient;
    int record = 1;
    bool hard = false;
};

// The corpus README's mapping from sisimai reasons to our kinds; empty = not scored.
std::set<std::string> allowed_kinds(const label& l) {
    if (l.hard) return {"hard"};
    const std::string& r = l.reason;
    if (r == "userunknown" || r == "hasmoved") return {"hard"};
    if (r == "hostunknown") return {"hard"};
    if (r == "notaccept") return {"soft"};
    if (r == "mailboxfull" || r == "suspend" || r == "mesgtoobig" || r == "exceedlimit") return {"soft"};
    if (r == "systemfull" || r == "systemerror" || r == "mailererror" || r == "expired") return {"soft", "technical"};
    if (r == "blocked" || r == "badreputation" || r == "authfailure" || r == "securityerror" || r == "spamdetected" ||
        r == "virusdetected" || r == "policyviolation" || r == "requireptr" || r == "rejected" || r == "norelaying" ||
        r == "notcompliantrfc")
        return {"block"};
    if (r == "filtered") return {"block", "soft"};
    if (r == "contenterror" || r == "syntaxerror" || r == "networkerror" || r == "toomanyconn" || r == "speeding")
        return {"technical"};
    // sisimai's "feedback" is any ARF report; we read abuse/fraud/opt-out as
    // a complaint and the others (auth-failure, ...) as feedback.
    if (r == "feedback") return {"complaint", "feedback"};
    if (r == "vacation") return {"autoreply"};
    if (r == "delivered") return {"delivered"};
    return {};  // onhold, undefined
}

std::string kind_of_record(const classifier& c, const dsn_record& d, const std::string& domain) {
    if (d.type == "complaint") return "complaint";
    if (d.type == "feedback") return "feedback";  // an ARF report that is not a complaint
    if (d.type == "autoreply") return "autoreply";
    if (d.type == "delivered") return "delivered";
    return std::string(to_string(c.classify(dsn_reply(d), domain).k));
}

bool valid(const std::string& a) {
    auto at = a.rfind('@');
    return at != std::string::npos && at > 0 && a.find('.', at) != std::string::npos;
}

std::string lower(std::string s) {
    for (auto& c : s)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
    return s;
}

// Whether the parser found the message's recipients (see the top of the
// file); empty when it did, else what is missing.
std::string missing_recipients(const std::vector<label>& rows, const std::vector<const dsn_record*>& recs,
                               const std::string& raw) {
    std::set<std::string> got;
    for (auto* r : recs) got.insert(lower(r->recipient));
    std::string missing;
    bool unlabelled = false;
    for (auto& l : rows) {
        if (l.recipient.empty()) unlabelled = true;
        else if (!got.count(lower(l.recipient))) missing += " " + l.recipient;
    }
    if (!missing.empty()) return "recipients want" + missing;
    if (!unlabelled) return {};
    // Rows without an address: a count, of addresses the message really has.
    std::set<std::string> literal;
    for (auto* r : recs)
        if (raw.find(r->recipient) != std::string::npos) literal.insert(lower(r->recipient));
    if (literal.size() >= rows.size()) return {};
    return "recipients " + std::to_string(literal.size()) + "/" + std::to_string(rows.size()) + " in the message";
}
// Families and folds: a message's family is its file name without the
// trailing "-NN.eml" (lhost-postfix, rhost-google, arf): one MTA or vendor.
// Families are dealt to the folds largest first, each to the fold with the
// fewest scored rows so far, so that no family is split across folds.
std::string family_of(const std::string& file) {
    auto dash = file.rfind('-');
    return dash == std::string::npos ? file : file.substr(0, dash);
}

struct scored_row {
    std::set<std::string> want;
    const dsn_record* rec = nullptr;
    std::string domain;
    std::string family;
    int fold = 0;
};

struct score {
    int rows = 0, ok = 0;
    int read_hard = 0, read_hard_right = 0, labelled_hard = 0;  // precision and recall of "hard"
    std::vector<int> fold_rows, fold_ok;
    double precision() const { return read_hard ? 100.0 * read_hard_right / read_hard : 100.0; }
    double recall() const { return labelled_hard ? 100.0 * read_hard_right / labelled_hard : 100.0; }
    double kinds() const { return rows ? 100.0 * ok / rows : 0.0; }
};

score score_rows(const classifier& c, const std::vector<scored_row>& rows, int folds) {
    score s;
    s.fold_rows.assign(static_cast<std::size_t>(folds), 0);
    s.fold_ok.assign(static_cast<std::size_t>(folds), 0);
    for (auto& r : rows) {
        std::string got = r.rec ? kind_of_record(c, *r.rec, r.domain) : "none";
        bool ok = r.want.count(got) > 0;
        ++s.rows;
        s.ok += ok;
        s.fold_rows[static_cast<std::size_t>(r.fold)]++;
        s.fold_ok[static_cast<std::size_t>(r.fold)] += ok;
        bool want_hard = r.want.size() == 1 && r.want.count("hard");
        s.labelled_hard += want_hard;
        if (got == "hard") {
            ++s.read_hard;
            s.read_hard_right += want_hard;
        }
    }
    return s;
}
}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: dsn_accuracy CORPUS_DIR RULES_FILE [--min-recipients P --min-status P --min-kind P "
                             "--min-hard-precision P --min-hard-recall P] [--list] [--folds K]\n");
        return 2;
    }
    fs::path dir = argv[1];
    double min_r = 0, min_s = 0, min_k = 0, min_hp = 0, min_hr = 0;
    bool list = false;
    int folds = 0;
    for (int i = 3; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--list") list = true;
        else if (i + 1 < argc && a == "--min-recipients") min_r = std::stod(argv[++i]);
        else if (i + 1 < argc && a == "--min-status") min_s = std::stod(argv[++i]);
        else if (i + 1 < argc && a == "--min-kind") min_k = std::stod(argv[++i]);
        else if (i + 1 < argc && a == "--min-hard-precision") min_hp = std::stod(argv[++i]);
        else if (i + 1 < argc && a == "--min-hard-recall") min_hr = std::stod(argv[++i]);
        else if (i + 1 < argc && a == "--folds") folds = std::max(2, std::atoi(argv[++i]));
        else {
            std::fprintf(stderr, "dsn_accuracy: unknown argument %s\n", a.c_str());
            return 2;
        }
    }
    classifier c;
    std::string err;
    if (!c.load(argv[2], err)) {
        std::fprintf(stderr, "%s\n", err.c_str());
        return 2;
    }
    std::map<std::string, std::vector<label>> labels;
    std::ifstream in(dir / "labels.tsv");
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
        std::vector<std::string> f;
        std::stringstream ss(line);
        for (std::string p; std::getline(ss, p, '\t');) f.push_back(p);
        while (f.size() < 8) f.emplace_back();
        label l{f[0], f[2], f[3], f[4], f[7], std::atoi(f[1].c_str()), f[5] == "1"};
        labels[l.file].push_back(l);
    }
    int messages = 0, rcpt_ok = 0, status_rows = 0, status_ok = 0;
    int pseudo_rows = 0;  // labels with sisimai's pseudo codes (X.0.9NN): no code is in those messages
    std::map<std::string, std::map<std::string, int>> confusion;  // want -> got
    std::vector<std::string> raws;  // for the speed run
    std::vector<dsn_report> reports;  // kept: the scored rows point into them
    reports.reserve(labels.size());
    std::vector<scored_row> rows_all;
    std::map<std::string, int> family_rows;
    for (auto& [file, rows] : labels) {
        std::ifstream f(dir / "dev" / file, std::ios::binary);
        if (!f) continue;
        std::string raw((std::istreambuf_iterator<char>(f)), {});
        reports.push_back(parse_dsn(raw));
        auto& rep = reports.back();
        raws.push_back(raw);
        ++messages;
        std::vector<const dsn_record*> recs;
        for (auto& r : rep.records)
            if (valid(r.recipient)) recs.push_back(&r);
        std::string missing = missing_recipients(rows, recs, raw);
        rcpt_ok += missing.empty();
        std::vector<std::string> problems;
        if (!missing.empty()) problems.push_back(missing);
        for (std::size_t i = 0; i < rows.size(); ++i) {
            auto& l = rows[i];
            const dsn_record* d = i < recs.size() ? recs[i] : nullptr;  // no record of its own: wrong
            // sisimai labels a message that carries no status code with a
            // pseudo code of its own (X.0.9NN, one per reason). There is no
            // such code in the message to find, so those rows are not scored.
            bool pseudo = l.status.size() == 7 && l.status.compare(1, 4, ".0.9") == 0;
            if (pseudo) ++pseudo_rows;
            if (!l.status.empty() && !pseudo) {
                ++status_rows;
                bool ok = d && d->status == l.status;
                status_ok += ok;
                if (!ok) problems.push_back("status " + (d ? d->status : std::string("-")) + " want " + l.status);
            }
            auto want = allowed_kinds(l);
            if (want.empty()) continue;
            std::string domain = d ? d->recipient.substr(d->recipient.rfind('@') + 1) : "";
            std::string got = d ? kind_of_record(c, *d, domain) : "none";
            bool ok = want.count(got) > 0;
            confusion[*want.begin() + (want.size() > 1 ? "+" : "")][got]++;
            rows_all.push_back(scored_row{want, d, domain, family_of(file), 0});
            family_rows[family_of(file)]++;
            if (!ok) {
                std::string rule = d && d->type == "bounce" ? c.classify(dsn_reply(*d), domain).rule : "";
                problems.push_back("kind " + got + " want " + *want.begin() + " (" + l.reason + ") {" + rule + "} [" +
                                   (d ? std::to_string(d->reply_code) + " " + d->status + " " + (d->stage_known ? std::string(to_string(d->at)) : std::string("?")) + " " + d->diagnostic.substr(0, 160) : "") + "]");
            }
        }
        if (list && !problems.empty()) {
            std::printf("%-32s %-8s", file.c_str(), rep.format.c_str());
            for (auto& p : problems) std::printf("  %s;", p.c_str());
            std::printf("\n");
        }
    }
    auto pct = [](int a, int b) { return b ? 100.0 * a / b : 0.0; };
    score all = score_rows(c, rows_all, 1);
    std::printf("messages: %d\n", messages);
    std::printf("recipients found: %d/%d = %.1f%%\n", rcpt_ok, messages, pct(rcpt_ok, messages));
    std::printf("status codes:     %d/%d = %.1f%% (%d rows with sisimai pseudo codes X.0.9NN not scored)\n", status_ok,
                status_rows, pct(status_ok, status_rows), pseudo_rows);
    std::printf("kinds:            %d/%d = %.1f%%\n", all.ok, all.rows, all.kinds());
    std::printf("hard precision:   %d/%d = %.1f%% (of the rows read hard, labelled hard)\n", all.read_hard_right,
                all.read_hard, all.precision());
    std::printf("hard recall:      %d/%d = %.1f%% (of the rows labelled hard, read hard)\n", all.read_hard_right,
                all.labelled_hard, all.recall());
    // Speed: whole passes over the corpus for at least a second, after one
    // pass to warm up.
    for (auto& r : raws) parse_dsn(r);
    std::size_t parsed = 0;
    auto t0 = std::chrono::steady_clock::now();
    double parse_seconds = 0;
    while (!raws.empty() && parse_seconds < 1.0) {
        for (auto& r : raws) parse_dsn(r);
        parsed += raws.size();
        parse_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    std::printf("parser speed:     %.0f messages/s (one core)\n", parse_seconds > 0 ? parsed / parse_seconds : 0.0);
    std::printf("\nconfusion (rows: labelled kind, columns: our kind)\n%-12s", "");
    std::set<std::string> cols;
    for (auto& [w, m] : confusion)
        for (auto& [g, n] : m) cols.insert(g);
    for (auto& col : cols) std::printf("%11s", col.c_str());
    std::printf("\n");
    for (auto& [w, m] : confusion) {
        std::printf("%-12s", w.c_str());
        for (auto& col : cols) std::printf("%11d", m.count(col) ? m.at(col) : 0);
        std::printf("\n");
    }
    if (folds > 0) {
        // Deal the families to the folds, largest first, to the emptiest fold.
        std::vector<std::pair<int, std::string>> fams;
        for (auto& [name, n] : family_rows) fams.emplace_back(-n, name);
        std::sort(fams.begin(), fams.end());
        std::map<std::string, int> fold_of;
        std::vector<int> load(static_cast<std::size_t>(folds), 0);
        std::vector<std::string> members(static_cast<std::size_t>(folds));
        for (auto& [neg, name] : fams) {
            auto k = static_cast<std::size_t>(std::min_element(load.begin(), load.end()) - load.begin());
            fold_of[name] = static_cast<int>(k);
            load[k] -= neg;
            members[k] += (members[k].empty() ? "" : " ") + name;
        }
        for (auto& r : rows_all) r.fold = fold_of[r.family];
        // Per fold: the figures, and hard precision within the fold.
        std::printf("\nfolds by message family (%d):\n", folds);
        std::printf("%-6s %6s %8s %10s %8s  families\n", "fold", "rows", "kinds", "hard-prec", "recall");
        double lo = 101, hi = -1, plo = 101, phi = -1;
        for (int k = 0; k < folds; ++k) {
            std::vector<scored_row> sub;
            for (auto& r : rows_all)
                if (r.fold == k) sub.push_back(r);
            score s = score_rows(c, sub, 1);
            lo = std::min(lo, s.kinds()), hi = std::max(hi, s.kinds());
            plo = std::min(plo, s.precision()), phi = std::max(phi, s.precision());
            std::string m = members[static_cast<std::size_t>(k)];
            if (m.size() > 60) m = m.substr(0, 57) + "...";
            std::printf("%-6d %6d %7.1f%% %9.1f%% %7.1f%%  %s\n", k + 1, s.rows, s.kinds(), s.precision(), s.recall(), m.c_str());
        }
        std::printf("spread: kinds %.1f%%..%.1f%%, hard precision %.1f%%..%.1f%%\n", lo, hi, plo, phi);
        // Per rule: rows it gets right (+) or wrong (-) per fold, against the
        // same rules without it.
        score base = score_rows(c, rows_all, folds);
        std::printf("\nrules, removed one at a time: rows gained per fold (+ helps, - hurts)\n");
        std::printf("%-40s %s  %s\n", "rule", "folds helped/hurt", "per fold");
        int helps_many = 0, helps_one = 0, helps_none = 0, hurts = 0;
        const auto& rules = c.rules();
        for (std::size_t i = 0; i < rules.size(); ++i) {
            classifier without;
            auto rest = rules;
            rest.erase(rest.begin() + static_cast<long>(i));
            without.set_rules(std::move(rest));
            score s = score_rows(without, rows_all, folds);
            int helped = 0, hurt = 0;
            std::string per;
            for (int k = 0; k < folds; ++k) {
                int d = base.fold_ok[static_cast<std::size_t>(k)] - s.fold_ok[static_cast<std::size_t>(k)];
                helped += d > 0;
                hurt += d < 0;
                per += (d > 0 ? "+" : "") + std::to_string(d) + " ";
            }
            helps_many += helped >= 2;
            helps_one += helped == 1;
            helps_none += helped == 0;
            hurts += hurt > 0;
            std::printf("%-40s %6d/%-10d  %s\n", rules[i].name.c_str(), helped, hurt, per.c_str());
        }
        std::printf("rules helping in 2+ folds: %d, in one fold: %d, in none (documented, no dev example decides on it): %d; "
                    "hurting in some fold: %d\n", helps_many, helps_one, helps_none, hurts);
    }
    bool ok = pct(rcpt_ok, messages) >= min_r && pct(status_ok, status_rows) >= min_s && all.kinds() >= min_k &&
              all.precision() >= min_hp && all.recall() >= min_hr;
    if (!ok)
        std::printf("\nBELOW THE REQUIRED FLOOR (recipients %.1f, status %.1f, kinds %.1f, hard precision %.1f, recall %.1f)\n",
                    min_r, min_s, min_k, min_hp, min_hr);
    return ok ? 0 : 1;
}
