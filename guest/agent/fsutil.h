/* Filesystem helpers behind the file operations. All return 0 (or an fd) or -errno. */
#ifndef HF_FSUTIL_H
#define HF_FSUTIL_H

#include <sys/types.h>

/* A new file next to path (same directory, so rename() onto path is atomic); *tmp gets its name. */
int fs_create_temp(const char *path, char **tmp);
/* mkdir -p of the directory that will contain path. */
int fs_mkdir_parents(const char *path);
/* mkdir with an exact mode; parents: create missing ancestors and accept an existing directory. */
int fs_mkdir(const char *path, mode_t mode, int parents);
/* unlink / rmdir, or a whole tree without crossing into other filesystems (EBUSY at a mount). */
int fs_remove(const char *path, int recursive);
/* fsync of the directory that contains path, so a rename or create in it is durable. */
int fs_sync_parent(const char *path);

#endif
