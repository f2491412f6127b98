// dsn_json — see dsn_json.hpp.
#include "bounce/dsn_json.hpp"

namespace ricochet::bounce {

nlohmann::json dsn_records_json(const dsn_report& rep, const classifier& cl) {
    nlohmann::json arr = nlohmann::json::array();
    for (auto& d : rep.records) {
        nlohmann::json j{{"type", d.type}, {"recipient", d.recipient}, {"action", d.action}, {"enhanced", d.status},
                         {"code", d.reply_code}, {"reply", d.diagnostic}, {"mx", d.remote_mta},
                         {"reporting_mta", d.reporting_mta}, {"sync", false}, {"format", rep.format}};
        if (!d.original_recipient.empty()) j["original_recipient"] = d.original_recipient;
        if (!d.feedback_type.empty()) j["feedback_type"] = d.feedback_type;
        if (d.type == "bounce" || d.type == "delayed") {
            auto domain = d.recipient.substr(d.recipient.rfind('@') + 1);
            auto c = cl.classify(dsn_reply(d), domain);
            j["kind"] = std::string(to_string(c.k));
            j["category"] = std::string(to_string(c.c));
            j["rule"] = c.rule;
        }
        arr.push_back(j);
    }
    return arr;
}

}  // namespace ricochet::bounce
