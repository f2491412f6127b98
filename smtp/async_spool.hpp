// async_spool — completion callbacks from the daemon's own threads (the
// spool's committer, the decision recorder) as Asio asynchronous operations:
// they complete on the caller's own executor. Only for files that use Asio.
#pragma once
#include <boost/asio.hpp>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include "queue/spool.hpp"

namespace ricochet::smtp {

// start(done) hands `done` to something that calls it once, from any thread,
// with the arguments of Signature; the operation then completes with them on
// the caller's executor (kept alive meanwhile).
template <class Signature, class Start, class Token>
auto async_from_callback(Start start, Token&& token) {
    namespace asio = boost::asio;
    return asio::async_initiate<Token, Signature>(
        [start = std::move(start)](auto handler) mutable {
            auto ex = asio::get_associated_executor(handler);
            auto work = asio::make_work_guard(ex);
            auto h = std::make_shared<decltype(handler)>(std::move(handler));
            start([h, ex, work = std::move(work)](auto... args) mutable {
                asio::post(ex, [h, args...]() mutable { std::move(*h)(args...); });
                work.reset();
            });
        },
        token);
}

// Runs f() on `pool` (threads for work that would hold up an I/O thread:
// a sync, a signature) and completes on the caller's executor with what f
// returned: Signature is void(R), or void() for an f that returns nothing.
template <class Signature, class F, class Token>
auto async_run_on(boost::asio::thread_pool& pool, F f, Token&& token) {
    return async_from_callback<Signature>(
        [&pool, f = std::move(f)](auto done) mutable {
            boost::asio::post(pool, [f, done = std::move(done)]() mutable {
                if constexpr (std::is_void_v<decltype(f())>) {
                    f();
                    done();
                } else {
                    done(f());
                }
            });
        },
        std::forward<Token>(token));
}

// spool::submit: completes once the group commit made the message durable
// (or failed).
template <class Token>
auto async_commit(queue::spool& spool, queue::envelope env, std::string content, Token&& token) {
    return async_from_callback<void(std::error_code)>(
        [&spool, env = std::move(env), content = std::move(content)](auto done) mutable {
            spool.submit(std::move(env), std::move(content), std::move(done));
        },
        std::forward<Token>(token));
}

// The same for a message received in pieces (spool::submit with a spill file).
template <class Token>
auto async_commit_spilled(queue::spool& spool, queue::envelope env, std::string before, base::unique_fd spill,
                          std::uint64_t spill_size, std::string content, Token&& token) {
    auto fd = std::make_shared<base::unique_fd>(std::move(spill));  // the initiation stays copyable
    return async_from_callback<void(std::error_code)>(
        [&spool, env = std::move(env), before = std::move(before), fd, spill_size,
         content = std::move(content)](auto done) mutable {
            spool.submit(std::move(env), std::move(before), std::move(*fd), spill_size, std::move(content), std::move(done));
        },
        std::forward<Token>(token));
}

}  // namespace ricochet::smtp
