// control — see control.hpp.
#include "daemon/control.hpp"

#include <future>

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "bounce/destination_backoff.hpp"
#include "bounce/suppression_list.hpp"
#include "daemon/campaign_breaker.hpp"
#include "daemon/tls_reports.hpp"
#include "tls/mta_sts.hpp"
#include "tls/tls_reporter.hpp"
#include "delivery/delivery.hpp"
#include "delivery/shaping.hpp"
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
    if (!ctx.publisher.publish_now(std::move(evs)))  // recorded, maybe not durable: never said to be done
        return {{"ok", false}, {"error", "recorded, but the state store could not sync it (see the daemon's log)"}};
    return {{"ok", true}};
}

std::string day_text(std::int64_t days) {
    std::int64_t ms = days * 86400000;
    return rfc5322_date(ms).substr(5, 11);  // "30 Nov 2026"
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
    if (cmd == "shaping.show") {
        if (!ctx.shaping) return {{"ok", false}, {"error", "shaping is not set up"}};
        auto out = shaping_show(*ctx.shaping, req.value("domain", std::string()), now_ms());
        out["ok"] = true;
        return out;
    }
    if (cmd == "tls.show") {
        // The policy in force and the last result per MX host (docs/tls.md).
        auto domain = req.value("domain", std::string());
        for (auto& ch : domain) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (domain.empty()) return {{"ok", false}, {"error", "need a domain"}};
        json out{{"ok", true}, {"domain", domain}};
        out["mta_sts"] = ctx.sts ? ctx.sts->show(domain, now_ms()) : json{{"off", true}};
        out["tls_rpt"] = ctx.tls_counts ? ctx.tls_counts->show(domain) : json{{"off", true}};
        out["dane_status"] = ctx.delivery.dane_status();
        out["dane"] = out["dane_status"] == "on";
        return out;
    }
    if (cmd == "tls.report") {
        if (!ctx.tls_reports) return {{"ok", false}, {"error", "TLS-RPT is off (delivery.tls_rpt = \"off\")"}};
        auto day = req.value("day", std::string());
        if (day.empty() || day == "today") day = tls::utc_day(now_ms());
        // The control socket has one thread: it waits 30 s at most (a day
        // of many domains goes on in the background), and a promise that
        // outlives this call (a shutdown in between) is harmless.
        auto p = std::make_shared<std::promise<json>>();
        auto f = p->get_future();
        ctx.tls_reports->send_now(day, [p](json r) { p->set_value(std::move(r)); });
        if (f.wait_for(std::chrono::seconds(30)) != std::future_status::ready)
            return {{"ok", false}, {"error", "still sending the reports of " + day + " (see the log)"}};
        return f.get();
    }
    if (cmd.rfind("queue.", 0) == 0) return queue_op(ctx, cmd, req);
    if (cmd == "campaign.pause" || cmd == "campaign.resume") {
        if (!ctx.breaker) return {{"ok", false}, {"error", "the campaign breaker is off ([breaker] enabled = false)"}};
        auto id = req.value("id", std::string());
        return cmd == "campaign.pause" ? ctx.breaker->pause(id) : ctx.breaker->resume(id);
    }
    return {{"ok", false}, {"error", "unknown command " + cmd}};
}

json shaping_show(const delivery::shaper& s, const std::string& domain, std::int64_t now) {
    auto limits = [](const delivery::shaping_limits& l) {
        return json{{"max_connections", l.max_connections},
                    {"max_messages_per_connection", l.max_messages_per_connection},
                    {"max_messages_per_minute", l.max_messages_per_minute}};
    };
    json out;
    json rules = json::array();
    for (auto& r : s.rules()) {
        json j = limits(r.limits);
        j["match"] = r.match;
        rules.push_back(j);
    }
    out["rules"] = rules;
    out["defaults"] = limits(s.defaults());
    json pools = json::array();
    for (auto& p : s.pools()) {
        json warm = json::array();
        for (auto w : p.warmup) warm.push_back(w);
        pools.push_back({{"name", p.name}, {"source_ips", p.source_ips}, {"warmup", warm},
                         {"warmup_start", p.warmup.empty() ? "" : day_text(p.warmup_start_day)}});
    }
    out["pools"] = pools;
    std::string key_filter;
    if (!domain.empty()) {
        std::string d = bounce::lower_address(domain);
        auto known = s.key_of_domain(d);
        auto dest = known ? *known : s.find(d, "");
        key_filter = dest.key;
        json j = limits(dest.limits);
        j["domain"] = d;
        j["key"] = dest.key;
        j["rule"] = dest.rule;
        j["how"] = known ? (dest.rule.rfind("mx:", 0) == 0 ? "by its MX host (seen in delivery)" : "by the domain")
                         : (dest.rule.empty() ? "no rule by the domain; an mx: rule may apply once its MX is looked up"
                                              : "by the domain");
        out["domain"] = j;
    }
    json st = json::array();
    for (auto& i : s.state(now)) {
        if (!key_filter.empty() && i.key != key_filter) continue;
        json j{{"key", i.key}, {"source_ip", i.ip.empty() ? "system" : i.ip}, {"rate_per_minute", i.rate_per_minute},
               {"max_per_minute", i.ceiling_per_minute}};
        if (i.rested_until_ms) j["rested_until"] = rfc5322_date(i.rested_until_ms);
        if (i.warmup_day >= 0) {
            j["warmup_day"] = i.warmup_day;
            j["warmup_cap"] = i.warmup_cap;
            j["warmup_left"] = i.warmup_cap > i.warmup_sent ? i.warmup_cap - i.warmup_sent : 0;
        }
        st.push_back(j);
    }
    out["destinations"] = st;
    return out;
}

}  // namespace ricochet::daemon
