/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The networking RPCs (Kata's src/agent/src/netlink.rs semantics): UpdateInterface,
 * UpdateRoutes, ListInterfaces, ListRoutes, on rtnetlink (netlink.h). Each handler validates
 * the whole request first (agent_interface_validate, agent_routes_validate), then acts. The
 * loopback link is never changed: it is not found by MAC, may not be named, and its routes
 * are neither deleted nor added.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/if.h>
#include <linux/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "log.h"
#include "netlink.h"
#include "util.h"

/* --- validation ------------------------------------------------------------------------------ */

/* A link name: 1..IFNAMSIZ-1 of [A-Za-z0-9_.-], not "." or "..". */
static bool
ifname_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= IFNAMSIZ || cc_streq(s, ".") || cc_streq(s, ".."))
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == n;
}

/* "aa:bb:cc:dd:ee:ff" (either case) -> 6 bytes. */
static bool
mac_parse(const char *s, unsigned char mac[6])
{
    if (strlen(s) != 17)
        return false;
    for (int i = 0; i < 6; i++) {
        const char *p = s + 3 * i;
        if (i < 5 && p[2] != ':')
            return false;
        unsigned v = 0;
        for (int j = 0; j < 2; j++) {
            char c = p[j];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                v |= (unsigned)(c - 'A' + 10);
            else
                return false;
        }
        mac[i] = (unsigned char)v;
    }
    return true;
}

/* A decimal number 0..max without sign, spaces or leading zeros. */
static bool
prefix_parse(const char *s, unsigned max, unsigned *ret)
{
    size_t n = strlen(s);
    if (n == 0 || n > 3 || strspn(s, "0123456789") != n || (n > 1 && s[0] == '0'))
        return false;
    unsigned v = (unsigned)atoi(s);
    if (v > max)
        return false;
    *ret = v;
    return true;
}

static int
family_af(Types__IPFamily f)
{
    return f == TYPES__IPFAMILY__v4 ? AF_INET : f == TYPES__IPFAMILY__v6 ? AF_INET6 : -1;
}

static unsigned
af_bits(int af)
{
    return af == AF_INET ? 32 : 128;
}

/* "ADDR" (prefix: all bits) or "ADDR/PREFIX" of family af; refuses host bits set beyond the
 * prefix when net is true. */
static int
cidr_parse(const char *s, int af, bool net, unsigned char addr[16], unsigned *ret_prefix,
           bool *ret_has_prefix, const char *field, cc_error **err)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (strlen(s) >= sizeof(buf))
        return cc_error_msg(err, -EINVAL, "%s: too long", field);
    strcpy(buf, s);
    unsigned prefix = af_bits(af);
    char *slash = strchr(buf, '/');
    if (slash) {
        *slash = '\0';
        if (!prefix_parse(slash + 1, af_bits(af), &prefix))
            return cc_error_msg(err, -EINVAL, "%s: bad prefix length in '%s'", field, s);
    }
    memset(addr, 0, 16);
    if (inet_pton(af, buf, addr) != 1)
        return cc_error_msg(err, -EINVAL, "%s: '%s' is not an %s address", field, s,
                            af == AF_INET ? "IPv4" : "IPv6");
    if (net) {
        for (unsigned b = prefix; b < af_bits(af); b++)
            if (addr[b / 8] & (0x80 >> (b % 8)))
                return cc_error_msg(err, -EINVAL, "%s: '%s' has host bits set", field, s);
    }
    *ret_prefix = prefix;
    if (ret_has_prefix)
        *ret_has_prefix = slash != NULL;
    return 0;
}

int
agent_interface_validate(const Types__Interface *i, cc_error **err)
{
    unsigned char mac[6], addr[16];
    unsigned prefix;

    if (!i)
        return cc_error_msg(err, -EINVAL, "interface: missing");
    if (i->hwaddr[0] && !mac_parse(i->hwaddr, mac))
        return cc_error_msg(err, -EINVAL, "interface.hwAddr: '%s' is not a MAC address",
                            i->hwaddr);
    if (i->name[0] && !ifname_valid(i->name))
        return cc_error_msg(err, -EINVAL, "interface.name: '%s' is not a valid link name",
                            i->name);
    if (cc_streq(i->name, "lo"))
        return cc_error_msg(err, -EINVAL, "interface.name: the loopback link may not be changed");
    if (i->device[0] && !ifname_valid(i->device))
        return cc_error_msg(err, -EINVAL, "interface.device: '%s' is not a valid link name",
                            i->device);
    if (cc_streq(i->device, "lo"))
        return cc_error_msg(err, -EINVAL,
                            "interface.device: the loopback link may not be changed");
    if (!i->hwaddr[0] && !i->name[0] && !i->device[0])
        return cc_error_msg(err, -EINVAL, "interface: hwAddr, name and device are all empty");
    if (i->mtu < AGENT_MTU_MIN || i->mtu > AGENT_MTU_MAX)
        return cc_error_msg(err, -EINVAL, "interface.mtu: %" PRIu64 " not in %u..%u", i->mtu,
                            AGENT_MTU_MIN, AGENT_MTU_MAX);
    if (i->n_ipaddresses > AGENT_IP_ADDRESSES_MAX)
        return cc_error_msg(err, -EINVAL, "interface.IPAddresses: more than %u addresses",
                            AGENT_IP_ADDRESSES_MAX);
    for (size_t k = 0; k < i->n_ipaddresses; k++) {
        const Types__IPAddress *a = i->ipaddresses[k];
        char field[64];
        int af = family_af(a->family);
        if (af < 0)
            return cc_error_msg(err, -EINVAL, "interface.IPAddresses[%zu].family: unknown (%d)",
                                k, (int)a->family);
        snprintf(field, sizeof(field), "interface.IPAddresses[%zu].address", k);
        if (!a->address[0] || strchr(a->address, '/'))
            return cc_error_msg(err, -EINVAL, "%s: '%s' is not an address", field, a->address);
        int r = cidr_parse(a->address, af, false, addr, &prefix, NULL, field, err);
        if (r < 0)
            return r;
        if (!prefix_parse(a->mask, af_bits(af), &prefix))
            return cc_error_msg(err, -EINVAL,
                                "interface.IPAddresses[%zu].mask: '%s' is not a prefix length "
                                "0..%u",
                                k, a->mask, af_bits(af));
        for (size_t j = 0; j < k; j++)
            if (i->ipaddresses[j]->family == a->family &&
                cc_streq(i->ipaddresses[j]->address, a->address))
                return cc_error_msg(err, -EINVAL, "%s: '%s' repeats IPAddresses[%zu]", field,
                                    a->address, j);
    }
    return 0;
}

