/*
 * Where connections come from: the virtio-serial port named hf.agent (QEMU), AF_VSOCK port 1024
 * (Firecracker), or for tests a UNIX socket or any openable path.
 */
#ifndef HF_TRANSPORT_H
#define HF_TRANSPORT_H

#include "conn.h"

#define MAX_LISTENERS 2

struct transports {
	int listen_fd[MAX_LISTENERS];
	int nlisten;
	struct conn *serial;
	const char *unix_path; /* unlinked on exit */
};

/* 0 or -errno. */
int transport_listen_unix(struct transports *t, const char *path);
int transport_listen_vsock(struct transports *t);
int transport_open_serial(struct transports *t, const char *path);
/* Finds /dev/vportNpM whose /sys/class/virtio-ports/vportNpM/name is hf.agent; 0 or -ENOENT. */
int transport_find_serial(char *dev, unsigned long cap);
/* Accepts every pending connection on a listener. */
void transport_accept(int lfd);
/*
 * Announces READY on the serial port. Blocking: the write waits (interruptibly) for the host to
 * connect, the only way to wait on virtio-serial without busy polling. Non-blocking: one attempt,
 * used when other transports must keep being served. Returns 1 once READY is out.
 */
int transport_serial_ready(struct conn *c, int blocking);
/* SIGIO from virtio_console on host (dis)connect: how a non-blocking wait learns the host came.
 * Only while waiting: when on, every arriving byte would also raise a signal. */
void transport_serial_async(struct conn *c, int on);

#endif
