// delivery — see delivery.hpp. The agent itself: the dispatcher that takes
// due messages from the schedule, and the flow of one message (expiry, then
// each destination domain, then the next attempt or removal). What to do
// with each reply is delivery_policy; where to connect, next_hops; which
// connection, connection_pool; what the sender hears, dsn_to_sender.
#include "delivery/delivery.hpp"

#include <boost/asio.hpp>
#include <algorithm>
#include <atomic>
#include <thread>
#include <filesystem>
#include <strings.h>
#include <map>
#include <mutex>
#include <set>
#include <unordered_set>

#include "bounce/classifier.hpp"
#include "bounce/destination_backoff.hpp"
#include "bounce/verp.hpp"
#include "delivery/outgoing.hpp"
#include "delivery/shaping.hpp"
#include "dkim/canon.hpp"
#include "config/config.hpp"
#include "delivery/connection_pool.hpp"
#include "delivery/delivery_policy.hpp"
#include "delivery/dsn_to_sender.hpp"
#include "delivery/next_hops.hpp"
#include "delivery/smtp_transport.hpp"
#include "dns/idn.hpp"
#include "dns/dnssec_resolver.hpp"
#include "dns/resolver.hpp"
#include "tls/dane.hpp"
#include "tls/mta_sts.hpp"
#include "tls/tls_reporter.hpp"
#include "events/make.hpp"
#include "events/publisher.hpp"
#include "mime/seven_bit.hpp"
#include "queue/clock.hpp"
#include "queue/dsn_writer.hpp"
#include <chrono>

#include "queue/logger.hpp"
#include "queue/schedule.hpp"
#include "queue/spool.hpp"
#include "smtp/async_spool.hpp"

namespace ricochet::delivery {
namespace asio = boost::asio;
using asio::awaitable;
using bounce::smtp_reply;
using smtp::async_commit;
using smtp::async_from_callback;
using smtp::async_run_on;
constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

namespace {
std::shared_ptr<spdlog::logger> log() {
    static auto l = named_logger("delivery");
    return l;
}
}  // namespace

// Whether a message is one of our TLS-RPT reports (a TLS-Report-Domain
// field in its header; only asked of mail from the null sender).
bool is_tls_report(const std::string& content) {
    std::string_view head(content.data(), std::min(content.find("\r\n\r\n"), content.size()));
    for (std::size_t p = 0; p < head.size();) {
        auto e = head.find("\r\n", p);
        auto line = head.substr(p, e == std::string_view::npos ? std::string_view::npos : e - p);
        if (line.size() >= 18 && strncasecmp(line.data(), "TLS-Report-Domain:", 18) == 0) return true;
        if (e == std::string_view::npos) break;
        p = e + 2;
    }
    return false;
}

struct delivery_agent::impl : std::enable_shared_from_this<impl> {
    asio::strand<asio::io_context::executor_type> strand;
    const config& cfg;
    queue::spool& spool;
    queue::schedule& due;
    events::publisher& publisher;
    const bounce::verp_signer& verp;
    const bounce::classifier& classify;
    bounce::destination_backoff& backoff;
    std::unique_ptr<dns::resolver> own_dns;        // unless the caller passed a lookup
    std::unique_ptr<transport> own_transport;      // unless the caller passed a transport
    next_hops hops;
    connection_pool pool;
    std::unique_ptr<tls::mta_sts> sts;     // delivery.mta_sts = "on"
    std::unique_ptr<dns::dnssec_resolver> dnssec;  // delivery.dane = "on" (and a trust anchor)
    // Whether the resolvers pass DNSSEC through (asked of the trust anchor's
    // own DNSKEY records before DANE is used, and every 10 minutes while
    // they do not). Read by dane_status() from other threads.
    mutable std::mutex dane_mu;
    std::string dane_state = "off (delivery.dane)";
    bool dane_working = false;
    std::int64_t dane_next_probe_ms = 0;
    bool dane_probing = false;
    std::vector<std::shared_ptr<asio::steady_timer>> dane_waiters;
    std::string anchor_zone;
    tls::tls_reporter* reporter = nullptr;  // TLS-RPT counts; null: not counted
    std::function<void(double)> attempt_observer;  // seconds per domain attempt (metrics)
    std::function<bool(const queue::envelope&)> send_check;  // false: paused by the campaign breaker
    std::function<std::optional<std::string>(const std::string&)> suppressed;  // held/unsubscribed since queued
    const outgoing* outgo = nullptr;                         // per-recipient headers and DKIM; null: none
    std::unique_ptr<shaper> own_shaper;                      // unless the daemon set one (set_shaper)
    shaper* shape = nullptr;                                 // limits, source IPs, adaptive rates
    static constexpr std::int64_t max_shaping_wait_ms = 30000;  // longer: the message waits in deferred/
    std::unique_ptr<asio::thread_pool> signing;              // DKIM signatures, off the strand
    // The spool calls that wait for the disk (a deferral's status sync and
    // move, a hold, a quarantine, a retry's read of its file): off the
    // strand, so one deferral's few milliseconds of fsync hold up neither
    // the other deliveries nor the I/O thread the strand runs on (and its
    // SMTP sessions). Several threads: the file system's journal commits
    // their syncs together in a mass deferral.
    asio::thread_pool syncs{sync_threads};
    static constexpr unsigned sync_threads = 4;
    asio::steady_timer wakeup;
    bool stopping = false, woken = false;
    std::atomic<unsigned> inflight{0};
    static constexpr unsigned max_inflight = 2000;
    std::unordered_set<std::string> busy;
    std::unordered_set<std::string> rerun;  // became due again while being delivered