/* A route, parsed. */
typedef struct route_spec {
    int af;
    unsigned char dst[16], gw[16], src[16];
    unsigned dst_len, src_len;
    bool has_gw, has_src, src_is_prefix;
} route_spec;

static int
route_parse(const Types__Route *rt, size_t k, route_spec *ret, cc_error **err)
{
    route_spec s = {0};
    char field[64];
    int r;

    s.af = family_af(rt->family);
    if (s.af < 0)
        return cc_error_msg(err, -EINVAL, "routes.Routes[%zu].family: unknown (%d)", k,
                            (int)rt->family);
    snprintf(field, sizeof(field), "routes.Routes[%zu].dest", k);
    if (!rt->dest[0] || cc_streq(rt->dest, "default")) {
        s.dst_len = 0;
    } else {
        r = cidr_parse(rt->dest, s.af, true, s.dst, &s.dst_len, NULL, field, err);
        if (r < 0)
            return r;
    }
    if (rt->gateway[0]) {
        unsigned plen;
        snprintf(field, sizeof(field), "routes.Routes[%zu].gateway", k);
        if (strchr(rt->gateway, '/'))
            return cc_error_msg(err, -EINVAL, "%s: '%s' is not an address", field, rt->gateway);
        r = cidr_parse(rt->gateway, s.af, false, s.gw, &plen, NULL, field, err);
        if (r < 0)
            return r;
        s.has_gw = true;
    }
    if (rt->source[0]) {
        bool has_prefix;
        snprintf(field, sizeof(field), "routes.Routes[%zu].source", k);
        r = cidr_parse(rt->source, s.af, false, s.src, &s.src_len, &has_prefix, field, err);
        if (r < 0)
            return r;
        s.has_src = true;
        /* "ADDR" or "ADDR/0": the preferred source; "ADDR/N": a source prefix (Kata) */
        s.src_is_prefix = has_prefix && s.src_len > 0;
    }
    snprintf(field, sizeof(field), "routes.Routes[%zu].device", k);
    if (!ifname_valid(rt->device))
        return cc_error_msg(err, -EINVAL, "%s: '%s' is not a valid link name", field,
                            rt->device);
    if (cc_streq(rt->device, "lo"))
        return cc_error_msg(err, -EINVAL, "%s: routes of the loopback link may not be changed",
                            field);
    if (rt->scope > 255)
        return cc_error_msg(err, -EINVAL, "routes.Routes[%zu].scope: %u above 255", k,
                            rt->scope);
    if (rt->mtu > AGENT_MTU_MAX)
        return cc_error_msg(err, -EINVAL, "routes.Routes[%zu].mtu: %u above %u", k, rt->mtu,
                            AGENT_MTU_MAX);
    *ret = s;
    return 0;
}

