// auth_users — the submission.auth_users_file: who may submit from outside
// the trusted networks.
//
// One "user:hash" per line, '#' comments allowed. hash is a crypt(3) string
// as made by `openssl passwd -6` (SHA-512) or `mkpasswd -m yescrypt`; a
// plain-text password is refused at load, so a leaked file leaks no password.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ricochet::smtp {

class auth_users {
public:
    // False with error "FILE:LINE: what" on a malformed file.
    bool load(const std::filesystem::path& file, std::string& error);
    bool verify(std::string_view user, std::string_view password) const;
    std::size_t size() const { return users_.size(); }

private:
    std::unordered_map<std::string, std::string> users_;
};

}  // namespace ricochet::smtp
