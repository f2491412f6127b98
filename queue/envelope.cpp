// envelope — see envelope.hpp.
#include "queue/envelope.hpp"

#include <zlib.h>

#include <charconv>
#include <cstdio>

namespace ricochet::queue {
namespace {
constexpr std::string_view magic = "ricochet-spool 1";
// A file that ends its header block with a check line says so on its first
// line, so that a damaged or torn check line cannot pass for a missing one.
constexpr std::string_view magic_checked = "ricochet-spool 2";

// Values come from the SMTP parser, which refuses CR, LF and NUL in
// addresses; other fields are cleaned here so one value is always one line.
std::string one_line(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) out.push_back((c == '\r' || c == '\n' || c == '\0') ? ' ' : c);
    return out;
}

template <class T>
bool parse_number(std::string_view s, T& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}
}  // namespace

std::string encode_envelope(const envelope& env) {
    std::string s;
    s.reserve(256 + env.recipients.size() * 40);
    auto line = [&](std::string_view k, std::string_view v) {
        s.append(k).push_back(' ');
        s.append(one_line(v)).push_back('\n');
    };
    s.append(magic).push_back('\n');
    line("id", env.id);
    line("arrival", std::to_string(env.arrival_ms));
    line("sender", env.sender);
    if (!env.campaign.empty()) line("campaign", env.campaign);
    line("client", env.client);
    line("helo", env.helo);
    if (!env.auth_user.empty()) line("auth", env.auth_user);
    if (env.smtputf8) line("smtputf8", "1");
    if (env.eightbit) line("8bitmime", "1");
    line("size", std::to_string(env.content_size));
    for (const auto& r : env.recipients) line("rcpt", r);
    s.append("end\n");
    return s;
}

std::string encode_envelope(const envelope& env, std::uint32_t content_crc) {
    std::string s = encode_envelope(env);
    s.replace(0, magic.size(), magic_checked);
    s.resize(s.size() - 4);  // "end\n" goes after the check line
    auto crc = crc32_z(0, reinterpret_cast<const Bytef*>(s.data()), s.size());
    crc = crc32_combine64(crc, content_crc, static_cast<z_off64_t>(env.content_size));
    char line[32];
    std::snprintf(line, sizeof line, "check %08lx\nend\n", static_cast<unsigned long>(crc & 0xffffffffUL));
    s.append(line);
    return s;
}

file_seal check_seal(std::string_view file) {
    std::size_t hs = 0;
    auto env = decode_envelope(file, hs);
    return env ? check_seal(file, *env, hs) : file_seal::broken;
}

file_seal check_seal(std::string_view file, const envelope& env, std::size_t hs) {
    if (!file.starts_with(magic_checked)) return file_seal::none;
    // The check line is the last before "end".
    std::string_view head = file.substr(0, hs - 4);  // up to and with the '\n' before "end"
    auto nl = head.rfind('\n', head.size() - 2);    // the magic line is before it
    std::size_t start = nl + 1;
    std::string_view last = head.substr(start, head.size() - 1 - start);
    if (!last.starts_with("check ")) return file_seal::broken;
    std::uint32_t want = 0;
    auto hex = last.substr(6);
    auto [p, ec] = std::from_chars(hex.data(), hex.data() + hex.size(), want, 16);
    if (ec != std::errc() || p != hex.data() + hex.size() || hex.size() != 8) return file_seal::broken;
    if (file.size() - hs != env.content_size) return file_seal::broken;
    auto crc = crc32_z(0, reinterpret_cast<const Bytef*>(file.data()), start);
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(file.data() + hs), file.size() - hs);
    return (crc & 0xffffffffUL) == want ? file_seal::intact : file_seal::broken;
}

std::optional<envelope> decode_envelope(std::string_view file, std::size_t& header_size) {
    envelope env;
    std::size_t pos = 0;
    bool first = true, have_size = false;
    while (pos < file.size()) {
        auto nl = file.find('\n', pos);
        if (nl == std::string_view::npos) return std::nullopt;  // truncated
        std::string_view line = file.substr(pos, nl - pos);
        pos = nl + 1;
        if (first) {
            if (line != magic && line != magic_checked) return std::nullopt;
            first = false;
            continue;
        }
        if (line == "end") {
            header_size = pos;
            if (env.id.empty() || !have_size) return std::nullopt;
            return env;
        }
        auto sp = line.find(' ');
        std::string_view key = line.substr(0, sp);
        std::string_view val = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
        if (key == "id") env.id = val;
        else if (key == "arrival") { if (!parse_number(val, env.arrival_ms)) return std::nullopt; }
        else if (key == "sender") env.sender = val;
        else if (key == "campaign") env.campaign = val;
        else if (key == "client") env.client = val;
        else if (key == "helo") env.helo = val;
        else if (key == "auth") env.auth_user = val;
        else if (key == "smtputf8") env.smtputf8 = val == "1";
        else if (key == "8bitmime") env.eightbit = val == "1";
        else if (key == "size") { if (!parse_number(val, env.content_size)) return std::nullopt; have_size = true; }
        else if (key == "rcpt") env.recipients.emplace_back(val);
        // unknown keys: written by a newer version; ignored on purpose
    }
    return std::nullopt;
}

std::string recipient_domain(std::string_view address) {
    auto at = address.rfind('@');
    std::string d(at == std::string_view::npos ? std::string_view{} : address.substr(at + 1));
    for (auto& c : d)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return d;
}

bool domain_within(std::string_view domain, std::string_view parent) {
    if (parent.empty()) return false;
    if (domain == parent) return true;
    return domain.size() > parent.size() && domain.substr(domain.size() - parent.size()) == parent &&
           domain[domain.size() - parent.size() - 1] == '.';
}

}  // namespace ricochet::queue
