/*
 * Detached EXEC (FLAGS bit DETACHED): the machine's main process. Unlike an ordinary exec it
 * belongs to no connection, so it outlives the host that started it (a daemon restart). Its stdout
 * and stderr share one pipe that the loop copies into its log (logfile.c); its state goes to
 * `<log>.status`. At most one runs per log.
 */
#ifndef HF_DETACH_H
#define HF_DETACH_H

#include <stdint.h>
#include <sys/types.h>

#include "conn.h"
#include "logfile.h"
#include "req.h"
#include "user.h"

struct detached {
	pid_t pid; /* also its session and process group */
	int out_fd; /* our end of the child's stdout+stderr pipe; -1 after EOF */
	uint8_t reaped;
	int status;
	int64_t end_ms;      /* monotonic, at the reap: starts the grace for a pipe a grandchild holds */
	int64_t end_unix_ms; /* the same moment, for the status file */
	struct logfile log;
	struct detached *next;
};

/* Every detached process whose exit is not recorded yet. */
extern struct detached *detached;

/* Answers EXEC_STARTED with END (the operation is over for the host), or ERROR. */
void detach_start(struct conn *c, uint32_t id, const struct exec_req *r, const struct user_info *u, char **envp);
/* The pipe is readable: copy into the log. May finish (free) d. */
void detach_on_pipe(struct detached *d);
/* From the reaper: 1 when pid was a detached process (its exit is recorded once its output is in). */
int detach_reaped(pid_t pid, int status);
/* Ends the grace of reaped processes whose pipe a grandchild keeps open; next deadline or -1. */
int64_t detach_timers(int64_t now);
/* Shutdown, between reaps: copy what the pipes hold now (the processes are handling SIGTERM). */
void detach_pump_all(void);
/* Shutdown, last step: copy what is left and record every exit that was reaped. */
void detach_finish_all(void);
/* Not PID 1 (tests): SIGTERM each process group, copy output while they exit, SIGKILL after
 * grace_ms, record their exits. As PID 1 the shutdown in pid1.c does this for every process. */
void detach_stop_all(int grace_ms);

#endif
