/*
 * proxy.c: HAProxy PROXY protocol headers (write v1/v2, parse both) and the
 * SOCKS5 client handshake as a byte-fed state machine (see proxy.h). The
 * SOCKS5 client assembles each server message in a small fixed buffer one
 * byte at a time, so a reply split anywhere parses the same and nothing a
 * proxy sends can make it allocate.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "kumo.h"
#include "proxy.h"

static const unsigned char v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* One side of a header, normalised: family, 4 or 16 address bytes, port. */
struct endpoint {
	int family;
	unsigned char ip[16];
	uint16_t port;
};

static int
endpoint_from(const struct sockaddr *sa, struct endpoint *e)
{
	memset(e, 0, sizeof(*e));
	if (sa == NULL)
		return KUMO_EINVAL;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
		e->family = AF_INET;
		memcpy(e->ip, &sin->sin_addr, 4);
		e->port = ntohs(sin->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		e->family = AF_INET6;
		memcpy(e->ip, &sin6->sin6_addr, 16);
		e->port = ntohs(sin6->sin6_port);
		return 0;
	}
	return KUMO_EINVAL;
}

/* Rewrite an IPv4 endpoint as ::ffff:a.b.c.d. */
static void
endpoint_map6(struct endpoint *e)
{
	unsigned char v4[4];

	if (e->family != AF_INET)
		return;
	memcpy(v4, e->ip, 4);
	memset(e->ip, 0, 10);
	e->ip[10] = 0xff;
	e->ip[11] = 0xff;
	memcpy(e->ip + 12, v4, 4);
	e->family = AF_INET6;
}

/* Both endpoints of a header, in one family. */
static int
endpoints(const struct sockaddr *src, const struct sockaddr *dst, struct endpoint *s,
          struct endpoint *d)
{
	int rc;

	if ((rc = endpoint_from(src, s)) < 0 || (rc = endpoint_from(dst, d)) < 0)
		return rc;
	if (s->family != d->family) {
		endpoint_map6(s);
		endpoint_map6(d);
	}
	return 0;
}

int
proxy_v2_header(struct buf *out, const struct sockaddr *src, const struct sockaddr *dst)
{
	struct endpoint s, d;
	unsigned char h[16 + 36];
	size_t alen, n = 0;
	int rc;

	if ((rc = endpoints(src, dst, &s, &d)) < 0)
		return rc;
	alen = s.family == AF_INET ? 4 : 16;
	memcpy(h, v2_sig, sizeof(v2_sig));
	n = sizeof(v2_sig);
	h[n++] = 0x21;                              /* version 2, command PROXY */
	h[n++] = s.family == AF_INET ? 0x11 : 0x21; /* INET/INET6, STREAM */
	h[n++] = 0;
	h[n++] = (unsigned char)(2 * alen + 4); /* 12 or 36, big-endian */
	memcpy(h + n, s.ip, alen);
	n += alen;
	memcpy(h + n, d.ip, alen);
	n += alen;
	h[n++] = (unsigned char)(s.port >> 8);
	h[n++] = (unsigned char)(s.port & 0xff);
	h[n++] = (unsigned char)(d.port >> 8);
	h[n++] = (unsigned char)(d.port & 0xff);
	return buf_append(out, h, n);
}

int
proxy_v1_header(struct buf *out, const struct sockaddr *src, const struct sockaddr *dst)
{
	struct endpoint s, d;
	char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
	int rc;

	if ((rc = endpoints(src, dst, &s, &d)) < 0)
		return rc;
	if (inet_ntop(s.family, s.ip, sa, sizeof(sa)) == NULL ||
	    inet_ntop(d.family, d.ip, da, sizeof(da)) == NULL)
		return KUMO_EINVAL;
	return buf_appendf(out, "PROXY %s %s %s %u %u\r\n", s.family == AF_INET ? "TCP4" : "TCP6",
	                   sa, da, (unsigned)s.port, (unsigned)d.port);
}

