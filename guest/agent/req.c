#include "req.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int bad(const char **why, const char *msg, int err)
{
	*why = msg;
	return err;
}

/* Copies a field into a C string; refuses embedded NULs because they would silently cut it. */
static int cstr(const struct hf_field *f, char *out, size_t cap)
{
	if (memchr(f->p, 0, f->len))
		return -EINVAL;
	if (f->len >= cap)
		return -ENAMETOOLONG;
	memcpy(out, f->p, f->len);
	out[f->len] = 0;
	return 0;
}

int req_hello(const struct hf_msg *m, uint32_t *version, struct hf_field *nonce, const char **why)
{
	int r = hf_get_u32(m, T_VERSION, version);
	if (r == 0)
		return bad(why, "HELLO needs VERSION", -EINVAL);
	if (r < 0)
		return bad(why, "VERSION must be a u32", -EINVAL);
	nonce->p = NULL;
	nonce->len = 0;
	if (m->count[T_NONCE]) {
		*nonce = m->first[T_NONCE];
		if (nonce->len > HF_NONCE_MAX)
			return bad(why, "NONCE is longer than 64 bytes", -EINVAL);
	}
	return 0;
}

int req_flags(const struct hf_msg *m, uint32_t *flags, const char **why)
{
	*flags = 0;
	if (hf_get_u32(m, T_FLAGS, flags) < 0)
		return bad(why, "FLAGS must be a u32", -EINVAL);
	return 0;
}

int req_path(const struct hf_msg *m, uint32_t default_mode, struct path_req *r, const char **why)
{
	memset(r, 0, sizeof *r);
	if (m->count[T_PATH] == 0)
		return bad(why, "PATH is required", -EINVAL);
	int e = cstr(&m->first[T_PATH], r->path, sizeof r->path);
	if (e == -EINVAL)
		return bad(why, "PATH contains a NUL byte", e);
	if (e)
		return bad(why, "PATH is too long", e);
	if (r->path[0] == 0)
		return bad(why, "PATH is empty", -ENOENT);
	r->mode = default_mode;
	if (hf_get_u32(m, T_MODE, &r->mode) < 0)
		return bad(why, "MODE must be a u32", -EINVAL);
	if (r->mode & ~07777u)
		return bad(why, "MODE has bits beyond 07777", -EINVAL);
	if (hf_get_u64(m, T_OFFSET, &r->offset) < 0)
		return bad(why, "OFFSET must be a u64", -EINVAL);
	int has = hf_get_u64(m, T_LENGTH, &r->length);
	if (has < 0)
		return bad(why, "LENGTH must be a u64", -EINVAL);
	r->has_length = has;
	return req_flags(m, &r->flags, why);
}

/* PATH and a second string field into r; empty or absent second field: what/"... is required". */
static int two_paths(const struct hf_msg *m, uint8_t tag, struct rename_req *r, const char **why, const char *name_required,
		     const char *name_nul, const char *name_long, const char *name_empty)
{
	if (m->count[tag] == 0)
		return bad(why, name_required, -EINVAL);
	int e = cstr(&m->first[tag], r->to, sizeof r->to);
	if (e == -EINVAL)
		return bad(why, name_nul, e);
	if (e)
		return bad(why, name_long, e);
	if (r->to[0] == 0)
		return bad(why, name_empty, -ENOENT);
	return 0;
}

int req_rename(const struct hf_msg *m, struct rename_req *r, const char **why)
{
	int err = req_path(m, 0, &r->from, why);
	if (err)
		return err;
	if (r->from.flags & ~HF_RENAME_NOREPLACE)
		return bad(why, "FLAGS has bits this agent does not know", -EINVAL);
	return two_paths(m, T_NEW_PATH, r, why, "NEW_PATH is required", "NEW_PATH contains a NUL byte", "NEW_PATH is too long",
			 "NEW_PATH is empty");
}

int req_symlink(const struct hf_msg *m, struct rename_req *r, const char **why)
{
	int err = req_path(m, 0, &r->from, why);
	if (err)
		return err;
	if (r->from.flags)
		return bad(why, "FLAGS has bits this agent does not know", -EINVAL);
	return two_paths(m, T_TARGET, r, why, "TARGET is required", "TARGET contains a NUL byte", "TARGET is too long",
			 "TARGET is empty");
}

/* A string field into out (cap bytes with the NUL); absent: "". */
static int opt_str(const struct hf_msg *m, uint8_t tag, char *out, size_t cap, const char **why, const char *name_nul,
		   const char *name_long)
{
	out[0] = 0;
	if (m->count[tag] == 0)
		return 0;
	int e = cstr(&m->first[tag], out, cap);
	if (e == -EINVAL)
		return bad(why, name_nul, e);
	if (e)
		return bad(why, name_long, e);
	return 0;
}

