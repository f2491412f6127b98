// gobject_ptr — ownership of GMime's (GLib's) objects and strings as
// unique_ptrs, so that every path out of a function, early returns included,
// gives back what it was given: a GObject reference (g_object_unref) or a
// string GLib allocated for us (g_free). Borrowed pointers (what
// g_mime_multipart_get_part, g_mime_message_get_mime_part, ... return) are
// not wrapped: they are not ours to release.
#pragma once
#include <glib-object.h>

#include <memory>

namespace ricochet::bounce::dsn {

struct gobject_unref {
    void operator()(gpointer p) const noexcept { g_object_unref(p); }
};
template <class T>
using gobject_ptr = std::unique_ptr<T, gobject_unref>;

struct gfree {
    void operator()(gpointer p) const noexcept { g_free(p); }
};
using gchar_ptr = std::unique_ptr<char, gfree>;

}  // namespace ricochet::bounce::dsn
