/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A small rtnetlink client on a raw NETLINK_ROUTE socket: a message builder with
 * attributes (nested too) and one request/ack exchange, plus the operations PID 1 needs to
 * bring up the guest's network. Later operations (UpdateInterface, UpdateRoutes) are built
 * from the same pieces:
 *
 *     nl_msg m;
 *     struct ifaddrmsg *ifa = nl_msg_init(&m, RTM_NEWADDR, NLM_F_CREATE, sizeof(*ifa));
 *     ifa->ifa_family = AF_INET; ...
 *     nl_msg_put_attr(&m, IFA_LOCAL, &addr, sizeof(addr));
 *     r = nl_request(&m, err);
 *
 * Every request carries NLM_F_REQUEST | NLM_F_ACK and its ack is checked; the kernel's
 * extended ack message, when it sends one, ends the error message. Requests block for at
 * most NL_TIMEOUT_SEC waiting for the ack (-ETIMEDOUT). Needs CAP_NET_ADMIN for changes.
 */
#pragma once

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define NL_MSG_MAX 4096
#define NL_TIMEOUT_SEC 5

typedef struct nl_msg {
    size_t len;    /* bytes used in buf; equals hdr->nlmsg_len */
    bool overflow; /* a put did not fit: nl_request() fails with -ENOBUFS */
    union {
        struct nlmsghdr hdr;
        unsigned char buf[NL_MSG_MAX];
    };
} nl_msg;

/*
 * Starts a message of type with flags (NLM_F_REQUEST | NLM_F_ACK are added) and a zeroed
 * family header of hdr_len bytes (struct ifinfomsg, ifaddrmsg, rtmsg...), returned for the
 * caller to fill in. Never fails for hdr_len below NL_MSG_MAX - NLMSG_HDRLEN.
 */
void *nl_msg_init(nl_msg *m, uint16_t type, uint16_t flags, size_t hdr_len);
/* Appends attribute type with len bytes of data. Returns 0 or -ENOBUFS (also recorded). */
int nl_msg_put_attr(nl_msg *m, uint16_t type, const void *data, size_t len);
int nl_msg_put_u32(nl_msg *m, uint16_t type, uint32_t v);
int nl_msg_put_string(nl_msg *m, uint16_t type, const char *s); /* with its NUL */
/* Opens a nested attribute; NULL when it does not fit. Close it with nl_msg_nest_end(). */
struct rtattr *nl_msg_nest_start(nl_msg *m, uint16_t type);
void nl_msg_nest_end(nl_msg *m, struct rtattr *nest);

/* A NETLINK_ROUTE socket (CLOEXEC, extended acks on where supported). Returns the fd. */
int nl_open(cc_error **err);
/*
 * Sends m on fd (from nl_open) and waits for its ack. Returns 0 or the kernel's negative
 * errno (message: "netlink: <strerror>[: <extended ack>]"), -ENOBUFS when m overflowed,
 * -ETIMEDOUT after NL_TIMEOUT_SEC. Sets m's sequence number and port.
 */
int nl_transact(int fd, nl_msg *m, cc_error **err);
/* nl_open() + nl_transact() + close. */
int nl_request(nl_msg *m, cc_error **err);

/*
 * A dump (RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE with NLM_F_DUMP): m is sent on fd without
 * NLM_F_ACK and fn is called for every message of the answer until NLMSG_DONE. A negative
 * return of fn stops the dump and is returned (the rest of the answer is skipped by the next
 * request's sequence check). Returns 0, fn's error, or the kernel's negative errno.
 */
typedef int (*nl_dump_fn)(const struct nlmsghdr *h, void *userdata, cc_error **err);
int nl_dump(int fd, nl_msg *m, nl_dump_fn fn, void *userdata, cc_error **err);
/*
 * Fills tb[0..max] with the last attribute of each type found in the len bytes at data
 * (attributes of a message or the payload of a nested attribute); others are NULL. Types
 * above max are ignored.
 */
void nl_attrs_parse(const struct rtattr **tb, unsigned max, const void *data, size_t len);

/* The interface index of ifname, or -ENODEV. */
int nl_ifindex(const char *ifname, cc_error **err);

/* ip link set IFNAME up. */
int nl_link_set_up(const char *ifname, cc_error **err);
/* ip addr add A/PREFIX dev IFNAME (with the broadcast address); already there is success. */
int nl_addr_add(const char *ifname, struct in_addr a, unsigned prefix, cc_error **err);
/* ip route add default via GW dev IFNAME; already there is success. */
int nl_route_add_default(const char *ifname, struct in_addr gw, cc_error **err);
