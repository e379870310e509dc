#define _GNU_SOURCE
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ops.h"
#include "req.h"
#include "sig.h"
#include "user.h"
#include "util.h"

struct exec_op *execs;

/* Output left in pipes held open by a background grandchild is given this long after the reap. */
#define EXIT_GRACE_MS 250
/* Stdin the child has not read yet, buffered per exec. */
#define STDIN_MAX (16u * 1024u * 1024u)
/* Bytes per STDOUT/STDERR frame: one pipe's default capacity. */
#define OUT_CHUNK (64u * 1024u)

enum stage { STAGE_SETUP, STAGE_USER, STAGE_CWD, STAGE_EXEC };

struct child_error {
	int stage;
	int err;
};

struct spawn {
	const struct exec_req *req;
	const struct user_info *user;
	char **envp;
	const char *cwd;
	int cwd_explicit;
	int in, out, err, report;
};

static __attribute__((noreturn)) void child_fail(int report, int stage)
{
	struct child_error ce = { stage, errno };
	ssize_t w = write(report, &ce, sizeof ce);
	(void)w;
	/* Shell conventions, though the host only sees the ERROR frame. */
	_exit(ce.err == ENOENT ? 127 : 126);
}

/* Runs in the forked child: everything between fork and exec, in the order a login would. */
static __attribute__((noreturn)) void child(const struct spawn *s)
{
	sig_child_reset();
	if (setsid() < 0 || dup2(s->in, 0) < 0 || dup2(s->out, 1) < 0 || dup2(s->err, 2) < 0)
		child_fail(s->report, STAGE_SETUP);
	umask(022);
	const struct user_info *u = s->user;
	if (u->set) {
		int r = u->named ? initgroups(u->name, u->gid) : setgroups(0, NULL);
		if (r < 0 || setgid(u->gid) < 0 || setuid(u->uid) < 0)
			child_fail(s->report, STAGE_USER);
	}
	/* After dropping privileges, so a directory the user may not enter is refused. */
	if (chdir(s->cwd) < 0) {
		if (s->cwd_explicit || chdir("/") < 0)
			child_fail(s->report, STAGE_CWD);
	}
	/* execvp searches the PATH of the current environment, so that must be the child's. */
	environ = s->envp;
	execvp(s->req->argv[0], s->req->argv);
	child_fail(s->report, STAGE_EXEC);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void report_child_error(struct conn *c, uint32_t id, const struct spawn *s, const struct child_error *ce)
{
	const char *what = s->req->argv[0];
	switch (ce->stage) {
	case STAGE_EXEC:
		return conn_send_error(c, id, ce->err, "cannot execute '%s': %s", what, strerror(ce->err));
	case STAGE_CWD:
		return conn_send_error(c, id, ce->err, "cannot run '%s' in '%s': %s", what, s->cwd, strerror(ce->err));
	case STAGE_USER:
		return conn_send_error(c, id, ce->err, "cannot run '%s' as '%s': %s", what, s->req->user, strerror(ce->err));
	default:
		return conn_send_error(c, id, ce->err, "cannot set up '%s': %s", what, strerror(ce->err));
	}
}

/* Forks and waits (on a close-on-exec pipe) until the child exec'd or failed. Returns the pid, or
 * 0 after sending the ERROR. */
static pid_t spawn(struct conn *c, uint32_t id, struct spawn *s, int pipes[3][2])
{
	int report[2];
	if (pipe2(report, O_CLOEXEC) < 0) {
		conn_send_error(c, id, errno, "pipe: %s", strerror(errno));
		return 0;
	}
	s->in = pipes[0][0];
	s->out = pipes[1][1];
	s->err = pipes[2][1];
	s->report = report[1];
	pid_t pid = fork();
	if (pid == 0)
		child(s);
	close(report[1]);
	if (pid < 0) {
		conn_send_error(c, id, errno, "fork: %s", strerror(errno));
		close(report[0]);
		return 0;
	}
	struct child_error ce;
	ssize_t n;
	do
		n = read(report[0], &ce, sizeof ce);
	while (n < 0 && errno == EINTR);
	close(report[0]);
	if (n == (ssize_t)sizeof ce) {
		/* It is exiting right now; reap it here so the reaper never sees an unknown pid. */
		waitpid(pid, NULL, 0);
		report_child_error(c, id, s, &ce);
		return 0;
	}
	return pid;
}

static int make_pipes(int pipes[3][2], int stdin_pipe)
{
	for (int i = 0; i < 3; i++)
		pipes[i][0] = pipes[i][1] = -1;
	if (stdin_pipe) {
		if (pipe2(pipes[0], O_CLOEXEC) < 0)
			return -1;
	} else {
		/* /dev/null, or an already-closed pipe where there is no /dev yet: reads see EOF either way. */
		pipes[0][0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (pipes[0][0] < 0) {
			if (pipe2(pipes[0], O_CLOEXEC) < 0)
				return -1;
			close_fd(&pipes[0][1]);
		}
	}
	if (pipe2(pipes[1], O_CLOEXEC) < 0 || pipe2(pipes[2], O_CLOEXEC) < 0)
		return -1;
	return 0;
}

static void close_pipes(int pipes[3][2])
{
	for (int i = 0; i < 3; i++) {
		close_fd(&pipes[i][0]);
		close_fd(&pipes[i][1]);
	}
}

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
	set_nonblock(e->err_fd, 1);
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
	struct spawn s = { .req = &r, .user = &u, .envp = env.envp };
	s.cwd = r.cwd ? r.cwd : u.set ? u.home : "/";
	s.cwd_explicit = r.cwd != NULL;
	int pipes[3][2];
	uint64_t t0 = now_us();
	if (make_pipes(pipes, r.stdin_pipe) < 0) {
		conn_send_error(c, id, errno, "pipe: %s", strerror(errno));
	} else {
		pid_t pid = spawn(c, id, &s, pipes);
		if (pid > 0)
			started(c, id, pid, pipes, &r, t0);
	}
	close_pipes(pipes);
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
	if (e->in_fd >= 0 && e->stdin_end && !buf_used(&e->stdin_q))
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

void exec_on_pipe(struct exec_op *e, int which)
{
	if (e->op.dead)
		return;
	if (which == 0)
		return pump_stdin(e);
	int fd = which == 1 ? e->out_fd : e->err_fd;
	if (fd < 0)
		return;
	struct buf *b = &e->op.conn->out;
	uint8_t *p = buf_reserve(b, HF_HEADER_SIZE + OUT_CHUNK);
	if (!p)
		return;
	ssize_t n = read(fd, p + HF_HEADER_SIZE, OUT_CHUNK);
	if (n > 0) {
		hf_header(p, which == 1 ? HF_STDOUT : HF_STDERR, 0, e->op.id, (uint32_t)n);
		buf_commit(b, HF_HEADER_SIZE + (size_t)n);
		return;
	}
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
		for (struct exec_op *e = execs; e; e = e->all_next) {
			if (e->pid == pid && !e->reaped) {
				e->reaped = 1;
				e->status = st;
				e->end_us = now_us();
				maybe_exit(e);
				break;
			}
		}
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
			due = (int64_t)(e->end_us / 1000) + EXIT_GRACE_MS;
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