    impl(asio::io_context& io, const config& c, queue::spool& s, queue::schedule& d, events::publisher& e,
         const bounce::verp_signer& v, const bounce::classifier& cl, bounce::destination_backoff& bo,
         dns::lookup* dns, transport* t)
        : strand(asio::make_strand(io)), cfg(c), spool(s), due(d), publisher(e), verp(v), classify(cl), backoff(bo),
          own_dns(dns ? nullptr : std::make_unique<dns::resolver>(strand, c.delivery.dns_servers, c.delivery.dns_timeout)),
          own_transport(t ? nullptr : make_smtp_transport(strand, c)),
          hops(strand, c, dns ? *dns : *own_dns),
          pool(strand, t ? *t : *own_transport,
               {c.delivery.max_connections_per_domain, c.delivery.max_messages_per_connection, c.delivery.tls}),
          wakeup(strand) {
        own_shaper = std::make_unique<shaper>(
            std::vector<shaping_rule>{}, std::vector<source_pool>{},
            shaping_limits{c.delivery.max_connections_per_domain, c.delivery.max_messages_per_connection, 0},
            std::int64_t(c.delivery.adaptive_interval.count()) * 1000,
            std::int64_t(c.bounce.destination_backoff.count()) * 1000, "");
        shape = own_shaper.get();
        // DANE needs a validating resolver with a trust anchor; tests that
        // pass their own DNS table have none (and no network).
        std::error_code aec;
        if (c.delivery.dane == "on" && !own_dns) dane_state = "off (no validating resolver with this DNS)";
        if (c.delivery.dane == "on" && own_dns) {
            if (!std::filesystem::is_regular_file(c.delivery.dnssec_trust_anchor, aec)) {
                dane_state = "off: no DNSSEC trust anchor at " + c.delivery.dnssec_trust_anchor.string() +
                             " (install dns-root-data, or set delivery.dnssec_trust_anchor)";
                log()->warn("DANE {}", dane_state);
            } else {
                dnssec = std::make_unique<dns::dnssec_resolver>(strand, c.delivery.dns_servers, c.delivery.dnssec_trust_anchor);
                anchor_zone = tls::trust_anchor_zone(c.delivery.dnssec_trust_anchor);
                std::string derr;
                if (!dnssec->ok(derr)) {
                    dane_state = "off: " + derr;
                    log()->error("DANE {}", dane_state);
                    dnssec.reset();
                } else {
                    dane_state = "on (not yet checked that the resolvers pass DNSSEC)";
                }
            }
        }
        if (c.delivery.mta_sts == "on")
            sts = std::make_unique<tls::mta_sts>(strand, c, dns ? *dns : *own_dns, c.server.spool_dir / "mta-sts");
        pool.set_tls_observer([this](const hop& h, const std::string& source_ip, const smtp::tls_outcome& o) {
            if (!reporter || !h.tls) return;
            tls::session_result r;
            r.domain = h.tls->domain;
            r.policy_type = h.tls->policy_type;
            r.policy_string = h.tls->policy_string;
            r.mx_patterns = h.tls->mx_patterns;
            r.success = o.ok;
            r.result_type = o.result_type;
            r.detail = o.detail;
            r.sending_ip = source_ip;
            r.mx_host = h.host;
            r.receiving_ip = h.ep.address().to_string();
            r.at_ms = now_ms();
            reporter->record(r);
        });
        std::string err;
        if (own_dns && !own_dns->ok(err)) log()->error("DNS resolver: {}", err);
    }

    void wake_on_strand() {
        woken = true;
        wakeup.cancel();
    }

    awaitable<void> dispatcher() {
        auto self = shared_from_this();
        while (!stopping) {
            woken = false;
            auto now = now_ms();
            while (inflight < max_inflight) {
                auto id = due.pop_due(now);
                if (!id) break;
                if (!busy.insert(*id).second) {
                    rerun.insert(*id);  // due again (release, flush) while in delivery: look again after
                    continue;
                }
                ++inflight;
                asio::co_spawn(strand, deliver_message(*id), [self, id = *id](std::exception_ptr e) {
                    if (e) {
                        try {
                            std::rethrow_exception(e);
                        } catch (const std::exception& ex) {
                            log()->error("{}: delivery ended by exception: {}; retried in 60 s", id, ex.what());
                        }
                        self->due.add(id, now_ms() + 60000);
                    }
                    --self->inflight;
                    self->busy.erase(id);
                    if (self->rerun.erase(id)) self->due.add(id, now_ms());
                    self->wake_on_strand();
                });
            }
            pool.sweep_idle();
            if (woken) continue;
            auto next = due.next_due();
            std::int64_t wait = 1000;
            if (next && inflight < max_inflight) wait = std::clamp<std::int64_t>(*next - now_ms(), 0, 1000);
            wakeup.expires_after(std::chrono::milliseconds(wait));
            co_await wakeup.async_wait(as_tuple);
        }
    }

    struct outcome {
        std::size_t idx;
        smtp_reply reply;
        std::string mx;
    };

    // Runs f (a spool call returning std::error_code) on the sync threads;
    // resumes on the strand with its result.
    template <class F>
    awaitable<std::error_code> on_sync_thread(F f) {
        return async_run_on<void(std::error_code)>(syncs, std::move(f), asio::use_awaitable);
    }

    // The fields on top of recipient idx's copy: List-Unsubscribe, Feedback-ID
    // and the DKIM signatures (RSA costs about a millisecond: on the signing
    // pool, so the strand goes on with other messages meanwhile).
    awaitable<std::string> head_for(const outgoing::prepared& prep, const queue::envelope& env, std::size_t idx) {
        if (!outgo) co_return std::string();
        if (!signing || prep.dkim.entries.empty()) co_return outgo->head(prep, env, env.recipients[idx], now_ms() / 1000);
        auto sign = [this, &prep, &env, idx] { return outgo->head(prep, env, env.recipients[idx], now_ms() / 1000); };
        co_return co_await async_run_on<void(std::string)>(*signing, std::move(sign), asio::use_awaitable);
    }

