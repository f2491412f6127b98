// ricochetctl — the operator's command line (docs/ricochetctl.md). Reading
// commands read the spool and the state store directly, so they work with
// the daemon stopped; changing commands go through the daemon's control
// socket, or, when no daemon runs (the spool lock is free), act directly.
// Exit codes: 0 ok, 1 not found / refused, 2 usage. This file is the
// command line only; each command group has its own file.
#include <ctime>
#include <CLI/CLI.hpp>
#include <iostream>

#include "ctl/common.hpp"

using namespace ricochet;
using namespace ricochet::ctl;

int main(int argc, char** argv) {
    CLI::App app{"ricochetctl - inspect and steer the Ricochet queue"};
    app.require_subcommand(1);
    std::string config_path = "etc/ricochet.toml";
    app.add_option("--config", config_path, "configuration file")->capture_default_str();
    bool as_json = false;

    auto* q = app.add_subcommand("queue", "inspect and change the queue");
    q->require_subcommand(1);
    auto* summary = q->add_subcommand("summary", "counts by destination domain and state");
    summary->add_flag("--json", as_json);
    ctl::list_filter lf;
    auto* list = q->add_subcommand("list", "messages in the queue");
    list->add_option("--domain", lf.domain);
    list->add_option("--state", lf.state)->check(CLI::IsMember({"active", "deferred", "hold"}));
    list->add_option("--campaign", lf.campaign);
    list->add_flag("--json", as_json);
    std::string show_id;
    auto* show = q->add_subcommand("show", "one message: envelope, headers, recipients");
    show->add_option("ID", show_id)->required();
    show->add_flag("--json", as_json);

    queue::selector sel;
    std::optional<queue::admin_op> op;
    for (auto [name, o, help] : {std::tuple{"flush", queue::admin_op::flush, "retry deferred messages now"},
                                 std::tuple{"hold", queue::admin_op::hold, "park messages (no delivery attempts)"},
                                 std::tuple{"release", queue::admin_op::release, "unpark held messages"},
                                 std::tuple{"delete", queue::admin_op::remove, "remove messages without bouncing"}}) {
        auto* sc = q->add_subcommand(name, help);
        sc->add_option("ID", sel.id, "queue id");
        sc->add_option("--domain", sel.domain, "every message with a recipient in this domain");
        sc->add_option("--campaign", sel.campaign, "every message of this campaign");
        sc->add_flag("--all", sel.all, "every message");
        sc->add_flag("--json", as_json);
        sc->callback([&op, o = o] { op = o; });
    }

    auto* b = app.add_subcommand("bounce", "the bounce engine");
    b->require_subcommand(1);
    std::string reply_text, reply_domain, reply_stage = "rcpt";
    auto* classify = b->add_subcommand("classify", "how a reply is classified, and which rule matched");
    classify->add_option("REPLY", reply_text, "the reply, e.g. \"550 5.1.1 user unknown\"")->required();
    classify->add_option("--domain", reply_domain, "the recipient's domain");
    classify->add_option("--stage", reply_stage, "the stage it came at (rcpt, mail, data, end_of_data, ...)");
    classify->add_flag("--json", as_json);
    std::string eml;
    auto* parse = b->add_subcommand("parse", "the delivery reports found in a bounce message");
    parse->add_option("FILE", eml, "a bounce message (.eml)")->required();
    parse->add_flag("--json", as_json);

    auto* rc = app.add_subcommand("recipient", "what is known about an address");
    rc->require_subcommand(1);
    std::string addr, list_status;
    auto* rshow = rc->add_subcommand("show", "status, bounce count, first/last bounce, reason, history");
    rshow->add_option("ADDR", addr)->required();
    rshow->add_flag("--json", as_json);
    auto* rlist = rc->add_subcommand("list", "addresses with a status");
    rlist->add_option("--status", list_status)->required()->check(CLI::IsMember({"bounced", "held", "unsubscribed"}));
    rlist->add_flag("--json", as_json);
    std::optional<std::pair<bounce::address_status, std::string>> set_to;
    for (auto [name, st, help] : {std::tuple{"clear", bounce::address_status::active, "operator confirmed the address: back to active"},
                                  std::tuple{"engage", bounce::address_status::active, "an open or click was seen: back to active"},
                                  std::tuple{"unsubscribe", bounce::address_status::unsubscribed, "suppress for good"}}) {
        auto* sc = rc->add_subcommand(name, help);
        sc->add_option("ADDR", addr)->required();
        sc->add_flag("--json", as_json);
        sc->callback([&set_to, st = st, name = std::string(name)] { set_to = std::pair{st, name}; });
    }
    auto* cp = app.add_subcommand("campaign", "the campaign circuit breaker (ID, or @domain for a sender domain)");
    cp->require_subcommand(1);
    std::string campaign_id;
    auto* clist = cp->add_subcommand("list", "every campaign and sender domain in the window: rates and state");
    clist->add_flag("--json", as_json);
    auto* cshow = cp->add_subcommand("show", "sent, delivered, bounces by kind, complaints, rates, state, when and why");
    cshow->add_option("ID", campaign_id)->required();
    cshow->add_flag("--json", as_json);
    auto* cpause = cp->add_subcommand("pause", "hold its queued messages; new ones get 451 (injection 409)");
    cpause->add_option("ID", campaign_id)->required();
    cpause->add_flag("--json", as_json);
    auto* cresume = cp->add_subcommand("resume", "release its held messages and start judging afresh");
    cresume->add_option("ID", campaign_id)->required();
    cresume->add_flag("--json", as_json);
    auto* shp = app.add_subcommand("shaping", "traffic shaping: rules, pools, rates, resting IPs, warm-up");
    shp->require_subcommand(1);
    std::string shaping_domain;
    auto* shshow = shp->add_subcommand("show", "the rules and pools; each destination's rate, rest and warm-up per source IP");
    shshow->add_option("DOMAIN", shaping_domain, "only the destination this domain falls under");
    shshow->add_flag("--json", as_json);
    auto* tlsc = app.add_subcommand("tls", "transport security of delivery: MTA-STS policies, TLS-RPT reports");
    tlsc->require_subcommand(1);
    std::string tls_domain, tls_day = "yesterday";
    auto* tshow = tlsc->add_subcommand("show", "the MTA-STS policy in force for a domain, today's TLS results per MX host");
    tshow->add_option("DOMAIN", tls_domain)->required();
    tshow->add_flag("--json", as_json);
    auto* treport = tlsc->add_subcommand("report", "queue a day's TLS-RPT reports now (sent daily anyway)");
    treport->add_option("--day", tls_day, "YYYY-MM-DD, yesterday (default) or today (the counts so far)");
    treport->add_flag("--json", as_json);
    std::string st_campaign, st_domain, st_since;
    auto* stats = app.add_subcommand("stats", "sent, delivered, deferred, bounces by kind, bounce rate");
    stats->add_option("--campaign", st_campaign);
    stats->add_option("--domain", st_domain);
    stats->add_option("--since", st_since, "e.g. 24h, 7d");
    stats->add_flag("--json", as_json);

    std::string older_than;
    auto* stc = app.add_subcommand("state", "the state store");
    stc->require_subcommand(1);
    auto* prune = stc->add_subcommand("prune", "retention now: old decisions (kept as daily totals), messages, unreadable DSNs");
    prune->add_option("--older-than", older_than, "instead of retention.decisions, e.g. 30d");
    prune->add_flag("--json", as_json);
    std::string mig_from, mig_to;
    bool mig_force = false;
    auto* migrate = stc->add_subcommand(
        "migrate", "move a node's SQLite state into the shared PostgreSQL database (ricochetd stopped)");
    migrate->add_option("--from", mig_from, "sqlite:PATH (default: server.state when it is SQLite)");
    migrate->add_option("--to", mig_to, "postgresql://user:password@host:port/database")->required();
    migrate->add_flag("--force", mig_force, "move a file that was moved before (its decisions count twice)");
    migrate->add_flag("--json", as_json);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return 2;
    }

    try {
        config cfg;
        std::string error;
        if (!load_config(config_path, cfg, error)) die(2, error);
        if (summary->parsed()) return queue_summary(cfg, as_json);
        if (list->parsed()) return queue_list(cfg, lf, as_json);
        if (show->parsed()) return queue_show(cfg, show_id, as_json);
        if (op) return queue_admin(cfg, *op, sel, as_json);
        if (classify->parsed()) return bounce_classify(cfg, reply_text, reply_domain, reply_stage, as_json);
        if (parse->parsed()) return bounce_parse(cfg, eml, as_json);
        if (rshow->parsed()) return recipient_show(cfg, addr, as_json);
        if (rlist->parsed()) return recipient_list(cfg, list_status, as_json);
        if (set_to) return recipient_set(cfg, addr, set_to->first, set_to->second, as_json);
        if (stats->parsed()) return ctl::stats(cfg, st_campaign, st_domain, st_since, as_json);
        if (prune->parsed()) return state_prune(cfg, older_than, as_json);
        if (migrate->parsed()) return state_migrate(cfg, mig_from, mig_to, mig_force, as_json);
        if (clist->parsed()) return campaign_list(cfg, as_json);
        if (shshow->parsed()) return shaping_show(cfg, shaping_domain, as_json);
        if (tshow->parsed()) return tls_show(cfg, tls_domain, as_json);
        if (treport->parsed()) {
            if (tls_day == "yesterday") {
                std::time_t t = std::time(nullptr) - 86400;
                std::tm tm{};
                gmtime_r(&t, &tm);
                char buf[16];
                std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
                tls_day = buf;
            }
            return tls_report(cfg, tls_day, as_json);
        }
        if (cshow->parsed()) return campaign_show(cfg, campaign_id, as_json);
        if (cpause->parsed() || cresume->parsed()) return campaign_set(cfg, campaign_id, cpause->parsed(), as_json);
    } catch (const exit_code& e) {
        return e.code;
    } catch (const std::exception& e) {
        std::cerr << "ricochetctl: " << e.what() << "\n";
        return 1;
    }
    return 2;
}
