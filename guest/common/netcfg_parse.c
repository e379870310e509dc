/* The pure half of netcfg.h: no I/O, no allocation, every read bounded by the given length. */
#include "netcfg.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail(struct netcfg *cfg, char *err, size_t errlen, const char *fmt, ...)
{
	memset(cfg, 0, sizeof *cfg);
	if (errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Strict dotted quad: four decimal parts 0-255, no leading zeros (inet_aton would read 010 as 8). */
static int parse_ipv4(const char *s, size_t n, uint32_t *out)
{
	uint32_t v = 0;
	size_t i = 0;
	for (int part = 0; part < 4; part++) {
		if (part > 0) {
			if (i >= n || s[i] != '.')
				return -1;
			i++;
		}
		size_t start = i;
		unsigned x = 0;
		while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3)
			x = x * 10 + (unsigned)(s[i++] - '0');
		size_t digits = i - start;
		if (digits == 0 || x > 255 || (digits > 1 && s[start] == '0'))
			return -1;
		v = (v << 8) | x;
	}
	if (i != n)
		return -1;
	*out = v;
	return 0;
}

static int parse_uint(const char *s, size_t n, unsigned max, unsigned *out)
{
	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -1;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int parse_mac(const char *s, size_t n, uint8_t mac[6])
{
	if (n != 17)
		return -1;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[i * 3]), lo = hexval(s[i * 3 + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && s[i * 3 + 2] != ':'))
			return -1;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int parse_dns(const char *s, size_t n, struct netcfg *cfg)
{
	cfg->ndns = 0;
	size_t i = 0;
	for (;;) {
		size_t start = i;
		while (i < n && s[i] != ',')
			i++;
		if (cfg->ndns == NETCFG_MAX_DNS || parse_ipv4(s + start, i - start, &cfg->dns[cfg->ndns]) < 0)
			return -1;
		cfg->ndns++;
		if (i == n)
			return 0;
		i++; /* the comma: a trailing one leaves an empty part, which parse_ipv4 rejects */
	}
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static uint32_t mask_of(unsigned prefix)
{
	return prefix == 0 ? 0 : ~(uint32_t)0 << (32 - prefix);
}

int netcfg_parse(const char *cmdline, size_t len, struct netcfg *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof *cfg);
	if (errlen)
		err[0] = '\0';
	int seen_other = 0;
	size_t i = 0;
	while (i < len) {
		while (i < len && is_space(cmdline[i]))
			i++;
		size_t start = i;
		while (i < len && !is_space(cmdline[i]))
			i++;
		const char *tok = cmdline + start;
		size_t n = i - start;
		if (n == 0)
			break;
		if (n == 2 && memcmp(tok, "--", 2) == 0)
			break; /* the rest is for init */
		static const char *const keys[] = { "hf.ip=", "hf.gw=", "hf.mtu=", "hf.dns=", "hf.mac=" };
		int k = -1;
		size_t klen = 0;
		for (int j = 0; j < 5; j++) {
			size_t l = strlen(keys[j]);
			if (n >= l && memcmp(tok, keys[j], l) == 0) {
				k = j;
				klen = l;
				break;
			}
		}
		if (k < 0)
			continue;
		const char *v = tok + klen;
		size_t vn = n - klen;
		/* %.*s of a value below: at most NETCFG_VALUE_MAX bytes, never the whole command line. */
		int shown = (int)(vn < NETCFG_VALUE_MAX ? vn : NETCFG_VALUE_MAX);
		if (vn == 0 || vn > NETCFG_VALUE_MAX)
			return fail(cfg, err, errlen, "%.*s: empty or longer than %d bytes", (int)klen - 1, tok,
				    NETCFG_VALUE_MAX);
		if (k == 0) {
			const char *slash = memchr(v, '/', vn);
			unsigned prefix;
			if (!slash || parse_ipv4(v, (size_t)(slash - v), &cfg->addr) < 0 ||
			    parse_uint(slash + 1, vn - (size_t)(slash - v) - 1, 32, &prefix) < 0 || prefix == 0)
				return fail(cfg, err, errlen, "hf.ip=%.*s: want an IPv4 address/prefix (1-32)", shown, v);
			cfg->prefix = (uint8_t)prefix;
			cfg->present = 1;
		} else if (k == 1) {
			if (parse_ipv4(v, vn, &cfg->gw) < 0)
				return fail(cfg, err, errlen, "hf.gw=%.*s: want an IPv4 address", shown, v);
			cfg->has_gw = 1;
			seen_other = 1;
		} else if (k == 2) {
			if (parse_uint(v, vn, 65535, &cfg->mtu) < 0 || cfg->mtu < 68)
				return fail(cfg, err, errlen, "hf.mtu=%.*s: want 68-65535", shown, v);
			seen_other = 1;
		} else if (k == 3) {
			if (parse_dns(v, vn, cfg) < 0)
				return fail(cfg, err, errlen, "hf.dns=%.*s: want 1-%d IPv4 addresses, comma-separated", shown,
					    v, NETCFG_MAX_DNS);
			seen_other = 1;
		} else {
			if (parse_mac(v, vn, cfg->mac) < 0)
				return fail(cfg, err, errlen, "hf.mac=%.*s: want xx:xx:xx:xx:xx:xx", shown, v);
			cfg->has_mac = 1;
			seen_other = 1;
		}
	}
	if (!cfg->present) {
		if (seen_other)
			return fail(cfg, err, errlen, "hf.gw, hf.mtu, hf.dns or hf.mac without hf.ip");
		return 0;
	}
	uint32_t mask = mask_of(cfg->prefix);
	uint32_t host = cfg->addr & ~mask;
	if (cfg->addr >> 24 == 0 || cfg->addr >> 24 == 127 || cfg->addr >> 28 >= 14 ||
	    (cfg->prefix <= 30 && (host == 0 || host == ~mask)))
		return fail(cfg, err, errlen, "hf.ip: %u.%u.%u.%u/%u is not a usable host address", cfg->addr >> 24,
			    cfg->addr >> 16 & 255, cfg->addr >> 8 & 255, cfg->addr & 255, cfg->prefix);
	if (cfg->has_gw && ((cfg->gw & mask) != (cfg->addr & mask) || cfg->gw == cfg->addr))
		return fail(cfg, err, errlen, "hf.gw: not another address of hf.ip's subnet");
	if (cfg->has_mac && (cfg->mac[0] & 1))
		return fail(cfg, err, errlen, "hf.mac: a multicast address");
	return 0;
}
