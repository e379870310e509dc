#define _GNU_SOURCE
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "detach.h"
#include "ops.h"
#include "req.h"
#include "spawn.h"
#include "user.h"
#include "util.h"

struct exec_op *execs;

/* Output left in pipes held open by a background grandchild is given this long after the reap. */
#define EXIT_GRACE_MS 250
/* Stdin the child has not read yet, buffered per exec. */
#define STDIN_MAX (16u * 1024u * 1024u)
#define OUT_CHUNK OUTPUT_PIPE_SIZE
/* What the line discipline takes as end of input at the start of a line (the default VEOF, ^D). */
#define PTY_EOF_CHAR '\x04'
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

static void started(struct conn *c, uint32_t id, pid_t pid, int pipes[3][2], const struct exec_req *r, uint64_t t0)
{
	struct exec_op *e = calloc(1, sizeof *e);
	if (!e) {
		kill(-pid, SIGKILL);
		conn_send_error(c, id, ENOMEM, "out of memory");
		return;
	}
	e->pid = pid;
	e->in_fd = pipes[0][1];
	e->out_fd = pipes[1][0];
	e->err_fd = pipes[2][0];
	pipes[0][1] = pipes[1][0] = pipes[2][0] = -1;
	if (e->in_fd >= 0)
		set_nonblock(e->in_fd, 1);
	set_nonblock(e->out_fd, 1);
	if (e->err_fd >= 0)
		set_nonblock(e->err_fd, 1);
	e->pty = (r->flags & HF_EXEC_PTY) != 0;
	e->flow = (r->flags & HF_EXEC_FLOW) != 0;
	e->credit = r->window;
	e->start_us = t0;
	if (r->timeout_ms)
		e->deadline_ms = (int64_t)(t0 / 1000) + r->timeout_ms;
	conn_add_op(c, &e->op, id, OP_EXEC);
	e->all_next = execs;
	execs = e;
	size_t at = hf_begin(&c->out, HF_EXEC_STARTED, 0, id);
	hf_put_u32(&c->out, T_PID, (uint32_t)pid);
	hf_end(&c->out, at);
}

/* A new PTY in the layout of spawn_pipes_open: the slave (three fds) is the child's stdin, stdout and
 * stderr, the master is [0][1] (stdin, RESIZE) and a dup of it [1][0] (output). There is no
 * separate stderr ([2][0] is -1). TIOCGPTPEER opens the slave without a path lookup, so it works
 * whatever /dev/pts is mounted as; ptsname is the fallback for older kernels. */
static int pty_open(int pipes[3][2], const struct exec_req *r)
{
	for (int i = 0; i < 3; i++)
		pipes[i][0] = pipes[i][1] = -1;
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return -1;
	pipes[0][1] = m;
	struct winsize ws = { .ws_row = r->rows, .ws_col = r->cols };
	if (unlockpt(m) < 0 || ioctl(m, TIOCSWINSZ, &ws) < 0)
		return -1;
	int s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0) {
		char name[64];
		if (ptsname_r(m, name, sizeof name) != 0)
			return -1;
		s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (s < 0)
			return -1;
	}
	pipes[0][0] = s;
	pipes[1][1] = fcntl(s, F_DUPFD_CLOEXEC, 0);
	pipes[2][1] = fcntl(s, F_DUPFD_CLOEXEC, 0);
	pipes[1][0] = fcntl(m, F_DUPFD_CLOEXEC, 0);
	return pipes[1][1] < 0 || pipes[2][1] < 0 || pipes[1][0] < 0 ? -1 : 0;
}

/* An ordinary exec: pipes (or a PTY) for the host's streams, and an operation on the connection. */
static void start_attached(struct conn *c, uint32_t id, const struct exec_req *r, const struct user_info *u, char **envp)
{
	int pipes[3][2];
	uint64_t t0 = now_us();
	int pty = (r->flags & HF_EXEC_PTY) != 0;
	if ((pty ? pty_open(pipes, r) : spawn_pipes_open(pipes, r->stdin_pipe, 0)) < 0) {
		conn_send_error(c, id, errno, "%s: %s", pty ? "pty" : "pipe", strerror(errno));
	} else {
		pid_t pid = spawn_process(c, id, r, u, envp, pipes);
		if (pid > 0)
			started(c, id, pid, pipes, r, t0);
	}
	spawn_pipes_close(pipes);
}

void exec_start(struct conn *c, uint32_t id, const struct hf_msg *m)
{
	struct exec_req r;
	struct user_info u;
	struct exec_env env = { 0 };
	const char *why;
	int err = req_exec(m, &r, &why);
	if (err)
		return conn_send_error(c, id, -err, "%s", why);
	err = user_resolve(r.user, &u, &why);
	if (err) {
		conn_send_error(c, id, -err, "%s: '%s'", why, r.user);
		return req_exec_free(&r);
	}
	if (env_build(&env, &r, &u) < 0) {
		conn_send_error(c, id, ENOMEM, "out of memory");
		return req_exec_free(&r);
	}
	if (r.flags & HF_EXEC_DETACHED)
		detach_start(c, id, &r, &u, env.envp);
	else
		start_attached(c, id, &r, &u, env.envp);
	env_free(&env);
	req_exec_free(&r);
}

