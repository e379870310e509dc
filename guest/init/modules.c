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
 *   cmdline:hf.vsock_loopback=1 kernel/.../vsock_loopback.ko
 *                                                       only if the kernel command line has that
 *                                                       word (a test switch: common/cmdline.h);
 *                                                       loaded with the non-block drivers
 *
 * modules_load_transports loads the unconditional and `pci` lines (pass 1), modules_load_drivers
 * the `virtio:` and `cmdline:` lines (pass 2), each in file order. Pass 2 looks at the virtio bus
 * only after pass 1 loaded the transports (virtio_mmio, virtio_pci): their probes are synchronous,
 * so by then every device is on the bus. Pass 2 is split in two groups, block devices (virtio id 2) and the
 * rest, that two threads may load at once (the kernel runs module init functions concurrently):
 * hf-init mounts the root disk in one while the other loads the remaining drivers. A driver's line
 * set holds it and each of its dependencies that is not unconditional, so one module may be listed
 * under several conditions: it is loaded once per group, and a second load in the other group
 * finds it there (EEXIST, a success). A line with a condition this hf-init does not know is
 * reported and skipped, never loaded unconditionally. So a VM loads exactly its devices' drivers.
 */
#define _GNU_SOURCE
#include "modules.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "cmdline.h"
#include "dirscan.h"
#include "log.h"
#include "trace.h"

#define LIST_MAX 16384
#define LINES_MAX 128
#define VIRTIO_IDS_MAX 64

enum cond { COND_ALWAYS, COND_PCI, COND_VIRTIO, COND_CMDLINE, COND_UNKNOWN };

struct line {
	enum cond cond;
	unsigned long virtio_id;
	const char *word; /* the condition when COND_UNKNOWN; the command line word when COND_CMDLINE */
	const char *path;
	int late;
	int switched_on; /* COND_CMDLINE: the word is on the command line (read once, at parse) */
	int step; /* step_of */
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
	} else if (strncmp(w, "cmdline:", 8) == 0 && w[8]) {
		l->cond = COND_CMDLINE;
		l->word = w + 8;
		l->switched_on = cmdline_has(l->word);
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

#define VIRTIO_ID_BLOCK 0x2

/* Which call loads a line: 0 none (unknown condition, or no such device), 1 the transports, or
 * 2 + the pass-2 group. */
static int step_of(const struct line *l, int pci)
{
	switch (l->cond) {
	case COND_ALWAYS:
		return 1;
	case COND_PCI:
		return pci ? 1 : 0;
	case COND_VIRTIO:
		if (!virtio_present(l->virtio_id))
			return 0;
		return 2 + (l->virtio_id == VIRTIO_ID_BLOCK ? MODULES_BLOCK : MODULES_OTHER);
	case COND_CMDLINE:
		return l->switched_on ? 2 + MODULES_OTHER : 0;
	default:
		return 0;
	}
}

/* Whether an earlier line of the same step names the same module (lines of the other group may be
 * written concurrently by the other thread: not looked at). */
static int already_loaded(int i, int step)
{
	for (int j = 0; j < i; j++)
		if (lines[j].step == step && lines[j].loaded && strcmp(lines[j].path, lines[i].path) == 0)
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

static struct {
	char release[65];
	int pci;
	int loaded[2 + 2], failed[2 + 2]; /* per step: each written by one thread only */
} st;

static void load_step(int step)
{
	char path[768];
	for (int i = 0; i < nlines; i++) {
		struct line *l = &lines[i];
		if (l->step != step || already_loaded(i, step))
			continue;
		if (l->path[0] == '/')
			snprintf(path, sizeof(path), "%s", l->path);
		else
			snprintf(path, sizeof(path), "/lib/modules/%s/%s", st.release, l->path);
		/* Opened now, while the initramfs is still /, and loaded later from the fd. */
		if (l->late && (l->fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
			l->loaded = 1;
			continue;
		}
		if (load_module(path) < 0) {
			klog(3, "load module %s: %s", path, strerror(errno));
			st.failed[step]++;
		} else {
			l->loaded = 1;
			st.loaded[step]++;
			HF_TRACE(strrchr(path, '/') + 1);
		}
	}
}

void modules_load_transports(const char *list_path)
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
	snprintf(st.release, sizeof(st.release), "%s", uts.release);

	parse_list(buf);
	for (int i = 0; i < nlines; i++)
		if (lines[i].cond == COND_UNKNOWN)
			klog(4, "%s: skipping %s: unknown condition '%s'", list_path, lines[i].path, lines[i].word);
	dir_each("/sys/bus/pci/devices", found_one, &st.pci);
	for (int i = 0; i < nlines; i++)
		lines[i].step = step_of(&lines[i], st.pci); /* virtio lines: provisional, see below */
	load_step(1);
	/* No virtio core loaded means no directory: no virtio devices. */
	dir_each("/sys/bus/virtio/devices", record_virtio_id, NULL);
	for (int i = 0; i < nlines; i++)
		lines[i].step = step_of(&lines[i], st.pci);
}

void modules_load_drivers(enum modules_group group)
{
	load_step(2 + group);
}

void modules_report(void)
{
	char ids[VIRTIO_IDS_MAX * 8] = "";
	for (int i = 0, at = 0; i < nvirtio && at < (int)sizeof(ids) - 24; i++)
		at += snprintf(ids + at, sizeof(ids) - (size_t)at, "%s%#lx", i ? " " : "", virtio_ids[i]);
	int late = 0, loaded = 0, failed = 0;
	for (int i = 0; i < nlines; i++)
		late += lines[i].fd >= 0;
	for (int i = 0; i < 4; i++) {
		loaded += st.loaded[i];
		failed += st.failed[i];
	}
	klog(6, "%d modules loaded, %d failed, %d for later; virtio devices [%s]%s (%ld ms since boot)",
	     loaded, failed, late, ids, st.pci ? ", PCI devices" : "", elapsed_ms());
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
