// line_reader — splits a byte stream into SMTP lines without ever holding
// more than one line limit of a line in memory.
//
// RFC 5321 4.5.3.1.4/4.5.3.1.6: command and text lines are at most 1000
// octets including CRLF. A longer line is reported once, as too_long, with
// its first octets, and the rest of it up to the next LF is discarded. A line
// ending in a bare LF is reported with crlf = false, so that the DATA reader
// can refuse to end a message on "<LF>.<LF>" (SMTP smuggling).
#pragma once
#include <algorithm>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace ricochet::smtp {

struct line {
    std::string_view text;  // without the line ending
    bool crlf = true;       // ended by CR LF (false: bare LF)
    bool too_long = false;
};

class line_reader {
public:
    explicit line_reader(std::size_t limit = 1000) : limit_(limit) {}

    // Space to read into; call commit(n) after n octets were read into it.
    char* prepare(std::size_t& size);
    void commit(std::size_t n) { end_ += n; }

    // Next complete line, valid until the next call to next() or prepare().
    std::optional<line> next();

    // Octets received but not yet returned as lines (pipelined input waiting).
    bool has_buffered() const { return end_ > begin_; }
    std::size_t buffered() const { return end_ - begin_; }
    // Takes up to max buffered octets as they are, not as lines (a BDAT
    // chunk); valid until the next call to next(), take() or prepare().
    std::string_view take(std::size_t max) {
        std::size_t n = std::min(max, end_ - begin_);
        std::string_view v(buf_.get() + begin_, n);
        begin_ += n;
        return v;
    }
    // Drops everything buffered (after STARTTLS, RFC 3207 4.2: no plaintext
    // data may be carried into the TLS session).
    void clear() { begin_ = end_ = 0; discarding_ = false; }

private:
    std::size_t limit_;
    // Not zero-filled: an idle session's pages stay untouched (thousands of
    // sessions may sit idle, each would cost 16 KiB of RSS otherwise).
    std::unique_ptr<char[]> buf_;
    std::size_t cap_ = 0;
    void grow(std::size_t to);
    std::size_t begin_ = 0, end_ = 0;
    bool discarding_ = false;  // inside the tail of an overlong line
};

}  // namespace ricochet::smtp
