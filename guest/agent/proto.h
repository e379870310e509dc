/*
 * Wire format of the guest agent protocol (docs/agent-protocol.md): frame header, fields, and
 * an encoder. Pure code without I/O, so the fuzzer (guest/fuzz) can drive it directly. The numbers
 * mirror src/agent/protocol.ts; keep both in sync.
 */
#ifndef HF_PROTO_H
#define HF_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define HF_PROTOCOL_VERSION 1u
#define HF_AGENT_VERSION "0.1.0"
#define HF_HEADER_SIZE 12u
#define HF_MAX_PAYLOAD (1024u * 1024u)
#define HF_FIELD_HEADER 5u
#define HF_VSOCK_PORT 1024u
#define HF_SERIAL_NAME "hf.agent"

#define HF_FLAG_END 0x01u

enum hf_type {
	HF_HELLO = 0x01,
	HF_PING = 0x02,
	HF_PONG = 0x03,
	HF_READY = 0x04,
	HF_CANCEL = 0x05,
	HF_EXEC = 0x10,
	HF_EXEC_STARTED = 0x11,
	HF_STDIN = 0x12,
	HF_SIGNAL = 0x13,
	HF_STDOUT = 0x14,
	HF_STDERR = 0x15,
	HF_EXIT = 0x16,
	HF_RESIZE = 0x17, /* host→guest: ROWS, COLS of an exec's PTY */
	HF_CREDIT = 0x18, /* host→guest: SIZE more output bytes the host takes (FLAGS FLOW) */
	HF_WRITE = 0x20,
	HF_DATA = 0x21,
	HF_READ = 0x22,
	HF_STAT = 0x30,
	HF_STAT_RESULT = 0x31,
	HF_DELETE = 0x32,
	HF_MKDIR = 0x33,
	HF_READDIR = 0x34,
	HF_DIRENTS = 0x35,
	HF_RENAME = 0x36,
	HF_SYMLINK = 0x37,
	HF_SHUTDOWN = 0x40,
	HF_IDENTITY = 0x41,
	HF_SECRETS = 0x43, /* host→guest: USER?, ENV* (`NAME=value`): /run/secrets replaced */
	HF_MOUNT = 0x42,
	HF_OK = 0x7e,
	HF_ERROR = 0x7f,
};

enum hf_tag {
	T_VERSION = 1,
	T_AGENT_VERSION = 2,
	T_ARG = 3,
	T_ENV = 4,
	T_CWD = 5,
	T_USER = 6,
	T_TIMEOUT_MS = 7,
	T_STDIN = 8,
	T_PID = 9,
	T_EXIT_CODE = 10,
	T_SIGNAL = 11,
	T_TIMED_OUT = 12,
	T_PATH = 13,
	T_MODE = 14,
	T_FLAGS = 15,
	T_SIZE = 16,
	T_OFFSET = 17,
	T_LENGTH = 18,
	T_UID = 19,
	T_GID = 20,
	T_MTIME_NS = 21,
	T_ERRNO = 22,
	T_MESSAGE = 23,
	T_DURATION_US = 24,
	T_NONCE = 25,
	T_LOG_PATH = 26,
	T_TIME_NS = 27,
	T_ENTROPY = 28,
	T_HOSTNAME = 29,
	T_NEW_PATH = 30,
	T_ENTRY = 31,
	T_TARGET = 32,
	T_SOURCE = 33,
	T_FSTYPE = 34,
	T_SERIAL = 35,
	/* 40..: exec streaming (30..39 are left to file operations). */
	T_ROWS = 40,
	T_COLS = 41,
	T_WINDOW = 42,
};

#define HF_WRITE_MKDIRS 1u
#define HF_WRITE_APPEND 2u
#define HF_WRITE_FSYNC 4u
#define HF_DELETE_RECURSIVE 1u
#define HF_MKDIR_PARENTS 1u
#define HF_SHUTDOWN_REBOOT 1u
/* MOUNT FLAGS bit 0: mount read-only (MS_RDONLY). */
#define HF_MOUNT_RDONLY 1u
/* MOUNT: FSTYPE up to 31 bytes; SERIAL up to 20, virtio-blk's serial size. */
#define HF_FSTYPE_MAX 31u
#define HF_SERIAL_MAX 20u
/* READDIR FLAGS bit 0: PATH itself must not be a symlink (O_NOFOLLOW). */
#define HF_READDIR_NOFOLLOW 1u
/* RENAME FLAGS bit 0: fail with EEXIST rather than replace NEW_PATH (renameat2 RENAME_NOREPLACE). */
#define HF_RENAME_NOREPLACE 1u
/* One ENTRY field: u32 mode | u32 uid | u32 gid | u64 size | i64 mtime_ns | u16 name_len | name |
 * symlink target (the rest). */
