#define _GNU_SOURCE
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
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

/* Directories deeper than this are closed before descending and scanned again afterwards, so a
 * deep tree costs one file descriptor per level only down to here. */
#define DELETE_OPEN_DEPTH 32

static int is_dot(const char *name)
{
	return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

/* Removes the directory path[0..len) (a buffer of HF_PATH_MAX) with everything in it, never
 * leaving the filesystem dev. Appends to path while descending and restores it. */
static int remove_tree(char *path, size_t len, dev_t dev, int depth)
{
	for (;;) {
		/* O_NOFOLLOW: a directory swapped for a symlink since it was looked at is not followed. */
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		DIR *d = fdopendir(fd);
		if (!d) {
			int err = errno;
			close(fd);
			return -err;
		}
		int err = 0, removed = 0;
		size_t sub = 0;
		for (;;) {
			errno = 0;
			struct dirent *de = readdir(d);
			if (!de) {
				err = -errno;
				break;
			}
			const char *name = de->d_name;
			if (is_dot(name))
				continue;
			int isdir = de->d_type == DT_DIR;
			if (isdir || de->d_type == DT_UNKNOWN) {
				struct stat st;
				if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
					if (errno == ENOENT)
						continue;
					err = -errno;
					break;
				}
				isdir = S_ISDIR(st.st_mode);
				/* Another filesystem mounted inside the tree: refuse rather than wipe it. */
				if (isdir && st.st_dev != dev) {
					err = -EBUSY;
					break;
				}
			}
			if (!isdir) {
				if (unlinkat(fd, name, 0) < 0 && errno != ENOENT) {
					err = -errno;
					break;
				}
				removed = 1;
				continue;
			}
			size_t n = strlen(name);
			if (len + 1 + n >= HF_PATH_MAX) {
				err = -ENAMETOOLONG;
				break;
			}
			path[len] = '/';
			memcpy(path + len + 1, name, n + 1);
			sub = len + 1 + n;
			removed = 1;
			if (depth >= DELETE_OPEN_DEPTH)
				break; /* descend below, with this directory closed */
			err = remove_tree(path, sub, dev, depth + 1);
			path[len] = 0;
			sub = 0;
			if (err)
				break;
		}
		closedir(d);
		if (!err && sub) {
			err = remove_tree(path, sub, dev, depth + 1);
			path[len] = 0;
			if (err)
				return err;
			continue; /* scan this directory again from its start */
		}
		if (err)
			return err;
		if (rmdir(path) == 0)
			return 0;
		/* Some filesystems may skip entries of a directory changing under readdir(): another
		 * pass, as long as the previous one removed something. */
		if (errno != ENOTEMPTY || !removed)
			return -errno;
	}
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
	/* Depth first and without following symlinks. Unlike nftw(), which stops descending at its
	 * fd limit and then fails with ENOTEMPTY, any depth a path can reach is removed. */
	char buf[HF_PATH_MAX];
	size_t len = strlen(path);
	if (len >= sizeof buf)
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	return remove_tree(buf, len, st.st_dev, 0);
}

int fs_sync_parent(const char *path)
{
	char dir[HF_PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t len = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path);
	if (len >= sizeof dir)
		return -ENAMETOOLONG;
	memcpy(dir, len ? path : ".", len ? len : 1);
	dir[len ? len : 1] = 0;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}
