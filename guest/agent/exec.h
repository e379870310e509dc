/* Processes started by EXEC: spawn, pipes, stdin queue, timeouts, reaping, EXIT. */
#ifndef HF_EXEC_H
#define HF_EXEC_H

#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "conn.h"

struct exec_op {
	struct op op;
	pid_t pid; /* also the process group: the child calls setsid() */
	int in_fd, out_fd, err_fd;
	struct buf stdin_q;
	uint8_t stdin_end, reaped, timed_out, exit_sent;
	uint8_t pty;  /* in_fd is the PTY master, out_fd a dup of it, err_fd -1 */
	uint8_t flow; /* output only while credit > 0 */
	uint64_t credit;
	int64_t grace_ms; /* after the reap: when EXIT goes out even if a pipe is still open */
	int status;
	uint64_t start_us, end_us;
	int64_t deadline_ms; /* 0: no timeout */
	struct exec_op *all_next;
};

/* Every exec whose EXIT is not sent yet, across connections (the reaper matches pids here). */
extern struct exec_op *execs;

void exec_start(struct conn *c, uint32_t id, const struct hf_msg *m);
void exec_stdin(struct op *o, const struct hf_frame *f);
void exec_signal(struct op *o, const struct hf_frame *f);
/* RESIZE: TIOCSWINSZ on the PTY (the foreground process group gets SIGWINCH). */
void exec_resize(struct op *o, const struct hf_frame *f);
/* CREDIT: the host took SIZE more bytes of output. */
void exec_credit(struct op *o, const struct hf_frame *f);
/* Whether this exec may send output now (flow control). */
int exec_may_output(const struct exec_op *e);
/* Poll events for one of its output fds: POLLIN; 0 when out of credit with nothing in the fd
 * (only its hang-up, the EOF, is of interest); -1 when out of credit with output waiting. */
int exec_output_events(const struct exec_op *e, int fd);
/* CANCEL: SIGKILL the process group; the EXIT follows as usual. */
void exec_cancel(struct op *o);
/* Pipe events from the poll loop; which is 0 stdin, 1 stdout, 2 stderr. */
void exec_on_pipe(struct exec_op *e, int which);
/* waitpid(-1, WNOHANG) until nothing is left; orphans inherited by PID 1 are reaped too. */
void exec_reap(void);
/* Fires due timeouts and post-exit grace periods; returns the next deadline in ms, or -1. */
int64_t exec_timers(int64_t now);
/* SIGKILLs the process group of every running exec. */
void exec_kill_all(void);

#endif
