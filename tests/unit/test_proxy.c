/*
 * test_proxy.c: lib/proxy.c. PROXY v1/v2 headers byte for byte against
 * hand-computed expectations, the parser on round trips, every truncation
 * and corruptions; the SOCKS5 state machine fed canned server replies split
 * at every point; then the real thing: tests/lab/socks5-server.py on
 * 127.0.0.1 tunnelling to a listener this test opens (no-auth, RFC 1929
 * accepted and rejected, KumoMTA's BIND source convention, refusals), and a
 * v2 header sent to smtp-sink --proxy-protocol, whose --log-json must record
 * the claimed source.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "kumo.h"
#include "proxy.h"
#include "unit.h"

#define PYTHON "/usr/bin/python3"

static struct sockaddr_storage
mkaddr(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, ip, &s6->sin6_addr) != 1)
			abort();
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		if (inet_pton(AF_INET, ip, &s4->sin_addr) != 1)
			abort();
	}
	return ss;
}

/* "ip:port" or "[ip]:port" of a sockaddr, for comparisons. */
static void
fmt_addr(const struct sockaddr_storage *ss, char *dst, size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(dst, size, "%s:%u", ip, (unsigned)ntohs(s4->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(dst, size, "[%s]:%u", ip, (unsigned)ntohs(s6->sin6_port));
	} else {
		snprintf(dst, size, "unspec");
	}
}

static void
expect_bytes(const char *what, const char *got, size_t glen, const unsigned char *want, size_t wlen)
{
	int same = glen == wlen && memcmp(got, want, wlen) == 0;
	size_t i;

	if (!same) {
		fprintf(stderr, "  %s: got %zu bytes:", what, glen);
		for (i = 0; i < glen; i++)
			fprintf(stderr, " %02x", (unsigned char)got[i]);
		fprintf(stderr, "\n  want %zu bytes:", wlen);
		for (i = 0; i < wlen; i++)
			fprintf(stderr, " %02x", want[i]);
		fprintf(stderr, "\n");
	}
	CU_ASSERT_TRUE(same);
}

/* ---- PROXY headers ---- */

#define SIG 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A

static const unsigned char v2_ipv4[] = {
    SIG,  0x21, 0x11, 0x00, 0x0C, /* v2 PROXY, TCP4, 12 bytes */
    0xC0, 0x00, 0x02, 0x07,       /* 192.0.2.7 */
    0x7F, 0x00, 0x00, 0x01,       /* 127.0.0.1 */
    0x10, 0xE1,                   /* 4321 */
    0x00, 0x19,                   /* 25 */
};
static const unsigned char v2_ipv6[] = {
    SIG,  0x21, 0x21, 0x00, 0x24,                                     /* v2 PROXY, TCP6, 36 bytes */
    0x20, 0x01, 0x0d, 0xb8, 0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, /* 2001:db8::1 */
    0,    0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, /* ::1 */
    0x00, 0x01,                                                       /* 1 */
    0x02, 0x4B,                                                       /* 587 */
};
static const unsigned char v2_mixed[] = {
    SIG,  0x21, 0x21, 0x00, 0x24, /* v2 PROXY, TCP6, 36 bytes */
    0,    0,    0,    0,    0,    0,    0,    0,
    0,    0,    0xff, 0xff, 0xC0, 0x00, 0x02, 0x07, /* ::ffff:192.0.2.7 */
    0,    0,    0,    0,    0,    0,    0,    0,
    0,    0,    0,    0,    0,    0,    0,    0x01, /* ::1 */
    0xFF, 0xFF,                                     /* 65535 */
    0x00, 0x00,                                     /* 0 */
};

static const struct {
	const char *src, *dst;
	uint16_t sport, dport;
	const unsigned char *v2;
	size_t v2len;
	const char *v1;
} hdr_cases[] = {
    {"192.0.2.7", "127.0.0.1", 4321, 25, v2_ipv4, sizeof(v2_ipv4),
     "PROXY TCP4 192.0.2.7 127.0.0.1 4321 25\r\n"},
    {"2001:db8::1", "::1", 1, 587, v2_ipv6, sizeof(v2_ipv6),
     "PROXY TCP6 2001:db8::1 ::1 1 587\r\n"},
    {"192.0.2.7", "::1", 65535, 0, v2_mixed, sizeof(v2_mixed),
     "PROXY TCP6 ::ffff:192.0.2.7 ::1 65535 0\r\n"},
};

static void
test_headers(void)
{
	size_t i;

	for (i = 0; i < KUMO_NELEM(hdr_cases); i++) {
		struct sockaddr_storage s = mkaddr(hdr_cases[i].src, hdr_cases[i].sport);
		struct sockaddr_storage d = mkaddr(hdr_cases[i].dst, hdr_cases[i].dport);
		struct buf b;

		buf_init(&b, 0);
		UNIT_EXPECT_INT(
		    "v2 rc", proxy_v2_header(&b, (struct sockaddr *)&s, (struct sockaddr *)&d), 0);
		expect_bytes(hdr_cases[i].src, b.data, b.len, hdr_cases[i].v2, hdr_cases[i].v2len);
		buf_reset(&b);
		UNIT_EXPECT_INT(
		    "v1 rc", proxy_v1_header(&b, (struct sockaddr *)&s, (struct sockaddr *)&d), 0);
		UNIT_EXPECT_STR("v1 text", b.data, hdr_cases[i].v1);
		buf_release(&b);
	}
	/* An AF_UNIX address, and a buffer too small for the header. */
	{
		struct sockaddr_storage s = mkaddr("192.0.2.7", 1), u;
		struct buf b;

		memset(&u, 0, sizeof(u));
		u.ss_family = AF_UNIX;
		buf_init(&b, 0);
		UNIT_EXPECT_INT("v2 unix",
		                proxy_v2_header(&b, (struct sockaddr *)&u, (struct sockaddr *)&s),
		                KUMO_EINVAL);
		UNIT_EXPECT_INT("v1 unix",
		                proxy_v1_header(&b, (struct sockaddr *)&s, (struct sockaddr *)&u),
		                KUMO_EINVAL);
		buf_release(&b);
		buf_init(&b, 20);
		UNIT_EXPECT_INT("v2 cap",
		                proxy_v2_header(&b, (struct sockaddr *)&s, (struct sockaddr *)&s),
		                KUMO_ENOSPACE);
		UNIT_EXPECT_INT("v2 cap leaves empty", b.len, 0);
		buf_release(&b);
	}
}

/* Every header round-trips, and every strict prefix of it is EAGAIN. */
static void
test_parse_roundtrip(void)
{
	size_t i, k, bad;
	int v;

	for (i = 0; i < KUMO_NELEM(hdr_cases); i++) {
		for (v = 1; v <= 2; v++) {
			struct sockaddr_storage s = mkaddr(hdr_cases[i].src, hdr_cases[i].sport);
			struct sockaddr_storage d = mkaddr(hdr_cases[i].dst, hdr_cases[i].dport);
			struct proxy_info pi;
			struct buf b;
			size_t used = 0, hlen;
			char got[80], want[80];

			buf_init(&b, 0);
			if (v == 2)
				proxy_v2_header(&b, (struct sockaddr *)&s, (struct sockaddr *)&d);
			else
				proxy_v1_header(&b, (struct sockaddr *)&s, (struct sockaddr *)&d);
			hlen = b.len;
			buf_puts(&b, "EHLO x\r\n");
			UNIT_EXPECT_INT("parse", proxy_header_parse(b.data, b.len, &pi, &used), 0);
			UNIT_EXPECT_INT("consumed", used, hlen);
			UNIT_EXPECT_INT("version", pi.version, v);
			UNIT_EXPECT_INT("local", pi.local, 0);
			/* The mixed case comes back as v4-mapped IPv6. */
			if (i == 2)
				s = mkaddr("::ffff:192.0.2.7", hdr_cases[i].sport);
			fmt_addr(&pi.src, got, sizeof(got));
			fmt_addr(&s, want, sizeof(want));
			UNIT_EXPECT_STR("src", got, want);
			fmt_addr(&pi.dst, got, sizeof(got));
			fmt_addr(&d, want, sizeof(want));
			UNIT_EXPECT_STR("dst", got, want);
			bad = 0;
			for (k = 0; k < hlen; k++) {
				int rc = proxy_header_parse(b.data, k, &pi, &used);
				if (rc != KUMO_EAGAIN) {
					fprintf(stderr,
					        "  v%d case %zu prefix %zu: got %d, want EAGAIN\n",
					        v, i, k, rc);
					bad++;
				}
			}
			UNIT_EXPECT_INT("truncations not EAGAIN", bad, 0);
			buf_release(&b);
		}
	}
}

static const struct {
	const char *in;
	size_t len; /* 0: strlen */
	int want;
	int local;
	size_t consumed;
} parse_cases[] = {
    {"PROXY UNKNOWN\r\n", 0, 0, 1, 15},
    {"PROXY UNKNOWN ffff::1 ::1 1 2\r\nQUIT", 0, 0, 1, 31},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 0, 0, 0, 32},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", 0, KUMO_EPARSE, 0, 0},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", 0, KUMO_EPARSE, 0, 0},
    {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", 0, KUMO_EPARSE, 0, 0},
    {"PROXY TCP4 1.2.3.4 ::1 1 2\r\n", 0, KUMO_EPARSE, 0, 0},
    {"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", 0, KUMO_EPARSE, 0, 0},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", 0, KUMO_EPARSE, 0, 0},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", 0, KUMO_EPARSE, 0, 0},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", 0, KUMO_EPARSE, 0, 0},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", 0, KUMO_EPARSE, 0, 0},
    {"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", 0, KUMO_EPARSE, 0, 0},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 x 2\r\n", 0, KUMO_EPARSE, 0, 0},
    {"PROXY\r\n", 0, KUMO_EPARSE, 0, 0},
    {"PROXY \r\n", 0, KUMO_EPARSE, 0, 0},
    {"proxy TCP4", 0, KUMO_EPARSE, 0, 0},
    {"EHLO foo\r\n", 0, KUMO_EPARSE, 0, 0},
    {"PROXY TCP4 \x01", 0, KUMO_EPARSE, 0, 0},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 1", 0, KUMO_EAGAIN, 0, 0},
    {"PROXY UNKNOWN "
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "a",
     0, KUMO_EPARSE, 0, 0}, /* 110 bytes without CRLF */
    {"", 0, KUMO_EAGAIN, 0, 0},
    /* v2 LOCAL with no addresses, then SMTP. */
    {"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00"
     "EHLO",
     20, 0, 1, 16},
    /* v2 PROXY UNSPEC: local. */
    {"\r\n\r\n\0\r\nQUIT\n\x21\x00\x00\x00", 16, 0, 1, 16},
    /* v2 TCP4 with a 3-byte TLV after the addresses. */
    {"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0f\1\2\3\4\5\6\7\x08\0\1\0\2\x04\0\0", 31, 0, 0, 31},
    /* v2 TCP4 claiming only 8 address bytes. */
    {"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x08\1\2\3\4\5\6\7\x08", 24, KUMO_EPARSE, 0, 0},
    /* v2 TCP6 claiming 12. */
    {"\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x0c\1\2\3\4\5\6\7\x08\0\1\0\2", 28, KUMO_EPARSE, 0, 0},
    /* v2 UDP4: parsed, but local (not a TCP peer). */
    {"\r\n\r\n\0\r\nQUIT\n\x21\x12\x00\x0c\1\2\3\4\5\6\7\x08\0\1\0\2", 28, 0, 1, 28},
    /* v2 TCP4 with a big length: incomplete. */
    {"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff\1\2\3\4\5\6\7\x08\0\1\0\2", 28, KUMO_EAGAIN, 0, 0},
};

