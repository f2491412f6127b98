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
// plus a confusion table of kinds and the parser's speed.
//
//   dsn_accuracy CORPUS_DIR RULES_FILE [--min-recipients P --min-status P --min-kind P] [--list]
//
// With --min-*, exits 1 when a share is below P percent (used by a test so
// the figures cannot silently get worse).
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
}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: dsn_accuracy CORPUS_DIR RULES_FILE [--min-recipients P --min-status P --min-kind P] [--list]\n");
        return 2;
    }
    fs::path dir = argv[1];
    double min_r = 0, min_s = 0, min_k = 0;
    bool list = false;
    for (int i = 3; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--list") list = true;
        else if (i + 1 < argc && a == "--min-recipients") min_r = std::stod(argv[++i]);
        else if (i + 1 < argc && a == "--min-status") min_s = std::stod(argv[++i]);
        else if (i + 1 < argc && a == "--min-kind") min_k = std::stod(argv[++i]);
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
    int messages = 0, rcpt_ok = 0, status_rows = 0, status_ok = 0, kind_rows = 0, kind_ok = 0;
    int pseudo_rows = 0;  // labels with sisimai's pseudo codes (X.0.9NN): no code is in those messages
    std::map<std::string, std::map<std::string, int>> confusion;  // want -> got
    std::vector<std::string> raws;  // for the speed run
    for (auto& [file, rows] : labels) {
        std::ifstream f(dir / "dev" / file, std::ios::binary);
        if (!f) continue;
        std::string raw((std::istreambuf_iterator<char>(f)), {});
        auto rep = parse_dsn(raw);
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
            ++kind_rows;
            std::string domain = d ? d->recipient.substr(d->recipient.rfind('@') + 1) : "";
            std::string got = d ? kind_of_record(c, *d, domain) : "none";
            bool ok = want.count(got) > 0;
            kind_ok += ok;
            confusion[*want.begin() + (want.size() > 1 ? "+" : "")][got]++;
            if (!ok)
                problems.push_back("kind " + got + " want " + *want.begin() + " (" + l.reason + ") [" +
                                   (d ? std::to_string(d->reply_code) + " " + d->status + " " + d->diagnostic.substr(0, 160) : "") + "]");
        }
        if (list && !problems.empty()) {
            std::printf("%-32s %-8s", file.c_str(), rep.format.c_str());
            for (auto& p : problems) std::printf("  %s;", p.c_str());
            std::printf("\n");
        }
    }
    auto pct = [](int a, int b) { return b ? 100.0 * a / b : 0.0; };
    std::printf("messages: %d\n", messages);
    std::printf("recipients found: %d/%d = %.1f%%\n", rcpt_ok, messages, pct(rcpt_ok, messages));
    std::printf("status codes:     %d/%d = %.1f%% (%d rows with sisimai pseudo codes X.0.9NN not scored)\n", status_ok,
                status_rows, pct(status_ok, status_rows), pseudo_rows);
    std::printf("kinds:            %d/%d = %.1f%%\n", kind_ok, kind_rows, pct(kind_ok, kind_rows));
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
    bool ok = pct(rcpt_ok, messages) >= min_r && pct(status_ok, status_rows) >= min_s && pct(kind_ok, kind_rows) >= min_k;
    if (!ok) std::printf("\nBELOW THE REQUIRED FLOOR (recipients %.1f, status %.1f, kinds %.1f)\n", min_r, min_s, min_k);
    return ok ? 0 : 1;
}
