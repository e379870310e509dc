#define _GNU_SOURCE
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "dirscan.h"
#include "sig.h"
#include "trace.h"
#include "util.h"

/* <linux/vm_sockets.h> is not part of musl's headers; this is its stable ABI. */
struct sockaddr_vm {
	sa_family_t svm_family;
	unsigned short svm_reserved1;
	unsigned int svm_port;
	unsigned int svm_cid;
	unsigned char svm_flags;
	unsigned char svm_zero[3];
};
#define VMADDR_CID_ANY (~0u)

static int add_listener(struct transports *t, int fd)
{
	if (t->nlisten >= MAX_LISTENERS || listen(fd, 64) < 0) {
		int err = t->nlisten >= MAX_LISTENERS ? EMFILE : errno;
		close(fd);
		return -err;
	}
	t->listen_fd[t->nlisten++] = fd;
	return 0;
}

int transport_listen_unix(struct transports *t, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path); /* a stale socket from an earlier run */
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	t->unix_path = path;
	return add_listener(t, fd);
}

int transport_listen_vsock(struct transports *t)
{
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno; /* EAFNOSUPPORT without a vsock transport: fine, serial only */
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = HF_VSOCK_PORT };
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	return add_listener(t, fd);
}

int transport_open_serial(struct transports *t, const char *path)
{
	int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	/* A virtio port is not a tty, but --serial may name one (a pty in tests, a UART): without raw
	 * mode the line discipline would echo and rewrite our binary frames. */
	struct termios tio;
	if (isatty(fd) && tcgetattr(fd, &tio) == 0) {
		cfmakeraw(&tio);
		tcsetattr(fd, TCSANOW, &tio);
	}
	t->serial = conn_new(fd, 1);
	if (!t->serial) {
		close(fd);
		return -ENOMEM;
	}
	return 0;
}

struct find_serial {
	char *dev;
	unsigned long cap;
};

/* For one entry of /sys/class/virtio-ports: 1 (stop) if its name is ours. */
static int match_serial(const char *port, void *arg)
{
	struct find_serial *f = arg;
	char path[300], name[64] = { 0 };
	snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", port);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, name, sizeof name - 1);
	close(fd);
	if (n <= 0)
		return 0;
	name[strcspn(name, "\n")] = 0;
	if (strcmp(name, HF_SERIAL_NAME) != 0)
		return 0;
	snprintf(f->dev, f->cap, "/dev/%s", port);
	return 1;
}

int transport_find_serial(char *dev, unsigned long cap)
{
	struct find_serial f = { dev, cap };
	int rc = dir_each("/sys/class/virtio-ports", match_serial, &f);
	return rc == 1 ? 0 : rc < 0 ? rc : -ENOENT;
}

void transport_accept(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_msg("accept: %s", strerror(errno));
			return;
		}
		struct conn *c = conn_new(fd, 0);
		if (!c) {
			close(fd);
			return;
		}
		conn_flush(c); /* READY right away */
	}
}

void transport_serial_async(struct conn *c, int on)
{
	int fl = fcntl(c->fd, F_GETFL);
	if (fl < 0 || !!(fl & O_ASYNC) == !!on)
		return;
	if (on)
		fcntl(c->fd, F_SETOWN, getpid());
	fcntl(c->fd, F_SETFL, on ? fl | O_ASYNC : fl & ~O_ASYNC);
}

int transport_serial_ready(struct conn *c, int blocking)
{
	/* Stack storage: READY is ~31 bytes, so buf_reserve never needs to (re)allocate it. */
	uint8_t frame[64];
	struct buf b = { .p = frame, .cap = sizeof frame };
	conn_ready_frame(&b);
	while (c->ready_sent < b.len) {
		long n;
		if (blocking) {
			n = sig_interruptible_write(c->fd, frame + c->ready_sent, b.len - c->ready_sent);
		} else {
			n = write(c->fd, frame + c->ready_sent, b.len - c->ready_sent);
		}
		if (n > 0) {
			c->ready_sent += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			return 0;
		/* Not a virtio port after all (a pty whose other side is gone, a file): retry slowly
		 * instead of spinning. */
		log_msg("serial: write READY: %s", n < 0 ? strerror(errno) : "no progress");
		struct timespec pause = { 0, 200 * 1000 * 1000 };
		ppoll(NULL, 0, &pause, sig_open_mask());
		return 0;
	}
	c->state = CONN_OPEN;
	HF_TRACE("agent-ready-sent");
	return 1;
}
