/*
 * The module list (/etc/hf-modules), written by src/assets/initramfs-layout.ts; keep the two
 * descriptions in sync. One module per line: its path relative to /lib/modules/<release>/ (or
 * absolute), optionally after `late` and/or a condition, each followed by a space. Blank lines
 * and '#' lines are ignored.
 *
 *   kernel/drivers/virtio/virtio_mmio.ko                always loaded
 *   pci kernel/drivers/virtio/virtio_pci.ko             only if /sys/bus/pci/devices has an entry
 *   virtio:0x0002 kernel/drivers/block/virtio_blk.ko    only if a virtio device with that device
 *                                                       id (hex, as in /sys/bus/virtio/devices/
 *                                                       <dev>/device) exists
 *   late virtio:0x0004 kernel/.../virtio-rng.ko         as above, but loaded only once the boot is
 *                                                       over (modules_load_late), because nothing
 *                                                       on the way to the agent needs it
 *
 * Pass 1 loads the unconditional and `pci` lines, pass 2 the `virtio:` lines, each in file order.
 * Pass 2 looks at the virtio bus only after pass 1 loaded the transports (virtio_mmio, virtio_pci):
 * their probes are synchronous, so by then every device is on the bus. A driver's line set holds
 * it and each of its dependencies that is not unconditional, so one module may be listed under
 * several conditions: it is loaded once. A line with a condition this hf-init does not know is
 * reported and skipped, never loaded unconditionally. So a VM loads exactly its devices' drivers.
 */
#define _GNU_SOURCE
#include "modules.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "log.h"

#define LIST_MAX 16384
#define LINES_MAX 128
#define VIRTIO_IDS_MAX 64

enum cond { COND_ALWAYS, COND_PCI, COND_VIRTIO, COND_UNKNOWN };

struct line {
	enum cond cond;
	unsigned long virtio_id;
	const char *word; /* the condition, when COND_UNKNOWN */
	const char *path;
	int late;
	int loaded; /* or, if late, opened: fd is set */
	int fd;
};

static struct line lines[LINES_MAX];
static int nlines;
static unsigned long virtio_ids[VIRTIO_IDS_MAX];
static int nvirtio;

static void parse_condition(struct line *l, const char *w)
{
	char *end;
	if (strcmp(w, "pci") == 0) {
		l->cond = COND_PCI;
	} else if (strncmp(w, "virtio:", 7) == 0 &&
		   (l->virtio_id = strtoul(w + 7, &end, 16), end != w + 7 && *end == '\0')) {
		l->cond = COND_VIRTIO;
	} else {
		l->cond = COND_UNKNOWN;
		l->word = w;
	}
}

/* Splits the list (modified in place) into lines[]. */
static void parse_list(char *buf)
{
	char *save = NULL;
	for (char *s = strtok_r(buf, "\r\n", &save); s; s = strtok_r(NULL, "\r\n", &save)) {
		if (s[0] == '#')
			continue;
		if (nlines == LINES_MAX) {
			klog(3, "module list: more than %d lines, ignoring the rest", LINES_MAX);
			return;
		}
		struct line *l = &lines[nlines++];
		memset(l, 0, sizeof(*l));
		l->fd = -1;
		char *sp;
		if (strncmp(s, "late ", 5) == 0) {
			l->late = 1;
			s += 5 + strspn(s + 5, " ");
		}
		l->path = s;
		if ((sp = strchr(s, ' '))) {
			*sp = '\0';
			parse_condition(l, s);
			l->path = sp + 1 + strspn(sp + 1, " ");
		}
	}
}

/* Calls fn(name, arg) for each entry of dir but . and .., until fn returns nonzero. getdents into
 * a static buffer instead of opendir: under TCG the first malloc of a process costs ~6 ms (brk,
 * mmap and the TLB flushes they cause), and a DIR would be hf-init's only allocation. */
static void each_entry(const char *dir, int (*fn)(const char *name, void *arg), void *arg)
{
	static char buf[4096] __attribute__((aligned(8)));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	int n, stop = 0;
	while (!stop && (n = getdents(fd, (struct dirent *)buf, sizeof(buf))) > 0) {
		for (int at = 0; !stop && at < n;) {
			struct dirent *e = (struct dirent *)(buf + at);
			at += e->d_reclen;
			if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
				stop = fn(e->d_name, arg);
		}
	}
	close(fd);
}

static int found_one(const char *name, void *arg)
{
	(void)name;
	*(int *)arg = 1;
	return 1;
}

