// base64 — RFC 4648 base64 for SMTP AUTH (RFC 4954) exchanges.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace ricochet::smtp {

std::string base64_encode(std::string_view in);
// nullopt for anything that is not canonical base64 (bad characters, length).
std::optional<std::string> base64_decode(std::string_view in);

}  // namespace ricochet::smtp
