#define _GNU_SOURCE
#include "logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "req.h"
#include "util.h"

static uint64_t log_max = LOG_MAX_DEFAULT;

void logfile_set_max(uint64_t bytes)
{
	if (bytes)
		log_max = bytes;
}

static int open_append(const char *path)
{
	/* O_NONBLOCK only so a FIFO at path fails (ENXIO) instead of hanging PID 1 in open(). */
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0644);
	if (fd < 0)
		return -errno;
	struct stat st;
	int err = fstat(fd, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EINVAL : 0;
	if (err) {
		close(fd);
		return err;
	}
	set_nonblock(fd, 0);
	return fd;
}

int logfile_open(struct logfile *l, const char *path)
{
	memset(l, 0, sizeof *l);
	l->fd = -1;
	int err = fs_mkdir_parents(path);
	if (err)
		return err;
	l->fd = open_append(path);
	if (l->fd < 0)
		return l->fd;
	l->path = strdup(path);
	if (!l->path) {
		logfile_close(l);
		return -ENOMEM;
	}
	struct stat st;
	fstat(l->fd, &st);
	l->size = (uint64_t)st.st_size;
	/* An earlier run's unterminated last line must not swallow our exit note. */
	char last = '\n';
	if (l->size && pread(l->fd, &last, 1, st.st_size - 1) != 1)
		last = '\n';
	l->at_line_start = last == '\n';
	return 0;
}

/* `<path>.1` replaced by the full log, and a new empty log. */
static void rotate(struct logfile *l)
{
	char old[HF_PATH_MAX + 8];
	snprintf(old, sizeof old, "%s.1", l->path);
	/* ENOENT: someone removed the log; starting a new one at path is what they would expect. */
	if (rename(l->path, old) == 0 || errno == ENOENT) {
		int fd = open_append(l->path);
		if (fd >= 0) {
			close(l->fd);
			l->fd = fd;
			l->size = 0;
			return;
		}
	}
	/* Could not rotate: start over in place, so the cap still holds. */
	if (ftruncate(l->fd, 0) < 0)
		log_msg("cannot rotate or truncate %s: %s", l->path, strerror(errno));
	l->size = 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

void logfile_write(struct logfile *l, const void *data, size_t n)
{
	const uint8_t *p = data;
	if (l->fd < 0 || n == 0)
		return;
	/* Split exactly at the cap: the log and its .1 together hold a contiguous tail of the output. */
	while (n) {
		if (l->size >= log_max)
			rotate(l);
		uint64_t room = log_max - l->size;
		size_t take = n < room ? n : (size_t)room;
		int err = write_all(l->fd, p, take);
		if (err) {
			/* ENOSPC and the like: drop this output, but keep draining the pipe so the
			 * process does not block; say so once per episode, not per chunk. */
			if (!l->failing)
				log_msg("write %s: %s (output is dropped)", l->path, strerror(-err));
			l->failing = 1;
			return;
		}
		l->failing = 0;
		l->size += take;
		l->at_line_start = p[take - 1] == '\n';
		p += take;
		n -= take;
	}
}

void logfile_close(struct logfile *l)
{
	close_fd(&l->fd);
	free(l->path);
	l->path = NULL;
}

int logfile_status(const struct logfile *l, const char *fmt, ...)
{
	char line[160], path[HF_PATH_MAX + 16];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof line - 1)
		return -EINVAL;
	line[n++] = '\n';
	snprintf(path, sizeof path, "%s.status", l->path);
	char *tmp;
	int fd = fs_create_temp(path, &tmp);
	if (fd < 0)
		return fd;
	int err = write_all(fd, (const uint8_t *)line, (size_t)n);
	if (!err && fchmod(fd, 0644) < 0)
		err = -errno;
	close(fd);
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err)
		unlink(tmp);
	free(tmp);
	return err;
}

int logfile_same(const struct logfile *l, int fd)
{
	struct stat a, b;
	return l->fd >= 0 && fstat(l->fd, &a) == 0 && fstat(fd, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}
