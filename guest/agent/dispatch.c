/* Routes each complete frame from the host to its handler; the rules of the spec's message table. */
#include <errno.h>

#include "conn.h"
#include "dirops.h"
#include "exec.h"
#include "files.h"
#include "identity.h"
#include "loop.h"
#include "mount.h"
#include "pathops.h"
#include "req.h"
#include "secrets.h"
#include "trace.h"

/* Every HELLO starts a new session: on virtio-serial it may come from a host that replaced the
 * previous one without us seeing the disconnect (docs/agent-protocol.md, "Reconnecting"). */
static void on_hello(struct conn *c, const struct hf_frame *f, const struct hf_msg *m)
{
	uint32_t version;
	struct hf_field nonce;
	const char *why;
	conn_new_session(c);
	int err = req_hello(m, &version, &nonce, &why);
	if (err)
		return conn_send_error(c, f->id, -err, "%s", why);
	if (version < 1)
		return conn_send_error(c, f->id, EPROTONOSUPPORT, "host speaks protocol %u, this agent speaks 1..%u",
			version, HF_PROTOCOL_VERSION);
	c->hello = 1;
	size_t at = hf_begin(&c->out, HF_HELLO, HF_FLAG_END, f->id);
	hf_put_u32(&c->out, T_VERSION, version < HF_PROTOCOL_VERSION ? version : HF_PROTOCOL_VERSION);
	hf_put_str(&c->out, T_AGENT_VERSION, HF_AGENT_VERSION);
	if (nonce.len)
		hf_put(&c->out, T_NONCE, nonce.p, nonce.len);
	hf_end(&c->out, at);
	HF_TRACE("agent-hello");
}

static void on_shutdown(struct conn *c, uint32_t id, const struct hf_msg *m)
{
	uint32_t flags;
	const char *why;
	int err = req_flags(m, &flags, &why);
	if (err)
		return conn_send_error(c, id, -err, "%s", why);
	hf_frame(&c->out, HF_OK, HF_FLAG_END, id, NULL, 0);
	loop_request_shutdown(flags & HF_SHUTDOWN_REBOOT);
}

/* Frames that belong to a running operation. One whose operation is gone (it ended, possibly
 * while the frame was in flight) is dropped without an answer. */
static void on_continuation(struct conn *c, const struct hf_frame *f)
{
	struct op *o = conn_find_op(c, f->id);
	if (!o)
		return;
	if (f->type == HF_DATA && o->kind == OP_WRITE)
		file_write_data(o, f);
	else if (f->type == HF_STDIN && o->kind == OP_EXEC)
		exec_stdin(o, f);
	else if (f->type == HF_SIGNAL && o->kind == OP_EXEC)
		exec_signal(o, f);
	else if (f->type == HF_RESIZE && o->kind == OP_EXEC)
		exec_resize(o, f);
	else if (f->type == HF_CREDIT && o->kind == OP_EXEC)
		exec_credit(o, f);
}

/* CANCEL ends an operation early. Like the continuations it is ignored for an id with nothing
 * running: the operation may have ended while the CANCEL was in flight. STAT, DELETE, MKDIR, RENAME, SYMLINK,
 * and a WRITE that is committing, are not cut short: their answer follows as if the CANCEL had
 * crossed it. */
static void on_cancel(struct conn *c, const struct hf_frame *f)
{
	struct op *o = conn_find_op(c, f->id);
	if (!o)
		return;
	if (o->kind == OP_EXEC)
		exec_cancel(o);
	else if (o->kind == OP_READ)
		file_read_cancel(o);
	else if (o->kind == OP_WRITE)
		file_write_cancel(o);
	else if (o->kind == OP_DIR)
		dir_cancel(o);
}

static void on_request(struct conn *c, const struct hf_frame *f, const struct hf_msg *m)
{
	if (conn_find_op(c, f->id))
		return conn_send_error(c, f->id, EBUSY, "operation id %u is still in use", f->id);
	int stateful = f->type == HF_EXEC || f->type == HF_WRITE || f->type == HF_READ || f->type == HF_READDIR;
	if (stateful && f->id == 0)
		return conn_send_error(c, 0, EINVAL, "operation id 0 is reserved for the connection");
	switch (f->type) {
	case HF_EXEC:
		return exec_start(c, f->id, m);
	case HF_WRITE:
		return file_write_start(c, f, m);
	case HF_READ:
		return file_read_start(c, f->id, m);
	case HF_READDIR:
		return dir_start(c, f->id, m);
	case HF_STAT:
	case HF_DELETE:
	case HF_MKDIR:
	case HF_RENAME:
	case HF_SYMLINK:
		return path_op_start(c, f->id, f->type, m);
	case HF_IDENTITY:
		return identity_apply(c, f->id, m);
	case HF_SECRETS:
		return secrets_apply(c, f->id, m);
	case HF_MOUNT:
		return mount_start(c, f->id, m);
	default:
		return on_shutdown(c, f->id, m);
	}
}

void dispatch_frame(struct conn *c, const struct hf_frame *f)
{
	switch (f->type) {
	case HF_STDIN:
	case HF_SIGNAL:
	case HF_RESIZE:
	case HF_CREDIT:
	case HF_DATA:
		if (c->hello)
			on_continuation(c, f);
		return;
	case HF_CANCEL:
		if (c->hello)
			on_cancel(c, f);
		return;
	case HF_PING:
		if (!c->hello)
			break;
		hf_frame(&c->out, HF_PONG, HF_FLAG_END, f->id, f->payload, f->len);
		return;
	case HF_HELLO:
	case HF_EXEC:
	case HF_WRITE:
	case HF_READ:
	case HF_STAT:
	case HF_DELETE:
	case HF_MKDIR:
	case HF_READDIR:
	case HF_RENAME:
	case HF_SYMLINK:
	case HF_SHUTDOWN:
	case HF_IDENTITY:
	case HF_SECRETS:
	case HF_MOUNT: {
		if (!c->hello && f->type != HF_HELLO)
			break;
		struct hf_msg m;
		if (hf_msg_parse(&m, f->payload, f->len) < 0)
			return conn_send_error(c, f->id, EPROTO, "truncated field in message type 0x%02x", f->type);
		if (f->type == HF_HELLO)
			return on_hello(c, f, &m);
		return on_request(c, f, &m);
	}
	default:
		if (!c->hello)
			break;
		return conn_send_error(c, f->id, ENOSYS, "message type 0x%02x is not supported", f->type);
	}
	conn_send_error(c, f->id, EPROTO, "HELLO must come first");
}
