// line_reader — see line_reader.hpp.
#include "smtp/line_reader.hpp"

#include <cstring>

namespace ricochet::smtp {

void line_reader::grow(std::size_t to) {
    std::unique_ptr<char[]> bigger(new char[to]);  // default-initialised: no page touched yet
    if (end_ > begin_) std::memcpy(bigger.get() + begin_, buf_.get() + begin_, end_ - begin_);
    buf_ = std::move(bigger);
    cap_ = to;
}

char* line_reader::prepare(std::size_t& size) {
    if (begin_ > 0 && begin_ == end_) begin_ = end_ = 0;
    if (begin_ > 0 && cap_ - end_ < 4096) {  // compact
        std::memmove(buf_.get(), buf_.get() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    if (cap_ < 16384) grow(16384);
    if (cap_ - end_ < 1024) grow(cap_ * 2);
    size = cap_ - end_;
    return buf_.get() + end_;
}

std::optional<line> line_reader::next() {
    if (!buf_) return std::nullopt;  // nothing read yet
    for (;;) {
        const char* start = buf_.get() + begin_;
        std::size_t avail = end_ - begin_;
        const char* lf = static_cast<const char*>(std::memchr(start, '\n', avail));
        if (discarding_) {
            if (!lf) { begin_ = end_; return std::nullopt; }
            begin_ += static_cast<std::size_t>(lf - start) + 1;
            discarding_ = false;
            continue;
        }
        if (!lf) {
            if (avail >= limit_) {
                // No LF within the limit: report now, discard the rest later.
                line l{std::string_view(start, limit_), true, true};
                begin_ = end_;
                discarding_ = true;
                return l;
            }
            return std::nullopt;
        }
        std::size_t len = static_cast<std::size_t>(lf - start);  // without LF
        begin_ += len + 1;
        line l;
        l.crlf = len > 0 && start[len - 1] == '\r';
        if (l.crlf) --len;
        l.too_long = len + 2 > limit_;
        l.text = std::string_view(start, l.too_long ? limit_ : len);
        return l;
    }
}

}  // namespace ricochet::smtp
