/* SPDX-License-Identifier: Apache-2.0 */
/*
 * guest/network.c: the validation of UpdateInterface/UpdateRoutes, and the four networking
 * RPCs' actions against a real kernel, in a child process that has its own network namespace
 * (never the host's). The latter is skipped when unshare(CLONE_NEWNET) is not allowed.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/veth.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "error.h"
#include "netlink.h"

/* --- validation ---------------------------------------------------------------------------- */

static void
expect_iface_error(const Types__Interface *i, const char *prefix)
{
    _cleanup_error_ cc_error *e = NULL;
    assert_int_equal(agent_interface_validate(i, &e), -EINVAL);
    if (strncmp(cc_error_message(e), prefix, strlen(prefix)) != 0)
        fail_msg("'%s' does not start with '%s'", cc_error_message(e), prefix);
}

static void
test_interface_validate(void **state)
{
    Types__IPAddress a0 = TYPES__IPADDRESS__INIT, a1 = TYPES__IPADDRESS__INIT;
    Types__IPAddress *addrs[] = {&a0, &a1};
    Types__Interface i = TYPES__INTERFACE__INIT;
    (void)state;

    a0.address = "10.0.0.2";
    a0.mask = "24";
    a1.family = TYPES__IPFAMILY__v6;
    a1.address = "fd00::2";
    a1.mask = "64";
    i.hwaddr = "02:42:AC:11:00:02";
    i.name = "eth0";
    i.mtu = 1500;
    i.ipaddresses = addrs;
    i.n_ipaddresses = 2;
    assert_int_equal(agent_interface_validate(&i, NULL), 0);

    expect_iface_error(NULL, "interface: missing");
    i.hwaddr = "02:42:ac:11:00";
    expect_iface_error(&i, "interface.hwAddr: ");
    i.hwaddr = "02:42:ac:11:00:0g";
    expect_iface_error(&i, "interface.hwAddr: ");
    i.hwaddr = "";
    i.name = "";
    expect_iface_error(&i, "interface: hwAddr, name and device are all empty");
    i.name = "eth0";
    assert_int_equal(agent_interface_validate(&i, NULL), 0); /* by name */
    i.name = "a-name-way-too-long";
    expect_iface_error(&i, "interface.name: ");
    i.name = "eth/0";
    expect_iface_error(&i, "interface.name: ");
    i.name = "lo";
    expect_iface_error(&i, "interface.name: the loopback");
    i.name = "eth0";
    i.device = "lo";
    expect_iface_error(&i, "interface.device: the loopback");
    i.device = "";
    i.mtu = 67;
    expect_iface_error(&i, "interface.mtu: 67 not in 68..65535");
    i.mtu = 65536;
    expect_iface_error(&i, "interface.mtu: ");
    i.mtu = 1500;

    a1.address = "10.0.0.3"; /* v6 family, v4 address */
    expect_iface_error(&i, "interface.IPAddresses[1].address: '10.0.0.3' is not an IPv6 address");
    a1.address = "fd00::2/64";
    expect_iface_error(&i, "interface.IPAddresses[1].address: ");
    a1.address = "fd00::2";
    a1.mask = "129";
    expect_iface_error(&i, "interface.IPAddresses[1].mask: ");
    a1.mask = "64";
    a0.mask = "255.255.255.0";
    expect_iface_error(&i, "interface.IPAddresses[0].mask: ");
    a0.mask = "33";
    expect_iface_error(&i, "interface.IPAddresses[0].mask: ");
    a0.mask = "24";
    a0.family = 7;
    expect_iface_error(&i, "interface.IPAddresses[0].family: ");
    a0.family = TYPES__IPFAMILY__v4;
    a1.family = TYPES__IPFAMILY__v4;
    a1.address = "10.0.0.2";
    a1.mask = "24";
    expect_iface_error(&i, "interface.IPAddresses[1].address: '10.0.0.2' repeats");

    Types__IPAddress *many[65];
    for (size_t k = 0; k < 65; k++)
        many[k] = &a0;
    i.ipaddresses = many;
    i.n_ipaddresses = 65;
    expect_iface_error(&i, "interface.IPAddresses: more than 64");
}

