// dnssec_resolver — see dnssec_resolver.hpp.
#include "dns/dnssec_resolver.hpp"

#include <unbound.h>

#include <boost/asio.hpp>
#include <functional>
#include <map>

namespace ricochet::dns {
namespace asio = boost::asio;

struct dnssec_resolver::impl : std::enable_shared_from_this<impl> {
    asio::any_io_executor ex;
    ub_ctx* ctx = nullptr;
    std::string init_error;
    std::unique_ptr<asio::posix::stream_descriptor> fd;  // libunbound's result pipe, not owned
    bool reading = false;
    // Handlers of the queries in flight: deleted here
    // when the context goes first (libunbound then never calls back).
    std::map<void*, std::function<void()>> pending;

    explicit impl(asio::any_io_executor e) : ex(std::move(e)) {}
    ~impl() {
        if (fd) fd->release();
        if (ctx) ub_ctx_delete(ctx);
        for (auto& [id, drop] : pending) drop();
    }

    // The result pipe is watched for as long as the resolver lives (Asio
    // waits edge-triggered: a wait armed only after an answer was written
    // would never fire); each time it is readable, every answer there is
    // read and its callback called (ub_process, until ub_poll says no more).
    void watch() {
        if (reading || !fd) return;
        reading = true;
        fd->async_wait(asio::posix::descriptor_base::wait_read, [self = shared_from_this()](boost::system::error_code ec) {
            self->reading = false;
            if (ec) return;  // cancelled: the resolver is gone
            int rounds = 0;
            do ub_process(self->ctx);
            while (ub_poll(self->ctx) && ++rounds < 1024);
            self->watch();
        });
    }
};

dnssec_resolver::dnssec_resolver(asio::any_io_executor ex, const std::vector<std::string>& servers,
                                 const std::filesystem::path& trust_anchor)
    : impl_(std::make_shared<impl>(ex)) {
    auto& m = *impl_;
    m.ctx = ub_ctx_create();
    if (!m.ctx) {
        m.init_error = "libunbound: cannot create a context";
        return;
    }
    auto fail = [&](const std::string& what, int rc) {
        if (rc != 0 && m.init_error.empty()) m.init_error = what + ": " + ub_strerror(rc);
    };
    // Forwarders on loopback are the usual set-up (a local resolver, or a
    // test's server): libunbound would skip them by default.
    fail("do-not-query-localhost", ub_ctx_set_option(m.ctx, "do-not-query-localhost:", "no"));
    if (servers.empty()) {
        fail("/etc/resolv.conf", ub_ctx_resolvconf(m.ctx, nullptr));
    } else {
        for (auto& s : servers) {
            // "ip:port" or "[v6]:port" to libunbound's "ip@port".
            auto colon = s.rfind(':');
            std::string host = s.substr(0, colon), port = s.substr(colon + 1);
            if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
            fail("forwarder " + s, ub_ctx_set_fwd(m.ctx, (host + "@" + port).c_str()));
        }
    }
    fail("trust anchor " + trust_anchor.string(), ub_ctx_add_ta_file(m.ctx, trust_anchor.c_str()));
    fail("async", ub_ctx_async(m.ctx, 1));  // a thread of its own, not a forked process
    if (!m.init_error.empty()) return;
    int pipe = ub_fd(m.ctx);
    if (pipe < 0) {
        m.init_error = "libunbound: no result descriptor";
        return;
    }
    m.fd = std::make_unique<asio::posix::stream_descriptor>(ex, pipe);
    m.watch();
}

dnssec_resolver::~dnssec_resolver() {
    // Ends the watch (its handler holds the context): the context, its
    // thread and the handlers of queries still in flight go with it.
    // (Called on the executor's thread or after it stopped.)
    if (impl_->fd) {
        boost::system::error_code ec;
        impl_->fd->cancel(ec);
    }
}

bool dnssec_resolver::ok(std::string& error) const {
    error = impl_->init_error;
    return error.empty();
}

asio::awaitable<dnssec_answer> dnssec_resolver::query(const std::string& name, int rrtype) {
    // (A raw pointer: a coroutine waiting here must not keep the context
    // alive, or it and its thread would outlive the resolver.)
    impl* self = impl_.get();
    if (!self->init_error.empty()) co_return dnssec_answer{dns_status::temporary, false, false, {}, self->init_error};
    // (As in resolver.cpp: the initiation captures nothing with a destructor.)
    dnssec_answer ans = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(dnssec_answer)>(
        [self, &name, rrtype](auto handler) {
            using H = decltype(handler);
            struct state {
                H handler;
                impl* self;
                int id = 0;
            };
            auto* st = new state{std::move(handler), self};
            self->pending[st] = [st] { delete st; };  // (before the call: its callback erases it)
            int rc = ub_resolve_async(
                self->ctx, name.c_str(), rrtype, 1 /* IN */, st,
                [](void* arg, int err, ub_result* r) {
                    auto* sp = static_cast<state*>(arg);
                    sp->self->pending.erase(sp);
                    dnssec_answer a;
                    if (err != 0 || !r) {
                        a.error = std::string("DNSSEC lookup: ") + ub_strerror(err);
                    } else {
                        a.secure = r->secure != 0;
                        a.bogus = r->bogus != 0;
                        if (r->bogus) {
                            a.status = dns_status::temporary;
                            a.error = r->why_bogus ? r->why_bogus : "DNSSEC validation failed";
                        } else if (r->havedata) {
                            a.status = dns_status::ok;
                            for (int i = 0; r->data[i]; ++i) a.rdata.emplace_back(r->data[i], static_cast<std::size_t>(r->len[i]));
                        } else if (r->nxdomain) {
                            a.status = dns_status::nxdomain;
                        } else if (r->rcode == 0) {
                            a.status = dns_status::no_data;
                        } else {
                            a.error = "DNSSEC lookup: rcode " + std::to_string(r->rcode);
                        }
                    }
                    if (r) ub_resolve_free(r);
                    auto ex = asio::get_associated_executor(sp->handler);
                    asio::post(ex, [hh = std::move(sp->handler), a = std::move(a)]() mutable { hh(std::move(a)); });
                    delete sp;
                },
                &st->id);
            if (rc != 0) {
                self->pending.erase(st);
                dnssec_answer a;
                a.error = std::string("DNSSEC lookup: ") + ub_strerror(rc);
                auto ex = asio::get_associated_executor(st->handler);
                asio::post(ex, [hh = std::move(st->handler), a = std::move(a)]() mutable { hh(std::move(a)); });
                delete st;
                return;
            }
        },
        asio::use_awaitable);
    co_return ans;
}

}  // namespace ricochet::dns
