// dsn_intake — see dsn_intake.hpp.
#include "intake/dsn_intake.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/unique_fd.hpp"
#include "bounce/classifier.hpp"
#include "bounce/dsn_parser.hpp"
#include "bounce/verp.hpp"
#include "queue/clock.hpp"
#include "events/make.hpp"
#include "queue/logger.hpp"

namespace ricochet::intake {

namespace {

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// Writes path durably (file and directory synced): the bounce listener
// answers 250 only when a kept message is on disk.
std::error_code write_durably(const std::filesystem::path& path, const std::string& content) {
    if (::mkdir(path.parent_path().c_str(), 0700) != 0 && errno != EEXIST) return base::last_error();
    auto tmp = path;
    tmp += ".tmp";
    std::error_code ec;
    {
        base::unique_fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (!fd) return base::last_error();
        ec = base::write_all(fd.get(), content);
        if (!ec && ::fsync(fd.get()) != 0) ec = base::last_error();
    }
    if (!ec && ::rename(tmp.c_str(), path.c_str()) != 0) ec = base::last_error();
    if (ec) {
        ::unlink(tmp.c_str());
        return ec;
    }
    return base::fsync_dir(path.parent_path());
}

// The record about the recipient the VERP token names: the one that names
// it (as final or original recipient), else the first failure (a forwarded
// address), else the first record.
const bounce::dsn_record* record_for(const bounce::dsn_report& rep, const std::string& rcpt) {
    std::string lr = lower(rcpt);
    for (auto& d : rep.records)
        if (lower(d.recipient) == lr || (!d.original_recipient.empty() && lower(d.original_recipient) == lr)) return &d;
    for (auto& d : rep.records)
        if (d.type == "bounce") return &d;
    return rep.records.empty() ? nullptr : &rep.records[0];
}

}  // namespace

bool dsn_intake::unsubscribe_address(std::string_view rcpt) const {
    if (!unsub_tokens || !unsubscribe) return false;
    auto token = unsubscribe::token_of_mailto(rcpt, bounce_domain);
    return token && unsub_tokens->verify(*token);
}

std::error_code dsn_intake::operator()(queue::envelope& env, std::string& content) const {
    static auto log = named_logger("bounce");
    // Unsubscribe requests by mail first: they need no parsing.
    if (unsub_tokens && unsubscribe) {
        std::vector<std::string> rest;
        for (auto& r : env.recipients) {
            auto token = unsubscribe::token_of_mailto(r, bounce_domain);
            auto t = token ? unsub_tokens->verify(*token) : std::nullopt;
            if (!t) {
                rest.push_back(r);
                continue;
            }
            if (auto why = unsubscribe(*t, "mailto"); !why.empty()) {
                log->error("{}: unsubscribe of <{}> by mail not recorded: {}", env.id, t->recipient, why);
                return std::make_error_code(std::errc::io_error);
            }
            log->info("{}: <{}> unsubscribed by mail (campaign {})", env.id, t->recipient,
                      t->campaign.empty() ? "-" : t->campaign);
        }
        if (rest.empty()) return {};
        env.recipients = std::move(rest);
    }
    auto report = bounce::parse_dsn(content);
    auto now = now_ms();
    std::vector<events::event> evs;
    std::string keep_reason;  // non-empty: the message is kept in unparsed_dir
    struct to_return {
        std::string queue_id;
        queue::failed_recipient f;
    };
    std::vector<to_return> returns;
    auto kept_path = unparsed_dir / (env.id + ".eml");
    // Decisions published elsewhere (a message's `queued`, an earlier
    // bounce) are in the store before it is read.
    publisher.flush();
    for (auto& target_addr : env.recipients) {
        auto target = verp.verify(target_addr, bounce_domain);
        if (!target) continue;  // refused at RCPT already; defensive
        auto known = store.recipient_of(target->queue_id, static_cast<int>(target->recipient));
        std::string campaign = store.campaign_of(target->queue_id);
        auto keep = [&](const std::string& recipient, const std::string& why) {
            keep_reason = why;
            evs.push_back(events::report_noted(target->queue_id, campaign, recipient,
                                               why + "; kept as " + kept_path.string(), {}, now));
            log->warn("{}: {} (recipient {} of {}); kept in {}", env.id, why, target->recipient, target->queue_id,
                      kept_path.string());
        };
        if (!known) {
            // A valid signature for a message the store has no record of (a
            // reset state database): the report cannot be tied to an address,
            // so nothing is recorded against any.
            keep("", "bounce for a message the state store does not know");
            continue;
        }
        const std::string& rcpt = *known;
        const bounce::dsn_record* d = record_for(report, rcpt);
        if (!d) {
            keep(rcpt, "no delivery report found");
            continue;
        }
        if (report.format == "text" && d->type == "bounce") {
            // Free text is a bounce only from a mail system, with a reply code
            // in it: a person's answer to the return path is not a failure.
            if (!env.sender.empty() && !report.from_mail_system) {
                keep(rcpt, "free-text message not from a mail system");
                continue;
            }
            if (!d->reply_code && d->status.empty()) {
                keep(rcpt, "free-text notice without a reply code");
                continue;
            }
        }
        events::reply_fields reply{d->reply_code, d->status, d->diagnostic, d->remote_mta, "dsn"};
        if (d->type == "complaint") {
            evs.push_back(events::complaint(target->queue_id, campaign, rcpt, d->feedback_type, d->remote_mta, now));
        } else if (d->type == "bounce") {
            auto domain = rcpt.substr(rcpt.rfind('@') + 1);
            auto c = classify.classify(bounce::dsn_reply(*d), domain);
            evs.push_back(events::reported_failure(
                target->queue_id, campaign, rcpt, reply,
                {std::string(bounce::to_string(c.k)), std::string(bounce::to_string(c.c)), c.rule}, now));
            if (return_to_sender && !store.final_failure_known(target->queue_id, rcpt)) {
                auto r = bounce::dsn_reply(*d);
                std::string status = !d->status.empty() ? d->status : r.code >= 500 ? "5.0.0" : "4.0.0";
                returns.push_back({target->queue_id, {rcpt, status, d->diagnostic, d->remote_mta}});
            }
        } else {
            // delayed, delivered, autoreply, other ARF feedback: reported, not a bounce
            std::string what = d->type == "feedback" ? "feedback-type: " + d->feedback_type : d->type;
            evs.push_back(events::report_noted(target->queue_id, campaign, rcpt,
                                               what + (d->diagnostic.empty() ? "" : ": " + d->diagnostic), reply, now));
        }
        log->info("{}: {} for <{}> ({} of {}): {} {}", env.id, events::to_string(evs.back().type), rcpt,
                  target->recipient, target->queue_id, d->status, d->diagnostic.substr(0, 200));
    }
    if (!keep_reason.empty()) {
        // Kept for a human before anything is said: if it cannot be written,
        // the sender is told to try again later (452) and nothing is recorded.
        if (auto ec = write_durably(kept_path, content)) {
            log->error("{}: cannot keep an unreadable bounce in {}: {}", env.id, kept_path.string(), ec.message());
            return ec;
        }
    }
    // The sender hears of it before the failure is recorded: if their DSN
    // cannot be queued, the report is refused (452) and comes again.
    for (auto& r : returns) {
        auto sender = store.sender_of(r.queue_id);
        if (!sender || sender->empty()) continue;  // a bounce's bounce, or sent before senders were kept
        if (queue::domain_within(queue::recipient_domain(*sender), queue::recipient_domain("@" + bounce_domain))) continue;
        queue::envelope orig;
        orig.id = r.queue_id;
        orig.sender = *sender;
        orig.recipients = {r.f.address};
        if (auto ec = return_to_sender(orig, {r.f})) {
            log->error("{}: cannot queue the DSN for <{}>: {}", env.id, *sender, ec.message());
            return ec;
        }
        log->info("{}: returned the failure of <{}> ({}) to <{}>", env.id, r.f.address, r.queue_id, *sender);
    }
    // Recorded (and the suppression list updated) before the 250, and
    // durable: a power loss after the 250 must not lose the report. A sync
    // that failed gets 452 (the PostgreSQL fsync lesson: never taken as
    // done), though the sender's second try may then count the report twice.
    if (!publisher.publish_now(std::move(evs))) return std::make_error_code(std::errc::io_error);
    return {};
}

}  // namespace ricochet::intake