    // What the domain's MTA-STS policy asks (RFC 8461 5): under enforce only
    // the MX hosts the policy names, each over STARTTLS with a certificate
    // valid for its name; under testing every MX, the same checks only
    // reported (TLS-RPT). A route ([[delivery.route]]) is the operator's
    // choice and has no policy.
    awaitable<void> apply_tls_policy(const std::string& domain, hops_result& found, std::string& tls_pool) {
        auto ascii = dns::to_ascii_domain(domain);
        if (!ascii) co_return;
        auto info = std::make_shared<hop_tls>();
        info->domain = *ascii;
        std::shared_ptr<const tls::sts_cached> enforced;  // an MTA-STS policy in enforce mode
        if (sts) {
            auto a = co_await sts->policy_for(*ascii);
            if (a.fetched_now && !a.failure_type.empty() && reporter) {
                tls::session_result r;
                r.domain = *ascii;
                r.result_type = a.failure_type;
                r.detail = a.failure_detail;
                r.at_ms = now_ms();
                if (a.policy) {
                    r.policy_type = "sts";
                    r.policy_string = a.policy->policy.lines;
                    r.mx_patterns = a.policy->policy.mx;
                }
                reporter->record(r);
            }
            if (a.policy && a.policy->policy.mode != tls::sts_mode::none) {
                auto& p = a.policy->policy;
                info->policy_type = "sts";
                info->policy_string = p.lines;
                info->mx_patterns = p.mx;
                if (p.mode == tls::sts_mode::enforce) {
                    info->demand.verify = true;
                    enforced = a.policy;
                } else {
                    info->demand.check = true;
                }
            }
        }
        // DANE first: a host with TLSA records is held to them, whatever
        // an MTA-STS policy says (RFC 8461 2); the policy then rules the others.
        std::map<std::string, std::shared_ptr<const hop_tls>> dane;  // per MX host with TLSA records
        // (One co_await per statement: GCC 12 destroys the temporaries of a
        // co_await inside a larger expression twice.)
        bool use_dane = dnssec && !found.hops.empty();
        if (use_dane) use_dane = co_await dane_usable();
        if (use_dane) {
            bool usable = co_await apply_dane(*ascii, found, *info, dane);
            if (!usable) co_return;
        }
        if (enforced) {
            auto& p = enforced->policy;
            std::vector<hop> kept;
            std::string refused;
            for (auto& h : found.hops) {
                if (dane.count(h.host) || tls::mx_matches(h.host, p.mx)) kept.push_back(h);
                else if (refused.find(h.host) == std::string::npos) refused += (refused.empty() ? "" : ", ") + h.host;
            }
            if (!refused.empty())
                log()->info("{}: MX host(s) {} not in the MTA-STS policy {}: not used", domain, refused, enforced->id);
            found.hops = std::move(kept);
            if (found.hops.empty()) {
                std::string pats;
                for (auto& m : p.mx) pats += (pats.empty() ? "" : ", ") + m;
                // (Worded so that no bounce rule reads it as an unknown domain.)
                found.why = smtp_reply::none(bounce::stage::tls, "MTA-STS policy " + enforced->id + " of " + *ascii +
                                                                     " allows only mx " + pats + ", not " + refused);
            }
            tls_pool = "|sts:";
            for (auto& m : p.mx) tls_pool += m + ",";
        }
        for (auto& h : found.hops) {
            auto it = dane.find(h.host);
            h.tls = it != dane.end() ? it->second : info;
        }
        if (!dane.empty()) tls_pool += "|dane:" + *ascii;
    }

    // Resolvers that strip DNSSEC records would make every answer bogus and
    // defer all mail: before DANE is used, the trust anchor's own DNSKEY
    // records must validate through them. While they do not, DANE is off
    // (and said so in the log and in ricochetctl tls show): asked again in
    // 10 minutes, or in 30 s after a lookup that failed outright. Once it
    // works it is asked again every hour (a stale trust anchor shows
    // there). Callers that come during a probe wait for its answer.
    awaitable<bool> dane_usable() {
        // (No co_return inside a block holding a lock or a shared_ptr:
        // GCC 12 mishandles such frames.)
        auto now = now_ms();
        std::shared_ptr<asio::steady_timer> wait_on;
        bool probe_now = false, answer = false;
        dane_mu.lock();
        if (dane_probing) {  // (only delivery's strand probes and wakes)
            wait_on = std::make_shared<asio::steady_timer>(strand, asio::steady_timer::time_point::max());
            dane_waiters.push_back(wait_on);
        } else if (now >= dane_next_probe_ms) {
            dane_probing = probe_now = true;
        }
        answer = dane_working;
        dane_mu.unlock();
        if (wait_on) {
            co_await wait_on->async_wait(as_tuple);
            dane_mu.lock();
            answer = dane_working;
            dane_mu.unlock();
        } else if (probe_now) {
            std::string zone = anchor_zone.empty() ? "." : anchor_zone;  // (named: no temporary in a co_await, GCC 12)
            auto probe = co_await dnssec->query(zone, 48);
            answer = probe.secure && probe.status == dns::dns_status::ok;
            bool outright = probe.status == dns::dns_status::temporary && !probe.bogus;
            std::string state = answer ? std::string("on")
                                       : "not in force: the resolvers do not pass DNSSEC (DNSKEY of " + anchor_zone + ": " +
                                             (probe.error.empty() ? std::string("not validated") : probe.error) +
                                             "); asked again in " + (outright ? "30 seconds" : "10 minutes");
            dane_mu.lock();
            bool was = dane_working;
            dane_working = answer;
            dane_probing = false;
            dane_state = state;
            dane_next_probe_ms = now_ms() + (answer ? 3600 : outright ? 30 : 600) * 1000LL;
            auto waiters = std::move(dane_waiters);
            dane_waiters.clear();
            dane_mu.unlock();
            if (answer && !was) log()->info("DANE on: the DNSKEY records of {} validate through the resolvers", anchor_zone);
            if (!answer) log()->warn("DANE {}", state);
            for (auto& t : waiters) t->cancel();
        }
        co_return answer;
    }

    void record_failure(const std::string& domain, const std::string& mx, const char* type, const std::string& detail,
                        std::vector<std::string> policy = {}) {
        if (!reporter) return;
        tls::session_result r;
        r.domain = domain;
        r.policy_type = "tlsa";
        r.policy_string = std::move(policy);
        r.result_type = type;
        r.mx_host = mx;
        r.detail = detail;
        r.at_ms = now_ms();
        reporter->record(r);
    }

