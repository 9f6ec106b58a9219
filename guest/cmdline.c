/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE
#include "cmdline.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>

#include "log.h"
#include "util.h"

const char *
agent_channel_to_string(agent_channel c)
{
    switch (c) {
    case AGENT_CHANNEL_SERIAL:
        return "serial";
    case AGENT_CHANNEL_VSOCK:
        return "vsock";
    default:
        return "unknown";
    }
}

/* Strict dotted quad (inet_pton: no octal, no short forms). */
static bool
parse_ipv4(const char *s, struct in_addr *ret)
{
    return inet_pton(AF_INET, s, ret) == 1;
}

/* "ADDR/PREFIX" or "ADDR/PREFIX,GATEWAY". */
static int
parse_net(const char *value, agent_boot_config *cfg, cc_error **err)
{
    _cleanup_free_ char *v = cc_xstrdup(value);
    char *slash = strchr(v, '/');
    if (!slash)
        return cc_error_msg(err, -EINVAL,
                            "cloak.net: bad value '%s' (expected ADDR/PREFIX[,GATEWAY])", value);
    *slash = '\0';
    char *prefix = slash + 1;
    char *gw = strchr(prefix, ',');
    if (gw)
        *gw++ = '\0';

    struct in_addr addr, gateway = {.s_addr = htonl(INADDR_ANY)};
    if (!parse_ipv4(v, &addr) || addr.s_addr == htonl(INADDR_ANY))
        return cc_error_msg(err, -EINVAL, "cloak.net: bad address '%s'", v);

    unsigned long p = 0;
    size_t n = strlen(prefix);
    if (n == 0 || n > 2 || strspn(prefix, "0123456789") != n)
        return cc_error_msg(err, -EINVAL, "cloak.net: bad prefix '%s'", prefix);
    p = strtoul(prefix, NULL, 10);
    if (p < 1 || p > 32)
        return cc_error_msg(err, -EINVAL, "cloak.net: bad prefix '%s'", prefix);

    if (gw && (!parse_ipv4(gw, &gateway) || gateway.s_addr == htonl(INADDR_ANY)))
        return cc_error_msg(err, -EINVAL, "cloak.net: bad gateway '%s'", gw);

    cfg->net = true;
    cfg->net_addr = addr;
    cfg->net_prefix = (unsigned)p;
    cfg->net_gateway = gateway;
    return 0;
}

/* "host", "host:port" or "host:*"; host: DNS name, IPv4 address or "[IPv6]". */
static bool
registry_entry_is_valid(const char *s)
{
    const char *p = s;
    if (*p == '[') {
        const char *end = strchr(p, ']');
        char addr[INET6_ADDRSTRLEN];
        struct in6_addr a6;
        size_t n = end ? (size_t)(end - p - 1) : 0;
        if (n == 0 || n >= sizeof(addr))
            return false;
        memcpy(addr, p + 1, n);
        addr[n] = '\0';
        if (inet_pton(AF_INET6, addr, &a6) != 1)
            return false;
        p = end + 1;
    } else {
        size_t total = 0;
        for (;;) {
            size_t n = 0;
            while (isalnum((unsigned char)p[n]) || p[n] == '-')
                n++;
            if (n == 0 || n > 63 || p[0] == '-' || p[n - 1] == '-')
                return false;
            p += n;
            total += n + 1;
            if (*p != '.')
                break;
            p++;
        }
        if (total > 254)
            return false;
    }
    if (*p == '\0')
        return true;
    if (*p++ != ':')
        return false;
    if (cc_streq(p, "*"))
        return true;
    size_t n = strlen(p);
    if (n == 0 || n > 5 || strspn(p, "0123456789") != n || p[0] == '0')
        return false;
    return strtoul(p, NULL, 10) <= 65535;
}

