// tls_reports — see tls_reports.hpp.
#include "daemon/tls_reports.hpp"

#include <boost/asio.hpp>

#include "config/config.hpp"
#include "dns/resolver.hpp"
#include "queue/clock.hpp"
#include "queue/logger.hpp"
#include "queue/spool.hpp"
#include "smtp/async_spool.hpp"
#include "tls/tls_reporter.hpp"

namespace ricochet::daemon {
namespace asio = boost::asio;
using asio::awaitable;

namespace {
std::shared_ptr<spdlog::logger> log() {
    static auto l = named_logger("tls-rpt");
    return l;
}
}  // namespace

struct tls_report_sender::impl : std::enable_shared_from_this<impl> {
    asio::strand<asio::io_context::executor_type> strand;
    const config& cfg;
    queue::spool& spool;
    tls::tls_reporter& counts;
    dns::resolver dns;
    asio::steady_timer timer;
    std::string contact;
    bool stopped = false, sending = false;
    std::int64_t next_send_ms = 0;
    asio::thread_pool disk{1};  // the minute's flush (two syncs): not on an I/O thread

    impl(asio::io_context& io, const config& c, queue::spool& s, tls::tls_reporter& r)
        : strand(asio::make_strand(io)), cfg(c), spool(s), counts(r),
          dns(strand, c.delivery.dns_servers, c.delivery.dns_timeout), timer(strand),
          contact(c.delivery.tls_rpt_contact.empty() ? "postmaster@" + c.server.hostname : c.delivery.tls_rpt_contact) {}

    // Every minute: the counts to disk; then, when a past day waits, its reports.
    awaitable<void> loop() {
        auto self = shared_from_this();
        while (!stopped) {
            auto now = now_ms();
            co_await smtp::async_run_on<void()>(disk, [this, now] { counts.flush(now); }, asio::use_awaitable);
            if (now >= next_send_ms) {
                for (auto& day : counts.pending_days()) {
                    if (stopped) break;
                    co_await send_day(day);
                }
                // Reports are sent a little after midnight UTC; a temporary
                // DNS failure leaves a domain for the next pass (hourly).
                next_send_ms = now + 3600 * 1000;
            }
            timer.expires_after(std::chrono::seconds(60));
            co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        }
    }

    // One day's reports: {queued: [domain...], skipped: [{domain, why}], waiting: [...]}.
    awaitable<nlohmann::json> send_day(std::string day) {
        nlohmann::json out{{"ok", true}, {"day", day}, {"queued", nlohmann::json::array()},
                           {"skipped", nlohmann::json::array()}, {"waiting", nlohmann::json::array()}};
        // One pass at a time (the daily one and ricochetctl's may overlap).
        while (sending) {
            asio::steady_timer wait(strand, std::chrono::milliseconds(200));
            co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        sending = true;
        struct done_guard {
            bool& flag;
            ~done_guard() { flag = false; }
        } guard{sending};
        std::set<std::string> reported;
        auto c = counts.load_day(day, reported);
        if (!c) co_return out;
        bool all_done = true;
        std::size_t unsaved = 0;
        for (auto& domain : c->domains()) {
            if (reported.count(domain)) continue;
            std::string name = "_smtp._tls." + domain;
            auto txt = co_await dns.txt(name);
            if (txt.status == dns::dns_status::temporary) {
                all_done = false;
                out["waiting"].push_back({{"domain", domain}, {"why", txt.error}});
                continue;
            }
            auto rec = tls::parse_tlsrpt_record(txt.records);
            if (!rec.found || !rec.error.empty() || rec.mailto.empty()) {
                std::string why = !rec.found ? "no TLSRPT record" : !rec.error.empty() ? rec.error : "rua has no mailto: address (https: is not sent)";
                out["skipped"].push_back({{"domain", domain}, {"why", why}});
                reported.insert(domain);
                if (++unsaved >= 500) {
                    counts.save_reported(day, *c, reported);
                    unsaved = 0;
                }
                continue;
            }
            // One id per day, domain and node (RFC 8460 4.4: unique per report).
            std::string id = day + "." + domain + "@" + cfg.server.hostname;  // a valid msg-id (RFC 5322 3.6.4)
            auto report = c->report(domain, cfg.server.hostname, contact, id);
            auto now = now_ms();
            std::vector<std::string> to(rec.mailto.begin(), rec.mailto.begin() + std::min<std::size_t>(rec.mailto.size(), 5));
            std::string text = tls::report_mail(report, domain, cfg.server.hostname, contact, to, now);
            queue::envelope env;
            env.id = spool.new_id();
            env.arrival_ms = now;
            env.sender = "";  // RFC 8460 5.3 / RFC 3834: no bounce of a report comes back to anyone
            env.recipients = to;
            env.client = "127.0.0.1";
            env.helo = cfg.server.hostname;
            auto eid = env.id;
            auto op = smtp::async_commit(spool, std::move(env), std::move(text), asio::use_awaitable);
            std::error_code ec = co_await std::move(op);
            if (ec) {
                all_done = false;
                log()->error("TLS-RPT: cannot queue the report for {}: {}", domain, ec.message());
                out["waiting"].push_back({{"domain", domain}, {"why", ec.message()}});
                continue;
            }
            log()->info("{}: TLS-RPT report for {} ({}) queued to {}", eid, domain, day, to.front());
            // Saved every few hundred domains: a crash in between queues
            // some reports again, under the same Report-ID, so a receiver
            // can tell them for what they are.
            reported.insert(domain);
            if (++unsaved >= 100) {
                counts.save_reported(day, *c, reported);
                unsaved = 0;
            }
            out["queued"].push_back({{"domain", domain}, {"id", eid}, {"to", to}});
        }
        if (unsaved) counts.save_reported(day, *c, reported);
        // A domain whose DNS keeps failing is given up after a week.
        if (!all_done && day < tls::utc_day(now_ms() - 7 * 86400 * 1000LL)) {
            log()->warn("TLS-RPT: {}: {} domain(s) still not reported after a week; given up", day, out["waiting"].size());
            all_done = true;
        }
        if (all_done) counts.finish_day(day);
        co_return out;
    }
};

tls_report_sender::tls_report_sender(asio::io_context& io, const config& cfg, queue::spool& spool, tls::tls_reporter& counts)
    : impl_(std::make_shared<impl>(io, cfg, spool, counts)) {}

tls_report_sender::~tls_report_sender() {
    impl_->disk.join();  // before the io_context goes: a flush running posts its end to the strand
}

void tls_report_sender::start() {
    asio::co_spawn(impl_->strand, impl_->loop(), [](std::exception_ptr e) {
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            log()->error("TLS-RPT: the report loop ended: {}", ex.what());
        }
    });
}

void tls_report_sender::stop() {
    auto m = impl_;
    asio::post(m->strand, [m] {
        m->stopped = true;
        m->timer.cancel();
    });
    m->counts.flush(now_ms());
}

void tls_report_sender::send_now(const std::string& day, std::function<void(nlohmann::json)> done) {
    auto m = impl_;
    m->counts.flush(now_ms());
    asio::co_spawn(m->strand, m->send_day(day),
                   [done = std::move(done)](std::exception_ptr e, nlohmann::json r) {
                       if (e) r = {{"ok", false}, {"error", "report failed"}};
                       done(std::move(r));
                   });
}

}  // namespace ricochet::daemon
