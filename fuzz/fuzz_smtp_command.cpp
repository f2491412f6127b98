// Fuzz target: the SMTP server's command side — command lines, MAIL/RCPT
// arguments and the whole session state machine fed arbitrary input, BDAT
// chunks taken raw from the same stream as the server takes them.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "smtp/line_reader.hpp"
#include "smtp/network.hpp"
#include "smtp/smtp_command.hpp"
#include "smtp/smtp_server_protocol.hpp"

using namespace ricochet::smtp;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    // One command line and its arguments, as the parser sees them.
    auto cmd = parse_command(in);
    (void)cmd;
    mail_from m;
    rcpt_to r;
    std::string bad;
    (void)parse_mail_from(in, m, bad);
    (void)parse_rcpt_to(in, true, r, bad);
    (void)parse_rcpt_to(in, false, r, bad);
    // A whole session: the input split into lines by the real line reader.
    session_policy p;
    p.hostname = "fuzz.test";
    static const auto loopback = *parse_cidr("127.0.0.0/8");
    p.trusted = {loopback};
    p.new_id = [] { return std::string("FUZZ"); };
    smtp_server_protocol proto(p, "127.0.0.1");
    std::string out = proto.greeting();
    line_reader reader;
    std::size_t off = 0;
    std::optional<std::uint64_t> queued;  // a message whose 250 has not gone out yet
    auto fill = [&] {  // the next read: up to what the reader asks for
        if (off >= size) return false;
        std::size_t cap = 0;
        char* buf = reader.prepare(cap);
        std::size_t n = std::min(cap, size - off);
        std::copy(data + off, data + off + n, buf);
        reader.commit(n);
        off += n;
        return true;
    };
    for (;;) {
        auto l = reader.next();
        if (!l) {
            if (!fill()) break;
            continue;
        }
        auto act = proto.on_line(*l, out);
        if (act == smtp_server_protocol::action::chunk) {  // BDAT: raw octets, as the server reads them
            while (proto.chunk_left() > 0) {
                auto piece = reader.take(proto.chunk_left());
                if (!piece.empty()) {
                    proto.on_chunk(piece);
                    if (proto.buffered() > 4096) (void)proto.take_for_spill();  // as a session spills
                    continue;
                }
                if (!fill()) return 0;  // the input ends inside the chunk
            }
            act = proto.on_chunk_end(out);
        }
        if (act == smtp_server_protocol::action::commit) {
            // The message's 250 goes out once the next line is read, as when
            // its commit ends while the session reads what was pipelined.
            auto errors_before = proto.error_count();
            proto.commit_started();
            out += smtp_server_protocol::commit_reply({}, "FUZZ");
            queued = errors_before;
        } else if (queued) {
            proto.commit_succeeded(*queued);
            queued.reset();
        }
        if (act == smtp_server_protocol::action::close) return 0;
        if (out.size() > (1 << 20)) out.clear();
    }
    return 0;
}
