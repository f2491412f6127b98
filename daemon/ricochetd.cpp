// ricochetd — the Ricochet daemon: loads etc/ricochet.toml, recovers the
// spool, and serves the submission port and the control socket. Runs in the
// foreground and logs with spdlog; SIGTERM/SIGINT stop it cleanly, and
// kill -9 at any moment loses nothing that was acknowledged (see queue/README.md).
#include <malloc.h>
#include <openssl/sha.h>
#include <signal.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <boost/asio.hpp>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <future>
#include <mutex>
#include <thread>

#include "bounce/classifier.hpp"
#include "bounce/destination_backoff.hpp"
#include "bounce/suppression_list.hpp"
#include "bounce/verp.hpp"
#include "config/breaker_config.hpp"
#include "config/config.hpp"
#include "daemon/campaign_breaker.hpp"
#include "daemon/control.hpp"
#include "daemon/control_server.hpp"
#include "daemon/event_pipeline.hpp"
#include "daemon/tls_reports.hpp"
#include "daemon/verp_secret.hpp"
#include "delivery/delivery.hpp"
#include "http/api.hpp"
#include "http/http_util.hpp"
#include "http/server.hpp"
#include "http/webhooks.hpp"
#include "events/bus.hpp"
#include "events/jsonl_log.hpp"
#include "events/make.hpp"
#include "events/metrics.hpp"
#include "events/recorder.hpp"
#include "events/sequencer.hpp"
#include "delivery/outgoing.hpp"
#include "delivery/shaping.hpp"
#include "tls/tls_reporter.hpp"
#include "dkim/signer.hpp"
#include "http/unsubscribe.hpp"
#include "intake/bounce_listener.hpp"
#include "intake/dsn_intake.hpp"
#include "unsubscribe/token.hpp"
#include "queue/clock.hpp"
#include "queue/queue_id.hpp"
#include "queue/dsn_writer.hpp"
#include "queue/schedule.hpp"
#include "queue/spool.hpp"
#include "smtp/auth_users.hpp"
#include "smtp/smtp_server.hpp"
#include "state/decision_journal.hpp"
#include "queue/logger.hpp"
#include "state/backend.hpp"
#include "state/pg_event_feed.hpp"
#include "state/pg_listener.hpp"
#include "state/recipient_state.hpp"
#include "state/retention.hpp"
#include "submission/inject.hpp"
#include "submission/submission.hpp"

using namespace ricochet;
using nlohmann::json;

namespace {

// The path of an http(s) URL ("https://host/u/" -> "/u/").
std::string url_path(const std::string& url) {
    http_url u;
    parse_http_url(url, u);
    auto q = u.target.find('?');
    return q == std::string::npos ? u.target : u.target.substr(0, q);
}

std::string local_hostname() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
    return buf;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ricochetd - Ricochet outbound MTA daemon"};
    std::string config_path = "etc/ricochet.toml";
    bool check_only = false;
    app.add_option("--config", config_path, "configuration file")->capture_default_str();
    app.add_flag("--check-config", check_only, "validate the configuration and exit");
    bool dkim_records = false;
    app.add_flag("--dkim-records", dkim_records, "print the DNS TXT record of each [[dkim]] key and exit");
    CLI11_PARSE(app, argc, argv);

    config cfg;
    std::string error;
    if (!load_config(config_path, cfg, error)) {
        std::cerr << "ricochetd: " << error << "\n";
        return 1;
    }
    smtp::auth_users users;
    if (!cfg.submission.auth_users_file.empty() && !users.load(cfg.submission.auth_users_file, error)) {
        std::cerr << "ricochetd: submission.auth_users_file: " << error << "\n";
        return 1;
    }
    bounce::classifier classifier;
    if (!classifier.load(cfg.bounce.rules, error)) {
        std::cerr << "ricochetd: bounce.rules: " << error << "\n";
        return 1;
    }
    classifier.set_final_soft(cfg.bounce.final_soft);
    classifier.set_trusted_domains(cfg.bounce.trusted_domains);
    if (!cfg.http.tokens_file.empty()) {
        http::token_list tokens;
        if (!tokens.load(cfg.http.tokens_file, error)) {
            std::cerr << "ricochetd: http.tokens_file: " << error << "\n";
            return 1;
        }
    }
    // DKIM keys: a bad one is a configuration error, named, before anything starts.
    dkim::signer dkim_signer;
    {
        std::vector<dkim::entry_config> entries;
        for (auto& d : cfg.dkim) {
            dkim::entry_config e{d.domain, d.selector, d.key_file, d.headers, {}};
            dkim::parse_canonicalization(d.canonicalization, e.canon);
            entries.push_back(std::move(e));
        }
        if (!dkim_signer.load(entries, error)) {
            std::cerr << "ricochetd: " << error << "\n";
            return 1;
        }
    }
    if (dkim_records) {
        // "*" stands for each From domain that signs with that key.
        for (auto& r : dkim_signer.records())
            std::cout << r.selector << "._domainkey." << (r.domain == "*" ? "FROM-DOMAIN" : r.domain) << ". IN TXT \""
                      << r.record << "\"\n";
        return 0;
    }
    if (check_only) {
        std::cout << config_path << ": ok (" << classifier.size() << " bounce rules, " << cfg.dkim.size()
                  << " DKIM key(s))\n";
        return 0;
    }

