// seven_bit — see seven_bit.hpp.
#include "mime/seven_bit.hpp"

#include <gmime/gmime.h>

#include <memory>
#include <mutex>

namespace ricochet::mime {
namespace {

struct unref {
    void operator()(gpointer p) const noexcept { g_object_unref(p); }
};
template <class T>
using ref = std::unique_ptr<T, unref>;

void init_once() {
    static std::once_flag f;
    std::call_once(f, [] { g_mime_init(); });
}

// The first header field of obj with 8-bit octets, or "".
std::string eight_bit_header(GMimeObject* obj) {
    GMimeHeaderList* hl = g_mime_object_get_header_list(obj);
    int n = hl ? g_mime_header_list_get_count(hl) : 0;
    for (int i = 0; i < n; ++i) {
        GMimeHeader* h = g_mime_header_list_get_header_at(hl, i);
        const char* raw = g_mime_header_get_raw_value(h);
        const char* name = g_mime_header_get_name(h);
        if ((raw && has_eight_bit(raw)) || (name && has_eight_bit(name))) return name ? name : "?";
    }
    return {};
}

bool part_has_eight_bit(GMimePart* part) {
    GMimeDataWrapper* w = g_mime_part_get_content(part);
    if (!w) return false;
    GMimeStream* s = g_mime_data_wrapper_get_stream(w);
    if (!s) return false;
    g_mime_stream_reset(s);
    char buf[8192];
    bool eight = false;
    for (;;) {
        auto n = g_mime_stream_read(s, buf, sizeof buf);
        if (n <= 0) break;
        std::string_view chunk(buf, static_cast<std::size_t>(n));
        if (has_eight_bit(chunk) || chunk.find('\0') != std::string_view::npos) {  // NUL is not 7bit data either
            eight = true;
            break;
        }
    }
    g_mime_stream_reset(s);
    return eight;
}

// Converts obj and everything in it; false with `error` when it cannot.
bool convert(GMimeObject* obj, std::string& error, int depth) {
    if (depth > 50) {
        error = "MIME structure nested too deeply to convert";
        return false;
    }
    if (auto h = eight_bit_header(obj); !h.empty()) {
        error = "header field " + h + " has 8-bit characters";
        return false;
    }
    auto declared_8bit = [obj] {
        const char* cte = g_mime_object_get_header(obj, "Content-Transfer-Encoding");
        if (!cte) return false;
        std::string v;
        for (const char* p = cte; *p; ++p)
            if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') v += static_cast<char>(g_ascii_tolower(*p));
        return v == "8bit" || v == "binary";
    };
    if (GMIME_IS_MULTIPART(obj)) {
        GMimeMultipart* mp = GMIME_MULTIPART(obj);
        int n = g_mime_multipart_get_count(mp);
        for (int i = 0; i < n; ++i)
            if (!convert(g_mime_multipart_get_part(mp, i), error, depth + 1)) return false;
        const char* pre = g_mime_multipart_get_prologue(mp);
        const char* epi = g_mime_multipart_get_epilogue(mp);
        if ((pre && has_eight_bit(pre)) || (epi && has_eight_bit(epi))) {
            // Text outside every part, never shown: dropped rather than sent 8-bit.
            g_mime_multipart_set_prologue(mp, nullptr);
            g_mime_multipart_set_epilogue(mp, nullptr);
        }
        if (declared_8bit()) g_mime_object_set_header(obj, "Content-Transfer-Encoding", "7bit", nullptr);
        return true;
    }
    if (GMIME_IS_MESSAGE_PART(obj)) {
        GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        if (inner) {
            if (auto h = eight_bit_header(GMIME_OBJECT(inner)); !h.empty()) {
                error = "header field " + h + " of an attached message has 8-bit characters";
                return false;
            }
            if (GMimeObject* body = g_mime_message_get_mime_part(inner); body && !convert(body, error, depth + 1))
                return false;
        }
        if (declared_8bit()) g_mime_object_set_header(obj, "Content-Transfer-Encoding", "7bit", nullptr);
        return true;
    }
    if (GMIME_IS_PART(obj)) {
        GMimePart* part = GMIME_PART(obj);
        auto enc = g_mime_part_get_content_encoding(part);
        bool raw = enc == GMIME_CONTENT_ENCODING_DEFAULT || enc == GMIME_CONTENT_ENCODING_7BIT ||
                   enc == GMIME_CONTENT_ENCODING_8BIT || enc == GMIME_CONTENT_ENCODING_BINARY;
        if (raw && (enc == GMIME_CONTENT_ENCODING_8BIT || enc == GMIME_CONTENT_ENCODING_BINARY || part_has_eight_bit(part))) {
            GMimeContentType* ct = g_mime_object_get_content_type(obj);
            bool text = ct && g_ascii_strcasecmp(g_mime_content_type_get_media_type(ct), "text") == 0;
            g_mime_part_set_content_encoding(part, text ? GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE
                                                        : GMIME_CONTENT_ENCODING_BASE64);
        }
        return true;
    }
    return true;
}

}  // namespace

bool has_eight_bit(std::string_view s) {
    for (unsigned char c : s)
        if (c >= 0x80) return true;
    return false;
}

std::optional<std::string> to_seven_bit(std::string_view message, std::string& error) {
    init_once();
    ref<GMimeStream> in(g_mime_stream_mem_new_with_buffer(message.data(), message.size()));
    ref<GMimeParser> parser(g_mime_parser_new_with_stream(in.get()));
    ref<GMimeMessage> msg(g_mime_parser_construct_message(parser.get(), nullptr));
    if (!msg) {
        error = "the message cannot be read as MIME";
        return std::nullopt;
    }
    if (auto h = eight_bit_header(GMIME_OBJECT(msg.get())); !h.empty()) {
        error = "header field " + h + " has 8-bit characters";
        return std::nullopt;
    }
    if (GMimeObject* body = g_mime_message_get_mime_part(msg.get()); body && !convert(body, error, 0))
        return std::nullopt;
    // Written to a memory stream and taken with its length: a NUL in the
    // message must not cut it short (g_mime_object_to_string would).
    GMimeFormatOptions* fo = g_mime_format_options_new();
    g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
    ref<GMimeStream> mem(g_mime_stream_mem_new());
    auto written = g_mime_object_write_to_stream(GMIME_OBJECT(msg.get()), fo, mem.get());
    g_mime_format_options_free(fo);
    GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem.get()));
    if (written < 0 || !bytes) {
        error = "the message could not be written back";
        return std::nullopt;
    }
    // GMime writes what it did not change as it read it, which for a
    // malformed part can mean LF alone: every line end goes out as CRLF,
    // and a CR alone becomes one too (as submission does: no "<CR>.<CR>"
    // for a receiver down the line to misread).
    std::string out;
    out.reserve(bytes->len + bytes->len / 32);
    for (guint i = 0; i < bytes->len; ++i) {
        char c = static_cast<char>(bytes->data[i]);
        if (c == '\r') {
            out += "\r\n";
            if (i + 1 < bytes->len && bytes->data[i + 1] == '\n') ++i;
        } else if (c == '\n') {
            out += "\r\n";
        } else {
            out += c;
        }
    }
    if (has_eight_bit(out)) {  // something GMime left as it was (never sent 8-bit)
        error = "the message could not be made 7-bit";
        return std::nullopt;
    }
    return out;
}

}  // namespace ricochet::mime
