// qmail — see qmail.hpp.
#include "bounce/dsn/qmail.hpp"

namespace ricochet::bounce::dsn {

std::optional<stage_mention> qmail_sentence_stage(std::string_view lt) {
    struct { std::string_view marker; stage at; } sentences[] = {
        {"but greeting failed", stage::greeting},        {"but my name was rejected", stage::ehlo},
        {"but sender was rejected", stage::mail},        {"does not like recipient", stage::rcpt},
        {"failed on data command", stage::data},         {"failed after i sent the message", stage::end_of_data}};
    std::optional<stage_mention> first;
    for (auto& s : sentences)
        if (auto p = lt.find(s.marker); p != std::string_view::npos && (!first || p < first->offset))
            first = stage_mention{p, s.at};
    return first;
}

}  // namespace ricochet::bounce::dsn