static void
set_sockaddr(struct sockaddr_storage *ss, int family, const unsigned char *ip, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, ip, 4);
		sin->sin_port = htons(port);
	} else if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, ip, 16);
		sin6->sin6_port = htons(port);
	} else {
		ss->ss_family = AF_UNSPEC;
	}
}

/* Parse a v2 header; data starts with (a prefix of) the signature. */
static int
parse_v2(const unsigned char *p, size_t len, struct proxy_info *out, size_t *consumed)
{
	size_t n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
	size_t alen, total;
	int cmd, fam, family;

	if (memcmp(p, v2_sig, n) != 0)
		return KUMO_EPARSE;
	/* Reject a bad version/command or family as soon as its byte arrives. */
	if (len > 12) {
		if ((p[12] >> 4) != 2 || (p[12] & 0x0f) > 1)
			return KUMO_EPARSE;
	}
	if (len > 13) {
		fam = p[13];
		if (fam != 0x00 && fam != 0x11 && fam != 0x12 && fam != 0x21 && fam != 0x22 &&
		    fam != 0x31 && fam != 0x32)
			return KUMO_EPARSE;
	}
	if (len < 16)
		return KUMO_EAGAIN;
	cmd = p[12] & 0x0f;
	fam = p[13];
	total = 16 + (((size_t)p[14] << 8) | p[15]);
	switch (fam >> 4) {
	case 1:
		alen = 12;
		family = AF_INET;
		break;
	case 2:
		alen = 36;
		family = AF_INET6;
		break;
	case 3:
		alen = 216;
		family = AF_UNSPEC;
		break;
	default:
		alen = 0;
		family = AF_UNSPEC;
		break;
	}
	/* A PROXY command must carry the addresses its family promises. */
	if (cmd == 1 && total - 16 < alen)
		return KUMO_EPARSE;
	if (len < total)
		return KUMO_EAGAIN;
	memset(out, 0, sizeof(*out));
	out->version = 2;
	if (cmd == 0 || family == AF_UNSPEC || (fam & 0x0f) != 1) {
		/* LOCAL, UNIX, UNSPEC or DGRAM: nothing we can use as a TCP peer. */
		out->local = 1;
		out->src.ss_family = AF_UNSPEC;
		out->dst.ss_family = AF_UNSPEC;
	} else {
		size_t ipl = family == AF_INET ? 4 : 16;
		const unsigned char *a = p + 16;
		uint16_t sport = (uint16_t)((a[2 * ipl] << 8) | a[2 * ipl + 1]);
		uint16_t dport = (uint16_t)((a[2 * ipl + 2] << 8) | a[2 * ipl + 3]);
		set_sockaddr(&out->src, family, a, sport);
		set_sockaddr(&out->dst, family, a + ipl, dport);
	}
	*consumed = total;
	return 0;
}

/* A v1 port: decimal 0..65535 without leading zeros. */
static int
v1_port(const char *s, size_t n, uint16_t *port)
{
	unsigned long v = 0;
	size_t i;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return KUMO_EPARSE;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return KUMO_EPARSE;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return KUMO_EPARSE;
	*port = (uint16_t)v;
	return 0;
}

/* A v1 address token of family af into ip. */
static int
v1_addr(const char *s, size_t n, int af, unsigned char *ip)
{
	char tmp[INET6_ADDRSTRLEN + 1];

	if (n == 0 || n >= sizeof(tmp))
		return KUMO_EPARSE;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	return inet_pton(af, tmp, ip) == 1 ? 0 : KUMO_EPARSE;
}

