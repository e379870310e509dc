/*
 * hf-agent: PID 1 of every Hyperfleet VM and the guest end of the agent protocol
 * (docs/agent-protocol.md). It reads top to bottom:
 *
 *   1. parse flags (--unix / --serial are for tests on the host)
 *   2. block the signals we handle; they are taken synchronously inside ppoll
 *   3. as PID 1: mount the usual filesystems, set the hostname, bring up lo
 *   4. open the transports: virtio-serial `hf.agent` and/or vsock port 1024 (both with the test
 *      switch hf.vsock_loopback=1 on the kernel command line)
 *   5. serve connections forever; as PID 1 we also reap every orphan, and shutdown powers off
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmdline.h"
#include "exec.h"
#include "logfile.h"
#include "loop.h"
#include "pid1.h"
#include "proto.h"
#include "sig.h"
#include "trace.h"
#include "transport.h"
#include "util.h"

/* Devices appear shortly after their modules load; poll fast at first, then slowly forever. */
#define DISCOVER_FAST_MS 10
#define DISCOVER_FAST_FOR_MS 5000
#define DISCOVER_SLOW_MS 1000

struct options {
	const char *unix_path;
	const char *serial_path;
};

/* hf.vsock_loopback=1: hf-init loaded vsock_loopback, so /dev/vsock exists beside virtio-serial
 * and guest processes can reach our vsock listener at CID 1. Read once, as PID 1 only. */
static int vsock_loopback;

static void usage(FILE *to)
{
	fprintf(to, "usage: hf-agent [--unix PATH] [--serial PATH] [--version]\n"
		    "  with no transport flag: serve on virtio-serial port " HF_SERIAL_NAME
		    " and vsock port %u\n",
		HF_VSOCK_PORT);
}

static struct options parse_args(int argc, char **argv)
{
	struct options o = { 0 };
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0) {
			printf("hf-agent %s (protocol %u)\n", HF_AGENT_VERSION, HF_PROTOCOL_VERSION);
			exit(0);
		} else if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(argv[i], "--unix") == 0 && i + 1 < argc) {
			o.unix_path = argv[++i];
		} else if (strcmp(argv[i], "--serial") == 0 && i + 1 < argc) {
			o.serial_path = argv[++i];
		} else if (getpid() != 1) {
			/* As PID 1 the kernel may pass us stray arguments from its command line. */
			usage(stderr);
			exit(2);
		}
	}
	return o;
}

/* Children's stdio is dup2'ed from pipes with numbers above 2; that needs 0-2 taken. */
static void ensure_stdio(void)
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
			break;
}

/* The one setting read from the environment: a lower log rotation size, for tests (as PID 1 the
 * kernel command line can pass it too). */
static void read_env(void)
{
	const char *max = getenv("HF_AGENT_LOG_MAX");
	if (!max || !*max)
		return;
	char *end;
	unsigned long long v = strtoull(max, &end, 10);
	if (*end || v == 0)
		log_msg("ignoring HF_AGENT_LOG_MAX=%s: not a positive number of bytes", max);
	else
		logfile_set_max(v);
}

static void open_guest_transports(struct transports *t)
{
	char dev[300];
	if (!t->serial && transport_find_serial(dev, sizeof dev) == 0) {
		int err = transport_open_serial(t, dev);
		if (err)
			log_msg("open %s: %s", dev, strerror(-err));
	}
	/* /dev/vsock exists once the vsock core is loaded (hf-init loads it only for a virtio-vsock
	 * device, or with hf.vsock_loopback=1). Without it socket(AF_VSOCK) makes the kernel run
	 * /sbin/modprobe, which cannot succeed (the modules stayed in the initramfs) and costs ~50 ms
	 * of boot under TCG. */
	if (t->nlisten == 0 && access("/dev/vsock", F_OK) == 0) {
		int err = transport_listen_vsock(t);
		if (err && err != -EAFNOSUPPORT)
			log_msg("vsock port %u: %s", HF_VSOCK_PORT, strerror(-err));
	}
}

/* With the loopback switch the vsock listener opens at once, but it is not the host's channel:
 * virtio-serial (which appears a moment after virtio_console's probe) is still waited for during
 * the fast discovery period, after which the agent serves what it has. */
static int transports_ready(const struct transports *t, int64_t waited_ms)
{
	if (t->serial)
		return 1;
	if (vsock_loopback && waited_ms < DISCOVER_FAST_FOR_MS)
		return 0;
	return t->nlisten > 0;
}

/* Waits until a transport exists, reaping and honouring stop signals meanwhile. */
static void wait_for_transport(struct transports *t)
{
	int64_t start = now_ms();
	int warned = 0;
	for (;;) {
		open_guest_transports(t);
		if (transports_ready(t, now_ms() - start))
			return;
		if (getpid() != 1) {
			log_msg("no virtio-serial port '%s' and no vsock", HF_SERIAL_NAME);
			exit(1);
		}
		int fast = now_ms() - start < DISCOVER_FAST_FOR_MS;
		if (!fast && !warned++)
			log_msg("still waiting for virtio-serial '%s' or vsock", HF_SERIAL_NAME);
		int ms = fast ? DISCOVER_FAST_MS : DISCOVER_SLOW_MS;
		struct timespec ts = { 0, ms * 1000000L };
		ppoll(NULL, 0, &ts, sig_open_mask());
		if (sig_child) {
			sig_child = 0;
			exec_reap();
		}
		if (sig_stop)
			pid1_shutdown(0);
	}
}

int main(int argc, char **argv)
{
	HF_TRACE("agent-main");
	struct options opt = parse_args(argc, argv);
	int pid1 = getpid() == 1;
	read_env();

	sig_setup();
	if (pid1) {
		pid1_setup();
		vsock_loopback = cmdline_has(HF_VSOCK_LOOPBACK_ARG);
	}
	HF_TRACE("agent-pid1-setup");
	ensure_stdio();

	struct transports t = { 0 };
	int err = 0;
	if (opt.unix_path && (err = transport_listen_unix(&t, opt.unix_path)))
		log_msg("listen on %s: %s", opt.unix_path, strerror(-err));
	if (!err && opt.serial_path && (err = transport_open_serial(&t, opt.serial_path)))
		log_msg("open %s: %s", opt.serial_path, strerror(-err));
	if (err && !pid1)
		return 1;
	/* PID 1 must never exit: a broken flag falls back to the guest transports. */
	if (!t.serial && !t.nlisten)
		wait_for_transport(&t);
	if (vsock_loopback && access("/dev/vsock", F_OK) != 0)
		log_msg(HF_VSOCK_LOOPBACK_ARG " is set but there is no /dev/vsock: is vsock_loopback in the initramfs?");

	HF_TRACE("agent-transport");
	loop_run(&t);
	return 0;
}
