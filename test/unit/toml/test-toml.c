/* SPDX-License-Identifier: Apache-2.0 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* cmocka needs these first, in this order */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include "error.h"
#include "toml.h"
#include "util.h"

/* Parses a NUL-terminated document that must be valid. */
static cc_toml *
parse_ok(const char *doc)
{
    _cleanup_error_ cc_error *err = NULL;
    cc_toml *root = cc_toml_parse(doc, strlen(doc), &err);
    if (!root)
        fail_msg("unexpected parse error: %s\n--- document:\n%s", cc_error_message(err), doc);
    assert_null(err);
    return root;
}

/* Parses len bytes that must be invalid; returns the message (owned). */
static char *
parse_fail_n(const char *doc, size_t len)
{
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_(cc_toml_freep) cc_toml *root = cc_toml_parse(doc, len, &err);
    if (root)
        fail_msg("accepted invalid document:\n%.*s", (int)len, doc);
    assert_non_null(err);
    assert_int_equal(err->code, -EINVAL);
    assert_null(cc_toml_parse(doc, len, NULL)); /* err may be NULL */
    return cc_xstrdup(err->message);
}

static void
assert_parse_error(const char *doc, const char *want)
{
    _cleanup_free_ char *msg = parse_fail_n(doc, strlen(doc));
    assert_string_equal(msg, want);
}

static void
test_scalars(void **state)
{
    _cleanup_(cc_toml_freep) cc_toml *root = parse_ok("s = \"hé\\tllo\"\n"
                                                      "i = -42\n"
                                                      "f = 6.25e-1\n"
                                                      "b = true\n"
                                                      "dt = 1979-05-27T07:32:00Z\n"
                                                      "ldt = 1979-05-27T07:32:00\n"
                                                      "ld = 1979-05-27\n"
                                                      "lt = 07:32:00\n"
                                                      "a = [1, 2]\n"
                                                      "t = {x = 1}\n");
    static const cc_toml_type want[] = {
        CC_TOML_STRING,   CC_TOML_INTEGER,        CC_TOML_FLOAT,      CC_TOML_BOOL,
        CC_TOML_DATETIME, CC_TOML_DATETIME_LOCAL, CC_TOML_DATE_LOCAL, CC_TOML_TIME_LOCAL,
        CC_TOML_ARRAY,    CC_TOML_TABLE,
    };
    static const char *const names[] = {
        "string",         "integer",    "float",      "bool",  "datetime",
        "datetime-local", "date-local", "time-local", "array", "table",
    };
    assert_int_equal(cc_toml_type_of(root), CC_TOML_TABLE);
    assert_int_equal(cc_toml_table_len(root), ELEMENTSOF(want));
    for (size_t i = 0; i < ELEMENTSOF(want); i++) {
        assert_int_equal(cc_toml_type_of(cc_toml_table_value_at(root, i)), want[i]);
        assert_string_equal(cc_toml_type_name(want[i]), names[i]);
    }
    size_t len = 0;
    assert_string_equal(cc_toml_as_string(cc_toml_table_get(root, "s"), &len), "hé\tllo");
    assert_int_equal(len, strlen("hé\tllo"));
    assert_int_equal(cc_toml_as_int(cc_toml_table_get(root, "i")), -42);
    assert_true(cc_toml_as_float(cc_toml_table_get(root, "f")) == 0.625);
    assert_true(cc_toml_as_bool(cc_toml_table_get(root, "b")));
    /* getters of the wrong type return neutral values */
    assert_null(cc_toml_as_string(cc_toml_table_get(root, "i"), &len));
    assert_int_equal(cc_toml_as_int(cc_toml_table_get(root, "s")), 0);
    assert_true(cc_toml_as_float(cc_toml_table_get(root, "i")) == 0.0);
    assert_false(cc_toml_as_bool(cc_toml_table_get(root, "s")));
    assert_null(cc_toml_as_datetime(cc_toml_table_get(root, "s")));
    assert_string_equal(cc_toml_type_name(_CC_TOML_TYPE_INVALID), "invalid");
    assert_string_equal(cc_toml_type_name(_CC_TOML_TYPE_MAX), "invalid");
}

