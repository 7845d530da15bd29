/* test_cidr.c: IPv4/IPv6 CIDR lists (lib/cidr.c). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "cidr.h"
#include "kumo.h"
#include "unit.h"

/* Build a list from entries that must all parse. */
static struct cidr_list *
list_of(const char *const *specs, size_t n)
{
	struct cidr_list *l = cidr_list_new();
	size_t i;

	for (i = 0; i < n; i++) {
		char *err = NULL;

		if (cidr_list_add(l, specs[i], &err) != 0)
			fprintf(stderr, "  list_of: %s\n", err);
		CU_ASSERT_PTR_NULL(err);
		free(err);
	}
	return l;
}

static void
test_add_and_format(void)
{
	static const struct {
		const char *in, *want;
	} rows[] = {
	    {"127.0.0.1", "127.0.0.1"},
	    {"10.0.0.0/8", "10.0.0.0/8"},
	    {"::1", "::1"},
	    {"2001:db8::/32", "2001:db8::/32"},
	    {"127.0.0.1/32", "127.0.0.1"},
	    {"::1/128", "::1"},
	    {"0.0.0.0/0", "0.0.0.0/0"},
	    {"::/0", "::/0"},
	    {"10.1.2.3/8", "10.0.0.0/8"}, /* host bits masked */
	    {"192.168.1.255/31", "192.168.1.254/31"},
	    {"192.168.1.7/30", "192.168.1.4/30"},
	    {"2001:db8:ffff::1/33", "2001:db8:8000::/33"},
	    {"2001:DB8::/32", "2001:db8::/32"},
	    {" 10.0.0.0/8 ", "10.0.0.0/8"},
	    {"\t::1\t", "::1"},
	    {"::ffff:127.0.0.1", "127.0.0.1"}, /* IPv4-mapped is IPv4 */
	    {"::ffff:10.0.0.0/104", "10.0.0.0/8"},
	    {"::ffff:0:0/96", "0.0.0.0/0"},
	    {"::ffff:0:0/95", "::fffe:0:0/95"}, /* not IPv4-mapped any more */
	    {"fe80::1/10", "fe80::/10"},
	    {"10.0.0.0/008", "10.0.0.0/8"},
	    {"255.255.255.255", "255.255.255.255"},
	    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/127",
	     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		struct cidr_list *l = cidr_list_new();
		char out[CIDR_FORMAT_MAX] = "";
		char *err = NULL;

		UNIT_EXPECT_INT(rows[i].in, cidr_list_add(l, rows[i].in, &err), 0);
		CU_ASSERT_PTR_NULL(err);
		free(err);
		UNIT_EXPECT_INT("count", cidr_list_count(l), 1);
		UNIT_EXPECT_INT("entry 0", cidr_list_entry_format(l, 0, out, sizeof(out)), 0);
		UNIT_EXPECT_STR(rows[i].in, out, rows[i].want);
		UNIT_EXPECT_INT("entry 1", cidr_list_entry_format(l, 1, out, sizeof(out)),
		                KUMO_ENOTFOUND);
		cidr_list_free(&l);
		CU_ASSERT_PTR_NULL(l);
	}
}

