#define _GNU_SOURCE
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dirops.h"
#include "fsutil.h"
#include "ops.h"
#include "req.h"
#include "worker.h"

/* The end of a WRITE, in a worker: fsync (FSYNC), rename over the target, fsync of its directory
 * (FSYNC), close. It owns the fd and the names: the operation may end meanwhile (the host went
 * away), and then the commit still completes (the host had sent all the data) unanswered. */
struct commit_job {
	struct job job;
	struct op *op; /* NULL once the WRITE ended without an answer; the loop's thread only */
	int fd;
	int sync;
	char *tmp; /* NULL with APPEND */
	char *path;
	int err;          /* result: 0 or an errno */
	const char *step; /* what failed */
};

struct write_op {
	struct op op;
	int fd;
	uint32_t flags;
	uint64_t written;
	char *tmp; /* NULL with APPEND */
	char *path;
	struct commit_job *commit; /* set once END arrived: DATA and CANCEL are ignored from then on */
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

static void commit_fail(struct commit_job *j, int err, const char *step)
{
	j->err = err;
	j->step = step;
}

/* A file mounted over (the agent's /etc/hosts and /etc/hostname, bound from /run/hf) cannot be
 * renamed onto: EBUSY. Its new content is copied in place instead, as Docker's own tools do. */
static int copy_in_place(const char *tmp, const char *path, int sync)
{
	int in = open(tmp, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	int out = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
	int err = out < 0 ? -errno : 0;
	char chunk[4096];
	while (!err) {
		ssize_t r = read(in, chunk, sizeof chunk);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? -errno : 0;
			break;
		}
		for (ssize_t off = 0; off < r && !err;) {
			ssize_t w = write(out, chunk + off, (size_t)(r - off));
			if (w < 0 && errno != EINTR)
				err = -errno;
			off += w > 0 ? w : 0;
		}
	}
	if (!err && sync && fsync(out) < 0)
		err = -errno;
	if (out >= 0 && close(out) < 0 && !err)
		err = -errno;
	close(in);
	return err;
}

static void commit_run(struct job *jb)
{
	struct commit_job *j = (struct commit_job *)jb;
	int renamed = 0, err;
	if (j->sync && fsync(j->fd) < 0)
		commit_fail(j, errno, "fsync");
	else if (!j->tmp || rename(j->tmp, j->path) == 0)
		renamed = 1;
	else if (errno != EBUSY)
		commit_fail(j, errno, "rename onto");
	else if ((err = copy_in_place(j->tmp, j->path, j->sync)))
		commit_fail(j, -err, "copying in place onto (a mount point)");
	/* The rename (or, with APPEND, the creation) is an entry in the directory: sync that too. */
	err = renamed && j->sync ? fs_sync_parent(j->path) : 0;
	if (err)
		commit_fail(j, -err, "fsync the directory of");
	close(j->fd);
	if (j->tmp && !renamed)
		unlink(j->tmp); /* never leave a half-written file (nor, once copied, a spare one) */
}

static void commit_done(struct job *jb)
{
	struct commit_job *j = (struct commit_job *)jb;
	struct op *o = j->op;
	if (o && j->err) {
		conn_fail_op(o, j->err, "%s '%s': %s", j->step, j->path, strerror(j->err));
	} else if (o) {
		struct buf *b = &o->conn->out;
		size_t at = hf_begin(b, HF_OK, HF_FLAG_END, o->id);
		hf_put_u64(b, T_SIZE, ((struct write_op *)o)->written);
		hf_end(b, at);
		conn_end_op(o);
	}
	free(j->tmp);
	free(j->path);
	free(j);
}

/* END arrived: hand the fd and the names to a commit job. */
static void write_done(struct write_op *w)
{
	struct commit_job *j = calloc(1, sizeof *j);
	if (!j)
		return conn_fail_op(&w->op, ENOMEM, "write '%s': out of memory", w->path);
	j->job.run = commit_run;
	j->job.done = commit_done;
	j->op = &w->op;
	j->fd = w->fd;
	j->sync = !!(w->flags & HF_WRITE_FSYNC);
	j->tmp = w->tmp;
	j->path = w->path;
	w->fd = -1;
	w->tmp = NULL;
	w->path = NULL;
	w->commit = j;
	worker_submit(&j->job);
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
	w->flags = r.flags;
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
	if (w->commit)
		return; /* sent after END: nothing more belongs to this file */
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
		else if (o->kind == OP_DIR)
			dir_pump(o);
	}
}

int file_read_can_pump(const struct conn *c)
{
	if (c->dead || c->state != CONN_OPEN || c->out.oom || buf_used(&c->out) >= OUT_HIGH)
		return 0;
	for (const struct op *o = c->ops; o; o = o->next)
		if (o->kind == OP_READ || o->kind == OP_DIR)
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
	if (w->commit)
		return;
	conn_fail_op(o, ECANCELED, "write '%s' cancelled by the host", w->path);
}

void file_release(struct op *o)
{
	if (o->kind == OP_WRITE) {
		struct write_op *w = (struct write_op *)o;
		if (w->commit)
			w->commit->op = NULL; /* the commit goes on; its answer goes nowhere */
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
