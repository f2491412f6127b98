// state_bench — decisions per second recorded into a state store, the way
// the daemon's recorder writes them: batches of events (each message's
// `queued`, then its `delivered`, and one in 20 a hard bounce) through
// recipient_state::record, one transaction per batch.
//
//   state_bench URL [MESSAGES=100000] [BATCH=500]
//
// URL: sqlite:PATH or postgresql://... (bench/state.sh runs both in one run).
// Prints one JSON line: {"url", "decisions", "seconds", "decisions_per_s"}.
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "events/make.hpp"
#include "queue/queue_id.hpp"
#include "state/backend.hpp"
#include "state/recipient_state.hpp"

using namespace ricochet;

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: state_bench URL [MESSAGES] [BATCH]\n");
        return 2;
    }
    std::string url = argv[1];
    long messages = argc > 2 ? std::stol(argv[2]) : 100000;
    std::size_t batch = argc > 3 ? std::stoul(argv[3]) : 500;
    std::string error;
    auto st = state::open_state(url, {{"gmail.com"}, 3, 15LL * 86400 * 1000}, false, error);
    if (!st) {
        std::fprintf(stderr, "state_bench: %s\n", error.c_str());
        return 1;
    }
    queue::queue_id_generator ids;
    std::vector<events::event> evs, pending;  // a batch: its messages' queued events, then their outcomes
    long decisions = 0;
    auto start = std::chrono::steady_clock::now();
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch()).count();
    for (long i = 0; i < messages; ++i) {
        std::string id = ids.next(), rcpt = "user" + std::to_string(i % 50000) + "@d" + std::to_string(i % 97) + ".example";
        evs.push_back(events::queued(id, "bench", rcpt, 0, "news@shop.example", now));
        events::reply_fields r{250, "2.0.0", "250 ok", "mx.d.example", "rcpt"};
        events::reading rd;
        auto t = events::event_type::delivered;
        if (i % 20 == 0) {
            t = events::event_type::bounced;
            r = {550, "5.1.1", "550 5.1.1 user unknown", "mx.d.example", "rcpt"};
            rd = {"hard", "user-unknown", "bench"};
        }
        pending.push_back(events::attempt_outcome(t, id, "bench", rcpt, r, rd, 1, now));
        if (evs.size() + pending.size() >= batch || i + 1 == messages) {
            evs.insert(evs.end(), pending.begin(), pending.end());
            pending.clear();
            st->record(evs, error);
            if (!error.empty()) {
                std::fprintf(stderr, "state_bench: %s\n", error.c_str());
                return 1;
            }
            decisions += static_cast<long>(evs.size());
            evs.clear();
        }
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("{\"url\": \"%s\", \"decisions\": %ld, \"seconds\": %.3f, \"decisions_per_s\": %.0f}\n",
                state::redact_url(url).c_str(), decisions, secs, decisions / secs);
    return 0;
}
