/*
 * One protocol connection (a UNIX or vsock stream, or the virtio-serial port) and the operations
 * running on it. Objects that end during a loop iteration are only marked dead and freed by
 * conn_sweep() afterwards, because the poll set built for that iteration may still point at them.
 */
#ifndef HF_CONN_H
#define HF_CONN_H

#include <stdint.h>

#include "buf.h"
#include "proto.h"

/* Below this much unsent output we read more from children and files; above 8x it we also stop
 * reading requests, so a host that does not read cannot make us buffer without bound. */
#define OUT_HIGH (1024u * 1024u)
#define OUT_STOP_INPUT (8u * OUT_HIGH)

enum op_kind { OP_EXEC = 1, OP_WRITE, OP_READ, OP_PATH /* STAT, DELETE, MKDIR, RENAME */, OP_DIR /* READDIR */, OP_MOUNT };

struct conn;

struct op {
	uint32_t id;
	uint8_t kind;
	uint8_t dead;
	struct conn *conn;
	struct op *next; /* in conn->ops, or in the graveyard once dead */
};

enum conn_state {
	CONN_WAITING,  /* serial: READY not yet written (the host is not connected) */
	CONN_OPEN,
	CONN_DRAINING, /* serial after a protocol violation: discard input until the host goes */
};

struct conn {
	int fd;
	uint8_t serial;
	uint8_t state;
	uint8_t hello;
	uint8_t dead;
	size_t ready_sent; /* serial: bytes of READY already written */
	struct buf in, out;
	struct op *ops;
	struct conn *next;
};

extern struct conn *conns;

/* A stream connection is open at once and gets READY queued; a serial one starts WAITING. */
struct conn *conn_new(int fd, int serial);
void conn_on_readable(struct conn *c);
/* Writes queued output without blocking; drops a stream connection on a write error. */
void conn_flush(struct conn *c);
/* The host went away: end every operation; serial goes back to WAITING, streams are closed. */
void conn_lost(struct conn *c);
void conn_ready_frame(struct buf *b);
/* HELLO: end every operation and drop unsent output, as if the previous host had gone. */
void conn_new_session(struct conn *c);

struct op *conn_find_op(struct conn *c, uint32_t id);
void conn_add_op(struct conn *c, struct op *o, uint32_t id, uint8_t kind);
/* Unlinks o from its connection and queues it for freeing (after the kind's cleanup). */
void conn_end_op(struct op *o);
/* Ends o with an ERROR frame (the kind's cleanup kills processes / removes temp files). */
void conn_fail_op(struct op *o, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void conn_send_error(struct conn *c, uint32_t id, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Frees what died in this iteration. */
void conn_sweep(void);
/* Ends every connection, as on shutdown. */
void conn_close_all(void);

/* Implemented in dispatch.c: one complete frame from the host. */
void dispatch_frame(struct conn *c, const struct hf_frame *f);

#endif
