// ses_json — reads Amazon SES notifications delivered by mail: an Amazon SNS
// topic with an e-mail subscription sends each SES notification as a
// text/plain message whose body is the JSON notification, followed by SNS's
// footer. The JSON is documented in the Amazon SES Developer Guide,
// "Amazon SNS notification contents for Amazon SES" (notificationType
// Bounce, Complaint, Delivery) and "Event publishing" (eventType, also
// DeliveryDelay): the recipients with their own action, status and
// diagnosticCode, and the bounce type and sub-type. For senders who relay
// through SES and point its notifications at our bounce address.
#include <nlohmann/json.hpp>

#include <sstream>

#include "bounce/dsn/codes.hpp"
#include "bounce/dsn/limits.hpp"
#include "bounce/dsn/readers.hpp"
#include "bounce/dsn/reply_stage.hpp"
#include "bounce/dsn/text.hpp"

namespace ricochet::bounce::dsn {

bool read_ses_json(const std::string& text, dsn_report& rep) {
    auto open = text.find_first_not_of(" \t\r\n");
    if (open == std::string::npos || text[open] != '{') return false;
    if (text.find("\"notificationType\"") == std::string::npos && text.find("\"eventType\"") == std::string::npos &&
        text.find("\\\"notificationType\\\"") == std::string::npos && text.find("\\\"eventType\\\"") == std::string::npos)
        return false;
    nlohmann::json j;
    try {
        std::istringstream in(text.substr(open));
        in >> j;  // stops after the object: the SNS footer follows it
    } catch (const nlohmann::json::exception&) {
        return false;
    }
    auto str = [](const nlohmann::json& o, const char* k) {
        auto it = o.find(k);
        return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    // An SNS envelope forwarded as it is (an HTTP or SQS subscriber that
    // mails it on): {"Type": "Notification", "Message": "<the SES JSON as a
    // string>"} (Amazon SNS Developer Guide, "HTTP/HTTPS notification JSON
    // format").
    if (str(j, "Type") == "Notification" && j.contains("Message") && j["Message"].is_string()) {
        try {
            j = nlohmann::json::parse(j["Message"].get<std::string>());
        } catch (const nlohmann::json::exception&) {
            return false;
        }
        if (!j.is_object()) return false;
    }
    std::string type = str(j, "notificationType");
    if (type.empty()) type = str(j, "eventType");
    // What a bounce sub-type says when SES gives no diagnostic of its own,
    // in words the classifier reads.
    static const std::pair<std::string_view, std::string_view> subtypes[] = {
        {"NoEmail", "no such user"},
        {"Suppressed", "address on the suppression list"},
        {"OnAccountSuppressionList", "address on the suppression list"},
        {"MailboxFull", "mailbox full"},
        {"MessageTooLarge", "message too large"},
        {"ContentRejected", "content rejected"},
        {"AttachmentRejected", "attachment not allowed"}};
    auto add = [&](const nlohmann::json& who, const std::string& record_type, const nlohmann::json& section) {
        if (rep.records.size() >= max_records) return;
        dsn_record d;
        d.type = record_type;
        d.recipient = who.is_string() ? who.get<std::string>() : who.is_object() ? str(who, "emailAddress") : "";
        if (!valid_address(d.recipient)) return;
        if (who.is_object()) {
            d.action = lower(str(who, "action"));
            d.status = trim(str(who, "status"));
            d.diagnostic = strip_type(str(who, "diagnosticCode"));
        }
        d.reporting_mta = strip_type(str(section, "reportingMTA"));
        d.remote_mta = str(section, "remoteMtaIp");
        if (d.diagnostic.empty()) d.diagnostic = str(section, "smtpResponse");
        if (d.diagnostic.empty())
            for (auto& [sub, words] : subtypes)
                if (str(section, "bounceSubType") == sub) d.diagnostic = std::string(words);
        std::string dstatus;
        find_codes(d.diagnostic, d.reply_code, dstatus);
        if (d.status.empty()) d.status = dstatus;
        if (d.status.empty() && !d.reply_code && record_type == "bounce")  // Transient, Undetermined: not final for the address
            d.status = str(section, "bounceType") == "Permanent" ? "5.0.0" : "4.0.0";
        d.stage_known = find_stage(lower(d.diagnostic), d.at);
        if (record_type == "complaint") {
            d.feedback_type = lower(str(section, "complaintFeedbackType"));
            if (d.feedback_type.empty()) d.feedback_type = "abuse";  // SES: a recipient marked it as spam
            if (d.feedback_type != "abuse" && d.feedback_type != "fraud" && d.feedback_type != "opt-out")
                d.type = "feedback";
        }
        rep.records.push_back(std::move(d));
    };
    auto each = [&](const char* section_key, const char* list_key, const std::string& record_type) {
        auto sec = j.find(section_key);
        if (sec == j.end() || !sec->is_object()) return;
        auto list = sec->find(list_key);
        if (list == sec->end() || !list->is_array()) return;
        for (auto& who : *list) add(who, record_type, *sec);
    };
    if (type == "Bounce") each("bounce", "bouncedRecipients", "bounce");
    else if (type == "Complaint") each("complaint", "complainedRecipients", "complaint");
    else if (type == "Delivery") each("delivery", "recipients", "delivered");
    else if (type == "DeliveryDelay") each("deliveryDelay", "delayedRecipients", "delayed");
    else return false;
    if (rep.records.empty()) return false;
    rep.format = type == "Complaint" ? "arf" : "ses";
    return true;
}

}  // namespace ricochet::bounce::dsn
