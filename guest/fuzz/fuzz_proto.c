/*
 * libFuzzer target for everything a hostile host reaches before any I/O: the incremental frame
 * parser (fed in pieces, as a socket would deliver them), the field parser, the request decoders,
 * the encoder (whose output must parse back to what was put in), and the kernel command line
 * network parser (netcfg_parse: the command line comes from the host too). IDENTITY's decoder also
 * drives the /etc/hosts edit, with the payload's bytes as the file (an image's /etc/hosts is not ours).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "hosts.h"
#include "netcfg.h"
#include "proto.h"
#include "req.h"

#define CHECK(c) \
	do { \
		if (!(c)) { \
			fprintf(stderr, "check failed: %s (%s:%d)\n", #c, __FILE__, __LINE__); \
			abort(); \
		} \
	} while (0)

static int hostname_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* An accepted SECRETS names each file with env-name characters only, never '.' or '/'. */
static void decode_secrets(const struct hf_msg *m)
{
	const char *why = NULL;
	struct secrets_req sr;
	if (req_secrets(m, &sr, &why)) {
		CHECK(why);
		return;
	}
	CHECK(sr.count == m->count[T_ENV] && sr.count <= HF_SECRETS_MAX);
	size_t pos = 0;
	struct hf_field f;
	while (hf_msg_next(m, T_ENV, &pos, &f)) {
		uint32_t n = secret_name_len(&f);
		CHECK(n > 0 && n < f.len && n <= HF_SECRET_NAME_MAX && !memchr(f.p, '/', n) && !memchr(f.p, '.', n));
	}
}

/* An accepted IDENTITY is within its limits; its hostname then renames itself in a hosts file. */
static void decode_identity(const struct hf_msg *m)
{
	const char *why = NULL;
	struct identity_req ir;
	if (req_identity(m, &ir, &why)) {
		CHECK(why);
		return;
	}
	CHECK(!ir.has_time || ir.time_ns >= 0);
	CHECK(!ir.entropy || (ir.entropy_len >= HF_ENTROPY_MIN && ir.entropy_len <= HF_ENTROPY_MAX));
	CHECK((ir.entropy != NULL) == (m->count[T_ENTROPY] > 0));
	size_t hl = strlen(ir.hostname);
	CHECK(hl <= HF_HOSTNAME_MAX && (hl > 0) == (m->count[T_HOSTNAME] > 0));
	for (size_t i = 0; i < hl; i++)
		CHECK(hostname_char(ir.hostname[i]));
	if (!hl)
		return;
	/* The hosts text: the whole payload, exact-size so ASan sees overreads; the old name its first
	 * HOSTNAME-sized run, so matches happen. */
	char *text = malloc(m->n ? m->n : 1);
	CHECK(text);
	memcpy(text, m->p, m->n);
	char old_name[HF_HOSTNAME_MAX + 1];
	size_t ol = m->n < hl ? m->n : hl;
	memcpy(old_name, text, ol);
	old_name[ol] = 0;
	struct buf out = { 0 };
	int replaced = hosts_rename(text, m->n, old_name, ir.hostname, &out);
	CHECK(!out.oom && replaced >= 0);
	/* Names only grow or shrink by the difference; with no match, exactly one line is added. */
	size_t added = strlen(HOSTS_SELF_ADDR) + 2 + hl + (m->n && text[m->n - 1] != '\n');
	if (replaced == 0)
		CHECK(buf_used(&out) == m->n + added);
	else
		CHECK(buf_used(&out) == m->n - (size_t)replaced * strlen(old_name) + (size_t)replaced * hl);
	buf_free(&out);
	free(text);
}