/* Parse a v1 line; data starts with (a prefix of) "PROXY ". */
static int
parse_v1(const char *p, size_t len, struct proxy_info *out, size_t *consumed)
{
	const char *tok[6];
	size_t toklen[6], ntok = 0, i, end, start;
	unsigned char sip[16], dip[16];
	uint16_t sport, dport;
	int af;
	size_t lim = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
	size_t n = len < 6 ? len : 6;

	if (memcmp(p, "PROXY ", n) != 0)
		return KUMO_EPARSE;
	/* Find the CR; only printable ASCII may come before it. */
	for (end = 0; end < lim; end++) {
		unsigned char ch = (unsigned char)p[end];
		if (ch == '\r')
			break;
		if (ch < 0x20 || ch > 0x7e)
			return KUMO_EPARSE;
	}
	if (end == lim)
		return len >= PROXY_V1_MAX ? KUMO_EPARSE : KUMO_EAGAIN;
	if (end + 1 >= lim)
		return len >= PROXY_V1_MAX ? KUMO_EPARSE : KUMO_EAGAIN;
	if (p[end + 1] != '\n')
		return KUMO_EPARSE;
	/* Split on single spaces. */
	start = 0;
	for (i = 0; i <= end; i++) {
		if (i == end || p[i] == ' ') {
			if (ntok == KUMO_NELEM(tok)) {
				/* UNKNOWN may carry anything; TCP4/6 has exactly 6 fields. */
				if (toklen[1] == 7 && memcmp(tok[1], "UNKNOWN", 7) == 0)
					break;
				return KUMO_EPARSE;
			}
			tok[ntok] = p + start;
			toklen[ntok] = i - start;
			ntok++;
			start = i + 1;
		}
	}
	if (ntok < 2)
		return KUMO_EPARSE;
	memset(out, 0, sizeof(*out));
	out->version = 1;
	if (toklen[1] == 7 && memcmp(tok[1], "UNKNOWN", 7) == 0) {
		out->local = 1;
		out->src.ss_family = AF_UNSPEC;
		out->dst.ss_family = AF_UNSPEC;
		*consumed = end + 2;
		return 0;
	}
	if (toklen[1] == 4 && memcmp(tok[1], "TCP4", 4) == 0)
		af = AF_INET;
	else if (toklen[1] == 4 && memcmp(tok[1], "TCP6", 4) == 0)
		af = AF_INET6;
	else
		return KUMO_EPARSE;
	if (ntok != 6 || v1_addr(tok[2], toklen[2], af, sip) < 0 ||
	    v1_addr(tok[3], toklen[3], af, dip) < 0 || v1_port(tok[4], toklen[4], &sport) < 0 ||
	    v1_port(tok[5], toklen[5], &dport) < 0)
		return KUMO_EPARSE;
	set_sockaddr(&out->src, af, sip, sport);
	set_sockaddr(&out->dst, af, dip, dport);
	*consumed = end + 2;
	return 0;
}

int
proxy_header_parse(const char *data, size_t len, struct proxy_info *out, size_t *consumed)
{
	if (len == 0)
		return KUMO_EAGAIN;
	if ((unsigned char)data[0] == v2_sig[0])
		return parse_v2((const unsigned char *)data, len, out, consumed);
	if (data[0] == 'P')
		return parse_v1(data, len, out, consumed);
	return KUMO_EPARSE;
}

/* ---- SOCKS5 ---- */

/* Parse an IP literal (IPv6 optionally bracketed) into a; 0 or KUMO_EINVAL. */
static int
addr_literal(const char *s, struct socks5_addr *a)
{
	char tmp[INET6_ADDRSTRLEN + 2];
	size_t n = strlen(s);

	if (inet_pton(AF_INET, s, a->ip) == 1) {
		a->atyp = SOCKS5_ATYP_IPV4;
		return 0;
	}
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']' && n - 2 < sizeof(tmp)) {
		memcpy(tmp, s + 1, n - 2);
		tmp[n - 2] = '\0';
		s = tmp;
	}
	if (inet_pton(AF_INET6, s, a->ip) == 1) {
		a->atyp = SOCKS5_ATYP_IPV6;
		return 0;
	}
	return KUMO_EINVAL;
}

