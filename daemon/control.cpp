// control — see control.hpp.
#include "daemon/control.hpp"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "bounce/destination_backoff.hpp"
#include "bounce/suppression_list.hpp"
#include "daemon/campaign_breaker.hpp"
#include "delivery/delivery.hpp"
#include "events/make.hpp"
#include "events/publisher.hpp"
#include "queue/clock.hpp"
#include "queue/queue_admin.hpp"
#include "queue/schedule.hpp"
#include "state/recipient_state.hpp"

namespace ricochet::daemon {
using nlohmann::json;

namespace {

// recipient clear/engage/unsubscribe: the state changes, then its events are
// recorded before the reply, so the RCPT check already knows.
json set_recipient(control_context& ctx, const json& req) {
    std::string addr = req.value("address", ""), why = req.value("why", "admin");
    auto st = bounce::parse_address_status(req.value("status", ""));
    if (addr.empty() || !st) return {{"ok", false}, {"error", "need address and status"}};
    auto now = now_ms();
    std::string error;
    std::vector<events::event> evs;
    if (!ctx.state.set_status(addr, *st, why, now, evs, error)) return {{"ok", false}, {"error", error}};
    evs.insert(evs.begin(), events::address_admin(bounce::lower_address(addr), why, *st, now));
    ctx.publisher.publish_now(std::move(evs));
    return {{"ok", true}};
}

json pauses(control_context& ctx) {
    json list = json::array();
    for (auto& p : ctx.backoff.paused(now_ms()))
        list.push_back({{"domain", p.domain}, {"until_ms", p.until_ms}, {"backoff_s", p.backoff_ms / 1000}});
    return {{"ok", true}, {"paused", list}};
}

json queue_op(control_context& ctx, const std::string& cmd, const json& req) {
    auto op = queue::parse_admin_op(cmd.substr(6));
    if (!op) return {{"ok", false}, {"error", "unknown command " + cmd}};
    queue::selector sel;
    sel.id = req.value("id", "");
    sel.domain = req.value("domain", "");
    sel.campaign = req.value("campaign", "");
    sel.all = req.value("all", false);
    if (sel.empty()) return {{"ok", false}, {"error", "no selector"}};
    auto res = queue::apply_admin(ctx.spool, &ctx.publisher, *op, sel);
    ctx.publisher.flush();  // the operator's events are written before the reply
    if (*op == queue::admin_op::release || *op == queue::admin_op::flush) {
        auto now = now_ms();
        for (auto& id : res.ids) ctx.due.add(id, now);  // due at once
        ctx.delivery.wake();
    }
    spdlog::info("control: queue {} matched {} changed {}", queue::to_string(*op), res.matched, res.ids.size());
    json r{{"ok", res.error.empty()}, {"matched", res.matched}, {"changed", res.ids}};
    if (!res.error.empty()) r["error"] = res.error;
    return r;
}

}  // namespace

json handle_control(control_context& ctx, const json& req) {
    std::string cmd = req.value("command", "");
    if (cmd == "recipient.set") return set_recipient(ctx, req);
    if (cmd == "ping") return {{"ok", true}, {"pid", ::getpid()}};
    if (cmd == "pauses") return pauses(ctx);
    if (cmd.rfind("queue.", 0) == 0) return queue_op(ctx, cmd, req);
    if (cmd == "campaign.pause" || cmd == "campaign.resume") {
        if (!ctx.breaker) return {{"ok", false}, {"error", "the campaign breaker is off ([breaker] enabled = false)"}};
        auto id = req.value("id", std::string());
        return cmd == "campaign.pause" ? ctx.breaker->pause(id) : ctx.breaker->resume(id);
    }
    return {{"ok", false}, {"error", "unknown command " + cmd}};
}

}  // namespace ricochet::daemon
