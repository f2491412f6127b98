// Fixture tests for the DSN readers (bounce/dsn/): every
// tests/data/dsn/<format>/NAME.eml is parsed and its records compared with
// NAME.json beside it, field by field ("got X, want Y"). The .json holds the
// records as `ricochetctl bounce parse --json` prints them (bounce/dsn_json.hpp:
// the events' field names, with the shipped rules' kind, category and rule
// for bounces and delays), so a fixture reads the same as the command a
// postmaster runs.
//
// The messages are small synthetic ones written from each format's
// documentation (named in the reader's file), at least two per format; the
// labelled corpus (tests/data/bounces) stays the measurement set.
//
//   RICOCHET_UPDATE_FIXTURES=1 build/bin/unit_dsn --gtest_filter='DsnFixtures*'
//
// rewrites every .json from what the parser gives now: read each diff
// before committing it, as a reviewer would.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "bounce/classifier.hpp"
#include "bounce/dsn_json.hpp"
#include "bounce/dsn_parser.hpp"

using namespace ricochet::bounce;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

const fs::path fixture_dir = fs::path(RICOCHET_SOURCE_DIR) / "tests/data/dsn";

// Every reader (bounce/dsn/readers.hpp) and the readers of parts of a
// notice (sendmail_transcript, qmail): a folder each.
const char* const formats[] = {"rfc3464", "arf",  "jmrp",      "unsubscribe",         "autoreply",
                               "ses_json", "free_text", "sendmail_transcript", "qmail"};

std::vector<fs::path> fixtures() {
    std::vector<fs::path> out;
    if (fs::is_directory(fixture_dir))
        for (auto& e : fs::recursive_directory_iterator(fixture_dir))
            if (e.is_regular_file() && e.path().extension() == ".eml") out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
}

const classifier& shipped_rules() {
    static const classifier c = [] {
        classifier c;
        std::string err;
        if (!c.load(fs::path(RICOCHET_SOURCE_DIR) / "etc/bounce-rules.toml", err)) ADD_FAILURE() << err;
        // bounce.final_soft changes only whether a reply is retried, which
        // `bounce parse` does not print: left out.
        return c;
    }();
    return c;
}

std::string dump(const json& j) { return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n"; }

// One line per difference between got and want (arrays of records).
std::vector<std::string> differences(const json& got, const json& want) {
    std::vector<std::string> out;
    if (!want.is_array()) return {"the .json is not an array of records"};
    if (got.size() != want.size())
        out.push_back("records: got " + std::to_string(got.size()) + ", want " + std::to_string(want.size()));
    for (std::size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
        std::set<std::string> keys;
        for (auto& [k, v] : got[i].items()) keys.insert(k);
        for (auto& [k, v] : want[i].items()) keys.insert(k);
        for (auto& k : keys) {
            auto g = got[i].contains(k) ? got[i][k].dump() : std::string("(none)");
            auto w = want[i].contains(k) ? want[i][k].dump() : std::string("(none)");
            if (g != w) out.push_back("record " + std::to_string(i) + " " + k + ": got " + g + ", want " + w);
        }
    }
    for (std::size_t i = want.size(); i < got.size(); ++i) out.push_back("extra record " + std::to_string(i) + ": " + got[i].dump());
    for (std::size_t i = got.size(); i < want.size(); ++i) out.push_back("missing record " + std::to_string(i) + ": " + want[i].dump());
    return out;
}

std::string test_name(const testing::TestParamInfo<fs::path>& info) {
    std::string n = fs::relative(info.param, fixture_dir).replace_extension().string();
    for (auto& c : n)
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    return n;
}

class DsnFixtures : public testing::TestWithParam<fs::path> {};

}  // namespace

TEST_P(DsnFixtures, RecordsAreAsInTheJson) {
    const fs::path& eml = GetParam();
    fs::path want_file = fs::path(eml).replace_extension(".json");
    json got = dsn_records_json(parse_dsn(slurp(eml)), shipped_rules());
    if (const char* u = std::getenv("RICOCHET_UPDATE_FIXTURES"); u && std::string(u) == "1") {
        std::ofstream(want_file, std::ios::binary) << dump(got);
        std::printf("rewrote %s\n", fs::relative(want_file, fixture_dir).c_str());
        return;
    }
    ASSERT_TRUE(fs::exists(want_file)) << want_file << " missing: write it, or run with RICOCHET_UPDATE_FIXTURES=1 and check it";
    json want = json::parse(slurp(want_file), nullptr, false);
    ASSERT_FALSE(want.is_discarded()) << want_file << " is not JSON";
    for (auto& d : differences(got, want)) ADD_FAILURE() << fs::relative(eml, fixture_dir).string() << ": " << d;
}

INSTANTIATE_TEST_SUITE_P(Dsn, DsnFixtures, testing::ValuesIn(fixtures()), test_name);

TEST(DsnFixtureSet, EveryFormatHasAtLeastTwo) {
    std::map<std::string, int> per_format;
    for (auto& f : fixtures()) per_format[f.parent_path().filename().string()]++;
    for (auto f : formats) EXPECT_GE(per_format[f], 2) << "tests/data/dsn/" << f;
    for (auto& [f, n] : per_format)
        EXPECT_TRUE(std::find(std::begin(formats), std::end(formats), f) != std::end(formats)) << "unknown folder " << f;
}