static void
test_add_bad(void)
{
	static const struct {
		const char *in;
		int rc;
		const char *err;
	} rows[] = {
	    {"", KUMO_EPARSE, "\"\": empty entry"},
	    {"  ", KUMO_EPARSE, "\"  \": empty entry"},
	    {"10.0.0.0/33", KUMO_ERANGE, "\"10.0.0.0/33\": prefix length 33 is above 32"},
	    {"::/129", KUMO_ERANGE, "\"::/129\": prefix length 129 is above 128"},
	    {"::ffff:1.2.3.4/129", KUMO_ERANGE,
	     "\"::ffff:1.2.3.4/129\": prefix length 129 is above 128"},
	    {"10.0.0.256", KUMO_EPARSE, "\"10.0.0.256\": bad address \"10.0.0.256\""},
	    {"10.0.0.256/8", KUMO_EPARSE, "\"10.0.0.256/8\": bad address \"10.0.0.256\""},
	    {"10.0.0", KUMO_EPARSE, "\"10.0.0\": bad address \"10.0.0\""},
	    {"010.0.0.1", KUMO_EPARSE, "\"010.0.0.1\": bad address \"010.0.0.1\""},
	    {"example.com", KUMO_EPARSE, "\"example.com\": bad address \"example.com\""},
	    {"fe80::1%eth0", KUMO_EPARSE, "\"fe80::1%eth0\": bad address \"fe80::1%eth0\""},
	    {"[::1]", KUMO_EPARSE, "\"[::1]\": bad address \"[::1]\""},
	    {"1:2:3:4:5:6:7:8:9", KUMO_EPARSE,
	     "\"1:2:3:4:5:6:7:8:9\": bad address \"1:2:3:4:5:6:7:8:9\""},
	    {"10.0.0.0/", KUMO_EPARSE, "\"10.0.0.0/\": bad prefix length \"\""},
	    {"10.0.0.0/x", KUMO_EPARSE, "\"10.0.0.0/x\": bad prefix length \"x\""},
	    {"10.0.0.0/-1", KUMO_EPARSE, "\"10.0.0.0/-1\": bad prefix length \"-1\""},
	    {"10.0.0.0/+8", KUMO_EPARSE, "\"10.0.0.0/+8\": bad prefix length \"+8\""},
	    {"10.0.0.0/8/8", KUMO_EPARSE, "\"10.0.0.0/8/8\": bad prefix length \"8/8\""},
	    {"10.0.0.0/0008", KUMO_EPARSE, "\"10.0.0.0/0008\": bad prefix length \"0008\""},
	    {"10.0.0.0 /8", KUMO_EPARSE, "\"10.0.0.0 /8\": bad address \"10.0.0.0 \""},
	    {"/8", KUMO_EPARSE, "\"/8\": bad address \"\""},
	    {"1.2.3.4\x01", KUMO_EPARSE, "\"1.2.3.4\\x01\": bad address \"1.2.3.4\\x01\""},
	    {"1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa", KUMO_EPARSE,
	     "\"1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa\": bad address "
	     "\"1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa\""},
	};
	size_t i;
	struct cidr_list *l = cidr_list_new();

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		char *err = NULL;

		UNIT_EXPECT_INT(rows[i].err, cidr_list_add(l, rows[i].in, &err), rows[i].rc);
		UNIT_EXPECT_STR(rows[i].in, err, rows[i].err);
		free(err);
		UNIT_EXPECT_INT("no err_r", cidr_list_add(l, rows[i].in, NULL), rows[i].rc);
	}
	UNIT_EXPECT_INT("NULL entry", cidr_list_add(l, NULL, NULL), KUMO_EPARSE);
	UNIT_EXPECT_INT("nothing added", cidr_list_count(l), 0);
	cidr_list_free(&l);
	cidr_list_free(&l); /* NULL is fine */
	cidr_list_free(NULL);
}

