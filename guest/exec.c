/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ExecProcess, terminals (crun's --console-socket, TtyWinResize) and the fast stdio path
 * (cloak.agent.v1.Agent/ReadStdio).
 *
 * An exec runs `crun exec --detach`; the process is an orphan of crun that the agent reaps,
 * like a container's init. Its stdio are pipes, or a terminal whose master crun sends over a
 * unix socket. Execs stay listed (WaitProcess can be repeated) until their container goes;
 * past AGENT_EXECS_MAX per container the oldest exited ones are forgotten.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"
#include "fs.h"
#include "json.h"
#include "log.h"
#include "oci.h"
#include "util.h"

#include "cloak/agent.pb-c.h"

#define AGENT_EXECS_MAX 256


/* --- terminals ------------------------------------------------------------------------------ */

int
agent_console_listen(agent *a, char **ret_path, int *ret_fd, cc_error **err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    _cleanup_free_ char *path = cc_xasprintf("%s/console-%u.sock", a->opts.state_dir,
                                             ++a->console_seq);
    _cleanup_close_ int fd = -EBADF;

    if (strlen(path) >= sizeof(sa.sun_path))
        return cc_error_set(err, -ENAMETOOLONG, "%s: too long for a unix socket", path);
    strcpy(sa.sun_path, path);
    (void)unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return cc_error_set(err, -errno, "console socket");
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0)
        return cc_error_set(err, -errno, "console socket %s", path);
    *ret_path = TAKE_PTR(path);
    *ret_fd = TAKE_FD(fd);
    return 0;
}

int
agent_console_receive(int listen_fd, int *ret_master, cc_error **err)
{
    _cleanup_close_ int conn = -EBADF;
    char data[256];
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } control = {0};
    struct iovec iov = {.iov_base = data, .iov_len = sizeof(data)};
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &control, .msg_controllen = sizeof(control)};
    struct cmsghdr *cm;
    ssize_t n;

    /* crun connected and sent the master before it exited: all of it is queued already */
    conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0)
        return cc_error_set(err, errno == EAGAIN ? -EPROTO : -errno,
                            "crun did not connect to the console socket");
    n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return cc_error_set(err, errno == EAGAIN ? -EPROTO : -errno,
                            "no terminal on the console socket");
    cm = CMSG_FIRSTHDR(&msg);
    if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
        cm->cmsg_len != CMSG_LEN(sizeof(int)))
        return cc_error_set(err, -EPROTO, "no terminal on the console socket");
    memcpy(ret_master, CMSG_DATA(cm), sizeof(int));
    return 0;
}

int
agent_process_attach_tty(agent *a, agent_process *p, int master, cc_error **err)
{
    int in = fcntl(master, F_DUPFD_CLOEXEC, 3);
    int r;

    if (in < 0) {
        r = -errno;
        close(master);
        return cc_error_set(err, r, "dup terminal");
    }
    p->tty = master;
    r = agent_process_set_streams(a, p, in, master, -1, err);
    return r;
}

/* --- ExecProcess ---------------------------------------------------------------------------- */

typedef struct exec_op {
    agent_process *proc;
    cc_ttrpc_call *call;
    int console;
    char *console_path;
    char *spec_path;
    char *pid_path;
} exec_op;

static void
exec_op_free(exec_op *op)
{
    cc_close(op->console);
    if (op->console_path)
        (void)unlink(op->console_path);
    if (op->spec_path)
        (void)unlink(op->spec_path);
    if (op->pid_path)
        (void)unlink(op->pid_path);
    free(op->console_path);
    free(op->spec_path);
    free(op->pid_path);
    free(op);
}

static void
exec_unlink(agent_container *c, agent_process *p)
{
    for (agent_process **pp = &c->execs; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            c->n_execs--;
            return;
        }
}

/* Makes room for one more exec: forgets the oldest exited ones past the limit. */
static bool
execs_make_room(agent_container *c)
{
    while (c->n_execs >= AGENT_EXECS_MAX) {
        agent_process *victim = NULL;
        for (agent_process *p = c->execs; p; p = p->next)
            if (p->exited && !p->waiters)
                victim = p; /* the list is newest first: the last match is the oldest */
        if (!victim)
            return false;
        exec_unlink(c, victim);
        agent_process_free(victim);
    }
    return true;
}

