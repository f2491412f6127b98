// codes — see codes.hpp.
#include "bounce/dsn/codes.hpp"

#include <cctype>

namespace ricochet::bounce::dsn {

void find_codes(std::string_view t, int& code, std::string& status) {
    for (std::size_t i = 0; i + 3 <= t.size(); ++i) {
        bool boundary = i == 0 || !std::isalnum(static_cast<unsigned char>(t[i - 1]));
        if (!boundary) continue;
        if (!code && (t[i] == '4' || t[i] == '5') && std::isdigit(static_cast<unsigned char>(t[i + 1])) &&
            std::isdigit(static_cast<unsigned char>(t[i + 2])) && (i + 3 == t.size() || t[i + 3] == ' ' || t[i + 3] == '-')) {
            code = (t[i] - '0') * 100 + (t[i + 1] - '0') * 10 + (t[i + 2] - '0');
        }
        if (status.empty() && (t[i] == '2' || t[i] == '4' || t[i] == '5') && i + 4 < t.size() && t[i + 1] == '.') {
            std::size_t j = i + 2, n1 = 0, n2 = 0;
            while (j < t.size() && std::isdigit(static_cast<unsigned char>(t[j])) && n1 < 4) { ++j; ++n1; }
            if (n1 >= 1 && n1 <= 3 && j < t.size() && t[j] == '.') {
                ++j;
                while (j < t.size() && std::isdigit(static_cast<unsigned char>(t[j])) && n2 < 4) { ++j; ++n2; }
                bool end = j == t.size() || (!std::isdigit(static_cast<unsigned char>(t[j])) && t[j] != '.');
                if (n2 >= 1 && n2 <= 3 && end) status = std::string(t.substr(i, j - i));
            }
        }
        if (code && !status.empty()) return;
    }
}

std::string last_status(std::string_view t, char cls) {
    std::string last;
    for (std::size_t i = 0; i + 5 <= t.size(); ++i) {
        if (t[i] != '2' && t[i] != '4' && t[i] != '5') continue;
        if (cls && t[i] != cls) continue;
        if (i > 0 && std::string_view(" -'\"<(#[;:=").find(t[i - 1]) == std::string_view::npos) continue;
        int code = 0;
        std::string st;
        find_codes(t.substr(i, 12), code, st);
        if (!st.empty() && t.compare(i, st.size(), st) == 0) {
            last = st;
            i += st.size() - 1;
        }
    }
    return last;
}

bool generic_status(const std::string& s) { return s.empty() || (s.size() >= 5 && s.substr(1) == ".0.0"); }

}  // namespace ricochet::bounce::dsn
