// qmail — what qmail's failure notices say that no other MTA's do.
//
// Format: QSBMF, the qmail-send bounce message format (D. J. Bernstein,
// https://cr.yp.to/proto/qsbmf.txt): "Hi. This is the qmail-send program
// at HOST.", then one paragraph per address ("<a@b>:" and the reason), then
// "--- Below this line is a copy of the message.". Sent by qmail and its
// descendants (netqmail, notqmail, vpopmail set-ups). No DSN, no status
// field: the free-text reader (free_text.cpp) finds the addresses and codes;
// this file reads the sentences qmail-remote(8) writes about the SMTP step
// that failed, which never say "in reply to".
#pragma once
#include <cstddef>
#include <optional>
#include <string_view>

#include "bounce/smtp_reply.hpp"

namespace ricochet::bounce::dsn {

struct stage_mention {
    std::size_t offset = 0;  // where in the text the sentence starts
    stage at = stage::rcpt;
};

// The first of qmail-remote's step sentences in lt (lower-case): "Connected
// to HOST but greeting failed.", "... but my name was rejected.", "... but
// sender was rejected.", "HOST does not like recipient.", "HOST failed on
// DATA command.", "HOST failed after I sent the message.". None: nullopt.
std::optional<stage_mention> qmail_sentence_stage(std::string_view lt);

}  // namespace ricochet::bounce::dsn
