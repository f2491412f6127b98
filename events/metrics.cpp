// metrics — see metrics.hpp.
#include "events/metrics.hpp"

#include <cmath>
#include <cstdio>

#include "bounce/bounce_kind.hpp"

namespace ricochet::events {
namespace {

constexpr std::array<std::string_view, 4> outcome_names{"delivered", "deferred", "bounced", "expired"};
constexpr std::array<std::string_view, 5> kind_names{"hard", "soft", "block", "technical", "none"};

int outcome_index(event_type t) {
    switch (t) {
        case event_type::delivered: return 0;
        case event_type::deferred: return 1;
        case event_type::bounced: return 2;
        case event_type::expired: return 3;
        default: return -1;
    }
}

int kind_index(std::string_view k) {
    for (std::size_t i = 0; i < 4; ++i)
        if (kind_names[i] == k) return static_cast<int>(i);
    return 4;
}

std::string number(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.15g", v);
    return buf;
}

void header(std::string& out, std::string_view name, std::string_view help, std::string_view type) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

}  // namespace

std::string escape_label(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

histogram::histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
    for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void histogram::observe(double s) {
    std::size_t i = 0;
    while (i < bounds_.size() && s > bounds_[i]) ++i;
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    sum_us_.fetch_add(static_cast<std::uint64_t>(std::max(0.0, s) * 1e6), std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
}

void histogram::render(std::string& out, std::string_view name, std::string_view help) const {
    header(out, name, help, "histogram");
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        cumulative += counts_[i].load(std::memory_order_relaxed);
        out.append(name).append("_bucket{le=\"").append(i < bounds_.size() ? number(bounds_[i]) : "+Inf");
        out.append("\"} ").append(std::to_string(cumulative)).append("\n");
    }
    out.append(name).append("_sum ").append(number(double(sum_us_.load(std::memory_order_relaxed)) / 1e6)).append("\n");
    // _count equals the +Inf bucket (the buckets were read at about the same time).
    out.append(name).append("_count ").append(std::to_string(cumulative)).append("\n");
}

metrics::metrics() = default;

void metrics::write(const std::vector<event>& evs) {
    for (auto& e : evs) {
        if (e.type == event_type::queued) {
            if (e.index == 0) submitted_.fetch_add(1, std::memory_order_relaxed);  // one per message
            continue;
        }
        int o = outcome_index(e.type);
        if (o < 0) continue;
        deliveries_[static_cast<std::size_t>(o * kinds + kind_index(e.kind))].fetch_add(1, std::memory_order_relaxed);
        if (e.category.empty()) continue;
        auto c = bounce::parse_category(e.category);
        replies_[c ? static_cast<std::size_t>(*c) : categories - 1].fetch_add(1, std::memory_order_relaxed);
    }
}

std::uint64_t metrics::deliveries(std::string_view outcome, std::string_view kind) const {
    for (int o = 0; o < outcomes; ++o)
        if (outcome_names[static_cast<std::size_t>(o)] == outcome)
            return deliveries_[static_cast<std::size_t>(o * kinds + kind_index(kind.empty() ? "none" : kind))].load();
    return 0;
}

void metrics::add_gauge(std::string name, std::string help, std::function<std::vector<gauge_sample>()> read) {
    read_.push_back({std::move(name), std::move(help), "gauge", std::move(read)});
}

void metrics::add_counter(std::string name, std::string help, std::function<std::vector<gauge_sample>()> read) {
    read_.push_back({std::move(name), std::move(help), "counter", std::move(read)});
}

std::string metrics::render() const {
    std::string out;
    out.reserve(8192);
    header(out, "ricochet_submitted_total", "Messages accepted (SMTP submission and HTTP injection).", "counter");
    out.append("ricochet_submitted_total ").append(std::to_string(submitted())).append("\n");

    header(out, "ricochet_deliveries_total", "Recipient outcomes by outcome and bounce kind (kind=\"none\": no failure reading).",
           "counter");
    for (int o = 0; o < outcomes; ++o)
        for (int k = 0; k < kinds; ++k) {
            auto v = deliveries_[static_cast<std::size_t>(o * kinds + k)].load(std::memory_order_relaxed);
            if (o == 0 && k != 4) continue;  // a delivery has no failure kind
            out.append("ricochet_deliveries_total{outcome=\"").append(outcome_names[static_cast<std::size_t>(o)]);
            out.append("\",kind=\"").append(kind_names[static_cast<std::size_t>(k)]).append("\"} ");
            out.append(std::to_string(v)).append("\n");
        }

    header(out, "ricochet_replies_total", "Failure replies (in session and reported later) by bounce category.", "counter");
    for (int c = 0; c < categories; ++c) {
        std::string_view name = c < categories - 1 ? bounce::to_string(static_cast<bounce::category>(c)) : "unknown";
        out.append("ricochet_replies_total{category=\"").append(name).append("\"} ");
        out.append(std::to_string(replies_[static_cast<std::size_t>(c)].load(std::memory_order_relaxed))).append("\n");
    }

    spool_commit.render(out, "ricochet_spool_commit_seconds", "Duration of one group commit of the spool (write, sync, rename).");
    delivery.render(out, "ricochet_delivery_seconds", "Duration of one delivery attempt to one destination (DNS, connection, transaction).");

    for (auto& r : read_) {
        header(out, r.name, r.help, r.type);
        for (auto& s : r.read()) {
            out.append(r.name);
            if (!s.labels.empty()) {
                out += '{';
                for (std::size_t i = 0; i < s.labels.size(); ++i) {
                    if (i) out += ',';
                    out.append(s.labels[i].first).append("=\"").append(escape_label(s.labels[i].second)).append("\"");
                }
                out += '}';
            }
            out.append(" ").append(number(s.value)).append("\n");
        }
    }
    return out;
}

}  // namespace ricochet::events
