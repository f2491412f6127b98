// suppression_list — the addresses refused at RCPT (held or unsubscribed),
// and the entries an operator imported (addresses and "@domain"), kept in
// memory so the check costs a hash lookup or two on the SMTP threads. The
// state store is the truth; this list is loaded from it at start and updated
// with every status change and import. Keys are lower case. Thread-safe.
#pragma once
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bounce/recipient_status.hpp"

namespace ricochet::bounce {

class suppression_list {
public:
    // Records r's status: added when held/unsubscribed, removed otherwise.
    void update(const address_record& r);
    std::optional<address_record> find(std::string_view address) const;
    std::size_t size() const;

    // Imported entries: "user@domain" or "@domain" (lower case).
    void add_entry(const std::string& entry);
    void remove_entry(const std::string& entry);
    // The entry that suppresses this address (itself, or "@" + its domain).
    std::optional<std::string> find_entry(std::string_view address) const;
    std::size_t entries() const;

    // Everything at once (a node that lost its shared store's notifications
    // reloads the whole list when it is back): records as update() takes
    // them, entries as add_entry().
    void reset(const std::vector<address_record>& records, const std::vector<std::string>& entries);

private:
    mutable std::shared_mutex mu_;
    std::unordered_map<std::string, address_record> m_;
    std::unordered_set<std::string> entries_;
};

std::string lower_address(std::string_view address);

}  // namespace ricochet::bounce