/* Single-byte corruptions of the IPv4 v2 header that must be EPARSE. */
static const struct {
	size_t at;
	unsigned char val;
} corrupt_cases[] = {
    {0, 0x0C},  {1, 0x0B},  {4, 0x01},  {7, 0x52},  {11, 0x0B}, /* signature */
    {12, 0x11}, {12, 0x31}, {12, 0x22}, {12, 0x2F},             /* version/command */
    {13, 0x41}, {13, 0x13}, {13, 0x01}, {13, 0x10},             /* family/protocol */
    {14, 0x00}, {15, 0x0B}, {15, 0x00},                         /* length: also +0 → short */
};

static void
test_parse_cases(void)
{
	size_t i, used;
	struct proxy_info pi;
	char work[sizeof(v2_ipv4)];

	for (i = 0; i < KUMO_NELEM(parse_cases); i++) {
		size_t len = parse_cases[i].len ? parse_cases[i].len : strlen(parse_cases[i].in);
		int rc;

		used = 999;
		rc = proxy_header_parse(parse_cases[i].in, len, &pi, &used);
		if (rc != parse_cases[i].want)
			fprintf(stderr, "  case %zu \"%.40s\"\n", i, parse_cases[i].in);
		UNIT_EXPECT_INT("parse rc", rc, parse_cases[i].want);
		if (rc == 0) {
			UNIT_EXPECT_INT("local", pi.local, parse_cases[i].local);
			UNIT_EXPECT_INT("consumed", used, parse_cases[i].consumed);
		}
	}
	for (i = 0; i < KUMO_NELEM(corrupt_cases); i++) {
		int rc;

		memcpy(work, v2_ipv4, sizeof(work));
		/* {14,0}: length 0x000C → keep 0x00 but set 15 = 0: zero-length PROXY. */
		if (corrupt_cases[i].at == 14)
			work[15] = 0x00;
		work[corrupt_cases[i].at] = (char)corrupt_cases[i].val;
		rc = proxy_header_parse(work, sizeof(work), &pi, &used);
		if (rc != KUMO_EPARSE)
			fprintf(stderr, "  corruption at %zu = 0x%02x\n", corrupt_cases[i].at,
			        corrupt_cases[i].val);
		UNIT_EXPECT_INT("corrupt", rc, KUMO_EPARSE);
	}
}

