// text — see text.hpp.
#include "bounce/dsn/text.hpp"

#include <algorithm>
#include <cctype>

#include "bounce/dsn/limits.hpp"

namespace ricochet::bounce::dsn {

std::string lower(std::string_view s) {
    std::string o(s);
    for (auto& c : o)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
    return o;
}

std::string trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return std::string(s);
}

std::string one_line(std::string s) {
    for (auto& c : s)
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    return s;
}

std::string cap(std::string s) {
    if (s.size() > max_text) s.resize(max_text);
    return s;
}

std::string strip_type(std::string v) {
    if (auto semi = v.find(';'); semi != std::string::npos && semi < 20) v = trim(std::string_view(v).substr(semi + 1));
    if (v.size() > 1 && v.front() == '<' && v.back() == '>') v = v.substr(1, v.size() - 2);
    return v;
}

namespace {
bool is_address_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("._%+-=!#$&'*/?^`{|}~").find(c) != std::string_view::npos ||
           static_cast<unsigned char>(c) >= 0x80;
}
}  // namespace

std::vector<std::string> find_addresses(std::string_view text) {
    std::vector<std::string> out;
    for (std::size_t at = text.find('@'); at != std::string_view::npos; at = text.find('@', at + 1)) {
        std::size_t b = at, e = at + 1;
        while (b > 0 && is_address_char(text[b - 1])) --b;
        while (e < text.size() && (std::isalnum(static_cast<unsigned char>(text[e])) || text[e] == '.' || text[e] == '-' ||
                                   static_cast<unsigned char>(text[e]) >= 0x80))
            ++e;
        while (e > at + 1 && text[e - 1] == '.') --e;
        std::string local(text.substr(b, at - b)), domain(text.substr(at + 1, e - at - 1));
        while (!local.empty() && (local.front() == '.' || local.front() == '=')) local.erase(0, 1);
        if (local.empty() || domain.find('.') == std::string::npos) continue;
        out.push_back(local + "@" + domain);
    }
    return out;
}

bool valid_address(std::string_view a) {
    auto at = a.rfind('@');
    return at != std::string_view::npos && at > 0 && a.find('.', at) != std::string_view::npos && a.find(' ') == std::string_view::npos;
}

std::string segment_for(const std::string& text, std::string_view lt, const std::string& rcpt,
                        const std::vector<std::string>& others) {
    std::string lr = lower(rcpt);
    auto p = lt.find(lr);
    if (p == std::string::npos) return {};
    std::size_t end = std::min(lt.size(), p + 600);
    for (auto& o : others) {
        if (o == lr) continue;
        auto q = lt.substr(0, end).find(o, p + lr.size());
        if (q != std::string::npos && q < end) end = q;
    }
    return one_line(text.substr(p, end - p));
}

}  // namespace ricochet::bounce::dsn
