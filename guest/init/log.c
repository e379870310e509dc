#define _GNU_SOURCE
#include "log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int kmsg_fd = -1;

void log_open_kmsg(void)
{
	kmsg_fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
}

/* Before /dev/kmsg exists (or if it cannot be opened) lines fall back to stderr. */
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

void klog(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vklog(level, fmt, ap);
	va_end(ap);
}

/* If the VMM has no power-off device the kernel halts instead, PID 1 exits, and with `panic=-1`
 * the resulting panic reboots at once, which ends the VMM too. */
static _Noreturn void power_off(void)
{
	sync();
	reboot(RB_POWER_OFF);
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

void fatal(const char *fmt, ...)
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

long elapsed_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}
