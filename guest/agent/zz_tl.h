/* TEMPORARY timeline marker (perf investigation); not for commit. */
#ifndef HF_TL_H
#define HF_TL_H
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
static inline void hf_tl(const char *what)
{
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char b[128];
	int n = snprintf(b, sizeof b, "<6>TL %s\n", what);
	(void)!write(fd, b, (size_t)n);
	close(fd);
}
#endif
