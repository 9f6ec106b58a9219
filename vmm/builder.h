/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Deferred-error builders for QEMU argv and libvirt XML (libvirt's virBuffer/virCommand
 * pattern): append functions never fail at the call site; the first error (set with
 * vmm_*_fail) is kept, later appends are ignored, and the caller checks once with
 * vmm_*_finish. Internal to vmm/.
 */
#pragma once

#include "error.h"
#include "macro.h"

#include <stdarg.h>
#include <stddef.h>

typedef struct vmm_strbuf {
    char *buf;
    size_t len;
    size_t cap;
    int indent;      /* current XML indent level (two spaces each) */
    cc_error *error; /* the first error, owned */
} vmm_strbuf;

void vmm_strbuf_append(vmm_strbuf *b, const char *s);
void vmm_strbuf_appendf(vmm_strbuf *b, const char *fmt, ...) _printf_(2, 3);
/* Appends s with &, <, >, ', " replaced by entities. */
void vmm_strbuf_append_xml(vmm_strbuf *b, const char *s);
/* Appends s as QEMU option-syntax value: ',' doubled. */
void vmm_strbuf_append_qemu_opt(vmm_strbuf *b, const char *s);
/* Appends s as a quoted JSON string. */
void vmm_strbuf_append_json(vmm_strbuf *b, const char *s);
/* Records an error (the first one wins). Always returns r. */
int vmm_strbuf_fail(vmm_strbuf *b, int r, const char *fmt, ...) _printf_(3, 4);
/* Appends the current indentation. */
void vmm_xml_indent(vmm_strbuf *b);
/* XML helpers: one element per line, indented; attribute/text values escaped. */
void vmm_xml_open(vmm_strbuf *b, const char *tag_and_attrs);
void vmm_xml_close(vmm_strbuf *b, const char *tag);
void vmm_xml_line(vmm_strbuf *b, const char *fmt, ...) _printf_(2, 3);
/* <tag>escaped text</tag> */
void vmm_xml_text(vmm_strbuf *b, const char *tag, const char *text);
/* Returns the first error (moving it to *err), or hands over the string. Frees on error. */
int vmm_strbuf_finish(vmm_strbuf *b, char **ret, cc_error **err);
void vmm_strbuf_done(vmm_strbuf *b);

typedef struct vmm_argv {
    char **v;
    size_t n;
    size_t cap;
    cc_error *error;
} vmm_argv;

void vmm_argv_add(vmm_argv *a, const char *s);
void vmm_argv_addf(vmm_argv *a, const char *fmt, ...) _printf_(2, 3);
/* Takes ownership of s (NULL means an error was recorded elsewhere). */
void vmm_argv_add_take(vmm_argv *a, char *s);
int vmm_argv_fail(vmm_argv *a, int r, const char *fmt, ...) _printf_(3, 4);
/* Hands over the NULL-terminated vector, or the first error; a is emptied either way. */
int vmm_argv_finish(vmm_argv *a, char ***ret, cc_error **err);
