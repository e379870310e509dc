/* The I/O half of netcfg.h: rtnetlink requests (no `ip` binary: image disks may lack one) and the
 * two /etc files, each written to a temp file and renamed over (etcfile.h). */
#define _GNU_SOURCE
#include "netcfg.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "etcfile.h"
#include "nlabi.h"

#define POLL_MS 2

static int failf(int code, char *err, size_t errlen, const char *fmt, ...)
{
	if (errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Index of the first non-loopback interface (by index), or of the one with mac; 0: none yet. */
static int find_link(int fd, const struct netcfg *cfg, char name[IF_NAMESIZE])
{
	for (unsigned idx = 1; idx < 64; idx++) {
		struct ifreq ifr;
		memset(&ifr, 0, sizeof ifr);
		ifr.ifr_ifindex = (int)idx;
		if (ioctl(fd, SIOCGIFNAME, &ifr) < 0)
			continue; /* indexes have gaps */
		if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0 || ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
			continue; /* lo is ARPHRD_LOOPBACK; sit0 and friends are not ours either */
		if (cfg->has_mac && memcmp(ifr.ifr_hwaddr.sa_data, cfg->mac, 6) != 0)
			continue;
		memcpy(name, ifr.ifr_name, IF_NAMESIZE);
		name[IF_NAMESIZE - 1] = '\0';
		return (int)idx;
	}
	return 0;
}

struct nlreq {
	struct nlmsghdr h;
	union {
		struct ifinfomsg ifi;
		struct ifaddrmsg ifa;
		struct rtmsg rt;
	} u;
	char attrs[64];
};

static void add_attr(struct nlreq *r, unsigned short type, const void *data, unsigned short len)
{
	struct rtattr *a = (struct rtattr *)((char *)&r->h + NLMSG_ALIGN(r->h.nlmsg_len));
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* Sends one request and waits for its ack: 0 or -errno from the kernel. */
static int talk(int nl, struct nlreq *r, unsigned seq)
{
	r->h.nlmsg_seq = seq;
	r->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	if (send(nl, r, r->h.nlmsg_len, 0) < 0)
		return -errno;
	char buf[1024];
	for (;;) {
		ssize_t n = recv(nl, buf, sizeof buf, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR)
				continue;
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
				return -EPROTO;
			return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
		}
	}
}

static void init_req(struct nlreq *r, unsigned short type, unsigned short flags, size_t body)
{
	memset(r, 0, sizeof *r);
	r->h.nlmsg_type = type;
	r->h.nlmsg_flags = flags;
	r->h.nlmsg_len = (unsigned)NLMSG_LENGTH(body);
}

static int link_up(int nl, int idx, unsigned mtu)
{
	struct nlreq r;
	init_req(&r, RTM_NEWLINK, 0, sizeof r.u.ifi);
	r.u.ifi.ifi_family = AF_UNSPEC;
	r.u.ifi.ifi_index = idx;
	r.u.ifi.ifi_flags = IFF_UP;
	r.u.ifi.ifi_change = IFF_UP;
	if (mtu) {
		uint32_t m = mtu;
		add_attr(&r, IFLA_MTU, &m, sizeof m);
	}
	return talk(nl, &r, 1);
}

static int add_address(int nl, int idx, const struct netcfg *cfg)
{
	struct nlreq r;
	init_req(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, sizeof r.u.ifa);
	r.u.ifa.ifa_family = AF_INET;
	r.u.ifa.ifa_prefixlen = cfg->prefix;
	r.u.ifa.ifa_scope = RT_SCOPE_UNIVERSE;
	r.u.ifa.ifa_index = (unsigned)idx;
	uint32_t a = htonl(cfg->addr);
	add_attr(&r, IFA_LOCAL, &a, 4);
	add_attr(&r, IFA_ADDRESS, &a, 4);
	if (cfg->prefix <= 30) {
		uint32_t b = htonl(cfg->addr | ~(~(uint32_t)0 << (32 - cfg->prefix)));
		add_attr(&r, IFA_BROADCAST, &b, 4);
	}
	return talk(nl, &r, 2);
}

static int add_default_route(int nl, int idx, uint32_t gw)
{
	struct nlreq r;
	init_req(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, sizeof r.u.rt);
	r.u.rt.rtm_family = AF_INET;
	r.u.rt.rtm_table = RT_TABLE_MAIN;
	r.u.rt.rtm_protocol = RTPROT_BOOT;
	r.u.rt.rtm_scope = RT_SCOPE_UNIVERSE;
	r.u.rt.rtm_type = RTN_UNICAST;
	uint32_t g = htonl(gw);
	uint32_t oif = (uint32_t)idx;
	add_attr(&r, RTA_GATEWAY, &g, 4);
	add_attr(&r, RTA_OIF, &oif, 4);
	return talk(nl, &r, 3);
}

#define IP4(a) (a) >> 24, (a) >> 16 & 255, (a) >> 8 & 255, (a) & 255

int netcfg_apply(const struct netcfg *cfg, const char *hostname, const char *root, int wait_ms, char *err,
		 size_t errlen)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return failf(-errno, err, errlen, "socket: %s", strerror(errno));
	char name[IF_NAMESIZE] = "";
	int idx;
	const struct timespec pause = { 0, POLL_MS * 1000000L };
	/* virtio_net is loaded by hf-init before the switch, so the first look nearly always finds it. */
	for (int waited = 0; !(idx = find_link(fd, cfg, name)) && waited < wait_ms; waited += POLL_MS)
		nanosleep(&pause, NULL);
	close(fd);
	if (!idx)
		return failf(-ENODEV, err, errlen, "no network interface%s after %d ms",
			     cfg->has_mac ? " with hf.mac's address" : "", wait_ms);

	int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (nl < 0)
		return failf(-errno, err, errlen, "netlink socket: %s", strerror(errno));
	int rc = link_up(nl, idx, cfg->mtu);
	const char *step = "link up";
	if (!rc) {
		step = "address";
		rc = add_address(nl, idx, cfg);
	}
	if (!rc && cfg->has_gw) {
		step = "default route";
		rc = add_default_route(nl, idx, cfg->gw);
	}
	close(nl);
	if (rc)
		return failf(rc, err, errlen, "%s: %s on %s", step, strerror(-rc), name);

	char text[512];
	int n;
	if (cfg->ndns > 0) {
		n = snprintf(text, sizeof text, "# written by hf-agent from the kernel command line (hf.dns)\n");
		for (int i = 0; i < cfg->ndns; i++)
			n += snprintf(text + n, sizeof text - (size_t)n, "nameserver %u.%u.%u.%u\n", IP4(cfg->dns[i]));
		if ((rc = etcfile_write(root, "/etc/resolv.conf", text, (size_t)n, 1)))
			return failf(rc, err, errlen, "/etc/resolv.conf: %s", strerror(-rc));
	}
	n = snprintf(text, sizeof text,
		     "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%u.%u.%u.%u\t%.64s\n",
		     IP4(cfg->addr), hostname);
	if ((rc = etcfile_write(root, "/etc/hosts", text, (size_t)n, 1)))
		return failf(rc, err, errlen, "/etc/hosts: %s", strerror(-rc));
	return 0;
}
