// inject — `POST /v1/messages` up to the spool: the JSON body read and
// checked, the message taken as given ("content") or built (compose.hpp),
// every recipient put through the same suppression check as RCPT TO on the
// submission port, and the envelope made ready for the same group commit.
// The caller submits it and answers 202 only once the spool says it is on
// disk, as the submission port answers 250. Pure: no Asio.
//
// Bad input is a 400 with one line saying what is wrong; nothing is queued.
// A message whose every recipient is refused is not queued (queue_id null).
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "queue/envelope.hpp"

namespace ricochet::bounce {
class suppression_list;
}

namespace ricochet::submission {

// Why a held or unsubscribed address is refused ("is held after 3
// bounce(s) (last: user_unknown)", "has unsubscribed", "is on the
// suppression list (@example.com)"); nullopt: not suppressed.
std::optional<std::string> suppressed_because(const bounce::suppression_list& s, std::string_view address);

// A suppression entry as typed ("User@Example.com", "<a@b>", "@example.com")
// in its stored form (lower case, no brackets); nullopt when it is neither
// an address nor "@domain".
std::optional<std::string> suppression_entry_of(std::string_view text);

// The request body, its objects kept in the order they were written (the
// extra headers come out in the order given).
using body_json = nlohmann::ordered_json;

struct inject_limits {
    std::string hostname;
    std::string campaign_header = "X-Campaign-ID";
    std::uint64_t max_message_size = 26214400;
    std::uint32_t max_recipients = 1000;
};

struct recipient_result {
    std::string address, status, reason;  // status "queued" or "refused"
};

struct injection {
    queue::envelope env;  // id, sender, accepted recipients, campaign, client, auth_user, flags
    std::string content;  // as it will be sent: a Received line first, CRLF, not dot-stuffed
    std::vector<recipient_result> results;  // every recipient asked for, in order
};

// From the request body (parsed JSON). new_id is asked once, for a
// message with at least one recipient accepted.
std::optional<injection> prepare_injection(const body_json& body, const inject_limits& lim,
                                           const bounce::suppression_list& suppression, const std::string& client_ip,
                                           const std::string& user, const std::function<std::string()>& new_id,
                                           std::int64_t now_ms, std::string& error);

// The 202 (or 200 when nothing was queued) body.
nlohmann::json injection_reply(const injection& inj);

}  // namespace ricochet::submission
