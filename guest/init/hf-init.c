/*
 * hf-init: PID 1 of the Hyperfleet initramfs. Its only job is to get from the kernel to the real
 * init (the guest agent) on the root disk as fast as possible:
 *
 *   1. mount devtmpfs on /dev, proc on /proc, sysfs on /sys
 *   2. load, with finit_module, the modules /etc/hf-modules lists for the devices this VM has
 *   3. wait (bounded) for the root device from `root=` (default /dev/vda)
 *   4. mount it on /newroot (`rootfstype=` default ext4, `rootflags=`, `ro` default / `rw`)
 *   5. move /dev into the new root, unmount /proc and /sys (the agent mounts them itself)
 *   6. switch_root: move the new root onto /, chroot, delete the initramfs contents
 *   7. exec `hf.init=` (default /sbin/hf-agent) as PID 1
 *
 * On any fatal error it says why on the console (through /dev/kmsg) and powers the VM off, so the
 * host sees the VMM exit instead of a guest stuck in a kernel panic. No shell, no busy loops.
 *
 * Contract for the next stage: PID 1, / is the root disk, /dev is a mounted devtmpfs, /proc and
 * /sys are NOT mounted, fds 0-2 are /dev/console (or /dev/null if there is no console).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define NEWROOT "/newroot"
#define MODULE_LIST "/etc/hf-modules"
#define DEFAULT_ROOT "/dev/vda"
#define DEFAULT_FSTYPE "ext4"
#define DEFAULT_INIT "/sbin/hf-agent"
/* virtio_blk probes synchronously inside finit_module, so the device is usually there at once;
 * the wait only covers slow or asynchronous probes. */
#define ROOT_WAIT_MS 5000
#define ROOT_POLL_MS 2
#define CMDLINE_MAX 4096

static int kmsg_fd = -1;

struct boot_opts {
	const char *root;
	const char *fstype;
	const char *rootflags;
	const char *init;
	unsigned long mountflags;
};

/* ---- logging and fatal errors ---------------------------------------------------------------- */

/* Writes one line to the kernel log; level 3 (err) reaches the console even with `quiet`. Before
 * /dev/kmsg exists (or if it cannot be opened) it falls back to stderr. */
static void vklog(int level, const char *fmt, va_list ap)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "<%d>hf-init: ", level);
	if (n < 0)
		return;
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		return;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	buf[len++] = '\n';
	if (kmsg_fd >= 0 && write(kmsg_fd, buf, len) == (ssize_t)len)
		return;
	/* stderr has no use for the "<3>" prefix */
	const char *p = strchr(buf, '>') + 1;
	if (write(STDERR_FILENO, p, len - (size_t)(p - buf)) < 0)
		return;
}

static void __attribute__((format(printf, 2, 3))) klog(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vklog(level, fmt, ap);
	va_end(ap);
}

/* Powers the VM off. If the VMM has no power-off device the kernel halts instead, PID 1 exits,
 * and with `panic=-1` the resulting panic reboots at once, which ends the VMM too. */
static _Noreturn void power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

static _Noreturn void __attribute__((format(printf, 1, 2))) fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vklog(3, fmt, ap);
	va_end(ap);
	klog(3, "fatal error, powering off");
	/* let a console tty flush what was written to it directly */
	tcdrain(STDERR_FILENO);
	power_off();
}

static long elapsed_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* ---- early setup ----------------------------------------------------------------------------- */

static void mount_or_die(const char *src, const char *dst, const char *type, unsigned long flags)
{
	if (mkdir(dst, 0755) < 0 && errno != EEXIST)
		fatal("mkdir %s: %s", dst, strerror(errno));
	if (mount(src, dst, type, flags, NULL) < 0 && errno != EBUSY)
		fatal("mount %s on %s: %s", type, dst, strerror(errno));
}

