// mta_sts — see mta_sts.hpp. The only file of tls/ that includes Beast.
#include "tls/mta_sts.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <fstream>

#include "base/unique_fd.hpp"
#include "config/config.hpp"
#include "dns/lookup.hpp"
#include "queue/clock.hpp"
#include "queue/logger.hpp"
#include "tls/tls_report.hpp"

namespace ricochet::tls {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::awaitable;
using asio::ip::tcp;

namespace {
std::shared_ptr<spdlog::logger> log() {
    static auto l = named_logger("delivery");
    return l;
}
constexpr std::size_t max_policy_size = 64 * 1024;      // RFC 8461 3.3: senders may limit; 64 KiB is plenty
constexpr auto fetch_timeout = std::chrono::seconds(30);
constexpr std::int64_t retry_failed_fetch_ms = 5 * 60 * 1000;

struct fetch_result {
    std::string text;
    std::string failure_type, error;  // failure_type empty: text is the body
};

bool safe_domain(const std::string& d) {
    if (d.empty() || d.size() > 253 || d.front() == '.') return false;
    for (char c : d)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.')) return false;
    return d.find("..") == std::string::npos;
}
}  // namespace

struct mta_sts::impl {
    asio::any_io_executor ex;
    const config& cfg;
    dns::lookup& dns;
    std::filesystem::path dir;
    asio::ssl::context tls{asio::ssl::context::tls_client};

    std::mutex mu;  // guards the maps below (show() comes from another thread)
    std::map<std::string, std::shared_ptr<const sts_cached>> cache;
    std::map<std::string, bool> loaded;  // the file was read (or is absent)
    struct failed_fetch {
        std::string id, type, error;
        std::int64_t at_ms = 0;
    };
    std::map<std::string, failed_fetch> failed;
    std::map<std::string, std::vector<std::shared_ptr<asio::steady_timer>>> fetching;  // waiters per domain

    impl(asio::any_io_executor e, const config& c, dns::lookup& d, std::filesystem::path p)
        : ex(std::move(e)), cfg(c), dns(d), dir(std::move(p)) {
        tls.set_verify_mode(asio::ssl::verify_peer);
        boost::system::error_code ec;
        if (!cfg.delivery.tls_ca_file.empty()) tls.load_verify_file(cfg.delivery.tls_ca_file.string(), ec);
        else tls.set_default_verify_paths(ec);
        if (ec) log()->error("MTA-STS: trust anchors: {}", ec.message());
        SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
        if (!dir.empty()) {  // (nothing the daemon writes is for other users)
            std::filesystem::create_directories(dir, ec);
            std::filesystem::permissions(dir, std::filesystem::perms::owner_all, ec);
        }
    }

    std::filesystem::path file_of(const std::string& domain) const { return dir / (domain + ".json"); }

    // The cached policy (from memory, or the file once), expired or not.
    std::shared_ptr<const sts_cached> cached(const std::string& domain) {
        std::lock_guard lk(mu);
        if (auto it = cache.find(domain); it != cache.end()) return it->second;
        if (dir.empty() || loaded[domain]) return nullptr;
        loaded[domain] = true;
        std::ifstream in(file_of(domain));
        if (!in) return nullptr;
        try {
            auto j = nlohmann::json::parse(in);
            auto c = std::make_shared<sts_cached>();
            c->domain = domain;
            c->id = j.at("id").get<std::string>();
            c->text = j.at("policy").get<std::string>();
            c->fetched_ms = j.at("fetched_ms").get<std::int64_t>();
            std::string error;
            auto p = parse_sts_policy(c->text, error);
            if (!p) return nullptr;
            c->policy = std::move(*p);
            cache[domain] = c;
            return c;
        } catch (const std::exception& e) {
            log()->warn("MTA-STS: {}: unreadable, ignored: {}", file_of(domain).string(), e.what());
            return nullptr;
        }
    }

    // Kept across restarts: written to a temporary file, synced, renamed.
    void store(std::shared_ptr<const sts_cached> c) {
        {
            std::lock_guard lk(mu);
            cache[c->domain] = c;
            failed.erase(c->domain);
        }
        if (dir.empty()) return;
        nlohmann::json j{{"domain", c->domain}, {"id", c->id}, {"fetched_ms", c->fetched_ms}, {"policy", c->text}};
        auto path = file_of(c->domain);
        if (auto ec = base::replace_file(path, j.dump(2) + "\n"))
            log()->error("MTA-STS: cannot keep the policy of {} in {}: {}", c->domain, path.string(), ec.message());
    }

