/*
 * hf-init: PID 1 of the Hyperfleet initramfs. Its only job is to get from the kernel to the real
 * init (the guest agent) on the root disk as fast as possible:
 *
 *   1. mount devtmpfs on /dev, proc on /proc, sysfs on /sys
 *   2. load, with finit_module, the transports from the module list /etc/hf-modules (modules.c)
 *   3. in a second thread: load the block-device drivers, wait (bounded) for the root device from
 *      `root=` (default /dev/vda), mount it on /newroot (`rootfstype=` default ext4, `rootflags=`
 *      default for ext4 DEFAULT_EXT4_FLAGS, `ro` default / `rw`), and read the next stage's binary
 *      into the page cache; meanwhile this thread loads the other device drivers and the modules a
 *      kernel command line switch asks for (`cmdline:` lines; those marked `late` are only
 *      opened) and brings `lo` up
 *   4. attach the console (waiting, bounded, for hvc0 with `console=hvc0`); move /dev, /proc and
 *      /sys into the new root
 *   5. switch_root: move the new root onto /, chroot
 *   6. start a child at idle priority for what nothing on the way to the agent waits for: delete
 *      the initramfs contents, then, once the boot is over, load the `late` modules and end
 *      expedited RCU grace periods (end_rcu_expedited)
 *   7. exec `hf.init=` (default /sbin/hf-agent) as PID 1
 *
 * Why two threads: with 2 vCPUs the root disk's driver probe and mount (the longest chain, mostly
 * first-run kernel code, which TCG must translate) run beside the console driver and `lo`; on one
 * vCPU the boot is CPU-bound and the split costs nothing measurable. `make TRACE=1` shows the
 * timeline (common/trace.h).
 *
 * On any fatal error it says why on the console (through /dev/kmsg) and powers the VM off, so the
 * host sees the VMM exit instead of a guest stuck in a kernel panic. No shell, no busy loops.
 *
 * Contract for the next stage: PID 1, / is the root disk, /dev (devtmpfs), /proc and /sys are
 * mounted (each only if the root disk has the directory), `lo` is up, fds 0-2 are /dev/console
 * (or /dev/null if there is no console). The child of step 6, "hf-init-late", exits
 * LATE_MODULES_DELAY_MS or a little more after the exec; the next stage reaps it like any orphan.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "modules.h"
#include "netlo.h"
#include "trace.h"

#define NEWROOT "/newroot"
#define MODULE_LIST "/etc/hf-modules" /* src/assets/initramfs-layout.ts MODULE_LIST_PATH */
#define DEFAULT_ROOT "/dev/vda"
#define DEFAULT_FSTYPE "ext4"
#define DEFAULT_INIT "/sbin/hf-agent"
/* virtio_blk probes synchronously inside finit_module, so the device is usually there at once;
 * the wait only covers slow or asynchronous probes. */
#define ROOT_WAIT_MS 5000
#define ROOT_POLL_MS 2
#define CMDLINE_MAX 4096
/* Mount options for an ext4 root when `rootflags=` gives none: the block bitmap prefetch (a
 * kernel thread reading every group's bitmap at mount, for faster first allocations on big disks)
 * cost ~15 ms of the boot under TCG and buys nothing on a small VM disk. */
#define DEFAULT_EXT4_FLAGS "no_prefetch_block_bitmaps"
/* The agent answers ~0.1 s after the switch to the root disk (TCG); the `late` modules (virtio-rng:
 * 11-18 ms of kernel work) wait until then, so they cannot hold the CPU while the agent starts. */
#define LATE_MODULES_DELAY_MS 500
/* With `console=hvc*` the console appears only after virtio_console's probe, from the port the host
 * announces on the control queue (a workqueue, so after finit_module returns). It is usually
 * there by the time the root disk is mounted; this bounds the wait when it is not. */
#define CONSOLE_WAIT_MS 1000
#define CONSOLE_POLL_MS 1

struct boot_opts {
	const char *root;
	const char *fstype;
	const char *rootflags;
	const char *init;
	unsigned long mountflags;
	int hvc_console; /* `console=hvc*`: the console comes with virtio_console */
};

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
 * /dev is mounted (a closed fd among 0-2 would otherwise be reused by the next open()) and once
 * the console can be there (wait_for_console). Without a console, closed fds get /dev/null and
 * open ones are kept. Returns 1 if fds 0-2 are the console. */