static void
expect_routes_error(Types__Route *r, const char *prefix)
{
    _cleanup_error_ cc_error *e = NULL;
    Types__Route *v[] = {r};
    assert_int_equal(agent_routes_validate(v, 1, &e), -EINVAL);
    if (strncmp(cc_error_message(e), prefix, strlen(prefix)) != 0)
        fail_msg("'%s' does not start with '%s'", cc_error_message(e), prefix);
}

static void
test_routes_validate(void **state)
{
    Types__Route r = TYPES__ROUTE__INIT;
    Types__Route *v[] = {&r};
    (void)state;

    r.device = "eth0";
    assert_int_equal(agent_routes_validate(v, 1, NULL), 0); /* default, no gateway */
    r.dest = "default";
    r.gateway = "10.0.0.1";
    assert_int_equal(agent_routes_validate(v, 1, NULL), 0);
    r.dest = "10.1.0.0/16";
    r.source = "10.0.0.2";
    r.scope = 253;
    assert_int_equal(agent_routes_validate(v, 1, NULL), 0);
    r.dest = "10.1.0.1/16";
    expect_routes_error(&r, "routes.Routes[0].dest: '10.1.0.1/16' has host bits set");
    r.dest = "10.1.0.0/33";
    expect_routes_error(&r, "routes.Routes[0].dest: ");
    r.dest = "fd00::/64";
    expect_routes_error(&r, "routes.Routes[0].dest: bad prefix length in 'fd00::/64'");
    r.dest = "fd00::";
    expect_routes_error(&r, "routes.Routes[0].dest: 'fd00::' is not an IPv4 address");
    r.family = TYPES__IPFAMILY__v6;
    expect_routes_error(&r, "routes.Routes[0].gateway: '10.0.0.1' is not an IPv6 address");
    r.gateway = "fd00::1";
    expect_routes_error(&r, "routes.Routes[0].source: ");
    r.source = "fd00::2";
    assert_int_equal(agent_routes_validate(v, 1, NULL), 0);
    r.scope = 256;
    expect_routes_error(&r, "routes.Routes[0].scope: 256 above 255");
    r.scope = 0;
    r.device = "";
    expect_routes_error(&r, "routes.Routes[0].device: ");
    r.device = "lo";
    expect_routes_error(&r, "routes.Routes[0].device: routes of the loopback");
    r.device = "eth0";
    r.family = 3;
    expect_routes_error(&r, "routes.Routes[0].family: ");
    assert_int_equal(agent_routes_validate(NULL, AGENT_ROUTES_MAX + 1, NULL), -EINVAL);
}

/* --- a real network namespace ---------------------------------------------------------------- */

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);                  \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)
#define CHECK_OK(call, e)                                                                          \
    do {                                                                                           \
        if ((call) < 0) {                                                                          \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cc_error_message(e));   \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)

