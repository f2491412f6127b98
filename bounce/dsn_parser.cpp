// dsn_parser — see dsn_parser.hpp. The dispatcher: the message is read once
// (bounce/dsn/mime.hpp), then the readers of bounce/dsn/ are tried in order
// (bounce/dsn/readers.hpp), each for one format. A report about the message
// (a complaint) outranks any DSN beside it; the formats of mail systems that
// send no DSN are read only when no report record was found; free text is
// the last resort.
#include "bounce/dsn_parser.hpp"

#include "bounce/dsn/mail_system.hpp"
#include "bounce/dsn/mime.hpp"
#include "bounce/dsn/readers.hpp"

namespace ricochet::bounce {

dsn_report parse_dsn(std::string_view raw) {
    dsn_report rep;
    rep.format = "none";
    auto m = dsn::read_message(raw);
    if (!m) return rep;
    rep.original_recipients = m->original_to;
    rep.original_message_id = m->original_message_id;
    rep.from_mail_system = dsn::from_mail_system(*m);

    if (dsn::read_arf(*m, rep) || dsn::read_jmrp(*m, rep) || dsn::read_unsubscribe(*m, rep)) return rep;
    dsn::report_fallback fallback;  // what a report group without a usable recipient said
    dsn::read_rfc3464(*m, rep, fallback);
    if (!rep.records.empty()) return rep;
    if (dsn::read_autoreply(*m, rep) || dsn::read_ses_json(m->text, rep)) return rep;
    dsn::read_free_text(*m, fallback, rep);
    return rep;
}

smtp_reply dsn_reply(const dsn_record& d) {
    smtp_reply r;
    r.code = d.reply_code;
    r.enhanced = d.status;
    if (!r.code && !d.status.empty()) r.code = d.status[0] == '5' ? 550 : d.status[0] == '4' ? 450 : 250;
    if (!r.code) r.code = d.type == "delayed" ? 450 : d.type == "delivered" ? 250 : 550;
    if (!r.enhanced.empty() && r.code / 100 != r.enhanced[0] - '0') r.enhanced.clear();
    r.lines.push_back(d.diagnostic);
    r.at = d.at;
    r.stage_known = d.stage_known;
    r.reporter = d.reporting_mta;
    r.address_confirmed = d.address_confirmed;
    return r;
}

}  // namespace ricochet::bounce