int
agent_routes_validate(Types__Route *const *routes, size_t n, cc_error **err)
{
    if (n > AGENT_ROUTES_MAX)
        return cc_error_msg(err, -EINVAL, "routes.Routes: more than %u routes", AGENT_ROUTES_MAX);
    for (size_t k = 0; k < n; k++) {
        route_spec s;
        int r = route_parse(routes[k], k, &s, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* --- reading the kernel's state ---------------------------------------------------------- */

typedef struct net_link {
    int index;
    unsigned flags;
    char name[IFNAMSIZ];
    unsigned char mac[32];
    size_t mac_len;
    uint32_t mtu;
} net_link;

typedef struct net_addr {
    int family;
    int index;
    unsigned prefix;
    unsigned char local[16], address[16];
    bool has_local, has_address;
} net_addr;

typedef struct net_route {
    struct rtmsg rtm;
    uint32_t table, oif, priority, mtu;
    unsigned char dst[16], src[16], gw[16], prefsrc[16];
    bool has_dst, has_src, has_gw, has_prefsrc, has_oif, has_priority;
} net_route;

/* A growable array of one of the above. */
typedef struct net_list {
    void *v;
    size_t n, size;
} net_list;

static void *
net_list_add(net_list *l)
{
    l->v = cc_xreallocarray(l->v, l->n + 1, l->size);
    void *e = (unsigned char *)l->v + l->n * l->size;
    memset(e, 0, l->size);
    l->n++;
    return e;
}

static void
net_list_done(net_list *l)
{
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void
attr_copy(unsigned char *dst, size_t max, const struct rtattr *rta, bool *ret_has)
{
    if (!rta)
        return;
    size_t n = RTA_PAYLOAD(rta);
    if (n == 0 || n > max)
        return;
    memcpy(dst, RTA_DATA(rta), n);
    *ret_has = true;
}

static uint32_t
attr_u32(const struct rtattr *rta)
{
    uint32_t v = 0;
    if (rta && RTA_PAYLOAD(rta) >= sizeof(v))
        memcpy(&v, RTA_DATA(rta), sizeof(v));
    return v;
}

static int
link_cb(const struct nlmsghdr *h, void *userdata, cc_error **err)
{
    const struct rtattr *tb[IFLA_MAX + 1];
    (void)err;
    if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
        return 0;
    const struct ifinfomsg *ifi = NLMSG_DATA(h);
    nl_attrs_parse(tb, IFLA_MAX, IFLA_RTA(ifi), h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi)));
    net_link *l = net_list_add(userdata);
    l->index = ifi->ifi_index;
    l->flags = ifi->ifi_flags;
    if (tb[IFLA_IFNAME])
        snprintf(l->name, sizeof(l->name), "%.*s", (int)strnlen(RTA_DATA(tb[IFLA_IFNAME]),
                                                              RTA_PAYLOAD(tb[IFLA_IFNAME])),
                 (const char *)RTA_DATA(tb[IFLA_IFNAME]));
    bool has_mac = false;
    attr_copy(l->mac, sizeof(l->mac), tb[IFLA_ADDRESS], &has_mac);
    l->mac_len = has_mac ? RTA_PAYLOAD(tb[IFLA_ADDRESS]) : 0;
    l->mtu = attr_u32(tb[IFLA_MTU]);
    return 0;
}

static int
addr_cb(const struct nlmsghdr *h, void *userdata, cc_error **err)
{
    const struct rtattr *tb[IFA_MAX + 1];
    (void)err;
    if (h->nlmsg_type != RTM_NEWADDR || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifaddrmsg)))
        return 0;
    const struct ifaddrmsg *ifa = NLMSG_DATA(h);
    if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)
        return 0;
    nl_attrs_parse(tb, IFA_MAX, IFA_RTA(ifa), h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifa)));
    net_addr *a = net_list_add(userdata);
    a->family = ifa->ifa_family;
    a->index = (int)ifa->ifa_index;
    a->prefix = ifa->ifa_prefixlen;
    attr_copy(a->local, 16, tb[IFA_LOCAL], &a->has_local);
    attr_copy(a->address, 16, tb[IFA_ADDRESS], &a->has_address);
    return 0;
}

static int
route_cb(const struct nlmsghdr *h, void *userdata, cc_error **err)
{
    const struct rtattr *tb[RTA_MAX + 1];
    (void)err;
    if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg)))
        return 0;
    const struct rtmsg *rtm = NLMSG_DATA(h);
    if (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6)
        return 0;
    nl_attrs_parse(tb, RTA_MAX, RTM_RTA(rtm), h->nlmsg_len - NLMSG_LENGTH(sizeof(*rtm)));
    uint32_t table = tb[RTA_TABLE] ? attr_u32(tb[RTA_TABLE]) : rtm->rtm_table;
    if (table != RT_TABLE_MAIN)
        return 0;
    net_route *r = net_list_add(userdata);
    r->rtm = *rtm;
    r->table = table;
    attr_copy(r->dst, 16, tb[RTA_DST], &r->has_dst);
    attr_copy(r->src, 16, tb[RTA_SRC], &r->has_src);
    attr_copy(r->gw, 16, tb[RTA_GATEWAY], &r->has_gw);
    attr_copy(r->prefsrc, 16, tb[RTA_PREFSRC], &r->has_prefsrc);
    r->has_oif = tb[RTA_OIF] != NULL;
    r->oif = attr_u32(tb[RTA_OIF]);
    r->has_priority = tb[RTA_PRIORITY] != NULL;
    r->priority = attr_u32(tb[RTA_PRIORITY]);
    if (tb[RTA_METRICS]) {
        const struct rtattr *mx[RTAX_MAX + 1];
        nl_attrs_parse(mx, RTAX_MAX, RTA_DATA(tb[RTA_METRICS]), RTA_PAYLOAD(tb[RTA_METRICS]));
        r->mtu = attr_u32(mx[RTAX_MTU]);
    }
    return 0;
}

