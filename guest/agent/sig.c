#include "sig.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

volatile sig_atomic_t sig_child;
volatile sig_atomic_t sig_stop;
static volatile sig_atomic_t armed_fd = -1;
static volatile sig_atomic_t armed_flags;

static sigset_t handled, open_mask, blocked_mask;
static const int handled_signals[] = { SIGCHLD, SIGTERM, SIGINT, SIGPWR, SIGIO, SIGHUP };

static void on_signal(int s)
{
	int saved = errno;
	if (s == SIGCHLD)
		sig_child = 1;
	else if (s == SIGTERM || s == SIGINT || s == SIGPWR)
		sig_stop = s;
	/* SIGIO (virtio-serial host connected) and SIGHUP only need to wake us up. */
	if (armed_fd >= 0)
		fcntl(armed_fd, F_SETFL, armed_flags | O_NONBLOCK);
	errno = saved;
}

void sig_setup(void)
{
	sigemptyset(&handled);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	/* No SA_RESTART: a blocked write or ppoll must return EINTR so the loop sees the flag. */
	sa.sa_flags = SA_NOCLDSTOP;
	for (size_t i = 0; i < sizeof handled_signals / sizeof handled_signals[0]; i++)
		sigaddset(&handled, handled_signals[i]);
	sa.sa_mask = handled;
	for (size_t i = 0; i < sizeof handled_signals / sizeof handled_signals[0]; i++)
		sigaction(handled_signals[i], &sa, NULL);
	/* Writes to a vanished host must fail with EPIPE, not kill PID 1. */
	signal(SIGPIPE, SIG_IGN);
	sigprocmask(SIG_BLOCK, &handled, &open_mask);
	for (size_t i = 0; i < sizeof handled_signals / sizeof handled_signals[0]; i++)
		sigdelset(&open_mask, handled_signals[i]);
	sigprocmask(SIG_BLOCK, NULL, &blocked_mask);
}

const sigset_t *sig_open_mask(void)
{
	return &open_mask;
}

long sig_interruptible_write(int fd, const void *p, unsigned long n)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	fl &= ~O_NONBLOCK;
	fcntl(fd, F_SETFL, fl);
	armed_flags = fl;
	armed_fd = fd;
	sigprocmask(SIG_SETMASK, &open_mask, NULL);
	/* Pending signals were delivered by the unmask above; anything later trips the handler. */
	long r;
	if (sig_child || sig_stop) {
		errno = EINTR;
		r = -1;
	} else {
		r = write(fd, p, n);
	}
	int saved = errno;
	sigprocmask(SIG_SETMASK, &blocked_mask, NULL);
	armed_fd = -1;
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	errno = saved;
	return r;
}

void sig_child_reset(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	for (size_t i = 0; i < sizeof handled_signals / sizeof handled_signals[0]; i++)
		sigaction(handled_signals[i], &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}
