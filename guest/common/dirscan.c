#define _GNU_SOURCE
#include "dirscan.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The kernel's record, spelled out: musl and glibc disagree on the getdents wrappers. */
struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* getdents into a static buffer instead of opendir: under TCG the first malloc of a process costs
 * milliseconds (brk, mmap and the TLB flushes they cause), and on the boot path a DIR would be the
 * only reason to allocate. */
int dir_each(const char *dir, int (*fn)(const char *name, void *arg), void *arg)
{
	static char buf[4096] __attribute__((aligned(8)));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	long n;
	int stop = 0;
	while (!stop && (n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		for (long at = 0; !stop && at < n;) {
			struct linux_dirent64 *e = (struct linux_dirent64 *)(buf + at);
			at += e->d_reclen;
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				stop = fn(e->d_name, arg);
		}
	}
	close(fd);
	return stop;
}
