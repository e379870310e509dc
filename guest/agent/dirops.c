#define _GNU_SOURCE
#include "dirops.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ops.h"
#include "req.h"

struct dir_op {
	struct op op;
	DIR *d;
};

void dir_start(struct conn *c, uint32_t id, const struct hf_msg *m)
{
	struct path_req r;
	const char *why;
	int err = req_path(m, 0, &r, &why);
	if (err)
		return conn_send_error(c, id, -err, "%s", why);
	if (r.flags & ~HF_READDIR_NOFOLLOW)
		return conn_send_error(c, id, EINVAL, "FLAGS has bits this agent does not know");
	int of = O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK | (r.flags & HF_READDIR_NOFOLLOW ? O_NOFOLLOW : 0);
	int fd = open(r.path, of);
	struct stat st;
	/* O_DIRECTORY wins over O_NOFOLLOW (ENOTDIR): say what refused it. */
	if (fd < 0 && errno == ENOTDIR && (r.flags & HF_READDIR_NOFOLLOW) && lstat(r.path, &st) == 0 && S_ISLNK(st.st_mode))
		errno = ELOOP;
	if (fd < 0)
		return conn_send_error(c, id, errno, "readdir '%s': %s", r.path, strerror(errno));
	struct dir_op *o = calloc(1, sizeof *o);
	if (!o || !(o->d = fdopendir(fd))) {
		err = o ? errno : ENOMEM;
		free(o);
		close(fd);
		return conn_send_error(c, id, err, "readdir '%s': %s", r.path, strerror(err));
	}
	conn_add_op(c, &o->op, id, OP_DIR);
}

static int is_dot(const char *n)
{
	return n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2]));
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Appends one entry to the open frame; 0, or -errno when the entry must end the listing. */
static int put_entry(struct buf *b, int dfd, const char *name)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno; /* removed since readdir saw it: not there */
	char target[PATH_MAX];
	ssize_t tl = 0;
	if (S_ISLNK(st.st_mode)) {
		tl = readlinkat(dfd, name, target, sizeof target);
		if (tl < 0)
			tl = 0;
	}
	size_t nl = strlen(name);
	uint32_t len = HF_ENTRY_HEADER + (uint32_t)nl + (uint32_t)tl;
	uint8_t *p = buf_reserve(b, HF_FIELD_HEADER + len);
	if (!p)
		return -ENOMEM;
	p[0] = T_ENTRY;
	put_le(p + 1, len, 4);
	uint8_t *e = p + HF_FIELD_HEADER;
	put_le(e, (uint32_t)st.st_mode, 4);
	put_le(e + 4, (uint32_t)st.st_uid, 4);
	put_le(e + 8, (uint32_t)st.st_gid, 4);
	put_le(e + 12, (uint64_t)st.st_size, 8);
	put_le(e + 20, (uint64_t)((int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec), 8);
	put_le(e + 28, nl, 2);
	memcpy(e + HF_ENTRY_HEADER, name, nl);
	memcpy(e + HF_ENTRY_HEADER + nl, target, (size_t)tl);
	buf_commit(b, HF_FIELD_HEADER + len);
	return 0;
}

void dir_pump(struct op *op)
{
	struct dir_op *o = (struct dir_op *)op;
	struct buf *b = &op->conn->out;
	size_t at = hf_begin(b, HF_DIRENTS, 0, op->id);
	if (b->oom)
		return;
	int dfd = dirfd(o->d), err = 0, end = 0;
	while (buf_used(b) - at < HF_DIRENTS_MAX) {
		errno = 0;
		struct dirent *de = readdir(o->d);
		if (!de) {
			err = errno;
			end = 1;
			break;
		}
		if (is_dot(de->d_name))
			continue;
		if ((err = -put_entry(b, dfd, de->d_name)))
			break;
	}
	if (err) {
		/* Drop the half-built frame: the ERROR ends the operation. */
		b->len = b->off + at;
		return conn_fail_op(op, err, "readdir: %s", strerror(err));
	}
	if (end)
		buf_data(b)[at + 5] |= HF_FLAG_END;
	hf_end(b, at);
	if (end)
		conn_end_op(op);
}

void dir_cancel(struct op *o)
{
	conn_fail_op(o, ECANCELED, "readdir cancelled by the host");
}

void dir_release(struct op *op)
{
	closedir(((struct dir_op *)op)->d);
}
