#define _GNU_SOURCE
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "etcfile.h"
#include "hosts.h"
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

static int rename_in_hosts(const char *old_name, const char *new_name, const char **step)
{
	/* Static: 64 KiB off PID 1's stack; only the loop's thread gets here. */
	static char text[HOSTS_MAX];
	size_t n;
	int err = read_small("/etc/hosts", text, sizeof text, &n);
	if (err) {
		*step = err == -EFBIG ? "/etc/hosts is larger than 64 KiB" : "reading /etc/hosts";
		return err;
	}
	struct buf out = { 0 };
	hosts_rename(text, n, old_name, new_name, &out);
	if (out.oom)
		err = -ENOMEM;
	else
		err = etcfile_write("", "/etc/hosts", (const char *)buf_data(&out), buf_used(&out), 0);
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
	int err = etcfile_write("", "/etc/hostname", line, (size_t)n, 0);
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
