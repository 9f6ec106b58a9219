/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TOML tree: nodes, tables with a hash index, accessors, typed lookups and file loading.
 * The parser itself lives in toml-parse.c (structure) and toml-lex.c (scalars).
 */
#include "toml-priv.h"
#include "util.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define TOML_FILE_MAX (64u << 20)

static const char *const type_names[_CC_TOML_TYPE_MAX] = {
    [CC_TOML_TABLE] = "table",           [CC_TOML_ARRAY] = "array",
    [CC_TOML_STRING] = "string",         [CC_TOML_INTEGER] = "integer",
    [CC_TOML_FLOAT] = "float",           [CC_TOML_BOOL] = "bool",
    [CC_TOML_DATETIME] = "datetime",     [CC_TOML_DATETIME_LOCAL] = "datetime-local",
    [CC_TOML_DATE_LOCAL] = "date-local", [CC_TOML_TIME_LOCAL] = "time-local",
};

const char *
cc_toml_type_name(cc_toml_type type)
{
    if (type < 0 || type >= _CC_TOML_TYPE_MAX)
        return "invalid";
    return type_names[type];
}

cc_toml *
toml_node_new(cc_toml_type type, unsigned line, unsigned column)
{
    cc_toml *v = cc_xzalloc(sizeof(*v));
    v->type = type;
    v->line = line;
    v->column = column;
    return v;
}

/* Recursion is bounded by CC_TOML_MAX_DEPTH, which the parser enforces. */
void
toml_node_free(cc_toml *v)
{
    if (!v)
        return;
    switch (v->type) {
    case CC_TOML_TABLE:
        for (size_t i = 0; i < v->tab.len; i++) {
            free(v->tab.entries[i].key);
            toml_node_free(v->tab.entries[i].value);
        }
        free(v->tab.entries);
        free(v->tab.slots);
        break;
    case CC_TOML_ARRAY:
        for (size_t i = 0; i < v->arr.len; i++)
            toml_node_free(v->arr.items[i]);
        free(v->arr.items);
        break;
    case CC_TOML_STRING:
        free(v->str.ptr);
        break;
    default:
        break;
    }
    free(v);
}

cc_toml *
cc_toml_free(cc_toml *root)
{
    toml_node_free(root);
    return NULL;
}

