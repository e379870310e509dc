#define _GNU_SOURCE
#include "pathops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fsutil.h"
#include "ops.h"
#include "req.h"
#include "worker.h"

struct path_job {
	struct job job;
	/* The operation to answer; NULL once it ended without an answer (HELLO, the host went away).
	 * Only the loop's thread reads or writes it. */
	struct op *op;
	uint8_t type;
	uint32_t mode, flags;
	int err; /* result: 0 or an errno */
	struct stat st;
	char *to; /* RENAME: the new name; SYMLINK: the target. Inside this allocation after path */
	char path[];
};

struct path_op {
	struct op op;
	struct path_job *job;
};

static void path_run(struct job *jb)
{
	struct path_job *j = (struct path_job *)jb;
	int err;
	if (j->type == HF_STAT)
		err = stat(j->path, &j->st) < 0 ? -errno : 0;
	else if (j->type == HF_DELETE)
		err = fs_remove(j->path, j->flags & HF_DELETE_RECURSIVE);
	else if (j->type == HF_SYMLINK)
		err = symlink(j->to, j->path) < 0 ? -errno : 0;
	else if (j->type == HF_RENAME)
		/* renameat2 through syscall(): musl's wrapper is recent. NOREPLACE is RENAME_NOREPLACE. */
		err = syscall(SYS_renameat2, AT_FDCWD, j->path, AT_FDCWD, j->to, (unsigned)(j->flags & HF_RENAME_NOREPLACE)) < 0 ? -errno : 0;
	else
		err = fs_mkdir(j->path, j->mode, j->flags & HF_MKDIR_PARENTS);
	j->err = -err;
}

static void path_done(struct job *jb)
{
	struct path_job *j = (struct path_job *)jb;
	struct op *o = j->op;
	if (o) {
		struct conn *c = o->conn;
		const char *what = j->type == HF_STAT ? "stat" : j->type == HF_DELETE ? "delete" : j->type == HF_RENAME ? "rename" : j->type == HF_SYMLINK ? "symlink" : "mkdir";
		if (j->err && j->type == HF_RENAME) {
			conn_fail_op(o, j->err, "rename '%s' to '%s': %s", j->path, j->to, strerror(j->err));
		} else if (j->err) {
			conn_fail_op(o, j->err, "%s '%s': %s", what, j->path, strerror(j->err));
		} else if (j->type == HF_STAT) {
			const struct stat *st = &j->st;
			size_t at = hf_begin(&c->out, HF_STAT_RESULT, HF_FLAG_END, o->id);
			hf_put_u64(&c->out, T_SIZE, (uint64_t)st->st_size);
			hf_put_u32(&c->out, T_MODE, (uint32_t)st->st_mode);
			hf_put_u32(&c->out, T_UID, (uint32_t)st->st_uid);
			hf_put_u32(&c->out, T_GID, (uint32_t)st->st_gid);
			hf_put_u64(&c->out, T_MTIME_NS, (uint64_t)((int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec));
			hf_end(&c->out, at);
			conn_end_op(o);
		} else {
			hf_frame(&c->out, HF_OK, HF_FLAG_END, o->id, NULL, 0);
			conn_end_op(o);
		}
	}
	free(j);
}

void path_op_start(struct conn *c, uint32_t id, uint8_t type, const struct hf_msg *m)
{
	static struct rename_req rr; /* 8 KiB: not on the loop's stack; used only within this call */
	struct path_req *r = &rr.from;
	const char *why;
	int err = type == HF_RENAME    ? req_rename(m, &rr, &why)
		  : type == HF_SYMLINK ? req_symlink(m, &rr, &why)
				       : req_path(m, type == HF_MKDIR ? 0755 : 0, r, &why);
	if (err)
		return conn_send_error(c, id, -err, "%s", why);
	size_t len = strlen(r->path), tlen = type == HF_RENAME || type == HF_SYMLINK ? strlen(rr.to) + 1 : 0;
	struct path_op *o = calloc(1, sizeof *o);
	struct path_job *j = malloc(sizeof *j + len + 1 + tlen);
	if (!o || !j) {
		free(o);
		free(j);
		return conn_send_error(c, id, ENOMEM, "out of memory");
	}
	memset(j, 0, sizeof *j);
	memcpy(j->path, r->path, len + 1);
	if (tlen) {
		j->to = j->path + len + 1;
		memcpy(j->to, rr.to, tlen);
	}
	j->job.run = path_run;
	j->job.done = path_done;
	j->type = type;
	j->mode = r->mode;
	j->flags = r->flags;
	j->op = &o->op;
	o->job = j;
	conn_add_op(c, &o->op, id, OP_PATH);
	worker_submit(&j->job);
}

void path_op_release(struct op *o)
{
	struct path_job *j = ((struct path_op *)o)->job;
	/* Still running: its answer must go nowhere. Done: path_done is ending it and frees j. */
	j->op = NULL;
}
