#include "buf.h"

#include <stdlib.h>
#include <string.h>

uint8_t *buf_reserve(struct buf *b, size_t n)
{
	if (b->oom)
		return NULL;
	if (b->p && b->cap - b->len >= n)
		return b->p + b->len;
	size_t used = buf_used(b);
	/* Sliding the unread bytes down is cheaper than growing when most of the buffer is consumed. */
	if (b->off > 0 && b->cap - used >= n && b->off >= used) {
		memmove(b->p, b->p + b->off, used);
		b->off = 0;
		b->len = used;
		return b->p + b->len;
	}
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - used < n) {
		if (cap > SIZE_MAX / 2) {
			b->oom = 1;
			return NULL;
		}
		cap *= 2;
	}
	uint8_t *p = malloc(cap);
	if (!p) {
		b->oom = 1;
		return NULL;
	}
	if (used)
		memcpy(p, b->p + b->off, used);
	free(b->p);
	b->p = p;
	b->cap = cap;
	b->off = 0;
	b->len = used;
	return b->p + b->len;
}

void buf_append(struct buf *b, const void *d, size_t n)
{
	if (!n)
		return;
	uint8_t *p = buf_reserve(b, n);
	if (p) {
		memcpy(p, d, n);
		b->len += n;
	}
}

void buf_consume(struct buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len)
		b->off = b->len = 0;
}

void buf_reset(struct buf *b, size_t keep)
{
	if (b->cap > keep) {
		buf_free(b);
		return;
	}
	b->off = b->len = 0;
	b->oom = 0;
}

void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->off = b->len = b->cap = 0;
	b->oom = 0;
}
