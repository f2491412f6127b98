// dsn_intake — see dsn_intake.hpp.
#include "mta/dsn_intake.hpp"
#include "queue/clock.hpp"

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bounce/classifier.hpp"
#include "bounce/dsn_parser.hpp"
#include "bounce/verp.hpp"
#include "queue/events_log.hpp"
#include "queue/logger.hpp"

namespace ricochet::mta {
using nlohmann::json;

std::error_code dsn_intake::operator()(queue::envelope& env, std::string& content) const {
    static auto log = named_logger("bounce");
    auto report = bounce::parse_dsn(content);
    auto now = now_ms();
    std::vector<queue::decision> ds;
    std::vector<json> evs;
    for (auto& target_addr : env.recipients) {
        auto target = verp.verify(target_addr, bounce_domain);
        if (!target) continue;  // refused at RCPT already; defensive
        std::string rcpt = store.recipient_of(target->queue_id, static_cast<int>(target->recipient)).value_or("");
        std::string campaign = store.campaign_of(target->queue_id);
        if (report.records.empty()) {
            // Kept for a human: never silently dropped.
            std::error_code ec;
            std::filesystem::create_directories(unparsed_dir, ec);
            auto path = unparsed_dir / (env.id + ".eml");
            std::ofstream(path, std::ios::binary) << content;
            log->warn("{}: no delivery report found in a bounce for {} (recipient {} of {}); kept in {}", env.id,
                      rcpt.empty() ? "?" : rcpt, target->recipient, target->queue_id, path.string());
            evs.push_back({{"type", "dsn"}, {"queue_id", target->queue_id}, {"campaign", campaign},
                           {"recipient", rcpt}, {"reply", "no delivery report found; kept as " + path.string()},
                           {"sync", false}});
            continue;
        }
        if (rcpt.empty()) rcpt = report.records[0].recipient;  // sent before the store knew it
        auto& d = report.records[0];  // one VERP address = one recipient of one message
        json ev{{"queue_id", target->queue_id}, {"campaign", campaign}, {"recipient", rcpt}, {"code", d.reply_code},
                {"enhanced", d.status}, {"reply", d.diagnostic}, {"mx", d.remote_mta}, {"stage", "dsn"},
                {"sync", false}, {"kind", nullptr}, {"category", nullptr}, {"rule", nullptr}, {"attempt", nullptr}};
        if (d.type == "complaint") {
            ev["type"] = "complaint";
            ev["reply"] = "feedback-type: " + d.feedback_type;
            ds.push_back({now, "complaint", target->queue_id, campaign, rcpt, "block", "complaint", "arf",
                          "feedback-type: " + d.feedback_type});
        } else if (d.type == "bounce") {
            auto domain = rcpt.substr(rcpt.rfind('@') + 1);
            auto c = classify.classify(bounce::dsn_reply(d), domain);
            ev["type"] = "bounced";
            ev["kind"] = std::string(bounce::to_string(c.k));
            ev["category"] = std::string(bounce::to_string(c.c));
            ev["rule"] = c.rule;
            ds.push_back({now, "bounced", target->queue_id, campaign, rcpt, std::string(bounce::to_string(c.k)),
                          std::string(bounce::to_string(c.c)), c.rule, d.diagnostic});
        } else {
            ev["type"] = "dsn";  // delayed, delivered, autoreply: reported, not a bounce
            ev["reply"] = d.type + (d.diagnostic.empty() ? "" : ": " + d.diagnostic);
        }
        log->info("{}: {} for <{}> ({} of {}): {} {}", env.id, ev["type"].get<std::string>(), rcpt, target->recipient,
                  target->queue_id, d.status, d.diagnostic.substr(0, 200));
        evs.push_back(std::move(ev));
    }
    events.append(evs);
    if (!ds.empty() && record) record(ds);
    return {};
}

}  // namespace ricochet::mta