/* The kernel gives PID 1 /dev/console as fds 0-2 only if the console device already exists; with
 * `console=hvc0` it appears only once virtio_console is loaded. So this runs twice: right after
 * /dev is mounted (a closed fd among 0-2 would otherwise be reused by the next open()) and after
 * the modules are loaded. Without a console, closed fds get /dev/null and open ones are kept. */
static void attach_console(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0) {
		for (int i = 0; i <= 2; i++)
			dup2(fd, i); /* the copies do not inherit O_CLOEXEC */
		if (fd > 2)
			close(fd);
		return;
	}
	for (int i = 0; i <= 2; i++) {
		if (fcntl(i, F_GETFD) >= 0)
			continue;
		fd = open("/dev/null", O_RDWR); /* lowest free fd: i itself */
		if (fd >= 0 && fd != i) {
			dup2(fd, i);
			close(fd);
		}
	}
}

static void early_mounts(void)
{
	mount_or_die("devtmpfs", "/dev", "devtmpfs", MS_NOSUID);
	attach_console();
	kmsg_fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	mount_or_die("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
	mount_or_die("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC);
}

/* ---- kernel command line --------------------------------------------------------------------- */

/* Parses /proc/cmdline into opts. Values point into buf. Quotes are not supported: none of our
 * parameters need spaces. The last occurrence of a parameter wins, as in the kernel. */
static void parse_cmdline(char *buf, size_t size, struct boot_opts *opts)
{
	opts->root = DEFAULT_ROOT;
	opts->fstype = DEFAULT_FSTYPE;
	opts->rootflags = NULL;
	opts->init = DEFAULT_INIT;
	opts->mountflags = MS_RDONLY; /* the kernel's default too: read-only unless `rw` */

	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fatal("open /proc/cmdline: %s", strerror(errno));
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		fatal("read /proc/cmdline: %s", strerror(errno));
	buf[n] = '\0';

	char *save = NULL;
	for (char *tok = strtok_r(buf, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
		if (strncmp(tok, "root=", 5) == 0)
			opts->root = tok + 5;
		else if (strncmp(tok, "rootfstype=", 11) == 0)
			opts->fstype = tok + 11;
		else if (strncmp(tok, "rootflags=", 10) == 0)
			opts->rootflags = tok + 10;
		else if (strncmp(tok, "hf.init=", 8) == 0)
			opts->init = tok + 8;
		else if (strcmp(tok, "ro") == 0)
			opts->mountflags |= MS_RDONLY;
		else if (strcmp(tok, "rw") == 0)
			opts->mountflags &= ~(unsigned long)MS_RDONLY;
		else if (strcmp(tok, "--") == 0)
			break; /* the rest is for init */
	}
	if (strncmp(opts->root, "/dev/", 5) != 0)
		fatal("unsupported root=%s: give a device path such as /dev/vda", opts->root);
	if (opts->init[0] != '/')
		fatal("hf.init=%s must be an absolute path", opts->init);
}

/* ---- modules --------------------------------------------------------------------------------- */

/*
 * MODULE_LIST, written by src/assets/initramfs-layout.ts (keep the two descriptions in sync): one
 * module per line, its path relative to /lib/modules/<release>/ (or absolute), optionally after a
 * condition and one space. Blank lines and lines starting with '#' are ignored.
 *
 *   kernel/drivers/virtio/virtio_mmio.ko            always loaded
 *   pci kernel/drivers/virtio/virtio_pci.ko         only if /sys/bus/pci/devices has an entry
 *   virtio:0x0002 kernel/drivers/block/virtio_blk.ko  only if a virtio device with that device id
 *                                                   (hex, as in /sys/bus/virtio/devices/<dev>/device)
 *
 * Pass 1 loads the unconditional and `pci` lines, pass 2 the `virtio:` lines, each in file order.
 * Pass 2 looks at the virtio bus only after pass 1 has loaded the transports (virtio_mmio,
 * virtio_pci): their probes are synchronous, so every device is listed by then. A conditional
 * line set holds a driver and each of its dependencies that are not unconditional, so a module may
 * appear under several conditions; it is loaded once. A condition this hf-init does not know is
 * reported and its line skipped. So the VM loads exactly the drivers of the devices it has.
 */
#define MODULE_LIST_MAX 16384
#define MODULES_MAX 128
#define VIRTIO_IDS_MAX 64

struct module_line {
	const char *cond; /* NULL: unconditional */
	const char *path;
	int loaded;
};

struct module_plan {
	struct module_line lines[MODULES_MAX];
	int count;
	unsigned long virtio_ids[VIRTIO_IDS_MAX];
	int nvirtio;
	int loaded, failed;
};

static int load_module(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	long rc = syscall(SYS_finit_module, fd, "", 0);
	int err = errno;
	close(fd);
	if (rc < 0 && err != EEXIST) {
		errno = err;
		return -1;
	}
	return 0;
}

/* Splits the list (in buf, modified in place) into plan->lines. */
static void parse_module_list(char *buf, struct module_plan *plan)
{
	char *save = NULL;
	for (char *line = strtok_r(buf, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
		if (line[0] == '#')
			continue;
		if (plan->count == MODULES_MAX) {
			klog(3, "%s: more than %d modules, ignoring the rest", MODULE_LIST, MODULES_MAX);
			return;
		}
		struct module_line *m = &plan->lines[plan->count++];
		char *sp = strchr(line, ' ');
		m->cond = sp ? line : NULL;
		m->path = sp ? sp + 1 + strspn(sp + 1, " ") : line;
		m->loaded = 0;
		if (sp)
			*sp = '\0';
	}
}

static int dir_has_entries(const char *path)
{
	DIR *d = opendir(path);
	if (!d)
		return 0;
	struct dirent *e;
	int found = 0;
	while (!found && (e = readdir(d)))
		found = e->d_name[0] != '.';
	closedir(d);
	return found;
}

/* Collects the device ids of the virtio devices present now. */
static void scan_virtio(struct module_plan *plan)
{
	DIR *d = opendir("/sys/bus/virtio/devices");
	if (!d)
		return; /* no virtio core loaded: no virtio devices */
	struct dirent *e;
	while ((e = readdir(d)) && plan->nvirtio < VIRTIO_IDS_MAX) {
		if (e->d_name[0] == '.')
			continue;
		char path[300], id[32];
		snprintf(path, sizeof(path), "/sys/bus/virtio/devices/%s/device", e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, id, sizeof(id) - 1);
		close(fd);
		if (n <= 0)
			continue;
		id[n] = '\0';
		plan->virtio_ids[plan->nvirtio++] = strtoul(id, NULL, 16);
	}
	closedir(d);
}

static int virtio_present(const struct module_plan *plan, const char *id)
{
	char *end;
	unsigned long want = strtoul(id, &end, 16);
	if (end == id || *end != '\0')
		return -1;
	for (int i = 0; i < plan->nvirtio; i++)
		if (plan->virtio_ids[i] == want)
			return 1;
	return 0;
}

/* Whether line m belongs to the pass and its condition holds: 1 yes, 0 no, -1 unknown condition. */
static int wanted(const struct module_plan *plan, const struct module_line *m, int pass, int pci)
{
	if (!m->cond)
		return pass == 1;
	if (strcmp(m->cond, "pci") == 0)
		return pass == 1 && pci;
	if (strncmp(m->cond, "virtio:", 7) == 0)
		return pass == 2 ? virtio_present(plan, m->cond + 7) : 0;
	return -1;
}

static void load_pass(struct module_plan *plan, int pass, int pci, const char *release)
{
	char path[768];
	for (int i = 0; i < plan->count; i++) {
		struct module_line *m = &plan->lines[i];
		int w = wanted(plan, m, pass, pci);
		if (w < 0 && pass == 1)
			klog(4, "%s: skipping %s: unknown condition '%s'", MODULE_LIST, m->path, m->cond);
		if (w <= 0)
			continue;
		int dup = 0;
		for (int j = 0; j < i && !dup; j++)
			dup = plan->lines[j].loaded && strcmp(plan->lines[j].path, m->path) == 0;
		if (dup)
			continue;
		if (m->path[0] == '/')
			snprintf(path, sizeof(path), "%s", m->path);
		else
			snprintf(path, sizeof(path), "/lib/modules/%s/%s", release, m->path);
		if (load_module(path) < 0) {
			klog(3, "load module %s: %s", path, strerror(errno));
			plan->failed++;
		} else {
			m->loaded = 1;
			plan->loaded++;
		}
	}
}

/* Loads what MODULE_LIST asks for on this VM's devices. A module that fails to load is reported
 * but not fatal: the root-device wait decides whether the boot can go on. */
static void load_modules(void)
{
	static char buf[MODULE_LIST_MAX];
	static struct module_plan plan;
	int fd = open(MODULE_LIST, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			klog(3, "open %s: %s", MODULE_LIST, strerror(errno));
		return;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0 || n == (ssize_t)sizeof(buf) - 1)
		fatal("read %s: %s", MODULE_LIST, n < 0 ? strerror(errno) : "larger than 16 KiB");
	buf[n] = '\0';
	struct utsname uts;
	if (uname(&uts) < 0)
		fatal("uname: %s", strerror(errno));

	parse_module_list(buf, &plan);
	int pci = dir_has_entries("/sys/bus/pci/devices");
	load_pass(&plan, 1, pci, uts.release);
	scan_virtio(&plan);
	load_pass(&plan, 2, pci, uts.release);

	char ids[VIRTIO_IDS_MAX * 8] = "";
	for (int i = 0, at = 0; i < plan.nvirtio && at < (int)sizeof(ids) - 24; i++)
		at += snprintf(ids + at, sizeof(ids) - (size_t)at, "%s%#lx", i ? " " : "", plan.virtio_ids[i]);
	klog(6, "%d modules loaded, %d failed; virtio devices [%s]%s (%ld ms since boot)", plan.loaded,
	     plan.failed, ids, pci ? ", PCI" : "", elapsed_ms());
}

/* ---- root device ----------------------------------------------------------------------------- */

static void wait_for_device(const char *dev)
{
	struct stat st;
	const struct timespec pause_ts = { 0, ROOT_POLL_MS * 1000000L };
	for (int waited = 0; stat(dev, &st) < 0; waited += ROOT_POLL_MS) {
		if (errno != ENOENT)
			fatal("stat %s: %s", dev, strerror(errno));
		if (waited >= ROOT_WAIT_MS)
			fatal("root device %s did not appear within %d ms (is the disk attached, and is its "
			      "driver in %s?)",
			      dev, ROOT_WAIT_MS, MODULE_LIST);
		nanosleep(&pause_ts, NULL);
	}
	if (!S_ISBLK(st.st_mode))
		fatal("root device %s is not a block device", dev);
}

static void mount_root(const struct boot_opts *opts)
{
	if (mkdir(NEWROOT, 0755) < 0 && errno != EEXIST)
		fatal("mkdir %s: %s", NEWROOT, strerror(errno));
	if (mount(opts->root, NEWROOT, opts->fstype, opts->mountflags, opts->rootflags) < 0)
		fatal("mount %s (%s, %s) on %s: %s", opts->root, opts->fstype,
		      (opts->mountflags & MS_RDONLY) ? "ro" : "rw", NEWROOT, strerror(errno));
}

/* ---- switch root ----------------------------------------------------------------------------- */

/* Moves /dev, /proc and /sys into the new root, so the next stage finds them mounted (the agent
 * would mount them the same way; moving is cheaper than unmounting and mounting again). A root
 * disk without the directory gets the mount detached instead. */
static void hand_over_mounts(void)
{
	static const char *const moved[] = { "/dev", "/proc", "/sys" };
	for (size_t i = 0; i < sizeof(moved) / sizeof(moved[0]); i++) {
		char dst[64];
		snprintf(dst, sizeof(dst), NEWROOT "%s", moved[i]);
		if (mount(moved[i], dst, NULL, MS_MOVE, NULL) == 0)
			continue;
		klog(3, "move %s to %s: %s (the root disk needs an empty %s)", moved[i], dst, strerror(errno), moved[i]);
		umount2(moved[i], MNT_DETACH);
	}
}

/* Deletes everything below the directory fd that lives on the same filesystem (the initramfs), so
 * its memory is freed. Closes fd. Same approach as util-linux switch_root. */
static void remove_tree(int fd, dev_t rootdev)
{
	DIR *dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return;
	}
	struct dirent *d;
	while ((d = readdir(dir))) {
		if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
			continue;
		struct stat st;
		if (fstatat(fd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != rootdev)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(fd, d->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0)
				remove_tree(sub, rootdev);
		}
		unlinkat(fd, d->d_name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0);
	}
	closedir(dir);
}

/* Returns an fd of the old root (the initramfs) for remove_tree. */
static int switch_root(void)
{
	int oldroot = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (oldroot < 0)
		fatal("open /: %s", strerror(errno));
	struct stat st;
	if (fstat(oldroot, &st) < 0)
		fatal("stat /: %s", strerror(errno));
	if (chdir(NEWROOT) < 0)
		fatal("chdir %s: %s", NEWROOT, strerror(errno));
	if (mount(NEWROOT, "/", NULL, MS_MOVE, NULL) < 0)
		fatal("move %s to /: %s", NEWROOT, strerror(errno));
	if (chroot(".") < 0 || chdir("/") < 0)
		fatal("chroot %s: %s", NEWROOT, strerror(errno));
	return oldroot;
}

/* Frees the initramfs from a child at SCHED_IDLE priority: it runs while the next stage waits for
 * the disk or the host, instead of delaying it. The child exits when done; as a child of PID 1 it
 * is reaped by the next stage (SIGCHLD is blocked here, so it stays pending across exec). */
static void clean_up_in_background(int oldroot)
{
	struct stat st;
	if (fstat(oldroot, &st) < 0) {
		close(oldroot);
		return;
	}
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);
	pid_t pid = fork();
	if (pid == 0) {
		struct sched_param sp = { 0 };
		syscall(SYS_sched_setscheduler, 0, SCHED_IDLE, &sp); /* musl's wrapper is a stub */
		remove_tree(oldroot, st.st_dev);
		_exit(0);
	}
	if (pid < 0)
		remove_tree(oldroot, st.st_dev);
	else
		close(oldroot);
}

/* ---- main ------------------------------------------------------------------------------------ */

int main(int argc, char **argv, char **envp)
{
	(void)argc;
	(void)argv;
	/* Refuse to run anywhere but as PID 1: on a host it would remount things and power it off. */
	if (getpid() != 1) {
		fprintf(stderr, "hf-init: must run as PID 1 of a Hyperfleet guest initramfs\n");
		return 1;
	}

	static char cmdline[CMDLINE_MAX];
	struct boot_opts opts;

	early_mounts();
	parse_cmdline(cmdline, sizeof(cmdline), &opts);
	load_modules();
	attach_console(); /* virtio_console may have just created hvc0 */
	wait_for_device(opts.root);
	mount_root(&opts);
	hand_over_mounts();
	clean_up_in_background(switch_root());

	klog(6, "root %s mounted, exec %s (%ld ms since boot)", opts.root, opts.init, elapsed_ms());
	char *const init_argv[] = { (char *)opts.init, NULL };
	execve(opts.init, init_argv, envp);
	fatal("exec %s on root %s: %s", opts.init, opts.root, strerror(errno));
}
