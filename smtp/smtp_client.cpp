// smtp_client — see smtp_client.hpp.
#include "smtp/smtp_client.hpp"

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

namespace ricochet::smtp {
namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;
using bounce::smtp_reply;
using bounce::stage;
using namespace asio::experimental::awaitable_operators;
constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

namespace {
// RFC 5321 4.5.2: a line starting with "." gets another; the message ends with CRLF.CRLF.
// head: whole header fields put on top (they never start with a dot).
std::string dot_stuff(const std::string& head, const std::string& content) {
    // RFC 5321 4.5.2: a line that starts with "." gets another one. Copied a
    // run at a time between the lines that need it (most messages: none).
    std::string out;
    out.reserve(head.size() + content.size() + 16);
    out += head;
    std::size_t pos = 0;
    if (!content.empty() && content[0] == '.') out.push_back('.');
    for (;;) {
        auto p = content.find("\n.", pos);
        if (p == std::string::npos) break;
        out.append(content, pos, p + 1 - pos);
        out.push_back('.');
        pos = p + 1;
    }
    out.append(content, pos, std::string::npos);
    if (!content.empty() && content.back() != '\n') out += "\r\n";
    out += ".\r\n";
    return out;
}

bool has_keyword(const smtp_reply& ehlo, std::string_view kw) {
    for (std::size_t i = 1; i < ehlo.lines.size(); ++i) {
        std::string_view l = ehlo.lines[i];
        auto word = l.substr(0, l.find(' '));
        if (word.size() == kw.size() &&
            std::equal(word.begin(), word.end(), kw.begin(), [](char a, char b) { return std::toupper(a) == b; }))
            return true;
    }
    return false;
}
}  // namespace

smtp_connection::smtp_connection(executor ex, asio::ssl::context& tls, const client_options& opt)
    : stream_(tcp::socket(ex), tls), opt_(opt) {}

awaitable<bool> smtp_connection::write(std::string_view data, std::chrono::seconds timeout) {
    asio::steady_timer timer(stream_.get_executor(), timeout);
    std::variant<std::tuple<boost::system::error_code, std::size_t>, std::tuple<boost::system::error_code>> r;
    if (tls_) r = co_await (asio::async_write(stream_, asio::buffer(data), as_tuple) || timer.async_wait(as_tuple));
    else r = co_await (asio::async_write(stream_.next_layer(), asio::buffer(data), as_tuple) || timer.async_wait(as_tuple));
    if (r.index() == 1 || std::get<0>(std::get<0>(r))) {
        usable_ = false;
        co_return false;
    }
    co_return true;
}

awaitable<smtp_reply> smtp_connection::read_reply(stage at, std::chrono::seconds timeout) {
    bounce::reply_parser parser;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        while (auto l = reader_.next()) {
            if (parser.feed(l->text)) {
                bool bad = parser.malformed();
                auto r = parser.take(at);
                if (r.code == 421) usable_ = false;  // RFC 5321 3.8: the server is closing the channel
                if (bad) {
                    usable_ = false;  // out of step with the server: never reuse
                    r.lines.insert(r.lines.begin(), "malformed reply:");
                }
                co_return r;
            }
        }
        asio::steady_timer timer(stream_.get_executor(), deadline);
        std::size_t cap = 0;
        char* p = reader_.prepare(cap);
        std::variant<std::tuple<boost::system::error_code, std::size_t>, std::tuple<boost::system::error_code>> r;
        if (tls_) r = co_await (stream_.async_read_some(asio::buffer(p, cap), as_tuple) || timer.async_wait(as_tuple));
        else r = co_await (stream_.next_layer().async_read_some(asio::buffer(p, cap), as_tuple) || timer.async_wait(as_tuple));
        if (r.index() == 1) {
            usable_ = false;
            co_return smtp_reply::none(at, "timeout waiting for the " + std::string(bounce::to_string(at)) + " reply");
        }
        auto [ec, n] = std::get<0>(r);
        if (ec) {
            usable_ = false;
            co_return smtp_reply::none(at, "connection lost at " + std::string(bounce::to_string(at)) + ": " + ec.message());
        }
        reader_.commit(n);
    }
}