int
socks5_init(struct socks5_client *c, const char *host, uint16_t port, const char *user,
            const char *pass)
{
	size_t n;

	memset(c, 0, sizeof(*c));
	c->state = SOCKS5_INIT;
	c->reply = -1;
	c->method = -1;
	if (host == NULL)
		return KUMO_EINVAL;
	if (addr_literal(host, &c->target) < 0) {
		n = strlen(host);
		if (n == 0 || n > 255)
			return KUMO_EINVAL;
		c->target.atyp = SOCKS5_ATYP_DOMAIN;
		memcpy(c->target.domain, host, n + 1);
	}
	c->target.port = port;
	if ((user == NULL) != (pass == NULL))
		return KUMO_EINVAL;
	if (user != NULL) {
		c->user_len = strlen(user);
		c->pass_len = strlen(pass);
		if (c->user_len == 0 || c->user_len > 255 || c->pass_len == 0 || c->pass_len > 255)
			return KUMO_EINVAL;
		memcpy(c->user, user, c->user_len + 1);
		memcpy(c->pass, pass, c->pass_len + 1);
		c->has_auth = 1;
	}
	return 0;
}

int
socks5_set_source(struct socks5_client *c, const char *addr)
{
	struct socks5_addr a;

	memset(&a, 0, sizeof(a));
	if (addr == NULL || addr_literal(addr, &a) < 0)
		return KUMO_EINVAL;
	c->source = a;
	c->has_source = 1;
	return 0;
}

int
socks5_start(struct socks5_client *c, struct buf *out)
{
	static const unsigned char noauth[] = {0x05, 0x01, 0x00};
	static const unsigned char both[] = {0x05, 0x02, 0x00, 0x02};
	int rc;

	if (c->state != SOCKS5_INIT)
		return KUMO_EINVAL;
	if (c->has_auth)
		rc = buf_append(out, both, sizeof(both));
	else
		rc = buf_append(out, noauth, sizeof(noauth));
	if (rc == 0)
		c->state = SOCKS5_METHOD;
	return rc;
}

/* Append a request (CONNECT = 1, BIND = 2) for a. */
static int
put_request(struct buf *out, int cmd, const struct socks5_addr *a)
{
	unsigned char r[4 + 1 + 255 + 2];
	size_t n = 0, dl;

	r[n++] = 0x05;
	r[n++] = (unsigned char)cmd;
	r[n++] = 0x00;
	r[n++] = (unsigned char)a->atyp;
	if (a->atyp == SOCKS5_ATYP_IPV4) {
		memcpy(r + n, a->ip, 4);
		n += 4;
	} else if (a->atyp == SOCKS5_ATYP_IPV6) {
		memcpy(r + n, a->ip, 16);
		n += 16;
	} else {
		dl = strlen(a->domain);
		r[n++] = (unsigned char)dl;
		memcpy(r + n, a->domain, dl);
		n += dl;
	}
	r[n++] = (unsigned char)(a->port >> 8);
	r[n++] = (unsigned char)(a->port & 0xff);
	return buf_append(out, r, n);
}

static int
put_auth(struct socks5_client *c, struct buf *out)
{
	unsigned char r[3 + 255 + 255];
	size_t n = 0;

	r[n++] = 0x01;
	r[n++] = (unsigned char)c->user_len;
	memcpy(r + n, c->user, c->user_len);
	n += c->user_len;
	r[n++] = (unsigned char)c->pass_len;
	memcpy(r + n, c->pass, c->pass_len);
	n += c->pass_len;
	return buf_append(out, r, n);
}

/* The request that follows authentication: the BIND, if any, else CONNECT. */
static int
next_request(struct socks5_client *c, struct buf *out)
{
	int rc;

	if (c->has_source) {
		if ((rc = put_request(out, 2, &c->source)) == 0)
			c->state = SOCKS5_BIND;
		return rc;
	}
	if ((rc = put_request(out, 1, &c->target)) == 0)
		c->state = SOCKS5_CONNECT;
	return rc;
}

