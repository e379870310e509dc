/* Test tool: runs netcfg_parse on argv[1] and prints the result in one line, so the TS tests
 * (test/guest/netcfg.test.ts) can check the C parser black-box. Never touches the network. */
#include <stdio.h>
#include <string.h>

#include "netcfg.h"

#define IP4(a) (a) >> 24, (a) >> 16 & 255, (a) >> 8 & 255, (a) & 255

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: netcfg-parse CMDLINE\n");
		return 2;
	}
	struct netcfg c;
	char err[160];
	if (netcfg_parse(argv[1], strlen(argv[1]), &c, err, sizeof err) < 0) {
		printf("error %s\n", err);
		return 1;
	}
	if (!c.present) {
		printf("none\n");
		return 0;
	}
	printf("ip %u.%u.%u.%u/%u", IP4(c.addr), c.prefix);
	if (c.has_gw)
		printf(" gw %u.%u.%u.%u", IP4(c.gw));
	if (c.mtu)
		printf(" mtu %u", c.mtu);
	for (int i = 0; i < c.ndns; i++)
		printf("%s%u.%u.%u.%u", i ? "," : " dns ", IP4(c.dns[i]));
	if (c.has_mac)
		printf(" mac %02x:%02x:%02x:%02x:%02x:%02x", c.mac[0], c.mac[1], c.mac[2], c.mac[3], c.mac[4], c.mac[5]);
	printf("\n");
	return 0;
}