    // DANE (RFC 7672 2.2): when the MX records are DNSSEC-validated, each MX
    // host whose address records are validated is asked for TLSA records
    // at _PORT._tcp.HOST; validated records make TLS with a matching
    // certificate mandatory for that host (before MTA-STS, RFC 8461 2). A
    // bogus answer, or a TLSA lookup that fails, makes the host unusable;
    // a bogus or failed MX lookup defers the domain. Unsigned answers
    // leave things as they were. False: found.hops is empty, found.why says why.
    awaitable<bool> apply_dane(const std::string& domain, hops_result& found, const hop_tls& base,
                               std::map<std::string, std::shared_ptr<const hop_tls>>& dane) {
        auto defer = [&](bounce::stage at, std::string why) {
            found.hops.clear();
            found.why = smtp_reply::none(at, std::move(why));
            return false;
        };
        auto mx = co_await dnssec->query(domain, 15);
        if (mx.bogus) {
            record_failure(domain, "", "dnssec-invalid", "MX of " + domain + ": " + mx.error);
            co_return defer(bounce::stage::dns, "DNSSEC validation of the MX records of " + domain + " failed: " + mx.error);
        }
        if (mx.status == dns::dns_status::temporary)
            co_return defer(bounce::stage::dns, "DNSSEC lookup of the MX records of " + domain + " failed: " + mx.error);
        if (!mx.secure) co_return true;  // unsigned: no DANE
        if (mx.status == dns::dns_status::nxdomain)
            co_return defer(bounce::stage::dns, "DNSSEC proves that " + domain + " does not exist");
        if (mx.status == dns::dns_status::no_data) {
            // Proven to have no MX: the domain itself is the host (RFC 5321
            // 5.1); exchangers from another answer are not used.
            std::erase_if(found.hops, [&](const hop& h) { return strcasecmp(h.host.c_str(), domain.c_str()) != 0; });
            if (found.hops.empty())
                co_return defer(bounce::stage::dns, "DNSSEC proves that " + domain + " has no MX records");
        }
        if (mx.status == dns::dns_status::ok) {
            // Only the validated exchangers: hops from another answer are dropped.
            std::set<std::string> names;
            for (auto& rd : mx.rdata) {
                std::string name;
                std::size_t i = 2;  // after the preference
                while (i < rd.size() && rd[i] != 0) {
                    auto len = static_cast<unsigned char>(rd[i]);
                    if (i + 1 + len > rd.size()) break;
                    if (!name.empty()) name += '.';
                    name.append(rd, i + 1, len);
                    i += 1 + len;
                }
                for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                names.insert(name);
            }
            std::erase_if(found.hops, [&](const hop& h) {
                std::string n = h.host;
                for (auto& ch : n) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                return !names.count(n);
            });
            if (found.hops.empty())
                co_return defer(bounce::stage::dns, "no MX host of " + domain + " in its DNSSEC-validated MX records");
        }
        std::set<std::string> unusable, done;
        std::string last_error;
        for (auto& h : found.hops) {
            if (!done.insert(h.host).second) continue;
            auto a = co_await dnssec->query(h.host, 1);
            if (!a.bogus && a.status != dns::dns_status::ok) a = co_await dnssec->query(h.host, 28);
            if (a.bogus || a.status == dns::dns_status::temporary) {
                // A lookup that fails is treated as a bogus one (RFC 7672 2.1.1):
                // else dropping the validator's packets would switch DANE off.
                record_failure(domain, h.host, "dnssec-invalid", "address of " + h.host + ": " + a.error);
                unusable.insert(h.host);
                last_error = "DNSSEC " + std::string(a.bogus ? "validation" : "lookup") + " of the address of " + h.host +
                             " failed: " + a.error;
                continue;
            }
            if (!a.secure) continue;  // an unsigned host: no DANE for it
            std::string name = tls::tlsa_name(h.host, cfg.delivery.port);
            auto t = co_await dnssec->query(name, 52);
            if (t.bogus || t.status == dns::dns_status::temporary) {
                record_failure(domain, h.host, "dnssec-invalid", name + ": " + t.error);
                unusable.insert(h.host);
                last_error = (t.bogus ? "DNSSEC validation of " : "TLSA lookup of ") + name + " failed: " + t.error;
                continue;
            }
            if (!t.secure || t.status != dns::dns_status::ok) continue;  // no TLSA records: no DANE
            auto hi = std::make_shared<hop_tls>(base);
            // TLS is mandatory; the certificate must match a usable record.
            // With none usable (PKIX usages only, RFC 7672 3.1.3), TLS stays
            // mandatory and the checks the base asked for (MTA-STS) remain.
            hi->demand.dane = true;
            hi->policy_type = "tlsa";
            hi->policy_string.clear();
            for (auto& rd : t.rdata)
                if (auto r = tls::parse_tlsa(rd)) {
                    hi->policy_string.push_back(tls::to_text(*r));
                    if (tls::usable_for_smtp(*r)) hi->demand.tlsa.push_back(std::move(*r));
                }
            if (!hi->demand.tlsa.empty()) {
                hi->demand.verify = hi->demand.check = false;  // the TLSA records decide
                hi->mx_patterns.clear();
            }
            dane[h.host] = std::move(hi);
        }
        if (!unusable.empty()) {
            std::erase_if(found.hops, [&](const hop& h) { return unusable.count(h.host) > 0; });
            if (found.hops.empty()) co_return defer(bounce::stage::tls, last_error);
        }
        co_return true;
    }

