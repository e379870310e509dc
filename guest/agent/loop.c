#define _GNU_SOURCE
#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "detach.h"
#include "exec.h"
#include "files.h"
#include "pid1.h"
#include "sig.h"
#include "transport.h"
#include "util.h"
#include "worker.h"

enum slot_kind { S_LISTEN, S_CONN, S_STDIN, S_STDOUT, S_STDERR, S_DETACHED, S_WORKER };

struct slot {
	uint8_t kind;
	void *ptr;
};

static struct pollfd *pfds;
static struct slot *slots;
static size_t nslots, cap;
static int shutdown_req = -1;
/* While the serial host is away and other transports are served, retry READY this often (a
 * SIGIO from virtio_console on host connect usually wakes us sooner). */
#define SERIAL_RETRY_MS 1000
#define FINAL_FLUSH_MS 1000
/* Not PID 1: how long detached processes get to handle SIGTERM when the agent stops (PID 1 gives
 * every process the same in pid1_shutdown). */
#define DETACHED_TERM_GRACE_MS 2000

void loop_request_shutdown(int reboot)
{
	shutdown_req = reboot ? 1 : 0;
}

static void add(int fd, short events, uint8_t kind, void *ptr)
{
	if (nslots == cap) {
		size_t ncap = cap ? cap * 2 : 64;
		struct pollfd *p = realloc(pfds, ncap * sizeof *p);
		if (p)
			pfds = p;
		struct slot *s = realloc(slots, ncap * sizeof *s);
		if (s)
			slots = s;
		if (!p || !s)
			return; /* this fd waits for the next round */
		cap = ncap;
	}
	pfds[nslots] = (struct pollfd){ .fd = fd, .events = events };
	slots[nslots++] = (struct slot){ kind, ptr };
}

static void build(struct transports *t)
{
	nslots = 0;
	for (int i = 0; i < t->nlisten; i++)
		add(t->listen_fd[i], POLLIN, S_LISTEN, &t->listen_fd[i]);
	if (worker_fd() >= 0)
		add(worker_fd(), POLLIN, S_WORKER, NULL);
	for (struct conn *c = conns; c; c = c->next) {
		if (c->state == CONN_WAITING)
			continue; /* virtio-serial reports POLLHUP without a host: polling would spin */
		short ev = buf_used(&c->out) ? POLLOUT : 0;
		if (buf_used(&c->out) < OUT_STOP_INPUT)
			ev |= POLLIN;
		add(c->fd, ev, S_CONN, c);
	}
	for (struct exec_op *e = execs; e; e = e->all_next) {
		if (e->in_fd >= 0 && buf_used(&e->stdin_q))
			add(e->in_fd, POLLOUT, S_STDIN, e);
		/* Backpressure: a child writing faster than the host reads blocks on its pipe. */
		if (buf_used(&e->op.conn->out) >= OUT_HIGH)
			continue;
		int ev;
		if (e->out_fd >= 0 && (ev = exec_output_events(e, e->out_fd)) >= 0)
			add(e->out_fd, (short)ev, S_STDOUT, e);
		if (e->err_fd >= 0 && (ev = exec_output_events(e, e->err_fd)) >= 0)
			add(e->err_fd, (short)ev, S_STDERR, e);
	}
	/* Always read: their output goes to a file, never waits for a host. */
	for (struct detached *d = detached; d; d = d->next)
		if (d->out_fd >= 0)
			add(d->out_fd, POLLIN, S_DETACHED, d);
}

static void dispatch(void)
{
	for (size_t i = 0; i < nslots; i++) {
		short re = pfds[i].revents;
		if (!re)
			continue;
		struct slot *s = &slots[i];
		if (s->kind == S_LISTEN) {
			transport_accept(*(int *)s->ptr);
		} else if (s->kind == S_WORKER) {
			/* Answers finished file work; it only ends operations (freed after the sweep). */
			worker_complete();
		} else if (s->kind == S_CONN) {
			struct conn *c = s->ptr;
			if (!c->dead && c->state != CONN_WAITING && (re & (POLLIN | POLLHUP | POLLERR)))
				conn_on_readable(c);
			if (!c->dead && c->state != CONN_WAITING && (re & POLLOUT))
				conn_flush(c);
		} else if (s->kind == S_DETACHED) {
			/* May free the process's record: no other slot of this round points at it. */
			detach_on_pipe(s->ptr);
		} else {
			struct exec_op *e = s->ptr;
			exec_on_pipe(e, s->kind - S_STDIN);
		}
	}
}