/* FNV-1a: keys come from the document, but a config file is not an adversary's hash flood. */
static uint64_t
key_hash(const char *key, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void
index_insert(cc_toml *t, size_t entry)
{
    size_t mask = t->tab.nslots - 1;
    size_t s = t->tab.entries[entry].hash & mask;
    while (t->tab.slots[s])
        s = (s + 1) & mask;
    t->tab.slots[s] = (uint32_t)(entry + 1);
}

static void
index_rebuild(cc_toml *t, size_t nslots)
{
    free(t->tab.slots);
    t->tab.slots = cc_xreallocarray(NULL, nslots, sizeof(*t->tab.slots));
    memset(t->tab.slots, 0, nslots * sizeof(*t->tab.slots));
    t->tab.nslots = nslots;
    for (size_t i = 0; i < t->tab.len; i++)
        index_insert(t, i);
}

cc_toml *
toml_table_find(const cc_toml *t, const char *key, size_t key_len)
{
    if (!t || t->type != CC_TOML_TABLE)
        return NULL;
    uint64_t h = key_hash(key, key_len);
    if (!t->tab.slots) {
        for (size_t i = 0; i < t->tab.len; i++) {
            const toml_entry *e = &t->tab.entries[i];
            if (e->hash == h && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
                return e->value;
        }
        return NULL;
    }
    size_t mask = t->tab.nslots - 1;
    for (size_t s = h & mask; t->tab.slots[s]; s = (s + 1) & mask) {
        const toml_entry *e = &t->tab.entries[t->tab.slots[s] - 1];
        if (e->hash == h && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
            return e->value;
    }
    return NULL;
}

void
toml_table_add(cc_toml *t, char *key, size_t key_len, cc_toml *value)
{
    /* Entry indexes are stored in 32 bits; the 64 MiB input limit keeps us far below. */
    if (t->tab.len == t->tab.cap) {
        t->tab.cap = t->tab.cap ? t->tab.cap * 2 : 4;
        t->tab.entries = cc_xreallocarray(t->tab.entries, t->tab.cap, sizeof(toml_entry));
    }
    size_t i = t->tab.len++;
    t->tab.entries[i] = (toml_entry){
        .key = key,
        .key_len = key_len,
        .hash = key_hash(key, key_len),
        .value = value,
    };
    if (t->tab.len <= TOML_INDEX_MIN)
        return;
    if (t->tab.len * 2 > t->tab.nslots)
        index_rebuild(t, t->tab.nslots ? t->tab.nslots * 2 : 4 * TOML_INDEX_MIN);
    else
        index_insert(t, i);
}

void
toml_array_push(cc_toml *a, cc_toml *value)
{
    if (a->arr.len == a->arr.cap) {
        a->arr.cap = a->arr.cap ? a->arr.cap * 2 : 4;
        a->arr.items = cc_xreallocarray(a->arr.items, a->arr.cap, sizeof(cc_toml *));
    }
    a->arr.items[a->arr.len++] = value;
}

cc_toml_type
cc_toml_type_of(const cc_toml *v)
{
    return v ? v->type : _CC_TOML_TYPE_INVALID;
}

unsigned
cc_toml_line(const cc_toml *v)
{
    return v ? v->line : 0;
}

unsigned
cc_toml_column(const cc_toml *v)
{
    return v ? v->column : 0;
}

size_t
cc_toml_table_len(const cc_toml *t)
{
    return t && t->type == CC_TOML_TABLE ? t->tab.len : 0;
}

const char *
cc_toml_table_key_at(const cc_toml *t, size_t i, size_t *ret_len)
{
    if (i >= cc_toml_table_len(t))
        return NULL;
    if (ret_len)
        *ret_len = t->tab.entries[i].key_len;
    return t->tab.entries[i].key;
}

cc_toml *
cc_toml_table_value_at(const cc_toml *t, size_t i)
{
    if (i >= cc_toml_table_len(t))
        return NULL;
    return t->tab.entries[i].value;
}

cc_toml *
cc_toml_table_getn(const cc_toml *t, const char *key, size_t key_len)
{
    if (!key)
        return NULL;
    return toml_table_find(t, key, key_len);
}

cc_toml *
cc_toml_table_get(const cc_toml *t, const char *key)
{
    if (!key)
        return NULL;
    return toml_table_find(t, key, strlen(key));
}

size_t
cc_toml_array_len(const cc_toml *a)
{
    return a && a->type == CC_TOML_ARRAY ? a->arr.len : 0;
}

cc_toml *
cc_toml_array_at(const cc_toml *a, size_t i)
{
    if (i >= cc_toml_array_len(a))
        return NULL;
    return a->arr.items[i];
}

const char *
cc_toml_as_string(const cc_toml *v, size_t *ret_len)
{
    if (!v || v->type != CC_TOML_STRING)
        return NULL;
    if (ret_len)
        *ret_len = v->str.len;
    return v->str.ptr;
}

int64_t
cc_toml_as_int(const cc_toml *v)
{
    return v && v->type == CC_TOML_INTEGER ? v->i : 0;
}

double
cc_toml_as_float(const cc_toml *v)
{
    return v && v->type == CC_TOML_FLOAT ? v->f : 0.0;
}

bool
cc_toml_as_bool(const cc_toml *v)
{
    return v && v->type == CC_TOML_BOOL ? v->b : false;
}

const cc_toml_datetime *
cc_toml_as_datetime(const cc_toml *v)
{
    if (!v || v->type < CC_TOML_DATETIME || v->type > CC_TOML_TIME_LOCAL)
        return NULL;
    return &v->dt;
}

size_t
cc_toml_datetime_format(const cc_toml_datetime *dt, char buf[static CC_TOML_DATETIME_MAX])
{
    size_t n = 0, size = CC_TOML_DATETIME_MAX;
    buf[0] = '\0';
    if (dt->has_date)
        n += snprintf(buf + n, size - n, "%04d-%02d-%02d", dt->year % 10000, dt->month % 100,
                      dt->day % 100);
    if (dt->has_time) {
        if (dt->has_date)
            buf[n++] = 'T';
        n += snprintf(buf + n, size - n, "%02d:%02d:%02d", dt->hour % 100, dt->minute % 100,
                      dt->second % 100);
        if (dt->frac_digits > 0 && dt->frac_digits <= 9) {
            char frac[16];
            snprintf(frac, sizeof(frac), "%09d", dt->nanosecond % 1000000000);
            n += snprintf(buf + n, size - n, ".%.*s", dt->frac_digits, frac);
        }
    }
    if (dt->has_offset) {
        int off = dt->offset_minutes % 1440;
        if (off == 0)
            n += snprintf(buf + n, size - n, "Z");
        else
            n += snprintf(buf + n, size - n, "%c%02d:%02d", off < 0 ? '-' : '+',
                          (off < 0 ? -off : off) / 60, (off < 0 ? -off : off) % 60);
    }
    return n;
}

/* Looks key up for a cc_toml_get_*(): 0 with *ret set, -ENOENT or -EINVAL. */
static int
lookup_typed(const cc_toml *table, const char *key, cc_toml_type want, const cc_toml **ret,
             cc_error **err)
{
    if (!table || table->type != CC_TOML_TABLE || !key)
        return cc_error_msg(err, -EINVAL, "key '%s': cannot look up a key in a value of type %s",
                            key ? key : "(null)", cc_toml_type_name(cc_toml_type_of(table)));
    const cc_toml *v = toml_table_find(table, key, strlen(key));
    if (!v)
        return -ENOENT;
    bool ok = v->type == want || (want == CC_TOML_FLOAT && v->type == CC_TOML_INTEGER) ||
              (want == CC_TOML_DATETIME && cc_toml_as_datetime(v));
    if (!ok)
        return cc_error_msg(err, -EINVAL, "line %u: key '%s': expected %s, got %s", v->line, key,
                            want == CC_TOML_DATETIME ? "date/time" : cc_toml_type_name(want),
                            cc_toml_type_name(v->type));
    *ret = v;
    return 0;
}

int
cc_toml_get_string(const cc_toml *table, const char *key, const char **ret, cc_error **err)
{
    const cc_toml *v = NULL;
    int r = lookup_typed(table, key, CC_TOML_STRING, &v, err);
    if (r < 0)
        return r;
    if (memchr(v->str.ptr, '\0', v->str.len))
        return cc_error_msg(err, -EINVAL, "line %u: key '%s': string contains a NUL character",
                            v->line, key);
    *ret = v->str.ptr;
    return 0;
}

int
cc_toml_get_int(const cc_toml *table, const char *key, int64_t *ret, cc_error **err)
{
    const cc_toml *v = NULL;
    int r = lookup_typed(table, key, CC_TOML_INTEGER, &v, err);
    if (r < 0)
        return r;
    *ret = v->i;
    return 0;
}

int
cc_toml_get_float(const cc_toml *table, const char *key, double *ret, cc_error **err)
{
    const cc_toml *v = NULL;
    int r = lookup_typed(table, key, CC_TOML_FLOAT, &v, err);
    if (r < 0)
        return r;
    *ret = v->type == CC_TOML_INTEGER ? (double)v->i : v->f;
    return 0;
}

int
cc_toml_get_bool(const cc_toml *table, const char *key, bool *ret, cc_error **err)
{
    const cc_toml *v = NULL;
    int r = lookup_typed(table, key, CC_TOML_BOOL, &v, err);
    if (r < 0)
        return r;
    *ret = v->b;
    return 0;
}

int
cc_toml_get_datetime(const cc_toml *table, const char *key, const cc_toml_datetime **ret,
                     cc_error **err)
{
    const cc_toml *v = NULL;
    int r = lookup_typed(table, key, CC_TOML_DATETIME, &v, err);
    if (r < 0)
        return r;
    *ret = &v->dt;
    return 0;
}

int
cc_toml_get_table(const cc_toml *table, const char *key, const cc_toml **ret, cc_error **err)
{
    return lookup_typed(table, key, CC_TOML_TABLE, ret, err);
}

int
cc_toml_get_array(const cc_toml *table, const char *key, const cc_toml **ret, cc_error **err)
{
    return lookup_typed(table, key, CC_TOML_ARRAY, ret, err);
}

/* Reads all of fd (a regular file or anything else) into an owned buffer, bounded. */
static int
read_all(int fd, const char *path, char **ret, size_t *ret_len, cc_error **err)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return cc_error_set(err, -errno, "stat '%s'", path);
    if (S_ISDIR(st.st_mode))
        return cc_error_set(err, -EISDIR, "read '%s'", path);
    size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, len = 0;
    if (cap > TOML_FILE_MAX + 1)
        return cc_error_msg(err, -EFBIG, "'%s': larger than %u bytes", path, TOML_FILE_MAX);
    _cleanup_free_ char *buf = cc_xmalloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap > TOML_FILE_MAX)
                return cc_error_msg(err, -EFBIG, "'%s': larger than %u bytes", path, TOML_FILE_MAX);
            cap *= 2;
            buf = cc_xrealloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cc_error_set(err, -errno, "read '%s'", path);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    *ret = TAKE_PTR(buf);
    *ret_len = len;
    return 0;
}

cc_toml *
cc_toml_parse_file(const char *path, cc_error **err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        cc_error_set(err, -errno, "open '%s'", path);
        return NULL;
    }
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    if (read_all(fd, path, &buf, &len, err) < 0)
        return NULL;
    cc_toml *root = cc_toml_parse(buf, len, err);
    if (!root)
        cc_error_prefix(err, -EINVAL, "%s", path);
    return root;
}