    spdlog::set_default_logger(spdlog::stderr_color_mt("ricochetd"));
    spdlog::set_level(spdlog::level::from_str(cfg.server.log_level));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %n[%P]: %l: %v");
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGXFSZ, SIG_IGN);  // a file size limit shows up as EFBIG from write(), handled as a full disk
    {
        // Every session, pooled connection and spool file takes a descriptor:
        // the soft limit (often 1024) goes up to the hard one, like nginx's
        // worker_rlimit_nofile, so the listeners' own limits are what answer
        // a flood, not EMFILE at accept.
        rlimit nofile{};
        if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
            auto want = nofile.rlim_max == RLIM_INFINITY ? rlim_t(1) << 20 : nofile.rlim_max;
            rlimit raised{want, nofile.rlim_max};
            if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) nofile.rlim_cur = want;
        }
        std::uint64_t wanted = std::uint64_t(cfg.submission.max_connections) + cfg.bounce_listener.max_connections +
                               cfg.http.max_connections + cfg.unsubscribe.max_connections + 1024;
        if (nofile.rlim_cur < wanted)
            spdlog::warn("open files limited to {} (ulimit -n); the listeners' connection limits and delivery want about {}",
                         nofile.rlim_cur, wanted);
    }

    std::error_code ec;
    auto spool = queue::spool::open(cfg.server.spool_dir, true, ec, cfg.server.spool_journal,
                                   cfg.server.spool_journal_size);
    if (!spool) {
        spdlog::critical("cannot open spool {}: {}", cfg.server.spool_dir.string(), ec.message());
        return 1;
    }
    if (!spool->try_lock(ec)) {
        spdlog::critical("spool {} is locked: another ricochetd is running on it{}", cfg.server.spool_dir.string(),
                         ec ? " (" + ec.message() + ")" : "");
        return 1;
    }
    auto rep = spool->recover();
    spdlog::info("spool {}: {} active, {} deferred, {} hold; {} unacknowledged discarded, {} corrupt",
                 cfg.server.spool_dir.string(), rep.active, rep.deferred, rep.hold, rep.discarded_incoming, rep.corrupt);

    // The delivery schedule, rebuilt from the spool: active/ is due now,
    // deferred/ at each file's mtime, hold/ never.
    queue::schedule due;
    spdlog::info("schedule rebuilt: {} message(s) to deliver", due.rebuild(rep.entries, now_ms()));
    rep.entries = {};
    ::malloc_trim(0);  // the listing of a big spool is gone; give its pages back

    // Recipient state (server.state's backend) and the in-memory list of
    // suppressed addresses.
    bounce::status_policy policy{cfg.bounce.trusted_domains, static_cast<int>(cfg.bounce.held_after_bounces),
                                 std::int64_t(cfg.bounce.held_after_days) * 86400 * 1000};
    state::set_pg_timeout(static_cast<int>(cfg.server.state_timeout.count()));
    auto store = state::open_state(cfg.server.state, policy, false, error);
    if (!store) {
        spdlog::critical("server.state: {}", error);
        return 1;
    }
    // Several nodes on one PostgreSQL database: this node's number goes into
    // its queue ids (no two nodes make the same one), and a listener keeps
    // the suppression list in step with changes made on every node.
    // Named by the machine, not server.hostname: nodes often share their
    // EHLO name, never their machine and spool.
    std::string node_name = !cfg.server.node_name.empty()
                                ? cfg.server.node_name
                                : local_hostname() + ":" +
                                      std::filesystem::absolute(cfg.server.spool_dir).lexically_normal().string();
    int node = store->node_number(node_name, error);
    if (node < 0) {
        spdlog::critical("server.state: cannot register this node ({}): {}", node_name, error);
        return 1;
    }
    if (node > 0) {
        spool->set_node(static_cast<unsigned>(node));
        spdlog::info("state: node {} ({}) of a shared database", node, node_name);
    }
    bounce::suppression_list suppression;
    std::unique_ptr<state::pg_listener> listener;
    std::atomic<daemon::campaign_breaker*> shared_breaker{nullptr};  // set once the breaker runs
    if (state::backend_of(cfg.server.state, error) == state::backend::postgresql) {
        static auto log = named_logger("state");
        listener = std::make_unique<state::pg_listener>(
            cfg.server.state,
            state::pg_listener::handler{
                [&suppression](const bounce::address_record& r) { suppression.update(r); },
                [&suppression](const std::string& e, bool present) {
                    if (present) suppression.add_entry(e);
                    else suppression.remove_entry(e);
                },
                [&shared_breaker](const std::string& scope) {
                    if (auto* b = shared_breaker.load()) b->remote_change(scope);
                },
                [&suppression](const std::vector<bounce::address_record>& rs, const std::vector<std::string>& es) {
                    suppression.reset(rs, es);
                    log->info("suppression list read from the shared database: {} address(es), {} entries",
                              suppression.size(), suppression.entries());
                },
                [](const std::string& why) {
                    log->error("state: lost the shared database's notifications ({}); the suppression list is "
                               "reloaded when it is back",
                               why);
                },
                [] { log->info("state: listening to the shared database again"); }},
            node);
        // It LISTENs, then reads the list on the same connection: a change
        // committed meanwhile is applied after the load, not undone by it.
        if (!listener->start(error)) {
            spdlog::critical("server.state: {}", error);
            return 1;
        }
    }
    if (!listener) {
        for (auto st : {bounce::address_status::held, bounce::address_status::unsubscribed})
            for (auto& r : store->list(st)) suppression.update(r);
        for (auto& e : store->suppressions()) suppression.add_entry(e.entry);
    }
    spdlog::info("state {}: {} suppressed address(es), {} imported suppression(s)", state::redact_url(cfg.server.state), suppression.size(),
                 suppression.entries());
    // The campaign breaker: its counts are written with the decisions.
    breaker::monitor breaker_monitor(to_breaker_config(cfg));
    if (cfg.breaker.enabled) store->set_breaker(breaker_monitor.cfg());

    // Events: numbered from spool_dir/events.seq, written to events.jsonl.
    events::sequencer seq;
    if (auto sec = seq.open(cfg.server.spool_dir / "events.seq")) {
        spdlog::critical("cannot open {}: {}", (cfg.server.spool_dir / "events.seq").string(), sec.message());
        return 1;
    }
    events::jsonl_log events_file;
    const events::log_rotation events_rotation{cfg.server.events_max_size, cfg.server.events_max_age, cfg.server.events_keep};
    if (auto eec = events_file.open(cfg.server.events_log, events_rotation)) {
        spdlog::critical("cannot open events log {}: {}", cfg.server.events_log.string(), eec.message());
        return 1;
    }
    events::bus bus(seq);
    bus.add(events_file);
    // Several nodes: the log is copied into the shared database (after it is
    // written: the feed reads it back), so /v1/events on any node shows all.
    std::unique_ptr<state::pg_event_feed> event_feed;
    struct nudge_feed final : events::sink {
        state::pg_event_feed* f = nullptr;
        void write(const std::vector<events::event>&) override {
            if (f) f->nudge();
        }
    } feed_nudger;
    if (listener) {
        event_feed = std::make_unique<state::pg_event_feed>(cfg.server.state, cfg.server.events_log, node);
        // Numbered above what the shared table has of this node (its spool,
        // with events.seq, may be new).
        if (auto last = event_feed->last_copied(error); !error.empty())
            spdlog::warn("events: cannot read this node's position in the shared event table: {}", error);
        else if (auto sec = seq.continue_after(last)) {
            spdlog::critical("cannot move {} ahead: {}", (cfg.server.spool_dir / "events.seq").string(), sec.message());
            return 1;
        }
        error.clear();
        feed_nudger.f = event_feed.get();
        bus.add(feed_nudger);
        event_feed->start();
    }
    events::metrics metrics;  // counts what the event log records
    bus.add(metrics);
    // Webhooks read their batches back from the log: they come after it.
    http::webhook_dispatcher webhooks(cfg);
    bus.add(webhooks);
    webhooks.add_metrics(metrics);
    if (!webhooks.start(error)) {
        spdlog::critical("webhooks: {}", error);
        return 1;
    }
    spool->set_max_free_files(static_cast<std::size_t>(cfg.retention.free_files));
    spool->set_commit_observer([&metrics](double s, std::size_t) { metrics.spool_commit.observe(s); });
    // Decisions the store cannot take now (locked, disk full) wait in a
    // journal in the spool and go in, in order, before the next batch and on
    // a timer: none is lost while the store is down.
    state::decision_journal journal(cfg.server.spool_dir / "decisions.pending");
    daemon::event_pipeline pipeline(*store, suppression, journal, bus);
    // Every producer publishes here; the state store, the suppression list
    // and the sinks are written on the recorder's own thread, many events
    // per transaction: the I/O threads never wait on the database (the
    // spool's committer stores its `queued` rows, itself when the recorder
    // is idle: see the batch hook).
    events::recorder recorder([&pipeline](std::vector<events::event>& evs) { pipeline.apply(evs); });
    recorder.set_sync([&store] {
        std::string why;
        if (store->sync(why)) return true;
        spdlog::error("state store: cannot make the last decisions durable: {}", why);
        return false;
    });
    // Decisions a crash left in the journal go in before any listener opens:
    // a DSN for one of those messages, arriving first thing, finds its rows.
    if (!journal.empty()) recorder.publish_now({});
    daemon::campaign_breaker campaign_breaker(cfg, breaker_monitor, *store, *spool, due, recorder);
    if (cfg.breaker.enabled) {
        campaign_breaker.start();
        pipeline.set_breaker(&campaign_breaker);
        shared_breaker = &campaign_breaker;
        // A scope changed on another node since this breaker read its state.
        if (listener) campaign_breaker.remote_change("");
    }
    // The listener's thread calls into the breaker: it stops first.
    struct stop_listener_first {
        std::unique_ptr<state::pg_listener>& l;
        ~stop_listener_first() {
            if (l) l->stop();
        }
    } stop_listener_guard{listener};
    // The spool's committer posts to the recorder: it stops first.
    struct stop_spool_first {
        queue::spool& s;
        ~stop_spool_first() { s.stop(); }
    } stop_spool_guard{*spool};

    if (cfg.server.hostname.empty()) cfg.server.hostname = local_hostname();
    std::string secret = daemon::verp_secret(cfg, error);
    if (secret.empty()) {
        spdlog::critical("bounce_listener.secret: {}", error);
        return 1;
    }
    if (node > 0) {
        // Every node must sign return paths with the same secret: a DSN for
        // one node's message may arrive at another. Compared by a digest.
        unsigned char md[SHA256_DIGEST_LENGTH];
        std::string label = "ricochet verp key\n" + secret;
        SHA256(reinterpret_cast<const unsigned char*>(label.data()), label.size(), md);
        char hex[17];
        for (int i = 0; i < 8; ++i) std::snprintf(hex + 2 * i, 3, "%02x", md[i]);
        std::string why;
        for (auto& other : store->nodes_with_another_key(node_name, hex, why))
            spdlog::error("bounce_listener.secret differs from {}'s: DSNs for its messages that arrive here are "
                          "refused (550 5.1.1), and ours there; give every node the same secret",
                          other);
    }
    bounce::verp_signer verp(secret);
    // One-click unsubscribe tokens: keyed from the same secret, for another purpose.
    unsubscribe::token_signer unsub_tokens(secret);
    delivery::outgoing outgoing(cfg, dkim_signer, secret);

    boost::asio::io_context io;
    bounce::destination_backoff backoff(cfg.bounce.destination_backoff.count() * 1000);
    delivery::delivery_agent delivery(io, cfg, *spool, due, recorder, verp, classifier, backoff);
    delivery.set_attempt_observer([&metrics](double s) { metrics.delivery.observe(s); });
    if (outgoing.active()) delivery.set_outgoing(&outgoing);
    // Traffic shaping: [[shaping]] rules, [[pool]]s, adaptive rates, warm-up counts (spool_dir/shaping/).
    auto shaping = delivery::shaper::from_config(cfg, error);
    if (!shaping) {
        spdlog::critical("shaping: {}", error);
        return 1;
    }
    delivery.set_shaper(shaping.get());
    // TLS-RPT (RFC 8460): sessions counted per receiving domain and day
    // (spool_dir/tls-rpt/), a report to each domain that asks, daily.
    std::unique_ptr<tls::tls_reporter> tls_counts;
    std::unique_ptr<daemon::tls_report_sender> tls_reports;
    if (cfg.delivery.tls_rpt == "on") {
        tls_counts = std::make_unique<tls::tls_reporter>(cfg.server.spool_dir / "tls-rpt", now_ms());
        tls_reports = std::make_unique<daemon::tls_report_sender>(io, cfg, *spool, *tls_counts);
        delivery.set_tls_reporter(tls_counts.get());
        // RFC 8460 5.3: reports must be DKIM-signed, or receivers may drop them.
        std::string contact = cfg.delivery.tls_rpt_contact.empty() ? "postmaster@" + cfg.server.hostname
                                                                   : cfg.delivery.tls_rpt_contact;
        std::string probe = "From: <" + contact + ">\r\nSubject: -\r\n\r\n-\r\n";
        if (dkim_signer.prepare(probe).entries.empty())
            spdlog::warn("TLS-RPT: no [[dkim]] key signs mail from {}: receivers may ignore its unsigned reports (RFC 8460 5.3)",
                         contact);
    }
    // A queued recipient who unsubscribes (or becomes held) before an attempt is not sent.
    delivery.set_suppression_check([&suppression](const std::string& rcpt) {
        return submission::suppressed_because(suppression, rcpt);
    });
    spdlog::info("shaping: {} rule(s), {} pool(s)", shaping->rules().size(), shaping->pools().size());
    campaign_breaker.set_delivery(&delivery);
    if (cfg.breaker.enabled)
        delivery.set_send_check([&breaker_monitor](const queue::envelope& env) {
            return !breaker_monitor.paused(env.campaign, env.sender.empty() ? std::string() : queue::recipient_domain(env.sender));
        });
    // After each group commit: one `queued` event per recipient, stored
    // before the clients hear 250 (a crash after it keeps the messages' rows,
    // which later bounces are matched against) and before the messages are
    // scheduled. One transaction for the whole batch. (The committer waits
    // for it. Handing the 250s to the recorder instead, so that the next
    // commit could start, measured 0.94-0.98x in three same-run A/Bs.)
    // When the recorder is idle the committer stores them itself
    // (recorder::publish_and_wait): no thread is woken and waited for.
    spool->set_batch_hook([&due, &delivery, &recorder](const std::vector<const queue::envelope*>& batch) {
        std::vector<events::event> evs;
        for (auto* env : batch) {
            spdlog::info("{}: from=<{}>, size={}, nrcpt={}, client=[{}]{}{} (queue active)", env->id, env->sender,
                         env->content_size, env->recipients.size(), env->client,
                         env->auth_user.empty() ? "" : ", sasl_username=", env->auth_user);
            for (std::size_t i = 0; i < env->recipients.size(); ++i)
                evs.push_back(events::queued(env->id, env->campaign, env->recipients[i], static_cast<int>(i),
                                             env->sender, env->arrival_ms));
        }
        // Recorded, not synced (the hot path): the next batch's syncfs, a
        // checkpoint or any publish_now makes them durable; a power loss
        // before that loses only these rows, never the messages.
        recorder.publish_and_wait(std::move(evs));
        for (auto* env : batch) due.add(env->id, env->arrival_ms);
        delivery.wake();
    });
    smtp::smtp_server submission(
        io, submission::listener_options(cfg, cfg.submission.auth_users_file.empty() ? nullptr : &users, *spool,
                                         suppression, recorder, cfg.breaker.enabled ? &breaker_monitor : nullptr),
        *spool);
    if (!submission.start(error)) {
        spdlog::critical("{}", error);
        return 1;
    }

    // The bounce listener: reports that come back later, read and recorded
    // by the intake (on the listener's worker thread).
    // A recipient's own unsubscribe (one-click POST, or mail to the mailto
    // address): recorded, then published like an operator's change.
    auto unsubscribe_recipient = [&store, &recorder](const unsubscribe::target& t, const std::string& via) {
        std::vector<events::event> evs;
        std::string why;
        if (!store->set_status(t.recipient, bounce::address_status::unsubscribed, via, now_ms(), evs, why, t.campaign))
            return why.empty() ? std::string("the state store did not take it") : why;
        if (!recorder.publish_now(std::move(evs)))  // recorded; asked again, it is found done
            return std::string("the state store could not make it durable");
        return std::string();
    };
    intake::dsn_intake intake{verp, classifier, *store, recorder, cfg.bounce_listener.domain,
                              cfg.server.spool_dir / "dsn-unparsed", {}, &unsub_tokens, unsubscribe_recipient};
    if (cfg.bounce.return_to_sender) {
        // A bounce that comes back after the message left the spool: the
        // sender's DSN is queued (and durable) before the listener says 250.
        // This runs on the listener's worker thread, so waiting is fine.
        intake.return_to_sender = [&spool, &cfg](const queue::envelope& orig,
                                                 const std::vector<queue::failed_recipient>& failed) {
            auto dsn = queue::dsn_envelope(spool->new_id(), orig, cfg.server.hostname);
            auto text = queue::write_dsn(cfg.server.hostname, orig, "", failed, now_ms());
            std::promise<std::error_code> done;
            auto result = done.get_future();
            spool->submit(std::move(dsn), std::move(text), [&done](std::error_code ec) { done.set_value(ec); });
            return result.get();
        };
    }
    smtp::smtp_server bounce_listener(io, intake::listener_options(cfg, verp, *spool, intake), *spool);
    if (!bounce_listener.start(error)) {
        spdlog::critical("{}", error);
        return 1;
    }

    daemon::control_context control_ctx{*spool, due, delivery, backoff, *store, recorder,
                                        cfg.breaker.enabled ? &campaign_breaker : nullptr, shaping.get(),
                                        delivery.sts_policies(), tls_counts.get(), tls_reports.get()};
    daemon::control_server control(cfg.server.control_socket,
                                   [&control_ctx](const json& req) { return daemon::handle_control(control_ctx, req); });
    if (!control.start(error)) {
        spdlog::critical("{}", error);
        return 1;
    }

    // The HTTP API: the same services as the control socket (every change
    // through handle_control), on its own worker threads.
    auto paused_now = [&backoff] {
        std::map<std::string, std::int64_t> m;
        for (auto& p : backoff.paused(now_ms())) m[p.domain] = p.until_ms;
        return m;
    };
    metrics.add_gauge("ricochet_queue_messages", "Messages in the queue by state (read from the spool when scraped).", [&spool] {
        std::size_t n[3] = {0, 0, 0};
        for (auto& e : spool->list()) ++n[static_cast<int>(e.state)];
        std::vector<events::gauge_sample> out;
        for (auto st : {queue::queue_state::active, queue::queue_state::deferred, queue::queue_state::hold})
            out.push_back({{{"state", std::string(queue::to_string(st))}}, double(n[static_cast<int>(st)])});
        return out;
    });
    metrics.add_gauge("ricochet_smtp_transactions_open",
                      "Submission sessions with a transaction open and no message of their own committing: the group "
                      "commit waits a little for them.",
                      [&spool] { return std::vector<events::gauge_sample>{{{}, double(spool->open_transactions())}}; });
    metrics.add_gauge("ricochet_destination_paused", "1 for each destination paused (a throttling, blocklist or reputation reply).",
                      [&paused_now] {
                          std::vector<events::gauge_sample> out;
                          for (auto& [d, until] : paused_now()) out.push_back({{{"domain", d}}, 1});
                          return out;
                      });
    metrics.add_gauge("ricochet_campaign_bounce_rate", "Hard and soft bounces per recipient queued, per campaign, over the last 24 hours.",
                      [&store] {
                          std::vector<events::gauge_sample> out;
                          for (auto& r : store->stats("campaign", "", "", now_ms() - 86400 * 1000LL))
                              if (!r.key.empty()) out.push_back({{{"campaign", r.key}}, r.bounce_rate()});
                          return out;
                      });
    metrics.add_gauge("ricochet_campaign_breaker_state",
                      "The campaign breaker's state per scope in its window: 0 ok, 1 warned, 2 paused (scope: a campaign, or @sender.domain).",
                      [&breaker_monitor] {
                          std::vector<events::gauge_sample> out;
                          auto now = now_ms();
                          for (auto& k : breaker_monitor.keys(now))
                              out.push_back({{{"scope", k}}, double(static_cast<int>(breaker_monitor.state_of(k).st))});
                          return out;
                      });
    metrics.add_gauge("ricochet_shaping_rate_per_minute",
                      "The message rate each destination (shaping key) gets now from each source IP; 0: no limit. "
                      "Cut by half by a rate-limited reply, raised again after clean stretches.",
                      [&shaping] {
                          std::vector<events::gauge_sample> out;
                          for (auto& s : shaping->state(now_ms()))
                              out.push_back({{{"destination", s.key}, {"source_ip", s.ip.empty() ? "system" : s.ip}},
                                             s.rate_per_minute});
                          return out;
                      });
    metrics.add_gauge("ricochet_state_pending_decisions", "1 while decisions wait in the journal for the state store.",
                      [&journal] { return std::vector<events::gauge_sample>{{{}, journal.empty() ? 0.0 : 1.0}}; });
    http::api api({cfg, *spool, *store, suppression, metrics,
                   [&control_ctx](const json& req) { return daemon::handle_control(control_ctx, req); }, paused_now,
                   [&journal, &store, &listener] {
                       std::string why = store->health();
                       if (why.empty() && listener) why = listener->health();
                       if (!journal.empty())
                           why += (why.empty() ? "" : "; ") + std::string("behind: ") +
                                  std::to_string(journal.size()) + " decision(s) wait in " + journal.path().string() +
                                  " for the state store";
                       return why;
                   },
                   [&breaker_monitor, on = cfg.breaker.enabled](const std::string& campaign,
                                                                const std::string& sender) -> std::optional<std::string> {
                       if (!on) return std::nullopt;
                       return breaker_monitor.paused(campaign, sender.empty() ? std::string() : queue::recipient_domain(sender));
                   },
                   &classifier,
                   event_feed ? http::api_context::events_page_fn([&event_feed](std::uint64_t after, std::size_t limit,
                                                                            const std::vector<std::string>& types) {
                       auto p = event_feed->read(after, limit, types);
                       return http::api_context::events_page{std::move(p.lines), p.last, p.more, std::move(p.error)};
                   })
                              : http::api_context::events_page_fn()});
    http::server http_listener(io, http::api_listener(cfg), api);
    if (!http_listener.start(error)) {
        spdlog::critical("{}", error);
        return 1;
    }
    // The public one-click unsubscribe endpoint (the mailbox providers call it).
    http::unsubscribe_page unsubscribe_page(unsub_tokens, url_path(cfg.unsubscribe.url_base),
                                            [&unsubscribe_recipient](const unsubscribe::target& t) {
                                                return unsubscribe_recipient(t, "one-click");
                                            });
    http::server unsubscribe_listener(io, http::unsubscribe_listener(cfg), unsubscribe_page);
    if (cfg.unsubscribe.enabled && !unsubscribe_listener.start(error)) {
        spdlog::critical("{}", error);
        return 1;
    }
    if (cfg.unsubscribe.enabled && cfg.unsubscribe.url_base.rfind("https://", 0) != 0)
        spdlog::warn("unsubscribe.url_base {} is not https: Gmail and Yahoo ignore one-click links that are not",
                     cfg.unsubscribe.url_base);

    // Decisions kept while the state store was down go in as soon as it is back.
    boost::asio::steady_timer journal_timer(io);
    std::function<void()> replay_journal = [&] {
        journal_timer.expires_after(std::chrono::seconds(5));
        journal_timer.async_wait([&](const boost::system::error_code& jec) {
            if (jec) return;
            if (!journal.empty()) recorder.publish({});  // replayed with the next batch (the recorder's or the committer's)
            replay_journal();
        });
    };
    replay_journal();

    // Retention ([retention]): old decisions (folded into daily totals),
    // old messages and old unreadable DSNs go, one batch of 2,000 rows at a
    // time after a batch of decisions (on the recorder's thread, or the
    // committer's when it stores a group commit's rows itself), so
    // that no 250 waits long behind it. 5 s after start, then every 10
    // minutes (or the retention window, when shorter), and again shortly
    // while there is more.
    boost::asio::steady_timer retention_timer(io);
    std::function<void(std::chrono::milliseconds)> schedule_retention = [&](std::chrono::milliseconds after) {
        retention_timer.expires_after(after);
        retention_timer.async_wait([&](const boost::system::error_code& rec) {
            if (rec) return;
            recorder.publish({}, [&] {
                auto now = now_ms();
                bool more = false;
                if (cfg.retention.decisions.count() > 0) {
                    std::int64_t before = now - cfg.retention.decisions.count() * 1000;
                    std::int64_t messages_before = std::min(before, now - cfg.retention.messages.count() * 1000);
                    auto t = state::prune_state(*store, before, queue::queue_id_floor(static_cast<std::uint64_t>(messages_before) * 1000),
                                                2000, 1);
                    if (!t.error.empty()) spdlog::warn("retention: cannot prune the state store: {}", t.error);
                    else if (t.decisions || t.messages)
                        spdlog::info("retention: {} decision(s) folded into daily totals, {} message(s) removed", t.decisions,
                                     t.messages);
                    more = t.more && t.error.empty();
                    if (!more && (t.decisions || t.messages)) store->reclaim_space();
                }
                if (!more && cfg.retention.dsn_unparsed.count() > 0) {
                    auto cut = std::filesystem::file_time_type::clock::now() - cfg.retention.dsn_unparsed;
                    if (auto n = state::prune_files(cfg.server.spool_dir / "dsn-unparsed", cut))
                        spdlog::info("retention: {} unreadable DSN file(s) removed from dsn-unparsed", n);
                }
                // Every 10 minutes, or as often as the window when it is shorter.
                auto every = std::chrono::milliseconds(
                    std::clamp<std::int64_t>(cfg.retention.decisions.count() * 1000, 1000, 600000));
                boost::asio::post(io, [&, more, every] {
                    schedule_retention(more ? std::chrono::milliseconds(200) : every);
                });
            });
        });
    };
    schedule_retention(std::chrono::milliseconds(5000));

    // SIGHUP: the events log is opened again by name (logrotate renamed it).
    // The reopen swaps the descriptor under the log's lock, so a batch is
    // written whole to the old file or whole to the new one.
    boost::asio::signal_set hangup(io, SIGHUP);
    std::function<void()> on_hangup = [&] {
        hangup.async_wait([&](const boost::system::error_code& hec, int) {
            if (hec) return;
            if (auto oec = events_file.open(cfg.server.events_log, events_rotation))
                spdlog::error("SIGHUP: cannot reopen events log {}: {}; still writing the old one",
                              cfg.server.events_log.string(), oec.message());
            else
                spdlog::info("SIGHUP: events log {} reopened", cfg.server.events_log.string());
            on_hangup();
        });
    };
    on_hangup();

    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    boost::asio::steady_timer grace(io);
    std::chrono::steady_clock::time_point give_up;
    // Stop when the deliveries in flight have recorded their decisions (or
    // after 15 s: what is cut off is only tried again, never lost).
    std::function<void()> stop_when_idle = [&] {
        bool idle = delivery.in_flight() == 0 && !submission.busy() && !bounce_listener.busy();
        if (idle || std::chrono::steady_clock::now() > give_up) {
            io.stop();
            return;
        }
        grace.expires_after(std::chrono::milliseconds(100));
        grace.async_wait([&](const boost::system::error_code&) { stop_when_idle(); });
    };
    signals.async_wait([&](const boost::system::error_code& sec, int sig) {
        if (sec) return;
        spdlog::info("signal {}: stopping", sig);
        hangup.cancel();
        http_listener.stop();
        submission.stop();
        bounce_listener.stop();
        unsubscribe_listener.stop();
        delivery.stop();
        if (tls_reports) tls_reports->stop();
        // Finish the commits in flight, then stop once every session that
        // was committing has written its reply (the bounce listener's
        // reports, which sync the state store, included) and no delivery is
        // in flight; 200 ms at least, for the API's 202s.
        spool->stop();
        give_up = std::chrono::steady_clock::now() + std::chrono::seconds(15);
        grace.expires_after(std::chrono::milliseconds(200));
        grace.async_wait([&](const boost::system::error_code&) { stop_when_idle(); });
    });

    delivery.start();
    if (tls_reports) tls_reports->start();
    unsigned n = io_threads_for(cfg, std::thread::hardware_concurrency());
    spdlog::info("ricochetd started (hostname {}, pid {}, {} I/O thread(s))", cfg.server.hostname, ::getpid(), n);
    std::vector<std::thread> threads;
    for (unsigned i = 1; i < n; ++i) threads.emplace_back([&] { io.run(); });
    io.run();
    for (auto& t : threads) t.join();
    // What the recorder still holds is applied while the io_context (whose
    // strand its callbacks post to) still exists.
    recorder.flush();
    control.stop();
    if (tls_counts) tls_counts->flush(now_ms());
    spdlog::info("ricochetd stopped");
    return 0;
}
