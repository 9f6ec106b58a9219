/* SPDX-License-Identifier: Apache-2.0 */
/*
 * vmm/: describe a confidential VM and turn the description into what a backend launches:
 * a QEMU argv (backend qemu) or a libvirt domain XML (backend libvirt). Profiles none, sev,
 * sev-snp, tdx (../shared/specs/confidential-vm-launch.md).
 *
 * Three layers, each a pure function of the previous one (no host probing, no file access
 * beyond reading the config file itself):
 *   vmm_config   what a TOML file says (configs/cloak-*.toml), validated: vmm_config_load()
 *   vmm_vm       one launch: a config plus per-pod facts (id, state dir, sizing overrides,
 *                initdata digest, resolved accelerator and agent channel): vmm_vm_new()
 *   argv / XML   vmm_qemu_argv(), vmm_libvirt_xml()
 * Launching, watching and stopping VMs (QMP, libvirt lifecycle) builds on these.
 *
 * Threading: none of these functions keep global state; objects are not thread-safe.
 */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "macro.h"

typedef enum vmm_profile {
    VMM_PROFILE_NONE,
    VMM_PROFILE_SEV,
    VMM_PROFILE_SEV_SNP,
    VMM_PROFILE_TDX,
    _VMM_PROFILE_MAX,
    _VMM_PROFILE_INVALID = -EINVAL,
} vmm_profile;

typedef enum vmm_backend {
    VMM_BACKEND_AUTO, /* libvirt when it supports the profile, else qemu (decided at launch) */
    VMM_BACKEND_QEMU,
    VMM_BACKEND_LIBVIRT,
    _VMM_BACKEND_MAX,
    _VMM_BACKEND_INVALID = -EINVAL,
} vmm_backend;

typedef enum vmm_accel {
    VMM_ACCEL_AUTO, /* none profile: KVM when /dev/kvm exists, else TCG; TEE profiles: KVM */
    VMM_ACCEL_KVM,
    VMM_ACCEL_TCG,
    _VMM_ACCEL_MAX,
    _VMM_ACCEL_INVALID = -EINVAL,
} vmm_accel;

typedef enum vmm_channel {
    VMM_CHANNEL_AUTO,   /* vsock when /dev/vhost-vsock exists, else virtio-serial */
    VMM_CHANNEL_VSOCK,  /* vhost-vsock-pci, guest CID, agent on port 1024 */
    VMM_CHANNEL_SERIAL, /* virtio-serial port "agent.0" on a unix socket in the state dir */
    _VMM_CHANNEL_MAX,
    _VMM_CHANNEL_INVALID = -EINVAL,
} vmm_channel;

typedef enum vmm_net {
    VMM_NET_NONE,
    VMM_NET_USER, /* QEMU user networking: guest 10.0.2.15/24, gateway 10.0.2.2 = host loopback */
    VMM_NET_TAP,  /* qemu backend only: a tap fd created in the pod's network namespace */
    _VMM_NET_MAX,
    _VMM_NET_INVALID = -EINVAL,
} vmm_net;

typedef enum vmm_digest {
    VMM_DIGEST_SHA256,
    VMM_DIGEST_SHA384,
    VMM_DIGEST_SHA512,
    _VMM_DIGEST_MAX,
    _VMM_DIGEST_INVALID = -EINVAL,
} vmm_digest;

/* The agent's vsock port (Kata's). */
#define VMM_AGENT_VSOCK_PORT 1024
/* The virtio-serial port name the agent looks for. */
#define VMM_AGENT_SERIAL_NAME "agent.0"

/* TEE parameters; each profile reads only its own. Strings are owned. */
typedef struct vmm_tee {
    /* sev, sev-snp */
    unsigned cbitpos;           /* CPUID 0x8000001F EBX[5:0]; 51 Milan/Genoa, 47 Rome */
    unsigned reduced_phys_bits; /* 1 on all current parts */
    uint64_t policy;            /* sev: 32-bit guest policy; sev-snp: 64-bit (default 0x30000) */
    bool kernel_hashes;         /* measured direct boot (kernel, initrd, cmdline hashes) */
    char *snp_id_block;         /* base64, 96 bytes; with snp_id_auth or neither */
    char *snp_id_auth;          /* base64, 4096 bytes */
    /* tdx */
    uint64_t tdx_attributes;    /* TD attributes; 0x10000000 = sept-ve-disable */
    char *tdx_qgs_socket;       /* quote generation service unix socket; NULL = none */
} vmm_tee;

