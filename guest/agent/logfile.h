/*
 * The log of a detached process: the agent is its only writer (the child writes into a pipe), so
 * it can cap the size by rotating to `<path>.1`, and record the process's state next to it in
 * `<path>.status`, replaced atomically so a reader never sees half a line.
 */
#ifndef HF_LOGFILE_H
#define HF_LOGFILE_H

#include <stddef.h>
#include <stdint.h>

#define LOG_MAX_DEFAULT (32ull * 1024 * 1024)

struct logfile {
	int fd;
	uint64_t size;
	uint8_t at_line_start; /* the last byte written was '\n' (or nothing was) */
	uint8_t failing;       /* a write failed; logged once until one succeeds again */
	char *path;
};

/* The size at which logs rotate (tests lower it); set once at startup. */
void logfile_set_max(uint64_t bytes);
/* Opens path for appending, creating it and its parent directories. 0 or -errno. */
int logfile_open(struct logfile *l, const char *path);
/* Appends, rotating whenever the file reaches the cap. Errors drop the bytes (logged once). */
void logfile_write(struct logfile *l, const void *p, size_t n);
void logfile_close(struct logfile *l);
/* Replaces `<path>.status` with one line (a newline is added). 0 or -errno. */
int logfile_status(const struct logfile *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same file as l's current one (another path may name it). */
int logfile_same(const struct logfile *l, int fd);

#endif