static void
test_null_safety(void **state)
{
    assert_null(cc_toml_free(NULL));
    assert_int_equal(cc_toml_type_of(NULL), _CC_TOML_TYPE_INVALID);
    assert_int_equal(cc_toml_line(NULL), 0);
    assert_int_equal(cc_toml_column(NULL), 0);
    assert_int_equal(cc_toml_table_len(NULL), 0);
    assert_null(cc_toml_table_get(NULL, "a"));
    assert_null(cc_toml_table_key_at(NULL, 0, NULL));
    assert_int_equal(cc_toml_array_len(NULL), 0);
    assert_null(cc_toml_array_at(NULL, 0));
    assert_null(cc_toml_as_string(NULL, NULL));

    _cleanup_(cc_toml_freep) cc_toml *root = parse_ok("a = [1]\n");
    const cc_toml *a = cc_toml_table_get(root, "a");
    assert_null(cc_toml_table_get(root, NULL));
    assert_null(cc_toml_table_value_at(root, 1));
    assert_null(cc_toml_array_at(a, 1));
    assert_int_equal(cc_toml_table_len(a), 0);    /* not a table */
    assert_int_equal(cc_toml_array_len(root), 0); /* not an array */

    /* empty documents, with or without a buffer */
    _cleanup_(cc_toml_freep) cc_toml *empty = cc_toml_parse(NULL, 0, NULL);
    assert_non_null(empty);
    assert_int_equal(cc_toml_table_len(empty), 0);
    _cleanup_(cc_toml_freep) cc_toml *bom = parse_ok("\xEF\xBB\xBF# just a comment");
    assert_int_equal(cc_toml_table_len(bom), 0);
}

static void
test_order_preserved(void **state)
{
    _cleanup_(cc_toml_freep) cc_toml *root = parse_ok("zeta = 1\n"
                                                      "alpha = 2\n"
                                                      "mid.z = 3\n"
                                                      "mid.a = 4\n"
                                                      "[b.c]\n"
                                                      "[a]\n"
                                                      "[b]\n"
                                                      "y = 5\n"
                                                      "x = 6\n");
    static const char *const keys[] = {"zeta", "alpha", "mid", "b", "a"};
    assert_int_equal(cc_toml_table_len(root), ELEMENTSOF(keys));
    for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
        size_t len = 0;
        assert_string_equal(cc_toml_table_key_at(root, i, &len), keys[i]);
        assert_int_equal(len, strlen(keys[i]));
        assert_ptr_equal(cc_toml_table_value_at(root, i), cc_toml_table_get(root, keys[i]));
    }
    const cc_toml *mid = cc_toml_table_get(root, "mid");
    assert_string_equal(cc_toml_table_key_at(mid, 0, NULL), "z");
    assert_string_equal(cc_toml_table_key_at(mid, 1, NULL), "a");
    /* [b.c] created b first, [b] then defined it: c stays first */
    const cc_toml *b = cc_toml_table_get(root, "b");
    assert_int_equal(cc_toml_table_len(b), 3);
    assert_string_equal(cc_toml_table_key_at(b, 0, NULL), "c");
    assert_string_equal(cc_toml_table_key_at(b, 1, NULL), "y");
    assert_string_equal(cc_toml_table_key_at(b, 2, NULL), "x");
    assert_null(cc_toml_table_get(root, "missing"));
}

