// mime — see mime.hpp.
#include "bounce/dsn/mime.hpp"

#include <gmime/gmime.h>

#include <algorithm>
#include <mutex>

#include "bounce/dsn/gobject_ptr.hpp"
#include "bounce/dsn/limits.hpp"
#include "bounce/dsn/text.hpp"

namespace ricochet::bounce::dsn {
namespace {

void init_once() {
    static std::once_flag f;
    std::call_once(f, [] { g_mime_init(); });
}

std::string header(GMimeObject* obj, const char* name) {
    const char* v = g_mime_object_get_header(obj, name);
    return v ? std::string(v) : std::string();
}

std::string part_bytes(GMimePart* part) {
    GMimeDataWrapper* w = g_mime_part_get_content(part);  // borrowed
    if (!w) return {};
    gobject_ptr<GMimeStream> out(g_mime_stream_mem_new());
    g_mime_data_wrapper_write_to_stream(w, out.get());
    GByteArray* arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(out.get()));  // the stream's own
    return std::string(reinterpret_cast<const char*>(arr->data), arr->len);
}

std::string mime_type(GMimeObject* obj) {
    GMimeContentType* ct = g_mime_object_get_content_type(obj);
    if (!ct) return "text/plain";
    gchar_ptr m(g_mime_content_type_get_mime_type(ct));
    return lower(m ? m.get() : "text/plain");
}

void take_original_headers(GMimeObject* obj, message& st) {
    for (auto name : {"To", "Cc"}) {
        if (const char* v = g_mime_object_get_header(obj, name))
            for (auto& a : find_addresses(v)) st.original_to.push_back(a);
    }
    if (const char* id = g_mime_object_get_header(obj, "Message-ID")) st.original_message_id = trim(id);
}

// Notice text: kept for the free-text pass; some MTAs put the DSN fields
// in it rather than in a message/delivery-status part.
void take_text(std::string t, message& st) {
    t = cap(std::move(t));  // bounded before it is scanned (a broken multipart's prologue is not)
    if (lower(t).find("final-recipient:") != std::string::npos) {
        auto groups = parse_field_groups(t);
        for (auto& g : groups)
            if ((!field(g, "final-recipient").empty() || !field(g, "action").empty()) &&
                st.dsn_groups.size() <= max_records)
                st.dsn_groups.push_back(g);
    }
    st.text += t;
    st.text += "\n";
}

void walk(GMimeObject* obj, message& st, int depth) {
    if (depth > max_depth) return;  // a report is two levels deep; a bomb of nested parts is not read
    if (GMIME_IS_MULTIPART(obj)) {
        auto* mp = GMIME_MULTIPART(obj);
        int n = std::min(g_mime_multipart_get_count(mp), max_parts);
        if (n == 0 && st.text.size() < max_text) {
            // A boundary the body never uses (a rewritten header, a broken
            // gateway): GMime finds no parts, and everything is prologue.
            // Read it as one text part rather than lose the report.
            const char* pro = g_mime_multipart_get_prologue(mp);
            const char* epi = g_mime_multipart_get_epilogue(mp);
            std::string t = std::string(pro ? pro : "") + "\n" + (epi ? epi : "");
            take_text(std::move(t), st);
            return;
        }
        for (int i = 0; i < n; ++i) walk(g_mime_multipart_get_part(mp, i), st, depth + 1);
        return;
    }
    std::string type = mime_type(obj);
    if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        if (!inner) return;
        if (type == "message/delivery-status" || type == "message/global-delivery-status") return;  // handled as part
        take_original_headers(GMIME_OBJECT(inner), st);
        return;
    }
    if (!GMIME_IS_PART(obj)) return;
    auto* part = GMIME_PART(obj);
    if (type == "message/delivery-status" || type == "message/global-delivery-status") {
        for (auto& g : parse_field_groups(cap(part_bytes(part)))) {
            if (st.dsn_groups.size() >= max_records + 1) break;
            st.dsn_groups.push_back(std::move(g));
        }
        return;
    }
    if (type == "message/feedback-report") {
        for (auto& g : parse_field_groups(cap(part_bytes(part)))) st.arf_groups.push_back(std::move(g));
        return;
    }
    if (type == "text/rfc822-headers" || type == "text/rfc822-header") {
        auto groups = parse_field_groups(cap(part_bytes(part)));
        if (!groups.empty()) {
            for (auto& a : find_addresses(field(groups[0], "to"))) st.original_to.push_back(a);
            st.original_message_id = field(groups[0], "message-id");
        }
        return;
    }
    if (type.rfind("text/", 0) == 0 && !g_mime_part_is_attachment(part) && st.text.size() < max_text) {
        std::string t;
        if (GMIME_IS_TEXT_PART(obj)) {
            if (gchar_ptr u{g_mime_text_part_get_text(GMIME_TEXT_PART(obj))}) t = u.get();
        } else {
            t = part_bytes(part);
        }
        t = cap(std::move(t));
        if (type == "text/html") {  // crude tag strip: enough to find addresses and codes
            std::string plain;
            bool in_tag = false;
            for (char c : t) {
                if (c == '<') in_tag = true;
                else if (c == '>') { in_tag = false; plain += ' '; }
                else if (!in_tag) plain += c;
            }
            t = plain;
        }
        take_text(std::move(t), st);
    }
}

}  // namespace

std::string iso2022jp_to_utf8(std::string s) {
    if (s.find("\x1b$B") == std::string::npos && s.find("\x1b$@") == std::string::npos) return s;
    init_once();
    iconv_t cd = g_mime_iconv_open("UTF-8", "ISO-2022-JP");
    if (cd == reinterpret_cast<iconv_t>(-1)) return s;
    gchar_ptr out(g_mime_iconv_strdup(cd, s.c_str()));
    g_mime_iconv_close(cd);
    return out ? std::string(out.get()) : s;
}

std::optional<message> read_message(std::string_view raw) {
    init_once();
    gobject_ptr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(raw.data(), raw.size()));
    gobject_ptr<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
    gobject_ptr<GMimeMessage> msg(g_mime_parser_construct_message(parser.get(), nullptr));
    if (!msg) return std::nullopt;
    message m;
    if (GMimeObject* body = g_mime_message_get_mime_part(msg.get())) walk(body, m, 0);  // borrowed
    GMimeObject* top = GMIME_OBJECT(msg.get());
    m.from = header(top, "From");
    m.to = header(top, "To");
    // Decoded (RFC 2047): localised notices encode their subjects.
    if (const char* subject = g_mime_message_get_subject(msg.get())) m.subject = subject;
    m.return_path = header(top, "Return-Path");
    m.x_failed_recipients = header(top, "X-Failed-Recipients");
    m.x_autoreply = header(top, "X-Autoreply");
    m.x_autorespond = header(top, "X-Autorespond");
    m.precedence = header(top, "Precedence");
    m.auto_submitted = header(top, "Auto-Submitted");
    return m;
}

}  // namespace ricochet::bounce::dsn