/* ---- SOCKS5 state machine on canned replies ---- */

#define OKREPLY4 "\x05\x00\x00\x01\x0a\x00\x00\x01\x30\x39" /* 10.0.0.1:12345 */

static const struct {
	const char *name;
	const char *host;
	uint16_t port;
	const char *user, *pass, *source;
	const char *server; /* everything the server sends */
	size_t slen;
	const char *client; /* everything the client should send */
	size_t clen;
	int want; /* 1 or an error */
	const char *errtext;
	const char *bound; /* socks5_addr_format of the CONNECT reply */
	size_t extra;      /* tunnel bytes after the reply */
} s5_cases[] = {
    {"noauth ipv4", "127.0.0.1", 25, NULL, NULL, NULL, "\x05\x00" OKREPLY4 "220 hi", 18,
     "\x05\x01\x00"
     "\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x19",
     13, 1, NULL, "10.0.0.1:12345", 6},
    {"auth ok, ipv6 bound", "::1", 587, "u", "pw", NULL,
     "\x05\x02"
     "\x01\x00"
     "\x05\x00\x00\x04\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02\x01\xbb",
     26,
     "\x05\x02\x00\x02"
     "\x01\x01u\x02pw"
     "\x05\x01\x00\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x02\x4b",
     4 + 6 + 22, 1, NULL, "[2001:db8::2]:443", 0},
    {"domain target, domain bound", "mx.example", 25, NULL, NULL, NULL,
     "\x05\x00"
     "\x05\x00\x00\x03\x05proxy\x00\x50"
     "EHLO",
     2 + 12 + 4,
     "\x05\x01\x00"
     "\x05\x01\x00\x03\x0amx.example\x00\x19",
     3 + 17, 1, NULL, "proxy:80", 4},
    {"server picks noauth though we offered auth", "127.0.0.1", 25, "u", "p", NULL,
     "\x05\x00" OKREPLY4, 12,
     "\x05\x02\x00\x02"
     "\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x19",
     14, 1, NULL, "10.0.0.1:12345", 0},
    {"auth rejected", "127.0.0.1", 25, "u", "bad", NULL, "\x05\x02\x01\x01", 4,
     "\x05\x02\x00\x02\x01\x01u\x03"
     "bad",
     11, SOCKS5_EAUTH, "SOCKS5 username/password authentication failed", NULL, 0},
    {"no acceptable methods", "127.0.0.1", 25, NULL, NULL, NULL, "\x05\xff", 2, "\x05\x01\x00", 3,
     SOCKS5_ENOMETHOD, "SOCKS5 no acceptable authentication methods", NULL, 0},
    {"method not offered", "127.0.0.1", 25, NULL, NULL, NULL, "\x05\x02", 2, "\x05\x01\x00", 3,
     KUMO_EPROTO, "SOCKS5 protocol violation by the proxy", NULL, 0},
    {"bad version", "127.0.0.1", 25, NULL, NULL, NULL, "\x04\x00", 2, "\x05\x01\x00", 3,
     KUMO_EPROTO, "SOCKS5 protocol violation by the proxy", NULL, 0},
    {"bad atyp in reply", "127.0.0.1", 25, NULL, NULL, NULL, "\x05\x00\x05\x00\x00\x02", 6,
     "\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x19", 13, KUMO_EPROTO,
     "SOCKS5 protocol violation by the proxy", NULL, 0},
#define REP(code, err, text)                                                                       \
	{                                                                                          \
		"reply " #code, "127.0.0.1", 25, NULL, NULL, NULL,                                 \
		    "\x05\x00\x05" code "\x00\x01\0\0\0\0\0\0", 12,                                \
		    "\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x19", 13, err, text, NULL, 0 \
	}
    REP("\x01", SOCKS5_EGENERAL, "SOCKS5 general server failure"),
    REP("\x02", SOCKS5_ENOTALLOWED, "SOCKS5 connection not allowed by ruleset"),
    REP("\x03", SOCKS5_ENETUNREACH, "SOCKS5 network unreachable"),
    REP("\x04", SOCKS5_EHOSTUNREACH, "SOCKS5 host unreachable"),
    REP("\x05", SOCKS5_ECONNREFUSED, "SOCKS5 connection refused"),
    REP("\x06", SOCKS5_ETTLEXPIRED, "SOCKS5 TTL expired"),
    REP("\x07", SOCKS5_ECMDUNSUPP, "SOCKS5 command not supported"),
    REP("\x08", SOCKS5_EATYPUNSUPP, "SOCKS5 address type not supported"),
    REP("\x09", SOCKS5_EREPLY, "SOCKS5 unassigned reply code"),
#undef REP
    {"source bind then connect", "127.0.0.1", 2525, NULL, NULL, "127.0.0.2",
     "\x05\x00"
     "\x05\x00\x00\x01\x7f\x00\x00\x02\x9c\x40" OKREPLY4,
     22,
     "\x05\x01\x00"
     "\x05\x02\x00\x01\x7f\x00\x00\x02\x00\x00"
     "\x05\x01\x00\x01\x7f\x00\x00\x01\x09\xdd",
     23, 1, NULL, "10.0.0.1:12345", 0},
    {"source bind refused", "127.0.0.1", 2525, NULL, NULL, "::1",
     "\x05\x00"
     "\x05\x02\x00\x01\0\0\0\0\0\0",
     12,
     "\x05\x01\x00"
     "\x05\x02\x00\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x00\x00",
     3 + 22, SOCKS5_ENOTALLOWED, "SOCKS5 connection not allowed by ruleset", NULL, 0},
};