static int attach_console(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0) {
		for (int i = 0; i <= 2; i++)
			dup2(fd, i); /* the copies do not inherit O_CLOEXEC */
		if (fd > 2)
			close(fd);
		return 1;
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
	return 0;
}

/* Gives the next stage the console as fds 0-2, waiting (bounded) for a virtio console to appear. */
static void wait_for_console(const struct boot_opts *opts)
{
	const struct timespec pause_ts = { 0, CONSOLE_POLL_MS * 1000000L };
	for (int waited = 0; !attach_console(); waited += CONSOLE_POLL_MS) {
		if (!opts->hvc_console || waited >= CONSOLE_WAIT_MS) {
			if (opts->hvc_console)
				klog(3, "no console after %d ms: is there a virtio console device?", waited);
			return;
		}
		nanosleep(&pause_ts, NULL);
	}
}

static void early_mounts(void)
{
	mount_or_die("devtmpfs", "/dev", "devtmpfs", MS_NOSUID);
	attach_console();
	log_open_kmsg();
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
	opts->hvc_console = 0;

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
		else if (strncmp(tok, "console=", 8) == 0)
			opts->hvc_console = strncmp(tok + 8, "hvc", 3) == 0; /* the last one is /dev/console */
		else if (strcmp(tok, "--") == 0)
			break; /* the rest is for init */
	}
	if (strncmp(opts->root, "/dev/", 5) != 0)
		fatal("unsupported root=%s: give a device path such as /dev/vda", opts->root);
	if (opts->init[0] != '/')
		fatal("hf.init=%s must be an absolute path", opts->init);
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
	const char *flags = opts->rootflags;
	if (!flags && strcmp(opts->fstype, "ext4") == 0)
		flags = DEFAULT_EXT4_FLAGS;
	if (mount(opts->root, NEWROOT, opts->fstype, opts->mountflags, flags) < 0)
		fatal("mount %s (%s, %s) on %s: %s", opts->root, opts->fstype,
		      (opts->mountflags & MS_RDONLY) ? "ro" : "rw", NEWROOT, strerror(errno));
}

/* Reads the next stage's binary once, so its exec finds every page in the page cache instead of
 * waiting for the disk page by page. A missing file is left for execve to report. */
static void prefetch(const char *path)
{
	static char buf[64 * 1024];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	while (read(fd, buf, sizeof(buf)) > 0) {
	}
	close(fd);
}

/* The root thread: loads the block drivers, waits for the root device, mounts it, prefetches the
 * next stage. Errors are fatal from here as from the main thread (fatal powers the VM off). Its
 * stack is static: no allocation, which under TCG costs milliseconds on first use. */
static struct {
	pthread_t thread;
	int joinable;
	char stack[64 * 1024] __attribute__((aligned(16)));
} root_thread;

static struct boot_opts boot; /* from the kernel command line, read before any thread starts */

static void *root_main(void *arg)
{
	(void)arg;
	modules_load_drivers(MODULES_BLOCK);
	wait_for_device(boot.root);
	mount_root(&boot);
	HF_TRACE("root-mounted");
	char path[CMDLINE_MAX];
	snprintf(path, sizeof(path), NEWROOT "%s", boot.init);
	prefetch(path);
	HF_TRACE("init-prefetched");
	return NULL;
}

static void start_root_thread(void)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstack(&attr, root_thread.stack, sizeof(root_thread.stack));
	int err = pthread_create(&root_thread.thread, &attr, root_main, NULL);
	pthread_attr_destroy(&attr);
	root_thread.joinable = err == 0;
	if (err) {
		klog(4, "root thread: %s; mounting the root disk in sequence", strerror(err));
		root_main(NULL);
	}
}

