#define _GNU_SOURCE
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util.h"

/* Enough that a few hung paths (a dead network mount) leave room for the rest; beyond it jobs
 * wait for a free worker, the loop never does. */
#define MAX_WORKERS 4
/* A recursive delete recurses once per directory level; paths end at 4096 bytes, so at most
 * ~2048 levels ("a/a/..."), at ~300 bytes of stack each about 600 KiB. */
#define WORKER_STACK (1024u * 1024u)

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
/* Under mu: jobs waiting for a worker (FIFO), finished jobs (LIFO), and the counts that decide
 * whether a new worker is needed. */
static struct job *queue_head, **queue_tail = &queue_head, *finished;
static int queued, idle;
/* Only the loop's thread touches these. */
static int nworkers;
static int efd = -1;

static void *worker_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	for (;;) {
		while (!queue_head) {
			idle++;
			pthread_cond_wait(&wake, &mu);
			idle--;
		}
		struct job *j = queue_head;
		queue_head = j->next;
		if (!queue_head)
			queue_tail = &queue_head;
		queued--;
		pthread_mutex_unlock(&mu);
		j->run(j);
		pthread_mutex_lock(&mu);
		j->next = finished;
		finished = j;
		uint64_t one = 1;
		/* Cannot fail short of the counter overflowing, which a reader resets long before. */
		ssize_t w = write(efd, &one, sizeof one);
		(void)w;
	}
	return NULL;
}

/* Starts one more worker; 0 or an errno. */
static int start_worker(void)
{
	pthread_attr_t attr;
	int err = pthread_attr_init(&attr);
	if (err)
		return err;
	pthread_attr_setstacksize(&attr, WORKER_STACK);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* Workers inherit this mask: every signal stays with the loop's thread, which takes them
	 * synchronously in ppoll (sig.h). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_t t;
	err = pthread_create(&t, &attr, worker_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (!err)
		nworkers++;
	return err;
}

void worker_submit(struct job *j)
{
	if (efd < 0 && (efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		log_msg("eventfd: %s", strerror(errno));
	pthread_mutex_lock(&mu);
	int need = efd >= 0 && queued + 1 > idle && nworkers < MAX_WORKERS;
	pthread_mutex_unlock(&mu);
	if (need) {
		int err = start_worker();
		if (err && nworkers == 0)
			log_msg("starting a worker thread: %s; file work runs in the event loop", strerror(err));
	}
	if (nworkers == 0) {
		j->run(j);
		j->done(j);
		return;
	}
	pthread_mutex_lock(&mu);
	j->next = NULL;
	*queue_tail = j;
	queue_tail = &j->next;
	queued++;
	pthread_cond_signal(&wake);
	pthread_mutex_unlock(&mu);
}

int worker_fd(void)
{
	return nworkers ? efd : -1;
}

void worker_complete(void)
{
	uint64_t n;
	ssize_t r = read(efd, &n, sizeof n);
	(void)r;
	pthread_mutex_lock(&mu);
	struct job *list = finished;
	finished = NULL;
	pthread_mutex_unlock(&mu);
	/* In the order they finished. */
	struct job *rev = NULL;
	while (list) {
		struct job *next = list->next;
		list->next = rev;
		rev = list;
		list = next;
	}
	while (rev) {
		struct job *j = rev;
		rev = j->next;
		j->done(j);
	}
}
