/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One process's standard streams, copied between containerd's side (FIFOs, or file:// log
 * URIs) and the guest agent, on the shim's cc_loop (loop thread only; nothing blocks).
 *
 * Output: ReadStdio (cloak.agent.v1.Agent, proto/cloak/agent.proto) calls, SHIM_IO_READS in
 * flight, each up to SHIM_IO_READ_MAX bytes; what comes back is written to the stdout/stderr
 * fds (non-blocking, buffered, EPOLLOUT when the reader is slow); no new ReadStdio is issued
 * while more than SHIM_IO_BUFFER_HIGH bytes wait for a slow reader (the guest's pipe then
 * throttles the process: nothing is dropped). When the agent answers UNIMPLEMENTED (a Kata
 * agent), ReadStdout/ReadStderr (Kata's long poll, "EOF" INTERNAL at the end) are used instead.
 * Output is done when both streams reached EOF (stdout_eof/stderr_eof), or the agent failed
 * (connection closed: the VM is gone): the buffered bytes are still written out (bounded by a
 * 5 s wait for a reader that never reads), then the fds are closed, then done_fn runs, once.
 *
 * Input: the stdin FIFO is opened O_RDWR (the open never blocks and never reads a spurious
 * EOF before containerd's writer attaches); what is read goes out with WriteStdin, one call
 * in flight (the next read waits for its answer: that is the backpressure). EOF for the guest
 * (CloseStdin) comes from shim_io_close_stdin() (Task CloseIO), after the bytes already read
 * were written.
 *
 * Paths: "" = none (that stream is not opened; its output is read and discarded, so the guest
 * never blocks); "/abs/path" or "fifo:///abs/path" = a FIFO made by containerd (opened O_RDWR
 * for output too, so the open never blocks; we close it to signal EOF); "file:///abs/path" =
 * a file opened O_WRONLY|O_CREAT|O_APPEND 0640 (output streams only); "binary://..." and other
 * schemes: -EOPNOTSUPP naming the stream. With terminal, the stderr path is ignored (the
 * guest's terminal merges the streams) as containerd expects.
 */
#pragma once

#include "error.h"
#include "loop.h"
#include "macro.h"
#include "ttrpc.h"

#include <stdbool.h>

#define SHIM_IO_READS 3
#define SHIM_IO_READ_MAX (1u << 20)
#define SHIM_IO_BUFFER_HIGH (4u << 20)
#define SHIM_IO_STDIN_CHUNK (64u << 10)

typedef struct shim_io shim_io;

typedef struct shim_io_params {
    const char *container_id;
    const char *exec_id; /* agent exec_id: the container id for the init process */
    const char *stdin_path;
    const char *stdout_path;
    const char *stderr_path;
    bool terminal;
} shim_io_params;

/* Output finished (see above): every byte the agent gave was written, fds closed. */
typedef void (*shim_io_done_fn)(shim_io *io, void *userdata);

/* Opens the streams (does not start copying). Errors name the stream: "stdout
 * 'binary:///x': log URI scheme 'binary' is not supported", or the open's errno. */
int shim_io_new(cc_loop *loop, const shim_io_params *p, shim_io **ret, cc_error **err);

/*
 * Starts copying over agent (borrowed: the caller frees io before the client, or the client
 * closes first, which ends the copies like an EOF). fn runs once, on the loop, later (never
 * from inside this call).
 */
void shim_io_start(shim_io *io, cc_ttrpc_client *agent, shim_io_done_fn fn, void *userdata);

/* Task CloseIO: stop reading the stdin FIFO, then CloseStdin once pending input is out. */
void shim_io_close_stdin(shim_io *io);

/* The agent client is about to be freed (the VM is gone): never call it again. The calls in
 * flight still get their (UNAVAILABLE) answers from the client's free. NULL-safe. */
void shim_io_agent_closed(shim_io *io);

/* True once done_fn ran (or would have: output finished). */
bool shim_io_is_done(const shim_io *io);

/* Cancels the agent calls in flight, closes every fd. NULL-safe; safe inside callbacks. */
shim_io *shim_io_free(shim_io *io);
CC_DEFINE_CLEANUP(shim_io, shim_io_free)
