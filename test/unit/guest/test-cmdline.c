/* SPDX-License-Identifier: Apache-2.0 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <stdio.h>
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

static void
test_registry(void **state)
{
    _cleanup_error_ cc_error *err = NULL;
    agent_boot_config c;
    assert_int_equal(agent_cmdline_parse("quiet", &c, NULL), 0);
    assert_null(c.registry_insecure);
    assert_int_equal(c.n_registry_insecure, 0);
    assert_false(c.has_registry_loopback);
    agent_boot_config_clear(&c);

    assert_int_equal(agent_cmdline_parse("cloak.registry.insecure=a.io cloak.registry.insecure="
                                         "127.0.0.1:*,localhost:*,reg.example.com:5000,[::1]:*,"
                                         "plain cloak.registry.loopback=10.0.2.2",
                                         &c, &err),
                     0);
    assert_null(err);
    assert_int_equal(c.n_registry_insecure, 5); /* the last value wins */
    assert_string_equal(c.registry_insecure[0], "127.0.0.1:*");
    assert_string_equal(c.registry_insecure[1], "localhost:*");
    assert_string_equal(c.registry_insecure[2], "reg.example.com:5000");
    assert_string_equal(c.registry_insecure[3], "[::1]:*");
    assert_string_equal(c.registry_insecure[4], "plain");
    assert_null(c.registry_insecure[5]);
    assert_true(c.has_registry_loopback);
    assert_ip(c.registry_loopback, "10.0.2.2");
    agent_boot_config_clear(&c);
    assert_null(c.registry_insecure);
    assert_int_equal(c.n_registry_insecure, 0);
    agent_boot_config_clear(NULL);

    /* 32 entries are fine, 33 are not */
    char list[1024] = "cloak.registry.insecure=";
    for (int i = 0; i < 32; i++)
        sprintf(list + strlen(list), "%sr%d.io", i ? "," : "", i);
    assert_int_equal(agent_cmdline_parse(list, &c, NULL), 0);
    assert_int_equal(c.n_registry_insecure, 32);
    agent_boot_config_clear(&c);
    strcat(list, ",x.io");
    expect_error(list, "cloak.registry.insecure: more than 32 entries");

    /* an error after a good list frees it (the sanitizer build checks) */
    expect_error("cloak.registry.insecure=a.io,b.io cloak.registry.loopback=10.0.2",
                 "cloak.registry.loopback: bad value '10.0.2' (expected an IPv4 address)");
}

static void
test_registry_errors(void **state)
{
    static const char *const bad_entries[] = {
        "-a.io", "a-.io", "a..io", "a.io:", "a.io:0", "a.io:65536", "a.io:01", "a.io:x",
        "a.io:**", "[::1", "[zz]:1", "a_b.io", "a.io/x", "a.io:1:2",
    };
    for (size_t i = 0; i < sizeof(bad_entries) / sizeof(bad_entries[0]); i++) {
        char cmdline[128], msg[256];
        snprintf(cmdline, sizeof(cmdline), "cloak.registry.insecure=ok.io,%s", bad_entries[i]);
        snprintf(msg, sizeof(msg),
                 "cloak.registry.insecure: bad entry '%s' (expected host, host:port or host:*)",
                 bad_entries[i]);
        expect_error(cmdline, msg);
    }
    expect_error("cloak.registry.insecure=", "cloak.registry.insecure: empty value");
    expect_error("cloak.registry.insecure=a.io,,b.io",
                 "cloak.registry.insecure: empty entry in 'a.io,,b.io'");
    expect_error("cloak.registry.insecure=a.io,",
                 "cloak.registry.insecure: empty entry in 'a.io,'");
    expect_error("cloak.registry.insecure", "cloak.registry.insecure: missing value");
    expect_error("cloak.registry.loopback=0.0.0.0",
                 "cloak.registry.loopback: bad value '0.0.0.0' (expected an IPv4 address)");
    expect_error("cloak.registry.loopback=::1",
                 "cloak.registry.loopback: bad value '::1' (expected an IPv4 address)");
    expect_error("cloak.registry.loopback", "cloak.registry.loopback: missing value");
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
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_registry_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
