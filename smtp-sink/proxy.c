/*
 * proxy.c: the receiving side of HAProxy's PROXY protocol (v1 text, v2
 * binary) for --proxy-protocol: find the header at the start of a
 * connection and report the source address it claims. The bytes come from
 * the peer, so the parser is total: anything malformed is KUMO_EPARSE.
 * (lib/proxy will own the writer side for kumod's egress.)
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "kumo.h"
#include "sink.h"

static const unsigned char v2sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                        0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

#define V1_MAX 107

/* Copy [p, p+n) as a C string into dst if it fits; 0 or KUMO_EPARSE. */
static int
field(const char *p, size_t n, char *dst, size_t dstsize)
{
	if (n == 0 || n >= dstsize)
		return KUMO_EPARSE;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return 0;
}

static int
parse_v1(const unsigned char *data, size_t len, char *src, size_t srcsize)
{
	const char *p = (const char *)data;
	const unsigned char *lf;
	size_t linelen, i;
	const char *f[6];
	size_t flen[6];
	int nf = 0;
	char a[INET6_ADDRSTRLEN + 1], port[8];
	unsigned char tmp[16];
	int af;

	lf = memchr(data, '\n', len < V1_MAX ? len : V1_MAX);
	if (lf == NULL)
		return len >= V1_MAX ? KUMO_EPARSE : KUMO_EAGAIN;
	linelen = (size_t)(lf - data);
	if (linelen == 0 || p[linelen - 1] != '\r')
		return KUMO_EPARSE;
	linelen--;
	/* Split on single spaces into at most 6 fields. */
	for (i = 0; i < linelen;) {
		size_t j = i;

		while (j < linelen && p[j] != ' ')
			j++;
		if (nf == 6)
			return KUMO_EPARSE;
		f[nf] = p + i;
		flen[nf++] = j - i;
		i = j + 1;
	}
	if (nf < 2 || flen[0] != 5 || memcmp(f[0], "PROXY", 5) != 0)
		return KUMO_EPARSE;
	if (flen[1] == 7 && memcmp(f[1], "UNKNOWN", 7) == 0) {
		snprintf(src, srcsize, "unknown");
		return (int)(lf - data) + 1;
	}
	if (nf != 6)
		return KUMO_EPARSE;
	if (flen[1] == 4 && memcmp(f[1], "TCP4", 4) == 0)
		af = AF_INET;
	else if (flen[1] == 4 && memcmp(f[1], "TCP6", 4) == 0)
		af = AF_INET6;
	else
		return KUMO_EPARSE;
	for (i = 2; i < 4; i++)
		if (field(f[i], flen[i], a, sizeof(a)) != 0 || inet_pton(af, a, tmp) != 1)
			return KUMO_EPARSE;
	for (i = 4; i < 6; i++) {
		unsigned long v = 0;

		if (field(f[i], flen[i], port, sizeof(port)) != 0)
			return KUMO_EPARSE;
		for (char *q = port; *q != '\0'; q++) {
			if (*q < '0' || *q > '9')
				return KUMO_EPARSE;
			v = v * 10 + (unsigned long)(*q - '0');
		}
		if (v > 65535)
			return KUMO_EPARSE;
	}
	if (field(f[2], flen[2], src, srcsize) != 0)
		return KUMO_EPARSE;
	return (int)(lf - data) + 1;
}

static int
parse_v2(const unsigned char *data, size_t len, char *src, size_t srcsize)
{
	size_t total;
	int cmd, fam;

	if (len < 16)
		return KUMO_EAGAIN;
	if ((data[12] & 0xf0) != 0x20)
		return KUMO_EPARSE;
	cmd = data[12] & 0x0f;
	fam = data[13];
	total = 16 + ((size_t)data[14] << 8 | data[15]);
	if (total > 4096) /* more TLVs than any proxy sends: refuse rather than buffer */
		return KUMO_EPARSE;
	if (len < total)
		return KUMO_EAGAIN;
	if (cmd == 0) { /* LOCAL: health check, no address */
		snprintf(src, srcsize, "local");
		return (int)total;
	}
	if (cmd != 1)
		return KUMO_EPARSE;
	switch (fam >> 4) {
	case 0:
		snprintf(src, srcsize, "unknown");
		break;
	case 1:
		if (total < 16 + 12 ||
		    inet_ntop(AF_INET, data + 16, src, (socklen_t)srcsize) == NULL)
			return KUMO_EPARSE;
		break;
	case 2:
		if (total < 16 + 36 ||
		    inet_ntop(AF_INET6, data + 16, src, (socklen_t)srcsize) == NULL)
			return KUMO_EPARSE;
		break;
	case 3:
		snprintf(src, srcsize, "unix");
		break;
	default:
		return KUMO_EPARSE;
	}
	return (int)total;
}

int
sink_proxy_parse(const unsigned char *data, size_t len, char *src, size_t srcsize)
{
	size_t n = len < sizeof(v2sig) ? len : sizeof(v2sig);

	if (memcmp(data, v2sig, n) == 0) {
		if (len < sizeof(v2sig))
			return KUMO_EAGAIN;
		return parse_v2(data, len, src, srcsize);
	}
	n = len < 6 ? len : 6;
	if (memcmp(data, "PROXY ", n) != 0)
		return KUMO_EPARSE;
	return parse_v1(data, len, src, srcsize);
}