static void flush_all(void)
{
	struct conn *next;
	for (struct conn *c = conns; c; c = next) {
		next = c->next;
		if (c->out.oom || c->in.oom) {
			log_msg("out of memory: dropping a connection");
			conn_lost(c);
			continue;
		}
		conn_flush(c);
	}
}

/* Gives queued output (the OK of SHUTDOWN) a bounded chance to reach the host. */
static void final_flush(void)
{
	int64_t end = now_ms() + FINAL_FLUSH_MS;
	for (;;) {
		flush_all();
		build(&(struct transports){ 0 });
		size_t n = 0;
		for (size_t i = 0; i < nslots; i++)
			if (slots[i].kind == S_CONN && (pfds[i].events & POLLOUT))
				pfds[n++] = (struct pollfd){ .fd = pfds[i].fd, .events = POLLOUT };
		int64_t left = end - now_ms();
		if (n == 0 || left <= 0)
			return;
		poll(pfds, n, (int)left);
	}
}

static __attribute__((noreturn)) void stop(struct transports *t, int reboot)
{
	final_flush();
	/* As PID 1 every process, ours included, first gets SIGTERM and the grace period. */
	if (getpid() == 1)
		pid1_shutdown(reboot);
	exec_kill_all();
	detach_stop_all(DETACHED_TERM_GRACE_MS);
	conn_close_all();
	if (t->unix_path)
		unlink(t->unix_path);
	exit(0);
}

/* Serial READY: blocking when nothing else needs serving, else one attempt per wakeup. */
static int serial_waiting(struct transports *t)
{
	struct conn *s = t->serial;
	if (!s || s->state != CONN_WAITING)
		return 0;
	/* Blocking is only allowed when nothing else needs us meanwhile: detached processes keep
	 * writing output while no host is connected, and their pipes must keep being drained. */
	int alone = t->nlisten == 0 && conns == s && !s->next && !detached;
	transport_serial_async(s, !alone);
	if (transport_serial_ready(s, alone))
		transport_serial_async(s, 0);
	return alone;
}

/* The earlier of two deadlines, where -1 means none. */
static int64_t earliest(int64_t a, int64_t b)
{
	return a < 0 ? b : b < 0 || a < b ? a : b;
}

static int poll_timeout(struct transports *t, int busy, int64_t next)
{
	if (busy)
		return 0;
	int64_t now = now_ms();
	int64_t ms = next < 0 ? -1 : next > now ? next - now : 0;
	if (t->serial && t->serial->state == CONN_WAITING && (ms < 0 || ms > SERIAL_RETRY_MS))
		ms = SERIAL_RETRY_MS;
	return (int)ms;
}

void loop_run(struct transports *t)
{
	for (;;) {
		if (sig_child) {
			sig_child = 0;
			exec_reap();
		}
		if (sig_stop) {
			log_msg("signal %d: stopping", (int)sig_stop);
			stop(t, 0);
		}
		if (shutdown_req >= 0)
			stop(t, shutdown_req);
		if (serial_waiting(t))
			continue; /* back to the top to handle whatever interrupted the wait */
		int64_t next = earliest(exec_timers(now_ms()), detach_timers(now_ms()));
		for (struct conn *c = conns; c; c = c->next)
			if (c->state == CONN_OPEN)
				file_read_pump(c);
		flush_all();
		conn_sweep();
		/* Only after the flush: a pump that went past OUT_HIGH may have been drained entirely by
		 * it, and then neither POLLOUT nor an incoming frame would wake us for the rest. */
		int busy = 0;
		for (struct conn *c = conns; c; c = c->next)
			if (file_read_can_pump(c))
				busy = 1;
		build(t);
		int timeout = poll_timeout(t, busy, next);
		struct timespec ts = { timeout / 1000, (timeout % 1000) * 1000000L };
		int n = ppoll(pfds, nslots, timeout < 0 ? NULL : &ts, sig_open_mask());
		if (n > 0)
			dispatch();
		else if (n < 0 && errno != EINTR)
			log_msg("ppoll: %s", strerror(errno));
		flush_all();
		conn_sweep();
	}
}