static void
on_crun_exec(agent *a, int status, const char *output, void *userdata)
{
    exec_op *op = userdata;
    agent_process *p = op->proc;
    agent_container *c = p->container;
    _cleanup_free_ char *text = NULL;
    _cleanup_error_ cc_error *e = NULL;
    char buf[96];
    int st;

    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        _cleanup_free_ char *msg = agent_crun_log_message(c, output);
        cc_log(CC_LOG_ERROR, "container %s: crun exec %s %s: %s", c->id, p->exec_id,
               agent_wait_status_to_string(status, buf, sizeof(buf)), msg);
        cc_ttrpc_call_fail(op->call, CC_TTRPC_INTERNAL, "container %s: exec %s failed: %s",
                           c->id, p->exec_id, msg);
        goto fail;
    }
    if (cc_read_file(op->pid_path, 64, &text, NULL, NULL) < 0 || atoi(text) <= 0) {
        cc_ttrpc_call_fail(op->call, CC_TTRPC_INTERNAL, "container %s: exec %s: no pid file",
                           c->id, p->exec_id);
        goto fail;
    }
    p->pid = atoi(text);
    if (op->console >= 0) {
        int master = -1;
        if (agent_console_receive(op->console, &master, &e) < 0 ||
            agent_process_attach_tty(a, p, master, &e) < 0) {
            (void)kill(p->pid, SIGKILL);
            cc_ttrpc_call_fail(op->call, CC_TTRPC_INTERNAL, "container %s: exec %s: terminal: %s",
                               c->id, p->exec_id, cc_error_message(e));
            goto fail;
        }
    }
    cc_log(CC_LOG_INFO, "container %s: exec %s started (pid %d)", c->id, p->exec_id, (int)p->pid);
    cc_ttrpc_call_reply(op->call, NULL);
    exec_op_free(op);
    if (agent_take_unclaimed(a, p->pid, &st))
        agent_process_set_exited(p, st);
    agent_container_remove_if_requested(c);
    return;

fail:
    exec_unlink(c, p);
    agent_process_free(p);
    exec_op_free(op);
    agent_container_remove_if_requested(c);
}

AGENT_HANDLER(agent_rpc_exec_process)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__ExecProcessRequest *req =
        UNPACK(Grpc__ExecProcessRequest, grpc__exec_process_request__descriptor);
    _cleanup_error_ cc_error *e = NULL;
    _cleanup_json_ json_t *json = NULL;
    _cleanup_free_ char *text = NULL, *name = NULL;
    _cleanup_close_ int bundle_fd = -EBADF;
    int fds[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
    agent_container *c;
    agent_process *p;
    exec_op *op;
    char **argv;
    int r;

    if (!req)
        return;
    /* validate */
    if ((r = agent_validate_id(req->container_id, "container_id", false, &e)) < 0 ||
        (r = agent_validate_id(req->exec_id, "exec_id", false, &e)) < 0 ||
        (r = agent_validate_process(req->process, "process", &e)) < 0)
        goto fail_validate;
    if (req->stdin_port || req->stdout_port || req->stderr_port) {
        r = cc_error_set(&e, -EOPNOTSUPP, "std*_port: vsock stdio is not supported");
        goto fail_validate;
    }
    if (req->string_user && ((req->string_user->uid && *req->string_user->uid) ||
                             (req->string_user->gid && *req->string_user->gid))) {
        r = cc_error_set(&e, -EINVAL, "string_user: user names are not resolved; use process.User");
        goto fail_validate;
    }
    c = agent_container_find(a, req->container_id);
    if (!c) {
        cc_ttrpc_call_fail(call, CC_TTRPC_NOT_FOUND, "container %s: not found", req->container_id);
        return;
    }
    if (c->state != AGENT_CONTAINER_RUNNING || c->remove_requested) {
        cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION, "container %s is %s, not running",
                           c->id, agent_container_state_to_string(c->state));
        return;
    }
    if (cc_streq(req->exec_id, c->id) || agent_process_find(c, req->exec_id)) {
        cc_ttrpc_call_fail(call, CC_TTRPC_ALREADY_EXISTS, "container %s: exec %s already exists",
                           c->id, req->exec_id);
        return;
    }
    if (!execs_make_room(c)) {
        cc_ttrpc_call_fail(call, CC_TTRPC_RESOURCE_EXHAUSTED,
                           "container %s: more than %d execs running", c->id, AGENT_EXECS_MAX);
        return;
    }

    /* act: the process spec for crun, stdio, crun exec */
    r = cc_oci_process_to_json(req->process, &json, &e);
    if (r < 0)
        goto fail_validate;
    r = cc_json_dump(json, &text, &e);
    if (r < 0)
        goto fail_validate;
    bundle_fd = open(c->bundle, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (bundle_fd < 0) {
        r = cc_error_set(&e, -errno, "cannot open %s", c->bundle);
        goto fail_validate;
    }
    name = cc_xasprintf("exec-%s.json", req->exec_id);
    r = cc_write_file_atomic(bundle_fd, name, text, strlen(text), 0600, &e);
    if (r < 0)
        goto fail_validate;

    p = agent_process_new(c, req->exec_id);
    op = cc_xzalloc(sizeof(*op));
    op->proc = p;
    op->call = call;
    op->console = -1;
    op->spec_path = cc_xasprintf("%s/%s", c->bundle, name);
    op->pid_path = cc_xasprintf("%s/exec-%s.pid", c->bundle, req->exec_id);
    if (req->process->terminal) {
        r = agent_console_listen(a, &op->console_path, &op->console, &e);
    } else {
        for (int i = 0; i < 3 && r >= 0; i++)
            if (pipe2(fds[i], O_CLOEXEC) < 0)
                r = cc_error_set(&e, -errno, "pipe");
        if (r >= 0)
            r = agent_process_set_streams(a, p, TAKE_FD(fds[0][1]), TAKE_FD(fds[1][0]),
                                          TAKE_FD(fds[2][0]), &e);
    }
    if (r >= 0) {
        _cleanup_free_ char *process = cc_xasprintf("--process=%s", op->spec_path);
        _cleanup_free_ char *pidfile = cc_xasprintf("--pid-file=%s", op->pid_path);
        _cleanup_free_ char *console =
            op->console_path ? cc_xasprintf("--console-socket=%s", op->console_path) : NULL;
        int stdio[3] = {fds[0][0], fds[1][1], fds[2][1]};
        argv = agent_crun_argv(c, "exec", "--detach", process, pidfile, console);
        r = agent_cmd_start(a, argv, stdio, on_crun_exec, op, &e);
        cc_json_strv_free(argv);
    }
    for (int i = 0; i < 3; i++) {
        cc_close(fds[i][0]);
        cc_close(fds[i][1]);
    }
    if (r < 0) {
        agent_process_free(p);
        exec_op_free(op);
        cc_log_error(CC_LOG_WARNING, e, "ExecProcess");
        cc_ttrpc_call_fail_error(call, e);
        return;
    }
    /* listed at once (pid 0 while crun runs), so a second ExecProcess of the id is refused */
    p->next = c->execs;
    c->execs = p;
    c->n_execs++;
    return;

fail_validate:
    cc_log_error(CC_LOG_WARNING, e, "ExecProcess");
    cc_ttrpc_call_fail_error(call, e);
}

