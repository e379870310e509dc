#define _GNU_SOURCE
#include "cmdline.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define CMDLINE_MAX 4096

int cmdline_has(const char *word)
{
	char buf[CMDLINE_MAX];
	if (!*word)
		return 0;
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	size_t len = strlen(word);
	for (char *p = buf; (p = strstr(p, word)); p += len) {
		int starts = p == buf || p[-1] == ' ' || p[-1] == '\t';
		int ends = p[len] == '\0' || p[len] == ' ' || p[len] == '\t' || p[len] == '\n';
		if (starts && ends)
			return 1;
	}
	return 0;
}