static int
dump(int fd, uint16_t type, size_t hdr_len, int family, nl_dump_fn fn, net_list *l,
     cc_error **err)
{
    nl_msg m;
    /* the family is the first byte of ifinfomsg, ifaddrmsg and rtmsg alike */
    unsigned char *hdr = nl_msg_init(&m, type, 0, hdr_len);
    hdr[0] = (unsigned char)family;
    return nl_dump(fd, &m, fn, l, err);
}

static int
links_get(int fd, net_list *links, cc_error **err)
{
    links->size = sizeof(net_link);
    int r = dump(fd, RTM_GETLINK, sizeof(struct ifinfomsg), AF_UNSPEC, link_cb, links, err);
    return r < 0 ? cc_error_prefix(err, r, "list links") : 0;
}

static int
addrs_get(int fd, net_list *addrs, cc_error **err)
{
    addrs->size = sizeof(net_addr);
    int r = dump(fd, RTM_GETADDR, sizeof(struct ifaddrmsg), AF_UNSPEC, addr_cb, addrs, err);
    return r < 0 ? cc_error_prefix(err, r, "list addresses") : 0;
}

static int
routes_get(int fd, net_list *routes, cc_error **err)
{
    routes->size = sizeof(net_route);
    /* one family at a time, IPv4 first, as Kata */
    int r = dump(fd, RTM_GETROUTE, sizeof(struct rtmsg), AF_INET, route_cb, routes, err);
    if (r >= 0)
        r = dump(fd, RTM_GETROUTE, sizeof(struct rtmsg), AF_INET6, route_cb, routes, err);
    return r < 0 ? cc_error_prefix(err, r, "list routes") : 0;
}

static const net_link *
link_by_index(const net_list *links, int index)
{
    const net_link *v = links->v;
    for (size_t i = 0; i < links->n; i++)
        if (v[i].index == index)
            return &v[i];
    return NULL;
}

static const net_link *
link_by_name(const net_list *links, const char *name)
{
    const net_link *v = links->v;
    for (size_t i = 0; i < links->n; i++)
        if (cc_streq(v[i].name, name))
            return &v[i];
    return NULL;
}

/* --- building answers ---------------------------------------------------------------------- */

static const char *
addr_fmt(int af, const unsigned char *a, char buf[static INET6_ADDRSTRLEN])
{
    if (!inet_ntop(af, a, buf, INET6_ADDRSTRLEN))
        return "";
    return buf;
}

static char *
addr_string(int af, const unsigned char *a)
{
    char buf[INET6_ADDRSTRLEN];
    return cc_xstrdup(addr_fmt(af, a, buf));
}

static char *
mac_string(const net_link *l)
{
    /* Kata formats only 6-byte link addresses; lower case, as the runtime's Go code */
    if (l->mac_len != 6)
        return cc_xstrdup("");
    return cc_xasprintf("%02x:%02x:%02x:%02x:%02x:%02x", l->mac[0], l->mac[1], l->mac[2],
                        l->mac[3], l->mac[4], l->mac[5]);
}

/* Every string field malloc'ed, so protobuf_c_message_free_unpacked() frees the result. */
static Types__Interface *
interface_build(const net_link *l, const net_list *addrs)
{
    Types__Interface *i = cc_xmalloc(sizeof(*i));
    types__interface__init(i);
    i->device = cc_xstrdup("");
    i->name = cc_xstrdup(l->name);
    i->hwaddr = mac_string(l);
    i->devicepath = cc_xstrdup("");
    i->type = cc_xstrdup("");
    i->mtu = l->mtu;
    i->raw_flags = l->flags;
    const net_addr *av = addrs->v;
    for (size_t k = 0; k < addrs->n; k++) {
        const net_addr *a = &av[k];
        if (a->index != l->index || !(a->has_local || a->has_address))
            continue;
        Types__IPAddress *ip = cc_xmalloc(sizeof(*ip));
        types__ipaddress__init(ip);
        ip->family = a->family == AF_INET ? TYPES__IPFAMILY__v4 : TYPES__IPFAMILY__v6;
        ip->address = addr_string(a->family, a->has_local ? a->local : a->address);
        ip->mask = cc_xasprintf("%u", a->prefix);
        i->ipaddresses = cc_xreallocarray(i->ipaddresses, i->n_ipaddresses + 1, sizeof(ip));
        i->ipaddresses[i->n_ipaddresses++] = ip;
    }
    return i;
}

static Types__Route *
route_build(const net_route *nr, const net_list *links)
{
    int af = nr->rtm.rtm_family;
    char buf[INET6_ADDRSTRLEN];
    Types__Route *r = cc_xmalloc(sizeof(*r));
    types__route__init(r);
    /* "" for a default route (what the runtime sends), else "NET/LEN" */
    if (nr->rtm.rtm_dst_len > 0)
        r->dest = cc_xasprintf("%s/%u", addr_fmt(af, nr->dst, buf), nr->rtm.rtm_dst_len);
    else
        r->dest = cc_xstrdup("");
    r->gateway = nr->has_gw ? addr_string(af, nr->gw) : cc_xstrdup("");
    const net_link *l = nr->has_oif ? link_by_index(links, (int)nr->oif) : NULL;
    r->device = cc_xstrdup(l ? l->name : "");
    if (nr->has_src && nr->rtm.rtm_src_len > 0)
        r->source = cc_xasprintf("%s/%u", addr_fmt(af, nr->src, buf), nr->rtm.rtm_src_len);
    else if (nr->has_prefsrc)
        r->source = addr_string(af, nr->prefsrc);
    else
        r->source = cc_xstrdup("");
    r->scope = nr->rtm.rtm_scope;
    r->family = af == AF_INET ? TYPES__IPFAMILY__v4 : TYPES__IPFAMILY__v6;
    r->flags = nr->rtm.rtm_flags;
    r->mtu = nr->mtu;
    return r;
}

