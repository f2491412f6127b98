// Fuzz target: the DSN/ARF parser (GMime underneath) on arbitrary messages,
// and each record turned into a reply.
#include <cstdint>
#include <string_view>

#include "bounce/dsn_parser.hpp"

using namespace ricochet::bounce;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto rep = parse_dsn(std::string_view(reinterpret_cast<const char*>(data), size));
    for (auto& d : rep.records) (void)dsn_reply(d);
    return 0;
}