static void close_stream(struct exec_op *e, int which)
{
	int *fd = which == 1 ? &e->out_fd : &e->err_fd;
	if (*fd < 0)
		return;
	close_fd(fd);
	hf_frame(&e->op.conn->out, which == 1 ? HF_STDOUT : HF_STDERR, HF_FLAG_END, e->op.id, NULL, 0);
}

static void send_exit(struct exec_op *e)
{
	close_stream(e, 1);
	close_stream(e, 2);
	struct buf *b = &e->op.conn->out;
	int32_t code = -1;
	uint32_t sig = 0;
	if (WIFEXITED(e->status))
		code = WEXITSTATUS(e->status);
	else if (WIFSIGNALED(e->status))
		sig = (uint32_t)WTERMSIG(e->status);
	size_t at = hf_begin(b, HF_EXIT, HF_FLAG_END, e->op.id);
	hf_put_u32(b, T_EXIT_CODE, (uint32_t)code);
	hf_put_u32(b, T_SIGNAL, sig);
	hf_put_u8(b, T_TIMED_OUT, e->timed_out);
	hf_put_u64(b, T_DURATION_US, e->end_us - e->start_us);
	hf_end(b, at);
	e->exit_sent = 1;
	conn_end_op(&e->op);
}

static void maybe_exit(struct exec_op *e)
{
	if (e->reaped && e->out_fd < 0 && e->err_fd < 0 && !e->op.dead)
		send_exit(e);
}

static void close_stdin(struct exec_op *e)
{
	close_fd(&e->in_fd);
	buf_reset(&e->stdin_q, 0);
}