static void
test_keys(void **state)
{
    _cleanup_(cc_toml_freep) cc_toml *root = parse_ok("\"a\\u0000b\" = 1\n"
                                                      "'lit.eral' = 2\n"
                                                      "\"\" = 3\n"
                                                      "1234 = 4\n"
                                                      "a . \"b.c\" . d = 5\n"
                                                      "site.\"google.com\" = true\n");
    size_t len = 0;
    const char *k = cc_toml_table_key_at(root, 0, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(k, "a\0b", 4);
    assert_int_equal(cc_toml_as_int(cc_toml_table_getn(root, "a\0b", 3)), 1);
    assert_null(cc_toml_table_getn(root, "a\0", 2));
    assert_int_equal(cc_toml_as_int(cc_toml_table_get(root, "lit.eral")), 2);
    assert_int_equal(cc_toml_as_int(cc_toml_table_get(root, "")), 3);
    assert_int_equal(cc_toml_as_int(cc_toml_table_get(root, "1234")), 4);
    const cc_toml *a = cc_toml_table_get(root, "a");
    const cc_toml *bc = cc_toml_table_get(a, "b.c");
    assert_int_equal(cc_toml_as_int(cc_toml_table_get(bc, "d")), 5);
    assert_true(cc_toml_as_bool(cc_toml_table_get(cc_toml_table_get(root, "site"), "google.com")));
}

static void
test_strings(void **state)
{
    _cleanup_(cc_toml_freep) cc_toml *root =
        parse_ok("a = \"\\b\\t\\n\\f\\r\\\"\\\\\\u00e9\\U0001F600\"\n"
                 "b = '''\nfirst\r\nsecond'''\n"
                 "c = \"\"\"\\\n   joined \\\n\n   words\"\"\"\n"
                 "d = \"\"\"\"\"quoted\"\"\"\"\"\n"
                 "e = 'C:\\path\\'\n"
                 "f = \"nul\\u0000inside\"\n"
                 "g = \"\"\n"
                 "h = '''it''s'''\n");
    assert_string_equal(cc_toml_as_string(cc_toml_table_get(root, "a"), NULL),
                        "\b\t\n\f\r\"\\\xC3\xA9\xF0\x9F\x98\x80");
    assert_string_equal(cc_toml_as_string(cc_toml_table_get(root, "b"), NULL), "first\nsecond");
    assert_string_equal(cc_toml_as_string(cc_toml_table_get(root, "c"), NULL), "joined words");
    assert_string_equal(cc_toml_as_string(cc_toml_table_get(root, "d"), NULL), "\"\"quoted\"\"");
    assert_string_equal(cc_toml_as_string(cc_toml_table_get(root, "e"), NULL), "C:\\path\\");
    size_t len = 0;
    const char *f = cc_toml_as_string(cc_toml_table_get(root, "f"), &len);
    assert_int_equal(len, 10);
    assert_memory_equal(f, "nul\0inside", 11);
    assert_string_equal(cc_toml_as_string(cc_toml_table_get(root, "g"), &len), "");
    assert_int_equal(len, 0);
    assert_string_equal(cc_toml_as_string(cc_toml_table_get(root, "h"), NULL), "it''s");
}

static void
test_numbers(void **state)
{
    _cleanup_(cc_toml_freep) cc_toml *root = parse_ok("max = 9223372036854775807\n"
                                                      "min = -9223372036854775808\n"
                                                      "hex = 0xDEAD_beef\n"
                                                      "oct = 0o755\n"
                                                      "bin = 0b1101\n"
                                                      "zero = +0\n"
                                                      "under = 1_000_000\n"
                                                      "f1 = -0.0\n"
                                                      "f2 = 1e1_0\n"
                                                      "f3 = +inf\n"
                                                      "f4 = -inf\n"
                                                      "f5 = nan\n"
                                                      "f6 = 3.141_592\n");
    assert_true(cc_toml_as_int(cc_toml_table_get(root, "max")) == INT64_MAX);
    assert_true(cc_toml_as_int(cc_toml_table_get(root, "min")) == INT64_MIN);
    assert_int_equal(cc_toml_as_int(cc_toml_table_get(root, "hex")), 0xDEADBEEF);
    assert_int_equal(cc_toml_as_int(cc_toml_table_get(root, "oct")), 0755);
    assert_int_equal(cc_toml_as_int(cc_toml_table_get(root, "bin")), 13);
    assert_int_equal(cc_toml_as_int(cc_toml_table_get(root, "zero")), 0);
    assert_int_equal(cc_toml_as_int(cc_toml_table_get(root, "under")), 1000000);
    double f1 = cc_toml_as_float(cc_toml_table_get(root, "f1"));
    assert_true(f1 == 0.0 && signbit(f1));
    assert_true(cc_toml_as_float(cc_toml_table_get(root, "f2")) == 1e10);
    assert_true(isinf(cc_toml_as_float(cc_toml_table_get(root, "f3"))));
    assert_true(cc_toml_as_float(cc_toml_table_get(root, "f4")) < 0);
    assert_true(isnan(cc_toml_as_float(cc_toml_table_get(root, "f5"))));
    assert_true(cc_toml_as_float(cc_toml_table_get(root, "f6")) == 3.141592);
}

static void
test_datetimes(void **state)
{
    _cleanup_(cc_toml_freep) cc_toml *root = parse_ok("a = 1979-05-27t07:32:00.1234567891z\n"
                                                      "b = 2000-02-29 23:59:60.5-07:30\n"
                                                      "c = 2024-12-31\n"
                                                      "d = 00:00:00\n"
                                                      "e = 1987-07-05T17:45:00\n");
    const cc_toml_datetime *a = cc_toml_as_datetime(cc_toml_table_get(root, "a"));
    assert_non_null(a);
    assert_int_equal(a->year, 1979);
    assert_int_equal(a->month, 5);
    assert_int_equal(a->day, 27);
    assert_int_equal(a->hour, 7);
    assert_int_equal(a->minute, 32);
    assert_int_equal(a->second, 0);
    assert_int_equal(a->nanosecond, 123456789); /* truncated, not rounded */
    assert_int_equal(a->frac_digits, 9);
    assert_true(a->has_date && a->has_time && a->has_offset);
    assert_int_equal(a->offset_minutes, 0);

    const cc_toml_datetime *b = cc_toml_as_datetime(cc_toml_table_get(root, "b"));
    assert_int_equal(b->second, 60);
    assert_int_equal(b->nanosecond, 500000000);
    assert_int_equal(b->offset_minutes, -450);
    const cc_toml_datetime *c = cc_toml_as_datetime(cc_toml_table_get(root, "c"));
    assert_true(c->has_date && !c->has_time && !c->has_offset);

    static const char *const text[] = {
        "1979-05-27T07:32:00.123456789Z",
        "2000-02-29T23:59:60.5-07:30",
        "2024-12-31",
        "00:00:00",
        "1987-07-05T17:45:00",
    };
    for (size_t i = 0; i < ELEMENTSOF(text); i++) {
        char buf[CC_TOML_DATETIME_MAX];
        const cc_toml_datetime *dt = cc_toml_as_datetime(cc_toml_table_value_at(root, i));
        assert_int_equal(cc_toml_datetime_format(dt, buf), strlen(text[i]));
        assert_string_equal(buf, text[i]);
    }
}

static void
test_tables_and_arrays(void **state)
{
    _cleanup_(cc_toml_freep) cc_toml *root = parse_ok("[[fruit]]\n"
                                                      "name = \"apple\"\n"
                                                      "[fruit.physical]\n"
                                                      "color = \"red\"\n"
                                                      "[[fruit.variety]]\n"
                                                      "name = \"red delicious\"\n"
                                                      "[[fruit]]\n"
                                                      "name = \"banana\"\n"
                                                      "[x.y.z.w]\n"
                                                      "[x]\n"
                                                      "mixed = [ # comment\n"
                                                      "  1, 'two', [3.0],\n"
                                                      "  { four = 4 },\n"
                                                      "]\n");
    const cc_toml *fruit = cc_toml_table_get(root, "fruit");
    assert_int_equal(cc_toml_type_of(fruit), CC_TOML_ARRAY);
    assert_int_equal(cc_toml_array_len(fruit), 2);
    const cc_toml *apple = cc_toml_array_at(fruit, 0);
    assert_string_equal(cc_toml_as_string(cc_toml_table_get(apple, "name"), NULL), "apple");
    const cc_toml *phys = cc_toml_table_get(apple, "physical");
    assert_string_equal(cc_toml_as_string(cc_toml_table_get(phys, "color"), NULL), "red");
    const cc_toml *variety = cc_toml_table_get(apple, "variety");
    assert_int_equal(cc_toml_array_len(variety), 1);
    const cc_toml *banana = cc_toml_array_at(fruit, 1);
    assert_int_equal(cc_toml_table_len(banana), 1);
    const cc_toml *mixed = cc_toml_table_get(cc_toml_table_get(root, "x"), "mixed");
    assert_int_equal(cc_toml_array_len(mixed), 4);
    assert_int_equal(cc_toml_type_of(cc_toml_array_at(mixed, 0)), CC_TOML_INTEGER);
    assert_int_equal(cc_toml_type_of(cc_toml_array_at(mixed, 1)), CC_TOML_STRING);
    assert_int_equal(cc_toml_type_of(cc_toml_array_at(mixed, 2)), CC_TOML_ARRAY);
    assert_int_equal(cc_toml_type_of(cc_toml_array_at(mixed, 3)), CC_TOML_TABLE);
    assert_int_equal(cc_toml_as_int(cc_toml_table_get(cc_toml_array_at(mixed, 3), "four")), 4);
}

static void
test_positions(void **state)
{
    _cleanup_(cc_toml_freep) cc_toml *root = parse_ok("# header comment\n"
                                                      "name = \"x\"\n"
                                                      "\"ké\" = [ 1,\n"
                                                      "   2 ]\n"
                                                      "\n"
                                                      "  [srv.http]\n"
                                                      "port = 80\r\n"
                                                      "[[job]]\n"
                                                      "inline = { \"é\" = 1, b = 2 }\n");
    assert_int_equal(cc_toml_line(root), 1);
    assert_int_equal(cc_toml_column(root), 1);
    const cc_toml *name = cc_toml_table_get(root, "name");
    assert_int_equal(cc_toml_line(name), 2);
    assert_int_equal(cc_toml_column(name), 8);
    const cc_toml *arr = cc_toml_table_get(root, "ké");
    assert_int_equal(cc_toml_line(arr), 3);
    assert_int_equal(cc_toml_column(arr), 8); /* characters, not bytes */
    assert_int_equal(cc_toml_line(cc_toml_array_at(arr, 1)), 4);
    assert_int_equal(cc_toml_column(cc_toml_array_at(arr, 1)), 4);
    const cc_toml *srv = cc_toml_table_get(root, "srv"); /* implicit: at its key */
    assert_int_equal(cc_toml_line(srv), 6);
    assert_int_equal(cc_toml_column(srv), 4);
    const cc_toml *http = cc_toml_table_get(srv, "http"); /* at the '[' */
    assert_int_equal(cc_toml_line(http), 6);
    assert_int_equal(cc_toml_column(http), 3);
    assert_int_equal(cc_toml_line(cc_toml_table_get(http, "port")), 7);
    const cc_toml *job = cc_toml_array_at(cc_toml_table_get(root, "job"), 0);
    assert_int_equal(cc_toml_line(job), 8);
    const cc_toml *in = cc_toml_table_get(job, "inline");
    assert_int_equal(cc_toml_line(in), 9);
    assert_int_equal(cc_toml_column(in), 10);
    assert_int_equal(cc_toml_column(cc_toml_table_get(in, "b")), 25);
}

static void
test_error_messages(void **state)
{
    assert_parse_error("a = 1\nb = \n", "line 2, column 5: expected a value, found a newline");
    assert_parse_error("a = 1\na = 2\n",
                       "line 2, column 1: duplicate key 'a': already defined as integer at "
                       "line 1");
    assert_parse_error("x = \"é\\q\"", "line 1, column 7: invalid escape sequence '\\q'");
    assert_parse_error("[a]\nb = 1\n[a]\n",
                       "line 3, column 2: cannot define table 'a': already defined as table (by "
                       "a [header]) at line 1");
    assert_parse_error("a = {b = 1}\n[a.c]\n",
                       "line 2, column 2: cannot add to key 'a': already defined as inline table "
                       "at line 1");
    assert_parse_error("a = [1,\n  2\n", "line 1, column 5: unterminated array");
    assert_parse_error("a = 1 b = 2", "line 1, column 7: expected the end of the line after the "
                                      "value, found 'b'");
    assert_parse_error("n = 007", "line 1, column 5: leading zeros are not allowed in '007'");
    assert_parse_error("n = 9223372036854775808", "line 1, column 5: integer out of range");
    assert_parse_error("d = 2023-02-29",
                       "line 1, column 5: invalid date/time: day out of range for the month");
    assert_parse_error("s = 'ok'\nt = \"\xff\"", "line 2, column 6: invalid UTF-8 byte 0xFF");
    assert_parse_error("s = \"\\uD800\"",
                       "line 1, column 6: escape '\\u' is not a Unicode scalar value");
    assert_parse_error("t = {a = 1,}", "line 1, column 12: trailing comma in an inline table");
    assert_parse_error("a = 1\r\nb = 2\rc = 3",
                       "line 2, column 6: expected the end of the line after the value, found a "
                       "carriage return");
}

static const char *const invalid_docs[] = {
    /* keys and structure */
    "= 1",
    "a = ",
    "a",
    "a.= 1",
    "a..b = 1",
    "a b = 1",
    "\"\"\"k\"\"\" = 1",
    "a = 1 = 2",
    "[a",
    "[]",
    "[a]b = 1",
    "[[a]",
    "[ [a]]",
    "a = 1\n[[a]]",
    "[a.b]\n[a.b]",
    "a.b = 1\n[a.b]",
    "a.b.c = 1\n[a.b]",
    "a.b = 1\n[a]",
    "a = {}\n[a.b]",
    "a = [1]\n[[a]]",
    "[[a]]\n[a]",
    "[a]\n[[a]]",
    "a = {b.c = 1}\na.b.d = 2",
    "a = {b = 1, b = 2}",
    "a = { b = { c = 1 }, b.d = 2 }",
    "a = {b = 1\n}",
    "a = {\nb = 1}",
    "a = {,}",
    "a = {b = 1,,c = 2}",
    "[a.b.c]\n[a]\nb.c.t = 1",
    "[[a.b]]\n[a]\nb.y = 2",
    "a = 1\na.b = 2",
    "a.b = 1\na = 2",
    "a = [1,,2]",
    "a = [,]",
    "a = [1 2]",
    "a = [",
    "a = {",
    "key = \"x\" key2 = 1",
    /* strings */
    "a = \"unterminated",
    "a = \"new\nline\"",
    "a = 'new\nline'",
    "a = \"\\x41\"",
    "a = \"\\u12\"",
    "a = \"\\U0000D800\"",
    "a = \"\\U00110000\"",
    "a = \"tab\\ \"",
    "a = \"\"\"x\"\"\"\"\"\"",
    "a = '''x''''''",
    "a = \"\x01\"",
    "a = '\x7f'",
    "a = \"\"\"bare\rcr\"\"\"",
    "a = \"\"\"\\ \"\"\"",
    /* numbers */
    "a = 01",
    "a = +0x1",
    "a = 0X1",
    "a = 0x",
    "a = 0x_1",
    "a = 1_",
    "a = _1",
    "a = 1__0",
    "a = 0b2",
    "a = 0o8",
    "a = -9223372036854775809",
    "a = 0x8000000000000000",
    "a = 1.",
    "a = .1",
    "a = 1e",
    "a = 1.e1",
    "a = 1e1.5",
    "a = 1_.0",
    "a = 1._0",
    "a = 1e_1",
    "a = 1e400",
    "a = infinity",
    "a = Inf",
    "a = NaN",
    "a = ++1",
    "a = 1x",
    /* booleans */
    "a = True",
    "a = truee",
    "a = fals",
    /* dates and times */
    "a = 1979-13-01",
    "a = 1979-00-01",
    "a = 1979-01-32",
    "a = 1979-04-31",
    "a = 1900-02-29",
    "a = 1979-05-27T24:00:00",
    "a = 1979-05-27T23:60:00",
    "a = 1979-05-27T23:59:61",
    "a = 1979-05-27T07:32",
    "a = 1979-05-27T07:32:00.",
    "a = 1979-05-27T07:32:00+24:00",
    "a = 1979-05-27T07:32:00+01:60",
    "a = 1979-05-27T07:32:00+0100",
    "a = 1979-5-27",
    "a = 79-05-27",
    "a = 10000-01-01",
    "a = 07:32:00Z",
    "a = 7:32:00",
    "a = 1979-05-27X07:32:00",
    "a = 1979-05-27T",
    "a = 1979-05-27T07:32:00Zx",
    /* control characters, newlines and encoding */
    "# \x01",
    "# bare \r cr",
    "a = 1\r",
    "\x7f",
    "a = 1 # \x1f",
    "a = \"\xc0\x80\"",
    "a = \"\xed\xa0\x80\"",
    "a = \"\xf4\x90\x80\x80\"",
    "a = \"\xe2\x82\"",
    "a = \"\x80\"",
    "a = \"\xf8\x88\x80\x80\x80\"",
    "\xef\xbb\xbf\xef\xbb\xbf a = 1",
};

static void
test_invalid_documents(void **state)
{
    for (size_t i = 0; i < ELEMENTSOF(invalid_docs); i++) {
        _cleanup_free_ char *msg = parse_fail_n(invalid_docs[i], strlen(invalid_docs[i]));
        assert_non_null(cc_startswith(msg, "line "));
        assert_non_null(strstr(msg, ", column "));
    }
}

static const char *const valid_docs[] = {
    "",
    "\n\n",
    " \t# only a comment",
    "a = 1 # trailing",
    "a = 1\r\nb = 2\r\n",
    "a.b.c = 1\na.b.d = 2\n[a.e]",
    "[a.b.c]\n[a]\n",
    "[a]\nb.c = 1\n[a.b.d]",
    "[a.b.c]\nz = 9\n[a]\nb.d = 1",
    "a = [[1, 2], [\"x\"], []]",
    "a = [\n  1,\n  2,\n]",
    "a = { b.c = 1, b.d = 2 }",
    "a = {}",
    "[[a]]\n[[a]]\n[a.b]\n[[a]]",
    "a = \"\"\"\n\"\"\"",
    "a = ''''''",
    "a = 1979-05-27 07:32:00",
    "a = 1979-05-27 # date",
    "b = true\nc=false",
    "\"a\"={\"b\"=1}",
    "a=[1,[2,[3,[4]]]]",
    "'quoted \"key\"' = 1",
    "a = 0.0\nb = -0e0\nc = +1.5E+3",
    "a = \"\xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9\"",
    "\t[ a . b ]\t# spaced header",
    "[[ a ]]",
    "x = 1 # \xc3\xa9 unicode comment",
};

static void
test_valid_documents(void **state)
{
    for (size_t i = 0; i < ELEMENTSOF(valid_docs); i++)
        cc_toml_free(parse_ok(valid_docs[i]));
}

static void
test_embedded_nul(void **state)
{
    static const char doc1[] = "a = 1\0\n";
    _cleanup_free_ char *m1 = parse_fail_n(doc1, sizeof(doc1) - 1);
    assert_string_equal(m1, "line 1, column 6: expected the end of the line after the value, "
                            "found control character U+0000");
    static const char doc2[] = "a = \"x\0y\"";
    _cleanup_free_ char *m2 = parse_fail_n(doc2, sizeof(doc2) - 1);
    assert_string_equal(m2, "line 1, column 7: control character U+0000 in a string");
    static const char doc3[] = "# c\0mment\n";
    _cleanup_free_ char *m3 = parse_fail_n(doc3, sizeof(doc3) - 1);
    assert_string_equal(m3, "line 1, column 4: control character U+0000 in a comment");
    static const char doc4[] = "\0";
    _cleanup_free_ char *m4 = parse_fail_n(doc4, 1);
    assert_string_equal(m4, "line 1, column 1: expected a key, found control character U+0000");
    /* a length shorter than the buffer is honoured: nothing past len is read */
    _cleanup_(cc_toml_freep) cc_toml *root = cc_toml_parse("a = 12\0garbage", 6, NULL);
    assert_int_equal(cc_toml_as_int(cc_toml_table_get(root, "a")), 12);
}

static char *
nested(const char *open, const char *inner, const char *close, int n)
{
    size_t lo = strlen(open), li = strlen(inner), lc = strlen(close);
    char *s = cc_xmalloc(4 + n * (lo + lc) + li + 1), *o = s;
    memcpy(o, "a = ", 4);
    o += 4;
    for (int i = 0; i < n; i++, o += lo)
        memcpy(o, open, lo);
    memcpy(o, inner, li);
    o += li;
    for (int i = 0; i < n; i++, o += lc)
        memcpy(o, close, lc);
    *o = '\0';
    return s;
}

static void
test_depth_limit(void **state)
{
    /* a = [...] at the root: the array is level 1 */
    _cleanup_free_ char *ok = nested("[", "1", "]", CC_TOML_MAX_DEPTH);
    cc_toml_free(parse_ok(ok));
    _cleanup_free_ char *deep = nested("[", "1", "]", CC_TOML_MAX_DEPTH + 1);
    _cleanup_free_ char *m1 = parse_fail_n(deep, strlen(deep));
    assert_string_equal(m1, "line 1, column 133: nested more than 128 levels deep");
    _cleanup_free_ char *tables = nested("{b = ", "1", "}", CC_TOML_MAX_DEPTH + 1);
    _cleanup_free_ char *m2 = parse_fail_n(tables, strlen(tables));
    assert_non_null(strstr(m2, "nested more than 128 levels deep"));
    /* a huge nesting attempt fails fast instead of exhausting the stack */
    _cleanup_free_ char *huge = nested("[", "", "", 1000000);
    _cleanup_free_ char *m3 = parse_fail_n(huge, strlen(huge));
    assert_non_null(strstr(m3, "nested more than"));
    /* dotted keys and headers count too */
    _cleanup_free_ char *dotted = cc_xmalloc(2 * 200 + 8);
    size_t n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)sprintf(dotted + n, "%sk", i ? "." : "");
    sprintf(dotted + n, " = 1");
    _cleanup_free_ char *m4 = parse_fail_n(dotted, strlen(dotted));
    assert_non_null(strstr(m4, "nested more than"));
}

