// reply_stage — see reply_stage.hpp.
#include "bounce/dsn/reply_stage.hpp"

#include "bounce/dsn/qmail.hpp"
#include "bounce/dsn/sendmail_transcript.hpp"

namespace ricochet::bounce::dsn {

bool find_stage(std::string_view raw, stage& at) {
    // Sendmail's transcript: the last ">>> COMMAND" before the first "<<< 4xx/5xx".
    if (sendmail_transcript_stage(raw, at)) return true;
    // Notices fold long lines ("(in reply to RCPT\n    TO command)"): the
    // markers are looked for in the text with each run of white space as
    // one space.
    std::string folded;
    folded.reserve(raw.size());
    for (char c : raw) {
        bool space = c == ' ' || c == '\t' || c == '\r' || c == '\n';
        if (space && !folded.empty() && folded.back() == ' ') continue;
        folded += space ? ' ' : c;
    }
    std::string_view t = folded;
    struct { std::string_view marker; stage at; } markers[] = {
        {"end of data", stage::end_of_data}, {"after data", stage::end_of_data}, {"reply to data command", stage::data},
        {"rcpt to", stage::rcpt}, {"after rcpt", stage::rcpt}, {"mail from", stage::mail}};
    // "in reply to" up to 40 octets before the marker, or "after" up to 20.
    auto preceded = [&](std::size_t p, std::string_view word, std::size_t window) {
        std::size_t from = p > window ? p - window : 0;
        auto q = t.substr(from, p - from + word.size()).find(word);
        return q != std::string_view::npos;
    };
    std::size_t best = std::string_view::npos;
    for (auto& m : markers) {
        for (auto p = t.find(m.marker); p != std::string_view::npos && p < best; p = t.find(m.marker, p + 1)) {
            if (preceded(p, "in reply to", 40) || preceded(p, "after", 20)) {
                best = p;
                at = m.at;
                break;
            }
        }
    }
    // Notices that write the step as a label before the reply: "SMTP:RCPT
    // host 192.0.2.8: 553 ..." (the Technical details of several gateways),
    // "SMTP error from remote server for RCPT TO command"; and replies whose
    // words only fit one step.
    struct { std::string_view marker; stage at; } labels[] = {
        {"smtp:rcpt", stage::rcpt}, {"smtp:mail", stage::mail}, {"smtp:data", stage::data},
        {"for rcpt to command", stage::rcpt}, {"for mail from command", stage::mail}, {"for data command", stage::data},
        // Postfix smtpd's reject texts name the address they refuse, which
        // only RCPT TO and MAIL FROM carry (postconf(5), "smtpd_recipient_restrictions").
        {"recipient address rejected", stage::rcpt}, {"sender address rejected", stage::mail}};
    for (auto& m : labels)
        if (auto p = t.find(m.marker); p != std::string_view::npos && p < best) {
            best = p;
            at = m.at;
        }
    // qmail-remote's own sentences name the step without "in reply to".
    if (auto q = qmail_sentence_stage(t); q && q->offset < best) {
        best = q->offset;
        at = q->at;
    }
    return best != std::string_view::npos;
}

}  // namespace ricochet::bounce::dsn
