/*
 * Requests decoded from their fields into C structs: the checks the spec asks for (required
 * fields, numeric sizes, NUL bytes in strings that become C strings). Pure, so it is fuzzed along
 * with the frame parser. Each decoder returns 0 or a negative errno with *why set to a message.
 */
#ifndef HF_REQ_H
#define HF_REQ_H

#include <stdint.h>

#include "proto.h"

#define HF_PATH_MAX 4096
/* LOG_PATH leaves room for the suffixes of its status and rotated files and their temp files. */
#define HF_LOG_PATH_MAX (HF_PATH_MAX - 64)

struct exec_req {
	char **argv; /* NULL-terminated */
	char **env;  /* NULL-terminated `K=V` entries, in request order */
	const char *cwd;  /* NULL: default */
	const char *user; /* NULL: run as the agent's user */
	uint32_t timeout_ms;
	uint8_t stdin_pipe;
	uint32_t flags;       /* HF_EXEC_DETACHED, or HF_EXEC_PTY and/or HF_EXEC_FLOW */
	uint16_t rows, cols;  /* PTY: the initial window size (default 24x80) */
	uint32_t window;      /* FLOW: output bytes the guest may send before the first CREDIT */
	const char *log_path; /* detached only: absolute, never NULL then (the default filled in) */
	void *mem;
};

struct path_req {
	char path[HF_PATH_MAX];
	uint32_t mode;
	uint32_t flags;
	uint64_t offset;
	uint64_t length;
	int has_length;
};

/* RENAME: PATH -> NEW_PATH, FLAGS (HF_RENAME_NOREPLACE only); SYMLINK: PATH -> TARGET (in `to`). */
struct rename_req {
	struct path_req from;
	char to[HF_PATH_MAX];
};

/* MOUNT: PATH (the target: absolute, not "/", no ".." component), FSTYPE, and either SOURCE (a
 * path or a name such as "tmpfs") or SERIAL (a virtio-blk disk's serial, resolved in /sys/block). */
struct mount_req {
	char target[HF_PATH_MAX];
	char source[HF_PATH_MAX]; /* "": SERIAL names the disk */
	char fstype[HF_FSTYPE_MAX + 1];
	char serial[HF_SERIAL_MAX + 1];
	char user[256]; /* "": absent; else who gets a fresh filesystem's root (EXEC's USER forms) */
	uint32_t flags; /* HF_MOUNT_RDONLY */
};

/* IDENTITY: what to set; each part is optional. */
struct identity_req {
	int has_time;
	int64_t time_ns;        /* ns since the epoch, >= 0 */
	const uint8_t *entropy; /* NULL: absent; else entropy_len bytes inside the message */
	uint32_t entropy_len;
	char hostname[HF_HOSTNAME_MAX + 1]; /* "": absent */
};

/* SECRETS: the files' owner (USER, as EXEC's; "" = root) and how many ENV entries, all checked. */
struct secrets_req {
	char user[256];
	uint32_t count;
};

/* VERSION, and the NONCE to echo (len 0 when absent). */
int req_hello(const struct hf_msg *m, uint32_t *version, struct hf_field *nonce, const char **why);
int req_exec(const struct hf_msg *m, struct exec_req *r, const char **why);
void req_exec_free(struct exec_req *r);
/* PATH plus the numeric fields of WRITE, READ, STAT, DELETE and MKDIR; default_mode fills MODE. */
int req_path(const struct hf_msg *m, uint32_t default_mode, struct path_req *r, const char **why);
/* RESIZE: ROWS and COLS, both required, 1..65535. */
int req_winsize(const struct hf_msg *m, uint16_t *rows, uint16_t *cols, const char **why);
int req_flags(const struct hf_msg *m, uint32_t *flags, const char **why);
int req_rename(const struct hf_msg *m, struct rename_req *r, const char **why);
int req_symlink(const struct hf_msg *m, struct rename_req *r, const char **why);
int req_mount(const struct hf_msg *m, struct mount_req *r, const char **why);
/* TIME_NS, ENTROPY and HOSTNAME, all checked before anything is applied. */
int req_identity(const struct hf_msg *m, struct identity_req *r, const char **why);
/* USER and every ENV entry (`NAME=value`, NAME a valid secret name, no duplicate check). */
int req_secrets(const struct hf_msg *m, struct secrets_req *r, const char **why);
/* Length of the NAME part of a SECRETS entry checked by req_secrets. */
uint32_t secret_name_len(const struct hf_field *f);

#endif
