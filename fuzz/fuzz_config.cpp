// Fuzz target: the configuration loader on arbitrary TOML.
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.hpp"

using namespace ricochet;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    config c;
    std::string err;
    (void)load_config_text(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.toml", c, err);
    return 0;
}