/* Run case i feeding the server bytes in chunks of the given sizes (split at k, or 1 byte). */
static int
s5_run(size_t i, size_t split, int bytewise, int verbose)
{
	struct socks5_client c;
	struct buf out;
	size_t off = 0, used, slen = s5_cases[i].slen;
	int rc = 0, fails = 0;
	char fmt[300];

	buf_init(&out, 0);
	if (socks5_init(&c, s5_cases[i].host, s5_cases[i].port, s5_cases[i].user,
	                s5_cases[i].pass) < 0 ||
	    (s5_cases[i].source && socks5_set_source(&c, s5_cases[i].source) < 0) ||
	    socks5_start(&c, &out) < 0) {
		fprintf(stderr, "  %s: setup failed\n", s5_cases[i].name);
		buf_release(&out);
		return 1;
	}
	while (off < slen) {
		size_t n = bytewise ? 1 : (off < split ? split - off : slen - off);
		rc = socks5_feed(&c, s5_cases[i].server + off, n, &out, &used);
		if (rc == 0 && used != n)
			fails++;
		off += used;
		if (rc != 0)
			break;
	}
	if (rc != s5_cases[i].want) {
		if (verbose)
			fprintf(stderr, "  %s split %zu: rc %d, want %d\n", s5_cases[i].name, split,
			        rc, s5_cases[i].want);
		fails++;
	}
	if (out.len != s5_cases[i].clen || memcmp(out.data, s5_cases[i].client, out.len) != 0) {
		if (verbose)
			expect_bytes(s5_cases[i].name, out.data, out.len,
			             (const unsigned char *)s5_cases[i].client, s5_cases[i].clen);
		fails++;
	}
	if (rc == 1) {
		if (slen - off != s5_cases[i].extra)
			fails++;
		socks5_addr_format(&c.bound, fmt, sizeof(fmt));
		if (strcmp(fmt, s5_cases[i].bound) != 0) {
			if (verbose)
				fprintf(stderr, "  %s: bound %s, want %s\n", s5_cases[i].name, fmt,
				        s5_cases[i].bound);
			fails++;
		}
		if (c.state != SOCKS5_READY)
			fails++;
	} else if (rc < 0) {
		if (strcmp(socks5_error_str(rc), s5_cases[i].errtext) != 0) {
			if (verbose)
				fprintf(stderr, "  %s: text \"%s\"\n", s5_cases[i].name,
				        socks5_error_str(rc));
			fails++;
		}
		/* A failed client stays failed. */
		if (socks5_feed(&c, "\x05", 1, &out, &used) != rc || c.state != SOCKS5_FAILED)
			fails++;
	}
	buf_release(&out);
	return fails;
}