awaitable<smtp_reply> smtp_connection::ehlo() {
    // Capabilities are those of the latest greeting only (RFC 3207 4.2).
    pipelining_ = starttls_ = smtputf8_ = eightbitmime_ = false;
    std::string cmd = "EHLO " + opt_.helo_name + "\r\n";
    if (!co_await write(cmd, opt_.command_timeout)) co_return smtp_reply::none(stage::ehlo, "connection lost sending EHLO");
    auto r = co_await read_reply(stage::ehlo, opt_.command_timeout);
    if (r.code >= 500 && usable_) {
        // RFC 5321 3.2: a server that does not know EHLO gets HELO.
        std::string helo = "HELO " + opt_.helo_name + "\r\n";  // named: no temporaries in co_await (GCC 12)
        if (!co_await write(helo, opt_.command_timeout))
            co_return smtp_reply::none(stage::ehlo, "connection lost sending HELO");
        co_return co_await read_reply(stage::ehlo, opt_.command_timeout);
    }
    if (r.positive()) {
        pipelining_ = has_keyword(r, "PIPELINING");
        starttls_ = has_keyword(r, "STARTTLS");
        smtputf8_ = has_keyword(r, "SMTPUTF8");
        eightbitmime_ = has_keyword(r, "8BITMIME");
    }
    co_return r;
}

namespace {
// RFC 8460 4.3.1 result type of an X.509 verification error.
std::string certificate_result_type(long verify) {
    switch (verify) {
        case X509_V_ERR_HOSTNAME_MISMATCH:
        case X509_V_ERR_IP_ADDRESS_MISMATCH: return "certificate-host-mismatch";
        case X509_V_ERR_CERT_HAS_EXPIRED:
        case X509_V_ERR_CERT_NOT_YET_VALID: return "certificate-expired";
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        case X509_V_ERR_CERT_UNTRUSTED: return "certificate-not-trusted";
        case X509_V_ERR_DANE_NO_MATCH: return "tlsa-invalid";
        default: return "validation-failure";
    }
}
}  // namespace

