// classifier_bench — replies classified per second on one core with the
// shipped rules (issue 6 asks for at least 200,000/s), over the real replies
// of tests/unit/bounce/data/replies.tsv. Google Benchmark.
//
//   build/bin/classifier_bench [--benchmark_min_time=2]
#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>

#include "bounce/classifier.hpp"

using namespace ricochet::bounce;

namespace {
struct corpus {
    classifier c;
    std::vector<smtp_reply> replies;
    std::vector<std::string> domains;
    corpus() {
        std::string err, src = RICOCHET_SOURCE_DIR;
        if (!c.load(src + "/etc/bounce-rules.toml", err)) throw std::runtime_error(err);
        std::ifstream in(src + "/tests/unit/bounce/data/replies.tsv");
        for (std::string line; std::getline(in, line);) {
            if (line.empty() || line[0] == '#') continue;
            std::vector<std::string> f;
            std::stringstream ss(line);
            for (std::string p; std::getline(ss, p, '\t');) f.push_back(p);
            if (f.size() < 3) continue;
            replies.push_back(parse_reply_text(f[2]));
            domains.push_back(f[0]);
        }
    }
};
const corpus& data() {
    static corpus c;
    return c;
}
}  // namespace

static void BM_Classify(benchmark::State& state) {
    const auto& d = data();
    std::size_t i = 0;
    for (auto _ : state) {
        auto r = d.c.classify(d.replies[i], d.domains[i]);
        benchmark::DoNotOptimize(r);
        if (++i == d.replies.size()) i = 0;
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Classify);

BENCHMARK_MAIN();
