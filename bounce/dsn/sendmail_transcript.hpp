// sendmail_transcript — the session transcript in Sendmail's returned mail.
//
// Format: Sendmail's own, no RFC; written by sendmail(8) (savemail.c) under
// "----- Transcript of session follows -----" in the notices of old
// Sendmail (no DSN at all) and in the text part beside the DSN of 8.x, and
// copied by MTAs that imitate it. Documented by example in the Sendmail
// Installation and Operation Guide. For the free-text reader
// (free_text.cpp), which finds the failed addresses, and reply_stage.cpp,
// which names the step a reply answered.
//
// "554 <a@b>... text" (8.10 and later: "550 5.1.1 <a@b>... text") is
// Sendmail's own line on an address, and the remote server's words are the
// "<<< NNN" reply before it, in the same "While talking to HOST:" block, with
// the ">>> COMMAND" it answered:
//
//   ... while talking to mail.example.co.jp.:
//   >>> RCPT To:<a@example.co.jp>
//   <<< 550-5.1.1 Requested User Mailbox not found.
//   <<< 550 5.1.1 No such user here.
//   550 5.1.1 <a@example.co.jp>... User unknown
//
// A reply belongs to an address only when nothing but host lines comes
// between them: no other address's line, no other command.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bounce/smtp_reply.hpp"

namespace ricochet::bounce::dsn {

// The step a ">>> COMMAND" line (without ">>> ", lower-case) is; false for
// any other command. ">>> DATA" counts as the end of data: its refusals are
// read as the message's.
bool sendmail_command_stage(std::string_view c, stage& at);

// The step of the whole transcript in t (lower-case): the last ">>> COMMAND"
// before the first "<<< 4xx/5xx". False (at untouched) when there is none.
bool sendmail_transcript_stage(std::string_view t, stage& at);

struct transcript_reply {
    std::string diagnostic;
    stage at = stage::rcpt;
    bool stage_known = false;
};

class sendmail_transcript {
public:
    // text and lt (text lower-cased, the same length) must outlive this.
    sendmail_transcript(std::string_view text, std::string_view lt);

    // The reply the transcript gives the address lr (lower-case): the remote
    // server's "<<<" lines before its own line, else Sendmail's own words on
    // it. nullopt when no line of the transcript is about lr.
    std::optional<transcript_reply> reply_for(std::string_view lr) const;

private:
    // The same octets as a view into lt_, in their own case.
    std::string original(std::string_view l) const;

    std::string_view text_, lt_;
    std::vector<std::string_view> lines_;      // trimmed, lower-case
    std::vector<std::string_view> addresses_;  // per line: the address it reports, or empty
};

}  // namespace ricochet::bounce::dsn