/* Writes as much queued stdin as the pipe takes; the child may have stopped reading or exited. */
static void pump_stdin(struct exec_op *e)
{
	while (e->in_fd >= 0 && buf_used(&e->stdin_q)) {
		ssize_t n = write(e->in_fd, buf_data(&e->stdin_q), buf_used(&e->stdin_q));
		if (n > 0) {
			buf_consume(&e->stdin_q, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EAGAIN)
			return;
		close_stdin(e); /* EPIPE: nobody reads it any more */
		return;
	}
	/* A PTY's master stays open: it is also the output and what RESIZE acts on. */
	if (e->in_fd >= 0 && e->stdin_end && !buf_used(&e->stdin_q) && !e->pty)
		close_stdin(e);
}

void exec_stdin(struct op *o, const struct hf_frame *f)
{
	struct exec_op *e = (struct exec_op *)o;
	if (e->in_fd < 0 || e->stdin_end)
		return;
	if (f->flags & HF_FLAG_END)
		e->stdin_end = 1;
	if (buf_used(&e->stdin_q) + f->len > STDIN_MAX)
		return conn_fail_op(o, ENOBUFS, "more than %u bytes of stdin are waiting; the process was killed",
			STDIN_MAX);
	buf_append(&e->stdin_q, f->payload, f->len);
	/* A terminal has no stdin to close: its end of input is the EOF character. */
	if (e->pty && (f->flags & HF_FLAG_END))
		buf_append(&e->stdin_q, (const uint8_t[]){ PTY_EOF_CHAR }, 1);
	if (e->stdin_q.oom)
		return conn_fail_op(o, ENOMEM, "out of memory for stdin; the process was killed");
	pump_stdin(e);
}

void exec_signal(struct op *o, const struct hf_frame *f)
{
	struct exec_op *e = (struct exec_op *)o;
	struct hf_msg m;
	uint32_t sig;
	/* A malformed or out-of-range signal is ignored: it must not end the running exec. */
	if (hf_msg_parse(&m, f->payload, f->len) < 0 || hf_get_u32(&m, T_SIGNAL, &sig) != 1)
		return;
	if (sig >= 1 && sig < 65)
		kill(-e->pid, (int)sig);
}

void exec_resize(struct op *o, const struct hf_frame *f)
{
	struct exec_op *e = (struct exec_op *)o;
	struct hf_msg m;
	struct winsize ws = { 0 };
	const char *why;
	int fd = e->in_fd >= 0 ? e->in_fd : e->out_fd;
	/* Like SIGNAL: a bad RESIZE is ignored rather than ending the exec. */
	if (!e->pty || fd < 0 || hf_msg_parse(&m, f->payload, f->len) < 0 || req_winsize(&m, &ws.ws_row, &ws.ws_col, &why) < 0)
		return;
	ioctl(fd, TIOCSWINSZ, &ws);
}

void exec_credit(struct op *o, const struct hf_frame *f)
{
	struct exec_op *e = (struct exec_op *)o;
	struct hf_msg m;
	uint64_t n;
	if (!e->flow || hf_msg_parse(&m, f->payload, f->len) < 0 || hf_get_u64(&m, T_SIZE, &n) != 1)
		return;
	/* A process that exited while we could not send its output gets its grace period afresh. */
	if (e->credit == 0 && e->reaped)
		e->grace_ms = now_ms() + EXIT_GRACE_MS;
	e->credit = n > UINT64_MAX - e->credit ? UINT64_MAX : e->credit + n;
}

int exec_may_output(const struct exec_op *e)
{
	return !e->flow || e->credit > 0;
}

/* Bytes waiting in a pipe or PTY master; -1 when that cannot be told. */
static int pending_bytes(int fd)
{
	int n;
	return ioctl(fd, FIONREAD, &n) < 0 ? -1 : n;
}

int exec_output_events(const struct exec_op *e, int fd)
{
	if (exec_may_output(e))
		return POLLIN;
	/* Without credit, EOF must still be seen, or a stream whose last byte used up the credit
	 * would never end. A hang-up with data still waiting is left for when credit comes. */
	return pending_bytes(fd) == 0 ? 0 : -1;
}

void exec_cancel(struct op *o)
{
	struct exec_op *e = (struct exec_op *)o;
	if (!e->reaped)
		kill(-e->pid, SIGKILL);
	/* A host that gives up will not grant credit any more: without this, output waiting for it
	 * would hold the exec (its EXIT, fds and id) until the connection ends. */
	e->flow = 0;
}

void exec_on_pipe(struct exec_op *e, int which)
{
	if (e->op.dead)
		return;
	if (which == 0)
		return pump_stdin(e);
	int fd = which == 1 ? e->out_fd : e->err_fd;
	if (fd < 0)
		return;
	if (!exec_may_output(e)) {
		if (pending_bytes(fd) == 0) {
			close_stream(e, which);
			maybe_exit(e);
		}
		return;
	}
	size_t max = e->flow && e->credit < OUT_CHUNK ? (size_t)e->credit : OUT_CHUNK;
	struct buf *b = &e->op.conn->out;
	uint8_t *p = buf_reserve(b, HF_HEADER_SIZE + max);
	if (!p)
		return;
	/* Writers often go a page at a time; take whatever else is already in the pipe into the
	 * same frame, so bulk output costs fewer frames and fewer writes to the host. */
	size_t got = 0;
	ssize_t n;
	while (got < max && (n = read(fd, p + HF_HEADER_SIZE + got, max - got)) > 0)
		got += (size_t)n;
	if (got) {
		hf_header(p, which == 1 ? HF_STDOUT : HF_STDERR, 0, e->op.id, (uint32_t)got);
		buf_commit(b, HF_HEADER_SIZE + got);
		if (e->flow)
			e->credit -= got;
		return; /* EOF, if that is what stopped us, shows up on the next poll */
	}
	/* A PTY master reads EIO once the last slave fd is closed: that is its EOF. */
	if (n < 0 && errno == EAGAIN)
		return;
	close_stream(e, which);
	maybe_exit(e);
}

void exec_reap(void)
{
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid <= 0)
			return;
		int ours = 0;
		for (struct exec_op *e = execs; e && !ours; e = e->all_next) {
			if (e->pid == pid && !e->reaped) {
				e->reaped = 1;
				e->status = st;
				e->end_us = now_us();
				e->grace_ms = (int64_t)(e->end_us / 1000) + EXIT_GRACE_MS;
				maybe_exit(e);
				ours = 1;
			}
		}
		if (!ours)
			detach_reaped(pid, st); /* else an orphan PID 1 inherited: nothing to report */
	}
}

int64_t exec_timers(int64_t now)
{
	int64_t next = -1;
	for (struct exec_op *e = execs; e; e = e->all_next) {
		if (e->op.dead)
			continue;
		int64_t due;
		if (!e->reaped && e->deadline_ms) {
			if (now >= e->deadline_ms) {
				kill(-e->pid, SIGKILL);
				e->timed_out = 1;
				e->deadline_ms = 0;
				continue;
			}
			due = e->deadline_ms;
		} else if (e->reaped) {
			/* Output the host has not made room for yet is not a grandchild's: wait for CREDIT. */
			if (!exec_may_output(e))
				continue;
			due = e->grace_ms;
			if (now >= due) {
				send_exit(e);
				continue;
			}
		} else {
			continue;
		}
		if (next < 0 || due < next)
			next = due;
	}
	return next;
}

void exec_release(struct op *o)
{
	struct exec_op *e = (struct exec_op *)o;
	if (!e->exit_sent)
		kill(-e->pid, SIGKILL);
	close_fd(&e->in_fd);
	close_fd(&e->out_fd);
	close_fd(&e->err_fd);
	buf_free(&e->stdin_q);
	struct exec_op **pp = &execs;
	while (*pp && *pp != e)
		pp = &(*pp)->all_next;
	if (*pp)
		*pp = e->all_next;
}

void exec_kill_all(void)
{
	for (struct exec_op *e = execs; e; e = e->all_next)
		kill(-e->pid, SIGKILL);
}