static void join_root_thread(void)
{
	if (root_thread.joinable)
		pthread_join(root_thread.thread, NULL);
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
		klog(3, "move %s to %s: %s (the root disk needs an empty %s)", moved[i], dst,
		     strerror(errno), moved[i]);
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

/* Makes the new root /, like util-linux switch_root; returns an fd of the old root (the
 * initramfs), whose contents are still to be deleted. */
static int switch_root(void)
{
	int oldroot = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (oldroot < 0)
		fatal("open /: %s", strerror(errno));
	if (chdir(NEWROOT) < 0)
		fatal("chdir %s: %s", NEWROOT, strerror(errno));
	if (mount(NEWROOT, "/", NULL, MS_MOVE, NULL) < 0)
		fatal("move %s to /: %s", NEWROOT, strerror(errno));
	if (chroot(".") < 0 || chdir("/") < 0)
		fatal("chroot %s: %s", NEWROOT, strerror(errno));
	return oldroot;
}

/* Frees the initramfs and loads the late modules from a child at SCHED_IDLE priority: it gets the
 * CPU only while the next stage waits (for the disk, for the host), in short syscalls that a woken
 * agent preempts at once, so it does not delay the agent's first answer (synchronously the
 * deletion took 10-17 ms of the boot under TCG). Its exit comes after the delay, when the agent
 * has long been waiting for SIGCHLD to reap it.
 *
 * The child shares our memory (CLONE_VM) instead of getting a copy: fork's page-table copy and the
 * copy-on-write faults before our exec cost ~5 ms under TCG. That is safe because from here on
 * this process only closes an fd, logs from its stack and execs (which gives it a fresh address
 * space and leaves the old one to the child); the child runs on its own static stack. Its fd
 * table is its own copy: our exec closes the late modules' fds (O_CLOEXEC) here, not there.
 * errno is shared as well, which only the message of a failed exec could notice. */
static struct {
	int oldroot;
	dev_t dev;
	char stack[64 * 1024] __attribute__((aligned(16)));
} late;

/* The kernel expedites RCU grace periods until /init starts; our kernel arguments
 * (rcupdate.rcu_expedited=1) extend that to the whole boot, where block-queue setup and mounts
 * wait for grace periods (~50 ms sooner to the agent with 2 vCPUs). After the boot it would only
 * cost: each exec in the guest took 1-3 ms longer with it (measured under TCG). */
static void end_rcu_expedited(void)
{
	int fd = open("/sys/kernel/rcu_expedited", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, "0\n", 2) < 0)
		klog(4, "/sys/kernel/rcu_expedited: %s", strerror(errno));
	close(fd);
}

static int late_main(void *arg)
{
	(void)arg;
	struct sched_param sp = { 0 };
	syscall(SYS_sched_setscheduler, 0, SCHED_IDLE, &sp); /* musl's wrapper is a stub */
	prctl(PR_SET_NAME, "hf-init-late"); /* not "init" in ps while it lives */
	remove_tree(late.oldroot, late.dev);
	const struct timespec delay = { LATE_MODULES_DELAY_MS / 1000,
					(LATE_MODULES_DELAY_MS % 1000) * 1000000L };
	nanosleep(&delay, NULL);
	modules_load_late();
	end_rcu_expedited();
	return 0;
}

static void finish_in_background(int oldroot)
{
	struct stat st;
	if (fstat(oldroot, &st) < 0)
		fatal("stat the initramfs: %s", strerror(errno));
	late.oldroot = oldroot;
	late.dev = st.st_dev;
	if (clone(late_main, late.stack + sizeof(late.stack), CLONE_VM | SIGCHLD, NULL) > 0) {
		close(oldroot);
		return;
	}
	/* no child: done here, in the foreground */
	remove_tree(oldroot, st.st_dev);
	modules_load_late();
	end_rcu_expedited();
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

	early_mounts();
	HF_TRACE("init-mounted");
	parse_cmdline(cmdline, sizeof(cmdline), &boot);
	modules_load_transports(MODULE_LIST);
	start_root_thread();
	modules_load_drivers(MODULES_OTHER);
	HF_TRACE("drivers-loaded");
	int err = loopback_up();
	if (err)
		klog(4, "lo up: %s", strerror(-err));
	HF_TRACE("lo-up");
	join_root_thread();
	modules_report();
	HF_TRACE("root-joined");
	wait_for_console(&boot); /* after the mount, which gives virtio_console time to set it up */
	hand_over_mounts();
	finish_in_background(switch_root());
	HF_TRACE("switched");

	klog(6, "root %s mounted, exec %s (%ld ms since boot)", boot.root, boot.init, elapsed_ms());
	char *const init_argv[] = { (char *)boot.init, NULL };
	execve(boot.init, init_argv, envp);
	fatal("exec %s on root %s: %s", boot.init, boot.root, strerror(errno));
}
