/*
 * cidr.c: CIDR lists (see cidr.h). Entries live in one array in the order
 * added and matching is a linear scan: these lists hold a handful of
 * entries and are checked once per MX host or connection, so a trie would
 * cost more in code than it saves in time.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "cidr.h"
#include "kumo.h"

struct cidr_entry {
	int family;             /* AF_INET or AF_INET6 */
	unsigned prefix;        /* 0..32 or 0..128 */
	unsigned char addr[16]; /* network order; 4 bytes used for AF_INET, host bits zero */
};

struct cidr_list {
	struct cidr_entry *v;
	size_t n, alloc;
};

/* A parsed address: IPv4-mapped IPv6 comes out as AF_INET. */
struct cidr_addr {
	int family;
	unsigned char addr[16];
};

static const unsigned char cidr_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

struct cidr_list *
cidr_list_new(void)
{
	return xcalloc(1, sizeof(struct cidr_list));
}

void
cidr_list_free(struct cidr_list **lp)
{
	if (lp == NULL || *lp == NULL)
		return;
	free((*lp)->v);
	free(*lp);
	*lp = NULL;
}

size_t
cidr_list_count(const struct cidr_list *l)
{
	return l ? l->n : 0;
}

static unsigned
cidr_family_bits(int family)
{
	return family == AF_INET ? 32 : 128;
}

/* Parse a bare address (no prefix, no spaces); 0 or -1. */
static int
cidr_addr_parse(const char *s, struct cidr_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (strchr(s, ':') == NULL) {
		if (inet_pton(AF_INET, s, a->addr) != 1)
			return -1;
		a->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, a->addr) != 1)
		return -1;
	a->family = AF_INET6;
	return 0;
}

/* If a is IPv4-mapped IPv6, make it IPv4; returns 1 if it did. */
static int
cidr_addr_unmap(struct cidr_addr *a)
{
	if (a->family != AF_INET6 || memcmp(a->addr, cidr_mapped_prefix, 12) != 0)
		return 0;
	memmove(a->addr, a->addr + 12, 4);
	memset(a->addr + 4, 0, 12);
	a->family = AF_INET;
	return 1;
}

