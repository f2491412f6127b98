// control_server — see control_server.hpp.
#include "daemon/control_server.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <thread>

namespace ricochet::daemon {
namespace asio = boost::asio;
using asio::local::stream_protocol;
constexpr auto as_tuple = asio::as_tuple(asio::use_awaitable);

struct control_server::impl {
    std::filesystem::path path;
    handler h;
    asio::io_context io{1};
    std::unique_ptr<stream_protocol::acceptor> acceptor;
    std::thread thread;

    asio::awaitable<void> serve(stream_protocol::socket s) {
        // Only our own user (or root) may steer the daemon.
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
            (cred.uid != ::geteuid() && cred.uid != 0)) {
            spdlog::warn("control: refused peer uid {}", cred.uid);
            co_return;
        }
        std::string buf;
        auto [ec, n] = co_await asio::async_read_until(s, asio::dynamic_buffer(buf, 1 << 20), '\n', as_tuple);
        if (ec) co_return;
        nlohmann::json reply;
        try {
            reply = h(nlohmann::json::parse(buf.substr(0, n)));
        } catch (const std::exception& e) {
            reply = {{"ok", false}, {"error", std::string("bad request: ") + e.what()}};
        }
        std::string out = reply.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
        co_await asio::async_write(s, asio::buffer(out), as_tuple);
    }

    asio::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, s] = co_await acceptor->async_accept(as_tuple);
            if (ec) co_return;
            asio::co_spawn(io, serve(std::move(s)), asio::detached);
        }
    }
};

control_server::control_server(std::filesystem::path socket_path, handler h) : impl_(std::make_unique<impl>()) {
    impl_->path = std::move(socket_path);
    impl_->h = std::move(h);
}

control_server::~control_server() { stop(); }

bool control_server::start(std::string& error) {
    std::error_code fec;
    if (impl_->path.has_parent_path()) std::filesystem::create_directories(impl_->path.parent_path(), fec);
    ::unlink(impl_->path.c_str());  // stale socket of a killed daemon; the spool lock says we are alone
    boost::system::error_code ec;
    impl_->acceptor = std::make_unique<stream_protocol::acceptor>(impl_->io);
    stream_protocol::endpoint ep(impl_->path.string());
    mode_t old = ::umask(0177);  // created 0600, with no window where it is wider
    impl_->acceptor->open(ep.protocol(), ec);
    if (!ec) impl_->acceptor->bind(ep, ec);
    ::umask(old);
    if (!ec) impl_->acceptor->listen(64, ec);
    if (ec) {
        error = "cannot listen on control socket " + impl_->path.string() + ": " + ec.message();
        return false;
    }
    ::chmod(impl_->path.c_str(), 0600);
    asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
    impl_->thread = std::thread([this] { impl_->io.run(); });
    return true;
}

void control_server::stop() {
    if (!impl_ || !impl_->thread.joinable()) return;
    impl_->io.stop();
    impl_->thread.join();
    ::unlink(impl_->path.c_str());
}

}  // namespace ricochet::daemon