static int
reply_error(int rep)
{
	if (rep >= 1 && rep <= 8)
		return SOCKS5_EGENERAL - (rep - 1);
	return SOCKS5_EREPLY;
}

/*
 * How long the message being assembled is: its full length, 0 if not known
 * yet, or a negative error as soon as a byte makes it impossible.
 */
static long
msg_need(struct socks5_client *c)
{
	const unsigned char *m = c->msg;
	size_t n = c->msg_len;

	switch (c->state) {
	case SOCKS5_METHOD:
		if (m[0] != 0x05)
			return KUMO_EPROTO;
		return 2;
	case SOCKS5_AUTH:
		/* RFC 1929 says VER 1; some servers echo 5. */
		if (m[0] != 0x01 && m[0] != 0x05)
			return KUMO_EPROTO;
		return 2;
	case SOCKS5_BIND:
	case SOCKS5_CONNECT:
		if (m[0] != 0x05)
			return KUMO_EPROTO;
		if (n < 2)
			return 0;
		/* A failure may come without an address: report it at once. */
		if (m[1] != 0)
			return reply_error(m[1]);
		if (n < 3)
			return 0;
		if (m[2] != 0)
			return KUMO_EPROTO;
		if (n < 4)
			return 0;
		if (m[3] == SOCKS5_ATYP_IPV4)
			return 4 + 4 + 2;
		if (m[3] == SOCKS5_ATYP_IPV6)
			return 4 + 16 + 2;
		if (m[3] != SOCKS5_ATYP_DOMAIN)
			return KUMO_EPROTO;
		if (n < 5)
			return 0;
		return 5 + (long)m[4] + 2;
	default:
		return KUMO_EPROTO;
	}
}

static void
parse_bound(const unsigned char *m, struct socks5_addr *a)
{
	size_t n;

	memset(a, 0, sizeof(*a));
	a->atyp = m[3];
	if (a->atyp == SOCKS5_ATYP_IPV4) {
		memcpy(a->ip, m + 4, 4);
		n = 8;
	} else if (a->atyp == SOCKS5_ATYP_IPV6) {
		memcpy(a->ip, m + 4, 16);
		n = 20;
	} else {
		memcpy(a->domain, m + 5, m[4]);
		a->domain[m[4]] = '\0';
		n = 5 + (size_t)m[4];
	}
	a->port = (uint16_t)((m[n] << 8) | m[n + 1]);
}

/* Act on one complete server message; 0 to go on, 1 when ready, or an error. */
static int
on_message(struct socks5_client *c, struct buf *out)
{
	const unsigned char *m = c->msg;

	switch (c->state) {
	case SOCKS5_METHOD:
		c->method = m[1];
		if (m[1] == 0xff)
			return SOCKS5_ENOMETHOD;
		if (m[1] == 0x02 && c->has_auth) {
			if (put_auth(c, out) < 0)
				return KUMO_ENOSPACE;
			/* The password is on its way; do not keep it around in memory. */
			explicit_bzero(c->pass, sizeof(c->pass));
			c->state = SOCKS5_AUTH;
			return 0;
		}
		if (m[1] != 0x00)
			return KUMO_EPROTO; /* a method we did not offer */
		return next_request(c, out);
	case SOCKS5_AUTH:
		if (m[1] != 0x00)
			return SOCKS5_EAUTH;
		return next_request(c, out);
	case SOCKS5_BIND:
		c->reply = m[1];
		parse_bound(m, &c->bind_addr);
		if (put_request(out, 1, &c->target) < 0)
			return KUMO_ENOSPACE;
		c->state = SOCKS5_CONNECT;
		return 0;
	case SOCKS5_CONNECT:
		c->reply = m[1];
		parse_bound(m, &c->bound);
		c->state = SOCKS5_READY;
		return 1;
	default:
		return KUMO_EPROTO;
	}
}