/* --- TtyWinResize ---------------------------------------------------------------------------- */

AGENT_HANDLER(agent_rpc_tty_win_resize)
{
    agent *a = userdata;
    _cleanup_msg_ Grpc__TtyWinResizeRequest *req =
        UNPACK(Grpc__TtyWinResizeRequest, grpc__tty_win_resize_request__descriptor);
    agent_container *c;
    agent_process *p;
    struct winsize ws = {0};

    if (!req || !agent_find_process(a, call, req->container_id, req->exec_id, &c, &p))
        return;
    if (req->row > UINT16_MAX || req->column > UINT16_MAX) {
        cc_ttrpc_call_fail(call, CC_TTRPC_INVALID_ARGUMENT, "row/column: at most %u",
                           (unsigned)UINT16_MAX);
        return;
    }
    if (p->tty < 0) {
        cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION,
                           "container %s: process %s has no terminal", c->id, p->exec_id);
        return;
    }
    if (p->out.fd != p->tty) { /* the master is the stdout stream's fd: closed at EOF */
        cc_ttrpc_call_fail(call, CC_TTRPC_FAILED_PRECONDITION,
                           "container %s: process %s: its terminal is closed", c->id, p->exec_id);
        return;
    }
    ws.ws_row = (unsigned short)req->row;
    ws.ws_col = (unsigned short)req->column;
    if (ioctl(p->tty, TIOCSWINSZ, &ws) < 0) {
        cc_ttrpc_call_fail(call, cc_ttrpc_code_from_errno(errno), "TIOCSWINSZ: %s",
                           strerror(errno));
        return;
    }
    cc_ttrpc_call_reply(call, NULL);
}

/* --- ReadStdio ------------------------------------------------------------------------------- */

AGENT_HANDLER(agent_rpc_read_stdio)
{
    agent *a = userdata;
    _cleanup_msg_ Cloak__Agent__V1__ReadStdioRequest *req = UNPACK(
        Cloak__Agent__V1__ReadStdioRequest, cloak__agent__v1__read_stdio_request__descriptor);
    agent_container *c;
    agent_process *p;

    if (!req || !agent_find_process(a, call, req->container_id, req->exec_id, &c, &p))
        return;
    agent_process_read_stdio(p, call, req->max_bytes);
}
