/*
 * Signals, handled synchronously: every signal we care about stays blocked except inside ppoll()
 * and around the one blocking write (READY on virtio-serial). Handlers only set flags.
 */
#ifndef HF_SIG_H
#define HF_SIG_H

#include <signal.h>

extern volatile sig_atomic_t sig_child; /* SIGCHLD: reap */
extern volatile sig_atomic_t sig_stop;  /* SIGTERM/SIGINT/SIGPWR: the signal number */

void sig_setup(void);
/* The mask to pass to ppoll(): ours with the handled signals open. */
const sigset_t *sig_open_mask(void);
/*
 * A blocking write on fd that a signal always interrupts, even one that arrives between our last
 * flag check and the syscall: the handler then switches fd to O_NONBLOCK, so the write returns at
 * once instead of sleeping until the host connects. Returns what write() returned.
 */
long sig_interruptible_write(int fd, const void *p, unsigned long n);
/* In a forked child before exec: default dispositions, nothing blocked. */
void sig_child_reset(void);

#endif