static void
test_large_table(void **state)
{
    enum { N = 100000 };
    size_t cap = (size_t)N * 32, len = 0;
    _cleanup_free_ char *doc = cc_xmalloc(cap);
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(doc + len, cap - len, "key_%d = %d\n", i, i);
    _cleanup_error_ cc_error *err = NULL;
    _cleanup_(cc_toml_freep) cc_toml *root = cc_toml_parse(doc, len, &err);
    assert_non_null(root);
    assert_int_equal(cc_toml_table_len(root), N);
    for (int i = 0; i < N; i += 997) {
        char key[32];
        snprintf(key, sizeof(key), "key_%d", i);
        assert_int_equal(cc_toml_as_int(cc_toml_table_get(root, key)), i);
        assert_string_equal(cc_toml_table_key_at(root, (size_t)i, NULL), key);
    }
    assert_int_equal(cc_toml_line(cc_toml_table_get(root, "key_99999")), N);
    /* a duplicate at the end is still found through the index */
    memcpy(doc + len, "key_5 = 0\n", 10);
    _cleanup_free_ char *msg = parse_fail_n(doc, len + 10);
    assert_string_equal(msg, "line 100001, column 1: duplicate key 'key_5': already defined as "
                             "integer at line 6");
}

static void
test_typed_getters(void **state)
{
    _cleanup_(cc_toml_freep) cc_toml *root = parse_ok("name = \"vm\"\n"
                                                      "cpus = 4\n"
                                                      "ratio = 0.5\n"
                                                      "debug = true\n"
                                                      "port = \"80\"\n"
                                                      "when = 2024-01-01\n"
                                                      "nul = \"a\\u0000b\"\n"
                                                      "list = [1]\n"
                                                      "[sub]\n");
    _cleanup_error_ cc_error *err = NULL;
    const char *s = NULL;
    int64_t i = 0;
    double d = 0;
    bool b = false;
    const cc_toml *t = NULL;
    const cc_toml_datetime *dt = NULL;
    assert_int_equal(cc_toml_get_string(root, "name", &s, &err), 0);
    assert_string_equal(s, "vm");
    assert_int_equal(cc_toml_get_int(root, "cpus", &i, &err), 0);
    assert_int_equal(i, 4);
    assert_int_equal(cc_toml_get_float(root, "ratio", &d, &err), 0);
    assert_true(d == 0.5);
    assert_int_equal(cc_toml_get_float(root, "cpus", &d, &err), 0); /* integers convert */
    assert_true(d == 4.0);
    assert_int_equal(cc_toml_get_bool(root, "debug", &b, &err), 0);
    assert_true(b);
    assert_int_equal(cc_toml_get_datetime(root, "when", &dt, &err), 0);
    assert_int_equal(dt->year, 2024);
    assert_int_equal(cc_toml_get_array(root, "list", &t, &err), 0);
    assert_int_equal(cc_toml_array_len(t), 1);
    assert_int_equal(cc_toml_get_table(root, "sub", &t, &err), 0);
    assert_int_equal(cc_toml_type_of(t), CC_TOML_TABLE);
    assert_null(err);

    /* absent: -ENOENT, no message, *ret untouched */
    i = 77;
    assert_int_equal(cc_toml_get_int(root, "missing", &i, &err), -ENOENT);
    assert_null(err);
    assert_int_equal(i, 77);

    /* wrong type: names the key, its line and both types; *ret untouched */
    assert_int_equal(cc_toml_get_int(root, "port", &i, &err), -EINVAL);
    assert_string_equal(cc_error_message(err), "line 5: key 'port': expected integer, got string");
    assert_int_equal(i, 77);
    assert_int_equal(cc_toml_get_string(root, "cpus", &s, &err), -EINVAL);
    assert_string_equal(cc_error_message(err), "line 2: key 'cpus': expected string, got integer");
    assert_int_equal(cc_toml_get_table(root, "list", &t, &err), -EINVAL);
    assert_string_equal(cc_error_message(err), "line 8: key 'list': expected table, got array");
    assert_int_equal(cc_toml_get_bool(root, "name", &b, &err), -EINVAL);
    assert_string_equal(cc_error_message(err), "line 1: key 'name': expected bool, got string");
    assert_int_equal(cc_toml_get_datetime(root, "cpus", &dt, &err), -EINVAL);
    assert_string_equal(cc_error_message(err),
                        "line 2: key 'cpus': expected date/time, got integer");
    assert_int_equal(cc_toml_get_float(root, "debug", &d, &err), -EINVAL);
    assert_string_equal(cc_error_message(err), "line 4: key 'debug': expected float, got bool");
    assert_int_equal(cc_toml_get_array(root, "sub", &t, &err), -EINVAL);
    assert_string_equal(cc_error_message(err), "line 9: key 'sub': expected array, got table");
    assert_int_equal(cc_toml_get_string(root, "nul", &s, &err), -EINVAL);
    assert_string_equal(cc_error_message(err),
                        "line 7: key 'nul': string contains a NUL character");
    assert_int_equal(cc_toml_get_int(cc_toml_table_get(root, "list"), "x", &i, &err), -EINVAL);
    assert_string_equal(cc_error_message(err),
                        "key 'x': cannot look up a key in a value of type array");
    assert_int_equal(cc_toml_get_int(root, "port", &i, NULL), -EINVAL); /* err may be NULL */
}