/* A mount target the host could not mean to put over the guest's own system: "/" or any "..". */
static int bad_target(const char *t)
{
	if (t[0] != '/')
		return 1;
	const char *p = t;
	int only_slashes = 1;
	while (*p) {
		while (*p == '/')
			p++;
		const char *s = p;
		while (*p && *p != '/')
			p++;
		if (p - s == 2 && s[0] == '.' && s[1] == '.')
			return 1;
		if (p > s)
			only_slashes = 0;
	}
	return only_slashes;
}

int req_mount(const struct hf_msg *m, struct mount_req *r, const char **why)
{
	memset(r, 0, sizeof *r);
	if (m->count[T_PATH] == 0)
		return bad(why, "PATH (the mount target) is required", -EINVAL);
	int e = opt_str(m, T_PATH, r->target, sizeof r->target, why, "PATH contains a NUL byte", "PATH is too long");
	if (e)
		return e;
	if (bad_target(r->target))
		return bad(why, "PATH must be absolute, not /, and without a .. component", -EINVAL);
	if ((e = opt_str(m, T_SOURCE, r->source, sizeof r->source, why, "SOURCE contains a NUL byte", "SOURCE is too long")))
		return e;
	if ((e = opt_str(m, T_FSTYPE, r->fstype, sizeof r->fstype, why, "FSTYPE contains a NUL byte", "FSTYPE is longer than 31 bytes")))
		return e;
	if ((e = opt_str(m, T_SERIAL, r->serial, sizeof r->serial, why, "SERIAL contains a NUL byte", "SERIAL is longer than 20 bytes")))
		return e;
	if (r->fstype[0] == 0)
		return bad(why, "FSTYPE is required", -EINVAL);
	if ((r->source[0] == 0) == (r->serial[0] == 0))
		return bad(why, "exactly one of SOURCE and SERIAL is required", -EINVAL);
	if ((e = opt_str(m, T_USER, r->user, sizeof r->user, why, "USER contains a NUL byte", "USER is too long")))
		return e;
	if (r->serial[0] && strchr(r->serial, '/'))
		return bad(why, "SERIAL contains a '/'", -EINVAL);
	if ((e = req_flags(m, &r->flags, why)))
		return e;
	if (r->flags & ~HF_MOUNT_RDONLY)
		return bad(why, "FLAGS has bits this agent does not know", -EINVAL);
	return 0;
}

/* Bytes needed to copy every occurrence of tag as a C string. */
static size_t strings_size(const struct hf_msg *m, uint8_t tag)
{
	size_t pos = 0, total = 0;
	struct hf_field f;
	while (hf_msg_next(m, tag, &pos, &f))
		total += (size_t)f.len + 1;
	return total;
}

/* Copies the occurrences of tag into NULL-terminated vec, strings at *heap. */
static int copy_list(const struct hf_msg *m, uint8_t tag, char **vec, char **heap)
{
	size_t pos = 0, i = 0;
	struct hf_field f;
	while (hf_msg_next(m, tag, &pos, &f)) {
		if (memchr(f.p, 0, f.len))
			return -EINVAL;
		memcpy(*heap, f.p, f.len);
		(*heap)[f.len] = 0;
		vec[i++] = *heap;
		*heap += f.len + 1;
	}
	vec[i] = NULL;
	return 0;
}

static const char *copy_one(const struct hf_msg *m, uint8_t tag, char **heap, int *err)
{
	if (m->count[tag] == 0)
		return NULL;
	const struct hf_field *f = &m->first[tag];
	if (memchr(f->p, 0, f->len)) {
		*err = -EINVAL;
		return NULL;
	}
	char *s = *heap;
	memcpy(s, f->p, f->len);
	s[f->len] = 0;
	*heap += f->len + 1;
	return s;
}

/* A window size field: absent leaves *v, else a u32 of 1..65535 (what struct winsize holds). */
static int get_dim(const struct hf_msg *m, uint8_t tag, uint16_t *v)
{
	uint32_t x;
	int r = hf_get_u32(m, tag, &x);
	if (r < 0 || (r == 1 && (x == 0 || x > 65535)))
		return -EINVAL;
	if (r == 1)
		*v = (uint16_t)x;
	return r;
}

/* PTY's window size and FLOW's window; their fields without the flag are refused (a host that
 * sends them expects their effect). */
