// tls_report — see tls_report.hpp.
#include "tls/tls_report.hpp"

#include <zlib.h>

#include <algorithm>
#include <ctime>

#include "queue/clock.hpp"
#include "smtp/base64.hpp"

namespace ricochet::tls {
namespace {
std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}
}  // namespace

tlsrpt_record parse_tlsrpt_record(const std::vector<std::string>& txt_records) {
    tlsrpt_record out;
    const std::string* only = nullptr;
    int count = 0;
    for (auto& r : txt_records) {
        // RFC 8460 3: "v=TLSRPTv1" first; other records at the name are ignored.
        std::string_view v = r;
        if (!v.starts_with("v=TLSRPTv1")) continue;
        auto rest = trim(v.substr(10));
        if (!rest.empty() && rest.front() != ';') continue;
        ++count;
        only = &r;
    }
    if (count == 0) return out;
    out.found = true;
    if (count > 1) {
        out.error = "more than one v=TLSRPTv1 record";
        return out;
    }
    std::string_view s = std::string_view(*only).substr(10);
    bool have_rua = false;
    while (!s.empty()) {
        auto semi = s.find(';');
        auto field = trim(s.substr(0, semi));
        s = semi == std::string_view::npos ? std::string_view{} : s.substr(semi + 1);
        if (field.empty()) continue;
        auto eq = field.find('=');
        if (eq == std::string_view::npos) {
            out.error = "field without name=value";
            return out;
        }
        if (trim(field.substr(0, eq)) != "rua" || have_rua) continue;
        have_rua = true;
        auto uris = field.substr(eq + 1);
        while (!uris.empty()) {
            auto comma = uris.find(',');
            auto uri = trim(uris.substr(0, comma));
            uris = comma == std::string_view::npos ? std::string_view{} : uris.substr(comma + 1);
            if (uri.size() > 7 && (uri.substr(0, 7) == "mailto:" || uri.substr(0, 7) == "MAILTO:")) {
                auto addr = uri.substr(7);
                addr = addr.substr(0, addr.find('?'));  // no header fields (RFC 6068)
                if (addr.find('@') != std::string_view::npos && addr.find_first_of(" <>\r\n\"") == std::string_view::npos)
                    out.mailto.emplace_back(addr);
            } else if (uri.starts_with("https://")) {
                out.https.emplace_back(uri);
            }
        }
    }
    if (!have_rua) out.error = "no rua field";
    else if (out.mailto.empty() && out.https.empty()) out.error = "rua names no mailto: or https: address";
    return out;
}

std::string utc_day(std::int64_t ms) {
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
    return buf;
}

void day_counts::record(const session_result& r) {
    auto& d = domains_[r.domain][r.policy_type];
    // The policy text seen last is the one reported (a policy whose id
    // changed during the day is reported under its new text).
    if (r.policy_type != "no-policy-found") {
        d.policy_string = r.policy_string;
        d.mx_patterns = r.mx_patterns;
    }
    if (r.success) {
        ++d.success;
        return;
    }
    ++d.fail;
    auto& f = d.failures[{r.result_type, r.sending_ip, r.mx_host, r.receiving_ip}];
    ++f.count;
    if (!r.detail.empty()) f.detail = r.detail.substr(0, 500);
}

std::vector<std::string> day_counts::domains() const {
    std::vector<std::string> out;
    for (auto& [d, _] : domains_) out.push_back(d);
    return out;
}

std::pair<std::uint64_t, std::uint64_t> day_counts::totals(const std::string& domain) const {
    std::pair<std::uint64_t, std::uint64_t> t{0, 0};
    auto it = domains_.find(domain);
    if (it == domains_.end()) return t;
    for (auto& [_, p] : it->second) {
        t.first += p.success;
        t.second += p.fail;
    }
    return t;
}

nlohmann::json day_counts::report(const std::string& domain, const std::string& organization,
                                  const std::string& contact, const std::string& report_id) const {
    auto it = domains_.find(domain);
    if (it == domains_.end()) return nullptr;
    nlohmann::json policies = nlohmann::json::array();
    for (auto& [type, d] : it->second) {
        nlohmann::json policy{{"policy-type", type}, {"policy-domain", domain}};
        if (type != "no-policy-found") policy["policy-string"] = d.policy_string;
        if (type == "sts") policy["mx-host"] = d.mx_patterns;
        nlohmann::json details = nlohmann::json::array();
        for (auto& [k, f] : d.failures) {
            nlohmann::json fd{{"result-type", k.type}, {"failed-session-count", f.count}};
            if (!k.sending_ip.empty()) fd["sending-mta-ip"] = k.sending_ip;
            if (!k.mx_host.empty()) fd["receiving-mx-hostname"] = k.mx_host;
            if (!k.receiving_ip.empty()) fd["receiving-ip"] = k.receiving_ip;
            if (!f.detail.empty()) fd["failure-reason-code"] = f.detail;  // (additional-information is a URI)
            details.push_back(std::move(fd));
        }
        nlohmann::json pol{{"policy", policy},
                           {"summary", {{"total-successful-session-count", d.success}, {"total-failure-session-count", d.fail}}}};
        if (!details.empty()) pol["failure-details"] = details;
        policies.push_back(std::move(pol));
    }
    return nlohmann::json{{"organization-name", organization},
                          {"date-range", {{"start-datetime", day_ + "T00:00:00Z"}, {"end-datetime", day_ + "T23:59:59Z"}}},
                          {"contact-info", contact},
                          {"report-id", report_id},
                          {"policies", policies}};
}