/* A validated configuration file. All strings owned; paths absolute after loading. */
typedef struct vmm_config {
    char *path;         /* the file it came from (absolute); NULL when built in code */
    vmm_profile profile;
    vmm_backend backend;
    vmm_accel accel;
    vmm_channel channel;
    vmm_net net;
    char *qemu_path;    /* QEMU binary */
    char *libvirt_uri;  /* e.g. "qemu:///system" */
    char *kernel;       /* guest kernel; resolved by vmm_config_resolve_guest() when unset */
    char *initrd;       /* guest initramfs; idem */
    char *firmware;     /* -bios / <loader type='rom'>; required for sev-snp and tdx */
    char *kernel_params; /* appended to cloak's own command line */
    char *machine;      /* machine type, "q35" */
    char *cpu_model;    /* -cpu / <cpu>; NULL = per-profile default (max|host, EPYC-v4, host) */
    unsigned vcpus;
    unsigned memory_mib;
    unsigned max_vcpus;      /* bounds of a pod's sizing (default_maxvcpus/default_maxmemory) */
    unsigned max_memory_mib;
    unsigned create_timeout_sec; /* [runtime] create_timeout: one Task Create, pull included */
    unsigned boot_timeout_sec;   /* [runtime] boot_timeout: VM start until the agent answers */
    vmm_tee tee;
    char **enable_annotations; /* NULL-terminated: config keys a pod annotation may override */
} vmm_config;

/* One launch of a config for one pod. Strings owned. */
typedef struct vmm_vm {
    const vmm_config *config; /* borrowed; must outlive the vm */
    char *id;                 /* sandbox id; VM name "cloak-<id>" */
    char *uuid;               /* RFC 4122 text */
    char *state_dir;          /* absolute: qmp.sock, agent.sock, console.log, qemu.pid live here */
    vmm_accel accel;          /* resolved: KVM or TCG (dry runs resolve AUTO without probing) */
    vmm_channel channel;      /* resolved: VSOCK or SERIAL */
    unsigned vsock_cid;       /* with VSOCK: >= 3, host-unique */
    unsigned vcpus;           /* after annotation overrides */
    unsigned memory_mib;
    char *kernel_cmdline;     /* the whole -append / <cmdline> */
    char *netns_path;         /* net=tap: the pod's network namespace (e.g. /var/run/netns/x) */
    char *pod_ifname;         /* net=tap: the pod's interface inside it (e.g. eth0) */
    bool has_initdata;
    vmm_digest initdata_alg;
    uint8_t initdata_digest[64]; /* the digest, of the length its algorithm gives */
} vmm_vm;

const char *vmm_profile_to_string(vmm_profile p);
vmm_profile vmm_profile_from_string(const char *s);
const char *vmm_backend_to_string(vmm_backend b);
vmm_backend vmm_backend_from_string(const char *s);
const char *vmm_accel_to_string(vmm_accel a);
vmm_accel vmm_accel_from_string(const char *s);
const char *vmm_channel_to_string(vmm_channel c);
vmm_channel vmm_channel_from_string(const char *s);
const char *vmm_net_to_string(vmm_net n);
vmm_net vmm_net_from_string(const char *s);
const char *vmm_digest_to_string(vmm_digest d);
vmm_digest vmm_digest_from_string(const char *s);
/* Digest length in bytes (32, 48, 64); 0 for an invalid value. */
size_t vmm_digest_size(vmm_digest d);

/* ---- configuration (config.c) ------------------------------------------------------------ */

/*
 * Loads and validates a TOML config. Errors name the file, line and key:
 * "cloak-dev.toml:12: key 'hypervisor.memory': expected integer, got string" (-EINVAL), or
 * carry errno for I/O. Relative paths in the file resolve against the file's directory,
 * never the cwd. Unknown keys are errors (a typo must not be silently ignored).
 */