    // One message's recipients at one domain, one transaction each. What
    // shaping says (delivery/shaping.hpp) decides the source IP and when
    // each may go; a recipient it holds back (every IP resting or at its
    // warm-up cap, or the next token too far off) stays pending without an
    // attempt, and *not_before says when to look again.
    awaitable<void> deliver_domain(const std::string& id, const std::string& domain, const std::vector<std::size_t>& idxs,
                                   const queue::envelope& env, const std::string& content,
                                   const outgoing::prepared& prep, const source_pool* src_pool,
                                   std::vector<outcome>& out, std::int64_t& not_before, bool& breaker_paused) {
        auto defer_all = [&](std::size_t from, const smtp_reply& why, const std::string& mx) {
            for (std::size_t k = from; k < idxs.size(); ++k) out.push_back({idxs[k], why, mx});
        };
        auto found = co_await hops.find(domain);
        std::string tls_pool;  // connections verified for a policy are pooled apart
        // RFC 8460 3: a TLS report is delivered despite TLS failures, and
        // its session is not counted in the next report.
        bool tls_report = env.sender.empty() && is_tls_report(content);
        if (!found.hops.empty() && !hops.route(domain) && !tls_report) co_await apply_tls_policy(domain, found, tls_pool);
        if (found.hops.empty()) {
            defer_all(0, found.why, "");
            co_return;
        }
        auto dest = shape->find_and_note(domain, found.hops.front().host);
        // The outcomes are recorded when this returns: the pace may hold it
        // up for max_shaping_wait_ms in all, not per recipient, so a crash or
        // a stop never has long stretches of sent-but-unrecorded recipients.
        std::int64_t waited = 0;
        // For servers without 8BITMIME (RFC 6152): the message made 7-bit,
        // once, when the first such server is met (DKIM signs what is sent).
        struct {
            bool checked = false, needed = false;
            std::optional<std::string> content;
            std::string error;
            outgoing::prepared prep;  // views into content: never moved
        } seven;
        for (std::size_t k = 0; k < idxs.size(); ++k) {
            std::size_t idx = idxs[k];
            // A paused destination (reputation, blocklist) is not tried: the
            // recipients left stay pending until the pause ends.
            if (auto until = backoff.paused_until(domain, now_ms())) {
                log()->info("{}: {} paused for {} s more: {} recipient(s) not tried", id, domain,
                            (*until - now_ms() + 999) / 1000, idxs.size() - k);
                co_return;
            }
            transaction t;
            std::string mx, ip, head;
            bool have_head = false;
            std::string head7;  // this recipient's head for the 7-bit copy
            bool have_head7 = false;
            const std::string* body = &content;
            const std::string* body_head = &head;
            for (;;) {  // again from another IP of the pool after a blocklist reply there
                shaper::refusal why;
                auto now = now_ms();
                if (stopping) {  // a stop does not wait for the pace: the rest stays pending
                    not_before = now + 1000;
                    co_return;
                }
                auto ch = shape->choose(dest, src_pool, now, std::max<std::int64_t>(0, max_shaping_wait_ms - waited), why);
                if (!ch) {
                    log()->info("{}: {}: {} recipient(s) wait until {} ({})", id, domain, idxs.size() - k,
                                rfc5322_date(why.retry_at_ms), why.why);
                    not_before = why.retry_at_ms;
                    co_return;
                }
                ip = ch->ip;
                if (ch->at_ms > now) {  // this IP's next token for the destination
                    asio::steady_timer pace(strand, std::chrono::milliseconds(ch->at_ms - now));
                    co_await pace.async_wait(as_tuple);
                    waited += ch->at_ms - now;
                }
                if (!have_head) {  // (signed once a slot is had: nothing is signed for a message held back)
                    head = co_await head_for(prep, env, idx);
                    have_head = true;
                }
                std::string key = dest.key + "|" + ip + tls_pool;
                connection_pool::key_limits kl{dest.limits.max_connections, dest.limits.max_messages_per_connection, ip};
                auto got = co_await pool.acquire(key, found.hops, false, kl);
                // A message may wait a while for its connection: the campaign
                // breaker may have paused it meanwhile. Then nothing is sent and
                // the recipients left stay pending (the pause holds the message).
                if (send_check && !send_check(env)) {
                    log()->info("{}: campaign paused: {} recipient(s) not tried", id, idxs.size() - k);
                    breaker_paused = true;
                    if (got.conn) pool.release(key, std::move(got.conn));
                    co_return;
                }
                if (!got.conn) {
                    // A greeting or EHLO reply about the destination (throttle,
                    // blocklist) counts as one at RCPT would.
                    if (!react(id, domain, dest, ip, src_pool, got.failure)) continue;
                    defer_all(k, got.failure, "");
                    co_return;
                }
                auto conn = std::move(got.conn);
                std::string rp = env.sender.empty() ? std::string()
                                                    : verp.return_path({id, static_cast<std::uint32_t>(idx)},
                                                                       cfg.bounce_listener.domain);
                body = &content;
                body_head = &head;
                if (!conn->eightbitmime() && !env.smtputf8) {
                    if (!seven.checked) {
                        seven.checked = true;
                        seven.needed = env.eightbit || mime::has_eight_bit(content);
                        if (seven.needed) {
                            seven.content = mime::to_seven_bit(content, seven.error);
                            if (seven.content && outgo && outgo->active()) seven.prep = outgo->prepare(env, *seven.content);
                        }
                    }
                    if (seven.needed && !seven.content) {
                        // Cannot be made 7-bit: not sent, failed at once (a retry would not help).
                        mx = conn->mx() + "[" + conn->ip() + "]";
                        pool.release(key, std::move(conn));
                        t = {};
                        t.reply.code = 554;
                        t.reply.enhanced = "5.6.3";
                        t.reply.at = bounce::stage::mail;
                        t.reply.lines.push_back("message has 8-bit content that cannot be converted (" + seven.error +
                                                "), and " + mx + " does not offer 8BITMIME");
                        log()->warn("{}: to=<{}>: {}", id, env.recipients[idx], t.reply.text());
                        break;
                    }
                    if (seven.needed) {
                        if (!have_head7) {
                            head7 = co_await head_for(seven.prep, env, idx);
                            have_head7 = true;
                        }
                        body = &*seven.content;
                        body_head = &head7;
                        log()->info("{}: to=<{}>: sent 7-bit ({} offers no 8BITMIME)", id, env.recipients[idx], conn->mx());
                    }
                }
                bool eightbit = env.eightbit && body == &content;
                try {
                    t = co_await conn->send(rp, env.recipients[idx], *body_head, *body, env.smtputf8, eightbit);
                } catch (...) {
                    pool.release(key, nullptr);  // the slot, not the broken connection
                    throw;
                }
                if (t.connection_lost && t.before_data && t.reply.code == 0 && conn->transactions() > 1) {
                    // A reused connection the server had already closed: that says
                    // nothing about this recipient. Once more on a fresh connection.
                    pool.release(key, nullptr);
                    conn.reset();
                    auto again = co_await pool.acquire(key, found.hops, true, kl);
                    if (!again.conn) {
                        defer_all(k, again.failure, "");
                        co_return;
                    }
                    conn = std::move(again.conn);
                    try {
                        t = co_await conn->send(rp, env.recipients[idx], *body_head, *body, env.smtputf8, eightbit);
                    } catch (...) {
                        pool.release(key, nullptr);
                        throw;
                    }
                }
                mx = conn->mx() + "[" + conn->ip() + "]";
                pool.release(key, std::move(conn));
                if (t.reply.positive()) {
                    backoff.reset(domain);
                    shape->succeeded(dest, ip);
                    break;
                }
                if (react(id, domain, dest, ip, src_pool, t.reply)) break;
                // Refused from this IP only: the recipient goes again at once
                // from another, and this attempt counts against nothing.
                log()->info("{}: to=<{}>: {} refused from {}; trying another address of pool {}", id,
                            env.recipients[idx], dest.key, ip, src_pool ? src_pool->name : "");
            }
            if (!ip.empty() && t.reply.positive()) log()->info("{}: to=<{}>: sent from {}", id, env.recipients[idx], ip);
            out.push_back({idx, std::move(t.reply), mx});
        }
    }