static void
test_match_table(void)
{
	static const char *const specs[] = {
	    "127.0.0.1", "10.0.0.0/8",    "192.168.10.0/31", "172.16.0.0/12",     "198.51.100.7/32",
	    "::1",       "2001:db8::/32", "fd00::/8",        "2001:db8:1::5/127", "100.64.0.0/10",
	};
	static const struct {
		const char *addr;
		int want;
	} rows[] = {
	    {"127.0.0.1", 1},
	    {"127.0.0.2", 0},
	    {"126.255.255.255", 0},
	    {"10.0.0.0", 1},       /* first of the prefix */
	    {"10.255.255.255", 1}, /* last */
	    {"9.255.255.255", 0},  /* one below */
	    {"11.0.0.0", 0},       /* one above */
	    {"192.168.10.0", 1},
	    {"192.168.10.1", 1},
	    {"192.168.10.2", 0},
	    {"192.168.9.255", 0},
	    {"172.16.0.0", 1},
	    {"172.31.255.255", 1},
	    {"172.32.0.0", 0},
	    {"172.15.255.255", 0},
	    {"198.51.100.7", 1},
	    {"198.51.100.6", 0},
	    {"198.51.100.8", 0},
	    {"100.64.0.0", 1},
	    {"100.127.255.255", 1},
	    {"100.128.0.0", 0},
	    {"100.63.255.255", 0},
	    {"::1", 1},
	    {"::2", 0},
	    {"::", 0},
	    {"2001:db8::", 1},
	    {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 1},
	    {"2001:db9::", 0},
	    {"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", 0},
	    {"fd00::", 1},
	    {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 1},
	    {"fe00::", 0},
	    {"fc00::1", 0},
	    {"2001:db8:1::4", 1},
	    {"2001:db8:1::5", 1},
	    {"::ffff:127.0.0.1", 1}, /* IPv4-mapped matches the IPv4 entry */
	    {"::ffff:10.20.30.40", 1},
	    {"::ffff:11.0.0.0", 0},
	    {"::ffff:7f00:1", 1},
	    {"::127.0.0.1", 0},        /* IPv4-compatible (deprecated) is not IPv4 */
	    {"64:ff9b::127.0.0.1", 0}, /* NAT64 is not IPv4 either */
	    {"8.8.8.8", 0},
	};
	struct cidr_list *l = list_of(specs, KUMO_NELEM(specs));
	size_t i;

	UNIT_EXPECT_INT("count", cidr_list_count(l), KUMO_NELEM(specs));
	for (i = 0; i < KUMO_NELEM(rows); i++)
		UNIT_EXPECT_INT(rows[i].addr, cidr_list_match_str(l, rows[i].addr), rows[i].want);
	UNIT_EXPECT_INT("not an address", cidr_list_match_str(l, "localhost"), KUMO_EPARSE);
	UNIT_EXPECT_INT("with prefix", cidr_list_match_str(l, "10.0.0.0/8"), KUMO_EPARSE);
	UNIT_EXPECT_INT("NULL address", cidr_list_match_str(l, NULL), KUMO_EPARSE);
	UNIT_EXPECT_INT("NULL list", cidr_list_match_str(NULL, "127.0.0.1"), 0);
	cidr_list_free(&l);
}

static void
test_match_everything(void)
{
	static const char *const v4all[] = {"0.0.0.0/0"};
	static const char *const v6all[] = {"::/0"};
	struct cidr_list *a = list_of(v4all, 1), *b = list_of(v6all, 1), *empty = cidr_list_new();

	UNIT_EXPECT_INT("v4/0 v4", cidr_list_match_str(a, "1.2.3.4"), 1);
	UNIT_EXPECT_INT("v4/0 v4 max", cidr_list_match_str(a, "255.255.255.255"), 1);
	UNIT_EXPECT_INT("v4/0 mapped", cidr_list_match_str(a, "::ffff:1.2.3.4"), 1);
	UNIT_EXPECT_INT("v4/0 v6", cidr_list_match_str(a, "2001:db8::1"), 0);
	UNIT_EXPECT_INT("v6/0 v6", cidr_list_match_str(b, "2001:db8::1"), 1);
	UNIT_EXPECT_INT("v6/0 ::", cidr_list_match_str(b, "::"), 1);
	UNIT_EXPECT_INT("v6/0 v4", cidr_list_match_str(b, "1.2.3.4"), 0);
	UNIT_EXPECT_INT("v6/0 mapped", cidr_list_match_str(b, "::ffff:1.2.3.4"), 0);
	UNIT_EXPECT_INT("empty", cidr_list_match_str(empty, "1.2.3.4"), 0);
	UNIT_EXPECT_INT("empty count", cidr_list_count(empty), 0);
	cidr_list_free(&a);
	cidr_list_free(&b);
	cidr_list_free(&empty);
}

