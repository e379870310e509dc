#define _GNU_SOURCE
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "req.h"

int fs_create_temp(const char *path, char **tmp)
{
	static unsigned counter;
	const char *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path) + 1 : 0;
	size_t cap = (size_t)dirlen + 64;
	char *name = malloc(cap);
	if (!name)
		return -ENOMEM;
	/* O_EXCL makes any collision (another agent's temp file, a leftover) just another attempt. */
	for (int attempt = 0; attempt < 100; attempt++) {
		snprintf(name, cap, "%.*s.hf-write.%d.%u", dirlen, path, (int)getpid(), ++counter);
		int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd >= 0) {
			*tmp = name;
			return fd;
		}
		if (errno != EEXIST) {
			int err = errno;
			free(name);
			return -err;
		}
	}
	free(name);
	return -EEXIST;
}

/* mkdir -p of the first len bytes of path, each new directory with mode. */
static int mkdir_prefix(const char *path, size_t len, mode_t mode)
{
	char buf[HF_PATH_MAX];
	if (len >= sizeof buf)
		return -ENAMETOOLONG;
	memcpy(buf, path, len);
	buf[len] = 0;
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != 0)
			continue;
		char saved = *p;
		*p = 0;
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = saved;
		if (!saved)
			break;
	}
	struct stat st;
	if (stat(buf, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int fs_mkdir_parents(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash || slash == path)
		return 0;
	return mkdir_prefix(path, (size_t)(slash - path), 0755);
}

int fs_mkdir(const char *path, mode_t mode, int parents)
{
	if (parents) {
		int err = fs_mkdir_parents(path);
		if (err)
			return err;
	}
	if (mkdir(path, mode) < 0) {
		struct stat st;
		if (errno == EEXIST && parents && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
			return 0;
		return -errno;
	}
	/* mkdir() applied the umask; the caller asked for this exact mode. */
	if (chmod(path, mode) < 0)
		return -errno;
	return 0;
}

static int remove_entry(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	int r = type == FTW_DP ? rmdir(p) : unlink(p);
	return r < 0 ? errno : 0;
}

int fs_remove(const char *path, int recursive)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 ? -errno : 0;
	if (!recursive)
		return rmdir(path) < 0 ? -errno : 0;
	/* Depth first, no symlink following, and not into mounted filesystems: a mount point
	 * inside the tree then fails with EBUSY instead of wiping another filesystem. */
	int r = nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	if (r < 0)
		return -errno;
	return r ? -r : 0;
}
