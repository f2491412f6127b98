// auth_users — see auth_users.hpp.
#include "smtp/auth_users.hpp"

#include <crypt.h>

#include <cstring>
#include <fstream>
#include <memory>

namespace ricochet::smtp {

bool auth_users::load(const std::filesystem::path& file, std::string& error) {
    std::ifstream in(file);
    if (!in) {
        error = file.string() + ": cannot read";
        return false;
    }
    users_.clear();
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || line[0] == '#') continue;
        auto colon = line.find(':');
        if (colon == std::string::npos || colon == 0) {
            error = file.string() + ":" + std::to_string(n) + ": expected user:hash";
            return false;
        }
        std::string hash = line.substr(colon + 1);
        if (hash.size() < 4 || hash[0] != '$') {
            error = file.string() + ":" + std::to_string(n) + ": password must be a crypt(3) hash (openssl passwd -6)";
            return false;
        }
        users_[line.substr(0, colon)] = hash;
    }
    return true;
}

bool auth_users::verify(std::string_view user, std::string_view password) const {
    auto it = users_.find(std::string(user));
    // Hash even for an unknown user, so timing does not tell which users exist.
    static const std::string dummy = "$6$ricochet$2rYj1g8m3B5y3Xo9uF0yfmtUq5M5OQ6v0QyUWrYx0bX9tYqFhJxN6Gz8xWz4uJkS9z3Pp7bK9cR2mV1nQ8eLa.";
    const std::string& hash = it == users_.end() ? dummy : it->second;
    auto data = std::make_unique<crypt_data>();
    std::memset(data.get(), 0, sizeof(crypt_data));
    std::string pw(password);
    const char* out = ::crypt_r(pw.c_str(), hash.c_str(), data.get());
    if (!out || it == users_.end()) return false;
    std::size_t n = std::strlen(out);
    if (n != hash.size()) return false;
    unsigned char diff = 0;  // constant-time compare
    for (std::size_t i = 0; i < n; ++i) diff |= static_cast<unsigned char>(out[i] ^ hash[i]);
    return diff == 0;
}

}  // namespace ricochet::smtp