static int check_stream(const struct hf_msg *m, struct exec_req *r, const char **why)
{
	r->rows = 24;
	r->cols = 80;
	if (get_dim(m, T_ROWS, &r->rows) < 0 || get_dim(m, T_COLS, &r->cols) < 0)
		return bad(why, "ROWS and COLS must be u32 values of 1..65535", -EINVAL);
	if (!(r->flags & HF_EXEC_PTY) && (m->count[T_ROWS] || m->count[T_COLS]))
		return bad(why, "ROWS and COLS need FLAGS PTY", -EINVAL);
	int w = hf_get_u32(m, T_WINDOW, &r->window);
	if (w < 0)
		return bad(why, "WINDOW must be a u32", -EINVAL);
	if (r->flags & HF_EXEC_FLOW) {
		if (w == 0 || r->window == 0)
			return bad(why, "FLOW needs a WINDOW of at least 1 byte", -EINVAL);
	} else if (w == 1) {
		return bad(why, "WINDOW needs FLAGS FLOW", -EINVAL);
	}
	return 0;
}

int req_winsize(const struct hf_msg *m, uint16_t *rows, uint16_t *cols, const char **why)
{
	if (get_dim(m, T_ROWS, rows) != 1 || get_dim(m, T_COLS, cols) != 1)
		return bad(why, "RESIZE needs ROWS and COLS, u32 values of 1..65535", -EINVAL);
	return 0;
}

/* What a detached exec cannot have: nobody is connected to stream stdin to it or to report a timeout. */
static int check_detached(const struct hf_msg *m, struct exec_req *r, const char **why)
{
	if (hf_get_u32(m, T_FLAGS, &r->flags) < 0)
		return bad(why, "FLAGS must be a u32", -EINVAL);
	/* Refused rather than ignored: a flag this agent does not know changes what EXEC means. */
	if (r->flags & ~(HF_EXEC_DETACHED | HF_EXEC_PTY | HF_EXEC_FLOW))
		return bad(why, "FLAGS has bits this agent does not know", -EINVAL);
	if (!(r->flags & HF_EXEC_DETACHED)) {
		if (m->count[T_LOG_PATH])
			return bad(why, "LOG_PATH needs FLAGS DETACHED", -EINVAL);
		return check_stream(m, r, why);
	}
	if (r->flags & (HF_EXEC_PTY | HF_EXEC_FLOW))
		return bad(why, "PTY and FLOW cannot be used with DETACHED (nobody streams its terminal)", -EINVAL);
	if (r->timeout_ms)
		return bad(why, "TIMEOUT_MS cannot be used with DETACHED", -EINVAL);
	if (r->stdin_pipe)
		return bad(why, "STDIN=1 cannot be used with DETACHED (its stdin is /dev/null)", -EINVAL);
	return 0;
}

static int copy_log_path(const struct hf_msg *m, struct exec_req *r, char **heap, const char **why)
{
	int err = 0;
	r->log_path = copy_one(m, T_LOG_PATH, heap, &err);
	if (err) {
		req_exec_free(r);
		return bad(why, "LOG_PATH contains a NUL byte", -EINVAL);
	}
	if (!r->log_path || !r->log_path[0])
		r->log_path = HF_DEFAULT_LOG_PATH;
	if (r->log_path[0] != '/') {
		req_exec_free(r);
		return bad(why, "LOG_PATH must be an absolute path", -EINVAL);
	}
	if (strlen(r->log_path) >= HF_LOG_PATH_MAX) {
		req_exec_free(r);
		return bad(why, "LOG_PATH is too long", -ENAMETOOLONG);
	}
	return 0;
}

int req_exec(const struct hf_msg *m, struct exec_req *r, const char **why)
{
	memset(r, 0, sizeof *r);
	size_t nargs = m->count[T_ARG], nenv = m->count[T_ENV];
	if (nargs == 0)
		return bad(why, "EXEC needs at least one ARG", -EINVAL);
	if (m->first[T_ARG].len == 0)
		return bad(why, "ARG 0 (the program) is empty", -EINVAL);
	if (hf_get_u32(m, T_TIMEOUT_MS, &r->timeout_ms) < 0)
		return bad(why, "TIMEOUT_MS must be a u32", -EINVAL);
	if (hf_get_u8(m, T_STDIN, &r->stdin_pipe) < 0 || r->stdin_pipe > 1)
		return bad(why, "STDIN must be a u8 of 0 or 1", -EINVAL);
	int err = check_detached(m, r, why);
	if (err)
		return err;

	/* One allocation: both pointer vectors, then every string. The payload is at most 1 MiB, so
	 * the sizes cannot overflow. */
	size_t vecs = (nargs + 1 + nenv + 1) * sizeof(char *);
	size_t strs = strings_size(m, T_ARG) + strings_size(m, T_ENV);
	if (m->count[T_CWD])
		strs += m->first[T_CWD].len + 1;
	if (m->count[T_USER])
		strs += m->first[T_USER].len + 1;
	if (m->count[T_LOG_PATH])
		strs += m->first[T_LOG_PATH].len + 1;
	char *mem = malloc(vecs + strs);
	if (!mem)
		return bad(why, "out of memory", -ENOMEM);
	r->mem = mem;
	r->argv = (char **)(void *)mem;
	r->env = r->argv + nargs + 1;
	char *heap = mem + vecs;
	if (copy_list(m, T_ARG, r->argv, &heap) < 0) {
		req_exec_free(r);
		return bad(why, "an ARG contains a NUL byte", -EINVAL);
	}
	if (copy_list(m, T_ENV, r->env, &heap) < 0) {
		req_exec_free(r);
		return bad(why, "an ENV entry contains a NUL byte", -EINVAL);
	}
	for (char **e = r->env; *e; e++) {
		if (!strchr(*e, '=') || **e == '=') {
			req_exec_free(r);
			return bad(why, "an ENV entry is not of the form K=V", -EINVAL);
		}
	}
	r->cwd = copy_one(m, T_CWD, &heap, &err);
	r->user = copy_one(m, T_USER, &heap, &err);
	if (err) {
		req_exec_free(r);
		return bad(why, "CWD or USER contains a NUL byte", -EINVAL);
	}
	if (r->cwd && !r->cwd[0])
		r->cwd = NULL;
	if (r->user && !r->user[0])
		r->user = NULL;
	if (r->flags & HF_EXEC_DETACHED)
		return copy_log_path(m, r, &heap, why);
	return 0;
}

