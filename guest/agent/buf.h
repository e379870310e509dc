/*
 * Growable byte buffer with a read offset: the receive buffer, the send queue of a connection and
 * the pending stdin of an exec. Memory is kept between uses so the steady state does not malloc.
 * An allocation failure is sticky (oom) instead of returned, so encoders can chain calls and the
 * owner checks once; the owner then drops whatever the buffer belonged to.
 */
#ifndef HF_BUF_H
#define HF_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *p;
	size_t off; /* first unread byte */
	size_t len; /* end of the data */
	size_t cap;
	int oom;
};

static inline size_t buf_used(const struct buf *b)
{
	return b->len - b->off;
}

static inline uint8_t *buf_data(const struct buf *b)
{
	return b->p + b->off;
}

/* Room for n more bytes at the end; NULL (and oom set) when memory ran out. */
uint8_t *buf_reserve(struct buf *b, size_t n);
static inline void buf_commit(struct buf *b, size_t n)
{
	b->len += n;
}
void buf_append(struct buf *b, const void *d, size_t n);
void buf_consume(struct buf *b, size_t n);
/* Empties the buffer; keeps its memory unless it grew beyond keep bytes. */
void buf_reset(struct buf *b, size_t keep);
void buf_free(struct buf *b);

#endif
