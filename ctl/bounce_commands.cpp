// bounce_commands — ricochetctl bounce classify|parse: how the bounce engine reads a
// reply or a bounce message, with the shipped rules.
#include "ctl/common.hpp"

#include <cstdio>
#include <fstream>
#include <iostream>

#include "bounce/classifier.hpp"
#include "bounce/dsn_json.hpp"
#include "bounce/dsn_parser.hpp"
#include "views/views.hpp"

namespace ricochet::ctl {

int bounce_parse(const config& cfg, const std::string& file, bool as_json) {
    std::ifstream in(file, std::ios::binary);
    if (!in) die(1, file + ": cannot read");
    std::string raw((std::istreambuf_iterator<char>(in)), {});
    auto rep = bounce::parse_dsn(raw);
    bounce::classifier cl;
    std::string error;
    if (!cl.load(cfg.bounce.rules, error)) die(1, "bounce.rules: " + error);
    cl.set_final_soft(cfg.bounce.final_soft);
    cl.set_trusted_domains(cfg.bounce.trusted_domains);
    json arr = bounce::dsn_records_json(rep, cl);
    if (as_json) {
        std::cout << arr.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return arr.empty() ? 1 : 0;
    }
    if (arr.empty()) std::printf("no delivery report found (format: %s)\n", rep.format.c_str());
    for (auto& j : arr)
        std::printf("%-9s <%s> %s %s %s/%s: %s\n", j["type"].get<std::string>().c_str(),
                    j["recipient"].get<std::string>().c_str(), j["enhanced"].get<std::string>().c_str(),
                    j.value("rule", std::string()).c_str(), j.value("kind", std::string("-")).c_str(),
                    j.value("category", std::string("-")).c_str(), j["reply"].get<std::string>().substr(0, 200).c_str());
    return arr.empty() ? 1 : 0;
}

int bounce_classify(const config& cfg, const std::string& text, const std::string& domain,
                 const std::string& stage_name, bool as_json) {
    bounce::classifier cl;
    std::string error;
    if (!cl.load(cfg.bounce.rules, error)) die(1, "bounce.rules: " + error);
    cl.set_final_soft(cfg.bounce.final_soft);
    cl.set_trusted_domains(cfg.bounce.trusted_domains);
    std::string why;
    auto shown = views::classify(cl, text, domain, stage_name, why);
    if (!shown) die(2, "--stage: " + why);
    auto& j = *shown;
    if (as_json) {
        std::cout << j.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
        return 0;
    }
    std::printf("kind:     %s\ncategory: %s\nretry:    %s\nscope:    %s\nrule:     %s\n",
                j["kind"].get<std::string>().c_str(), j["category"].get<std::string>().c_str(),
                j["retry"].get<bool>() ? "yes" : "no", j["scope"].get<std::string>().c_str(),
                j["rule"].get<std::string>().c_str());
    return 0;
}

}  // namespace ricochet::ctl