awaitable<smtp_connection::open_result> smtp_connection::open(const executor& ex, tcp::endpoint ep,
                                                              const std::string& mx, const client_options& opt,
                                                              asio::ssl::context& tls, bool use_tls,
                                                              const std::string& source_ip, tls_demand demand) {
    open_result res;
    auto c = std::make_unique<smtp_connection>(ex, tls, opt);
    c->mx_ = mx;
    c->ip_ = ep.address().to_string();
    if (!source_ip.empty()) {
        // A pool's source address ([[pool]] source_ips): bound before the connect.
        boost::system::error_code bec;
        auto src = asio::ip::make_address(source_ip, bec);
        auto& sock = c->stream_.next_layer();
        if (!bec && src.is_v4() != ep.address().is_v4()) bec = asio::error::address_family_not_supported;
        if (!bec) sock.open(ep.protocol(), bec);
        if (!bec) sock.bind(tcp::endpoint(src, 0), bec);
        if (bec) {
            res.failure = smtp_reply::none(stage::connect, "connect to " + c->ip_ + " from " + source_ip + ": " + bec.message());
            co_return res;
        }
    }
    {
        asio::steady_timer timer(ex, opt.connect_timeout);
        auto r = co_await (c->stream_.next_layer().async_connect(ep, as_tuple) || timer.async_wait(as_tuple));
        if (r.index() == 1) {
            res.failure = smtp_reply::none(stage::connect, "connect to " + c->ip_ + " timed out");
            co_return res;
        }
        if (auto [ec] = std::get<0>(r); ec) {
            res.failure = smtp_reply::none(stage::connect, "connect to " + c->ip_ + ": " + ec.message());
            co_return res;
        }
    }
    auto greeting = co_await c->read_reply(stage::greeting, opt.greeting_timeout);
    if (greeting.code != 220) {
        res.failure = std::move(greeting);
        co_return res;
    }
    auto e = co_await c->ehlo();
    if (!e.positive()) {
        res.failure = std::move(e);
        co_return res;
    }
    // A receiver's policy (MTA-STS enforce) asks for TLS whatever delivery.tls says.
    const bool required = opt.tls == "required" || demand.verify || demand.dane;
    if (use_tls && (opt.tls != "off" || demand.verify || demand.dane)) res.tls.evaluated = true;
    if (!use_tls && (demand.verify || demand.dane)) {  // (no caller does this: never plain text when TLS is demanded)
        res.failure = smtp_reply::none(stage::starttls, "TLS demanded for " + c->mx_ + " but not attempted");
        co_return res;
    }
    auto not_offered = [&](std::string why) {
        res.tls.result_type = "starttls-not-supported";
        res.tls.detail = why;
        if (!required) return false;
        res.failure = smtp_reply::none(stage::starttls, demand.dane     ? "TLS required by the DANE TLSA records of " + c->mx_ + " but " + why
                                                        : demand.verify ? "TLS required by the receiver's MTA-STS policy but " + why
                                                                        : why);
        return true;
    };
    if (res.tls.evaluated && c->starttls_) {
        if (!co_await c->write("STARTTLS\r\n", opt.command_timeout)) {
            res.failure = smtp_reply::none(stage::starttls, "connection lost sending STARTTLS");
            co_return res;
        }
        auto r = co_await c->read_reply(stage::starttls, opt.command_timeout);
        if (r.code != 220) {
            if (not_offered("STARTTLS refused: " + r.text()) || !c->usable_) {
                // Our own policy refuses plain text: temporary, never a bounce.
                if (res.failure.lines.empty()) res.failure = smtp_reply::none(stage::starttls, "STARTTLS refused: " + r.text());
                co_return res;
            }
        } else {
            c->reader_.clear();  // RFC 3207 4.2: nothing from before the handshake
            auto* ssl = c->stream_.native_handle();
            SSL_set_tlsext_host_name(ssl, c->mx_.c_str());
            bool dane_auth = false;  // usable TLSA records: the certificate must match one
            if (demand.dane && !demand.tlsa.empty()) {
                // RFC 7672 3: DANE-EE(3) matches the server's certificate or
                // key with no name check; DANE-TA(2) a CA of the chain it
                // sends, the MX host name checked (a wildcard only as the
                // whole leftmost label, 3.2.3). Delivery passes usable records only.
                if (SSL_dane_enable(ssl, c->mx_.c_str()) > 0) {
                    SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
                    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                    for (auto& t : demand.tlsa)
                        if (SSL_dane_tlsa_add(ssl, t.usage, t.selector, t.mtype,
                                              reinterpret_cast<const unsigned char*>(t.data.data()), t.data.size()) > 0)
                            dane_auth = true;
                }
                if (!dane_auth) {  // records to match, and OpenSSL took none: never go on unchecked
                    res.failure = smtp_reply::none(stage::tls, "cannot set up DANE for " + c->mx_ + " (OpenSSL refused its TLSA records)");
                    co_return res;
                }
                SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
            }
            // Without DANE authentication, the checks the policy or the
            // configuration ask for (also when DANE records were all unusable).
            const bool checked = !dane_auth && (demand.verify || demand.check || opt.tls_verify);
            if (checked) {
                // The name we looked up (RFC 7672 style: the MX host), or the
                // address of a route given as one. The chain is checked on
                // every handshake; only a verifying one fails on it, the
                // others read the result afterwards (testing mode reports it).
                auto* param = SSL_get0_param(ssl);
                boost::system::error_code aec;
                asio::ip::make_address(c->mx_, aec);
                if (!aec) X509_VERIFY_PARAM_set1_ip_asc(param, c->mx_.c_str());
                else SSL_set1_host(ssl, c->mx_.c_str());
                if (demand.verify) SSL_set_verify(ssl, SSL_VERIFY_PEER, nullptr);
            }
            asio::steady_timer timer(ex, opt.command_timeout);
            auto h = co_await (c->stream_.async_handshake(asio::ssl::stream_base::client, as_tuple) ||
                               timer.async_wait(as_tuple));
            long verify = checked || dane_auth ? SSL_get_verify_result(ssl) : X509_V_OK;
            if (verify != X509_V_OK) {
                res.tls.result_type = certificate_result_type(verify);
                res.tls.detail = c->mx_ + ": " + X509_verify_cert_error_string(verify);
            }
            if (h.index() == 1 || std::get<0>(std::get<0>(h))) {
                res.tls_failed = true;
                if (res.tls.result_type.empty()) {
                    res.tls.result_type = "validation-failure";
                    res.tls.detail = "TLS handshake failed";
                }
                std::string why = h.index() == 1 ? std::string("timeout") : std::get<0>(std::get<0>(h)).message();
                if (verify != X509_V_OK) why = "certificate of " + c->mx_ + " not accepted: " + X509_verify_cert_error_string(verify);
                res.failure = smtp_reply::none(stage::tls, "TLS handshake with " + c->ip_ + " failed: " + why);
                co_return res;
            }
            c->tls_ = true;
            res.tls.ok = res.tls.result_type.empty();
            auto e2 = co_await c->ehlo();  // RFC 3207 4.2: capabilities again, inside TLS
            if (!e2.positive()) {
                res.failure = std::move(e2);
                co_return res;
            }
        }
    } else if (res.tls.evaluated) {
        if (not_offered(c->mx_ + " [" + c->ip_ + "] does not offer STARTTLS")) {
            if (!demand.verify && !demand.dane)
                res.failure = smtp_reply::none(stage::starttls, "TLS required but " + c->mx_ + " [" + c->ip_ + "] does not offer STARTTLS");
            co_return res;
        }
    }
    c->idle_since = std::chrono::steady_clock::now();
    res.conn = std::move(c);
    co_return res;
}