static void decode_requests(const struct hf_msg *m)
{
	const char *why = NULL;
	uint32_t u32;
	struct hf_field nonce;
	if (req_hello(m, &u32, &nonce, &why))
		CHECK(why);
	else
		CHECK(nonce.len <= HF_NONCE_MAX);
	if (req_flags(m, &u32, &why))
		CHECK(why);
	static struct path_req pr;
	if (req_path(m, 0644, &pr, &why) == 0)
		CHECK(strlen(pr.path) < HF_PATH_MAX && pr.path[0]);
	static struct rename_req rr;
	if (req_rename(m, &rr, &why) == 0)
		CHECK(rr.from.path[0] && rr.to[0] && strlen(rr.to) < HF_PATH_MAX && (rr.from.flags & ~HF_RENAME_NOREPLACE) == 0 &&
		      m->count[T_NEW_PATH] > 0);
	else
		CHECK(why);
	if (req_symlink(m, &rr, &why) == 0)
		CHECK(rr.from.path[0] && rr.to[0] && strlen(rr.to) < HF_PATH_MAX && rr.from.flags == 0 && m->count[T_TARGET] > 0);
	else
		CHECK(why);
	struct exec_req er;
	if (req_exec(m, &er, &why) == 0) {
		size_t n = 0;
		for (char **a = er.argv; *a; a++)
			n++;
		CHECK(n == m->count[T_ARG]);
		for (char **e = er.env; *e; e++)
			CHECK(strchr(*e, '='));
		/* A detached exec always has an absolute log path that fits; an ordinary one none. */
		CHECK((er.flags & ~(HF_EXEC_DETACHED | HF_EXEC_PTY | HF_EXEC_FLOW)) == 0);
		if (er.flags & HF_EXEC_DETACHED)
			CHECK(!(er.flags & (HF_EXEC_PTY | HF_EXEC_FLOW)));
		else
			CHECK(er.rows >= 1 && er.cols >= 1);
		CHECK(!(er.flags & HF_EXEC_FLOW) || er.window >= 1);
		if (er.flags & HF_EXEC_DETACHED)
			CHECK(er.log_path && er.log_path[0] == '/' && strlen(er.log_path) < HF_LOG_PATH_MAX &&
			      !er.timeout_ms && !er.stdin_pipe);
		else
			CHECK(!er.log_path && m->count[T_LOG_PATH] == 0);
		req_exec_free(&er);
	}
	uint16_t rows = 0, cols = 0;
	if (req_winsize(m, &rows, &cols, &why))
		CHECK(why);
	else
		CHECK(rows >= 1 && cols >= 1);
	decode_identity(m);
	decode_secrets(m);
	static struct mount_req mr;
	if (req_mount(m, &mr, &why) == 0)
		CHECK(mr.target[0] == '/' && mr.fstype[0] && (mr.source[0] == 0) != (mr.serial[0] == 0) &&
		      strlen(mr.serial) <= HF_SERIAL_MAX && strlen(mr.user) < sizeof mr.user && !strstr(mr.target, "/../") && (mr.flags & ~HF_MOUNT_RDONLY) == 0);
	else
		CHECK(why);
}

/* Re-encodes the fields of m and checks that they parse back identically. */
static void roundtrip(const struct hf_frame *f, const struct hf_msg *m)
{
	struct buf out = { 0 };
	size_t at = hf_begin(&out, f->type, f->flags, f->id);
	for (uint8_t tag = 0; tag < HF_TAGS; tag++) {
		size_t pos = 0;
		struct hf_field fl;
		while (hf_msg_next(m, tag, &pos, &fl))
			hf_put(&out, tag, fl.p, fl.len);
	}
	hf_end(&out, at);
	CHECK(!out.oom);
	struct hf_frame g;
	long r = hf_parse_frame(buf_data(&out), buf_used(&out), &g);
	CHECK(r == (long)buf_used(&out));
	CHECK(g.type == f->type && g.flags == f->flags && g.id == f->id);
	struct hf_msg back;
	CHECK(hf_msg_parse(&back, g.payload, g.len) == 0);
	for (int tag = 0; tag < HF_TAGS; tag++) {
		CHECK(back.count[tag] == m->count[tag]);
		if (m->count[tag])
			CHECK(back.first[tag].len == m->first[tag].len &&
			      memcmp(back.first[tag].p, m->first[tag].p, m->first[tag].len) == 0);
	}
	buf_free(&out);
}

static void on_frame(const struct hf_frame *f)
{
	struct hf_msg m;
	if (hf_msg_parse(&m, f->payload, f->len) < 0)
		return;
	decode_requests(&m);
	roundtrip(f, &m);
}

/* The kernel command line network parser (netcfg.h), on an exact-size copy so ASan sees overreads. */
static void parse_netcfg(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1);
	CHECK(copy);
	memcpy(copy, data, size);
	struct netcfg c;
	char err[160];
	if (netcfg_parse(copy, size, &c, err, sizeof err) < 0) {
		CHECK(err[0] && !c.present);
	} else if (c.present) {
		CHECK(c.prefix >= 1 && c.prefix <= 32 && c.ndns <= NETCFG_MAX_DNS);
		CHECK(!c.mtu || (c.mtu >= 68 && c.mtu <= 65535));
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse_netcfg(data, size);
	if (size < 1)
		return 0;
	/* The first byte picks how the stream is cut into reads. */
	size_t step = (size_t)data[0] + 1;
	data++;
	size--;
	struct buf in = { 0 };
	size_t fed = 0;
	while (fed < size) {
		size_t n = size - fed < step ? size - fed : step;
		/* A private copy per read: ASan then catches any overread past what arrived. */
		buf_append(&in, data + fed, n);
		fed += n;
		for (;;) {
			struct hf_frame f;
			long r = hf_parse_frame(buf_data(&in), buf_used(&in), &f);
			if (r < 0)
				goto out;
			if (r == HF_NEED_MORE)
				break;
			CHECK((size_t)r <= buf_used(&in) && (size_t)r == HF_HEADER_SIZE + f.len);
			CHECK(f.len <= HF_MAX_PAYLOAD);
			/* Exact-size copy of the payload so reads beyond it are caught. */
			uint8_t *copy = malloc(f.len ? f.len : 1);
			memcpy(copy, f.payload, f.len);
			f.payload = copy;
			on_frame(&f);
			free(copy);
			buf_consume(&in, (size_t)r);
		}
	}
out:
	buf_free(&in);
	return 0;
}
