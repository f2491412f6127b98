// ricochetd — the Ricochet daemon: loads etc/ricochet.toml, recovers the
// spool, and serves the submission port and the control socket. Runs in the
// foreground and logs with spdlog; SIGTERM/SIGINT stop it cleanly, and
// kill -9 at any moment loses nothing that was acknowledged (see queue/README.md).
#include <malloc.h>
#include <signal.h>
#include <fcntl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
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
#include "smtp/auth_users.hpp"
#include "config/config.hpp"
#include "daemon/control_server.hpp"
#include "delivery/delivery.hpp"
#include "intake/dsn_intake.hpp"
#include "smtp/smtp_server.hpp"
#include "queue/clock.hpp"
#include "queue/decision_journal.hpp"
#include "queue/decision_recorder.hpp"
#include "queue/dsn_writer.hpp"
#include "queue/events_log.hpp"
#include "queue/queue_admin.hpp"
#include "queue/schedule.hpp"
#include "queue/state_store.hpp"
#include "queue/spool.hpp"

using namespace ricochet;
using nlohmann::json;

namespace {

std::string local_hostname() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
    return buf;
}

// The control socket's requests: {"command": "queue.hold", "id"|"domain"|"campaign"|"all": ...}.
struct state_parts {
    queue::state_store& store;
    bounce::suppression_list& suppression;
};

json handle_control(queue::spool& spool, queue::events_log& events, queue::schedule& due,
                    delivery::delivery_agent& delivery, const bounce::destination_backoff& backoff, state_parts state,
                    const json& req) {
    std::string cmd = req.value("command", "");
    if (cmd == "recipient.set") {
        std::string addr = req.value("address", ""), why = req.value("why", "admin");
        auto st = bounce::parse_address_status(req.value("status", ""));
        if (addr.empty() || !st) return {{"ok", false}, {"error", "need address and status"}};
        auto now = now_ms();
        std::string error;
        if (!state.store.set_status(addr, *st, why, now, error)) return {{"ok", false}, {"error", error}};
        if (auto r = state.store.get(addr)) state.suppression.update(*r);
        events.append(json{{"type", "admin"}, {"action", why}, {"recipient", bounce::lower_address(addr)},
                           {"status", std::string(bounce::to_string(*st))}});
        return {{"ok", true}};
    }
    if (cmd == "ping") return {{"ok", true}, {"pid", ::getpid()}};
    if (cmd == "pauses") {
        auto now = now_ms();
        json list = json::array();
        for (auto& p : backoff.paused(now))
            list.push_back({{"domain", p.domain}, {"until_ms", p.until_ms}, {"backoff_s", p.backoff_ms / 1000}});
        return {{"ok", true}, {"paused", list}};
    }
    if (cmd.rfind("queue.", 0) == 0) {
        auto op = queue::parse_admin_op(cmd.substr(6));
        if (!op) return {{"ok", false}, {"error", "unknown command " + cmd}};
        queue::selector sel;
        sel.id = req.value("id", "");
        sel.domain = req.value("domain", "");
        sel.campaign = req.value("campaign", "");
        sel.all = req.value("all", false);
        if (sel.empty()) return {{"ok", false}, {"error", "no selector"}};
        auto res = queue::apply_admin(spool, &events, *op, sel);
        if (*op == queue::admin_op::release || *op == queue::admin_op::flush) {
            auto now = now_ms();
            for (auto& id : res.ids) due.add(id, now);  // due at once
            delivery.wake();
        }
        spdlog::info("control: queue {} matched {} changed {}", queue::to_string(*op), res.matched, res.ids.size());
        json r{{"ok", res.error.empty()}, {"matched", res.matched}, {"changed", res.ids}};
        if (!res.error.empty()) r["error"] = res.error;
        return r;
    }
    return {{"ok", false}, {"error", "unknown command " + cmd}};
}