    // What a refusal says about the destination. Rate-limited: its rate from
    // this IP is halved. Blocklisted or bad reputation: this IP rests for
    // that destination; when the pool has another, false (try that one),
    // else the whole destination pauses. True: the reply stands for the recipient.
    bool react(const std::string& id, const std::string& domain, const destination& dest, const std::string& ip,
               const source_pool* src_pool, const smtp_reply& reply) {
        if (reply.code == 0 && reply.lines.empty()) return true;
        auto c = classify.classify(reply, domain);
        if (!pauses_destination(c)) return true;
        auto now = now_ms();
        if (c.c == bounce::category::rate_limited) {
            shape->rate_limited(dest, ip, now);
            log()->warn("{}: {}{}: rate-limited ({}); its rate is now {}", id, dest.key, ip.empty() ? "" : " from " + ip,
                        reply.text(), describe_rate(dest, ip, now));
            return true;
        }
        if (shape->rest(dest, ip, src_pool, now)) {
            log()->warn("{}: {} rests from {} after a {} reply ({})", id, dest.key, ip, bounce::to_string(c.c), reply.text());
            return false;
        }
        auto until = backoff.pause(domain, now);
        log()->warn("{}: destination {} paused for {} s after a {} reply ({})", id, domain, (until - now + 999) / 1000,
                    bounce::to_string(c.c), reply.text());
        return true;
    }

    std::string describe_rate(const destination& dest, const std::string& ip, std::int64_t now) const {
        for (auto& s : shape->state(now))
            if (s.key == dest.key && s.ip == ip)
                return s.rate_per_minute > 0 ? std::to_string(static_cast<long>(s.rate_per_minute)) + "/min" : "unlimited";
        return "unlimited";
    }

    // The [[pool]] a message sends from: its X-Pool field, else its
    // campaign's [[campaign]] pool, else delivery.pool; null: none.
    const source_pool* pool_of(const std::string& id, const queue::envelope& env, const std::string& content) const {
        std::string name;
        for (auto& f : dkim::split_message(content).headers) {
            if (!dkim::iequals(f.name, "X-Pool")) continue;
            auto v = f.raw.substr(f.raw.find(':') + 1);
            while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
            while (!v.empty() && (v.back() == '\n' || v.back() == '\r' || v.back() == ' ' || v.back() == '\t'))
                v.remove_suffix(1);
            name = std::string(v);
            break;
        }
        if (!name.empty()) {
            if (auto* p = shape->pool(name)) return p;
            log()->warn("{}: X-Pool: no [[pool]] named \"{}\"; the default pool sends it", id, name);
        } else if (!env.campaign.empty()) {
            for (auto& c : cfg.campaigns)
                if (c.id == env.campaign && !c.pool.empty()) return shape->pool(c.pool);
        }
        return cfg.delivery.pool.empty() ? nullptr : shape->pool(cfg.delivery.pool);
    }

    retry_policy policy_for(const queue::envelope& env, std::size_t idx) const {
        return retry_for(cfg, queue::recipient_domain(env.recipients[idx]));
    }

    // Makes decisions durable (status file first, synced on the sync
    // threads), then tells the world. durable = false when the message is
    // about to be removed anyway: its status file would be written, synced
    // and deleted in the same breath (the hot path of every delivered
    // message; at worst a crash in between repeats a delivery, as any MTA's
    // at-least-once promise allows).
    awaitable<bool> record(const std::string& id, const queue::envelope& env,
                           std::vector<queue::recipient_status>& status,
                           const std::vector<std::pair<std::size_t, queue::recipient_status>>& updates,
                           std::int64_t now, bool durable = true) {
        if (updates.empty()) co_return true;
        std::error_code ec;
        if (durable) {
            auto op = on_sync_thread([this, &id, &updates] { return spool.append_status(id, updates); });
            ec = co_await std::move(op);
        }
        if (ec) {
            // Not recorded: tried again later, which may repeat a delivery but
            // never loses a decision or the mail.
            log()->error("{}: cannot record recipient status: {}; retried in 60 s", id, ec.message());
            co_return false;
        }
        std::vector<events::event> evs;
        for (auto& [idx, rs] : updates) {
            status[idx] = rs;
            log()->info("{}: to=<{}>, relay={}, delay={}, dsn={}, status={}{}{} ({})", id, env.recipients[idx],
                        rs.mx.empty() ? "none" : rs.mx, (now - env.arrival_ms) / 1000,
                        rs.enhanced.empty() ? (rs.code ? std::to_string(rs.code / 100) + ".0.0" : "4.4.1") : rs.enhanced,
                        rs.status, rs.kind.empty() ? "" : " " + rs.kind + "/" + rs.category,
                        rs.rule.empty() ? "" : " rule=" + rs.rule, rs.reply);
            auto type = events::parse_event_type(rs.status).value_or(events::event_type::deferred);
            evs.push_back(events::attempt_outcome(type, id, env.campaign,
                                                  env.recipients[idx], {rs.code, rs.enhanced, rs.reply, rs.mx, rs.stage},
                                                  {rs.kind, rs.category, rs.rule}, rs.attempts, now));
        }
        // Nobody waits on an outcome: it may share the next group commit's
        // transaction (publish_lazily).
        publisher.publish_lazily(std::move(evs));
        co_return true;
    }

    // Resumes once every decision posted so far is in the state store,
    // without holding a thread meanwhile. A finished message's file is
    // removed only after: its decisions (a hard bounce that suppresses the
    // address) must survive a crash, and the file is their only other record.
    awaitable<void> decisions_stored() {
        // An empty batch, applied in order (lazily: the file's removal can wait a little).
        auto start = [this](auto done) { publisher.publish_lazily({}, std::move(done)); };
        co_await async_from_callback<void()>(start, asio::use_awaitable);
    }