/* ip link add NAME address MAC type dummy (or veth, peer PEER, when dummy is missing). */
static int
link_add(const char *name, const char *peer, const unsigned char mac[6])
{
    nl_msg m;
    struct ifinfomsg *ifi = nl_msg_init(&m, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    nl_msg_put_string(&m, IFLA_IFNAME, name);
    nl_msg_put_attr(&m, IFLA_ADDRESS, mac, 6);
    struct rtattr *li = nl_msg_nest_start(&m, IFLA_LINKINFO);
    nl_msg_put_string(&m, IFLA_INFO_KIND, peer ? "veth" : "dummy");
    if (peer) {
        struct rtattr *data = nl_msg_nest_start(&m, IFLA_INFO_DATA);
        struct rtattr *p = nl_msg_nest_start(&m, VETH_INFO_PEER);
        /* the peer's struct ifinfomsg, then its attributes */
        memset(m.buf + m.len, 0, NLMSG_ALIGN(sizeof(struct ifinfomsg)));
        m.len += NLMSG_ALIGN(sizeof(struct ifinfomsg));
        m.hdr.nlmsg_len = (uint32_t)m.len;
        nl_msg_put_string(&m, IFLA_IFNAME, peer);
        nl_msg_nest_end(&m, p);
        nl_msg_nest_end(&m, data);
    }
    nl_msg_nest_end(&m, li);
    return nl_request(&m, NULL);
}

static int
test_link_add(const char *name, const char *peer, const unsigned char mac[6])
{
    int r = link_add(name, NULL, mac);
    if (r == -EOPNOTSUPP || r == -ENOENT || r == -EINVAL)
        r = link_add(name, peer, mac);
    return r;
}

static const Types__Interface *
find_iface(const Grpc__Interfaces *l, const char *name)
{
    for (size_t i = 0; i < l->n_interfaces; i++)
        if (strcmp(l->interfaces[i]->name, name) == 0)
            return l->interfaces[i];
    return NULL;
}

static bool
has_addr(const Types__Interface *i, const char *addr, const char *mask)
{
    for (size_t k = 0; k < i->n_ipaddresses; k++)
        if (strcmp(i->ipaddresses[k]->address, addr) == 0 &&
            strcmp(i->ipaddresses[k]->mask, mask) == 0)
            return true;
    return false;
}

static const Types__Route *
find_route(const Grpc__Routes *l, const char *dest, const char *gw, const char *dev)
{
    for (size_t i = 0; i < l->n_routes; i++)
        if (strcmp(l->routes[i]->dest, dest) == 0 && strcmp(l->routes[i]->gateway, gw) == 0 &&
            strcmp(l->routes[i]->device, dev) == 0)
            return l->routes[i];
    return NULL;
}

#define FREE(x) protobuf_c_message_free_unpacked(&(x)->base, NULL)

static void
netns_child(void)
{
    static const unsigned char mac1[6] = {0x02, 0, 0, 0, 0, 0x01};
    static const unsigned char mac2[6] = {0x02, 0, 0, 0, 0, 0x02};
    _cleanup_error_ cc_error *e = NULL;

    if (unshare(CLONE_NEWNET) < 0)
        _exit(77);
    CHECK(test_link_add("cltest0", "clpeer0", mac1) == 0);

    /* UpdateInterface: by MAC (any case), renamed, mtu, two addresses, up */
    Types__IPAddress a0 = TYPES__IPADDRESS__INIT, a1 = TYPES__IPADDRESS__INIT;
    Types__IPAddress *addrs[] = {&a0, &a1};
    Types__Interface in = TYPES__INTERFACE__INIT;
    a0.address = "10.1.2.3";
    a0.mask = "24";
    a1.family = TYPES__IPFAMILY__v6;
    a1.address = "fd00::5";
    a1.mask = "64";
    in.hwaddr = "02:00:00:00:00:01";
    in.name = "eth0";
    in.device = "cltest0";
    in.mtu = 1400;
    in.ipaddresses = addrs;
    in.n_ipaddresses = 2;
    Types__Interface *out = NULL;
    CHECK_OK(agent_interface_update(&in, &out, &e), e);
    CHECK(strcmp(out->name, "eth0") == 0);
    CHECK(strcmp(out->hwaddr, "02:00:00:00:00:01") == 0);
    CHECK(strcmp(out->device, "cltest0") == 0);
    CHECK(out->mtu == 1400);
    CHECK(out->raw_flags & IFF_UP);
    CHECK(has_addr(out, "10.1.2.3", "24"));
    CHECK(has_addr(out, "fd00::5", "64"));
    FREE(out);

    /* again: the addresses are replaced */
    a0.address = "10.9.0.2";
    a0.mask = "16";
    in.hwaddr = "02:00:00:00:00:01";
    in.mtu = 1500;
    CHECK_OK(agent_interface_update(&in, &out, &e), e);
    CHECK(!has_addr(out, "10.1.2.3", "24"));
    CHECK(has_addr(out, "10.9.0.2", "16"));
    CHECK(out->mtu == 1500);
    FREE(out);

    /* not found; lo's all-zero MAC never matches; validation changes nothing */
    in.hwaddr = "02:00:00:00:00:99";
    CHECK(agent_interface_update(&in, &out, NULL) == -ENOENT);
    in.hwaddr = "00:00:00:00:00:00";
    CHECK(agent_interface_update(&in, &out, NULL) == -ENOENT);
    in.hwaddr = "02:00:00:00:00:01";
    in.mtu = 10;
    CHECK(agent_interface_update(&in, &out, NULL) == -EINVAL);
    in.mtu = 1500;

    /* ListInterfaces: lo and eth0 with its addresses */
    Grpc__Interfaces *ifs = NULL;
    CHECK_OK(agent_interfaces_list(&ifs, &e), e);
    CHECK(find_iface(ifs, "lo") != NULL);
    const Types__Interface *eth0 = find_iface(ifs, "eth0");
    CHECK(eth0 && has_addr(eth0, "10.9.0.2", "16") && has_addr(eth0, "fd00::5", "64"));
    CHECK(strcmp(eth0->hwaddr, "02:00:00:00:00:01") == 0 && eth0->mtu == 1500);
    FREE(ifs);

    /* UpdateRoutes: a link route, a default route (gateway after), an IPv6 route */
    Types__Route r0 = TYPES__ROUTE__INIT, r1 = TYPES__ROUTE__INIT, r2 = TYPES__ROUTE__INIT;
    Types__Route *rv[] = {&r1, &r0, &r2};
    r0.dest = "10.20.0.0/16";
    r0.device = "eth0";
    r0.scope = 253;
    r1.gateway = "10.9.0.1";
    r1.device = "eth0";
    r2.family = TYPES__IPFAMILY__v6;
    r2.dest = "fd01::/64";
    r2.device = "eth0";
    Grpc__Routes *routes = NULL;
    CHECK_OK(agent_routes_update(rv, 3, &routes, &e), e);
    const Types__Route *got = find_route(routes, "10.20.0.0/16", "", "eth0");
    CHECK(got && got->scope == 253 && got->family == TYPES__IPFAMILY__v4);
    CHECK(find_route(routes, "", "10.9.0.1", "eth0") != NULL);
    got = find_route(routes, "fd01::/64", "", "eth0");
    CHECK(got && got->family == TYPES__IPFAMILY__v6);
    CHECK(find_route(routes, "10.9.0.0/16", "", "eth0") != NULL); /* the kernel's */
    FREE(routes);

    /* replaced: only the new one and the kernel's remain */
    Types__Route r3 = TYPES__ROUTE__INIT;
    Types__Route *rv2[] = {&r3};
    r3.dest = "10.30.0.0/16";
    r3.device = "eth0";
    CHECK_OK(agent_routes_update(rv2, 1, &routes, &e), e);
    CHECK(find_route(routes, "10.30.0.0/16", "", "eth0") != NULL);
    CHECK(find_route(routes, "10.20.0.0/16", "", "eth0") == NULL);
    CHECK(find_route(routes, "", "10.9.0.1", "eth0") == NULL);
    CHECK(find_route(routes, "fd01::/64", "", "eth0") == NULL);
    CHECK(find_route(routes, "10.9.0.0/16", "", "eth0") != NULL);
    FREE(routes);

    /* an unknown device: NOT_FOUND and nothing deleted */
    r3.device = "nope0";
    CHECK(agent_routes_update(rv2, 1, &routes, NULL) == -ENOENT);
    CHECK_OK(agent_routes_list(&routes, &e), e);
    CHECK(find_route(routes, "10.30.0.0/16", "", "eth0") != NULL);
    FREE(routes);

    /* a name held by another link: the two swap names */
    CHECK(test_link_add("eth1", "clpeer1", mac2) == 0);
    in.hwaddr = "02:00:00:00:00:02";
    in.name = "eth0";
    in.n_ipaddresses = 0;
    CHECK_OK(agent_interface_update(&in, &out, &e), e);
    CHECK(strcmp(out->name, "eth0") == 0 && strcmp(out->hwaddr, "02:00:00:00:00:02") == 0);
    CHECK(out->n_ipaddresses == 0 || strncmp(out->ipaddresses[0]->address, "fe80:", 5) == 0);
    FREE(out);
    CHECK_OK(agent_interfaces_list(&ifs, &e), e);
    eth0 = find_iface(ifs, "eth1");
    CHECK(eth0 && strcmp(eth0->hwaddr, "02:00:00:00:00:01") == 0);
    FREE(ifs);
    _exit(0);
}

static void
test_netns(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        netns_child();
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77)
        skip();
    assert_int_equal(WEXITSTATUS(status), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interface_validate),
        cmocka_unit_test(test_routes_validate),
        cmocka_unit_test(test_netns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
