#define _GNU_SOURCE
#include "detach.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"
#include "util.h"

struct detached *detached;

/* As for ordinary execs: output in a pipe a background grandchild holds is taken this long after
 * the reap, then the pipe is closed, so the exit gets recorded and the log is free again. */
#define EXIT_GRACE_MS 250
/* Not PID 1: how long SIGKILLed processes get to be reaped before we exit anyway. */
#define KILL_WAIT_MS 500

/* One buffer for all: copying happens synchronously in the loop. */
static uint8_t copy_buf[64 * 1024];

/* Copies up to budget bytes from the pipe into the log; closes the pipe at EOF. */
static void copy(struct detached *d, size_t budget)
{
	size_t got = 0;
	while (d->out_fd >= 0 && got < budget) {
		ssize_t n = read(d->out_fd, copy_buf, sizeof copy_buf);
		if (n > 0) {
			logfile_write(&d->log, copy_buf, (size_t)n);
			got += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			return;
		} else {
			close_fd(&d->out_fd);
		}
	}
}

/* The log first, then the status: a status that says exited means the log is complete. */
static void record_exit(struct detached *d)
{
	int code = -1, sig = 0;
	if (WIFEXITED(d->status))
		code = WEXITSTATUS(d->status);
	else if (WIFSIGNALED(d->status))
		sig = WTERMSIG(d->status);
	char note[128];
	int n = snprintf(note, sizeof note, "%s[hyperfleet] process %d %s %d\n", d->log.at_line_start ? "" : "\n",
		(int)d->pid, sig ? "was killed by signal" : "exited with code", sig ? sig : code);
	logfile_write(&d->log, note, (size_t)n);
	int err = logfile_status(&d->log, "exited %d %d %lld", code, sig, (long long)d->end_unix_ms);
	if (err)
		log_msg("%s.status: %s", d->log.path, strerror(-err));
}

/* Takes d off the list, records its exit when it was reaped, and frees it. */
static void finish(struct detached *d)
{
	struct detached **pp = &detached;
	while (*pp && *pp != d)
		pp = &(*pp)->next;
	if (*pp)
		*pp = d->next;
	/* What is in the pipe now, at most its size: a grandchild may keep writing into it. */
	copy(d, OUTPUT_PIPE_SIZE);
	close_fd(&d->out_fd);
	if (d->reaped)
		record_exit(d);
	logfile_close(&d->log);
	free(d);
}

void detach_on_pipe(struct detached *d)
{
	/* A bounded share per wakeup, so a chatty process cannot starve the connections. */
	copy(d, OUTPUT_PIPE_SIZE);
	if (d->out_fd < 0 && d->reaped)
		finish(d);
}

int detach_reaped(pid_t pid, int status)
{
	for (struct detached *d = detached; d; d = d->next) {
		if (d->pid != pid || d->reaped)
			continue;
		d->reaped = 1;
		d->status = status;
		d->end_ms = now_ms();
		d->end_unix_ms = unix_ms();
		if (d->out_fd < 0)
			finish(d);
		return 1;
	}
	return 0;
}

int64_t detach_timers(int64_t now)
{
	int64_t next = -1;
	struct detached *n;
	for (struct detached *d = detached; d; d = n) {
		n = d->next;
		if (!d->reaped)
			continue;
		int64_t due = d->end_ms + EXIT_GRACE_MS;
		if (now >= due)
			finish(d);
		else if (next < 0 || due < next)
			next = due;
	}
	return next;
}

void detach_pump_all(void)
{
	struct detached *n;
	for (struct detached *d = detached; d; d = n) {
		n = d->next;
		detach_on_pipe(d);
	}
}

void detach_finish_all(void)
{
	while (detached)
		finish(detached);
}

static void signal_all(int sig)
{
	for (struct detached *d = detached; d; d = d->next) {
		if (!d->reaped) {
			kill(-d->pid, sig);
			kill(-d->pid, SIGCONT); /* a stopped process must run to handle it */
		}
	}
}

void detach_stop_all(int grace_ms)
{
	signal_all(SIGTERM);
	int64_t end = now_ms() + grace_ms;
	int killed = 0;
	for (;;) {
		struct detached *n;
		for (struct detached *d = detached; d; d = n) {
			n = d->next;
			int st;
			if (!d->reaped && waitpid(d->pid, &st, WNOHANG) == d->pid)
				detach_reaped(d->pid, st);
		}
		detach_pump_all();
		detach_timers(now_ms());
		if (!detached)
			return;
		if (now_ms() >= end) {
			if (killed)
				break;
			signal_all(SIGKILL);
			killed = 1;
			end = now_ms() + KILL_WAIT_MS;
		}
		/* Every signal is blocked here, so this sleeps the whole 10 ms. */
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	detach_finish_all();
}

static struct detached *find_busy(const char *path, int fd)
{
	for (struct detached *d = detached; d; d = d->next)
		if (strcmp(d->log.path, path) == 0 || (fd >= 0 && logfile_same(&d->log, fd)))
			return d;
	return NULL;
}

void detach_start(struct conn *c, uint32_t id, const struct exec_req *r, const struct user_info *u, char **envp)
{
	const char *path = r->log_path;
	struct detached *busy = find_busy(path, -1);
	if (busy)
		return conn_send_error(c, id, EBUSY, "process %d still runs with the log '%s'", (int)busy->pid, path);
	struct detached *d = calloc(1, sizeof *d);
	if (!d)
		return conn_send_error(c, id, ENOMEM, "out of memory");
	d->out_fd = -1;
	int err = logfile_open(&d->log, path);
	if (err) {
		free(d);
		return conn_send_error(c, id, -err, "cannot open the log '%s': %s", path, strerror(-err));
	}
	/* Another name for the same file (a symlink, "//"): still the same log. */
	if ((busy = find_busy(path, d->log.fd))) {
		conn_send_error(c, id, EBUSY, "process %d still runs with the log '%s'", (int)busy->pid, busy->log.path);
		goto fail;
	}
	int pipes[3][2];
	if (spawn_pipes_open(pipes, 0, 1) < 0) {
		conn_send_error(c, id, errno, "pipe: %s", strerror(errno));
		spawn_pipes_close(pipes);
		goto fail;
	}
	d->pid = spawn_process(c, id, r, u, envp, pipes);
	d->out_fd = pipes[1][0];
	pipes[1][0] = -1;
	spawn_pipes_close(pipes);
	if (d->pid <= 0)
		goto fail; /* spawn_process queued the ERROR */
	set_nonblock(d->out_fd, 1);
	/* Without its status file the host could never learn that it ended: refuse to run it. */
	err = logfile_status(&d->log, "running %d %lld", (int)d->pid, (long long)unix_ms());
	if (err) {
		kill(-d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
		conn_send_error(c, id, -err, "cannot write '%s.status': %s", path, strerror(-err));
		goto fail;
	}
	d->next = detached;
	detached = d;
	size_t at = hf_begin(&c->out, HF_EXEC_STARTED, HF_FLAG_END, id);
	hf_put_u32(&c->out, T_PID, (uint32_t)d->pid);
	hf_end(&c->out, at);
	return;
fail:
	close_fd(&d->out_fd);
	logfile_close(&d->log);
	free(d);
}
