/*
 * Floor of the boot benchmark: the least an init can do before the host hears from it. Loads the
 * modules listed in /etc/hf-modules (dependency order, relative to /lib/modules/<release>/, the
 * layout our initramfs builder writes), opens the first virtio-serial port and
 * writes one line, then powers off when the host closes the socket. No root disk, no switch_root.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static void load_modules(void) {
  FILE *f = fopen("/etc/hf-modules", "r");
  struct utsname u;
  char line[512], path[1024];
  if (!f || uname(&u) != 0) return;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    snprintf(path, sizeof path, "/lib/modules/%s/%s", u.release, line);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    syscall(SYS_finit_module, fd, "", 0);
    close(fd);
  }
  fclose(f);
}

int main(void) {
  mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
  load_modules();
  struct timespec ms = {0, 1000000};
  int fd = -1;
  for (int i = 0; i < 5000 && fd < 0; i++) {
    fd = open("/dev/vport0p1", O_RDWR | O_CLOEXEC);
    if (fd < 0) nanosleep(&ms, NULL);
  }
  if (fd >= 0) {
    char buf[64];
    (void)!write(fd, "floor-ready\n", 12);
    while (read(fd, buf, sizeof buf) > 0) {}
  }
  reboot(RB_POWER_OFF);
  return 0;
}
