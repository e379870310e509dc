#define _GNU_SOURCE
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "ops.h"
#include "req.h"

struct write_op {
	struct op op;
	int fd;
	uint64_t written;
	char *tmp; /* NULL with APPEND */
	char *path;
};

struct read_op {
	struct op op;
	int fd;
	uint64_t off;
	uint64_t left;    /* bytes still wanted (LENGTH, or everything) */
	uint64_t end_hint; /* st_size at open; 0 when unknown (procfs reports 0) */
};

static void send_errno(struct conn *c, uint32_t id, int err, const char *what, const char *path)
{
	conn_send_error(c, id, err, "%s '%s': %s", what, path, strerror(err));
}

static int decode(struct conn *c, uint32_t id, const struct hf_msg *m, uint32_t mode, struct path_req *r)
{
	const char *why;
	int err = req_path(m, mode, r, &why);
	if (err)
		conn_send_error(c, id, -err, "%s", why);
	return err;
}

/* ---- WRITE ---------------------------------------------------------------------------------- */

/* Creates the file (or, with APPEND, opens it) that DATA frames will go to. */
static int open_target(struct write_op *w, const struct path_req *r)
{
	if (r->flags & HF_WRITE_APPEND) {
		int created = 1;
		w->fd = open(r->path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NONBLOCK, 0600);
		if (w->fd < 0 && errno == EEXIST) {
			created = 0;
			w->fd = open(r->path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NONBLOCK);
		}
		if (w->fd < 0)
			return -errno;
		struct stat st;
		if (fstat(w->fd, &st) < 0)
			return -errno;
		if (!S_ISREG(st.st_mode))
			return -EINVAL;
		if (created && fchmod(w->fd, r->mode) < 0)
			return -errno;
		return 0;
	}
	w->fd = fs_create_temp(r->path, &w->tmp);
	if (w->fd < 0)
		return w->fd;
	/* Exact MODE regardless of the umask. */
	if (fchmod(w->fd, r->mode) < 0)
		return -errno;
	return 0;
}

static void write_done(struct write_op *w)
{
	if (w->tmp) {
		if (rename(w->tmp, w->path) < 0)
			return conn_fail_op(&w->op, errno, "rename onto '%s': %s", w->path, strerror(errno));
		free(w->tmp);
		w->tmp = NULL; /* committed: release must not unlink it */
	}
	struct buf *b = &w->op.conn->out;
	size_t at = hf_begin(b, HF_OK, HF_FLAG_END, w->op.id);
	hf_put_u64(b, T_SIZE, w->written);
	hf_end(b, at);
	conn_end_op(&w->op);
}

void file_write_start(struct conn *c, const struct hf_frame *f, const struct hf_msg *m)
{
	struct path_req r;
	if (decode(c, f->id, m, 0644, &r))
		return;
	if (r.flags & HF_WRITE_MKDIRS) {
		int err = fs_mkdir_parents(r.path);
		if (err)
			return send_errno(c, f->id, -err, "create parents of", r.path);
	}
	struct write_op *w = calloc(1, sizeof *w);
	if (!w || !(w->path = strdup(r.path))) {
		free(w);
		return conn_send_error(c, f->id, ENOMEM, "out of memory");
	}
	conn_add_op(c, &w->op, f->id, OP_WRITE);
	int err = open_target(w, &r);
	if (err)
		return conn_fail_op(&w->op, -err, "write '%s': %s", r.path, strerror(-err));
	/* A WRITE that carries END itself has no DATA: an empty file. */
	if (f->flags & HF_FLAG_END)
		write_done(w);
}

void file_write_data(struct op *o, const struct hf_frame *f)
{
	struct write_op *w = (struct write_op *)o;
	const uint8_t *p = f->payload;
	size_t n = f->len;
	while (n) {
		ssize_t k = write(w->fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return conn_fail_op(o, errno, "write '%s': %s", w->path, strerror(errno));
		}
		p += k;
		n -= (size_t)k;
		w->written += (uint64_t)k;
	}
	if (f->flags & HF_FLAG_END)
		write_done(w);
}

/* ---- READ ----------------------------------------------------------------------------------- */

