// smtp_server_protocol — see smtp_server_protocol.hpp.
#include "smtp/smtp_server_protocol.hpp"

#include <charconv>
#include <ctime>

#include "smtp/base64.hpp"
#include "bounce/suppression_list.hpp"
#include "smtp/smtp_command.hpp"

namespace ricochet::smtp {
namespace {

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'a' && x <= 'z') x = static_cast<char>(x - 32);
        if (y >= 'a' && y <= 'z') y = static_cast<char>(y - 32);
        if (x != y) return false;
    }
    return true;
}

// RFC 5322 3.3 date-time in UTC.
std::string rfc5322_now() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    return buf;
}

// Printable ASCII only, for values copied from the client into our own
// headers and the spool (HELO names, campaign ids).
std::string sanitize(std::string_view s, std::size_t max) {
    std::string out;
    for (unsigned char c : s) {
        if (out.size() >= max) break;
        if (c >= 33 && c < 127) out.push_back(static_cast<char>(c));
        else if (c == ' ' || c == '\t') out.push_back(' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
}

// Walks the header section of msg (CRLF lines up to the first empty line),
// calling f(name, unfolded value) for each field.
template <class F>
void for_each_header(std::string_view msg, F&& f) {
    std::string name, value;
    bool have = false;
    std::size_t pos = 0;
    auto flush = [&] { if (have) f(std::string_view(name), std::string_view(value)); have = false; };
    while (pos < msg.size()) {
        auto eol = msg.find("\r\n", pos);
        if (eol == std::string_view::npos) eol = msg.size();
        std::string_view l = msg.substr(pos, eol - pos);
        pos = eol + 2;
        if (l.empty()) break;
        if ((l[0] == ' ' || l[0] == '\t') && have) {
            value.append(l);
            continue;
        }
        flush();
        auto colon = l.find(':');
        if (colon == std::string_view::npos) break;  // not a header: body starts
        name = l.substr(0, colon);
        value = l.substr(colon + 1);
        have = true;
    }
    flush();
}
}  // namespace

smtp_server_protocol::smtp_server_protocol(const session_policy& policy, std::string client_ip, bool tls_active)
    : p_(policy), client_ip_(std::move(client_ip)), tls_(tls_active),
      trusted_(in_networks(policy.trusted, client_ip_)) {}

std::string smtp_server_protocol::greeting() const {
    return "220 " + p_.hostname + " ESMTP Ricochet\r\n";
}

std::string smtp_server_protocol::timeout_reply() const {
    return "421 4.4.2 " + p_.hostname + " Error: timeout exceeded\r\n";
}

std::string smtp_server_protocol::busy_reply(std::string_view hostname) {
    return "421 4.7.0 " + std::string(hostname) + " Error: too many connections, try again later\r\n";
}

smtp_server_protocol::action smtp_server_protocol::reply(std::string& out, std::string_view text, bool error) {
    out.append(text).append("\r\n");
    if (error && ++error_count_ - errors_forgiven_ >= p_.max_errors) {
        out.append("421 4.7.0 " + p_.hostname + " Error: too many errors\r\n");
        return action::close;
    }
    return action::none;
}

void smtp_server_protocol::reset_transaction() {
    env_ = queue::envelope{};
    content_.clear();
    content_.shrink_to_fit();
    header_copy_.clear();
    header_copy_.shrink_to_fit();
    before_.clear();
    data_refused_.clear();
    spilled_ = 0;
    data_size_ = 0;
    data_too_big_ = data_line_too_long_ = false;
    dropped_ = 0;
    prev_crlf_ = true;
    bdat_ = false;
    bdat_line_.clear();
    bdat_line_.shrink_to_fit();
    bdat_octets_ = 0;
    if (state_ != state::fresh) state_ = state::ready;
}

bool smtp_server_protocol::auth_offered() const {
    // AUTH only inside TLS, except for clients that are trusted anyway, so
    // no password ever crosses the network in clear from outside.
    return p_.role == server_role::submission && p_.users && (tls_ || trusted_);
}

smtp_server_protocol::action smtp_server_protocol::on_line(const line& l, std::string& out) {
    if (state_ == state::data) return on_data_line(l, out);

    if (state_ == state::auth_plain || state_ == state::auth_login_user || state_ == state::auth_login_pass) {
        state st = state_;
        state_ = state::ready;
        if (l.too_long) return reply(out, "501 5.5.2 Error: authentication response too long", true);
        if (l.text == "*") return reply(out, "501 5.7.0 Authentication aborted", true);
        auto decoded = base64_decode(l.text);
        if (!decoded) return reply(out, "501 5.5.2 Error: malformed base64", true);
        if (st == state::auth_plain) return finish_auth("", *decoded, out);
        if (st == state::auth_login_user) {
            login_user_ = *decoded;
            state_ = state::auth_login_pass;
            return reply(out, "334 UGFzc3dvcmQ6");  // "Password:"
        }
        return finish_auth(login_user_, *decoded, out);
    }

    if (l.too_long) return reply(out, "500 5.5.2 Error: line too long (limit 1000 octets)", true);
    if (l.text.find('\0') != std::string_view::npos) return reply(out, "500 5.5.2 Error: NUL in command", true);
    command cmd = parse_command(l.text);
    switch (cmd.v) {
        case verb::helo: return do_ehlo(false, cmd.arg, out);
        case verb::ehlo: return do_ehlo(true, cmd.arg, out);
        case verb::mail: return do_mail(cmd.arg, out);
        case verb::rcpt: return do_rcpt(cmd.arg, out);
        case verb::data:
            if (!cmd.arg.empty()) return reply(out, "501 5.5.4 Syntax: DATA", true);
            if (state_ == state::fresh || state_ == state::ready) return reply(out, "503 5.5.1 Error: need MAIL command", true);
            if (state_ == state::mail) return reply(out, "503 5.5.1 Error: need RCPT command", true);
            if (bdat_) return reply(out, "503 5.5.1 Error: DATA after BDAT (RFC 3030)", true);
            state_ = state::data;
            content_.clear();
            return reply(out, "354 End data with <CR><LF>.<CR><LF>");
        case verb::rset:
            reset_transaction();
            bdat_failed_ = false;
            return reply(out, "250 2.0.0 Ok");
        case verb::noop: return reply(out, "250 2.0.0 Ok");
        case verb::quit:
            out.append("221 2.0.0 Bye\r\n");
            return action::close;
        case verb::vrfy:
            if (cmd.arg.empty()) return reply(out, "501 5.5.4 Syntax: VRFY address", true);
            return reply(out, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
        case verb::expn: return reply(out, "502 5.5.1 Error: EXPN not supported", true);
        case verb::bdat: return do_bdat(cmd.arg, out);
        case verb::help:
            return reply(out, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
        case verb::starttls:
            if (!p_.tls_available) return reply(out, "502 5.5.1 Error: STARTTLS not available", true);
            if (tls_) return reply(out, "503 5.5.1 Error: TLS already active", true);
            if (!cmd.arg.empty()) return reply(out, "501 5.5.4 Syntax: STARTTLS", true);
            out.append("220 2.0.0 Ready to start TLS\r\n");
            return action::starttls;
        case verb::auth: return do_auth(cmd.arg, out);
        case verb::unknown: break;
    }
    return reply(out, "500 5.5.2 Error: command not recognized", true);
}

smtp_server_protocol::action smtp_server_protocol::do_ehlo(bool extended, std::string_view arg, std::string& out) {
    if (arg.empty()) return reply(out, extended ? "501 5.5.4 Syntax: EHLO hostname" : "501 5.5.4 Syntax: HELO hostname", true);
    // RFC 5321 4.1.4: EHLO resets the transaction, like RSET.
    state_ = state::ready;
    reset_transaction();
    bdat_failed_ = false;
    esmtp_ = extended;
    helo_ = sanitize(arg, 255);
    if (!extended) return reply(out, "250 " + p_.hostname);
    out.append("250-" + p_.hostname + "\r\n");
    out.append("250-PIPELINING\r\n");
    out.append("250-SIZE " + std::to_string(p_.max_message_size) + "\r\n");
    if (p_.tls_available && !tls_) out.append("250-STARTTLS\r\n");
    if (auth_offered()) out.append("250-AUTH PLAIN LOGIN\r\n");
    out.append("250-ENHANCEDSTATUSCODES\r\n");
    out.append("250-8BITMIME\r\n");
    out.append("250-CHUNKING\r\n");
    out.append("250 SMTPUTF8\r\n");
    return action::none;
}

smtp_server_protocol::action smtp_server_protocol::do_auth(std::string_view arg, std::string& out) {
    if (!auth_offered()) {
        if (p_.role == server_role::submission && p_.users && p_.tls_available && !tls_)
            return reply(out, "538 5.7.11 Encryption required for requested authentication mechanism", true);
        return reply(out, "503 5.5.1 Error: authentication not enabled", true);
    }
    if (state_ == state::fresh) return reply(out, "503 5.5.1 Error: send HELO/EHLO first", true);
    if (!auth_user_.empty()) return reply(out, "503 5.5.1 Error: already authenticated", true);
    if (state_ != state::ready) return reply(out, "503 5.5.1 Error: MAIL transaction in progress", true);
    auto sp = arg.find(' ');
    std::string_view mech = arg.substr(0, sp);
    std::string_view initial = sp == std::string_view::npos ? std::string_view{} : arg.substr(sp + 1);
    if (iequals(mech, "PLAIN")) {
        if (initial.empty()) {
            state_ = state::auth_plain;
            return reply(out, "334 ");
        }
        auto decoded = initial == "=" ? std::optional<std::string>("") : base64_decode(initial);
        if (!decoded) return reply(out, "501 5.5.2 Error: malformed base64", true);
        return finish_auth("", *decoded, out);
    }
    if (iequals(mech, "LOGIN")) {
        if (!initial.empty()) {
            auto decoded = base64_decode(initial);
            if (!decoded) return reply(out, "501 5.5.2 Error: malformed base64", true);
            login_user_ = *decoded;
            state_ = state::auth_login_pass;
            return reply(out, "334 UGFzc3dvcmQ6");
        }
        state_ = state::auth_login_user;
        return reply(out, "334 VXNlcm5hbWU6");  // "Username:"
    }
    return reply(out, "504 5.5.4 Error: unsupported authentication mechanism", true);
}

// user is empty for PLAIN, where `pass` is the whole RFC 4616 message
// "authzid NUL authcid NUL passwd".
smtp_server_protocol::action smtp_server_protocol::finish_auth(std::string_view user, std::string_view pass, std::string& out) {
    std::string authcid(user), passwd(pass);
    if (user.empty()) {
        auto a = pass.find('\0');
        auto b = a == std::string_view::npos ? a : pass.find('\0', a + 1);
        if (b == std::string_view::npos) return reply(out, "501 5.5.2 Error: malformed AUTH PLAIN response", true);
        std::string_view authzid = pass.substr(0, a);
        authcid = pass.substr(a + 1, b - a - 1);
        passwd = pass.substr(b + 1);
        if (!authzid.empty() && authzid != authcid) {
            ++auth_failures_;
            return reply(out, "535 5.7.8 Error: authentication failed (no proxy authorization)", true);
        }
    }
    login_user_.clear();
    if (!p_.users->verify(authcid, passwd)) {
        if (++auth_failures_ >= p_.max_auth_failures) {
            out.append("535 5.7.8 Error: authentication failed\r\n");
            out.append("421 4.7.0 " + p_.hostname + " Error: too many failed authentication attempts\r\n");
            return action::close;
        }
        return reply(out, "535 5.7.8 Error: authentication failed", true);
    }
    auth_user_ = sanitize(authcid, 255);
    return reply(out, "235 2.7.0 Authentication successful");
}

smtp_server_protocol::action smtp_server_protocol::do_mail(std::string_view arg, std::string& out) {
    if (state_ == state::fresh) return reply(out, "503 5.5.1 Error: send HELO/EHLO first", true);
    if (state_ != state::ready) return reply(out, "503 5.5.1 Error: nested MAIL command", true);
    if (p_.role == server_role::submission && !trusted_ && auth_user_.empty()) {
        if (p_.tls_available && !tls_) return reply(out, "530 5.7.0 Must issue a STARTTLS command first", true);
        return reply(out, "530 5.7.0 Authentication required", true);
    }
    mail_from m;
    std::string bad;
    switch (parse_mail_from(arg, m, bad)) {
        case param_error::none: break;
        case param_error::syntax: return reply(out, "501 5.5.4 Syntax: MAIL FROM:<address>", true);
        case param_error::bad_address: return reply(out, "553 5.1.7 Error: bad sender address syntax", true);
        case param_error::too_long: return reply(out, "553 5.1.7 Error: sender address too long", true);
        case param_error::non_ascii:
            return reply(out, "553 5.6.7 Error: non-ASCII sender address without SMTPUTF8", true);
        case param_error::unknown_param:
            return reply(out, "555 5.5.4 Error: unsupported MAIL parameter " + sanitize(bad, 64), true);
        case param_error::bad_param_value:
            return reply(out, "501 5.5.4 Error: bad value for MAIL parameter " + sanitize(bad, 64), true);
    }
    if (m.size && *m.size > p_.max_message_size)
        return reply(out, "552 5.3.4 Error: message size exceeds fixed limit", true);
    reset_transaction();
    bdat_failed_ = false;
    env_.sender = m.path.address();
    env_.smtputf8 = m.smtputf8;
    env_.eightbit = m.eightbit;
    state_ = state::mail;
    return reply(out, "250 2.1.0 Ok");
}

smtp_server_protocol::action smtp_server_protocol::do_rcpt(std::string_view arg, std::string& out) {
    if (state_ != state::mail && state_ != state::rcpt) return reply(out, "503 5.5.1 Error: need MAIL command", true);
    if (bdat_) return reply(out, "503 5.5.1 Error: RCPT after BDAT", true);
    rcpt_to r;
    std::string bad;
    switch (parse_rcpt_to(arg, env_.smtputf8, r, bad)) {
        case param_error::none: break;
        case param_error::syntax: return reply(out, "501 5.5.4 Syntax: RCPT TO:<address>", true);
        case param_error::bad_address: return reply(out, "553 5.1.3 Error: bad recipient address syntax", true);
        case param_error::too_long: return reply(out, "553 5.1.3 Error: recipient address too long", true);
        case param_error::non_ascii:
            return reply(out, "553 5.6.7 Error: non-ASCII recipient address without SMTPUTF8", true);
        case param_error::unknown_param:
            return reply(out, "555 5.5.4 Error: unsupported RCPT parameter " + sanitize(bad, 64), true);
        case param_error::bad_param_value:
            return reply(out, "501 5.5.4 Error: bad RCPT parameter", true);
    }
    if (env_.recipients.size() >= p_.max_recipients)
        return reply(out, "452 4.5.3 Error: too many recipients");  // RFC 5321 4.5.3.1.10
    std::string addr = r.path.address();
    if (p_.check_recipient) {
        auto v = p_.check_recipient(addr);
        // A policy refusal is not a client error: not counted towards max_errors.
        if (v.act == rcpt_verdict::action::refuse) return reply(out, v.reply);
        if (v.act == rcpt_verdict::action::drop) {
            ++dropped_;
            state_ = state::rcpt;
            return reply(out, "250 2.1.5 Ok");
        }
    } else if (p_.role == server_role::bounce) {
        return reply(out, "550 5.1.1 Error: no such bounce address", true);  // never a relay
    }
    for (auto& have : env_.recipients)  // duplicate (whatever its case): one delivery
        if (bounce::lower_address(have) == bounce::lower_address(addr)) return reply(out, "250 2.1.5 Ok");
    env_.recipients.push_back(std::move(addr));
    state_ = state::rcpt;
    return reply(out, "250 2.1.5 Ok");
}

smtp_server_protocol::action smtp_server_protocol::on_data_line(const line& l, std::string& out) {
    // RFC 5321 4.1.1.4: the end is CRLF "." CRLF. A "." ended or preceded by
    // a bare LF is content, so "<LF>.<LF>" can never end a message early and
    // smuggle a second one past us.
    if (l.text == "." && !l.too_long && l.crlf && prev_crlf_) return on_end_of_data(out);
    prev_crlf_ = l.crlf;
    std::string_view text = l.text;
    if (!text.empty() && text.front() == '.') text.remove_prefix(1);  // RFC 5321 4.5.2
    if (l.too_long) data_line_too_long_ = true;
    append_content(text);
    return action::none;
}

// One line of the message, without its line end: counted, and kept unless
// the message already failed.
void smtp_server_protocol::append_content(std::string_view text) {
    data_size_ += text.size() + 2;
    if (data_size_ > p_.max_message_size) data_too_big_ = true;
    // After an error the rest is read and dropped, not kept in memory.
    if (data_too_big_ || data_line_too_long_ || !data_refused_.empty()) return;
    // A bare CR becomes a line end, so no receiver down the line can read
    // "<CR>.<CR>" as the end of the message (SMTP smuggling).
    for (std::size_t cr; (cr = text.find('\r')) != std::string_view::npos;) {
        content_.append(text.substr(0, cr)).append("\r\n");
        text.remove_prefix(cr + 1);
    }
    content_.append(text).append("\r\n");
}

std::size_t smtp_server_protocol::buffered() const {
    if (!in_data() || data_too_big_ || data_line_too_long_ || !data_refused_.empty()) return 0;
    return content_.size();
}

std::string smtp_server_protocol::take_for_spill() {
    if (spilled_ == 0) {
        constexpr std::size_t max_header_copy = 256 * 1024;
        auto end = content_.find("\r\n\r\n");
        header_copy_ = content_.substr(0, end == std::string::npos ? std::min(content_.size(), max_header_copy) : end + 2);
    }
    spilled_ += content_.size();
    std::string out;
    out.swap(content_);
    return out;
}

void smtp_server_protocol::refuse_data(std::string reply) {
    if (data_refused_.empty()) data_refused_ = std::move(reply);
    content_.clear();
    content_.shrink_to_fit();
}

// Why the message in progress cannot be kept, if it cannot; counted: the
// client's error (towards max_errors), not the server's.
std::optional<std::string> smtp_server_protocol::data_failure(bool& counted) const {
    counted = true;
    if (!data_refused_.empty()) {
        counted = false;
        return data_refused_;
    }
    if (data_too_big_) return "552 5.3.4 Error: message size exceeds fixed limit";
    if (data_line_too_long_) return "500 5.5.2 Error: message has a line longer than 1000 octets (RFC 5321 4.5.3.1.6)";
    return std::nullopt;
}

smtp_server_protocol::action smtp_server_protocol::on_end_of_data(std::string& out) {
    state_ = state::ready;
    bool counted = false;
    if (auto why = data_failure(counted)) {
        reset_transaction();
        return reply(out, *why, counted);
    }
    unsigned hops = 0;
    std::string campaign;
    for_each_header(spilled_ ? header_copy_ : content_, [&](std::string_view name, std::string_view value) {
        if (iequals(name, "Received")) ++hops;
        else if (campaign.empty() && iequals(name, p_.campaign_header)) campaign = sanitize(value, 200);
    });
    if (auto first = campaign.find_first_not_of(' '); first != std::string::npos) campaign.erase(0, first);
    if (hops >= p_.max_hops) {
        reset_transaction();
        return reply(out, "554 5.4.6 Error: too many hops (mail loop?)", true);
    }
    if (p_.check_message) {
        if (auto refused = p_.check_message(campaign, env_.sender)) {
            reset_transaction();
            return reply(out, *refused, false);  // not the client's error: a campaign system keeps its session
        }
    }
    if (env_.recipients.empty()) {
        // Every recipient was suppressed with bounce.suppressed = "drop".
        reset_transaction();
        return reply(out, "250 2.0.0 Ok: every recipient is suppressed, nothing queued");
    }
    env_.id = p_.new_id ? p_.new_id() : std::string("0000000000000");
    env_.campaign = campaign;
    env_.client = client_ip_;
    env_.helo = helo_;
    env_.auth_user = auth_user_;
    if (spilled_) before_ = received_header();
    else content_.insert(0, received_header());
    return action::commit;
}

std::string smtp_server_protocol::received_header() const {
    // RFC 5321 4.4 trace field; protocol names from RFC 3848 / RFC 6531.
    std::string with = env_.smtputf8 ? "UTF8SMTP" : esmtp_ ? "ESMTP" : "SMTP";
    if (esmtp_ || env_.smtputf8) {
        if (tls_) with += "S";
        if (!auth_user_.empty()) with += "A";
    }
    std::string h = "Received: from " + (helo_.empty() ? std::string("unknown") : helo_) + " ([" + client_ip_ + "])\r\n";
    h += "\tby " + p_.hostname + " (Ricochet) with " + with + " id " + env_.id;
    if (env_.recipients.size() == 1) h += "\r\n\tfor <" + env_.recipients[0] + ">";
    h += "; " + rfc5322_now() + "\r\n";
    return h;
}

void smtp_server_protocol::commit_started() { reset_transaction(); }

std::string smtp_server_protocol::commit_reply(std::error_code ec, const std::string& id) {
    if (ec) return "452 4.3.1 Error: insufficient system storage, try again later\r\n";
    return "250 2.0.0 Ok: queued as " + id + "\r\n";
}

void smtp_server_protocol::on_commit_result(std::error_code ec, const std::string& id, std::string& out) {
    out.append(commit_reply(ec, id));
    if (!ec) commit_succeeded(error_count_);
    commit_started();
}

// RFC 3030: "BDAT" SP chunk-size [SP "LAST"], the chunk's octets right
// after the CRLF. Every chunk is read whole (chunk_left()), even one that is
// refused, or its octets would be read as commands; only a size that cannot
// be read (bad syntax, or over the message size limit on its own) ends the
// session.
smtp_server_protocol::action smtp_server_protocol::do_bdat(std::string_view arg, std::string& out) {
    auto sp = arg.find(' ');
    std::string_view size = arg.substr(0, sp), marker = sp == std::string_view::npos ? "" : arg.substr(sp + 1);
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(size.data(), size.data() + size.size(), n);
    if (size.empty() || ec != std::errc{} || end != size.data() + size.size() || (!marker.empty() && !iequals(marker, "LAST"))) {
        out.append("521 5.5.4 Error: syntax is BDAT size [LAST]; the chunk cannot be skipped, closing the connection\r\n");
        return action::close;
    }
    if (n > p_.max_message_size) {
        out.append("552 5.3.4 Error: message size exceeds fixed limit; closing the connection\r\n");
        return action::close;
    }
    chunk_size_ = chunk_left_ = n;
    chunk_last_ = !marker.empty();
    chunk_keep_ = chunk_counted_ = false;
    chunk_reply_.clear();
    if (bdat_failed_) {
        // Pipelined after a refused chunk of the same message: not a new error.
        chunk_reply_ = "503 5.5.1 Error: " + std::to_string(n) + " octets discarded after an earlier error (RSET to start again)";
        if (chunk_last_) bdat_failed_ = false;
        return action::chunk;
    }
    chunk_counted_ = true;
    if (state_ == state::fresh) chunk_reply_ = "503 5.5.1 Error: send HELO/EHLO first";
    else if (state_ == state::ready) chunk_reply_ = "503 5.5.1 Error: need MAIL command";
    else if (state_ == state::mail) chunk_reply_ = "503 5.5.1 Error: need RCPT command";
    else if (state_ != state::rcpt) chunk_reply_ = "503 5.5.1 Error: bad sequence of commands";
    else if (bdat_octets_ + n > p_.max_message_size) {
        chunk_reply_ = "552 5.3.4 Error: message size exceeds fixed limit";
        reset_transaction();
    } else {
        chunk_keep_ = true;
        chunk_counted_ = false;
        bdat_ = true;
        return action::chunk;
    }
    bdat_failed_ = !chunk_last_;
    return action::chunk;
}

void smtp_server_protocol::on_chunk(std::string_view d) {
    chunk_left_ -= std::min<std::uint64_t>(chunk_left_, d.size());
    if (!chunk_keep_) return;
    bdat_octets_ += d.size();
    while (!d.empty()) {
        if (data_too_big_ || data_line_too_long_ || !data_refused_.empty()) return;  // the rest is dropped
        auto lf = d.find('\n');
        std::string_view piece = d.substr(0, lf);
        d.remove_prefix(lf == std::string_view::npos ? d.size() : lf + 1);
        if (lf == std::string_view::npos || !bdat_line_.empty()) {
            // A line split between reads or chunks: gathered, up to the limit.
            if (bdat_line_.size() + piece.size() > 1000) data_line_too_long_ = true;
            else bdat_line_.append(piece);
            if (lf == std::string_view::npos) return;
            chunk_line(bdat_line_);
            bdat_line_.clear();
        } else {
            chunk_line(piece);
        }
    }
}

// A line of a chunk, without its LF: CR LF and a bare LF both end a line.
void smtp_server_protocol::chunk_line(std::string_view text) {
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (text.size() + 2 > 1000) {
        data_line_too_long_ = true;
        return;
    }
    append_content(text);
}

smtp_server_protocol::action smtp_server_protocol::on_chunk_end(std::string& out) {
    if (!chunk_keep_) return reply(out, chunk_reply_, chunk_counted_);
    chunk_keep_ = false;
    if (!chunk_last_) {
        bool counted = false;
        if (auto why = data_failure(counted)) {
            // RFC 3030 2: a refused chunk fails the transaction; what the
            // client pipelined after it is read and discarded.
            reset_transaction();
            bdat_failed_ = true;
            return reply(out, *why, counted);
        }
        return reply(out, "250 2.0.0 Ok: " + std::to_string(chunk_size_) + " octets");
    }
    if (!bdat_line_.empty() && !data_line_too_long_) {  // the last line had no line end
        std::string last;
        last.swap(bdat_line_);
        chunk_line(last);
    }
    return on_end_of_data(out);
}

void smtp_server_protocol::on_tls_started() {
    // RFC 3207 4.2: forget everything learnt before the handshake.
    tls_ = true;
    state_ = state::fresh;
    bdat_failed_ = false;
    helo_.clear();
    auth_user_.clear();
    esmtp_ = false;
    reset_transaction();
}

}  // namespace ricochet::smtp
