/* Shared by hf-init and hf-agent: yes/no switches on the kernel command line. */
#ifndef HF_COMMON_CMDLINE_H
#define HF_COMMON_CMDLINE_H

/* The test-only switch that loads vsock_loopback (hf-init, through the module list's `cmdline:`
 * condition) and makes the agent listen on vsock beside virtio-serial (docs/agent-protocol.md,
 * "vsock loopback"). Keep in sync with VSOCK_LOOPBACK_ARG in src/assets/modules.ts. */
#define HF_VSOCK_LOOPBACK_ARG "hf.vsock_loopback=1"

/* 1 if /proc/cmdline has `word` as a whole space-separated word ("hf.vsock_loopback=1" matches
 * that word only, not "hf.vsock_loopback=10"), else 0; also 0 when /proc is not readable. Reads
 * /proc/cmdline on every call: callers ask once or twice per boot. */
int cmdline_has(const char *word);

#endif
