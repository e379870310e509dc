/* Shared by hf-init and hf-agent: listing a directory without allocating. */
#ifndef HF_COMMON_DIRSCAN_H
#define HF_COMMON_DIRSCAN_H

/* Calls fn(name, arg) for each entry of dir but . and .., until fn returns nonzero; returns that
 * value, 0 when the listing ended, or -errno if dir cannot be opened. Not reentrant (one static
 * buffer): fn must not call it. */
int dir_each(const char *dir, int (*fn)(const char *name, void *arg), void *arg);

#endif
