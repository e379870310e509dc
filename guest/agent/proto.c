#include "proto.h"

#include <errno.h>
#include <string.h>

long hf_parse_frame(const uint8_t *p, size_t n, struct hf_frame *f)
{
	if (n < HF_HEADER_SIZE)
		return HF_NEED_MORE;
	f->len = hf_le32(p);
	f->type = p[4];
	f->flags = p[5];
	f->id = hf_le32(p + 8);
	f->payload = p + HF_HEADER_SIZE;
	/* Both checks come before waiting for the payload: a bad length must not make us buffer. */
	if (f->len > HF_MAX_PAYLOAD)
		return HF_BAD_LENGTH;
	if (p[6] != 0 || p[7] != 0)
		return HF_BAD_RESERVED;
	if (n - HF_HEADER_SIZE < f->len)
		return HF_NEED_MORE;
	return (long)(HF_HEADER_SIZE + f->len);
}

int hf_msg_parse(struct hf_msg *m, const uint8_t *p, size_t n)
{
	memset(m, 0, sizeof *m);
	m->p = p;
	m->n = n;
	size_t off = 0;
	while (off < n) {
		if (n - off < HF_FIELD_HEADER)
			return -EPROTO;
		uint8_t tag = p[off];
		uint32_t len = hf_le32(p + off + 1);
		off += HF_FIELD_HEADER;
		if (len > n - off)
			return -EPROTO;
		if (tag < HF_TAGS) {
			if (m->count[tag]++ == 0) {
				m->first[tag].p = p + off;
				m->first[tag].len = len;
			}
		}
		off += len;
	}
	return 0;
}

int hf_msg_next(const struct hf_msg *m, uint8_t tag, size_t *pos, struct hf_field *out)
{
	/* The payload was validated by hf_msg_parse, so the bounds hold; they are rechecked anyway
	 * because this is cheap and keeps the function safe on its own. */
	while (*pos + HF_FIELD_HEADER <= m->n) {
		const uint8_t *f = m->p + *pos;
		uint32_t len = hf_le32(f + 1);
		if (len > m->n - *pos - HF_FIELD_HEADER)
			return 0;
		*pos += HF_FIELD_HEADER + len;
		if (f[0] == tag) {
			out->p = f + HF_FIELD_HEADER;
			out->len = len;
			return 1;
		}
	}
	return 0;
}

static int fixed(const struct hf_msg *m, uint8_t tag, uint32_t size, const uint8_t **p)
{
	if (tag >= HF_TAGS || m->count[tag] == 0)
		return 0;
	if (m->first[tag].len != size)
		return -EINVAL;
	*p = m->first[tag].p;
	return 1;
}

int hf_get_u8(const struct hf_msg *m, uint8_t tag, uint8_t *out)
{
	const uint8_t *p;
	int r = fixed(m, tag, 1, &p);
	if (r == 1)
		*out = p[0];
	return r;
}

int hf_get_u32(const struct hf_msg *m, uint8_t tag, uint32_t *out)
{
	const uint8_t *p;
	int r = fixed(m, tag, 4, &p);
	if (r == 1)
		*out = hf_le32(p);
	return r;
}

int hf_get_u64(const struct hf_msg *m, uint8_t tag, uint64_t *out)
{
	const uint8_t *p;
	int r = fixed(m, tag, 8, &p);
	if (r == 1)
		*out = (uint64_t)hf_le32(p) | (uint64_t)hf_le32(p + 4) << 32;
	return r;
}

void hf_header(uint8_t *h, uint8_t type, uint8_t flags, uint32_t id, uint32_t len)
{
	hf_st32(h, len);
	h[4] = type;
	h[5] = flags;
	h[6] = h[7] = 0;
	hf_st32(h + 8, id);
}

size_t hf_begin(struct buf *b, uint8_t type, uint8_t flags, uint32_t id)
{
	size_t at = buf_used(b);
	uint8_t *h = buf_reserve(b, HF_HEADER_SIZE);
	if (h) {
		hf_header(h, type, flags, id, 0);
		buf_commit(b, HF_HEADER_SIZE);
	}
	return at;
}

void hf_end(struct buf *b, size_t at)
{
	if (b->oom)
		return;
	hf_st32(buf_data(b) + at, (uint32_t)(buf_used(b) - at - HF_HEADER_SIZE));
}

void hf_put(struct buf *b, uint8_t tag, const void *v, uint32_t n)
{
	uint8_t *p = buf_reserve(b, HF_FIELD_HEADER + (size_t)n);
	if (!p)
		return;
	p[0] = tag;
	hf_st32(p + 1, n);
	if (n)
		memcpy(p + HF_FIELD_HEADER, v, n);
	buf_commit(b, HF_FIELD_HEADER + (size_t)n);
}

void hf_put_str(struct buf *b, uint8_t tag, const char *s)
{
	size_t n = strlen(s);
	hf_put(b, tag, s, (uint32_t)(n > HF_MAX_PAYLOAD / 2 ? HF_MAX_PAYLOAD / 2 : n));
}

void hf_put_u8(struct buf *b, uint8_t tag, uint8_t v)
{
	hf_put(b, tag, &v, 1);
}

void hf_put_u32(struct buf *b, uint8_t tag, uint32_t v)
{
	uint8_t le[4];
	hf_st32(le, v);
	hf_put(b, tag, le, 4);
}

void hf_put_u64(struct buf *b, uint8_t tag, uint64_t v)
{
	uint8_t le[8];
	hf_st32(le, (uint32_t)v);
	hf_st32(le + 4, (uint32_t)(v >> 32));
	hf_put(b, tag, le, 8);
}

void hf_frame(struct buf *b, uint8_t type, uint8_t flags, uint32_t id, const void *payload, size_t n)
{
	uint8_t *p = buf_reserve(b, HF_HEADER_SIZE + n);
	if (!p)
		return;
	hf_header(p, type, flags, id, (uint32_t)n);
	if (n)
		memcpy(p + HF_HEADER_SIZE, payload, n);
	buf_commit(b, HF_HEADER_SIZE + n);
}