static int
write_temp(char *path, const char *content)
{
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    size_t len = strlen(content);
    ssize_t n = write(fd, content, len);
    close(fd);
    return n == (ssize_t)len ? 0 : -1;
}

static void
test_parse_file(void **state)
{
    char good[] = "/tmp/test-toml-good-XXXXXX";
    char bad[] = "/tmp/test-toml-bad-XXXXXX";
    assert_int_equal(write_temp(good, "[vm]\nmemory = 512\n"), 0);
    assert_int_equal(write_temp(bad, "ok = 1\nbad = [1,\n  ,]\n"), 0);

    _cleanup_error_ cc_error *err = NULL;
    _cleanup_(cc_toml_freep) cc_toml *root = cc_toml_parse_file(good, &err);
    assert_non_null(root);
    assert_null(err);
    int64_t mem = 0;
    const cc_toml *vm = NULL;
    assert_int_equal(cc_toml_get_table(root, "vm", &vm, &err), 0);
    assert_int_equal(cc_toml_get_int(vm, "memory", &mem, &err), 0);
    assert_int_equal(mem, 512);

    assert_null(cc_toml_parse_file(bad, &err));
    assert_int_equal(err->code, -EINVAL);
    _cleanup_free_ char *want =
        cc_xasprintf("%s: line 3, column 3: expected a value, found ','", bad);
    assert_string_equal(cc_error_message(err), want);

    assert_null(cc_toml_parse_file("/nonexistent/dir/cloak.toml", &err));
    assert_int_equal(err->code, -ENOENT);
    assert_string_equal(cc_error_message(err),
                        "open '/nonexistent/dir/cloak.toml': No such file or directory");
    assert_null(cc_toml_parse_file("/tmp", &err));
    assert_int_equal(err->code, -EISDIR);
    assert_null(cc_toml_parse_file(bad, NULL));
    unlink(good);
    unlink(bad);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),           cmocka_unit_test(test_null_safety),
        cmocka_unit_test(test_order_preserved),   cmocka_unit_test(test_keys),
        cmocka_unit_test(test_strings),           cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_datetimes),         cmocka_unit_test(test_tables_and_arrays),
        cmocka_unit_test(test_positions),         cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_invalid_documents), cmocka_unit_test(test_valid_documents),
        cmocka_unit_test(test_embedded_nul),      cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_large_table),       cmocka_unit_test(test_typed_getters),
        cmocka_unit_test(test_parse_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
