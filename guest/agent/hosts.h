/*
 * The /etc/hosts edit of a hostname change (IDENTITY): pure text in, text out, so the fuzzer runs
 * it on whatever an image's /etc/hosts may hold.
 */
#ifndef HF_HOSTS_H
#define HF_HOSTS_H

#include <stddef.h>

#include "buf.h"

/* The line added when no line names the old hostname (Debian's convention for the own name). */
#define HOSTS_SELF_ADDR "127.0.1.1"

/*
 * Appends to out the n bytes of /etc/hosts text `in` with every name field equal to old_name
 * replaced by new_name (not the address field, not inside a comment; "localhost" is never
 * renamed, and an empty old_name matches nothing). When nothing was replaced, a line
 * `127.0.1.1<TAB>new_name` is added, so the new name resolves either way. Returns the number of
 * names replaced; out->oom tells whether memory ran out.
 */
int hosts_rename(const char *in, size_t n, const char *old_name, const char *new_name, struct buf *out);

#endif
