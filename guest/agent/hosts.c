#include "hosts.h"

#include <string.h>

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* One line without its newline: copies it to out, replacing the name fields equal to old_name. */
static int rename_line(const char *p, size_t n, const char *old_name, size_t old_len, const char *new_name,
		       struct buf *out)
{
	const char *hash = memchr(p, '#', n);
	size_t end = hash ? (size_t)(hash - p) : n;
	size_t copied = 0, i = 0;
	int field = 0, replaced = 0;
	while (i < end) {
		while (i < end && is_space(p[i]))
			i++;
		size_t start = i;
		while (i < end && !is_space(p[i]))
			i++;
		if (i == start)
			break;
		/* Field 0 is the address. */
		if (field++ > 0 && i - start == old_len && memcmp(p + start, old_name, old_len) == 0) {
			buf_append(out, p + copied, start - copied);
			buf_append(out, new_name, strlen(new_name));
			copied = i;
			replaced++;
		}
	}
	buf_append(out, p + copied, n - copied);
	return replaced;
}

int hosts_rename(const char *in, size_t n, const char *old_name, const char *new_name, struct buf *out)
{
	size_t old_len = strlen(old_name);
	/* Renaming localhost would break every program that talks to itself. */
	int match = old_len > 0 && strcmp(old_name, "localhost") != 0;
	int replaced = 0;
	size_t pos = 0;
	while (pos < n) {
		const char *nl = memchr(in + pos, '\n', n - pos);
		size_t len = nl ? (size_t)(nl - (in + pos)) : n - pos;
		if (match)
			replaced += rename_line(in + pos, len, old_name, old_len, new_name, out);
		else
			buf_append(out, in + pos, len);
		pos += len;
		if (nl) {
			buf_append(out, "\n", 1);
			pos++;
		}
	}
	if (replaced)
		return replaced;
	if (n > 0 && in[n - 1] != '\n')
		buf_append(out, "\n", 1);
	static const char self[] = HOSTS_SELF_ADDR "\t";
	buf_append(out, self, sizeof self - 1);
	buf_append(out, new_name, strlen(new_name));
	buf_append(out, "\n", 1);
	return 0;
}