void file_read_start(struct conn *c, uint32_t id, const struct hf_msg *m)
{
	struct path_req r;
	if (decode(c, id, m, 0, &r))
		return;
	/* O_NONBLOCK so a FIFO cannot hang the agent in open(); such files are refused below. */
	int fd = open(r.path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return send_errno(c, id, errno, "read", r.path);
	struct stat st;
	int err = fstat(fd, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : !S_ISREG(st.st_mode) ? EINVAL : 0;
	struct read_op *rd = err ? NULL : calloc(1, sizeof *rd);
	if (!rd) {
		close(fd);
		if (err == EINVAL)
			return conn_send_error(c, id, EINVAL, "read '%s': not a regular file", r.path);
		return send_errno(c, id, err ? err : ENOMEM, "read", r.path);
	}
	rd->fd = fd;
	rd->off = r.offset;
	rd->left = r.has_length ? r.length : UINT64_MAX;
	rd->end_hint = (uint64_t)st.st_size;
	conn_add_op(c, &rd->op, id, OP_READ);
}

/* Queues one chunk; the READ ends with the chunk that reaches its end. */
static void read_chunk(struct read_op *rd)
{
	struct buf *b = &rd->op.conn->out;
	uint64_t want = rd->left < READ_CHUNK ? rd->left : READ_CHUNK;
	if (rd->end_hint && rd->off < rd->end_hint && rd->end_hint - rd->off < want)
		want = rd->end_hint - rd->off;
	/* Without a size (procfs, sysfs) ask for a whole chunk and keep what LENGTH wants: such files
	 * may refuse short reads (pagemap: EINVAL unless a multiple of 8), and a host that caps a
	 * READ at its limit + 1 byte must still learn that there is more. */
	size_t ask = want && !rd->end_hint ? READ_CHUNK : (size_t)want;
	uint8_t *p = buf_reserve(b, HF_HEADER_SIZE + ask);
	if (!p)
		return;
	ssize_t n = ask ? pread(rd->fd, p + HF_HEADER_SIZE, ask, (off_t)rd->off) : 0;
	if (n < 0) {
		conn_fail_op(&rd->op, errno, "read: %s", strerror(errno));
		return;
	}
	if ((uint64_t)n > want)
		n = (ssize_t)want;
	rd->off += (uint64_t)n;
	rd->left -= (uint64_t)n;
	/* The size at open is the end: the last chunk carries END without an extra empty frame. */
	int last = n == 0 || rd->left == 0 || (rd->end_hint && rd->off >= rd->end_hint);
	hf_header(p, HF_DATA, last ? HF_FLAG_END : 0, rd->op.id, (uint32_t)n);
	buf_commit(b, HF_HEADER_SIZE + (size_t)n);
	if (last)
		conn_end_op(&rd->op);
}

void file_read_pump(struct conn *c)
{
	struct op *next;
	for (struct op *o = c->ops; o; o = next) {
		next = o->next;
		if (buf_used(&c->out) >= OUT_HIGH || c->out.oom)
			return;
		if (o->kind == OP_READ)
			read_chunk((struct read_op *)o);
	}
}

int file_read_can_pump(const struct conn *c)
{
	if (c->dead || c->state != CONN_OPEN || c->out.oom || buf_used(&c->out) >= OUT_HIGH)
		return 0;
	for (const struct op *o = c->ops; o; o = o->next)
		if (o->kind == OP_READ)
			return 1;
	return 0;
}

void file_read_cancel(struct op *o)
{
	conn_fail_op(o, ECANCELED, "read cancelled by the host");
}

void file_write_cancel(struct op *o)
{
	struct write_op *w = (struct write_op *)o;
	conn_fail_op(o, ECANCELED, "write '%s' cancelled by the host", w->path);
}

/* ---- STAT, DELETE, MKDIR -------------------------------------------------------------------- */

void file_stat(struct conn *c, uint32_t id, const struct hf_msg *m)
{
	struct path_req r;
	if (decode(c, id, m, 0, &r))
		return;
	struct stat st;
	if (stat(r.path, &st) < 0)
		return send_errno(c, id, errno, "stat", r.path);
	size_t at = hf_begin(&c->out, HF_STAT_RESULT, HF_FLAG_END, id);
	hf_put_u64(&c->out, T_SIZE, (uint64_t)st.st_size);
	hf_put_u32(&c->out, T_MODE, (uint32_t)st.st_mode);
	hf_put_u32(&c->out, T_UID, (uint32_t)st.st_uid);
	hf_put_u32(&c->out, T_GID, (uint32_t)st.st_gid);
	hf_put_u64(&c->out, T_MTIME_NS, (uint64_t)((int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec));
	hf_end(&c->out, at);
}

void file_delete(struct conn *c, uint32_t id, const struct hf_msg *m)
{
	struct path_req r;
	if (decode(c, id, m, 0, &r))
		return;
	int err = fs_remove(r.path, r.flags & HF_DELETE_RECURSIVE);
	if (err)
		return send_errno(c, id, -err, "delete", r.path);
	hf_frame(&c->out, HF_OK, HF_FLAG_END, id, NULL, 0);
}

void file_mkdir(struct conn *c, uint32_t id, const struct hf_msg *m)
{
	struct path_req r;
	if (decode(c, id, m, 0755, &r))
		return;
	int err = fs_mkdir(r.path, r.mode, r.flags & HF_MKDIR_PARENTS);
	if (err)
		return send_errno(c, id, -err, "mkdir", r.path);
	hf_frame(&c->out, HF_OK, HF_FLAG_END, id, NULL, 0);
}

void file_release(struct op *o)
{
	if (o->kind == OP_WRITE) {
		struct write_op *w = (struct write_op *)o;
		if (w->fd >= 0)
			close(w->fd);
		if (w->tmp)
			unlink(w->tmp); /* abandoned or failed: never leave a half-written file */
		free(w->tmp);
		free(w->path);
	} else {
		close(((struct read_op *)o)->fd);
	}
}
