#include "conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ops.h"
#include "util.h"

struct conn *conns;
static struct op *graveyard;
static struct conn *dead_conns;

/* Receive buffers start small and grow to the largest frame seen (at most 1 MiB + header). */
#define IN_MIN (64u * 1024u)

void conn_ready_frame(struct buf *b)
{
	size_t at = hf_begin(b, HF_READY, HF_FLAG_END, 0);
	hf_put_u32(b, T_VERSION, HF_PROTOCOL_VERSION);
	hf_put_str(b, T_AGENT_VERSION, HF_AGENT_VERSION);
	hf_end(b, at);
}

struct conn *conn_new(int fd, int serial)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->fd = fd;
	c->serial = (uint8_t)serial;
	c->state = serial ? CONN_WAITING : CONN_OPEN;
	if (!serial)
		conn_ready_frame(&c->out);
	c->next = conns;
	conns = c;
	return c;
}

struct op *conn_find_op(struct conn *c, uint32_t id)
{
	for (struct op *o = c->ops; o; o = o->next)
		if (o->id == id)
			return o;
	return NULL;
}

void conn_add_op(struct conn *c, struct op *o, uint32_t id, uint8_t kind)
{
	o->id = id;
	o->kind = kind;
	o->conn = c;
	o->next = c->ops;
	c->ops = o;
}

void conn_end_op(struct op *o)
{
	if (o->dead)
		return;
	struct op **pp = &o->conn->ops;
	while (*pp && *pp != o)
		pp = &(*pp)->next;
	if (*pp)
		*pp = o->next;
	o->dead = 1;
	if (o->kind == OP_EXEC)
		exec_release(o);
	else if (o->kind == OP_PATH)
		path_op_release(o);
	else if (o->kind == OP_DIR)
		dir_release(o);
	else if (o->kind == OP_MOUNT)
		mount_release(o);
	else
		file_release(o);
	o->next = graveyard;
	graveyard = o;
}

static void verror(struct conn *c, uint32_t id, int err, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	size_t at = hf_begin(&c->out, HF_ERROR, HF_FLAG_END, id);
	hf_put_u32(&c->out, T_ERRNO, (uint32_t)err);
	hf_put_str(&c->out, T_MESSAGE, msg);
	hf_end(&c->out, at);
}

void conn_send_error(struct conn *c, uint32_t id, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verror(c, id, err, fmt, ap);
	va_end(ap);
}

void conn_fail_op(struct op *o, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verror(o->conn, o->id, err, fmt, ap);
	va_end(ap);
	conn_end_op(o);
}

static void end_all_ops(struct conn *c)
{
	while (c->ops)
		conn_end_op(c->ops);
}

void conn_new_session(struct conn *c)
{
	end_all_ops(c);
	/* Unsent output belongs to the previous session; the new host skips whatever part of it
	 * already went out while it looks for its HELLO reply. */
	buf_reset(&c->out, 0);
	c->hello = 0;
}

void conn_lost(struct conn *c)
{
	if (c->dead)
		return;
	end_all_ops(c);
	buf_reset(&c->in, 0);
	buf_reset(&c->out, 0);
	c->hello = 0;
	if (c->serial) {
		c->state = CONN_WAITING;
		c->ready_sent = 0;
		return;
	}
	c->dead = 1;
	close(c->fd);
	c->fd = -1;
	struct conn **pp = &conns;
	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	c->next = dead_conns;
	dead_conns = c;
}

/* The stream cannot be resynchronised: tell the host why, then hang up (or, on serial where the
 * guest cannot hang up, ignore the host until it does). */
static void protocol_violation(struct conn *c, const char *why)
{
	log_msg("protocol violation: %s", why);
	end_all_ops(c);
	buf_reset(&c->in, 0);
	conn_send_error(c, 0, EPROTO, "%s", why);
	conn_flush(c);
	if (c->dead)
		return;
	if (c->serial) {
		c->state = CONN_DRAINING;
		return;
	}
	conn_lost(c);
}

static void parse_input(struct conn *c)
{
	while (!c->dead && c->state == CONN_OPEN) {
		struct hf_frame f;
		long r = hf_parse_frame(buf_data(&c->in), buf_used(&c->in), &f);
		if (r == HF_BAD_LENGTH)
			return protocol_violation(c, "frame length exceeds 1 MiB");
		if (r == HF_BAD_RESERVED)
			return protocol_violation(c, "reserved header bytes are not zero");
		if (r == HF_NEED_MORE)
			return;
		dispatch_frame(c, &f);
		if (c->dead || c->state != CONN_OPEN)
			return; /* the connection was reset under us; its buffer is gone */
		buf_consume(&c->in, (size_t)r);
	}
}

/* One read, parsed at once; returns the bytes read, 0 when there is nothing more for now. */
static size_t read_some(struct conn *c)
{
	/* Make room for the rest of the frame being received, at least IN_MIN. */
	size_t want = IN_MIN;
	if (buf_used(&c->in) >= HF_HEADER_SIZE) {
		size_t need = HF_HEADER_SIZE + hf_le32(buf_data(&c->in)) - buf_used(&c->in);
		if (need > want && need <= HF_MAX_PAYLOAD + HF_HEADER_SIZE)
			want = need;
	}
	uint8_t *p = buf_reserve(&c->in, want);
	if (!p) {
		log_msg("out of memory for a receive buffer");
		conn_lost(c);
		return 0;
	}
	ssize_t n = read(c->fd, p, c->in.cap - c->in.len);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		conn_lost(c);
		return 0;
	}
	if (n < 0)
		return 0;
	if (c->state == CONN_DRAINING) {
		buf_reset(&c->in, IN_MIN);
		return (size_t)n;
	}
	buf_commit(&c->in, (size_t)n);
	parse_input(c);
	return c->dead || c->state == CONN_WAITING ? 0 : (size_t)n;
}

void conn_on_readable(struct conn *c)
{
	/* virtio-serial hands out one 4 KiB buffer per read(), so a single read per wakeup would cost a
	 * whole loop iteration per page. Read on, but stop after a budget so one busy connection
	 * cannot starve the rest of the loop. */
	size_t got = 0, n;
	while ((n = read_some(c)) > 0) {
		got += n;
		if (!c->serial || got >= HF_MAX_PAYLOAD || buf_used(&c->out) >= OUT_STOP_INPUT)
			break; /* a stream socket gives all it has in one read anyway */
	}
	if (!c->dead && c->out.oom) {
		log_msg("out of memory for a send buffer");
		conn_lost(c);
	}
}

void conn_flush(struct conn *c)
{
	while (!c->dead && c->state != CONN_WAITING && buf_used(&c->out)) {
		ssize_t n = write(c->fd, buf_data(&c->out), buf_used(&c->out));
		if (n > 0) {
			buf_consume(&c->out, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		conn_lost(c);
		return;
	}
	/* Give memory back after a burst (a big READ) instead of keeping the high-water mark. */
	if (!c->dead && buf_used(&c->out) == 0 && c->out.cap > 4 * OUT_HIGH)
		buf_reset(&c->out, 0);
}

void conn_sweep(void)
{
	while (graveyard) {
		struct op *o = graveyard;
		graveyard = o->next;
		free(o);
	}
	while (dead_conns) {
		struct conn *c = dead_conns;
		dead_conns = c->next;
		buf_free(&c->in);
		buf_free(&c->out);
		free(c);
	}
}

void conn_close_all(void)
{
	while (conns) {
		struct conn *c = conns;
		end_all_ops(c);
		c->serial = 0;
		conn_lost(c);
	}
	conn_sweep();
}
