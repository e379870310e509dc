/* Duties of PID 1: the filesystems a userland expects, hostname, loopback, and power off. */
#ifndef HF_PID1_H
#define HF_PID1_H

void pid1_setup(void);
/* SIGTERM everyone, wait up to 2 s, SIGKILL, sync, remount read-only, reboot(2). Never returns. */
__attribute__((noreturn)) void pid1_shutdown(int reboot);

#endif
