/* hf-init's voice: lines on the kernel log, and the way out when the boot cannot go on. */
#ifndef HF_INIT_LOG_H
#define HF_INIT_LOG_H

/* Sends further lines to /dev/kmsg (call once /dev is mounted); until then they go to stderr. */
void log_open_kmsg(void);
/* One line on the kernel log as "hf-init: ..."; level 3 (err) reaches the console even with
 * `quiet`. */
void __attribute__((format(printf, 2, 3))) klog(int level, const char *fmt, ...);
/* Says why on the console, then powers the VM off, so the host sees the VMM exit instead of a
 * guest stuck in a kernel panic. */
_Noreturn void __attribute__((format(printf, 1, 2))) fatal(const char *fmt, ...);
/* Milliseconds since the kernel started, for the timeline in the kernel log. */
long elapsed_ms(void);

#endif
