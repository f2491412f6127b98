// resolver — see resolver.hpp. c-ares tells us which sockets it wants
// watched (sock_state_cb); each becomes a non-owning Asio descriptor whose
// readiness calls ares_process_fd, and one timer drives c-ares' own
// retransmissions and time-outs.
#include "dns/resolver.hpp"

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <poll.h>

#include <boost/asio.hpp>
#include <map>
#include <random>

namespace ricochet::dns {
namespace asio = boost::asio;

namespace {
struct ares_library {
    ares_library() { ares_library_init(ARES_LIB_INIT_ALL); }
    ~ares_library() { ares_library_cleanup(); }
};

struct raw_answer {
    int status = ARES_ETIMEOUT;
    std::vector<unsigned char> buf;
};

// The smallest TTL among the answer records (RFC 2181 5.2: an RRset shares
// one TTL). 0 when there is none.
std::uint32_t min_answer_ttl(const unsigned char* buf, int len) {
    if (len < 12) return 0;
    int qd = (buf[4] << 8) | buf[5], an = (buf[6] << 8) | buf[7];
    const unsigned char* p = buf + 12;
    auto skip_name = [&](const unsigned char*& q) {
        char* name = nullptr;
        long n = 0;
        if (ares_expand_name(q, buf, len, &name, &n) != ARES_SUCCESS) return false;
        ares_free_string(name);
        q += n;
        return q <= buf + len;
    };
    for (int i = 0; i < qd; ++i) {
        if (!skip_name(p) || p + 4 > buf + len) return 0;
        p += 4;
    }
    std::uint32_t ttl = 0;
    bool any = false;
    for (int i = 0; i < an; ++i) {
        if (!skip_name(p) || p + 10 > buf + len) break;
        std::uint32_t t = (std::uint32_t(p[4]) << 24) | (p[5] << 16) | (p[6] << 8) | p[7];
        int rdlen = (p[8] << 8) | p[9];
        ttl = any ? std::min(ttl, t) : t;
        any = true;
        p += 10 + rdlen;
    }
    return ttl;
}

dns_status map_status(int s) {
    switch (s) {
        case ARES_SUCCESS: return dns_status::ok;
        case ARES_ENOTFOUND: return dns_status::nxdomain;
        case ARES_ENODATA: return dns_status::no_data;
        default: return dns_status::temporary;
    }
}
}  // namespace

struct resolver::impl : std::enable_shared_from_this<impl> {
    asio::any_io_executor ex;
    ares_channel channel = nullptr;
    std::string init_error;
    asio::steady_timer timer;
    struct watch {
        asio::posix::stream_descriptor d;
        bool want_read = false, want_write = false, reading = false, writing = false, closed = false;
        explicit watch(asio::any_io_executor e, int fd) : d(e, fd) {}
    };
    std::map<ares_socket_t, std::shared_ptr<watch>> watches;
    struct cached {
        std::chrono::steady_clock::time_point expires;
        raw_answer answer;
    };
    std::map<std::pair<int, std::string>, cached> cache;
    std::mt19937 rng{std::random_device{}()};
    std::uint64_t inserts = 0;

    explicit impl(asio::any_io_executor e) : ex(e), timer(e) {}

    ~impl() {
        for (auto& [fd, w] : watches) {
            w->closed = true;
            w->d.release();
        }
        if (channel) ares_destroy(channel);
    }

    static void sock_state(void* data, ares_socket_t fd, int readable, int writable) {
        auto* self = static_cast<impl*>(data);
        auto it = self->watches.find(fd);
        if (!readable && !writable) {
            if (it != self->watches.end()) {
                it->second->closed = true;
                it->second->d.release();  // c-ares owns and closes the socket
                self->watches.erase(it);
            }
            return;
        }
        if (it == self->watches.end()) it = self->watches.emplace(fd, std::make_shared<watch>(self->ex, fd)).first;
        it->second->want_read = readable;
        it->second->want_write = writable;
        self->arm(fd, it->second);
    }