/*
 * Every prefix length of both families, /0 to /32 and /0 to /128: the first
 * and last address of the network match, the addresses just outside do not.
 */
static void
test_every_prefix_length(void)
{
	unsigned p, n = 0;
	int bad = 0, f;

	for (f = 0; f < 2; f++) {
		int fam = f == 0 ? AF_INET : AF_INET6;
		unsigned bits = fam == AF_INET ? 32 : 128, bytes = bits / 8;

		for (p = 0; p <= bits; p++) {
			struct cidr_list *l = cidr_list_new();
			unsigned char net[16], last[16], below[16], above[16];
			char spec[80], t[INET6_ADDRSTRLEN];
			unsigned i;
			int before = bad;

			/* Start from a pattern so both neighbours usually exist. */
			memset(net, 0xa5, sizeof(net));
			if (fam == AF_INET)
				net[0] = 0x55; /* never an IPv4-mapped-looking pattern */
			for (i = p; i < bits; i++)
				net[i / 8] &= (unsigned char)~(0x80u >> (i % 8));
			memcpy(last, net, sizeof(net));
			for (i = p; i < bits; i++)
				last[i / 8] |= (unsigned char)(0x80u >> (i % 8));
			/* below = net - 1, above = last + 1, carrying through the bytes */
			memcpy(below, net, sizeof(below));
			memcpy(above, last, sizeof(above));
			for (i = bytes; i-- > 0;)
				if (below[i]-- != 0)
					break;
			for (i = bytes; i-- > 0;)
				if (++above[i] != 0)
					break;
			inet_ntop(fam, net, t, sizeof(t));
			snprintf(spec, sizeof(spec), "%s/%u", t, p);
			bad += cidr_list_add(l, spec, NULL) != 0;
			bad += cidr_list_match_str(l, t) != 1;
			inet_ntop(fam, last, t, sizeof(t));
			bad += cidr_list_match_str(l, t) != 1;
			if (p > 0) { /* /0 has no outside */
				inet_ntop(fam, below, t, sizeof(t));
				bad += cidr_list_match_str(l, t) != 0;
				inet_ntop(fam, above, t, sizeof(t));
				bad += cidr_list_match_str(l, t) != 0;
			}
			if (bad != before)
				fprintf(stderr, "  prefix %s failed\n", spec);
			n++;
			cidr_list_free(&l);
		}
	}
	UNIT_EXPECT_INT("prefix lengths tried", n, 33 + 129);
	UNIT_EXPECT_INT("prefix length failures", bad, 0);
}

static void
test_match_sockaddr(void)
{
	static const char *const specs[] = {"127.0.0.0/8", "2001:db8::/32"};
	struct cidr_list *l = list_of(specs, KUMO_NELEM(specs));
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(25);
	inet_pton(AF_INET, "127.1.2.3", &sin.sin_addr);
	UNIT_EXPECT_INT("sin in", cidr_list_match(l, (struct sockaddr *)&sin), 1);
	inet_pton(AF_INET, "128.0.0.1", &sin.sin_addr);
	UNIT_EXPECT_INT("sin out", cidr_list_match(l, (struct sockaddr *)&sin), 0);

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::25", &sin6.sin6_addr);
	UNIT_EXPECT_INT("sin6 in", cidr_list_match(l, (struct sockaddr *)&sin6), 1);
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr);
	UNIT_EXPECT_INT("sin6 mapped in", cidr_list_match(l, (struct sockaddr *)&sin6), 1);
	inet_pton(AF_INET6, "::ffff:128.0.0.1", &sin6.sin6_addr);
	UNIT_EXPECT_INT("sin6 mapped out", cidr_list_match(l, (struct sockaddr *)&sin6), 0);
	inet_pton(AF_INET6, "2001:db9::", &sin6.sin6_addr);
	UNIT_EXPECT_INT("sin6 out", cidr_list_match(l, (struct sockaddr *)&sin6), 0);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	UNIT_EXPECT_INT("unix", cidr_list_match(l, (struct sockaddr *)&sun), 0);
	UNIT_EXPECT_INT("NULL sockaddr", cidr_list_match(l, NULL), 0);
	cidr_list_free(&l);
}

