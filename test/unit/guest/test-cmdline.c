/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <string.h>

#include "cmdline.h"
#include "log.h"

static void
assert_ip(struct in_addr a, const char *want)
{
    char s[INET_ADDRSTRLEN];
    assert_non_null(inet_ntop(AF_INET, &a, s, sizeof(s)));
    assert_string_equal(s, want);
}

static void
test_defaults(void **state)
{
    agent_boot_config c;
    assert_int_equal(agent_cmdline_parse("", &c, NULL), 0);
    assert_int_equal(c.channel, AGENT_CHANNEL_SERIAL);
    assert_false(c.net);
    assert_int_equal(c.log_level, CC_LOG_INFO);
    assert_int_equal(agent_cmdline_parse("console=ttyS0 quiet panic=-1\n", &c, NULL), 0);
    assert_int_equal(c.channel, AGENT_CHANNEL_SERIAL);
    assert_false(c.net);
}

static void
test_full(void **state)
{
    _cleanup_error_ cc_error *err = NULL;
    agent_boot_config c;
    assert_int_equal(agent_cmdline_parse("console=ttyS0 quiet panic=-1 cloak.agent=vsock "
                                         "cloak.net=10.0.2.15/24,10.0.2.2 cloak.log=debug\n",
                                         &c, &err),
                     0);
    assert_null(err);
    assert_int_equal(c.channel, AGENT_CHANNEL_VSOCK);
    assert_true(c.net);
    assert_ip(c.net_addr, "10.0.2.15");
    assert_int_equal(c.net_prefix, 24);
    assert_ip(c.net_gateway, "10.0.2.2");
    assert_int_equal(c.log_level, CC_LOG_DEBUG);
    assert_string_equal(agent_channel_to_string(c.channel), "vsock");
}

static void
test_no_gateway_and_edges(void **state)
{
    agent_boot_config c;
    assert_int_equal(agent_cmdline_parse("cloak.net=192.168.1.7/32", &c, NULL), 0);
    assert_true(c.net);
    assert_ip(c.net_addr, "192.168.1.7");
    assert_int_equal(c.net_prefix, 32);
    assert_int_equal(c.net_gateway.s_addr, htonl(INADDR_ANY));
    assert_int_equal(agent_cmdline_parse("cloak.net=10.1.2.3/1,10.0.0.1", &c, NULL), 0);
    assert_int_equal(c.net_prefix, 1);
}

static void
test_quotes_whitespace_last_wins(void **state)
{
    agent_boot_config c;
    assert_int_equal(agent_cmdline_parse("  foo=\"a b c\"\tcloak.log=\"warning\"  "
                                         "\"cloak.agent=vsock\" x cloak.agent=serial\n\n",
                                         &c, NULL),
                     0);
    assert_int_equal(c.log_level, CC_LOG_WARNING);
    assert_int_equal(c.channel, AGENT_CHANNEL_SERIAL);
    /* a quoted value hiding a cloak.* word is one word of another key */
    assert_int_equal(agent_cmdline_parse("foo=\"x cloak.agent=bogus\"", &c, NULL), 0);
    /* unknown cloak.* keys and look-alikes are ignored */
    assert_int_equal(agent_cmdline_parse("cloak.future=1 xcloak.agent=bogus cloak.agentx=1", &c,
                                         NULL),
                     0);
}

static void
expect_error(const char *cmdline, const char *message)
{
    _cleanup_error_ cc_error *err = NULL;
    agent_boot_config c = {.channel = AGENT_CHANNEL_VSOCK, .net_prefix = 99};
    assert_int_equal(agent_cmdline_parse(cmdline, &c, &err), -EINVAL);
    assert_non_null(err);
    assert_string_equal(cc_error_message(err), message);
    /* untouched on failure */
    assert_int_equal(c.channel, AGENT_CHANNEL_VSOCK);
    assert_int_equal(c.net_prefix, 99);
}

static void
test_errors(void **state)
{
    expect_error("cloak.net=10.0.2.15/33,10.0.2.2", "cloak.net: bad prefix '33'");
    expect_error("cloak.net=10.0.2.15/0", "cloak.net: bad prefix '0'");
    expect_error("cloak.net=10.0.2.15/", "cloak.net: bad prefix ''");
    expect_error("cloak.net=10.0.2.15/2x", "cloak.net: bad prefix '2x'");
    expect_error("cloak.net=10.0.2.15/-1", "cloak.net: bad prefix '-1'");
    expect_error("cloak.net=10.0.2.15/024", "cloak.net: bad prefix '024'");
    expect_error("cloak.net=10.0.2.15",
                 "cloak.net: bad value '10.0.2.15' (expected ADDR/PREFIX[,GATEWAY])");
    expect_error("cloak.net=", "cloak.net: bad value '' (expected ADDR/PREFIX[,GATEWAY])");
    expect_error("cloak.net=10.0.2/24", "cloak.net: bad address '10.0.2'");
    expect_error("cloak.net=0.0.0.0/24", "cloak.net: bad address '0.0.0.0'");
    expect_error("cloak.net=10.0.2.15/24,", "cloak.net: bad gateway ''");
    expect_error("cloak.net=10.0.2.15/24,10.0.2.256", "cloak.net: bad gateway '10.0.2.256'");
    expect_error("cloak.agent=virtio",
                 "cloak.agent: bad value 'virtio' (expected serial or vsock)");
    expect_error("cloak.agent=", "cloak.agent: bad value '' (expected serial or vsock)");
    expect_error("cloak.log=loud",
                 "cloak.log: bad value 'loud' (expected debug, info, warning or error)");
    expect_error("quiet cloak.agent", "cloak.agent: missing value");
    /* NULL err: just the code */
    agent_boot_config c;
    assert_int_equal(agent_cmdline_parse("cloak.net=1.2.3.4/40", &c, NULL), -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_no_gateway_and_edges),
        cmocka_unit_test(test_quotes_whitespace_last_wins),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