    // bounce.return_to_sender: when a message is finished, one DSN to its
    // sender listing every recipient that failed, queued like any message
    // from the null sender. True when there is nothing to send or it is
    // queued (durably: the original is removed only after).
    awaitable<bool> return_to_sender(const std::string& id, const queue::envelope& env, const std::string& content,
                                     const std::vector<queue::recipient_status>& status) {
        auto failed = failures_to_return(cfg, env, status);
        if (failed.empty()) co_return true;
        auto dsn = queue::dsn_envelope(spool.new_id(), env, cfg.server.hostname);
        dsn.arrival_ms = now_ms();
        auto text = queue::write_dsn(cfg.server.hostname, env, content, failed, dsn.arrival_ms);
        auto dsn_id = dsn.id;
        auto op = async_commit(spool, std::move(dsn), std::move(text), asio::use_awaitable);
        std::error_code ec = co_await std::move(op);
        if (ec) {
            log()->error("{}: cannot queue the DSN for <{}>: {}; tried again in 60 s", id, env.sender, ec.message());
            co_return false;
        }
        log()->info("{}: returned {} failure(s) to <{}> as {}", id, failed.size(), env.sender, dsn_id);
        co_return true;
    }

    awaitable<void> deliver_message(std::string id) {
        auto st = spool.locate(id);
        if (!st) co_return;  // delivered, bounced or deleted meanwhile
        auto now = now_ms();
        queue::envelope env;
        std::string content;
        std::error_code ec;
        std::vector<queue::recipient_status> status;
        std::error_code status_ec;
        bool not_due = false;
        auto read = [this, &id, &env, &content, &status, &status_ec, &not_due, now, state = *st] {
            if (state == queue::queue_state::deferred) {
                // A stale schedule entry (e.g. from before a hold/release): not due yet.
                if (auto m = spool.mtime_ms(id, state); m && *m > now + 1000) {
                    not_due = true;
                    return std::error_code();
                }
            }
            auto e = spool.read_message(id, state, env, content);
            if (!e) status = spool.read_status(id, env.recipients.size(), status_ec);
            return e;
        };
        if (*st == queue::queue_state::active) {
            ec = read();  // written moments ago: in the page cache
        } else {
            // A retry's file (up to the size limit) may have left the page
            // cache hours ago: its times and content are read on the sync
            // threads, not on the strand (only locate's look-up of the name
            // stays here).
            auto op = on_sync_thread(read);
            ec = co_await std::move(op);
        }
        if (not_due) co_return;
        if (ec) {
            if (ec == std::errc::illegal_byte_sequence) {
                // Written whole once, unreadable now (a disk fault): kept for a human.
                auto state = *st;
                auto op = on_sync_thread([this, &id, state] { return spool.quarantine(id, state); });
                auto qec = co_await std::move(op);
                log()->error("{}: queue file in {}/ does not decode; moved to corrupt/{}", id, queue::to_string(*st),
                             qec ? " failed: " + qec.message() : "");
                if (qec) due.add(id, now + 60000);
            } else if (ec != std::errc::no_such_file_or_directory) {
                log()->error("{}: cannot read queue file: {}; retried in 60 s", id, ec.message());
                due.add(id, now + 60000);
            } else if (auto moved = spool.locate(id)) {
                due.add(id, now);  // moved under us (hold/release/flush): look again
            }
            co_return;
        }
        if (status_ec) {
            log()->error("{}: cannot read recipient status: {}; retried in 60 s", id, status_ec.message());
            due.add(id, now + 60000);
            co_return;
        }

        // Expiry comes first and holds whatever the message's state (held,
        // never tried): the recipient fails with its last reply's reading.
        std::vector<std::pair<std::size_t, queue::recipient_status>> expired;
        std::map<std::string, std::vector<std::size_t>> by_domain;
        std::map<std::string, std::int64_t> not_before;  // domain -> held back by shaping until
        bool breaker_paused = false;  // its campaign was paused while it waited for a connection
        for (std::size_t i = 0; i < env.recipients.size(); ++i) {
            if (status[i].final()) continue;
            if (auto rs = expire_if_due(status[i], env.arrival_ms, policy_for(env, i), now)) {
                expired.emplace_back(i, std::move(*rs));
            } else if (auto why = suppressed && *st != queue::queue_state::hold ? suppressed(env.recipients[i])
                                                                                : std::nullopt) {
                // Unsubscribed (one click, a complaint) or held while this waited:
                // not sent, and final. (Recorded with the expired ones, before any attempt.)
                auto rs = status[i];
                rs.status = "suppressed";
                rs.code = 0;
                rs.enhanced.clear();
                rs.stage.clear();
                rs.mx.clear();
                rs.kind = rs.category = rs.rule = "";
                rs.reply = "not sent: the recipient " + *why;
                expired.emplace_back(i, std::move(rs));
            } else {
                by_domain[queue::recipient_domain(env.recipients[i])].push_back(i);
            }
        }
        bool recorded = co_await record(id, env, status, expired, now);
        if (!recorded) {
            due.add(id, now + 60000);
            co_return;
        }
        if (*st == queue::queue_state::hold) {
            log()->info("{}: on hold, not delivered", id);  // release schedules it again
        } else {
            // What is the same for every copy (the header fields, DKIM's body hash): once.
            outgoing::prepared prep;
            if (outgo && outgo->active() && !by_domain.empty()) prep = outgo->prepare(env, content);
            const source_pool* src_pool = by_domain.empty() ? nullptr : pool_of(id, env, content);
            for (auto& [domain, idxs] : by_domain) {
                std::vector<outcome> results;
                auto attempt_start = std::chrono::steady_clock::now();
                std::int64_t shaped = 0;
                co_await deliver_domain(id, domain, idxs, env, content, prep, src_pool, results, shaped, breaker_paused);
                if (shaped) not_before[domain] = shaped;
                if (attempt_observer)
                    attempt_observer(std::chrono::duration<double>(std::chrono::steady_clock::now() - attempt_start).count());
                // Recorded per domain, so a stop or crash later in this message
                // never sends these recipients again.
                auto t = now_ms();
                std::vector<std::pair<std::size_t, queue::recipient_status>> updates;
                for (auto& o : results) {
                    // A success needs no reading: the classifier is for failures.
                    auto reading = o.reply.positive()
                                       ? bounce::classification{}
                                       : classify.classify(o.reply, queue::recipient_domain(env.recipients[o.idx]));
                    updates.emplace_back(o.idx, after_attempt(status[o.idx], o.reply, o.mx, reading, t));
                }
                // Will every recipient be final after these? Then the message
                // is removed next, and its status need not be synced first.
                auto after = status;
                for (auto& [i, rs] : updates) after[i] = rs;
                bool all_final = std::all_of(after.begin(), after.end(), [](auto& r) { return r.final(); });
                bool stored = co_await record(id, env, status, updates, t, !all_final);
                if (!stored) {
                    due.add(id, t + 60000);
                    co_return;
                }
            }
        }

        now = now_ms();
        auto where = spool.locate(id);  // an operator may have held or deleted it meanwhile
        if (!where) co_return;
        std::int64_t next = 0;
        bool pending = false;
        for (std::size_t i = 0; i < env.recipients.size(); ++i) {
            if (status[i].final()) continue;
            pending = true;
            auto dom = queue::recipient_domain(env.recipients[i]);
            auto paused = backoff.paused_until(dom, now);
            if (auto nb = not_before.find(dom); nb != not_before.end() && !status[i].final())
                paused = std::max(paused.value_or(0), nb->second);  // shaping's wait: no attempt was made
            auto when = next_attempt(now, env.arrival_ms, policy_for(env, i), paused, *where == queue::queue_state::hold);
            next = next ? std::min(next, when) : when;
        }
        if (!pending) {
            if (!co_await return_to_sender(id, env, content, status)) {
                due.add(id, now + 60000);  // finished, but its DSN is not queued yet
                co_return;
            }
            co_await decisions_stored();
            where = spool.locate(id);  // an operator may have held it meanwhile
            if (!where) co_return;
            if (auto rec = spool.remove(id, *where)) log()->error("{}: cannot remove: {}", id, rec.message());
            else log()->info("{}: removed", id);
            co_return;
        }
        // The pause may have been lifted since this attempt saw it (the
        // resume's release sweep then ran while the message was in flight, and
        // would not release it again): checked once more, and again once it
        // is held, so that a resume at any moment sends it now.
        auto still_paused = [&] { return send_check && !send_check(env); };
        if (breaker_paused && !still_paused()) {
            breaker_paused = false;
            next = now;  // nothing was tried: tried again now, not an interval later
        }
        if (breaker_paused && *where != queue::queue_state::hold) {
            // The pause holds its scope's queue; a message accepted just before
            // the pause and missed by that sweep is held here, not retried
            // (and refused) every interval until the operator resumes.
            auto from = *where;
            auto op = on_sync_thread([this, &id, from] { return spool.move(id, from, queue::queue_state::hold); });
            auto mec = co_await std::move(op);
            if (mec) {
                log()->error("{}: cannot hold: {}", id, mec.message());
            } else if (!still_paused()) {
                // Resumed between the check and the move: released here.
                auto back = on_sync_thread(
                    [this, &id] { return spool.move(id, queue::queue_state::hold, queue::queue_state::active); });
                auto bec = co_await std::move(back);
                if (bec && bec != std::errc::no_such_file_or_directory)
                    log()->error("{}: cannot release: {}", id, bec.message());
                where = spool.locate(id);
                if (!where) co_return;
                next = now;
            } else {
                log()->info("{}: campaign paused: held", id);
                where = queue::queue_state::hold;
                std::int64_t expiry = 0;
                for (std::size_t i = 0; i < env.recipients.size(); ++i)
                    if (!status[i].final())
                        expiry = std::max(expiry, next_attempt(now, env.arrival_ms, policy_for(env, i), std::nullopt, true));
                next = expiry;
            }
        }
        if (*where != queue::queue_state::hold) {
            auto from = *where;
            auto op = on_sync_thread([this, &id, from, next] { return spool.defer(id, from, next); });
            auto dec = co_await std::move(op);
            if (dec) log()->error("{}: cannot defer: {}", id, dec.message());
        }
        due.add(id, next);
    }
};

delivery_agent::delivery_agent(asio::io_context& io, const config& cfg, queue::spool& spool, queue::schedule& due,
                               events::publisher& publisher, const bounce::verp_signer& verp,
                               const bounce::classifier& classify, bounce::destination_backoff& backoff,
                               dns::lookup* dns, transport* t)
    : impl_(std::make_shared<impl>(io, cfg, spool, due, publisher, verp, classify, backoff, dns, t)) {}

unsigned delivery_agent::in_flight() const { return impl_->inflight.load(); }

delivery_agent::~delivery_agent() {
    // Before the io_context goes (the daemon destroys this first): a sync or
    // signing job still running posts its result to the strand, and its
    // coroutine must not be released on a pool's own thread.
    impl_->syncs.join();
    if (impl_->signing) impl_->signing->join();
}

void delivery_agent::start() { asio::co_spawn(impl_->strand, impl_->dispatcher(), asio::detached); }

void delivery_agent::set_suppression_check(std::function<std::optional<std::string>(const std::string&)> f) {
    impl_->suppressed = std::move(f);
}

void delivery_agent::set_shaper(shaper* s) {
    if (s) impl_->shape = s;
}

void delivery_agent::set_tls_reporter(tls::tls_reporter* r) { impl_->reporter = r; }
tls::mta_sts* delivery_agent::sts_policies() { return impl_->sts.get(); }
std::string delivery_agent::dane_status() const {
    std::lock_guard lk(impl_->dane_mu);
    return impl_->dane_state;
}
void delivery_agent::set_outgoing(const outgoing* o) {
    impl_->outgo = o;
    if (o && !impl_->signing) impl_->signing = std::make_unique<asio::thread_pool>(std::max(2u, std::thread::hardware_concurrency()));
}

void delivery_agent::set_attempt_observer(std::function<void(double)> f) { impl_->attempt_observer = std::move(f); }
void delivery_agent::set_send_check(std::function<bool(const queue::envelope&)> f) { impl_->send_check = std::move(f); }

void delivery_agent::wake() {
    asio::post(impl_->strand, [self = impl_] { self->wake_on_strand(); });
}

void delivery_agent::stop() {
    asio::post(impl_->strand, [self = impl_] {
        self->stopping = true;
        self->wakeup.cancel();
    });
}

}  // namespace ricochet::delivery