awaitable<smtp_connection::transaction> smtp_connection::send(const std::string& return_path, const std::string& rcpt,
                                                              const std::string& head, const std::string& content,
                                                              bool smtputf8, bool eightbit) {
    transaction t;
    if (smtputf8 && !smtputf8_) {
        // RFC 6531 3.4: cannot be sent to a server without SMTPUTF8.
        t.reply.code = 553;
        t.reply.enhanced = "5.6.7";
        t.reply.at = stage::mail;
        t.reply.lines.push_back("message needs SMTPUTF8, which " + mx_ + " does not offer");
        co_return t;
    }
    bool reset = open_transaction_;  // the last one ended early: its MAIL may still stand
    open_transaction_ = true;
    ++transactions_;
    // On a reused connection the first reply read may be the server's own
    // 421 (or its EOF): it closed the idle connection before our commands
    // arrived. That says nothing about this recipient (the delivery tries
    // once more on a fresh connection, where a real 421 is answered again).
    bool first_reply_may_be_stale = transactions_ > 1 && !reset;
    auto stale = [&](const smtp_reply& r) {
        return smtp_reply::none(stage::mail, "reused connection closed by the server: " + r.text());
    };
    std::string mail = "MAIL FROM:<" + return_path + ">";
    if (eightbit && eightbitmime_) mail += " BODY=8BITMIME";
    if (smtputf8) mail += " SMTPUTF8";
    mail += "\r\n";
    std::string rcpt_cmd = "RCPT TO:<" + rcpt + ">\r\n";

    // With PIPELINING, RSET, MAIL, RCPT and DATA go in one write (RFC 2920 3.1).
    if (pipelining_) {
        std::string batch = (reset ? "RSET\r\n" : "") + mail + rcpt_cmd + "DATA\r\n";
        if (!co_await write(batch, opt_.command_timeout)) {
            t.reply = smtp_reply::none(stage::mail, "connection lost sending MAIL");
            t.connection_lost = true;
            co_return t;
        }
        // Once the connection is gone (time-out, EOF), stop reading: each read
        // would wait a whole time-out for nothing.
        auto lost = [&](smtp_reply r) {
            // A real reply (a 421 closing the channel) is kept as it came.
            t.reply = r.code ? std::move(r) : smtp_reply::none(r.at, r.text());
            t.connection_lost = true;
            return t;
        };
        if (reset) {
            auto r = co_await read_reply(stage::mail, opt_.command_timeout);
            if (!r.positive()) {
                // A failed RSET speaks about the connection, not the recipient.
                usable_ = false;
                co_return lost(smtp_reply::none(stage::mail, "RSET failed: " + r.text()));
            }
        }
        auto m = co_await read_reply(stage::mail, opt_.command_timeout);
        if (!usable_ && first_reply_may_be_stale) co_return lost(stale(m));
        if (!usable_) co_return lost(std::move(m));
        auto r = co_await read_reply(stage::rcpt, opt_.command_timeout);
        if (!usable_) co_return lost(std::move(r));
        auto d = co_await read_reply(stage::data, opt_.command_timeout);
        bool failed = false;
        if (!m.positive()) { t.reply = std::move(m); failed = true; }
        else if (!r.positive()) { t.reply = std::move(r); failed = true; }
        if (failed || d.code != 354) {
            if (!failed) t.reply = std::move(d);
            if (d.code == 354) usable_ = false;  // server waits for data we will not send: drop it
            t.connection_lost = !usable_;
            co_return t;
        }
    } else {
        if (reset) {
            if (!co_await write("RSET\r\n", opt_.command_timeout)) {
                t.reply = smtp_reply::none(stage::mail, "connection lost sending RSET");
                t.connection_lost = true;
                co_return t;
            }
            auto r = co_await read_reply(stage::mail, opt_.command_timeout);
            if (!r.positive()) {
                // A failed RSET speaks about the connection, not the recipient.
                t.reply = smtp_reply::none(stage::mail, "RSET failed: " + r.text());
                usable_ = false;
                t.connection_lost = true;
                co_return t;
            }
        }
        for (auto [cmd, st] : {std::pair{&mail, stage::mail}, std::pair{&rcpt_cmd, stage::rcpt}}) {
            if (!co_await write(*cmd, opt_.command_timeout)) {
                t.reply = smtp_reply::none(st, "connection lost");
                t.connection_lost = true;
                co_return t;
            }
            auto r = co_await read_reply(st, opt_.command_timeout);
            if (!r.positive()) {
                t.reply = !usable_ && st == stage::mail && first_reply_may_be_stale ? stale(r) : std::move(r);
                t.connection_lost = !usable_;
                co_return t;
            }
        }
        if (!co_await write("DATA\r\n", opt_.command_timeout)) {
            t.reply = smtp_reply::none(stage::data, "connection lost");
            t.connection_lost = true;
            co_return t;
        }
        auto d = co_await read_reply(stage::data, std::chrono::seconds(120));  // 4.5.3.2.4: 2 minutes
        if (d.code != 354) {
            t.reply = std::move(d);
            t.connection_lost = !usable_;
            co_return t;
        }
    }
    t.before_data = false;
    std::string stuffed = dot_stuff(head, content);  // named: no temporaries in co_await (GCC 12)
    if (!co_await write(stuffed, opt_.data_timeout)) {
        t.reply = smtp_reply::none(stage::end_of_data, "connection lost sending the message");
        t.connection_lost = true;
        co_return t;
    }
    t.reply = co_await read_reply(stage::end_of_data, opt_.data_timeout);
    if (t.reply.code) open_transaction_ = false;  // ended, whatever the reply
    t.connection_lost = !usable_;
    idle_since = std::chrono::steady_clock::now();
    co_return t;
}

awaitable<void> smtp_connection::quit() {
    if (usable_ && co_await write("QUIT\r\n", std::chrono::seconds(10)))
        co_await read_reply(stage::quit, std::chrono::seconds(10));
    usable_ = false;
    boost::system::error_code ec;
    stream_.next_layer().shutdown(tcp::socket::shutdown_both, ec);
    stream_.next_layer().close(ec);
}

}  // namespace ricochet::smtp