static void
test_list_format_and_dedupe(void)
{
	static const char *const specs[] = {
	    "127.0.0.1", "10.0.0.0/8", "10.9.9.9/8", "::1", "::ffff:127.0.0.1", "2001:db8::/32",
	};
	struct cidr_list *l = list_of(specs, KUMO_NELEM(specs)), *empty = cidr_list_new();
	char *s = cidr_list_format(l);

	UNIT_EXPECT_INT("duplicates stored once", cidr_list_count(l), 4);
	UNIT_EXPECT_STR("list", s, "127.0.0.1, 10.0.0.0/8, ::1, 2001:db8::/32");
	free(s);
	s = cidr_list_format(empty);
	UNIT_EXPECT_STR("empty list", s, "");
	free(s);
	s = cidr_list_format(NULL);
	UNIT_EXPECT_STR("NULL list", s, "");
	free(s);
	UNIT_EXPECT_INT("NULL count", cidr_list_count(NULL), 0);
	cidr_list_free(&l);
	cidr_list_free(&empty);
}

/* Many entries: growth works and every one still matches. */
static void
test_many(void)
{
	struct cidr_list *l = cidr_list_new();
	char spec[32];
	int i, bad = 0;

	for (i = 0; i < 1000; i++) {
		snprintf(spec, sizeof(spec), "10.%d.%d.0/24", i / 256, i % 256);
		bad += cidr_list_add(l, spec, NULL) != 0;
	}
	UNIT_EXPECT_INT("count", cidr_list_count(l), 1000);
	for (i = 0; i < 1000; i++) {
		snprintf(spec, sizeof(spec), "10.%d.%d.77", i / 256, i % 256);
		bad += cidr_list_match_str(l, spec) != 1;
	}
	UNIT_EXPECT_INT("failures", bad, 0);
	UNIT_EXPECT_INT("outside", cidr_list_match_str(l, "10.4.0.1"), 0);
	cidr_list_free(&l);
}

/* The parser is total: random bytes give an entry or an error. */
static void
test_total(void)
{
	static const char alphabet[] = "0123456789abcdef:./ f\x01\xff%[]";
	unsigned seed = 99;
	int i, j, explained = 0, oks = 0;
	struct cidr_list *l = cidr_list_new();

	for (i = 0; i < 20000; i++) {
		char in[24], *err = NULL;
		int len;

		seed = seed * 1103515245u + 12345u;
		len = (int)((seed >> 16) % sizeof(in));
		for (j = 0; j < len; j++) {
			seed = seed * 1103515245u + 12345u;
			in[j] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		in[len] = '\0';
		if (cidr_list_add(l, in, &err) == 0)
			oks += err == NULL;
		else
			explained += err != NULL && err[0] == '"';
		cidr_list_match_str(l, in);
		free(err);
	}
	UNIT_EXPECT_INT("every input added or explained", oks + explained, 20000);
	cidr_list_free(&l);
}

int
main(void)
{
	static const struct unit_test tests[] = {
	    {"add and format", test_add_and_format},
	    {"add bad", test_add_bad},
	    {"match table", test_match_table},
	    {"match everything", test_match_everything},
	    {"every prefix length", test_every_prefix_length},
	    {"match sockaddr", test_match_sockaddr},
	    {"list format and dedupe", test_list_format_and_dedupe},
	    {"many entries", test_many},
	    {"total on random input", test_total},
	    {NULL, NULL},
	};
	return unit_run("cidr", tests);
}
