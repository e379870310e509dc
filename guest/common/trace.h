/*
 * Boot timeline probes, compiled in only with `make -C guest TRACE=1` (-DHF_TRACE_ON): each
 * HF_TRACE("name") writes "hf-trace <name> wall <ms> cpu <ms>" to the kernel log, the wall clock
 * being CLOCK_MONOTONIC and cpu this thread's CPU time, so `dmesg` after a boot shows where the
 * time went and which part of it was waiting (wall advancing faster than cpu). Each probe opens
 * /dev/kmsg anew: the kernel rate-limits lines per open file (10 per 5 s).
 */
#ifndef HF_COMMON_TRACE_H
#define HF_COMMON_TRACE_H

#ifdef HF_TRACE_ON
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static inline void hf_trace(const char *what)
{
	struct timespec w, c;
	clock_gettime(CLOCK_MONOTONIC, &w);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c);
	char line[160];
	int n = snprintf(line, sizeof line, "hf-trace %s wall %ld.%03ld cpu %ld.%03ld\n", what,
			 (long)w.tv_sec * 1000 + w.tv_nsec / 1000000, (w.tv_nsec / 1000) % 1000,
			 (long)c.tv_sec * 1000 + c.tv_nsec / 1000000, (c.tv_nsec / 1000) % 1000);
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd >= 0 && n > 0)
		(void)!write(fd, line, (size_t)n);
	if (fd >= 0)
		close(fd);
}
#define HF_TRACE(what) hf_trace(what)
#else
#define HF_TRACE(what) ((void)0)
#endif

#endif
