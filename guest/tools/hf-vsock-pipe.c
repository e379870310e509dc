/*
 * hf-vsock-pipe CID PORT: connects an AF_VSOCK stream socket and copies stdin to it and it to
 * stdout, like `nc -N` for vsock (which busybox lacks). Guest-side test tool, in the base root disk
 * as /usr/bin/hf-vsock-pipe: with hf.vsock_loopback=1 a host test runs it through an ordinary exec
 * to speak the agent protocol to the agent's vsock listener (CID 1, port 1024), so the agent's
 * real vsock accept/serve path runs without a vsock device (test/guest/vsock-loopback.test.ts).
 *
 *   stdin EOF   -> shutdown(SHUT_WR) once everything read is sent; keep copying the other way
 *   socket EOF  -> exit 0 once everything received is on stdout
 *   exit 1: connect or I/O failed (the reason on stderr); exit 2: bad arguments
 *
 * Each direction has one fixed buffer and is read only when that buffer is empty, so memory is
 * bounded whatever the peers do, and a slow reader on one side stops reading on the other
 * (backpressure) instead of buffering. All three fds are non-blocking, so a full socket never
 * keeps us from draining the peer's output to stdout (the agent stops reading a connection
 * whose replies are not being read: blocking on either side could deadlock).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* <linux/vm_sockets.h> is not part of musl's headers; this is its stable ABI. */
struct sockaddr_vm {
	sa_family_t svm_family;
	unsigned short svm_reserved1;
	unsigned int svm_port;
	unsigned int svm_cid;
	unsigned char svm_flags;
	unsigned char svm_zero[3];
};

#define BUF_SIZE (64 * 1024)

struct pipe_buf {
	char data[BUF_SIZE];
	size_t off, len;
};

static struct pipe_buf up;   /* stdin -> socket */
static struct pipe_buf down; /* socket -> stdout */

static int parse_u32(const char *s, unsigned int *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v > 0xffffffffUL || s[0] == '-')
		return -1;
	*out = (unsigned int)v;
	return 0;
}

static _Noreturn void die(const char *what)
{
	fprintf(stderr, "hf-vsock-pipe: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* One read into an empty buffer; 0 at EOF, 1 otherwise (including "nothing yet"). */
static int fill(int fd, struct pipe_buf *b, const char *what)
{
	ssize_t n = read(fd, b->data, sizeof b->data);
	if (n > 0) {
		b->off = 0;
		b->len = (size_t)n;
		return 1;
	}
	if (n == 0)
		return 0;
	if (errno == EAGAIN || errno == EINTR)
		return 1;
	die(what);
}

/* Writes what the buffer holds, as much as the fd takes now. */
static void drain(int fd, struct pipe_buf *b, const char *what)
{
	while (b->len > 0) {
		ssize_t n = write(fd, b->data + b->off, b->len);
		if (n > 0) {
			b->off += (size_t)n;
			b->len -= (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		die(what);
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK };
	if (argc != 3 || parse_u32(argv[1], &sa.svm_cid) < 0 || parse_u32(argv[2], &sa.svm_port) < 0) {
		fprintf(stderr, "usage: hf-vsock-pipe CID PORT   (e.g. 1 1024: this guest's agent)\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN); /* a closed stdout or socket is an EPIPE we report */

	int sock = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		die("socket(AF_VSOCK)");
	if (connect(sock, (struct sockaddr *)&sa, sizeof sa) < 0) {
		char what[64];
		snprintf(what, sizeof what, "connect to cid %u port %u", sa.svm_cid, sa.svm_port);
		die(what);
	}
	set_nonblock(sock);
	set_nonblock(STDIN_FILENO);
	set_nonblock(STDOUT_FILENO);

	int in_eof = 0, sock_eof = 0, shut = 0;
	while (!sock_eof || down.len > 0) {
		if (in_eof && up.len == 0 && !shut) {
			if (shutdown(sock, SHUT_WR) < 0)
				die("shutdown");
			shut = 1;
		}
		struct pollfd p[3] = {
			{ .fd = !in_eof && up.len == 0 ? STDIN_FILENO : -1, .events = POLLIN },
			{ .fd = sock, .events = (short)((!sock_eof && down.len == 0 ? POLLIN : 0) | (up.len ? POLLOUT : 0)) },
			{ .fd = down.len ? STDOUT_FILENO : -1, .events = POLLOUT },
		};
		if (p[1].events == 0)
			p[1].fd = -1;
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (p[0].revents)
			in_eof = !fill(STDIN_FILENO, &up, "read stdin");
		if (p[1].revents & (POLLOUT | POLLERR))
			drain(sock, &up, "write to the socket");
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR) && !sock_eof && down.len == 0)
			sock_eof = !fill(sock, &down, "read from the socket");
		if (p[2].revents)
			drain(STDOUT_FILENO, &down, "write stdout");
	}
	return 0;
}
