/* Replacing a small file under /etc as a whole: readers see the old text or the new, never half. */
#ifndef HF_COMMON_ETCFILE_H
#define HF_COMMON_ETCFILE_H

#include <stddef.h>

/* Writes text to <root><path>.hf-tmp and renames it over <root><path> (replacing a symlink there
 * instead of writing through it). unlink_first: see etcfile.c; only for PID 1 at boot, when nobody
 * else can look. Returns 0 or -errno. */
int etcfile_write(const char *root, const char *path, const char *text, size_t len, int unlink_first);

#endif
