/* Shared by hf-init and hf-agent: bringing up the loopback interface. */
#ifndef HF_COMMON_NETLO_H
#define HF_COMMON_NETLO_H

/* Sets `lo` up (IPv4 127.0.0.1 and IPv6 ::1 come with it). A no-op if it is up already, so the
 * agent can call it after hf-init did. Returns 0 or -errno. */
int loopback_up(void);

#endif