#define HF_ENTRY_HEADER 30u
/* DIRENTS frames stop taking entries past this payload size, so a big directory goes out in many
 * frames that interleave with other operations' output. */
#define HF_DIRENTS_MAX (64u * 1024u)
/* EXEC FLAGS bit 0: run as a detached process (the machine's main process), output to LOG_PATH. */
#define HF_EXEC_DETACHED 1u
/* EXEC FLAGS bit 1: the child gets a new PTY (ROWS, COLS) as stdin, stdout and stderr, and as its
 * controlling terminal. Bit 2: flow control, output only within WINDOW + CREDITs (per exec). */
#define HF_EXEC_PTY 2u
#define HF_EXEC_FLOW 4u
#define HF_DEFAULT_LOG_PATH "/var/log/hyperfleet/main.log"
/* IDENTITY: ENTROPY is 16..512 bytes, HOSTNAME 1..64 of [A-Za-z0-9-_.]. */
#define HF_ENTROPY_MIN 16u
#define HF_ENTROPY_MAX 512u
#define HF_HOSTNAME_MAX 64u
/* SECRETS: at most this many entries, names 1..128 of [A-Za-z_][A-Za-z0-9_]*. */
#define HF_SECRETS_MAX 256u
#define HF_SECRET_NAME_MAX 128u
/* A HELLO reply must stay small enough for the host's resync scan (at most 4096 bytes). */
#define HF_NONCE_MAX 64u

struct hf_frame {
	uint32_t len;
	uint8_t type;
	uint8_t flags;
	uint32_t id;
	const uint8_t *payload;
};

/* hf_parse_frame results besides a positive frame size. */
#define HF_NEED_MORE 0
#define HF_BAD_LENGTH (-1)
#define HF_BAD_RESERVED (-2)

/*
 * Looks at the start of a receive buffer. Returns the size of the complete frame there (header +
 * payload, filling *f), HF_NEED_MORE, or a negative HF_BAD_* for a header that breaks the protocol.
 * With HF_NEED_MORE and at least a full header, f->len tells how much the frame will need.
 */
long hf_parse_frame(const uint8_t *p, size_t n, struct hf_frame *f);

/* Tags below this are indexed; higher ones are unknown to this version and skipped. */
#define HF_TAGS 48

struct hf_field {
	const uint8_t *p;
	uint32_t len;
};

/* A payload split into fields, with the first occurrence and count of every known tag. */
struct hf_msg {
	const uint8_t *p;
	size_t n;
	struct hf_field first[HF_TAGS];
	uint32_t count[HF_TAGS];
};

/* Returns 0, or -EPROTO for a truncated field. */
int hf_msg_parse(struct hf_msg *m, const uint8_t *p, size_t n);
/* Iterates the occurrences of one tag: start with *pos = 0; returns 1 per field, 0 at the end. */
int hf_msg_next(const struct hf_msg *m, uint8_t tag, size_t *pos, struct hf_field *out);
/* Typed getters: 1 = present (stored in *out), 0 = absent, -EINVAL = wrong size for the type. */
int hf_get_u8(const struct hf_msg *m, uint8_t tag, uint8_t *out);
int hf_get_u32(const struct hf_msg *m, uint8_t tag, uint32_t *out);
int hf_get_u64(const struct hf_msg *m, uint8_t tag, uint64_t *out);

/* Encoder. A frame is opened, gets fields, and is closed, which patches its length. Positions are
 * relative to the buffer's unread start so that compaction in between cannot invalidate them. */
size_t hf_begin(struct buf *b, uint8_t type, uint8_t flags, uint32_t id);
void hf_end(struct buf *b, size_t at);
void hf_put(struct buf *b, uint8_t tag, const void *v, uint32_t n);
void hf_put_str(struct buf *b, uint8_t tag, const char *s);
void hf_put_u8(struct buf *b, uint8_t tag, uint8_t v);
void hf_put_u32(struct buf *b, uint8_t tag, uint32_t v);
void hf_put_u64(struct buf *b, uint8_t tag, uint64_t v);
/* A whole frame with a raw payload. */
void hf_frame(struct buf *b, uint8_t type, uint8_t flags, uint32_t id, const void *payload, size_t n);
/* Writes a header into 12 bytes at h. */
void hf_header(uint8_t *h, uint8_t type, uint8_t flags, uint32_t id, uint32_t len);

static inline uint32_t hf_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void hf_st32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

#endif