nlohmann::json day_counts::to_json() const {
    nlohmann::json doms = nlohmann::json::object();
    for (auto& [name, types] : domains_) {
        nlohmann::json pols = nlohmann::json::object();
        for (auto& [type, d] : types) {
            nlohmann::json fails = nlohmann::json::array();
            for (auto& [k, f] : d.failures)
                fails.push_back({{"type", k.type}, {"sending_ip", k.sending_ip}, {"mx", k.mx_host}, {"ip", k.receiving_ip},
                                 {"count", f.count}, {"detail", f.detail}});
            pols[type] = {{"policy_string", d.policy_string}, {"mx", d.mx_patterns}, {"success", d.success},
                          {"fail", d.fail}, {"failures", fails}};
        }
        doms[name] = pols;
    }
    return {{"day", day_}, {"domains", doms}};
}

day_counts day_counts::from_json(const nlohmann::json& j) {
    day_counts out(j.at("day").get<std::string>());
    for (auto& [name, types] : j.at("domains").items()) {
        for (auto& [type, d] : types.items()) {
            auto& p = out.domains_[name][type];
            p.policy_string = d.at("policy_string").get<std::vector<std::string>>();
            p.mx_patterns = d.at("mx").get<std::vector<std::string>>();
            p.success = d.at("success").get<std::uint64_t>();
            p.fail = d.at("fail").get<std::uint64_t>();
            for (auto& f : d.at("failures"))
                p.failures[{f.at("type").get<std::string>(), f.at("sending_ip").get<std::string>(),
                            f.at("mx").get<std::string>(), f.at("ip").get<std::string>()}] = {f.at("count").get<std::uint64_t>(),
                                                                                           f.at("detail").get<std::string>()};
        }
    }
    return out;
}

std::string gzip(const std::string& data) {
    z_stream zs{};
    if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
    std::string out(deflateBound(&zs, data.size()) + 32, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    int rc = deflate(&zs, Z_FINISH);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return rc == Z_STREAM_END ? out : std::string();
}

std::string gunzip(const std::string& data) {
    z_stream zs{};
    if (inflateInit2(&zs, 15 + 16) != Z_OK) return {};
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    std::string out;
    char buf[16384];
    int rc = Z_OK;
    while (rc == Z_OK) {
        zs.next_out = reinterpret_cast<Bytef*>(buf);
        zs.avail_out = sizeof buf;
        rc = inflate(&zs, Z_NO_FLUSH);
        out.append(buf, sizeof buf - zs.avail_out);
        if (out.size() > (64u << 20)) rc = Z_DATA_ERROR;
    }
    inflateEnd(&zs);
    return rc == Z_STREAM_END ? out : std::string();
}

std::string report_mail(const nlohmann::json& report, const std::string& domain, const std::string& submitter,
                        const std::string& from, const std::vector<std::string>& to, std::int64_t now_ms) {
    const std::string id = report.value("report-id", std::string());
    const std::string start = report["date-range"].value("start-datetime", std::string());
    const std::string end = report["date-range"].value("end-datetime", std::string());
    // RFC 8460 5.3: filename = sender "!" policy-domain "!" begin-timestamp
    // "!" end-timestamp [ "!" unique-id ] "." extension
    auto epoch = [](const std::string& iso) {
        std::tm tm{};
        if (!strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm)) return std::string("0");
        return std::to_string(timegm(&tm));
    };
    std::string filename = submitter + "!" + domain + "!" + epoch(start) + "!" + epoch(end) + ".json.gz";
    std::string boundary = "tlsrpt-" + std::to_string(now_ms) + "-" + std::to_string(std::hash<std::string>{}(id));
    std::string b64 = smtp::base64_encode(gzip(report.dump()));
    std::string to_line;
    for (auto& t : to) to_line += (to_line.empty() ? "" : ", ") + std::string("<") + t + ">";
    std::string m;
    m += "From: <" + from + ">\r\n";
    m += "To: " + to_line + "\r\n";
    m += "Date: " + rfc5322_date(now_ms) + "\r\n";
    m += "Subject: Report Domain: " + domain + " Submitter: " + submitter + " Report-ID: <" + id + ">\r\n";
    m += "Message-ID: <" + id + ">\r\n";
    m += "TLS-Report-Domain: " + domain + "\r\n";
    m += "TLS-Report-Submitter: " + submitter + "\r\n";
    m += "Auto-Submitted: auto-generated\r\n";
    m += "MIME-Version: 1.0\r\n";
    m += "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n\tboundary=\"" + boundary + "\"\r\n";
    m += "\r\n";
    m += "--" + boundary + "\r\n";
    m += "Content-Type: text/plain; charset=us-ascii\r\n\r\n";
    m += "This is an aggregate TLS report (RFC 8460) from " + submitter + " for " + domain + ",\r\n";
    m += "covering " + start + " to " + end + ".\r\n\r\n";
    m += "--" + boundary + "\r\n";
    m += "Content-Type: application/tlsrpt+gzip\r\n";
    m += "Content-Transfer-Encoding: base64\r\n";
    m += "Content-Disposition: attachment;\r\n\tfilename=\"" + filename + "\"\r\n\r\n";
    for (std::size_t i = 0; i < b64.size(); i += 76) m += b64.substr(i, 76) + "\r\n";
    m += "\r\n--" + boundary + "--\r\n";
    return m;
}

}  // namespace ricochet::tls
