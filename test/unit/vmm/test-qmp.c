/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "qmp.h"
#include "util.h"

static void
test_parse_shapes(void **state)
{
    vmm_qmp_msg m;
    const char *greet = "{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}";
    const char *ret = "{\"return\": {}}";
    const char *ev = "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, "
                     "\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": "
                     "\"guest-shutdown\"}}";
    const char *error = "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"nope\"}}";

    (void)state;
    assert_int_equal(vmm_qmp_parse(greet, strlen(greet), &m, NULL), 0);
    assert_int_equal(m.type, VMM_QMP_MSG_GREETING);
    vmm_qmp_msg_done(&m);
    assert_int_equal(vmm_qmp_parse(ret, strlen(ret), &m, NULL), 0);
    assert_int_equal(m.type, VMM_QMP_MSG_RETURN);
    assert_true(json_is_object(m.data));
    vmm_qmp_msg_done(&m);
    assert_int_equal(vmm_qmp_parse(ev, strlen(ev), &m, NULL), 0);
    assert_int_equal(m.type, VMM_QMP_MSG_EVENT);
    assert_string_equal(m.event, "SHUTDOWN");
    assert_string_equal(json_string_value(json_object_get(m.data, "reason")), "guest-shutdown");
    vmm_qmp_msg_done(&m);
    assert_int_equal(vmm_qmp_parse(error, strlen(error), &m, NULL), 0);
    assert_int_equal(m.type, VMM_QMP_MSG_ERROR);
    assert_string_equal(m.error_desc, "CommandNotFound: nope");
    vmm_qmp_msg_done(&m);
}

static void
test_parse_bad(void **state)
{
    static const char *const bad[] = {"[1]", "{\"foo\": 1}", "{\"event\": 3}", "{\"error\": 1}",
                                      "{not json", "\"x\""};
    (void)state;
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        vmm_qmp_msg m;
        cc_error *err = NULL;
        assert_int_equal(vmm_qmp_parse(bad[i], strlen(bad[i]), &m, &err), -EINVAL);
        assert_non_null(err);
        cc_error_free(err);
    }
}

typedef struct seen {
    int events;
    char last_event[64];
    int replies;
    int last_r;
    char last_err[128];
} seen;

static void
on_event(vmm_qmp *q, const char *event, json_t *data, void *userdata)
{
    seen *s = userdata;
    (void)q, (void)data;
    s->events++;
    snprintf(s->last_event, sizeof(s->last_event), "%s", event);
}

static void
on_reply(vmm_qmp *q, int r, json_t *ret, const char *err_msg, void *userdata)
{
    seen *s = userdata;
    (void)q, (void)ret;
    s->replies++;
    s->last_r = r;
    snprintf(s->last_err, sizeof(s->last_err), "%s", err_msg ? err_msg : "");
}

/* Handshake by feeding, split at awkward places, with an event in between. */
static void
test_feed_handshake_split(void **state)
{
    const char *text = "{\"QMP\": {\"version\": {}}}\r\n{\"event\": \"STOP\"}\n{\"ret"
                       "urn\": {}}\n";
    seen s = {};
    vmm_qmp *q = vmm_qmp_new(-1, on_event, NULL, &s);

    (void)state;
    for (size_t i = 0; text[i]; i++) {
        assert_false(vmm_qmp_is_ready(q));
        assert_int_equal(vmm_qmp_feed(q, text + i, 1, NULL), 0);
    }
    assert_true(vmm_qmp_is_ready(q));
    assert_int_equal(s.events, 1);
    assert_string_equal(s.last_event, "STOP");
    vmm_qmp_free(q);
}

/* Replies are matched in order over a real socket; pending replies fail on free. */
static void
test_execute_replies(void **state)
{
    int sv[2];
    seen s = {};
    char buf[256];
    const char *hs = "{\"QMP\": {}}\n{\"return\": {}}\n";

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    vmm_qmp *q = vmm_qmp_new(sv[0], on_event, NULL, &s);
    assert_int_equal(vmm_qmp_feed(q, hs, strlen(hs), NULL), 0);
    ssize_t n = read(sv[1], buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_string_equal(buf, "{\"execute\":\"qmp_capabilities\"}\n");

    assert_int_equal(vmm_qmp_execute(q, "query-status", NULL, on_reply, &s, NULL), 0);
    assert_int_equal(vmm_qmp_execute(q, "bogus", NULL, on_reply, &s, NULL), 0);
    assert_int_equal(vmm_qmp_execute(q, "quit", NULL, on_reply, &s, NULL), 0);
    const char *replies = "{\"return\": {\"status\": \"running\"}}\n"
                          "{\"event\": \"RESUME\"}\n"
                          "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"x\"}}\n";
    assert_int_equal(vmm_qmp_feed(q, replies, strlen(replies), NULL), 0);
    assert_int_equal(s.replies, 2);
    assert_int_equal(s.last_r, -EIO);
    assert_string_equal(s.last_err, "CommandNotFound: x");
    assert_int_equal(s.events, 1);
    vmm_qmp_free(q); /* "quit" still pending */
    assert_int_equal(s.replies, 3);
    assert_int_equal(s.last_r, -ECONNRESET);
    close(sv[1]);
}

static void
test_line_too_long(void **state)
{
    vmm_qmp *q = vmm_qmp_new(-1, NULL, NULL, NULL);
    char *big = malloc(VMM_QMP_LINE_MAX + 10);
    cc_error *err = NULL;
    int r = 0;

    (void)state;
    memset(big, 'x', VMM_QMP_LINE_MAX + 10);
    for (size_t off = 0; off < VMM_QMP_LINE_MAX + 10 && r == 0; off += 4096) {
        size_t n = VMM_QMP_LINE_MAX + 10 - off < 4096 ? VMM_QMP_LINE_MAX + 10 - off : 4096;
        r = vmm_qmp_feed(q, big + off, n, &err);
    }
    assert_int_equal(r, -EMSGSIZE);
    assert_non_null(strstr(cc_error_message(err), "line longer"));
    cc_error_free(err);
    free(big);
    vmm_qmp_free(q);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_shapes),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_feed_handshake_split),
        cmocka_unit_test(test_execute_replies),
        cmocka_unit_test(test_line_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
