// reply_stage — the SMTP step (RFC 5321 3.3: MAIL, RCPT, DATA, end of data)
// a reply in a bounce answered, from the words of the report: Postfix's "(in
// reply to end of DATA command)", Exim's "after end of data", "in reply to
// RCPT TO command", "after MAIL FROM", Sendmail's ">>> COMMAND" transcript
// (sendmail_transcript.hpp) and qmail-remote's sentences (qmail.hpp). The
// classifier reads a refusal after DATA differently from one at RCPT.
#pragma once
#include <string_view>

#include "bounce/smtp_reply.hpp"

namespace ricochet::bounce::dsn {

// t is already lower-case; false (and at untouched) when it names no step.
bool find_stage(std::string_view t, stage& at);

}  // namespace ricochet::bounce::dsn
