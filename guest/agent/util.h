/* Small helpers shared by the agent: monotonic time and logging to stderr (the console as PID 1). */
#ifndef HF_UTIL_H
#define HF_UTIL_H

#include <stdint.h>
#include <unistd.h>

uint64_t now_us(void);
/* Wall-clock time in ms since the epoch, for timestamps the host reads (monotonic time for the rest). */
int64_t unix_ms(void);
static inline int64_t now_ms(void)
{
	return (int64_t)(now_us() / 1000);
}

void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define log_msg(...) logf_(__VA_ARGS__)

/* Closes *fd if open and marks it closed. */
static inline void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Sets O_NONBLOCK on fd (or clears it); returns 0 or -1. */
int set_nonblock(int fd, int on);

#endif
