/* Starting the process of an EXEC: its pipes, and fork + exec with failures reported as ERROR. */
#ifndef HF_SPAWN_H
#define HF_SPAWN_H

#include <stdint.h>
#include <sys/types.h>

#include "conn.h"
#include "req.h"
#include "user.h"

/* Output pipes are enlarged to this so a bulk writer fills a big frame between two loop
 * iterations (each one is costly in a TCG guest); also the most one output frame carries. */
#define OUTPUT_PIPE_SIZE (256u * 1024u)

/* pipes[0]: the child's stdin (a pipe, or /dev/null when !stdin_pipe); [1] stdout; [2] stderr.
 * With merge_err, stderr is the same pipe as stdout (pipes[2][1] a dup of its write end, so the
 * two streams keep their relative order; pipes[2][0] is -1). All close-on-exec. Returns 0 or -1
 * with errno; unused ends are -1. */
int spawn_pipes_open(int pipes[3][2], int stdin_pipe, int merge_err);
void spawn_pipes_close(int pipes[3][2]);
/* Forks and waits until the child exec'd or failed. Returns the pid (leader of its own session
 * and process group), or 0 after queueing the ERROR that names what failed. */
pid_t spawn_process(struct conn *c, uint32_t id, const struct exec_req *r, const struct user_info *u, char **envp,
	int pipes[3][2]);

#endif