/* Records the device id of one virtio device (an entry of /sys/bus/virtio/devices). */
static int record_virtio_id(const char *dev, void *arg)
{
	(void)arg;
	char path[300], id[32];
	snprintf(path, sizeof(path), "/sys/bus/virtio/devices/%s/device", dev);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, id, sizeof(id) - 1);
	close(fd);
	if (n > 0) {
		id[n] = '\0';
		virtio_ids[nvirtio++] = strtoul(id, NULL, 16);
	}
	return nvirtio == VIRTIO_IDS_MAX;
}

static int virtio_present(unsigned long id)
{
	for (int i = 0; i < nvirtio; i++)
		if (virtio_ids[i] == id)
			return 1;
	return 0;
}

static int wanted(const struct line *l, int pass, int pci)
{
	switch (l->cond) {
	case COND_ALWAYS:
		return pass == 1;
	case COND_PCI:
		return pass == 1 && pci;
	case COND_VIRTIO:
		return pass == 2 && virtio_present(l->virtio_id);
	default:
		return 0;
	}
}

static int already_loaded(int i)
{
	for (int j = 0; j < i; j++)
		if (lines[j].loaded && strcmp(lines[j].path, lines[i].path) == 0)
			return 1;
	return 0;
}

static int load_fd(int fd)
{
	long rc = syscall(SYS_finit_module, fd, "", 0);
	return rc < 0 && errno != EEXIST ? -1 : 0;
}

static int load_module(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = load_fd(fd);
	int err = errno;
	close(fd);
	errno = err;
	return rc;
}

static void load_pass(int pass, int pci, const char *release, int *loaded, int *failed)
{
	char path[768];
	for (int i = 0; i < nlines; i++) {
		struct line *l = &lines[i];
		if (!wanted(l, pass, pci) || already_loaded(i))
			continue;
		if (l->path[0] == '/')
			snprintf(path, sizeof(path), "%s", l->path);
		else
			snprintf(path, sizeof(path), "/lib/modules/%s/%s", release, l->path);
		/* Opened now, while the initramfs is still /, and loaded later from the fd. */
		if (l->late && (l->fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
			l->loaded = 1;
			continue;
		}
		if (load_module(path) < 0) {
			klog(3, "load module %s: %s", path, strerror(errno));
			(*failed)++;
		} else {
			l->loaded = 1;
			(*loaded)++;
		}
	}
}

void modules_load(const char *list_path)
{
	static char buf[LIST_MAX];
	int fd = open(list_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			klog(3, "open %s: %s", list_path, strerror(errno));
		return;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0 || n == (ssize_t)sizeof(buf) - 1)
		fatal("read %s: %s", list_path, n < 0 ? strerror(errno) : "larger than 16 KiB");
	buf[n] = '\0';
	struct utsname uts;
	if (uname(&uts) < 0)
		fatal("uname: %s", strerror(errno));

	parse_list(buf);
	for (int i = 0; i < nlines; i++)
		if (lines[i].cond == COND_UNKNOWN)
			klog(4, "%s: skipping %s: unknown condition '%s'", list_path, lines[i].path, lines[i].word);
	int loaded = 0, failed = 0;
	int pci = 0;
	each_entry("/sys/bus/pci/devices", found_one, &pci);
	load_pass(1, pci, uts.release, &loaded, &failed);
	/* No virtio core loaded means no directory: no virtio devices. */
	each_entry("/sys/bus/virtio/devices", record_virtio_id, NULL);
	load_pass(2, pci, uts.release, &loaded, &failed);

	char ids[VIRTIO_IDS_MAX * 8] = "";
	for (int i = 0, at = 0; i < nvirtio && at < (int)sizeof(ids) - 24; i++)
		at += snprintf(ids + at, sizeof(ids) - (size_t)at, "%s%#lx", i ? " " : "", virtio_ids[i]);
	int late = 0;
	for (int i = 0; i < nlines; i++)
		late += lines[i].fd >= 0;
	klog(6, "%d modules loaded, %d failed, %d for later; virtio devices [%s]%s (%ld ms since boot)",
	     loaded, failed, late, ids, pci ? ", PCI devices" : "", elapsed_ms());
}

void modules_load_late(void)
{
	for (int i = 0; i < nlines; i++) {
		if (lines[i].fd < 0)
			continue;
		if (load_fd(lines[i].fd) < 0)
			klog(3, "load module %s: %s", lines[i].path, strerror(errno));
		close(lines[i].fd);
		lines[i].fd = -1;
	}
}
