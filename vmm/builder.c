/* SPDX-License-Identifier: Apache-2.0 */
#include "builder.h"

#include "util.h"
#include "vmm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
strbuf_reserve(vmm_strbuf *b, size_t n)
{
    if (b->len + n + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1)
        cap *= 2;
    b->buf = cc_xrealloc(b->buf, cap);
    b->cap = cap;
}

static void
strbuf_append_n(vmm_strbuf *b, const char *s, size_t n)
{
    if (b->error)
        return;
    strbuf_reserve(b, n);
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

void
vmm_strbuf_append(vmm_strbuf *b, const char *s)
{
    strbuf_append_n(b, s, strlen(s));
}

void
vmm_strbuf_appendf(vmm_strbuf *b, const char *fmt, ...)
{
    va_list ap;

    if (b->error)
        return;
    va_start(ap, fmt);
    _cleanup_free_ char *s = cc_xvasprintf(fmt, ap);
    va_end(ap);
    vmm_strbuf_append(b, s);
}

void
vmm_strbuf_append_xml(vmm_strbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            vmm_strbuf_append(b, "&amp;");
            break;
        case '<':
            vmm_strbuf_append(b, "&lt;");
            break;
        case '>':
            vmm_strbuf_append(b, "&gt;");
            break;
        case '\'':
            vmm_strbuf_append(b, "&apos;");
            break;
        case '"':
            vmm_strbuf_append(b, "&quot;");
            break;
        default:
            strbuf_append_n(b, s, 1);
        }
    }
}

void
vmm_strbuf_append_qemu_opt(vmm_strbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == ',')
            vmm_strbuf_append(b, ",,");
        else
            strbuf_append_n(b, s, 1);
    }
}

void
vmm_strbuf_append_json(vmm_strbuf *b, const char *s)
{
    vmm_strbuf_append(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            vmm_strbuf_appendf(b, "\\%c", c);
        else if (c < 0x20)
            vmm_strbuf_appendf(b, "\\u%04x", c);
        else
            strbuf_append_n(b, s, 1);
    }
    vmm_strbuf_append(b, "\"");
}

int
vmm_strbuf_fail(vmm_strbuf *b, int r, const char *fmt, ...)
{
    va_list ap;

    if (b->error)
        return r;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = cc_xvasprintf(fmt, ap);
    va_end(ap);
    cc_error_msg(&b->error, r, "%s", msg);
    return r;
}

void
vmm_xml_indent(vmm_strbuf *b)
{
    for (int i = 0; i < b->indent; i++)
        vmm_strbuf_append(b, "  ");
}

void
vmm_xml_open(vmm_strbuf *b, const char *tag_and_attrs)
{
    vmm_xml_indent(b);
    vmm_strbuf_appendf(b, "<%s>\n", tag_and_attrs);
    b->indent++;
}

void
vmm_xml_close(vmm_strbuf *b, const char *tag)
{
    b->indent--;
    vmm_xml_indent(b);
    vmm_strbuf_appendf(b, "</%s>\n", tag);
}

void
vmm_xml_line(vmm_strbuf *b, const char *fmt, ...)
{
    va_list ap;

    if (b->error)
        return;
    va_start(ap, fmt);
    _cleanup_free_ char *s = cc_xvasprintf(fmt, ap);
    va_end(ap);
    vmm_xml_indent(b);
    vmm_strbuf_append(b, s);
    vmm_strbuf_append(b, "\n");
}

void
vmm_xml_text(vmm_strbuf *b, const char *tag, const char *text)
{
    vmm_xml_indent(b);
    vmm_strbuf_appendf(b, "<%s>", tag);
    vmm_strbuf_append_xml(b, text);
    vmm_strbuf_appendf(b, "</%s>\n", tag);
}

void
vmm_strbuf_done(vmm_strbuf *b)
{
    free(b->buf);
    b->error = cc_error_free(b->error);
    *b = (vmm_strbuf){0};
}

int
vmm_strbuf_finish(vmm_strbuf *b, char **ret, cc_error **err)
{
    if (b->error) {
        int r = b->error->code;
        if (err) {
            cc_error_free(*err);
            *err = TAKE_PTR(b->error);
        }
        vmm_strbuf_done(b);
        return r;
    }
    *ret = b->buf ? b->buf : cc_xstrdup("");
    *b = (vmm_strbuf){0};
    return 0;
}

void
vmm_argv_add_take(vmm_argv *a, char *s)
{
    if (a->error || !s) {
        free(s);
        return;
    }
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 32;
        a->v = cc_xreallocarray(a->v, a->cap, sizeof(char *));
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

void
vmm_argv_add(vmm_argv *a, const char *s)
{
    vmm_argv_add_take(a, cc_xstrdup(s));
}

void
vmm_argv_addf(vmm_argv *a, const char *fmt, ...)
{
    va_list ap;

    if (a->error)
        return;
    va_start(ap, fmt);
    char *s = cc_xvasprintf(fmt, ap);
    va_end(ap);
    vmm_argv_add_take(a, s);
}

int
vmm_argv_fail(vmm_argv *a, int r, const char *fmt, ...)
{
    va_list ap;

    if (a->error)
        return r;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = cc_xvasprintf(fmt, ap);
    va_end(ap);
    cc_error_msg(&a->error, r, "%s", msg);
    return r;
}

int
vmm_argv_finish(vmm_argv *a, char ***ret, cc_error **err)
{
    if (a->error) {
        int r = a->error->code;
        if (err) {
            cc_error_free(*err);
            *err = TAKE_PTR(a->error);
        }
        a->error = cc_error_free(a->error);
        a->v = vmm_strv_free(a->v);
        *a = (vmm_argv){0};
        return r;
    }
    if (!a->v)
        a->v = cc_xzalloc(sizeof(char *));
    *ret = a->v;
    *a = (vmm_argv){0};
    return 0;
}
