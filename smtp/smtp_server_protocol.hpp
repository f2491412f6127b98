// smtp_server_protocol — the server side of one SMTP session as a pure state
// machine: lines in, replies and actions out. No sockets, no Asio, so every
// command and every bad input can be unit-tested; smtp_server.cpp does the I/O.
//
// One machine serves both roles of PRODUCT.md: `submission` (trusted networks
// or AUTH, relays to any domain) and `bounce` (anyone, but only recipients the
// check_recipient hook accepts). Replies follow RFC 5321 4.2 with RFC 3463
// enhanced codes; limits follow RFC 5321 4.5.3.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "smtp/auth_users.hpp"
#include "smtp/line_reader.hpp"
#include "smtp/network.hpp"
#include "queue/envelope.hpp"

namespace ricochet::smtp {

enum class server_role { submission, bounce };

// What the recipient check says about one RCPT.
struct rcpt_verdict {
    enum class action { accept, refuse, drop } act = action::accept;
    std::string reply;  // refuse: the whole reply line ("550 5.7.1 ...")

    static rcpt_verdict accept() { return {}; }
    static rcpt_verdict refuse(std::string r) { return {action::refuse, std::move(r)}; }
    // Accepted with 250 but never delivered (bounce.suppressed = "drop").
    static rcpt_verdict drop() { return {action::drop, {}}; }
};

// Settings shared by every session of one listener.
struct session_policy {
    server_role role = server_role::submission;
    std::string hostname = "localhost";
    std::uint64_t max_message_size = 26214400;
    std::uint32_t max_recipients = 1000;
    std::string campaign_header = "X-Campaign-ID";
    bool tls_available = false;
    const auth_users* users = nullptr;  // null: AUTH not offered
    std::vector<cidr> trusted;
    unsigned max_errors = 20;           // bad commands before 421
    unsigned max_auth_failures = 3;     // failed AUTH before 421
    unsigned max_hops = 50;             // Received headers before 554 5.4.6 (loop)
    // Queue id for the message being received (goes into Received:).
    std::function<std::string()> new_id;
    // Recipient check after syntax (suppression, bounce tokens).
    std::function<rcpt_verdict(std::string_view rcpt)> check_recipient;
    // After DATA, with the message's campaign and envelope sender: a whole
    // reply line ("451 4.7.1 campaign C paused: ...") refuses the message;
    // nullopt accepts it. (The campaign breaker.)
    std::function<std::optional<std::string>(const std::string& campaign, const std::string& sender)> check_message;
};

class smtp_server_protocol {
public:
    enum class action {
        none,      // send the replies, read on
        starttls,  // send the replies, then do the TLS handshake, then call on_tls_started()
        commit,    // hand envelope()/content() to the spool, call commit_started(),
                   // and answer with commit_reply() once the spool has answered
        close,     // send the replies, then close the connection
        chunk,     // BDAT: read exactly chunk_left() octets, whatever the reply
                   // will be, into on_chunk(), then call on_chunk_end()
    };

    smtp_server_protocol(const session_policy& policy, std::string client_ip, bool tls_active = false);

    std::string greeting() const;
    // Replies to a time-out, before the connection is closed.
    std::string timeout_reply() const;
    // Replies when the listener is full (421, RFC 5321 3.8).
    static std::string busy_reply(std::string_view hostname);

    // Feeds one line (from line_reader); appends replies to out.
    action on_line(const line& l, std::string& out);
    // After action::commit, once envelope() and content() (or before() and
    // the spill file) are handed to the spool: the transaction ends here, so
    // the session can read the next one while this one commits.
    void commit_started();
    // The reply to a committed message: ec empty means durable under id
    // (the envelope's id). Replies go out in the order of the commands, so
    // the session keeps a place for this one until the spool answers.
    static std::string commit_reply(std::error_code ec, const std::string& id);
    // A message was queued: a long campaign session is judged message by
    // message, so max_errors counts from that message's end, in the order
    // of the commands: errors_before is error_count() when it ended (at
    // commit_started), and the errors of the commands pipelined behind it,
    // read while it committed, still count.
    void commit_succeeded(std::uint64_t errors_before) { errors_forgiven_ = std::max(errors_forgiven_, errors_before); }
    // Errors answered in this session so far (never reset).
    std::uint64_t error_count() const { return error_count_; }
    // The three above at once, for a caller that waits for the spool.
    void on_commit_result(std::error_code ec, const std::string& id, std::string& out);

