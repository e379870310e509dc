#define _GNU_SOURCE
#include "secrets.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "req.h"
#include "user.h"

#define SECRETS_DIR "/run/secrets"
/* Room for the host's bounds (256 KiB in all) twice over: a rotation writes the new files beside
 * the old ones before removing these. */
#define SECRETS_TMPFS_OPTS "size=1m,nr_inodes=1024"

/* Its own tmpfs, so a listing of /proc/mounts shows it, its size is bounded, and nothing in it can
 * ever be written back to the root disk. Mode 0500: the owner reads, nobody adds files. */
static int ensure_mount(uid_t uid, gid_t gid, const char **step)
{
	struct stat st, run;
	if (mkdir(SECRETS_DIR, 0500) < 0 && errno != EEXIST) {
		*step = "mkdir " SECRETS_DIR;
		return -errno;
	}
	if (lstat(SECRETS_DIR, &st) < 0 || lstat("/run", &run) < 0) {
		*step = "lstat " SECRETS_DIR;
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		*step = SECRETS_DIR " is not a directory";
		return -ENOTDIR;
	}
	if (st.st_dev == run.st_dev) {
		char opts[96];
		snprintf(opts, sizeof opts, "mode=0500,uid=%u,gid=%u," SECRETS_TMPFS_OPTS, (unsigned)uid, (unsigned)gid);
		if (mount("hf-secrets", SECRETS_DIR, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0) {
			*step = "mount tmpfs on " SECRETS_DIR;
			return -errno;
		}
		return 0;
	}
	/* Mounted by an earlier request (a rotation) or carried by a restored snapshot. */
	if (chown(SECRETS_DIR, uid, gid) < 0 || chmod(SECRETS_DIR, 0500) < 0) {
		*step = "chown " SECRETS_DIR;
		return -errno;
	}
	return 0;
}

/* Written beside its final name and renamed over it: a reader sees the old value or the new one. */
static int write_one(int dir, const char *name, const uint8_t *v, uint32_t n, uid_t uid, gid_t gid)
{
	char tmp[HF_SECRET_NAME_MAX + 8];
	snprintf(tmp, sizeof tmp, ".%s.tmp", name);
	unlinkat(dir, tmp, 0);
	int fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
	if (fd < 0)
		return -errno;
	int err = 0;
	for (uint32_t off = 0; off < n && !err;) {
		ssize_t w = write(fd, v + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			err = w < 0 ? -errno : -EIO;
		else
			off += (uint32_t)w;
	}
	if (!err && (fchown(fd, uid, gid) < 0 || fchmod(fd, 0400) < 0))
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && renameat(dir, tmp, dir, name) < 0)
		err = -errno;
	if (err)
		unlinkat(dir, tmp, 0);
	return err;
}

static int named(const struct hf_msg *m, const char *name)
{
	size_t len = strlen(name), pos = 0;
	struct hf_field f;
	while (hf_msg_next(m, T_ENV, &pos, &f))
		if (secret_name_len(&f) == len && memcmp(f.p, name, len) == 0)
			return 1;
	return 0;
}

/* Whatever the request does not name goes: removed secrets and any temp file a failure left. */
static int prune(int dir, const struct hf_msg *m)
{
	int fd = dup(dir);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	int err = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (!named(m, e->d_name) && unlinkat(dir, e->d_name, 0) < 0 && errno != ENOENT)
			err = -errno;
	}
	closedir(d);
	return err;
}

void secrets_apply(struct conn *c, uint32_t id, const struct hf_msg *m)
{
	struct secrets_req r;
	struct user_info u;
	const char *why;
	int err = req_secrets(m, &r, &why);
	if (err)
		return conn_send_error(c, id, -err, "%s", why);
	/* An agent run on a host (the black-box tests) must not mount over the host's /run/secrets. */
	if (getpid() != 1)
		return conn_send_error(c, id, EPERM, "SECRETS is only served by the guest's PID 1");
	if ((err = user_resolve(r.user[0] ? r.user : NULL, &u, &why)))
		return conn_send_error(c, id, -err, "user: %s", why);
	if ((err = ensure_mount(u.uid, u.gid, &why)))
		return conn_send_error(c, id, -err, "%s: %s", why, strerror(-err));
	int dir = open(SECRETS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dir < 0)
		return conn_send_error(c, id, errno, "open " SECRETS_DIR ": %s", strerror(errno));
	size_t pos = 0;
	struct hf_field f;
	char name[HF_SECRET_NAME_MAX + 1];
	while (!err && hf_msg_next(m, T_ENV, &pos, &f)) {
		uint32_t n = secret_name_len(&f);
		memcpy(name, f.p, n);
		name[n] = 0;
		if ((err = write_one(dir, name, f.p + n + 1, f.len - n - 1, u.uid, u.gid)))
			conn_send_error(c, id, -err, "writing " SECRETS_DIR "/%s: %s", name, strerror(-err));
	}
	if (!err && (err = prune(dir, m)))
		conn_send_error(c, id, -err, "pruning " SECRETS_DIR ": %s", strerror(-err));
	close(dir);
	if (!err)
		hf_frame(&c->out, HF_OK, HF_FLAG_END, id, NULL, 0);
}
