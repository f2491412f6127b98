// retention — see retention.hpp.
#include "state/retention.hpp"

namespace ricochet::state {

retention_totals prune_state(recipient_state& st, std::int64_t before_ms, const std::string& id_before,
                             std::size_t batch, std::size_t max_batches) {
    retention_totals t;
    for (; t.batches < max_batches; ++t.batches) {
        prune_counts c;
        if (!st.prune(before_ms, id_before, batch, c, t.error)) return t;
        if (c.busy) {
            t.busy = true;
            return t;
        }
        t.decisions += c.decisions;
        t.messages += c.messages;
        if (!c.more) {
            ++t.batches;
            t.more = false;
            return t;
        }
        t.more = true;
    }
    return t;
}

std::int64_t prune_files(const std::filesystem::path& dir, std::filesystem::file_time_type before) {
    std::int64_t n = 0;
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code fec;
        if (!it->is_regular_file(fec)) continue;
        auto t = it->last_write_time(fec);
        if (fec || t >= before) continue;
        if (std::filesystem::remove(it->path(), fec)) ++n;
    }
    return n;
}

}  // namespace ricochet::state
