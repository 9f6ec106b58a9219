/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "netlink.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

void *
nl_msg_init(nl_msg *m, uint16_t type, uint16_t flags, size_t hdr_len)
{
    memset(m, 0, sizeof(*m));
    m->len = NLMSG_SPACE(hdr_len);
    m->hdr.nlmsg_len = (uint32_t)NLMSG_LENGTH(hdr_len);
    m->hdr.nlmsg_type = type;
    m->hdr.nlmsg_flags = flags | NLM_F_REQUEST | NLM_F_ACK;
    return NLMSG_DATA(&m->hdr);
}

int
nl_msg_put_attr(nl_msg *m, uint16_t type, const void *data, size_t len)
{
    size_t need = RTA_SPACE(len);
    if (m->overflow || len > UINT16_MAX - RTA_LENGTH(0) ||
        NLMSG_ALIGN(m->len) + need > NL_MSG_MAX) {
        m->overflow = true;
        return -ENOBUFS;
    }
    struct rtattr *rta = (struct rtattr *)(m->buf + NLMSG_ALIGN(m->len));
    rta->rta_type = type;
    rta->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len)
        memcpy(RTA_DATA(rta), data, len);
    memset((unsigned char *)RTA_DATA(rta) + len, 0, need - RTA_LENGTH(len));
    m->len = NLMSG_ALIGN(m->len) + need;
    m->hdr.nlmsg_len = (uint32_t)m->len;
    return 0;
}

int
nl_msg_put_u32(nl_msg *m, uint16_t type, uint32_t v)
{
    return nl_msg_put_attr(m, type, &v, sizeof(v));
}

int
nl_msg_put_string(nl_msg *m, uint16_t type, const char *s)
{
    return nl_msg_put_attr(m, type, s, strlen(s) + 1);
}

struct rtattr *
nl_msg_nest_start(nl_msg *m, uint16_t type)
{
    size_t off = NLMSG_ALIGN(m->len);
    if (nl_msg_put_attr(m, type, NULL, 0) < 0)
        return NULL;
    return (struct rtattr *)(m->buf + off);
}

void
nl_msg_nest_end(nl_msg *m, struct rtattr *nest)
{
    if (!nest)
        return;
    nest->rta_len = (unsigned short)(m->buf + m->len - (unsigned char *)nest);
}

