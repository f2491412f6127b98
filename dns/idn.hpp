// idn — domain names to the ASCII form DNS and SMTP use (IDNA2008 via
// libidn2, non-transitional: "ß" stays "ß", as browsers and mail providers
// now do). Pure: no I/O.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace ricochet::dns {

// "bücher.example" -> "xn--bcher-kva.example"; ASCII names are lower-cased
// and returned as they are. nullopt for a name that is not a valid IDN.
std::optional<std::string> to_ascii_domain(std::string_view domain);

}  // namespace ricochet::dns
