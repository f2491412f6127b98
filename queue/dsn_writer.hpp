// dsn_writer — an RFC 3464 delivery status notification for the original
// sender (bounce.return_to_sender = true): a multipart/report with a short
// explanation, the machine-readable message/delivery-status part and the
// original message's headers (text/rfc822-headers). It is sent from the null
// sender, so it can never bounce back into a loop (RFC 5321 4.5.5).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "queue/envelope.hpp"

namespace ricochet::queue {

struct failed_recipient {
    std::string address, status, diagnostic, remote_mta, action = "failed";
};

// The envelope it travels in: from the null sender (RFC 5321 4.5.5) to the
// original's sender, submitted by ourselves.
envelope dsn_envelope(std::string id, const envelope& original, const std::string& reporting_host);

// The whole message (CRLF line ends), ready for the spool.
std::string write_dsn(const std::string& reporting_host, const envelope& original, const std::string& original_content,
                      const std::vector<failed_recipient>& failed, std::int64_t now_ms);

}  // namespace ricochet::queue
