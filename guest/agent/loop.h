/* The event loop: one ppoll over listeners, connections, exec pipes and finished worker jobs;
 * never returns as PID 1. */
#ifndef HF_LOOP_H
#define HF_LOOP_H

struct transports;

void loop_run(struct transports *t);
/* Called by the SHUTDOWN handler after it queued OK: the loop flushes, then powers off. */
void loop_request_shutdown(int reboot);

#endif