int
socks5_feed(struct socks5_client *c, const char *in, size_t len, struct buf *out, size_t *consumed)
{
	size_t i;
	long need;
	int rc;

	*consumed = 0;
	if (c->state == SOCKS5_FAILED)
		return c->error;
	if (c->state == SOCKS5_READY)
		return 1;
	if (c->state == SOCKS5_INIT)
		return KUMO_EINVAL;
	for (i = 0; i < len; i++) {
		c->msg[c->msg_len++] = (unsigned char)in[i];
		need = msg_need(c);
		if (need < 0) {
			if (c->state == SOCKS5_BIND || c->state == SOCKS5_CONNECT)
				if (c->msg_len >= 2 && c->msg[0] == 0x05)
					c->reply = c->msg[1];
			rc = (int)need;
			goto fail;
		}
		if (need == 0 || c->msg_len < (size_t)need)
			continue;
		rc = on_message(c, out);
		c->msg_len = 0;
		if (rc < 0)
			goto fail;
		if (rc == 1) {
			*consumed = i + 1;
			return 1;
		}
	}
	*consumed = len;
	return 0;
fail:
	*consumed = i + 1;
	c->state = SOCKS5_FAILED;
	c->error = rc;
	return rc;
}

const char *
socks5_error_str(int err)
{
	switch (err) {
	case SOCKS5_EGENERAL:
		return "SOCKS5 general server failure";
	case SOCKS5_ENOTALLOWED:
		return "SOCKS5 connection not allowed by ruleset";
	case SOCKS5_ENETUNREACH:
		return "SOCKS5 network unreachable";
	case SOCKS5_EHOSTUNREACH:
		return "SOCKS5 host unreachable";
	case SOCKS5_ECONNREFUSED:
		return "SOCKS5 connection refused";
	case SOCKS5_ETTLEXPIRED:
		return "SOCKS5 TTL expired";
	case SOCKS5_ECMDUNSUPP:
		return "SOCKS5 command not supported";
	case SOCKS5_EATYPUNSUPP:
		return "SOCKS5 address type not supported";
	case SOCKS5_EREPLY:
		return "SOCKS5 unassigned reply code";
	case SOCKS5_ENOMETHOD:
		return "SOCKS5 no acceptable authentication methods";
	case SOCKS5_EAUTH:
		return "SOCKS5 username/password authentication failed";
	case KUMO_EPROTO:
		return "SOCKS5 protocol violation by the proxy";
	default:
		return kumo_strerror(err);
	}
}

const char *
socks5_state_str(enum socks5_state s)
{
	switch (s) {
	case SOCKS5_INIT:
		return "init";
	case SOCKS5_METHOD:
		return "method";
	case SOCKS5_AUTH:
		return "auth";
	case SOCKS5_BIND:
		return "bind";
	case SOCKS5_CONNECT:
		return "connect";
	case SOCKS5_READY:
		return "ready";
	case SOCKS5_FAILED:
		return "failed";
	}
	return "?";
}

void
socks5_addr_format(const struct socks5_addr *a, char *dst, size_t size)
{
	char ip[INET6_ADDRSTRLEN];

	if (size == 0)
		return;
	if (a->atyp == SOCKS5_ATYP_IPV4 && inet_ntop(AF_INET, a->ip, ip, sizeof(ip)) != NULL)
		snprintf(dst, size, "%s:%u", ip, (unsigned)a->port);
	else if (a->atyp == SOCKS5_ATYP_IPV6 && inet_ntop(AF_INET6, a->ip, ip, sizeof(ip)) != NULL)
		snprintf(dst, size, "[%s]:%u", ip, (unsigned)a->port);
	else if (a->atyp == SOCKS5_ATYP_DOMAIN)
		snprintf(dst, size, "%s:%u", a->domain, (unsigned)a->port);
	else
		snprintf(dst, size, "?:%u", (unsigned)a->port);
}
