#define _GNU_SOURCE
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "etcfile.h"
#include "hosts.h"
#include "util.h"
#include "req.h"

/* From linux/random.h, which musl does not ship. */
#ifndef RNDADDENTROPY
#define RNDADDENTROPY _IOW('R', 0x03, int[2])
#endif
#ifndef RNDRESEEDCRNG
#define RNDRESEEDCRNG _IO('R', 0x07)
#endif

/* An /etc/hosts larger than this is not one we know how to edit. */
#define HOSTS_MAX (64 * 1024)

#define RUN_DIR "/run/hf"

/* Which of /etc/hostname and /etc/hosts identity_bind_etc bound: those are rewritten in place. */
static int hostname_bound, hosts_bound;
/* 64 KiB off PID 1's stack; only the loop's thread (and PID 1's setup before it) gets here. */
static char hosts_text[HOSTS_MAX];

/*
 * Mixes the bytes into the input pool and credits them, then reseeds the CRNG at once: without the
 * reseed, clones of one snapshot would go on drawing from the same ChaCha key until the kernel's
 * next scheduled reseed (up to a minute). ENODATA from the reseed means the CRNG is not initialised
 * yet even with these bits credited (fewer than 256 in all): an error, since its output would not
 * yet depend on them.
 */
static int add_entropy(const uint8_t *p, uint32_t n, const char **step)
{
	struct {
		int entropy_count;
		int buf_size;
		uint32_t buf[HF_ENTROPY_MAX / 4];
	} info;
	info.entropy_count = (int)n * 8;
	info.buf_size = (int)n;
	memcpy(info.buf, p, n);
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*step = "open /dev/urandom";
		return -errno;
	}
	int err = 0;
	if (ioctl(fd, RNDADDENTROPY, &info) < 0) {
		*step = "RNDADDENTROPY";
		err = -errno;
	} else if (ioctl(fd, RNDRESEEDCRNG) < 0) {
		*step = errno == ENODATA ? "RNDRESEEDCRNG (the CRNG is not initialised yet: send 32 bytes or more)"
					 : "RNDRESEEDCRNG";
		err = -errno;
	}
	close(fd);
	explicit_bzero(&info, sizeof info);
	return err;
}

static int read_small(const char *path, char *out, size_t cap, size_t *n)
{
	*n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	int err = 0;
	for (;;) {
		if (*n == cap) {
			err = -EFBIG;
			break;
		}
		ssize_t r = read(fd, out + *n, cap - *n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			err = -errno;
		if (r <= 0)
			break;
		*n += (size_t)r;
	}
	close(fd);
	return err;
}

/* In place (a mount point cannot be renamed over); readers may see it short for an instant, as in Docker. */
static int write_in_place(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	int err = 0;
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			err = w < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)w;
	}
	if (close(fd) < 0 && !err)
		err = -errno;
	return err;
}

static int write_etc(const char *path, int bound, const char *text, size_t len)
{
	return bound ? write_in_place(path, text, len) : etcfile_write("", path, text, len, 0);
}

static int rename_in_hosts(const char *old_name, const char *new_name, const char **step)
{
	char *text = hosts_text;
	size_t n;
	int err = read_small("/etc/hosts", text, sizeof hosts_text, &n);
	if (err) {
		*step = err == -EFBIG ? "/etc/hosts is larger than 64 KiB" : "reading /etc/hosts";
		return err;
	}
	struct buf out = { 0 };
	hosts_rename(text, n, old_name, new_name, &out);
	if (out.oom)
		err = -ENOMEM;
	else
		err = write_etc("/etc/hosts", hosts_bound, (const char *)buf_data(&out), buf_used(&out));
	buf_free(&out);
	if (err)
		*step = "writing /etc/hosts";
	return err;
}

static int set_hostname(const char *name, const char **step)
{
	char old_name[HF_HOSTNAME_MAX + 2] = "";
	if (gethostname(old_name, sizeof old_name - 1) < 0)
		old_name[0] = 0;
	if (sethostname(name, strlen(name)) < 0) {
		*step = "sethostname";
		return -errno;
	}
	char line[HF_HOSTNAME_MAX + 2];
	int n = snprintf(line, sizeof line, "%s\n", name);
	int err = write_etc("/etc/hostname", hostname_bound, line, (size_t)n);
	if (err) {
		*step = "writing /etc/hostname";
		return err;
	}
	return rename_in_hosts(old_name, name, step);
}

void identity_apply(struct conn *c, uint32_t id, const struct hf_msg *m)
{
	struct identity_req r;
	const char *why;
	int err = req_identity(m, &r, &why);
	if (err)
		return conn_send_error(c, id, -err, "%s", why);
	if (r.entropy && (err = add_entropy(r.entropy, r.entropy_len, &why)))
		return conn_send_error(c, id, -err, "entropy: %s: %s", why, strerror(-err));
	if (r.has_time) {
		struct timespec ts = { .tv_sec = r.time_ns / 1000000000, .tv_nsec = r.time_ns % 1000000000 };
		if (clock_settime(CLOCK_REALTIME, &ts) < 0)
			return conn_send_error(c, id, errno, "time: clock_settime: %s", strerror(errno));
	}
	if (r.hostname[0] && (err = set_hostname(r.hostname, &why)))
		return conn_send_error(c, id, -err, "hostname: %s: %s", why, strerror(-err));
	hf_frame(&c->out, HF_OK, HF_FLAG_END, id, NULL, 0);
}

/* Copies `text` to RUN_DIR/<name> and binds it over /etc/<name>; 1 when bound. Only over a regular
 * file: a symlink's target, or a missing file on a read-only root, is left alone. */
static int bind_one(const char *name, const char *text, size_t len)
{
	char etc[64], run[64];
	snprintf(etc, sizeof etc, "/etc/%s", name);
	snprintf(run, sizeof run, RUN_DIR "/%s", name);
	struct stat st;
	if (lstat(etc, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	int fd = open(run, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	int err = fd < 0 ? -errno : 0;
	if (fd >= 0) {
		if (write(fd, text, len) != (ssize_t)len)
			err = -(errno ? errno : EIO);
		close(fd);
	}
	if (!err && mount(run, etc, NULL, MS_BIND, NULL) < 0)
		err = -errno;
	if (err) {
		log_msg("%s stays on the root disk (binding %s: %s)", etc, run, strerror(-err));
		unlink(run);
		return 0;
	}
	return 1;
}

/*
 * Why: a clone's IDENTITY used to rename new /etc/hostname and /etc/hosts into place on the root
 * disk (ext4), about 40 ms under TCG, nearly all of it QEMU translating ext4 and jbd2 code for the
 * first time in the new process; the same writes on tmpfs cost a fraction of that. The files on the
 * root disk are left as the image had them (a reboot binds them again, with the new boot's name).
 */
void identity_bind_etc(void)
{
	if (mkdir(RUN_DIR, 0755) < 0 && errno != EEXIST) {
		log_msg("mkdir " RUN_DIR ": %s", strerror(errno));
		return;
	}
	char line[HF_HOSTNAME_MAX + 2] = "";
	if (gethostname(line, HF_HOSTNAME_MAX + 1) < 0)
		line[0] = 0;
	line[HF_HOSTNAME_MAX] = 0;
	size_t n = strlen(line);
	line[n++] = '\n';
	hostname_bound = bind_one("hostname", line, n);
	size_t len;
	if (read_small("/etc/hosts", hosts_text, sizeof hosts_text, &len) == 0)
		hosts_bound = bind_one("hosts", hosts_text, len);
}