    // BDAT (RFC 3030): after action::chunk, the octets of the chunk, in as
    // many pieces as they arrive, then on_chunk_end() for its reply. The
    // octets are taken as they are (no dot-stuffing); line ends are
    // normalised as in DATA, and the same limits apply.
    std::uint64_t chunk_left() const { return chunk_left_; }
    void on_chunk(std::string_view octets);
    action on_chunk_end(std::string& out);
    void on_tls_started();

    queue::envelope& envelope() { return env_; }
    std::string& content() { return content_; }

    // Large messages (the session writes them to disk as they arrive):
    // the octets of DATA held in memory now (0 outside DATA, or once the
    // message is being dropped for an error).
    std::size_t buffered() const;
    // Moves what is held out, to be appended to the session's spill file;
    // the header section is kept (a copy of its first 256 KiB) for the
    // checks at the end of DATA.
    std::string take_for_spill();
    // How much of this message went to the spill file; after
    // action::commit with spilled() > 0 the message is before() + the spill
    // file + content().
    std::uint64_t spilled() const { return spilled_; }
    std::string& before() { return before_; }
    // The session cannot keep this message (the spill file failed, or the
    // memory budget is spent and it cannot spill): the end of DATA answers
    // `reply` (a 452 4.3.1) instead of queueing it.
    void refuse_data(std::string reply);
    // Inside a message: after DATA, or between the chunks of a BDAT transaction.
    bool in_data() const { return state_ == state::data || bdat_; }
    // MAIL accepted, and the message not yet handed over nor the
    // transaction ended.
    bool in_transaction() const { return state_ == state::mail || state_ == state::rcpt || in_data(); }
    bool tls_active() const { return tls_; }
    bool trusted() const { return trusted_; }
    const std::string& auth_user() const { return auth_user_; }

private:
    enum class state { fresh, ready, mail, rcpt, data, auth_plain, auth_login_user, auth_login_pass };
    action reply(std::string& out, std::string_view text, bool error = false);
    action on_data_line(const line& l, std::string& out);
    action on_end_of_data(std::string& out);
    void append_content(std::string_view text);
    void chunk_line(std::string_view text);
    std::optional<std::string> data_failure(bool& counted) const;
    action do_bdat(std::string_view arg, std::string& out);
    action do_ehlo(bool extended, std::string_view arg, std::string& out);
    action do_mail(std::string_view arg, std::string& out);
    action do_rcpt(std::string_view arg, std::string& out);
    action do_auth(std::string_view arg, std::string& out);
    action finish_auth(std::string_view user, std::string_view pass, std::string& out);
    bool auth_offered() const;
    void reset_transaction();
    std::string received_header() const;

public:
    unsigned auth_failures() const { return auth_failures_; }

private:

    const session_policy& p_;
    std::string client_ip_;
    bool tls_;
    bool trusted_;
    state state_ = state::fresh;
    bool esmtp_ = false;
    std::string helo_;
    std::string auth_user_, login_user_;
    unsigned auth_failures_ = 0;
    // max_errors counts error_count_ - errors_forgiven_: the errors since
    // the end of the last message queued.
    std::uint64_t error_count_ = 0, errors_forgiven_ = 0;

    queue::envelope env_;
    std::string content_;
    std::uint64_t data_size_ = 0;
    std::size_t dropped_ = 0;  // recipients accepted and dropped (suppressed)
    std::string header_copy_, before_, data_refused_;
    std::uint64_t spilled_ = 0;
    bool data_too_big_ = false, data_line_too_long_ = false, prev_crlf_ = true;

    // BDAT: bdat_ once a chunk of this transaction was taken; bdat_line_ a
    // line not yet ended by the chunks so far (at most a line limit of it);
    // bdat_failed_ after a refused chunk, until its LAST (or RSET, MAIL,
    // EHLO): later chunks are read and discarded.
    bool bdat_ = false, bdat_failed_ = false;
    std::string bdat_line_;
    std::uint64_t bdat_octets_ = 0;
    // The chunk being read: its size, what is left of it, whether it is
    // kept, and the reply decided at the command when it is not.
    std::uint64_t chunk_size_ = 0, chunk_left_ = 0;
    bool chunk_last_ = false, chunk_keep_ = false, chunk_counted_ = false;
    std::string chunk_reply_;
};

}  // namespace ricochet::smtp
