/*
 * fork + exec for EXEC: everything the child does between the two, and how its failure gets back
 * to us (a close-on-exec pipe: EOF means exec succeeded, else it carries the errno and the step).
 */
#define _GNU_SOURCE
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sig.h"
#include "util.h"

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
	/* The new session's controlling terminal: ^C, ^Z and SIGWINCH reach its foreground group. */
	if ((s->req->flags & HF_EXEC_PTY) && ioctl(0, TIOCSCTTY, 0) < 0)
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

pid_t spawn_process(struct conn *c, uint32_t id, const struct exec_req *r, const struct user_info *u, char **envp,
	int pipes[3][2])
{
	int report[2];
	if (pipe2(report, O_CLOEXEC) < 0) {
		conn_send_error(c, id, errno, "pipe: %s", strerror(errno));
		return 0;
	}
	struct spawn s = {
		.req = r,
		.user = u,
		.envp = envp,
		.cwd = r->cwd ? r->cwd : u->set ? u->home : "/",
		.cwd_explicit = r->cwd != NULL,
		.in = pipes[0][0],
		.out = pipes[1][1],
		.err = pipes[2][1],
		.report = report[1],
	};
	pid_t pid = fork();
	if (pid == 0)
		child(&s);
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
		report_child_error(c, id, &s, &ce);
		return 0;
	}
	return pid;
}

int spawn_pipes_open(int pipes[3][2], int stdin_pipe, int merge_err)
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
	if (pipe2(pipes[1], O_CLOEXEC) < 0)
		return -1;
	if (merge_err) {
		pipes[2][1] = fcntl(pipes[1][1], F_DUPFD_CLOEXEC, 0);
		if (pipes[2][1] < 0)
			return -1;
	} else if (pipe2(pipes[2], O_CLOEXEC) < 0) {
		return -1;
	}
	/* Best effort: beyond the per-user pipe budget the kernel just keeps the default size. */
	fcntl(pipes[1][0], F_SETPIPE_SZ, (int)OUTPUT_PIPE_SIZE);
	if (pipes[2][0] >= 0)
		fcntl(pipes[2][0], F_SETPIPE_SZ, (int)OUTPUT_PIPE_SIZE);
	return 0;
}

void spawn_pipes_close(int pipes[3][2])
{
	for (int i = 0; i < 3; i++) {
		close_fd(&pipes[i][0]);
		close_fd(&pipes[i][1]);
	}
}
