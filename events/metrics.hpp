// metrics — the counters and histograms behind `GET /metrics` (Prometheus
// text exposition format 0.0.4), with the names of PRODUCT.md "Metrics".
//
// Counters are fed as an events::sink (deliveries by outcome and kind,
// replies by category, submitted messages), so they count exactly what the
// event log records. Every label value of a counter comes from a fixed
// taxonomy, so each is one relaxed atomic in an array: nothing is locked
// or allocated on the hot path. Histograms (spool commit, delivery attempt)
// are observed from the committer and the delivery strand, also lock-free.
// Gauges whose label sets are open (paused domains, webhooks, campaigns,
// queue states) are read when scraped, through callbacks the daemon adds.
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "events/sink.hpp"

namespace ricochet::events {

class histogram {
public:
    // Upper bounds in seconds, increasing; +Inf is added.
    explicit histogram(std::vector<double> bounds);
    void observe(double seconds);
    void render(std::string& out, std::string_view name, std::string_view help) const;

private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // per bucket (not cumulative), then +Inf
    std::atomic<std::uint64_t> sum_us_{0}, count_{0};
};

// One sample of a gauge: its label pairs and value.
struct gauge_sample {
    std::vector<std::pair<std::string, std::string>> labels;
    double value = 0;
};

class metrics final : public sink {
public:
    metrics();
    void write(const std::vector<event>& evs) override;

    histogram spool_commit{{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}};
    histogram delivery{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}};

    // A gauge read when scraped: name, help, and a function giving its samples.
    void add_gauge(std::string name, std::string help, std::function<std::vector<gauge_sample>()> read);
    // A counter kept elsewhere (webhook drops), read when scraped.
    void add_counter(std::string name, std::string help, std::function<std::vector<gauge_sample>()> read);

    // The whole exposition.
    std::string render() const;

    std::uint64_t submitted() const { return submitted_.load(std::memory_order_relaxed); }
    // For tests: deliveries by outcome ("delivered", "deferred", "bounced", "expired") and kind ("" = none).
    std::uint64_t deliveries(std::string_view outcome, std::string_view kind) const;

private:
    static constexpr int outcomes = 4, kinds = 5, categories = 21;  // kinds: hard, soft, block, technical, none
    std::array<std::atomic<std::uint64_t>, outcomes * kinds> deliveries_{};
    std::array<std::atomic<std::uint64_t>, categories> replies_{};  // the taxonomy, then "unknown"
    std::atomic<std::uint64_t> submitted_{0};
    struct read_fn {
        std::string name, help, type;
        std::function<std::vector<gauge_sample>()> read;
    };
    std::vector<read_fn> read_;
};

// A label value escaped for the text format (backslash, quote, newline).
std::string escape_label(std::string_view v);

}  // namespace ricochet::events
