// compose — see compose.hpp.
#include "submission/compose.hpp"

#include <gmime/gmime.h>

#include <cctype>
#include <memory>
#include <mutex>

namespace ricochet::submission {
namespace {

void init_once() {
    static std::once_flag f;
    std::call_once(f, [] { g_mime_init(); });
}

struct unref {
    void operator()(gpointer p) const noexcept { g_object_unref(p); }
};
template <class T>
using ref = std::unique_ptr<T, unref>;

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
    return true;
}

// RFC 5322 2.2: printable US-ASCII but colon.
bool field_name_ok(std::string_view n) {
    if (n.empty() || n.size() > 76) return false;
    for (char c : n)
        if (c < 33 || c > 126 || c == ':') return false;
    return true;
}

ref<GMimePart> text_part(const char* subtype, const std::string& content) {
    // The text as given (UTF-8, the JSON's own charset): GMime's set_text
    // would re-encode it to the "best" charset (Latin-1 for French), which
    // is correct but surprises whoever greps the spool.
    ref<GMimePart> part(g_mime_part_new_with_type("text", subtype));
    bool ascii = true;
    for (unsigned char c : content) ascii = ascii && c < 0x80;
    ref<GMimeStream> mem(g_mime_stream_mem_new_with_buffer(content.data(), content.size()));
    ref<GMimeDataWrapper> data(g_mime_data_wrapper_new_with_stream(mem.get(), GMIME_CONTENT_ENCODING_DEFAULT));
    g_mime_part_set_content(part.get(), data.get());
    g_mime_object_set_content_type_parameter(GMIME_OBJECT(part.get()), "charset", ascii ? "us-ascii" : "utf-8");
    g_mime_part_set_content_encoding(part.get(),
                                     g_mime_part_get_best_content_encoding(part.get(), GMIME_ENCODING_CONSTRAINT_7BIT));
    return part;
}

}  // namespace

std::optional<std::string> compose(const parts& p, const std::string& message_id, std::int64_t now_ms,
                                   std::string& error) {
    if (p.text.empty() && p.html.empty()) {
        error = "a message needs \"text\", \"html\" or \"content\"";
        return std::nullopt;
    }
    for (auto& [name, value] : p.headers) {
        if (!field_name_ok(name)) {
            error = "header name \"" + name + "\" is not a field name (RFC 5322 2.2)";
            return std::nullopt;
        }
        for (auto reserved : {"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
                              "Content-Transfer-Encoding", "Bcc", "Received", "Return-Path"})
            if (iequals(name, reserved)) {
                error = "header " + name + " is set by Ricochet or by its own field";
                return std::nullopt;
            }
        for (char c : value)
            if (c == '\r' || c == '\n' || c == '\0') {
                error = "header " + name + ": a value may not hold CR, LF or NUL";
                return std::nullopt;
            }
    }
    for (auto* s : {&p.subject, &p.from})
        if (s->find_first_of(std::string("\r\n\0", 3)) != std::string::npos) {
            error = "subject and from may not hold CR, LF or NUL";
            return std::nullopt;
        }
    init_once();
    ref<GMimeMessage> msg(g_mime_message_new(TRUE));
    auto* obj = GMIME_OBJECT(msg.get());
    ref<InternetAddressList> from(internet_address_list_parse(nullptr, p.from.c_str()));
    if (!from || internet_address_list_length(from.get()) != 1) {
        error = "from is not one address: " + p.from;
        return std::nullopt;
    }
    internet_address_list_append(g_mime_message_get_from(msg.get()), from.get());
    for (auto& t : p.to) {
        ref<InternetAddressList> l(internet_address_list_parse(nullptr, t.c_str()));
        if (!l || internet_address_list_length(l.get()) < 1) {
            error = "to: not an address: " + t;
            return std::nullopt;
        }
        internet_address_list_append(g_mime_message_get_to(msg.get()), l.get());
    }
    if (!p.subject.empty()) g_mime_message_set_subject(msg.get(), p.subject.c_str(), "utf-8");
    GDateTime* dt = g_date_time_new_from_unix_utc(now_ms / 1000);
    g_mime_message_set_date(msg.get(), dt);
    g_date_time_unref(dt);
    g_mime_message_set_message_id(msg.get(), message_id.c_str());
    for (auto& [name, value] : p.headers) g_mime_object_append_header(obj, name.c_str(), value.c_str(), "utf-8");

    if (!p.text.empty() && !p.html.empty()) {
        ref<GMimeMultipart> alt(g_mime_multipart_new_with_subtype("alternative"));
        auto t = text_part("plain", p.text), h = text_part("html", p.html);
        g_mime_multipart_add(alt.get(), GMIME_OBJECT(t.get()));
        g_mime_multipart_add(alt.get(), GMIME_OBJECT(h.get()));
        g_mime_message_set_mime_part(msg.get(), GMIME_OBJECT(alt.get()));
    } else {
        auto part = text_part(p.text.empty() ? "html" : "plain", p.text.empty() ? p.html : p.text);
        g_mime_message_set_mime_part(msg.get(), GMIME_OBJECT(part.get()));
    }
    GMimeFormatOptions* fo = g_mime_format_options_new();
    g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
    char* text = g_mime_object_to_string(obj, fo);
    g_mime_format_options_free(fo);
    std::string out(text ? text : "");
    g_free(text);
    return out;
}

}  // namespace ricochet::submission