static void
links_addrs_free(net_list *links, net_list *addrs)
{
    net_list_done(links);
    net_list_done(addrs);
}

int
agent_interfaces_list(Grpc__Interfaces **ret, cc_error **err)
{
    net_list links = {0}, addrs = {0};
    _cleanup_close_ int fd = nl_open(err);
    if (fd < 0)
        return fd;
    int r = links_get(fd, &links, err);
    if (r >= 0)
        r = addrs_get(fd, &addrs, err);
    if (r < 0) {
        links_addrs_free(&links, &addrs);
        return r;
    }
    Grpc__Interfaces *out = cc_xmalloc(sizeof(*out));
    grpc__interfaces__init(out);
    out->interfaces = cc_xreallocarray(NULL, links.n ? links.n : 1, sizeof(*out->interfaces));
    const net_link *lv = links.v;
    for (size_t i = 0; i < links.n; i++)
        out->interfaces[out->n_interfaces++] = interface_build(&lv[i], &addrs);
    links_addrs_free(&links, &addrs);
    *ret = out;
    return 0;
}

static int
routes_list_fd(int fd, Grpc__Routes **ret, cc_error **err)
{
    net_list links = {0}, routes = {0};
    int r = links_get(fd, &links, err);
    if (r >= 0)
        r = routes_get(fd, &routes, err);
    if (r < 0) {
        links_addrs_free(&links, &routes);
        return r;
    }
    Grpc__Routes *out = cc_xmalloc(sizeof(*out));
    grpc__routes__init(out);
    out->routes = cc_xreallocarray(NULL, routes.n ? routes.n : 1, sizeof(*out->routes));
    const net_route *rv = routes.v;
    for (size_t i = 0; i < routes.n; i++)
        out->routes[out->n_routes++] = route_build(&rv[i], &links);
    links_addrs_free(&links, &routes);
    *ret = out;
    return 0;
}

int
agent_routes_list(Grpc__Routes **ret, cc_error **err)
{
    _cleanup_close_ int fd = nl_open(err);
    if (fd < 0)
        return fd;
    return routes_list_fd(fd, ret, err);
}

/* --- changing the kernel's state ------------------------------------------------------------ */