    void arm(ares_socket_t fd, const std::shared_ptr<watch>& w) {
        auto self = shared_from_this();
        if (w->want_read && !w->reading) {
            w->reading = true;
            w->d.async_wait(asio::posix::descriptor_base::wait_read, [self, w, fd](boost::system::error_code ec) {
                w->reading = false;
                if (w->closed || ec) return;
                // Asio waits on edge-triggered epoll, and c-ares reads a TCP
                // answer in several recv()s: drain what is already there.
                for (int i = 0; i < 64 && !w->closed; ++i) {
                    ares_process_fd(self->channel, fd, ARES_SOCKET_BAD);
                    pollfd pfd{fd, POLLIN, 0};
                    if (w->closed || ::poll(&pfd, 1, 0) <= 0) break;
                }
                if (!w->closed) self->arm(fd, w);
                self->reset_timer();
            });
        }
        if (w->want_write && !w->writing) {
            w->writing = true;
            w->d.async_wait(asio::posix::descriptor_base::wait_write, [self, w, fd](boost::system::error_code ec) {
                w->writing = false;
                if (w->closed || ec) return;
                ares_process_fd(self->channel, ARES_SOCKET_BAD, fd);
                if (!w->closed) self->arm(fd, w);
                self->reset_timer();
            });
        }
    }

    void reset_timer() {
        timeval tv{};
        if (!ares_timeout(channel, nullptr, &tv)) return;  // nothing pending
        timer.expires_after(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
        timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
            if (ec) return;
            ares_process_fd(self->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
            self->reset_timer();
        });
    }