void req_exec_free(struct exec_req *r)
{
	free(r->mem);
	r->mem = NULL;
	r->argv = r->env = NULL;
	r->cwd = r->user = r->log_path = NULL;
}

/* The hostname characters of RFC 952/1123 plus '_' and '.': nothing that /etc/hosts or a shell
 * would read as a separator, a comment or an option. */
static int hostname_ok(const uint8_t *p, uint32_t n)
{
	if (n == 0 || n > HF_HOSTNAME_MAX)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.'))
			return 0;
	}
	return 1;
}

int req_identity(const struct hf_msg *m, struct identity_req *r, const char **why)
{
	memset(r, 0, sizeof *r);
	uint64_t t;
	int has = hf_get_u64(m, T_TIME_NS, &t);
	if (has < 0)
		return bad(why, "TIME_NS must be an i64", -EINVAL);
	if (has && (int64_t)t < 0)
		return bad(why, "TIME_NS is before the epoch", -EINVAL);
	r->has_time = has;
	r->time_ns = (int64_t)t;
	if (m->count[T_ENTROPY]) {
		const struct hf_field *f = &m->first[T_ENTROPY];
		if (f->len < HF_ENTROPY_MIN || f->len > HF_ENTROPY_MAX)
			return bad(why, "ENTROPY must be 16 to 512 bytes", -EINVAL);
		r->entropy = f->p;
		r->entropy_len = f->len;
	}
	if (m->count[T_HOSTNAME]) {
		const struct hf_field *f = &m->first[T_HOSTNAME];
		if (!hostname_ok(f->p, f->len))
			return bad(why, "HOSTNAME must be 1 to 64 characters of A-Z a-z 0-9 - _ .", -EINVAL);
		memcpy(r->hostname, f->p, f->len);
		r->hostname[f->len] = 0;
	}
	return 0;
}

uint32_t secret_name_len(const struct hf_field *f)
{
	const uint8_t *eq = memchr(f->p, '=', f->len);
	return eq ? (uint32_t)(eq - f->p) : f->len;
}

/* Env-name characters only: the name becomes a file name under /run/secrets, so no '/', no
 * leading '.' (the agent's temp files start with one) and nothing a shell would read specially. */
static int secret_name_ok(const uint8_t *p, uint32_t n)
{
	if (n == 0 || n > HF_SECRET_NAME_MAX || (p[0] >= '0' && p[0] <= '9'))
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

int req_secrets(const struct hf_msg *m, struct secrets_req *r, const char **why)
{
	memset(r, 0, sizeof *r);
	if (m->count[T_USER]) {
		int e = cstr(&m->first[T_USER], r->user, sizeof r->user);
		if (e)
			return bad(why, e == -EINVAL ? "USER contains a NUL byte" : "USER is too long", e);
	}
	if (m->count[T_ENV] > HF_SECRETS_MAX)
		return bad(why, "more than 256 ENV entries", -E2BIG);
	size_t pos = 0;
	struct hf_field f;
	while (hf_msg_next(m, T_ENV, &pos, &f)) {
		uint32_t n = secret_name_len(&f);
		if (n == f.len || !secret_name_ok(f.p, n))
			return bad(why, "an ENV entry is not NAME=value with NAME of [A-Za-z_][A-Za-z0-9_]* (1-128)", -EINVAL);
		r->count++;
	}
	return 0;
}
