// async_spool — spool::submit as an Asio asynchronous operation: hands a
// message to the spool and completes, on the caller's own executor, once the
// group commit made it durable (or failed). Only for files that use Asio.
#pragma once
#include <boost/asio.hpp>
#include <memory>
#include <string>
#include <system_error>

#include "queue/spool.hpp"

namespace ricochet::mta {

template <class Token>
auto async_commit(queue::spool& spool, queue::envelope env, std::string content, Token&& token) {
    namespace asio = boost::asio;
    return asio::async_initiate<Token, void(std::error_code)>(
        [&spool](auto handler, queue::envelope env, std::string content) {
            auto ex = asio::get_associated_executor(handler);
            auto work = asio::make_work_guard(ex);
            auto h = std::make_shared<decltype(handler)>(std::move(handler));
            spool.submit(std::move(env), std::move(content), [h, ex, work = std::move(work)](std::error_code ec) mutable {
                asio::post(ex, [h, ec]() mutable { (*h)(ec); });
                work.reset();
            });
        },
        token, std::move(env), std::move(content));
}

}  // namespace ricochet::mta