int vmm_config_load(const char *path, vmm_config **ret, cc_error **err);
/* Same from memory; path names the file in errors and anchors relative paths (may be NULL:
 * then relative paths are errors). */
int vmm_config_load_buffer(const char *buf, size_t len, const char *path, vmm_config **ret,
                           cc_error **err);
vmm_config *vmm_config_free(vmm_config *c);
CC_DEFINE_CLEANUP(vmm_config, vmm_config_free)
/*
 * Fills kernel and initrd when the config left them unset, from the first of
 * "<exe_dir>/../guest" (build tree), "<exe_dir>/../share/cloak/guest" (an install under any
 * prefix) and "<prefix>/share/cloak/guest" that has the unset ones ({vmlinuz,initrd.img}).
 * -ENOENT naming the three places when none has them. Reads the filesystem (stat only).
 */
int vmm_config_resolve_guest(vmm_config *c, const char *exe_dir, const char *prefix,
                             cc_error **err);
/*
 * Applies pod annotations "io.katacontainers.config.hypervisor.<key>" (Kata's names, e.g.
 * default_vcpus, default_memory, kernel_params) for keys listed in enable_annotations;
 * annotations: NULL-terminated key, value pairs. A key that is not allowed, or a bad value,
 * is -EPERM / -EINVAL naming the annotation; c is unchanged on error.
 */
int vmm_config_apply_annotations(vmm_config *c, const char *const *annotations, cc_error **err);

/* ---- initdata (initdata.c) --------------------------------------------------------------- */

/*
 * Digest of an initdata TOML document: the exact bytes hashed with the algorithm its own
 * `algorithm` key names (sha256|sha384|sha512); `version` must be "0.1.0". ret_digest gets
 * vmm_digest_size(*ret_alg) bytes.
 */
int vmm_initdata_digest(const char *buf, size_t len, vmm_digest *ret_alg, uint8_t ret_digest[64],
                        cc_error **err);
/* The digest fitted to the platform field, base64: SNP HOST_DATA (32 bytes: truncated or
 * zero-padded), TDX MRCONFIGID (48 bytes). Returns a new string. */
char *vmm_initdata_host_data(const uint8_t *digest, size_t len);
char *vmm_initdata_mrconfigid(const uint8_t *digest, size_t len);

/* ---- one launch (vm.c) -------------------------------------------------------------------- */

/* What the caller knows about the host. A launch probes it (vmm_host_probe, later); a dry
 * run passes what a production host has: KVM and vhost-vsock. */
typedef struct vmm_host {
    bool has_kvm;
    bool has_vhost_vsock;
} vmm_host;

typedef struct vmm_vm_params {
    const char *id;        /* sandbox id: [A-Za-z0-9][A-Za-z0-9_.-]{0,127} */
    const char *state_dir; /* absolute */
    const char *uuid;      /* NULL: derived from id (stable, so dry runs are repeatable) */
    unsigned vsock_cid;    /* 0: 3 (the caller allocates real CIDs) */
    const char *netns_path; /* net=tap: the pod's network namespace */
    const char *pod_ifname; /* net=tap: its interface to mirror (default "eth0") */
    const char *initdata;  /* initdata TOML bytes, or NULL */
    size_t initdata_len;
    vmm_host host;
} vmm_vm_params;

/*
 * Resolves a config for one launch: accel (AUTO: KVM when the host has it or the profile is a
 * TEE, else TCG), channel (AUTO: VSOCK when the host has vhost-vsock, else SERIAL), sizing,
 * the kernel command line, the initdata digest. Refuses combinations that cannot work (TCG
 * with a TEE profile, tap with libvirt is checked by the XML builder) with -EINVAL.
 */
int vmm_vm_new(const vmm_config *c, const vmm_vm_params *p, vmm_vm **ret, cc_error **err);
vmm_vm *vmm_vm_free(vmm_vm *vm);
CC_DEFINE_CLEANUP(vmm_vm, vmm_vm_free)

/* ---- what a backend launches (qemu-argv.c, libvirt-xml.c) ------------------------------- */