// bounce_listener.secret, or one generated on first start into
// spool_dir/verp.secret (mode 0600) and kept: tokens must stay valid across
// restarts for as long as bounces can come back.
std::string verp_secret(const config& cfg, std::string& error) {
    if (!cfg.bounce_listener.secret.empty()) return cfg.bounce_listener.secret;
    auto path = cfg.server.spool_dir / "verp.secret";
    std::ifstream in(path);
    std::string secret;
    if (in && std::getline(in, secret) && secret.size() >= 32) return secret;
    unsigned char raw[32];
    std::ifstream urandom("/dev/urandom", std::ios::binary);
    if (!urandom.read(reinterpret_cast<char*>(raw), sizeof raw)) {
        error = "cannot read /dev/urandom";
        return {};
    }
    static const char hex[] = "0123456789abcdef";
    for (unsigned char b : raw) secret += {hex[b >> 4], hex[b & 15]};
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || ::write(fd, (secret + "\n").data(), secret.size() + 1) != static_cast<ssize_t>(secret.size() + 1) ||
        ::fsync(fd) != 0) {
        error = "cannot write " + path.string();
        if (fd >= 0) ::close(fd);
        return {};
    }
    ::close(fd);
    spdlog::info("generated a new VERP secret in {}", path.string());
    return secret;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ricochetd - Ricochet outbound MTA daemon"};
    std::string config_path = "etc/ricochet.toml";
    bool check_only = false;
    app.add_option("--config", config_path, "configuration file")->capture_default_str();
    app.add_flag("--check-config", check_only, "validate the configuration and exit");
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
    if (check_only) {
        std::cout << config_path << ": ok (" << classifier.size() << " bounce rules)\n";
        return 0;
    }

    spdlog::set_default_logger(spdlog::stderr_color_mt("ricochetd"));
    spdlog::set_level(spdlog::level::from_str(cfg.server.log_level));
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %n[%P]: %l: %v");
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGXFSZ, SIG_IGN);  // a file size limit shows up as EFBIG from write(), handled as a full disk

    std::error_code ec;
    auto spool = queue::spool::open(cfg.server.spool_dir, true, ec);
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

    // Recipient state (SQLite) and the in-memory list of suppressed addresses.
    bounce::status_policy policy{cfg.bounce.trusted_domains, static_cast<int>(cfg.bounce.held_after_bounces),
                                 std::int64_t(cfg.bounce.held_after_days) * 86400 * 1000};
    auto store = queue::state_store::open(queue::sqlite_path(cfg.server.state), policy, error);
    if (!store) {
        spdlog::critical("server.state: {}", error);
        return 1;
    }
    bounce::suppression_list suppression;
    for (auto st : {bounce::address_status::held, bounce::address_status::unsubscribed})
        for (auto& r : store->list(st)) suppression.update(r);
    spdlog::info("state {}: {} suppressed address(es)", cfg.server.state, suppression.size());
    // Decisions the store cannot take now (locked, disk full) wait in a
    // journal in the spool and go in, in order, before the next batch and on
    // a timer: none is lost while the store is down.
    queue::decision_journal journal(cfg.server.spool_dir / "decisions.pending");
    std::mutex record_mu;
    auto record_decisions = [&store, &suppression, &journal, &record_mu](const std::vector<queue::decision>& ds) {
        std::lock_guard lk(record_mu);
        auto apply = [&](const std::vector<queue::decision>& batch, std::string& err) {
            for (auto& r : store->record(batch, err)) {
                suppression.update(r);
                spdlog::info("recipient <{}> is now {} ({} bounce(s), last {})", r.address,
                             bounce::to_string(r.status), r.bounce_count, r.last_category);
            }
        };
        std::string err;
        if (!journal.empty()) {
            std::error_code jec;
            auto pending = journal.load(jec);
            apply(pending, err);
            if (err.empty()) {
                journal.clear();
                spdlog::info("state store: {} waiting decision(s) recorded", pending.size());
            }
        }
        if (err.empty() && !ds.empty()) apply(ds, err);
        if (!err.empty() && !ds.empty()) {
            if (auto jec = journal.append(ds))
                spdlog::critical("state store: cannot record {} decision(s): {}; nor keep them in {}: {}", ds.size(),
                                 err, journal.path().string(), jec.message());
            else
                spdlog::error("state store: cannot record {} decision(s): {}; kept in {} and retried", ds.size(), err,
                              journal.path().string());
        }
    };

    queue::events_log events;
    if (auto eec = events.open(cfg.server.events_log)) {
        spdlog::critical("cannot open events log {}: {}", cfg.server.events_log.string(), eec.message());
        return 1;
    }

    // Decisions are written on the recorder's own thread, many per
    // transaction; the I/O threads and the spool's committer only post them.
    queue::decision_recorder recorder(record_decisions);
    // The spool's committer posts to the recorder: it stops first.
    struct stop_spool_first {
        queue::spool& s;
        ~stop_spool_first() { s.stop(); }
    } stop_spool_guard{*spool};

    if (cfg.server.hostname.empty()) cfg.server.hostname = local_hostname();
    std::string secret = verp_secret(cfg, error);
    if (secret.empty()) {
        spdlog::critical("bounce_listener.secret: {}", error);
        return 1;
    }
    bounce::verp_signer verp(secret);

    boost::asio::io_context io;
    bounce::destination_backoff backoff(cfg.bounce.destination_backoff.count() * 1000);
    delivery::delivery_agent delivery(io, cfg, *spool, due, events, verp, classifier, backoff);
    // After each group commit: one `queued` event per recipient and one log
    // line per message, written off the I/O threads.
    delivery.set_decision_sink([&recorder](std::vector<queue::decision> ds, std::function<void()> then) {
        recorder.post(std::move(ds), std::move(then));
    });
    spool->set_batch_hook([&events, &due, &delivery, &recorder](const std::vector<const queue::envelope*>& batch) {
        std::vector<json> evs;
        std::vector<queue::decision> ds;
        for (auto* env : batch) {
            spdlog::info("{}: from=<{}>, size={}, nrcpt={}, client=[{}]{}{} (queue active)", env->id, env->sender,
                         env->content_size, env->recipients.size(), env->client,
                         env->auth_user.empty() ? "" : ", sasl_username=", env->auth_user);
            for (std::size_t i = 0; i < env->recipients.size(); ++i) {
                auto& r = env->recipients[i];
                evs.push_back({{"type", "queued"}, {"queue_id", env->id}, {"campaign", env->campaign}, {"recipient", r}});
                ds.push_back({env->arrival_ms, "queued", env->id, env->campaign, r, "", "", "", "", static_cast<int>(i),
                              env->sender});
            }
        }
        // Stored before the clients hear 250 (a crash after it keeps the
        // messages' rows, which later bounces are matched against) and before
        // the messages are scheduled. One transaction for the whole batch.
        recorder.record_now(std::move(ds), [&events, evs = std::move(evs)]() mutable { events.append(evs); });
        for (auto* env : batch) due.add(env->id, env->arrival_ms);
        delivery.wake();
    });
    smtp::smtp_server_options sub;
    sub.name = "submission";
    sub.listen = cfg.submission.listen;
    sub.tls_cert = cfg.submission.tls_cert;
    sub.tls_key = cfg.submission.tls_key;
    sub.max_connections = cfg.submission.max_connections;
    sub.max_connections_per_ip = cfg.submission.max_connections_per_ip;
    sub.command_timeout = cfg.submission.command_timeout;
    sub.data_timeout = cfg.submission.data_timeout;
    sub.policy.role = smtp::server_role::submission;
    sub.policy.hostname = cfg.server.hostname;
    sub.policy.max_message_size = cfg.submission.max_message_size;
    sub.policy.max_recipients = cfg.submission.max_recipients;
    sub.policy.campaign_header = cfg.submission.campaign_header;
    sub.policy.users = cfg.submission.auth_users_file.empty() ? nullptr : &users;
    for (auto& n : cfg.submission.trusted_networks) sub.policy.trusted.push_back(*smtp::parse_cidr(n));
    sub.policy.new_id = [s = spool.get()] { return s->new_id(); };
    // PRODUCT.md mail flow 1: held and unsubscribed recipients are refused at
    // RCPT, or with bounce.suppressed = "drop" accepted and dropped.
    sub.policy.check_recipient = [&suppression, &events, drop = cfg.bounce.suppressed == "drop"](std::string_view rcpt) {
        auto r = suppression.find(rcpt);
        if (!r) return smtp::rcpt_verdict::accept();
        std::string why = r->status == bounce::address_status::held
                              ? "is held after " + std::to_string(r->bounce_count) + " bounce(s)" +
                                    (r->last_category.empty() ? "" : " (last: " + r->last_category + ")")
                              : "has unsubscribed";
        if (drop) {
            events.append(json{{"type", "suppressed"}, {"queue_id", nullptr}, {"campaign", nullptr},
                               {"recipient", std::string(rcpt)}, {"kind", nullptr}, {"category", nullptr},
                               {"rule", nullptr}, {"code", nullptr}, {"enhanced", nullptr},
                               {"reply", "dropped at RCPT: recipient " + why}, {"mx", nullptr}, {"stage", "rcpt"},
                               {"attempt", 0}, {"sync", true}});
            return smtp::rcpt_verdict::drop();
        }
        return smtp::rcpt_verdict::refuse("550 5.7.1 <" + std::string(rcpt) + ">: recipient " + why);
    };
    smtp::smtp_server submission(io, sub, *spool);
    if (!submission.start(error)) {
        spdlog::critical("{}", error);
        return 1;
    }

    // The bounce listener: the same SMTP server in its other role. Anyone may
    // connect (bounces come from everywhere), but only signed VERP addresses
    // on the bounce domain are accepted: no forged bounce marks an address,
    // and nothing is relayed.
    smtp::smtp_server_options bl;
    bl.name = "bounce";
    bl.listen = cfg.bounce_listener.listen;
    bl.max_connections = cfg.bounce_listener.max_connections;
    bl.max_connections_per_ip = cfg.bounce_listener.max_connections_per_ip;
    bl.command_timeout = cfg.submission.command_timeout;
    bl.data_timeout = cfg.submission.data_timeout;
    bl.policy.role = smtp::server_role::bounce;
    bl.policy.hostname = cfg.server.hostname;
    bl.policy.max_message_size = cfg.bounce_listener.max_message_size;
    bl.policy.max_recipients = 100;
    bl.policy.new_id = sub.policy.new_id;
    bl.policy.check_recipient = [&verp, domain = cfg.bounce_listener.domain](std::string_view rcpt) {
        if (verp.verify(rcpt, domain)) return smtp::rcpt_verdict::accept();
        return smtp::rcpt_verdict::refuse("550 5.1.1 <" + std::string(rcpt) + ">: no such bounce address");
    };
    intake::dsn_intake intake{verp, classifier, *store, events, cfg.bounce_listener.domain,
                           cfg.server.spool_dir / "dsn-unparsed",
                           [&recorder](const std::vector<queue::decision>& ds) { recorder.record_now(ds); },
                           {}, [&recorder] { recorder.flush(); }};
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
    bl.message_sink = intake;
    smtp::smtp_server bounce_listener(io, bl, *spool);
    if (!bounce_listener.start(error)) {
        spdlog::critical("{}", error);
        return 1;
    }

    daemon::control_server control(cfg.server.control_socket,
                                [&](const json& req) { return handle_control(*spool, events, due, delivery, backoff, {*store, suppression}, req); });
    if (!control.start(error)) {
        spdlog::critical("{}", error);
        return 1;
    }

    // Decisions kept while the state store was down go in as soon as it is back.
    boost::asio::steady_timer journal_timer(io);
    std::function<void()> replay_journal = [&] {
        journal_timer.expires_after(std::chrono::seconds(5));
        journal_timer.async_wait([&](const boost::system::error_code& jec) {
            if (jec) return;
            if (!journal.empty()) recorder.post({});  // replayed on the recorder's thread
            replay_journal();
        });
    };
    replay_journal();

    boost::asio::signal_set signals(io, SIGINT, SIGTERM);
    boost::asio::steady_timer grace(io);
    std::chrono::steady_clock::time_point give_up;
    // Stop when the deliveries in flight have recorded their decisions (or
    // after 15 s: what is cut off is only tried again, never lost).
    std::function<void()> stop_when_idle = [&] {
        if (delivery.in_flight() == 0 || std::chrono::steady_clock::now() > give_up) {
            io.stop();
            return;
        }
        grace.expires_after(std::chrono::milliseconds(100));
        grace.async_wait([&](const boost::system::error_code&) { stop_when_idle(); });
    };
    signals.async_wait([&](const boost::system::error_code& sec, int sig) {
        if (sec) return;
        spdlog::info("signal {}: stopping", sig);
        submission.stop();
        bounce_listener.stop();
        delivery.stop();
        // Finish the commits in flight so their clients get the 250, then stop.
        spool->stop();
        give_up = std::chrono::steady_clock::now() + std::chrono::seconds(15);
        grace.expires_after(std::chrono::seconds(1));
        grace.async_wait([&](const boost::system::error_code&) { stop_when_idle(); });
    });

    delivery.start();
    spdlog::info("ricochetd started (hostname {}, pid {})", sub.policy.hostname, ::getpid());
    unsigned n = std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> threads;
    for (unsigned i = 1; i < n; ++i) threads.emplace_back([&] { io.run(); });
    io.run();
    for (auto& t : threads) t.join();
    control.stop();
    spdlog::info("ricochetd stopped");
    return 0;
}
