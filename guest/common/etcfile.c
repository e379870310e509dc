#define _GNU_SOURCE
#include "etcfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int etcfile_write(const char *root, const char *path, const char *text, size_t len, int unlink_first)
{
	char final[256], tmp[264];
	if (snprintf(final, sizeof final, "%s%s", root, path) >= (int)sizeof final)
		return -ENAMETOOLONG;
	snprintf(tmp, sizeof tmp, "%s.hf-tmp", final);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	int err = write(fd, text, len) == (ssize_t)len ? 0 : -(errno ? errno : EIO);
	if (close(fd) < 0 && !err)
		err = -errno;
	/* rename, not a write through: /etc/resolv.conf is often a symlink into /run, which is empty.
	 * Unlinking first (boot only): ext4 starts writeback of a file renamed over another
	 * (auto_da_alloc), which slows the boot; PID 1 runs alone then, so nobody sees the instant
	 * without the file. Later, processes may be reading it: a plain rename keeps it always there. */
	if (!err && ((unlink_first && unlink(final) < 0 && errno != ENOENT) || rename(tmp, final) < 0))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}
