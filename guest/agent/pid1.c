#define _GNU_SOURCE
#include "pid1.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "detach.h"
#include "identity.h"
#include "netcfg.h"
#include "netlo.h"
#include "trace.h"
#include "sig.h"
#include "util.h"

#define TERM_GRACE_MS 2000
#define KILL_WAIT_MS 1000
/* hf-init loads virtio_net before the switch; this only covers a kernel that probes it later. */
#define NIC_WAIT_MS 2000

static const struct {
	const char *src, *dst, *type;
	unsigned long flags;
	const char *data;
} mounts[] = {
	{ "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
	{ "devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755" },
	{ "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666" },
	{ "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
	{ "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755" },
	{ "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
};

/* Something is mounted on dir when it lives on another device than its parent. Mounting again
 * would stack a second instance (proc and devtmpfs do not refuse with EBUSY), so check first. */
static int is_mountpoint(const char *dir)
{
	struct stat a, b;
	char parent[64];
	snprintf(parent, sizeof parent, "%s/..", dir);
	if (stat(dir, &a) < 0 || stat(parent, &b) < 0)
		return 0;
	return a.st_dev != b.st_dev || a.st_ino == b.st_ino;
}

static void mount_all(void)
{
	for (size_t i = 0; i < sizeof mounts / sizeof mounts[0]; i++) {
		mkdir(mounts[i].dst, 0755); /* fails on a read-only root: the image must have it */
		if (is_mountpoint(mounts[i].dst))
			continue;
		if (mount(mounts[i].src, mounts[i].dst, mounts[i].type, mounts[i].flags, mounts[i].data) < 0 &&
			errno != EBUSY)
			log_msg("mount %s: %s", mounts[i].dst, strerror(errno));
	}
	/* devtmpfs lacks these; shells use them for process substitution and /dev/stdin. */
	symlink("/proc/self/fd", "/dev/fd");
	symlink("/proc/self/fd/0", "/dev/stdin");
	symlink("/proc/self/fd/1", "/dev/stdout");
	symlink("/proc/self/fd/2", "/dev/stderr");
}

static void set_hostname(void)
{
	char cmdline[4096], name[65] = "hyperfleet";
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, cmdline, sizeof cmdline - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n > 0) {
		cmdline[n] = 0;
		for (char *tok = strtok(cmdline, " \n"); tok; tok = strtok(NULL, " \n"))
			if (strncmp(tok, "hf.hostname=", 12) == 0 && tok[12])
				snprintf(name, sizeof name, "%s", tok + 12);
	}
	if (sethostname(name, strlen(name)) < 0)
		log_msg("sethostname: %s", strerror(errno));
}

/* The network of hf.ip= and friends (netcfg.h); without hf.ip nothing is touched. Here, not in
 * hf-init beside the root mount: that was measured no faster (the link-up work competes with the
 * mount for the vCPU) and a boot without our initramfs would need it here anyway. A bad or failed
 * configuration is logged and the boot goes on: the agent must stay reachable to say what is wrong. */
static void setup_network(void)
{
	char cmdline[4096], err[160], host[65] = "";
	int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, cmdline, sizeof cmdline) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return;
	struct netcfg cfg;
	if (netcfg_parse(cmdline, (size_t)n, &cfg, err, sizeof err) < 0) {
		log_msg("network not configured: %s", err);
		return;
	}
	if (!cfg.present)
		return;
	HF_TRACE("agent-net-start");
	gethostname(host, sizeof host - 1);
	if (netcfg_apply(&cfg, host, "", NIC_WAIT_MS, err, sizeof err) < 0)
		log_msg("network: %s", err);
	HF_TRACE("agent-net-up");
}

void pid1_setup(void)
{
	umask(022);
	if (chdir("/") < 0)
		log_msg("chdir /: %s", strerror(errno));
	mount_all();
	set_hostname();
	/* hf-init has usually done it, in parallel with mounting the root disk. */
	int err = loopback_up();
	if (err)
		log_msg("lo up: %s", strerror(-err));
	setup_network();
	identity_bind_etc();
	/* Ctrl-Alt-Del becomes SIGINT to us (a clean shutdown) instead of an immediate reboot. */
	reboot(RB_DISABLE_CAD);
}

/* Reaps until nothing is left or ms passed; 1 when every process is gone. Detached processes'
 * output keeps going to their logs meanwhile, so what they say while stopping is kept. */
static int reap_for(int ms)
{
	int64_t end = now_ms() + ms;
	for (;;) {
		pid_t p;
		int st;
		while ((p = waitpid(-1, &st, WNOHANG)) > 0)
			detach_reaped(p, st);
		int none_left = p < 0 && errno == ECHILD;
		detach_pump_all();
		detach_timers(now_ms());
		if (none_left)
			return 1;
		int64_t left = end - now_ms();
		if (left <= 0)
			return 0;
		struct timespec ts = { 0, (left < 10 ? left : 10) * 1000000L };
		ppoll(NULL, 0, &ts, sig_open_mask());
	}
}

static void remount_readonly(void)
{
	/* Innermost mounts first: /proc/mounts lists them in mount order, so walk it backwards. */
	char text[16384];
	int fd = open("/proc/mounts", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, text, sizeof text - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n > 0) {
		text[n] = 0;
		char *lines[256];
		int count = 0;
		for (char *l = strtok(text, "\n"); l && count < 256; l = strtok(NULL, "\n"))
			lines[count++] = l;
		while (count-- > 0) {
			char dev[256], dir[256];
			if (sscanf(lines[count], "%255s %255s", dev, dir) == 2)
				mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, NULL);
		}
	}
	mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL);
}

void pid1_shutdown(int reboot_flag)
{
	log_msg("shutting down (%s)", reboot_flag ? "reboot" : "power off");
	kill(-1, SIGTERM);
	kill(-1, SIGCONT); /* stopped processes must run to handle SIGTERM */
	if (!reap_for(TERM_GRACE_MS)) {
		kill(-1, SIGKILL);
		reap_for(KILL_WAIT_MS);
	}
	detach_finish_all();
	sync();
	remount_readonly();
	sync();
	reboot(reboot_flag ? RB_AUTOBOOT : RB_POWER_OFF);
	/* Under QEMU -no-reboot a reboot also ends the VM; better than PID 1 exiting (a panic). */
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}
