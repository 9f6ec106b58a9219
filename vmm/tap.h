/* SPDX-License-Identifier: Apache-2.0 */
/*
 * net=tap for the qemu backend ("tcfilter" networking, as Kata does it): a tap device in the
 * pod's network namespace whose fd QEMU gets as fd 3, and tc mirred redirection both ways
 * between the pod's interface (the CNI's veth, e.g. eth0) and the tap. Frames the pod
 * interface receives leave through the tap to QEMU, frames QEMU writes to the tap leave
 * through the pod interface: the guest owns the pod's L2 link.
 *
 * tc is iproute2's /usr/sbin/tc (packaging/install-deps.sh), run in a forked child that
 * enters the namespace with setns() before execv(). The tap itself is created by a short-lived
 * thread that enters the namespace (setns() changes only the calling thread's namespace), so
 * the caller's own namespace never changes.
 */
#pragma once

#include "error.h"

/* The tap's name in the pod namespace (each pod has its own namespace). */
#define VMM_TAP_NAME "tap0_cloak"

/*
 * In the network namespace at netns_path (e.g. /var/run/netns/<pod>): creates tap device
 * tap_name (IFF_TAP | IFF_NO_PI, no vnet header, not persistent: it disappears when the
 * last fd to it closes), gives it pod_ifname's MTU, sets it up and installs ingress qdiscs
 * and mirred redirect filters pod_ifname -> tap_name and tap_name -> pod_ifname.
 * *ret_fd: the tap fd (O_CLOEXEC; owned by the caller), usable from any namespace.
 * On failure nothing is left behind. Errors: -ENOENT (netns, interface or tc missing),
 * -EPERM (needs CAP_NET_ADMIN and CAP_SYS_ADMIN), -EIO (tc failed; its stderr is in the
 * message), each naming the step. Blocks while tc runs (milliseconds). Any thread.
 */
int vmm_tap_setup(const char *netns_path, const char *pod_ifname, const char *tap_name, int *ret_fd,
                  cc_error **err);

/*
 * Removes the ingress qdiscs (and with them the mirred filters) from pod_ifname and, if it
 * still exists, tap_name. The tap goes away by itself once every fd to it is closed.
 * Best effort: returns the first error, after trying everything. Blocks while tc runs.
 */
int vmm_tap_teardown(const char *netns_path, const char *pod_ifname, const char *tap_name,
                     cc_error **err);