int
nl_open(cc_error **err)
{
    _cleanup_close_ int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return cc_error_set(err, cc_negerrno(), "netlink socket");
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return cc_error_set(err, cc_negerrno(), "netlink bind");
    int one = 1;
    /* Best effort: older kernels lack them, and the acks are still checked without. */
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
    (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    struct timeval tv = {.tv_sec = NL_TIMEOUT_SEC};
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        return cc_error_set(err, cc_negerrno(), "netlink SO_RCVTIMEO");
    return TAKE_FD(fd);
}

/* The NLMSGERR_ATTR_MSG of an extended ack, or NULL. */
static const char *
ext_ack_message(const struct nlmsghdr *h)
{
    if (!(h->nlmsg_flags & NLM_F_ACK_TLVS))
        return NULL;
    const struct nlmsgerr *e = NLMSG_DATA(h);
    size_t off = sizeof(*e);
    if (!(h->nlmsg_flags & NLM_F_CAPPED))
        off += e->msg.nlmsg_len - sizeof(e->msg);
    if (NLMSG_LENGTH(off) > h->nlmsg_len)
        return NULL;
    const struct rtattr *rta = (const struct rtattr *)((const unsigned char *)e + off);
    int left = (int)(h->nlmsg_len - NLMSG_LENGTH(off));
    for (; RTA_OK(rta, left); rta = RTA_NEXT(rta, left)) {
        if (rta->rta_type == NLMSGERR_ATTR_MSG && RTA_PAYLOAD(rta) > 0) {
            const char *s = RTA_DATA(rta);
            if (memchr(s, '\0', RTA_PAYLOAD(rta)))
                return s;
        }
    }
    return NULL;
}

/* Sends m on fd with a fresh sequence number; returns it in *ret_seq. */
static int
nl_send(int fd, nl_msg *m, uint32_t *ret_seq, cc_error **err)
{
    if (m->overflow)
        return cc_error_msg(err, -ENOBUFS, "netlink: request larger than %d bytes", NL_MSG_MAX);

    struct sockaddr_nl local;
    socklen_t sl = sizeof(local);
    if (getsockname(fd, (struct sockaddr *)&local, &sl) < 0)
        return cc_error_set(err, cc_negerrno(), "netlink getsockname");
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint32_t seq = (uint32_t)(ts.tv_nsec ^ ts.tv_sec) | 1;
    m->hdr.nlmsg_seq = seq;
    m->hdr.nlmsg_pid = local.nl_pid;

    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    ssize_t n;
    do
        n = sendto(fd, m->buf, m->len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return cc_error_set(err, cc_negerrno(), "netlink send");
    if ((size_t)n != m->len)
        return cc_error_msg(err, -EIO, "netlink send: short write");
    *ret_seq = seq;
    return 0;
}

int
nl_transact(int fd, nl_msg *m, cc_error **err)
{
    uint32_t seq;
    int r = nl_send(fd, m, &seq, err);
    if (r < 0)
        return r;

    for (;;) {
        ssize_t n;
        _Alignas(struct nlmsghdr) unsigned char buf[8192];
        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return cc_error_msg(err, -ETIMEDOUT, "netlink: no ack within %d s", NL_TIMEOUT_SEC);
        if (n < 0)
            return cc_error_set(err, cc_negerrno(), "netlink recv");
        /* NLMSG_OK() by hand: the macro mixes signedness (clang's -Wsign-compare) */
        for (size_t off = 0; off + sizeof(struct nlmsghdr) <= (size_t)n;) {
            struct nlmsghdr *h = (struct nlmsghdr *)(buf + off);
            if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > (size_t)n - off)
                break;
            off += NLMSG_ALIGN(h->nlmsg_len);
            if (h->nlmsg_seq != seq)
                continue;
            if (h->nlmsg_type != NLMSG_ERROR)
                continue; /* not expected for NEW/DEL/SET requests; skip */
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
                return cc_error_msg(err, -EBADMSG, "netlink: truncated ack");
            const struct nlmsgerr *e = NLMSG_DATA(h);
            if (e->error == 0)
                return 0;
            r = e->error < 0 ? e->error : -EIO;
            const char *ext = ext_ack_message(h);
            if (ext)
                return cc_error_msg(err, r, "netlink: %s: %s", strerror(-r), ext);
            return cc_error_set(err, r, "netlink");
        }
    }
}

#define NL_DUMP_BUF (64u << 10)

int
nl_dump(int fd, nl_msg *m, nl_dump_fn fn, void *userdata, cc_error **err)
{
    m->hdr.nlmsg_flags = (uint16_t)((m->hdr.nlmsg_flags & ~NLM_F_ACK) | NLM_F_DUMP);
    uint32_t seq;
    int r = nl_send(fd, m, &seq, err);
    if (r < 0)
        return r;

    _cleanup_free_ unsigned char *buf = cc_xmalloc(NL_DUMP_BUF);
    for (;;) {
        /* MSG_TRUNC: the real length, so a message larger than buf is an error, not garbage */
        ssize_t n = recv(fd, buf, NL_DUMP_BUF, MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return cc_error_msg(err, -ETIMEDOUT, "netlink: no dump within %d s", NL_TIMEOUT_SEC);
        if (n < 0)
            return cc_error_set(err, cc_negerrno(), "netlink recv");
        if ((size_t)n > NL_DUMP_BUF)
            return cc_error_msg(err, -EMSGSIZE, "netlink: dump message of %zd bytes", n);
        for (size_t off = 0; off + sizeof(struct nlmsghdr) <= (size_t)n;) {
            const struct nlmsghdr *h = (const struct nlmsghdr *)(buf + off);
            if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > (size_t)n - off)
                break;
            off += NLMSG_ALIGN(h->nlmsg_len);
            if (h->nlmsg_seq != seq)
                continue;
            if (h->nlmsg_type == NLMSG_DONE) {
                if (h->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
                    int e = *(const int *)NLMSG_DATA(h);
                    if (e < 0)
                        return cc_error_set(err, e, "netlink dump");
                }
                return 0;
            }
            if (h->nlmsg_type == NLMSG_ERROR) {
                if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
                    return cc_error_msg(err, -EBADMSG, "netlink: truncated error");
                const struct nlmsgerr *e = NLMSG_DATA(h);
                if (e->error == 0)
                    continue;
                return cc_error_set(err, e->error < 0 ? e->error : -EIO, "netlink dump");
            }
            r = fn(h, userdata, err);
            if (r < 0)
                return r;
        }
    }
}

void
nl_attrs_parse(const struct rtattr **tb, unsigned max, const void *data, size_t len)
{
    memset(tb, 0, sizeof(*tb) * (max + 1));
    const unsigned char *p = data;
    while (len >= sizeof(struct rtattr)) {
        const struct rtattr *rta = (const struct rtattr *)p;
        if (rta->rta_len < sizeof(*rta) || rta->rta_len > len)
            break;
        unsigned type = rta->rta_type & NLA_TYPE_MASK;
        if (type <= max)
            tb[type] = rta;
        size_t step = RTA_ALIGN(rta->rta_len);
        if (step >= len)
            break;
        p += step;
        len -= step;
    }
}

int
nl_request(nl_msg *m, cc_error **err)
{
    _cleanup_close_ int fd = nl_open(err);
    if (fd < 0)
        return fd;
    return nl_transact(fd, m, err);
}

int
nl_ifindex(const char *ifname, cc_error **err)
{
    unsigned idx = if_nametoindex(ifname);
    if (idx == 0)
        return cc_error_set(err, errno == ENXIO || errno == 0 ? -ENODEV : cc_negerrno(),
                            "interface '%s'", ifname);
    if (idx > INT32_MAX)
        return cc_error_msg(err, -ERANGE, "interface '%s': index %u", ifname, idx);
    return (int)idx;
}

int
nl_link_set_up(const char *ifname, cc_error **err)
{
    int idx = nl_ifindex(ifname, err);
    if (idx < 0)
        return cc_error_prefix(err, idx, "set link '%s' up", ifname);
    nl_msg m;
    struct ifinfomsg *ifi = nl_msg_init(&m, RTM_NEWLINK, 0, sizeof(*ifi));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = idx;
    ifi->ifi_flags = IFF_UP;
    ifi->ifi_change = IFF_UP;
    int r = nl_request(&m, err);
    if (r < 0)
        return cc_error_prefix(err, r, "set link '%s' up", ifname);
    return 0;
}

int
nl_addr_add(const char *ifname, struct in_addr a, unsigned prefix, cc_error **err)
{
    char as[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a, as, sizeof(as));
    if (prefix < 1 || prefix > 32)
        return cc_error_msg(err, -EINVAL, "add address %s/%u to '%s': bad prefix", as, prefix,
                            ifname);
    int idx = nl_ifindex(ifname, err);
    if (idx < 0)
        return cc_error_prefix(err, idx, "add address %s/%u to '%s'", as, prefix, ifname);

    nl_msg m;
    struct ifaddrmsg *ifa = nl_msg_init(&m, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof(*ifa));
    ifa->ifa_family = AF_INET;
    ifa->ifa_prefixlen = (unsigned char)prefix;
    ifa->ifa_scope = RT_SCOPE_UNIVERSE;
    ifa->ifa_index = (unsigned)idx;
    nl_msg_put_attr(&m, IFA_LOCAL, &a, sizeof(a));
    nl_msg_put_attr(&m, IFA_ADDRESS, &a, sizeof(a));
    if (prefix < 31) {
        uint32_t mask = htonl(~(uint32_t)0 << (32 - prefix));
        struct in_addr brd = {.s_addr = a.s_addr | ~mask};
        nl_msg_put_attr(&m, IFA_BROADCAST, &brd, sizeof(brd));
    }
    int r = nl_request(&m, err);
    if (r == -EEXIST)
        return 0;
    if (r < 0)
        return cc_error_prefix(err, r, "add address %s/%u to '%s'", as, prefix, ifname);
    return 0;
}

int
nl_route_add_default(const char *ifname, struct in_addr gw, cc_error **err)
{
    char gs[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &gw, gs, sizeof(gs));
    int idx = nl_ifindex(ifname, err);
    if (idx < 0)
        return cc_error_prefix(err, idx, "add default route via %s dev '%s'", gs, ifname);

    nl_msg m;
    struct rtmsg *rt = nl_msg_init(&m, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof(*rt));
    rt->rtm_family = AF_INET;
    rt->rtm_dst_len = 0;
    rt->rtm_table = RT_TABLE_MAIN;
    rt->rtm_protocol = RTPROT_BOOT;
    rt->rtm_scope = RT_SCOPE_UNIVERSE;
    rt->rtm_type = RTN_UNICAST;
    nl_msg_put_attr(&m, RTA_GATEWAY, &gw, sizeof(gw));
    nl_msg_put_u32(&m, RTA_OIF, (uint32_t)idx);
    int r = nl_request(&m, err);
    if (r == -EEXIST)
        return 0;
    if (r < 0)
        return cc_error_prefix(err, r, "add default route via %s dev '%s'", gs, ifname);
    return 0;
}