static void
strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int
parse_registry_insecure(const char *value, agent_boot_config *cfg, cc_error **err)
{
    _cleanup_free_ char *v = cc_xstrdup(value);
    char **list = cc_xzalloc((AGENT_REGISTRY_INSECURE_MAX + 1) * sizeof(char *));
    size_t n = 0;
    char *save = NULL;

    if (!*v) {
        free(list);
        return cc_error_msg(err, -EINVAL, "cloak.registry.insecure: empty value");
    }
    for (char *e = strtok_r(v, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        int r = 0;
        if (n == AGENT_REGISTRY_INSECURE_MAX)
            r = cc_error_msg(err, -EINVAL, "cloak.registry.insecure: more than %d entries",
                             AGENT_REGISTRY_INSECURE_MAX);
        else if (!registry_entry_is_valid(e))
            r = cc_error_msg(err, -EINVAL,
                             "cloak.registry.insecure: bad entry '%s' (expected host, host:port or "
                             "host:*)",
                             e);
        if (r < 0) {
            strv_free(list, n);
            return r;
        }
        list[n++] = cc_xstrdup(e);
    }
    /* "a,,b" or a trailing comma: strtok_r skips empty entries, refuse them instead. */
    if (strstr(value, ",,") || value[0] == ',' || value[strlen(value) - 1] == ',') {
        strv_free(list, n);
        return cc_error_msg(err, -EINVAL, "cloak.registry.insecure: empty entry in '%s'", value);
    }
    strv_free(cfg->registry_insecure, cfg->n_registry_insecure); /* the last one wins */
    cfg->registry_insecure = list;
    cfg->n_registry_insecure = n;
    return 0;
}

static int
apply_word(const char *word, agent_boot_config *cfg, cc_error **err)
{
    const char *v;

    if ((v = cc_startswith(word, "cloak.agent="))) {
        if (cc_streq(v, "serial"))
            cfg->channel = AGENT_CHANNEL_SERIAL;
        else if (cc_streq(v, "vsock"))
            cfg->channel = AGENT_CHANNEL_VSOCK;
        else
            return cc_error_msg(err, -EINVAL,
                                "cloak.agent: bad value '%s' (expected serial or vsock)", v);
    } else if ((v = cc_startswith(word, "cloak.net="))) {
        return parse_net(v, cfg, err);
    } else if ((v = cc_startswith(word, "cloak.log="))) {
        int l = cc_log_level_from_string(v);
        if (l < 0)
            return cc_error_msg(
                err, -EINVAL, "cloak.log: bad value '%s' (expected debug, info, warning or error)", v);
        cfg->log_level = l;
    } else if ((v = cc_startswith(word, "cloak.registry.insecure="))) {
        return parse_registry_insecure(v, cfg, err);
    } else if ((v = cc_startswith(word, "cloak.registry.loopback="))) {
        struct in_addr a;
        if (!parse_ipv4(v, &a) || a.s_addr == htonl(INADDR_ANY))
            return cc_error_msg(
                err, -EINVAL, "cloak.registry.loopback: bad value '%s' (expected an IPv4 address)",
                v);
        cfg->has_registry_loopback = true;
        cfg->registry_loopback = a;
    } else if (cc_streq(word, "cloak.agent") || cc_streq(word, "cloak.net") ||
               cc_streq(word, "cloak.log") || cc_streq(word, "cloak.registry.insecure") ||
               cc_streq(word, "cloak.registry.loopback")) {
        /* A known key without '=': as bad as a bad value. */
        return cc_error_msg(err, -EINVAL, "%s: missing value", word);
    }
    return 0;
}

int
agent_cmdline_parse(const char *cmdline, agent_boot_config *ret, cc_error **err)
{
    agent_boot_config cfg = {
        .channel = AGENT_CHANNEL_SERIAL,
        .log_level = CC_LOG_INFO,
    };
    _cleanup_free_ char *word = cc_xmalloc(strlen(cmdline) + 1);
    const char *p = cmdline;

    for (;;) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        /* One word: up to white space outside double quotes; the quotes themselves go. */
        size_t n = 0;
        bool quoted = false;
        for (; *p && (quoted || !isspace((unsigned char)*p)); p++) {
            if (*p == '"')
                quoted = !quoted;
            else
                word[n++] = *p;
        }
        word[n] = '\0';
        int r = apply_word(word, &cfg, err);
        if (r < 0) {
            agent_boot_config_clear(&cfg);
            return r;
        }
    }
    *ret = cfg;
    return 0;
}

void
agent_boot_config_clear(agent_boot_config *c)
{
    if (!c)
        return;
    strv_free(c->registry_insecure, c->n_registry_insecure);
    c->registry_insecure = NULL;
    c->n_registry_insecure = 0;
}