    awaitable<fetch_result> fetch(const std::string& domain) {
        fetch_result out;
        auto deadline = std::chrono::steady_clock::now() + fetch_timeout;  // for the whole fetch, every address
        const std::string host = "mta-sts." + domain;
        auto addrs = co_await dns.addresses(host);
        if (addrs.status != dns::dns_status::ok) {
            out.failure_type = result_type::sts_policy_fetch_error;
            out.error = addrs.error.empty() ? host + ": no address" : addrs.error;
            co_return out;
        }
        for (std::size_t i = 0; i < addrs.addresses.size() && i < 3; ++i) {
            boost::system::error_code aec;
            auto ip = asio::ip::make_address(addrs.addresses[i], aec);
            if (aec) continue;
            if (std::chrono::steady_clock::now() >= deadline) break;
            out = co_await fetch_from(host, tcp::endpoint(ip, cfg.delivery.mta_sts_port), deadline);
            // Another address helps only when this one could not be reached.
            if (out.failure_type.empty() || out.failure_type != result_type::sts_policy_fetch_error ||
                out.error.find("connect") == std::string::npos)
                break;
        }
        co_return out;
    }

    awaitable<fetch_result> fetch_from(const std::string& host, tcp::endpoint ep,
                                       std::chrono::steady_clock::time_point deadline) {
        fetch_result out;
        beast::ssl_stream<beast::tcp_stream> s(ex, tls);
        auto& low = beast::get_lowest_layer(s);
        auto fail = [&](std::string type, std::string why) {
            out.failure_type = std::move(type);
            out.error = "https://" + host + "/.well-known/mta-sts.txt: " + why;
            return out;
        };
        low.expires_at(deadline);
        auto [cec] = co_await low.async_connect(ep, asio::as_tuple(asio::use_awaitable));
        if (cec) co_return fail(result_type::sts_policy_fetch_error, "connect to " + ep.address().to_string() + ": " + cec.message());
        SSL_set_tlsext_host_name(s.native_handle(), host.c_str());
        SSL_set1_host(s.native_handle(), host.c_str());  // RFC 8461 3.3: the certificate must name mta-sts.DOMAIN
        low.expires_at(deadline);
        auto [hec] = co_await s.async_handshake(asio::ssl::stream_base::client, asio::as_tuple(asio::use_awaitable));
        if (hec) {
            long v = SSL_get_verify_result(s.native_handle());
            if (v != X509_V_OK) co_return fail(result_type::sts_webpki_invalid, std::string("certificate: ") + X509_verify_cert_error_string(v));
            co_return fail(result_type::sts_policy_fetch_error, "TLS handshake: " + hec.message());
        }
        bhttp::request<bhttp::empty_body> req{bhttp::verb::get, "/.well-known/mta-sts.txt", 11};
        req.set(bhttp::field::host, host);
        req.set(bhttp::field::user_agent, "ricochet");
        req.set(bhttp::field::connection, "close");
        low.expires_at(deadline);
        auto [wec, wn] = co_await bhttp::async_write(s, req, asio::as_tuple(asio::use_awaitable));
        if (wec) co_return fail(result_type::sts_policy_fetch_error, "sending the request: " + wec.message());
        beast::flat_buffer buf;
        bhttp::response_parser<bhttp::string_body> parser;
        parser.header_limit(16 * 1024);
        parser.body_limit(max_policy_size);
        low.expires_at(deadline);
        auto [rec, rn] = co_await bhttp::async_read(s, buf, parser, asio::as_tuple(asio::use_awaitable));
        if (rec == bhttp::error::body_limit) co_return fail(result_type::sts_policy_fetch_error, "policy larger than 64 KiB");
        if (rec) co_return fail(result_type::sts_policy_fetch_error, "reading the answer: " + rec.message());
        auto& res = parser.get();
        unsigned status = res.result_int();
        // RFC 8461 3.3: HTTP redirects are not followed; only 200 is a policy.
        if (status >= 300 && status < 400) co_return fail(result_type::sts_policy_fetch_error, "redirect (" + std::to_string(status) + ") not followed");
        if (status != 200) co_return fail(result_type::sts_policy_fetch_error, "HTTP " + std::to_string(status));
        std::string ctype(res[bhttp::field::content_type]);
        for (auto& ch : ctype) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::string media = ctype.substr(0, ctype.find(';'));
        while (!media.empty() && (media.back() == ' ' || media.back() == '\t')) media.pop_back();
        while (!media.empty() && (media.front() == ' ' || media.front() == '\t')) media.erase(0, 1);
        if (media != "text/plain") co_return fail(result_type::sts_policy_invalid, "Content-Type is not text/plain: " + ctype);
        out.text = std::move(res.body());
        beast::error_code ignored;
        low.socket().shutdown(tcp::socket::shutdown_both, ignored);
        co_return out;
    }
};

mta_sts::mta_sts(asio::any_io_executor ex, const config& cfg, dns::lookup& dns, std::filesystem::path dir)
    : impl_(std::make_shared<impl>(std::move(ex), cfg, dns, std::move(dir))) {}

mta_sts::~mta_sts() = default;

awaitable<sts_answer> mta_sts::policy_for(const std::string& domain) {
    auto keep = impl_;  // alive for the whole call
    auto& m = *keep;
    sts_answer out;
    if (!safe_domain(domain)) co_return out;
    const std::string txt_name = "_mta-sts." + domain;
    auto txt = co_await m.dns.txt(txt_name);
    auto now = now_ms();
    auto have = m.cached(domain);
    bool have_valid = have && have->valid_at(now);
    sts_record rec;
    if (txt.status == dns::dns_status::ok) rec = parse_sts_record(txt.records);
    if (txt.status == dns::dns_status::temporary || !rec.found || !rec.error.empty()) {
        // No (valid) announcement: a cached policy stays in force until its
        // max_age (RFC 8461 5.1: a removed record does not remove a policy,
        // so an attacker who strips DNS answers cannot either).
        if (have_valid) out.policy = have;
        co_return out;
    }
    if (have_valid && have->id == rec.id) {
        out.policy = have;
        co_return out;
    }
    // A new id, or nothing valid cached: fetch, once per domain at a time.
    {
        std::unique_lock lk(m.mu);
        if (auto f = m.failed.find(domain);
            f != m.failed.end() && f->second.id == rec.id && now - f->second.at_ms < retry_failed_fetch_ms) {
            out.failure_type = f->second.type;
            out.failure_detail = f->second.error;
            lk.unlock();
            if (have_valid) out.policy = have;
            co_return out;
        }
        if (auto it = m.fetching.find(domain); it != m.fetching.end()) {
            auto t = std::make_shared<asio::steady_timer>(m.ex, asio::steady_timer::time_point::max());
            it->second.push_back(t);
            lk.unlock();
            co_await t->async_wait(asio::as_tuple(asio::use_awaitable));
            lk.lock();
            if (auto c = m.cache.find(domain); c != m.cache.end() && c->second->id == rec.id && c->second->valid_at(now_ms())) {
                out.policy = c->second;
                co_return out;
            }
            if (auto f = m.failed.find(domain); f != m.failed.end()) {
                out.failure_type = f->second.type;
                out.failure_detail = f->second.error;
            }
            lk.unlock();
            if (have_valid) out.policy = have;
            co_return out;
        }
        m.fetching[domain];
    }
    struct wake_waiters {
        impl& m;
        const std::string& domain;
        ~wake_waiters() {
            std::lock_guard lk(m.mu);
            auto it = m.fetching.find(domain);
            if (it == m.fetching.end()) return;
            for (auto& t : it->second) t->cancel();
            m.fetching.erase(it);
        }
    } wake{m, domain};
    auto got = co_await m.fetch(domain);
    std::optional<sts_policy> policy;
    if (got.failure_type.empty()) {
        std::string error;
        policy = parse_sts_policy(got.text, error);
        if (!policy) {
            got.failure_type = result_type::sts_policy_invalid;
            got.error = "https://mta-sts." + domain + "/.well-known/mta-sts.txt: " + error;
        }
    }
    if (!policy) {
        log()->warn("MTA-STS: {}: {}{}", domain, got.error, have_valid ? " (the cached policy stays in force)" : "");
        {
            std::lock_guard lk(m.mu);
            m.failed[domain] = {rec.id, got.failure_type, got.error, now_ms()};
        }
        out.failure_type = got.failure_type;
        out.failure_detail = got.error;
        out.fetched_now = true;
        if (have_valid) out.policy = have;
        co_return out;
    }
    auto c = std::make_shared<sts_cached>();
    c->domain = domain;
    c->id = rec.id;
    c->policy = std::move(*policy);
    c->text = std::move(got.text);
    c->fetched_ms = now_ms();
    log()->info("MTA-STS: {}: policy {} fetched: mode {}, mx {}, max_age {}", domain, c->id, to_string(c->policy.mode),
                c->policy.mx.empty() ? std::string("-") : c->policy.mx.front() + (c->policy.mx.size() > 1 ? ", ..." : ""),
                c->policy.max_age);
    m.store(c);
    out.policy = std::move(c);
    co_return out;
}

nlohmann::json mta_sts::show(const std::string& domain, std::int64_t now) {
    auto c = impl_->cached(domain);
    nlohmann::json j{{"domain", domain}};
    if (c) {
        j["policy"] = {{"id", c->id},
                       {"mode", std::string(to_string(c->policy.mode))},
                       {"mx", c->policy.mx},
                       {"max_age", c->policy.max_age},
                       {"fetched_ms", c->fetched_ms},
                       {"age_s", (now - c->fetched_ms) / 1000},
                       {"in_force", c->valid_at(now)}};
    } else {
        j["policy"] = nullptr;
    }
    std::lock_guard lk(impl_->mu);
    if (auto f = impl_->failed.find(domain); f != impl_->failed.end())
        j["last_fetch_failure"] = {{"type", f->second.type}, {"error", f->second.error}, {"at_ms", f->second.at_ms}, {"id", f->second.id}};
    return j;
}

}  // namespace ricochet::tls