static void
test_socks5_canned(void)
{
	size_t i, k;

	for (i = 0; i < KUMO_NELEM(s5_cases); i++) {
		int bad = 0;

		for (k = 0; k <= s5_cases[i].slen; k++)
			bad += s5_run(i, k, 0, bad == 0) != 0;
		bad += s5_run(i, 0, 1, bad == 0) != 0;
		if (bad)
			fprintf(stderr, "  %s: %d splits failed\n", s5_cases[i].name, bad);
		UNIT_EXPECT_INT(s5_cases[i].name, bad, 0);
	}
}

static void
test_socks5_init(void)
{
	struct socks5_client c;
	struct buf out;
	char big[300];
	size_t used;

	memset(big, 'a', sizeof(big));
	big[256] = '\0';
	UNIT_EXPECT_INT("domain 256", socks5_init(&c, big, 25, NULL, NULL), KUMO_EINVAL);
	big[255] = '\0';
	UNIT_EXPECT_INT("domain 255", socks5_init(&c, big, 25, NULL, NULL), 0);
	UNIT_EXPECT_INT("empty host", socks5_init(&c, "", 25, NULL, NULL), KUMO_EINVAL);
	UNIT_EXPECT_INT("user only", socks5_init(&c, "h", 25, "u", NULL), KUMO_EINVAL);
	UNIT_EXPECT_INT("empty pass", socks5_init(&c, "h", 25, "u", ""), KUMO_EINVAL);
	UNIT_EXPECT_INT("long user", socks5_init(&c, "h", 25, big, "p"), 0);
	big[255] = 'a';
	UNIT_EXPECT_INT("user 256", socks5_init(&c, "h", 25, big, "p"), KUMO_EINVAL);
	UNIT_EXPECT_INT("bracketed v6", socks5_init(&c, "[::1]", 25, NULL, NULL), 0);
	UNIT_EXPECT_INT("atyp", c.target.atyp, SOCKS5_ATYP_IPV6);
	UNIT_EXPECT_INT("source not literal", socks5_set_source(&c, "host.example"), KUMO_EINVAL);
	buf_init(&out, 0);
	UNIT_EXPECT_INT("feed before start", socks5_feed(&c, "\x05\x00", 2, &out, &used),
	                KUMO_EINVAL);
	UNIT_EXPECT_INT("start", socks5_start(&c, &out), 0);
	UNIT_EXPECT_INT("start twice", socks5_start(&c, &out), KUMO_EINVAL);
	UNIT_EXPECT_STR("state", socks5_state_str(c.state), "method");
	buf_release(&out);
}

/* ---- real processes on 127.0.0.1 ---- */

static const char *
srcdir(void)
{
	const char *s = getenv("top_srcdir");
	return s && *s ? s : KUMO_TOP_SRCDIR;
}

static const char *
builddir(void)
{
	const char *s = getenv("top_builddir");
	return s && *s ? s : KUMO_TOP_BUILDDIR;
}