/* Does addr (of the same family) fall in the first `prefix` bits of net? */
static int
cidr_prefix_match(const unsigned char *net, const unsigned char *addr, unsigned prefix)
{
	unsigned whole = prefix / 8, rest = prefix % 8;

	if (memcmp(net, addr, whole) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((net[whole] ^ addr[whole]) & (unsigned char)(0xff << (8 - rest))) == 0;
}

static void
cidr_mask(unsigned char *addr, unsigned prefix, unsigned bits)
{
	unsigned i;

	for (i = prefix; i < bits; i++)
		addr[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
}

int
cidr_list_add(struct cidr_list *l, const char *spec, char **err_r)
{
	char text[INET6_ADDRSTRLEN + 8];
	const char *p, *end, *slash;
	struct cidr_entry e;
	struct cidr_addr a;
	unsigned prefix = 0, bits;
	size_t len, i;
	int have_prefix = 0;

	if (spec == NULL)
		return kumo_input_error(err_r, KUMO_EPARSE, "", "empty entry", NULL, 0);
	p = spec;
	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (end == p)
		return kumo_input_error(err_r, KUMO_EPARSE, spec, "empty entry", NULL, 0);
	slash = memchr(p, '/', (size_t)(end - p));
	len = (size_t)((slash ? slash : end) - p);
	if (len >= sizeof(text))
		return kumo_input_error(err_r, KUMO_EPARSE, spec, "bad address", p, len);
	memcpy(text, p, len);
	text[len] = '\0';
	if (cidr_addr_parse(text, &a) != 0)
		return kumo_input_error(err_r, KUMO_EPARSE, spec, "bad address", p, len);
	bits = cidr_family_bits(a.family);
	if (slash != NULL) {
		const char *q = slash + 1;

		if (q == end || (size_t)(end - q) > 3 ||
		    strspn(q, "0123456789") < (size_t)(end - q))
			return kumo_input_error(err_r, KUMO_EPARSE, spec, "bad prefix length", q,
			                  (size_t)(end - q));
		for (; q < end; q++)
			prefix = prefix * 10 + (unsigned)(*q - '0');
		if (prefix > bits) {
			if (err_r != NULL) {
				char *qs = kumo_quote(spec, strlen(spec));

				*err_r =
				    xasprintf("%s: prefix length %u is above %u", qs, prefix, bits);
				free(qs);
			}
			return KUMO_ERANGE;
		}
		have_prefix = 1;
	}
	if (!have_prefix)
		prefix = bits;
	/* ::ffff:a.b.c.d/n with n >= 96 is the IPv4 network a.b.c.d/(n-96). */
	if (prefix >= 96 && cidr_addr_unmap(&a))
		prefix -= 96;
	memset(&e, 0, sizeof(e));
	e.family = a.family;
	e.prefix = prefix;
	memcpy(e.addr, a.addr, sizeof(e.addr));
	cidr_mask(e.addr, prefix, cidr_family_bits(e.family));
	for (i = 0; i < l->n; i++)
		if (l->v[i].family == e.family && l->v[i].prefix == e.prefix &&
		    memcmp(l->v[i].addr, e.addr, sizeof(e.addr)) == 0)
			return 0;
	if (l->n == l->alloc) {
		l->alloc = l->alloc ? l->alloc * 2 : 8;
		l->v = xreallocarray(l->v, l->alloc, sizeof(*l->v));
	}
	l->v[l->n++] = e;
	return 0;
}

static int
cidr_list_match_addr(const struct cidr_list *l, struct cidr_addr *a)
{
	size_t i;

	if (l == NULL)
		return 0;
	cidr_addr_unmap(a);
	for (i = 0; i < l->n; i++)
		if (l->v[i].family == a->family &&
		    cidr_prefix_match(l->v[i].addr, a->addr, l->v[i].prefix))
			return 1;
	return 0;
}

int
cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa)
{
	struct cidr_addr a;

	if (sa == NULL)
		return 0;
	memset(&a, 0, sizeof(a));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		a.family = AF_INET;
		memcpy(a.addr, &sin->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		a.family = AF_INET6;
		memcpy(a.addr, &sin6->sin6_addr, 16);
	} else {
		return 0;
	}
	return cidr_list_match_addr(l, &a);
}

int
cidr_list_match_str(const struct cidr_list *l, const char *addr)
{
	struct cidr_addr a;

	if (addr == NULL || cidr_addr_parse(addr, &a) != 0)
		return KUMO_EPARSE;
	return cidr_list_match_addr(l, &a);
}

int
cidr_list_entry_format(const struct cidr_list *l, size_t i, char *out, size_t outlen)
{
	char text[INET6_ADDRSTRLEN];
	const struct cidr_entry *e;

	if (l == NULL || i >= l->n)
		return KUMO_ENOTFOUND;
	e = &l->v[i];
	if (inet_ntop(e->family, e->addr, text, sizeof(text)) == NULL)
		return KUMO_EINVAL;
	if (e->prefix == cidr_family_bits(e->family))
		snprintf(out, outlen, "%s", text);
	else
		snprintf(out, outlen, "%s/%u", text, e->prefix);
	return 0;
}

char *
cidr_list_format(const struct cidr_list *l)
{
	char one[CIDR_FORMAT_MAX];
	struct buf b;
	size_t i;

	buf_init(&b, 0);
	for (i = 0; i < cidr_list_count(l); i++) {
		if (cidr_list_entry_format(l, i, one, sizeof(one)) != 0)
			continue;
		if (i > 0)
			buf_puts(&b, ", ");
		buf_puts(&b, one);
	}
	return buf_steal(&b, NULL);
}
