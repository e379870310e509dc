#define _GNU_SOURCE
#include "mount.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "ops.h"
#include "req.h"
#include "user.h"
#include "worker.h"

struct mount_job {
	struct job job;
	struct op *op; /* NULL once the operation ended unanswered; loop thread only */
	struct mount_req r;
	char dev[64]; /* the device SERIAL resolved to */
	int own;      /* USER was given: a fresh filesystem's root becomes uid:gid */
	uid_t uid;
	gid_t gid;
	int err;
	const char *step;
};

struct mount_op {
	struct op op;
	struct mount_job *job;
};

/* The /dev node of the block device whose virtio serial is `serial` (no udev: /sys/block/X/serial). */
static int find_serial(const char *serial, char *dev, size_t cap)
{
	DIR *d = opendir("/sys/block");
	if (!d)
		return -errno;
	int err = -ENODEV;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || strlen(e->d_name) > 32)
			continue;
		char path[96], got[HF_SERIAL_MAX + 2];
		snprintf(path, sizeof path, "/sys/block/%s/serial", e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, got, sizeof got - 1);
		close(fd);
		if (n <= 0)
			continue;
		while (n > 0 && (got[n - 1] == '\n' || got[n - 1] == ' ' || got[n - 1] == 0))
			n--;
		got[n] = 0;
		if (strcmp(got, serial) == 0) {
			snprintf(dev, cap, "/dev/%s", e->d_name);
			err = 0;
			break;
		}
	}
	closedir(d);
	return err;
}

/* A filesystem nothing was written to yet: its root is root's and holds nothing but lost+found. */
static int is_fresh(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) < 0 || st.st_uid != 0 || st.st_gid != 0)
		return 0;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int fresh = 1;
	struct dirent *e;
	while (fresh && (e = readdir(d)))
		fresh = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "lost+found");
	closedir(d);
	return fresh;
}

static void mount_run(struct job *jb)
{
	struct mount_job *j = (struct mount_job *)jb;
	const char *src = j->r.source;
	int err = 0;
	if (j->r.serial[0]) {
		j->step = "find the disk with serial";
		err = find_serial(j->r.serial, j->dev, sizeof j->dev);
		src = j->dev;
	}
	if (!err) {
		j->step = "create the mount point";
		err = fs_mkdir(j->r.target, 0755, 1);
	}
	if (!err) {
		j->step = "mount";
		unsigned long flags = MS_NOSUID | MS_NODEV | ((j->r.flags & HF_MOUNT_RDONLY) ? MS_RDONLY : 0);
		err = mount(src, j->r.target, j->r.fstype, flags, NULL) < 0 ? -errno : 0;
	}
	/* An image whose process runs as a user could not write to a new volume owned by root:
	 * like a new Docker volume, its root takes that user's ownership, once (while it is empty). */
	if (!err && j->own && !(j->r.flags & HF_MOUNT_RDONLY) && is_fresh(j->r.target)) {
		j->step = "give the new filesystem's root to USER";
		if (chown(j->r.target, j->uid, j->gid) < 0) {
			err = -errno;
			umount2(j->r.target, MNT_DETACH);
		}
	}
	j->err = -err;
}

static void mount_done(struct job *jb)
{
	struct mount_job *j = (struct mount_job *)jb;
	struct op *o = j->op;
	if (o && j->err) {
		const char *what = j->r.serial[0] ? j->r.serial : j->r.source;
		conn_fail_op(o, j->err, "%s '%s' on '%s': %s", j->step, what, j->r.target, strerror(j->err));
	} else if (o) {
		hf_frame(&o->conn->out, HF_OK, HF_FLAG_END, o->id, NULL, 0);
		conn_end_op(o);
	}
	free(j);
}

void mount_start(struct conn *c, uint32_t id, const struct hf_msg *m)
{
	struct mount_op *o = calloc(1, sizeof *o);
	struct mount_job *j = calloc(1, sizeof *j);
	if (!o || !j) {
		free(o);
		free(j);
		return conn_send_error(c, id, ENOMEM, "out of memory");
	}
	const char *why;
	int err = req_mount(m, &j->r, &why);
	if (err) {
		free(o);
		free(j);
		return conn_send_error(c, id, -err, "%s", why);
	}
	if (j->r.user[0]) {
		/* On the loop, as EXEC does: the passwd lookups are not for worker threads. */
		struct user_info u;
		err = user_resolve(j->r.user, &u, &why);
		if (err) {
			free(o);
			free(j);
			return conn_send_error(c, id, -err, "%s", why);
		}
		j->own = 1;
		j->uid = u.uid;
		j->gid = u.gid;
	}
	j->job.run = mount_run;
	j->job.done = mount_done;
	j->op = &o->op;
	o->job = j;
	conn_add_op(c, &o->op, id, OP_MOUNT);
	worker_submit(&j->job);
}

void mount_release(struct op *o)
{
	/* Still running: its answer must go nowhere. Done: mount_done is ending it and frees j. */
	((struct mount_op *)o)->job->op = NULL;
}