static char lab_dir[256];

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait up to 10 s for a port file; the port or -1. */
static int
wait_port(const char *path, pid_t pid)
{
	long long end = now_ms() + 10000;
	FILE *fp;
	int port = -1;

	while (now_ms() < end) {
		if ((fp = fopen(path, "r")) != NULL) {
			if (fscanf(fp, "%d", &port) != 1)
				port = -1;
			fclose(fp);
			if (port > 0)
				return port;
		}
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		usleep(20000);
	}
	return -1;
}

static void
stop_child(pid_t pid)
{
	long long end = now_ms() + 5000;

	if (pid <= 0)
		return;
	kill(pid, SIGTERM);
	while (now_ms() < end) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		usleep(20000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int
tcp_connect(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* A listener on 127.0.0.1:0; its port in *port. */
static int
tcp_listen(int *port)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

/* Read what is there within ms (at least one byte); bytes read, 0 EOF, -1 timeout/error. */
static ssize_t
read_wait(int fd, char *dst, size_t size, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	if (poll(&p, 1, ms) <= 0)
		return -1;
	return read(fd, dst, size);
}

static int
write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read until buf holds want (or 5 s pass); 0 when found. */
static int
read_until(int fd, struct buf *b, const char *want)
{
	long long end = now_ms() + 5000;
	char tmp[512];

	while (strstr(b->data ? b->data : "", want) == NULL) {
		long long left = end - now_ms();
		ssize_t n;
		if (left <= 0)
			return -1;
		n = read_wait(fd, tmp, sizeof(tmp), (int)left);
		if (n <= 0)
			return -1;
		buf_append(b, tmp, (size_t)n);
	}
	return 0;
}

struct socks_lab {
	pid_t pid;
	int port;
	char log[300];
};

static int
socks_lab_start(struct socks_lab *lab, const char *users_line, const char *tag)
{
	char script[512], portfile[300], users[300];

	memset(lab, 0, sizeof(*lab));
	snprintf(script, sizeof(script), "%s/tests/lab/socks5-server.py", srcdir());
	snprintf(portfile, sizeof(portfile), "%s/%s.port", lab_dir, tag);
	snprintf(lab->log, sizeof(lab->log), "%s/%s.log", lab_dir, tag);
	snprintf(users, sizeof(users), "%s/%s.users", lab_dir, tag);
	if (users_line != NULL) {
		FILE *fp = fopen(users, "w");
		if (fp == NULL)
			return -1;
		fprintf(fp, "%s\n", users_line);
		fclose(fp);
	}
	lab->pid = fork();
	if (lab->pid < 0)
		return -1;
	if (lab->pid == 0) {
		if (users_line != NULL)
			execl(PYTHON, PYTHON, script, "--port-file", portfile, "--log", lab->log,
			      "--lifetime", "60", "--users", users, (char *)NULL);
		else
			execl(PYTHON, PYTHON, script, "--port-file", portfile, "--log", lab->log,
			      "--lifetime", "60", (char *)NULL);
		_exit(127);
	}
	lab->port = wait_port(portfile, lab->pid);
	if (lab->port < 0) {
		stop_child(lab->pid);
		lab->pid = 0;
		return -1;
	}
	return 0;
}

static int
file_has(const char *path, const char *needle)
{
	char data[8192];
	size_t n;
	FILE *fp = fopen(path, "r");

	if (fp == NULL)
		return 0;
	n = fread(data, 1, sizeof(data) - 1, fp);
	fclose(fp);
	data[n] = '\0';
	return strstr(data, needle) != NULL;
}

/*
 * Drive the handshake over a blocking socket to the lab proxy. Returns the
 * socks5_feed result; *fdp is the tunnel (caller closes). Extra tunnel bytes
 * that came with the reply go to *extra.
 */
static int
socks_handshake(int proxy_port, struct socks5_client *c, int *fdp, struct buf *extra)
{
	struct buf out;
	char in[512];
	size_t used;
	int rc, fd, turns;

	*fdp = fd = tcp_connect(proxy_port);
	if (fd < 0)
		return KUMO_EIO;
	buf_init(&out, 0);
	if ((rc = socks5_start(c, &out)) < 0)
		goto done;
	for (turns = 0; turns < 10; turns++) {
		ssize_t n;
		if (out.len > 0 && write_all(fd, out.data, out.len) < 0) {
			rc = KUMO_EIO;
			goto done;
		}
		buf_reset(&out);
		n = read_wait(fd, in, sizeof(in), 5000);
		if (n <= 0) {
			rc = n == 0 ? KUMO_EPROTO : KUMO_ETIMEDOUT;
			goto done;
		}
		rc = socks5_feed(c, in, (size_t)n, &out, &used);
		if (rc == 1)
			buf_append(extra, in + used, (size_t)n - used);
		if (rc != 0)
			goto done;
	}
	rc = KUMO_ETIMEDOUT;
done:
	buf_release(&out);
	return rc;
}

/* One tunnel through the lab proxy to our own listener; checks both directions. */
static void
tunnel_case(const struct socks_lab *lab, const char *user, const char *pass, const char *source,
            int want, const char *want_peer)
{
	struct socks5_client c;
	struct buf extra, got;
	int lport, lfd, tfd = -1, afd = -1, rc;
	char needle[64];

	lfd = tcp_listen(&lport);
	CU_ASSERT_FATAL(lfd >= 0);
	buf_init(&extra, 0);
	buf_init(&got, 0);
	UNIT_EXPECT_INT("init", socks5_init(&c, "127.0.0.1", (uint16_t)lport, user, pass), 0);
	if (source != NULL)
		UNIT_EXPECT_INT("source", socks5_set_source(&c, source), 0);
	rc = socks_handshake(lab->port, &c, &tfd, &extra);
	if (rc != want && rc < 0)
		fprintf(stderr, "  handshake: %s\n", socks5_error_str(rc));
	UNIT_EXPECT_INT("handshake", rc, want);
	if (rc == 1) {
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		struct sockaddr_storage peer;
		socklen_t pl = sizeof(peer);
		char pstr[80];

		/* The proxy connected before replying, so the connection is waiting. */
		CU_ASSERT_FATAL(poll(&p, 1, 5000) == 1);
		afd = accept(lfd, (struct sockaddr *)&peer, &pl);
		CU_ASSERT_FATAL(afd >= 0);
		fmt_addr(&peer, pstr, sizeof(pstr));
		if (want_peer != NULL) {
			*strrchr(pstr, ':') = '\0';
			UNIT_EXPECT_STR("peer address at the target", pstr, want_peer);
		}
		/* SMTP-ish both ways through the tunnel. */
		CU_ASSERT_EQUAL(write_all(afd, "220 lab ESMTP\r\n", 15), 0);
		buf_append(&got, extra.data, extra.len);
		UNIT_EXPECT_INT("banner via tunnel", read_until(tfd, &got, "220 lab ESMTP\r\n"), 0);
		CU_ASSERT_EQUAL(write_all(tfd, "EHLO client\r\n", 13), 0);
		buf_reset(&got);
		UNIT_EXPECT_INT("EHLO at target", read_until(afd, &got, "EHLO client\r\n"), 0);
		close(afd);
	}
	snprintf(needle, sizeof(needle), "CONNECT 127.0.0.1:%d", lport);
	if (want == 1 || want == SOCKS5_ECONNREFUSED)
		CU_ASSERT_TRUE(file_has(lab->log, needle));
	if (tfd >= 0)
		close(tfd);
	close(lfd);
	buf_release(&extra);
	buf_release(&got);
}

static void
test_socks5_real(void)
{
	struct socks_lab lab, alab;
	struct socks5_client c;
	struct buf extra;
	int tfd, rc, dead_port, dfd;

	if (access(PYTHON, X_OK) < 0)
		CU_FAIL_FATAL(PYTHON " is missing: the SOCKS5 end-to-end tests cannot run");
	if (socks_lab_start(&lab, NULL, "noauth") < 0)
		CU_FAIL_FATAL("tests/lab/socks5-server.py did not start (no port file in 10 s)");
	tunnel_case(&lab, NULL, NULL, NULL, 1, "127.0.0.1");
	/* KumoMTA's convention: BIND 127.0.0.2 first, the target sees 127.0.0.2. */
	tunnel_case(&lab, NULL, NULL, "127.0.0.2", 1, "127.0.0.2");
	CU_ASSERT_TRUE(file_has(lab.log, "BIND 127.0.0.2:0"));

	/* A closed port: reply 5. */
	dfd = tcp_listen(&dead_port);
	close(dfd);
	buf_init(&extra, 0);
	socks5_init(&c, "127.0.0.1", (uint16_t)dead_port, NULL, NULL);
	rc = socks_handshake(lab.port, &c, &tfd, &extra);
	UNIT_EXPECT_INT("closed port", rc, SOCKS5_ECONNREFUSED);
	UNIT_EXPECT_STR("closed port text", socks5_error_str(rc), "SOCKS5 connection refused");
	close(tfd);
	/* Off loopback: the lab proxy refuses with 2 and sends nothing anywhere. */
	socks5_init(&c, "192.0.2.1", 25, NULL, NULL);
	rc = socks_handshake(lab.port, &c, &tfd, &extra);
	UNIT_EXPECT_INT("not allowed", rc, SOCKS5_ENOTALLOWED);
	CU_ASSERT_TRUE(file_has(lab.log, "CONNECT 192.0.2.1:25"));
	close(tfd);
	/* A domain target: "localhost" resolves at the proxy. */
	socks5_init(&c, "localhost", (uint16_t)dead_port, NULL, NULL);
	rc = socks_handshake(lab.port, &c, &tfd, &extra);
	UNIT_EXPECT_INT("domain to closed port", rc, SOCKS5_ECONNREFUSED);
	close(tfd);
	/* Offering only user/pass to a no-auth server: still fine (we offer 0 too). */
	tunnel_case(&lab, "u", "p", NULL, 1, NULL);
	stop_child(lab.pid);

	if (socks_lab_start(&alab, "alice:s3cret", "auth") < 0)
		CU_FAIL_FATAL("tests/lab/socks5-server.py --users did not start");
	tunnel_case(&alab, "alice", "s3cret", NULL, 1, "127.0.0.1");
	CU_ASSERT_TRUE(file_has(alab.log, "AUTH alice ok"));
	tunnel_case(&alab, "alice", "wrong", NULL, SOCKS5_EAUTH, NULL);
	CU_ASSERT_TRUE(file_has(alab.log, "AUTH alice fail"));
	tunnel_case(&alab, NULL, NULL, NULL, SOCKS5_ENOMETHOD, NULL);
	stop_child(alab.pid);
	buf_release(&extra);
}

/* A v2 header claiming 192.0.2.7, then SMTP, to smtp-sink --proxy-protocol. */
static void
test_sink_proxy(void)
{
	char sink[512], portfile[300], logjson[300];
	static const char *const steps[][2] = {
	    {NULL, "220 "},
	    {"EHLO client.example\r\n", "250 "},
	    {"MAIL FROM:<a@example.com>\r\n", "250 "},
	    {"RCPT TO:<b@example.net>\r\n", "250 "},
	    {"DATA\r\n", "354 "},
	    {"Subject: t\r\n\r\nhello\r\n.\r\n", "250 "},
	    /* No QUIT: --exit-after 1 ends the sink once the message is accepted. */
	};
	struct sockaddr_storage src, dst;
	struct buf b, got;
	pid_t pid;
	int port, fd, status = -1;
	size_t i;
	long long end;

	snprintf(sink, sizeof(sink), "%s/smtp-sink/smtp-sink", builddir());
	if (access(sink, X_OK) < 0) {
		fprintf(stderr,
		        "  SKIP: %s not built: the PROXY v2 test against the sink is skipped\n",
		        sink);
		return;
	}
	snprintf(portfile, sizeof(portfile), "%s/sink.port", lab_dir);
	snprintf(logjson, sizeof(logjson), "%s/sink.json", lab_dir);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		execl(sink, sink, "--listen", "127.0.0.1:0", "--port-file", portfile,
		      "--proxy-protocol", "--log-json", logjson, "--exit-after", "1", "--hostname",
		      "sink.test", (char *)NULL);
		_exit(127);
	}
	port = wait_port(portfile, pid);
	if (port < 0) {
		stop_child(pid);
		CU_FAIL_FATAL("smtp-sink did not write its port file in 10 s");
	}
	fd = tcp_connect(port);
	CU_ASSERT_FATAL(fd >= 0);
	src = mkaddr("192.0.2.7", 4321);
	dst = mkaddr("127.0.0.1", (uint16_t)port);
	buf_init(&b, 0);
	buf_init(&got, 0);
	UNIT_EXPECT_INT("v2 header",
	                proxy_v2_header(&b, (struct sockaddr *)&src, (struct sockaddr *)&dst), 0);
	CU_ASSERT_EQUAL(write_all(fd, b.data, b.len), 0);
	for (i = 0; i < KUMO_NELEM(steps); i++) {
		if (steps[i][0] != NULL)
			CU_ASSERT_EQUAL(write_all(fd, steps[i][0], strlen(steps[i][0])), 0);
		buf_reset(&got);
		if (read_until(fd, &got, steps[i][1]) < 0)
			fprintf(stderr, "  step %zu: got \"%s\", want \"%s\"\n", i,
			        got.data ? got.data : "", steps[i][1]);
		CU_ASSERT_TRUE(got.data != NULL && strstr(got.data, steps[i][1]) != NULL);
	}
	close(fd);
	/* --exit-after 1: the sink exits by itself once the message is in. */
	end = now_ms() + 10000;
	while (now_ms() < end && waitpid(pid, &status, WNOHANG) != pid)
		usleep(20000);
	if (now_ms() >= end)
		stop_child(pid);
	UNIT_EXPECT_INT("sink exit status", WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
	if (!file_has(logjson, "\"proxy_source\":\"192.0.2.7"))
		fprintf(stderr, "  %s lacks proxy_source 192.0.2.7\n", logjson);
	CU_ASSERT_TRUE(file_has(logjson, "\"proxy_source\":\"192.0.2.7"));
	buf_release(&b);
	buf_release(&got);
}

static void
cleanup_lab(void)
{
	char cmd[400];

	if (lab_dir[0] == '\0' || getenv("KEEP_LAB") != NULL)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", lab_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", lab_dir);
}

int
main(void)
{
	static const struct unit_test tests[] = {
	    {"PROXY v1/v2 header bytes", test_headers},
	    {"PROXY parse round trips and truncations", test_parse_roundtrip},
	    {"PROXY parse malformed and corrupted", test_parse_cases},
	    {"SOCKS5 init and argument checks", test_socks5_init},
	    {"SOCKS5 canned replies at every split", test_socks5_canned},
	    {"SOCKS5 end to end via tests/lab/socks5-server.py", test_socks5_real},
	    {"PROXY v2 to smtp-sink --proxy-protocol", test_sink_proxy},
	    {NULL, NULL},
	};
	int rc;

	snprintf(lab_dir, sizeof(lab_dir), "/tmp/test_proxy.XXXXXX");
	if (mkdtemp(lab_dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	rc = unit_run("proxy", tests);
	cleanup_lab();
	return rc;
}
