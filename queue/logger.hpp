// logger — the named spdlog logger of a part of Ricochet ("queue", "mta",
// "delivery"), created on first use as a clone of the default logger so it
// shares its sinks, pattern and level.
#pragma once
#include <memory>
#include <spdlog/spdlog.h>

namespace ricochet {

inline std::shared_ptr<spdlog::logger> named_logger(const char* name) {
    if (auto existing = spdlog::get(name)) return existing;
    auto lg = spdlog::default_logger()->clone(name);
    spdlog::register_logger(lg);
    return lg;
}

}  // namespace ricochet