    // One query, answered from the cache when it can be.
    asio::awaitable<raw_answer> query(const std::string& name, int type) {
        auto key = std::make_pair(type, name);
        auto now = std::chrono::steady_clock::now();
        if (auto it = cache.find(key); it != cache.end()) {
            if (it->second.expires > now) co_return it->second.answer;
            cache.erase(it);
        }
        if (!channel) co_return raw_answer{ARES_ECONNREFUSED, {}};
        // GCC 12 destroys temporaries of a co_await expression twice in some
        // cases, so the initiation captures nothing with a destructor; the
        // resolver (and so this impl) outlives every query it starts.
        impl* self = this;
        raw_answer ans = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(raw_answer)>(
            [self, &name, type](auto handler) {
                using H = decltype(handler);
                auto* h = new H(std::move(handler));
                ares_query(
                    self->channel, name.c_str(), ns_c_in, type,
                    [](void* arg, int status, int, unsigned char* abuf, int alen) {
                        auto* hp = static_cast<H*>(arg);
                        raw_answer a{status, {}};
                        if (abuf && alen > 0) a.buf.assign(abuf, abuf + alen);
                        auto ex = asio::get_associated_executor(*hp);
                        asio::post(ex, [hh = std::move(*hp), a = std::move(a)]() mutable { hh(std::move(a)); });
                        delete hp;
                    },
                    h);
                self->reset_timer();
            },
            asio::use_awaitable);
        // Positive answers live for their TTL; NXDOMAIN and NODATA for a
        // minute; temporary failures are asked again next time.
        std::chrono::seconds ttl{0};
        if (ans.status == ARES_SUCCESS) ttl = std::chrono::seconds(std::min<std::uint32_t>(
                                            min_answer_ttl(ans.buf.data(), static_cast<int>(ans.buf.size())), 86400));
        else if (ans.status == ARES_ENOTFOUND || ans.status == ARES_ENODATA) ttl = std::chrono::seconds(60);
        if (ttl.count() > 0) {
            auto t = std::chrono::steady_clock::now();
            if (++inserts % 1024 == 0)  // keep the cache from growing without bound
                std::erase_if(cache, [t](auto& kv) { return kv.second.expires <= t; });
            cache[key] = {t + ttl, ans};
        }
        co_return ans;
    }
};

resolver::resolver(asio::any_io_executor ex, const std::vector<std::string>& servers, std::chrono::milliseconds timeout,
                   int tries)
    : impl_(std::make_shared<impl>(ex)) {
    static ares_library lib;
    ares_options opts{};
    opts.sock_state_cb = &impl::sock_state;
    opts.sock_state_cb_data = impl_.get();
    opts.timeout = static_cast<int>(timeout.count());
    opts.tries = tries;
    opts.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_EDNS;  // EDNS: big MX answers fit in UDP
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
    if (int rc = ares_init_options(&impl_->channel, &opts, mask); rc != ARES_SUCCESS) {
        impl_->init_error = std::string("c-ares: ") + ares_strerror(rc);
        impl_->channel = nullptr;
        return;
    }
    if (!servers.empty()) {
        std::string csv;
        for (auto& s : servers) csv += (csv.empty() ? "" : ",") + s;
        if (int rc = ares_set_servers_ports_csv(impl_->channel, csv.c_str()); rc != ARES_SUCCESS)
            impl_->init_error = "delivery.dns_servers: " + std::string(ares_strerror(rc));
    }
}

resolver::~resolver() = default;

bool resolver::ok(std::string& error) const {
    error = impl_->init_error;
    return error.empty();
}

asio::awaitable<mx_result> resolver::mx(const std::string& domain) {
    mx_result r;
    auto ans = co_await impl_->query(domain, ns_t_mx);
    r.status = map_status(ans.status);
    if (r.status == dns_status::ok) {
        ares_mx_reply* mx = nullptr;
        if (ares_parse_mx_reply(ans.buf.data(), static_cast<int>(ans.buf.size()), &mx) == ARES_SUCCESS) {
            for (auto* m = mx; m; m = m->next) r.hosts.push_back({m->host ? m->host : "", m->priority});
            ares_free_data(mx);
        }
        if (r.hosts.empty()) r.status = dns_status::no_data;
    }
    if (r.status == dns_status::ok && is_null_mx(r.hosts)) {
        r.status = dns_status::null_mx;
        r.hosts.clear();
        r.error = domain + " has a null MX (RFC 7505): it accepts no mail";
    } else if (r.status == dns_status::no_data) {
        // RFC 5321 5.1: no MX, so the domain itself is the exchanger.
        r.status = dns_status::ok;
        r.implicit = true;
        r.hosts = {{domain, 0}};
    } else if (r.status == dns_status::ok) {
        drop_null_targets(r.hosts);
        order_mx(r.hosts, impl_->rng);
    } else {
        r.error = "MX lookup for " + domain + ": " + ares_strerror(ans.status);
    }
    co_return r;
}

asio::awaitable<address_result> resolver::addresses(const std::string& host) {
    address_result r;
    auto a6 = co_await impl_->query(host, ns_t_aaaa);
    auto a4 = co_await impl_->query(host, ns_t_a);
    auto collect = [&](const raw_answer& ans, int family) {
        if (ans.status != ARES_SUCCESS) return;
        hostent* he = nullptr;
        int rc = family == AF_INET6 ? ares_parse_aaaa_reply(ans.buf.data(), static_cast<int>(ans.buf.size()), &he, nullptr, nullptr)
                                    : ares_parse_a_reply(ans.buf.data(), static_cast<int>(ans.buf.size()), &he, nullptr, nullptr);
        if (rc != ARES_SUCCESS || !he) return;
        char text[INET6_ADDRSTRLEN];
        for (char** p = he->h_addr_list; *p; ++p)
            if (inet_ntop(family, *p, text, sizeof text)) r.addresses.emplace_back(text);
        ares_free_hostent(he);
    };
    collect(a6, AF_INET6);
    collect(a4, AF_INET);
    if (!r.addresses.empty()) {
        r.status = dns_status::ok;
    } else if (map_status(a6.status) == dns_status::temporary || map_status(a4.status) == dns_status::temporary) {
        r.status = dns_status::temporary;
        r.error = "address lookup for " + host + ": " +
                  ares_strerror(map_status(a4.status) == dns_status::temporary ? a4.status : a6.status);
    } else if (a4.status == ARES_ENOTFOUND || a6.status == ARES_ENOTFOUND) {
        r.status = dns_status::nxdomain;
        r.error = host + ": no such host";
    } else {
        r.status = dns_status::no_data;
        r.error = host + ": no A or AAAA record";
    }
    co_return r;
}

asio::awaitable<txt_result> resolver::txt(const std::string& name) {
    txt_result r;
    auto ans = co_await impl_->query(name, ns_t_txt);
    r.status = map_status(ans.status);
    if (r.status == dns_status::ok) {
        ares_txt_ext* txt = nullptr;
        if (ares_parse_txt_reply_ext(ans.buf.data(), static_cast<int>(ans.buf.size()), &txt) == ARES_SUCCESS) {
            // A record is one or more strings of up to 255 bytes: joined.
            for (auto* t = txt; t; t = t->next) {
                std::string part(reinterpret_cast<const char*>(t->txt), t->length);
                if (t->record_start || r.records.empty()) r.records.push_back(std::move(part));
                else r.records.back() += part;
            }
            ares_free_data(txt);
        }
        if (r.records.empty()) r.status = dns_status::no_data;
    }
    if (r.status != dns_status::ok) r.error = "TXT lookup for " + name + ": " + ares_strerror(ans.status);
    co_return r;
}

}  // namespace ricochet::dns
