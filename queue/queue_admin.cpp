// queue_admin — see queue_admin.hpp.
#include "queue/queue_admin.hpp"

#include "events/make.hpp"
#include "queue/clock.hpp"

namespace ricochet::queue {

std::string_view to_string(admin_op op) {
    switch (op) {
        case admin_op::hold: return "hold";
        case admin_op::release: return "release";
        case admin_op::remove: return "delete";
        case admin_op::flush: return "flush";
    }
    return "?";
}

std::optional<admin_op> parse_admin_op(std::string_view s) {
    for (auto op : {admin_op::hold, admin_op::release, admin_op::remove, admin_op::flush})
        if (to_string(op) == s) return op;
    return std::nullopt;
}

bool matches(const spool& s, spool_entry& e, const selector& sel) {
    if (sel.all) return true;
    if (!sel.id.empty()) return e.id == sel.id;
    auto env = s.find_envelope(e.id, e.state);
    if (!env) return false;
    if (!sel.campaign.empty() && env->campaign != sel.campaign) return false;
    if (!sel.sender_domain.empty() && recipient_domain(env->sender) != recipient_domain("@" + sel.sender_domain))
        return false;
    if (!sel.domain.empty()) {
        std::string want = recipient_domain("@" + sel.domain);
        bool any = false;
        for (auto& r : env->recipients) any = any || recipient_domain(r) == want;
        if (!any) return false;
    }
    return true;
}

admin_result apply_admin(spool& s, events::publisher* pub, admin_op op, const selector& sel) {
    admin_result res;
    std::vector<spool_entry> entries;
    if (!sel.id.empty()) {
        if (auto st = s.locate(sel.id)) entries.push_back({sel.id, *st, 0});
    } else {
        entries = s.list();
    }
    std::vector<events::event> evs;
    for (auto& e : entries) {
        if (!matches(s, e, sel)) continue;
        ++res.matched;
        std::optional<envelope> env;
        if (pub) env = s.find_envelope(e.id, e.state);
        std::error_code ec;
        bool changed = false;
        // The daemon may move the message (a delivery attempt defers it)
        // between our listing and our change: follow it, a few times.
        for (int attempt = 0; attempt < 3; ++attempt) {
            changed = false;
            switch (op) {
                case admin_op::hold:
                    if (e.state != queue_state::hold) { ec = s.move(e.id, e.state, queue_state::hold); changed = true; }
                    break;
                case admin_op::release:
                    if (e.state == queue_state::hold) { ec = s.move(e.id, e.state, queue_state::active); changed = true; }
                    break;
                case admin_op::flush:
                    if (e.state == queue_state::deferred) { ec = s.move(e.id, e.state, queue_state::active); changed = true; }
                    break;
                case admin_op::remove:
                    ec = s.remove(e.id, e.state);
                    changed = true;
                    break;
            }
            if (ec != std::errc::no_such_file_or_directory) break;
            auto now = s.locate(e.id);
            if (!now) break;  // really gone: delivered or deleted
            e.state = *now;
            ec = {};
        }
        if (ec) {
            // ENOENT: delivered or moved meanwhile; not an operator error.
            if (ec != std::errc::no_such_file_or_directory && res.error.empty())
                res.error = e.id + ": " + ec.message();
            continue;
        }
        if (!changed) continue;
        res.ids.push_back(e.id);
        if (pub && env) {
            auto one = [&](std::string rcpt) {
                return events::queue_admin(std::string(to_string(op)), e.id, env->campaign,
                                           std::string(to_string(e.state)), std::move(rcpt), now_ms());
            };
            if (op == admin_op::remove) {
                // one line per recipient: each stops here without a bounce
                for (auto& r : env->recipients) evs.push_back(one(r));
            } else {
                evs.push_back(one(""));
            }
        }
    }
    if (pub && !evs.empty()) pub->publish(std::move(evs));
    return res;
}

}  // namespace ricochet::queue