/* The QEMU argv (argv[0] = config's qemu_path), NULL-terminated; free with vmm_strv_free. */
int vmm_qemu_argv(const vmm_vm *vm, char ***ret_argv, cc_error **err);
/* The libvirt domain XML for virDomainCreateXML. -EOPNOTSUPP for what libvirt cannot do
 * (tap networking). */
int vmm_libvirt_xml(const vmm_vm *vm, char **ret_xml, cc_error **err);
char **vmm_strv_free(char **v);

/* ---- running VMs (instance.c, qemu-backend.c, libvirt/ plugin) --------------------------- */

typedef struct cc_loop cc_loop;
typedef struct vmm_instance vmm_instance;

/*
 * Called once, on the loop thread, when the VM is gone for whatever reason: the guest
 * powered off, QEMU crashed or was killed, libvirt destroyed it, or vmm_instance_stop()
 * finished. exit_status: QEMU's exit code, or 128+signal when it was killed; reason: a short
 * text ("guest powered off", "qemu killed by signal 9", "libvirt: crashed"). The instance
 * stays valid until vmm_instance_free().
 */
typedef void (*vmm_exit_fn)(vmm_instance *inst, int exit_status, const char *reason,
                            void *userdata);

/*
 * Starts the VM on the given backend (AUTO is resolved here: libvirt when it supports the
 * profile on this host, else qemu; the choice and the reason are logged). Creates
 * vm->state_dir (mode 0711) if needed. Returns once QEMU runs (qemu: QMP answered; libvirt:
 * virDomainCreateXML returned). A VM never outlives its controller by accident: the qemu
 * backend makes QEMU die with this process (PR_SET_PDEATHSIG) and records qemu.pid for
 * vmm_cleanup(); the libvirt backend uses VIR_DOMAIN_START_AUTODESTROY.
 * Blocks for the start (seconds at most). Loop thread only.
 */
int vmm_start(cc_loop *loop, const vmm_vm *vm, vmm_backend backend, vmm_exit_fn on_exit,
              void *userdata, vmm_instance **ret, cc_error **err);
/*
 * Stops the VM: QMP "quit" (qemu) or virDomainDestroy (libvirt), then SIGKILL if it is not
 * gone within timeout_usec. on_exit runs (once) before this returns. Idempotent. From inside
 * a loop handler it cannot wait: it sends the request, kills the VM at the deadline from a
 * timer, and returns -EBUSY; on_exit follows.
 */
int vmm_instance_stop(vmm_instance *inst, uint64_t timeout_usec, cc_error **err);
/* Hard stop now (SIGKILL / virDomainDestroy); on_exit follows from the loop. Idempotent;
 * safe inside handlers. */
int vmm_instance_kill(vmm_instance *inst, cc_error **err);
/* Stops the VM if it still runs, removes the state files it created; NULL-safe. Not from
 * inside the instance's own on_exit (post the free instead). */
vmm_instance *vmm_instance_free(vmm_instance *inst);
CC_DEFINE_CLEANUP(vmm_instance, vmm_instance_free)
/* QEMU's pid (0 when gone), the backend actually used, and where the agent listens:
 * "unix:<state_dir>/agent.sock" (serial) or "vsock:<cid>:1024". */
int vmm_instance_pid(const vmm_instance *inst);
vmm_backend vmm_instance_backend(const vmm_instance *inst);
const char *vmm_instance_agent_address(const vmm_instance *inst);
/* <state_dir>/console.log: the guest's serial console. */
const char *vmm_instance_console_path(const vmm_instance *inst);

/*
 * After a controller crash: kills a QEMU still recorded in <state_dir>/qemu.pid (only when
 * /proc/<pid>/cmdline shows it is that state dir's QEMU), destroys a libvirt domain
 * "cloak-<id>" if the libvirt backend recorded one, and removes the state files. Idempotent;
 * a missing state_dir is success.
 */
int vmm_cleanup(const char *state_dir, cc_error **err);

/* ---- host capabilities (probe.c) ---------------------------------------------------------- */

/* /dev/kvm and /dev/vhost-vsock usable by this process. Never fails. */
void vmm_host_probe(vmm_host *ret);
