/*
 * The guest's network configuration, from the kernel command line (docs/agent-protocol.md,
 * "Guest network"). The Debian cloud kernel has no CONFIG_IP_PNP, so `ip=` does nothing: the
 * host passes hf.ip=, hf.gw=, hf.mtu=, hf.dns= and hf.mac= instead and PID 1 applies them.
 *
 * netcfg_parse is pure (no I/O, no allocation, bounded by len): the fuzz target runs it.
 * netcfg_apply does the I/O: rtnetlink for link, address and route; /etc/resolv.conf, /etc/hosts.
 */
#ifndef HF_COMMON_NETCFG_H
#define HF_COMMON_NETCFG_H

#include <stddef.h>
#include <stdint.h>

/* resolv.conf's MAXNS: a libc reads no more than three nameservers. */
#define NETCFG_MAX_DNS 3
/* Longest value of one hf.* network parameter (a dns list of three addresses is 47). */
#define NETCFG_VALUE_MAX 64

struct netcfg {
	int present;   /* hf.ip= was given: configure the network; 0: leave it all alone */
	uint32_t addr; /* host byte order */
	uint8_t prefix;
	int has_gw;
	uint32_t gw;
	unsigned mtu; /* 0: the driver's default */
	int ndns;
	uint32_t dns[NETCFG_MAX_DNS];
	int has_mac;
	uint8_t mac[6];
};

/* Reads the hf.* network parameters of cmdline (len bytes, NUL not needed; tokens end at white
 * space; parsing stops at "--"; the last occurrence wins, as in the kernel). Returns 0 with cfg
 * filled (cfg->present says whether there is anything to do), or -1 with a reason in err and cfg
 * cleared: any malformed or inconsistent parameter rejects the whole configuration, so a guest is
 * never half configured. */
int netcfg_parse(const char *cmdline, size_t len, struct netcfg *cfg, char *err, size_t errlen);

/* Applies cfg (present) to the interface with cfg->mac, else the first that is not a loopback,
 * waiting up to wait_ms for it to appear; writes /etc/resolv.conf (when there are nameservers)
 * and /etc/hosts (localhost, and hostname at cfg->addr). Returns 0 or -errno with a reason in err.
 * root is prefixed to the /etc paths ("" in the guest; a temp dir in tests). */
int netcfg_apply(const struct netcfg *cfg, const char *hostname, const char *root, int wait_ms, char *err,
		 size_t errlen);

#endif