/* ip link set: flags under change, and name / mtu when given (NULL / 0: unchanged). */
static int
link_set(int fd, const net_link *l, unsigned flags, unsigned change, const char *name,
         uint32_t mtu, cc_error **err)
{
    nl_msg m;
    struct ifinfomsg *ifi = nl_msg_init(&m, RTM_NEWLINK, 0, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = l->index;
    ifi->ifi_flags = flags;
    ifi->ifi_change = change;
    if (name)
        nl_msg_put_string(&m, IFLA_IFNAME, name);
    if (mtu)
        nl_msg_put_u32(&m, IFLA_MTU, mtu);
    int r = nl_transact(fd, &m, err);
    if (r < 0)
        return cc_error_prefix(err, r, "set link '%s'", l->name);
    return 0;
}

static int
addr_del(int fd, const net_addr *a, const char *ifname, cc_error **err)
{
    char buf[INET6_ADDRSTRLEN];
    nl_msg m;
    struct ifaddrmsg *ifa = nl_msg_init(&m, RTM_DELADDR, 0, sizeof(*ifa));
    size_t alen = a->family == AF_INET ? 4 : 16;
    ifa->ifa_family = (unsigned char)a->family;
    ifa->ifa_prefixlen = (unsigned char)a->prefix;
    ifa->ifa_index = (unsigned)a->index;
    if (a->has_local)
        nl_msg_put_attr(&m, IFA_LOCAL, a->local, alen);
    if (a->has_address)
        nl_msg_put_attr(&m, IFA_ADDRESS, a->address, alen);
    int r = nl_transact(fd, &m, err);
    if (r == -EADDRNOTAVAIL) /* gone already (an IPv6 address goes with the last IPv4 one) */
        return 0;
    if (r < 0)
        return cc_error_prefix(err, r, "delete address %s/%u of '%s'",
                               addr_fmt(a->family, a->has_local ? a->local : a->address, buf),
                               a->prefix, ifname);
    return 0;
}

static int
addr_add(int fd, const net_link *l, int af, const unsigned char *a, unsigned prefix,
         cc_error **err)
{
    char buf[INET6_ADDRSTRLEN];
    nl_msg m;
    struct ifaddrmsg *ifa = nl_msg_init(&m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof(*ifa));
    size_t alen = af == AF_INET ? 4 : 16;
    ifa->ifa_family = (unsigned char)af;
    ifa->ifa_prefixlen = (unsigned char)prefix;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = (unsigned)l->index;
    nl_msg_put_attr(&m, IFA_LOCAL, a, alen);
    nl_msg_put_attr(&m, IFA_ADDRESS, a, alen);
    if (af == AF_INET && prefix < 31) {
        uint32_t v, mask = prefix ? htonl(~(uint32_t)0 << (32 - prefix)) : 0;
        memcpy(&v, a, 4);
        v |= ~mask;
        nl_msg_put_attr(&m, IFA_BROADCAST, &v, 4);
    }
    int r = nl_transact(fd, &m, err);
    if (r < 0)
        return cc_error_prefix(err, r, "add address %s/%u to '%s'", addr_fmt(af, a, buf), prefix,
                               l->name);
    return 0;
}

/* The link an UpdateInterface names: by MAC, else by device or name. Never the loopback. */
static int
interface_find(const net_list *links, const Types__Interface *iface, net_link *ret,
               cc_error **err)
{
    const net_link *lv = links->v, *l = NULL;
    if (iface->hwaddr[0]) {
        unsigned char mac[6];
        if (!mac_parse(iface->hwaddr, mac))
            return cc_error_msg(err, -EINVAL, "interface.hwAddr: '%s' is not a MAC address",
                                iface->hwaddr);
        for (size_t i = 0; i < links->n && !l; i++)
            if (!(lv[i].flags & IFF_LOOPBACK) && lv[i].mac_len == 6 &&
                memcmp(lv[i].mac, mac, 6) == 0)
                l = &lv[i];
        if (!l)
            return cc_error_msg(err, -ENOENT, "interface.hwAddr: no link with address '%s'",
                                iface->hwaddr);
    } else {
        const char *name = iface->device[0] ? iface->device : iface->name;
        l = link_by_name(links, name);
        if (!l)
            return cc_error_msg(err, -ENOENT, "interface.%s: no link '%s'",
                                iface->device[0] ? "device" : "name", name);
        if (l->flags & IFF_LOOPBACK)
            return cc_error_msg(err, -EINVAL, "interface: '%s' is the loopback link", name);
    }
    *ret = *l;
    return 0;
}

static int
interface_apply(int fd, const Types__Interface *iface, const net_list *links, const net_link *l,
                cc_error **err)
{
    net_list addrs = {0};
    int r;

    const char *new_name = iface->name[0] && !cc_streq(iface->name, l->name) ? iface->name : NULL;
    const net_link *other = new_name ? link_by_name(links, new_name) : NULL;
    if (other && (other->flags & IFF_LOOPBACK))
        return cc_error_msg(err, -EINVAL, "interface.name: '%s' is the loopback link", new_name);

    /* down, as Kata: the name can only change while it is down */
    if (l->flags & IFF_UP) {
        r = link_set(fd, l, 0, IFF_UP, NULL, 0, err);
        if (r < 0)
            return r;
    }
    r = addrs_get(fd, &addrs, err);
    const net_addr *av = addrs.v;
    for (size_t k = 0; r >= 0 && k < addrs.n; k++)
        if (av[k].index == l->index)
            r = addr_del(fd, &av[k], l->name, err);
    net_list_done(&addrs);
    if (r < 0)
        return r;
    for (size_t k = 0; k < iface->n_ipaddresses; k++) {
        const Types__IPAddress *a = iface->ipaddresses[k];
        int af = family_af(a->family);
        unsigned char addr[16] = {0};
        unsigned prefix;
        if (inet_pton(af, a->address, addr) != 1 || !prefix_parse(a->mask, af_bits(af), &prefix))
            return cc_error_msg(err, -EINVAL, "interface.IPAddresses[%zu]: invalid", k);
        r = addr_add(fd, l, af, addr, prefix, err);
        if (r < 0)
            return r;
    }
    /* Another link holds the name: it gets a temporary one, then ours (a swap, as Kata). */
    char tmp[IFNAMSIZ];
    snprintf(tmp, sizeof(tmp), "cloak%d", other ? other->index : 0);
    if (other) {
        r = link_set(fd, other, 0, IFF_UP, tmp, 0, err);
        if (r < 0)
            return r;
    }
    r = link_set(fd, l, IFF_UP | (iface->raw_flags & IFF_NOARP), IFF_UP | IFF_NOARP, new_name,
                 (uint32_t)iface->mtu, err);
    if (r < 0)
        return r;
    if (other) {
        net_link renamed = *other;
        snprintf(renamed.name, sizeof(renamed.name), "%s", tmp);
        r = link_set(fd, &renamed, other->flags & IFF_UP, IFF_UP, l->name, 0, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int
agent_interface_update(const Types__Interface *iface, Types__Interface **ret, cc_error **err)
{
    net_list links = {0}, addrs = {0};
    net_link l = {0};
    int r;

    r = agent_interface_validate(iface, err);
    if (r < 0)
        return r;
    _cleanup_close_ int fd = nl_open(err);
    if (fd < 0)
        return fd;
    r = links_get(fd, &links, err);
    if (r >= 0)
        r = interface_find(&links, iface, &l, err);
    if (r >= 0)
        r = interface_apply(fd, iface, &links, &l, err);
    net_list_done(&links);
    if (r < 0 && l.index > 0)
        return cc_error_prefix(err, r, "update interface '%s'", l.name);
    if (r < 0)
        return r;

    /* the answer: the link as it is now */
    r = links_get(fd, &links, err);
    if (r >= 0)
        r = addrs_get(fd, &addrs, err);
    const net_link *now = r >= 0 ? link_by_index(&links, l.index) : NULL;
    if (r >= 0 && !now)
        r = cc_error_msg(err, -ENOENT, "link %d vanished", l.index);
    if (r < 0) {
        links_addrs_free(&links, &addrs);
        return r;
    }
    Types__Interface *out = interface_build(now, &addrs);
    links_addrs_free(&links, &addrs);
    /* what names the device on the host side is echoed */
    free(out->device);
    out->device = cc_xstrdup(iface->device);
    free(out->devicepath);
    out->devicepath = cc_xstrdup(iface->devicepath);
    free(out->type);
    out->type = cc_xstrdup(iface->type);
    *ret = out;
    return 0;
}

static int
route_del(int fd, const net_route *nr, const char *ifname, cc_error **err)
{
    char buf[INET6_ADDRSTRLEN];
    int af = nr->rtm.rtm_family;
    size_t alen = af == AF_INET ? 4 : 16;
    nl_msg m;
    struct rtmsg *rtm = nl_msg_init(&m, RTM_DELROUTE, 0, sizeof(*rtm));
    *rtm = nr->rtm;
    rtm->rtm_flags = 0;
    nl_msg_put_u32(&m, RTA_TABLE, nr->table);
    if (nr->has_dst)
        nl_msg_put_attr(&m, RTA_DST, nr->dst, alen);
    if (nr->has_src)
        nl_msg_put_attr(&m, RTA_SRC, nr->src, alen);
    if (nr->has_gw)
        nl_msg_put_attr(&m, RTA_GATEWAY, nr->gw, alen);
    if (nr->has_priority)
        nl_msg_put_u32(&m, RTA_PRIORITY, nr->priority);
    nl_msg_put_u32(&m, RTA_OIF, nr->oif);
    int r = nl_transact(fd, &m, err);
    if (r == -ESRCH || r == -ENOENT) /* gone with an earlier one */
        return 0;
    if (r < 0)
        return cc_error_prefix(err, r, "delete route %s/%u dev '%s'",
                               nr->has_dst ? addr_fmt(af, nr->dst, buf) : "default",
                               nr->rtm.rtm_dst_len, ifname);
    return 0;
}

static int
route_add(int fd, const Types__Route *rt, const route_spec *s, int ifindex, cc_error **err)
{
    size_t alen = s->af == AF_INET ? 4 : 16;
    nl_msg m;
    struct rtmsg *rtm = nl_msg_init(&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof(*rtm));
    rtm->rtm_family = (unsigned char)s->af;
    rtm->rtm_dst_len = (unsigned char)s->dst_len;
    rtm->rtm_table = RT_TABLE_MAIN;
    rtm->rtm_protocol = RTPROT_BOOT;
    rtm->rtm_scope = (unsigned char)rt->scope;
    rtm->rtm_type = RTN_UNICAST;
    rtm->rtm_flags = rt->flags & RTNH_F_ONLINK;
    if (s->dst_len > 0)
        nl_msg_put_attr(&m, RTA_DST, s->dst, alen);
    nl_msg_put_u32(&m, RTA_OIF, (uint32_t)ifindex);
    if (s->has_src && s->src_is_prefix) {
        rtm->rtm_src_len = (unsigned char)s->src_len;
        nl_msg_put_attr(&m, RTA_SRC, s->src, alen);
    } else if (s->has_src) {
        nl_msg_put_attr(&m, RTA_PREFSRC, s->src, alen);
    }
    if (s->has_gw)
        nl_msg_put_attr(&m, RTA_GATEWAY, s->gw, alen);
    if (rt->mtu) {
        struct rtattr *mx = nl_msg_nest_start(&m, RTA_METRICS);
        nl_msg_put_u32(&m, RTAX_MTU, rt->mtu);
        nl_msg_nest_end(&m, mx);
    }
    int r = nl_transact(fd, &m, err);
    if (r == -EEXIST) /* as Kata */
        return 0;
    if (r < 0)
        return cc_error_prefix(err, r, "add route dest '%s' gateway '%s' dev '%s'",
                               rt->dest[0] ? rt->dest : "default", rt->gateway, rt->device);
    return 0;
}

static int
routes_apply(int fd, Types__Route *const *routes, size_t n, const net_list *links,
             const int *ifindex, cc_error **err)
{
    net_list old = {0};
    int r = routes_get(fd, &old, err);
    if (r < 0)
        return r;
    /* Kata: every main-table route with a device that the kernel did not make, except lo's */
    const net_route *ov = old.v;
    for (size_t k = 0; k < old.n && r >= 0; k++) {
        const net_link *l = ov[k].has_oif ? link_by_index(links, (int)ov[k].oif) : NULL;
        if (ov[k].rtm.rtm_protocol == RTPROT_KERNEL || !l || (l->flags & IFF_LOOPBACK))
            continue;
        r = route_del(fd, &ov[k], l->name, err);
    }
    net_list_done(&old);
    if (r < 0)
        return r;
    /* routes without a gateway first: they make the gateways reachable */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < n; k++) {
            route_spec s;
            if ((routes[k]->gateway[0] != '\0') != (pass == 1))
                continue;
            r = route_parse(routes[k], k, &s, err);
            if (r >= 0)
                r = route_add(fd, routes[k], &s, ifindex[k], err);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

int
agent_routes_update(Types__Route *const *routes, size_t n, Grpc__Routes **ret, cc_error **err)
{
    net_list links = {0};
    int r = agent_routes_validate(routes, n, err);
    if (r < 0)
        return r;
    _cleanup_close_ int fd = nl_open(err);
    if (fd < 0)
        return fd;
    r = links_get(fd, &links, err);
    if (r < 0)
        return r;
    /* every device must exist before anything is deleted */
    _cleanup_free_ int *ifindex = cc_xreallocarray(NULL, n ? n : 1, sizeof(int));
    for (size_t k = 0; k < n && r >= 0; k++) {
        const net_link *l = link_by_name(&links, routes[k]->device);
        if (!l)
            r = cc_error_msg(err, -ENOENT, "routes.Routes[%zu].device: no link '%s'", k,
                             routes[k]->device);
        else if (l->flags & IFF_LOOPBACK)
            r = cc_error_msg(err, -EINVAL, "routes.Routes[%zu].device: '%s' is the loopback link",
                             k, routes[k]->device);
        else
            ifindex[k] = l->index;
    }
    if (r >= 0)
        r = routes_apply(fd, routes, n, &links, ifindex, err);
    net_list_done(&links);
    if (r < 0)
        return cc_error_prefix(err, r, "update routes");
    return routes_list_fd(fd, ret, err);
}

/* --- handlers ---------------------------------------------------------------------------------- */



static void
reply_free(cc_ttrpc_call *call, ProtobufCMessage *m)
{
    cc_ttrpc_call_reply(call, m);
    protobuf_c_message_free_unpacked(m, NULL);
}

AGENT_HANDLER(agent_rpc_update_interface)
{
    _cleanup_msg_ Grpc__UpdateInterfaceRequest *req =
        UNPACK(Grpc__UpdateInterfaceRequest, grpc__update_interface_request__descriptor);
    _cleanup_error_ cc_error *e = NULL;
    Types__Interface *out = NULL;
    (void)userdata;
    if (!req)
        return;
    if (agent_interface_update(req->interface, &out, &e) < 0) {
        agent_rpc_fail(call, "UpdateInterface", e);
        return;
    }
    cc_log(CC_LOG_INFO, "UpdateInterface: '%s' mtu %" PRIu64 ", %zu addresses", out->name,
           out->mtu, out->n_ipaddresses);
    reply_free(call, &out->base);
}

AGENT_HANDLER(agent_rpc_update_routes)
{
    _cleanup_msg_ Grpc__UpdateRoutesRequest *req =
        UNPACK(Grpc__UpdateRoutesRequest, grpc__update_routes_request__descriptor);
    _cleanup_error_ cc_error *e = NULL;
    Grpc__Routes *out = NULL;
    (void)userdata;
    if (!req)
        return;
    if (!req->routes) {
        cc_ttrpc_call_fail(call, CC_TTRPC_INVALID_ARGUMENT, "routes: missing");
        return;
    }
    if (agent_routes_update(req->routes->routes, req->routes->n_routes, &out, &e) < 0) {
        agent_rpc_fail(call, "UpdateRoutes", e);
        return;
    }
    cc_log(CC_LOG_INFO, "UpdateRoutes: %zu routes", req->routes->n_routes);
    reply_free(call, &out->base);
}

AGENT_HANDLER(agent_rpc_list_interfaces)
{
    _cleanup_msg_ Grpc__ListInterfacesRequest *req =
        UNPACK(Grpc__ListInterfacesRequest, grpc__list_interfaces_request__descriptor);
    _cleanup_error_ cc_error *e = NULL;
    Grpc__Interfaces *out = NULL;
    (void)userdata;
    if (!req)
        return;
    if (agent_interfaces_list(&out, &e) < 0) {
        agent_rpc_fail(call, "ListInterfaces", e);
        return;
    }
    reply_free(call, &out->base);
}

AGENT_HANDLER(agent_rpc_list_routes)
{
    _cleanup_msg_ Grpc__ListRoutesRequest *req =
        UNPACK(Grpc__ListRoutesRequest, grpc__list_routes_request__descriptor);
    _cleanup_error_ cc_error *e = NULL;
    Grpc__Routes *out = NULL;
    (void)userdata;
    if (!req)
        return;
    if (agent_routes_list(&out, &e) < 0) {
        agent_rpc_fail(call, "ListRoutes", e);
        return;
    }
    reply_free(call, &out->base);
}
