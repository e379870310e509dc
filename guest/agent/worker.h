/*
 * Worker threads for file work that can block for long (a recursive delete of a big tree, fsync
 * on a slow disk, anything on a hung mount), so the event loop keeps serving everything else
 * (docs/adr/0007-blocking-file-work-in-worker-threads.md).
 *
 * A job's run() executes in a worker and may touch only the job's own memory: never connections,
 * operations, buffers or the logger. Once it returns, the loop calls the job's done() (on the
 * loop's thread, when worker_fd() polls readable), which delivers the result and frees the job.
 */
#ifndef HF_WORKER_H
#define HF_WORKER_H

struct job {
	void (*run)(struct job *j);
	void (*done)(struct job *j);
	struct job *next; /* owned by worker.c */
};

/* Queues j. Without any worker (none could be started) j runs right here, done() included. */
void worker_submit(struct job *j);
/* The fd that polls readable when jobs have finished; -1 before the first job. */
int worker_fd(void);
/* Calls done() of every finished job. */
void worker_complete(void);

#endif
