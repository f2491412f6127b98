// bounce_listener — see bounce_listener.hpp.
#include "intake/bounce_listener.hpp"

#include "bounce/verp.hpp"
#include "config/config.hpp"
#include "intake/dsn_intake.hpp"
#include "queue/spool.hpp"

namespace ricochet::intake {

smtp::smtp_server_options listener_options(const config& cfg, const bounce::verp_signer& verp, queue::spool& spool,
                                           const dsn_intake& intake) {
    smtp::smtp_server_options bl;
    bl.name = "bounce";
    bl.listen = cfg.bounce_listener.listen;
    bl.max_connections = cfg.bounce_listener.max_connections;
    bl.max_connections_per_ip = cfg.bounce_listener.max_connections_per_ip;
    bl.ipv6_prefix = static_cast<int>(cfg.server.client_ipv6_prefix);
    bl.spill_threshold = 0;  // its message_sink reads the report whole
    bl.memory_budget = cfg.server.data_memory_budget;
    bl.command_timeout = cfg.submission.command_timeout;
    bl.data_timeout = cfg.submission.data_timeout;
    bl.stress_connections = cfg.bounce_listener.stress_connections;
    bl.stress_timeout = cfg.bounce_listener.stress_timeout;
    bl.policy.role = smtp::server_role::bounce;
    bl.policy.hostname = cfg.server.hostname;
    bl.policy.max_message_size = cfg.bounce_listener.max_message_size;
    bl.policy.max_recipients = 100;
    bl.policy.new_id = [s = &spool] { return s->new_id(); };
    bl.policy.check_recipient = [&verp, &intake, domain = cfg.bounce_listener.domain](std::string_view rcpt) {
        if (verp.verify(rcpt, domain) || intake.unsubscribe_address(rcpt)) return smtp::rcpt_verdict::accept();
        return smtp::rcpt_verdict::refuse("550 5.1.1 <" + std::string(rcpt) + ">: no such bounce address");
    };
    bl.message_sink = [&intake](queue::envelope& env, std::string& content) { return intake(env, content); };
    return bl;
}

}  // namespace ricochet::intake
