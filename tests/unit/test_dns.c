/*
 * test_dns.c: site_name from MX sets (table-driven), and the resolver for
 * real on a libuv loop, answering from local data only. Names without local
 * data go to a fake forwarder on 127.0.0.1 run by the test itself (it
 * answers SERVFAIL, or drops queries), so nothing leaves the machine and the
 * test can count what reached it. Every loop run is bounded by a guard timer.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "kumo.h"
#include "dns.h"
#include "unit.h"

/* ---- site_name ---- */

struct site_case {
	const char *what;
	struct dns_mx mx[8];
	size_t n;
	const char *want; /* NULL: no site */
};

static void
test_site_name_table(void)
{
	static const struct site_case cases[] = {
		{"gmail-like, shuffled",
		 {{"alt3.gmail-smtp-in.l.google.com.", 30},
		  {"alt1.gmail-smtp-in.l.google.com.", 10},
		  {"gmail-smtp-in.l.google.com.", 5},
		  {"alt4.gmail-smtp-in.l.google.com.", 40},
		  {"alt2.gmail-smtp-in.l.google.com.", 20}},
		 5,
		 "(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com"},
		{"yahoo-like",
		 {{"mta5.am0.yahoodns.net", 1}, {"mta6.am0.yahoodns.net", 1}, {"mta7.am0.yahoodns.net", 1}},
		 3,
		 "(mta5|mta6|mta7).am0.yahoodns.net"},
		{"yahoo-like, equal preference sorted by name",
		 {{"mta7.am0.yahoodns.net.", 1}, {"mta5.am0.yahoodns.net.", 1}, {"mta6.am0.yahoodns.net.", 1}},
		 3,
		 "(mta5|mta6|mta7).am0.yahoodns.net"},
		{"single host", {{"mx.example.com.", 10}}, 1, "mx.example.com"},
		{"case folded", {{"MX.Example.COM.", 10}}, 1, "mx.example.com"},
		{"outlook-like", {{"example-com.mail.protection.outlook.com.", 0}}, 1,
		 "example-com.mail.protection.outlook.com"},
		{"outlook-like, two tenants",
		 {{"b-org.mail.protection.outlook.com", 0}, {"a-com.mail.protection.outlook.com", 0}},
		 2,
		 "(a-com|b-org).mail.protection.outlook.com"},
		{"shallower host first", {{"example.com", 10}, {"mx.example.com", 20}}, 2, "mx?.example.com"},
		{"deeper host first", {{"mx.example.com", 10}, {"example.com", 20}}, 2, "mx?.example.com"},
		{"differing depths",
		 {{"a.b.c.example.com", 10}, {"x.example.com", 20}},
		 2,
		 "a?.b?.(c|x).example.com"},
		{"preference beats name order",
		 {{"alt1.mx.example.net", 20}, {"alt2.mx.example.net", 10}},
		 2,
		 "(alt2|alt1).mx.example.net"},
		{"unrelated domains",
		 {{"mx1.a.com", 10}, {"mx2.b.org", 20}},
		 2,
		 "(mx1|mx2).(a|b).(com|org)"},
		{"duplicate host", {{"mx.example.com", 10}, {"MX.example.com.", 20}}, 2, "mx.example.com"},
		{"repeated label at one position",
		 {{"in1.smtp.example.com", 10}, {"in1.mx.example.com", 20}, {"in2.mx.example.com", 30}},
		 3,
		 "(in1|in2).(smtp|mx).example.com"},
		{"root and empty hosts ignored", {{".", 0}, {"", 5}, {"mx.example.com", 10}}, 3, "mx.example.com"},
		{"only the root", {{".", 0}}, 1, NULL},
		{"none", {{NULL, 0}}, 0, NULL},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(cases); i++) {
		char *got = dns_site_name(cases[i].mx, cases[i].n);
		if (cases[i].want == NULL) {
			if (got != NULL)
				fprintf(stderr, "  %s: got \"%s\", want NULL\n", cases[i].what, got);
			CU_ASSERT_PTR_NULL(got);
		} else {
			UNIT_EXPECT_STR(cases[i].what, got, cases[i].want);
		}
		free(got);
	}
}

static void
test_site_name_for(void)
{
	struct dns_mx mx[] = {{"mx1.example.test", 10}, {"mx2.example.test", 20}};
	struct dns_result r;
	char *s;

	memset(&r, 0, sizeof(r));
	r.status = DNS_OK;
	r.mx = mx;
	r.n_mx = 2;
	s = dns_site_name_for(&r, "example.test");
	UNIT_EXPECT_STR("ok", s, "(mx1|mx2).example.test");
	free(s);
	r.status = DNS_NODATA;
	s = dns_site_name_for(&r, "Example.TEST.");
	UNIT_EXPECT_STR("nodata: the domain", s, "example.test");
	free(s);
	r.status = DNS_NULL_MX;
	CU_ASSERT_PTR_NULL(dns_site_name_for(&r, "example.test"));
	r.status = DNS_TEMPFAIL;
	CU_ASSERT_PTR_NULL(dns_site_name_for(&r, "example.test"));
	r.status = DNS_NXDOMAIN;
	CU_ASSERT_PTR_NULL(dns_site_name_for(&r, "example.test"));
	CU_ASSERT_PTR_NULL(dns_site_name_for(NULL, "example.test"));
}

static void
test_status_str(void)
{
	UNIT_EXPECT_STR("ok", dns_status_str(DNS_OK), "ok");
	UNIT_EXPECT_STR("nodata", dns_status_str(DNS_NODATA), "nodata");
	UNIT_EXPECT_STR("null-mx", dns_status_str(DNS_NULL_MX), "null-mx");
	UNIT_EXPECT_STR("nxdomain", dns_status_str(DNS_NXDOMAIN), "nxdomain");
	UNIT_EXPECT_STR("tempfail", dns_status_str(DNS_TEMPFAIL), "tempfail");
	UNIT_EXPECT_STR("bogus", dns_status_str(DNS_BOGUS), "bogus");
}

/* ---- a fake forwarder on 127.0.0.1 ---- */

struct fake_fwd {
	uv_udp_t udp;
	int port;
	int drop; /* 0: answer SERVFAIL; 1: say nothing */
	int queries;
};

static void
fwd_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)h;
	(void)hint;
	b->base = xmalloc(4096);
	b->len = 4096;
}

static void
fwd_sent(uv_udp_send_t *req, int status)
{
	(void)status;
	free(req->data);
	free(req);
}

static void
fwd_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *b, const struct sockaddr *from, unsigned flags)
{
	struct fake_fwd *f = h->data;

	(void)flags;
	if (n >= 12 && from != NULL) {
		f->queries++;
		if (!f->drop) {
			uv_udp_send_t *req = xmalloc(sizeof(*req));
			uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
			/* The query back as a response: QR set, RA, rcode SERVFAIL. */
			b->base[2] = (char)(b->base[2] | 0x80);
			b->base[3] = (char)(0x80 | 2);
			req->data = b->base;
			if (uv_udp_send(req, h, &out, 1, from, fwd_sent) == 0)
				return;
			free(req);
		}
	}
	free(b->base);
}

static int
fwd_start(uv_loop_t *loop, struct fake_fwd *f, int drop)
{
	struct sockaddr_in sin;
	int len = sizeof(sin);

	memset(f, 0, sizeof(*f));
	f->drop = drop;
	uv_ip4_addr("127.0.0.1", 0, &sin);
	if (uv_udp_init(loop, &f->udp) != 0)
		return -1;
	f->udp.data = f;
	if (uv_udp_bind(&f->udp, (const struct sockaddr *)&sin, 0) != 0 ||
	    uv_udp_getsockname(&f->udp, (struct sockaddr *)&sin, &len) != 0 ||
	    uv_udp_recv_start(&f->udp, fwd_alloc, fwd_recv) != 0)
		return -1;
	f->port = ntohs(sin.sin_port);
	return 0;
}

/* ---- fixture ---- */

static int delivered; /* callbacks so far, for order checks */

struct got {
	int calls;
	int seq; /* value of delivered at the last call */
	struct dns_result *r; /* a copy of the last result */
};

struct fixture {
	uv_loop_t loop;
	struct fake_fwd fwd;
	struct dns_resolver *res;
	uv_timer_t guard;
	int expired;
};

static const char *const lab_zones[] = {"nx.test. static", NULL};
static const char *const lab_data[] = {
	"example.test. MX 20 mx2.example.test.",
	"example.test. MX 10 mx1.example.test.",
	"example.test. MX 10 mx0.example.test.",
	"mx1.example.test. A 127.0.0.1",
	"mx1.example.test. AAAA ::1",
	"mx2.example.test. A 127.0.0.2",
	"mx2.example.test. A 127.0.0.3",
	"nomx.test. A 127.0.0.4",
	"nullmx.test. MX 0 .",
	"v6only.test. AAAA 2001:db8::1",
	"txt.test. TXT \"hello\" \"world\"",
	"order.test. MX 10 b.order.test.",
	"order.test. MX 10 c.order.test.",
	"order.test. MX 5 z.order.test.",
	"order.test. MX 10 a.order.test.",
	"order.test. MX 10 A.order.test.",
	"gmail.test. MX 5 gmail-smtp-in.l.google.com.",
	"gmail.test. MX 10 alt1.gmail-smtp-in.l.google.com.",
	"gmail.test. MX 20 alt2.gmail-smtp-in.l.google.com.",
	"gmail.test. MX 30 alt3.gmail-smtp-in.l.google.com.",
	"gmail.test. MX 40 alt4.gmail-smtp-in.l.google.com.",
	NULL,
};

/*
 * A resolver forwarding to a fake forwarder that answers SERVFAIL (or, with
 * drop, nothing: then unbound's own slow give-up is left in place so that
 * only our deadline can end a query).
 */
static int
fixture_init(struct fixture *fx, int drop, unsigned timeout_ms)
{
	char fwd[64], *err = NULL;
	const char *fwds[] = {fwd, NULL};
	struct dns_options o;

	memset(fx, 0, sizeof(*fx));
	if (uv_loop_init(&fx->loop) != 0 || fwd_start(&fx->loop, &fx->fwd, drop) != 0)
		return -1;
	uv_timer_init(&fx->loop, &fx->guard);
	fx->guard.data = fx;
	snprintf(fwd, sizeof(fwd), "127.0.0.1@%d", fx->fwd.port);
	memset(&o, 0, sizeof(o));
	o.forwarders = fwds;
	o.local_zones = lab_zones;
	o.local_data = lab_data;
	o.cache_max_ttl = 60;
	o.infra_cache_max_rtt = drop ? 0 : 200;
	o.timeout_ms = timeout_ms;
	fx->res = dns_resolver_new(&fx->loop, &o, &err);
	if (fx->res == NULL) {
		fprintf(stderr, "  dns_resolver_new: %s\n", err ? err : "?");
		free(err);
		return -1;
	}
	return 0;
}

static void
on_guard(uv_timer_t *t)
{
	struct fixture *fx = t->data;
	fx->expired = 1;
}

/* Run the loop until *done reaches want or ms pass; 0 if it did. */
static int
run_until(struct fixture *fx, const int *done, int want, unsigned ms)
{
	fx->expired = 0;
	uv_timer_start(&fx->guard, on_guard, ms, 0);
	while (*done < want && !fx->expired)
		uv_run(&fx->loop, UV_RUN_ONCE);
	uv_timer_stop(&fx->guard);
	if (*done < want)
		fprintf(stderr, "  loop: %d of %d callbacks after %u ms\n", *done, want, ms);
	return *done >= want ? 0 : -1;
}

static void
close_cb(uv_handle_t *h)
{
	(void)h;
}

/* Free everything and check that no handle was left on the loop. */
static void
fixture_done(struct fixture *fx)
{
	dns_resolver_free(&fx->res);
	CU_ASSERT_PTR_NULL(fx->res);
	uv_close((uv_handle_t *)&fx->fwd.udp, close_cb);
	uv_close((uv_handle_t *)&fx->guard, close_cb);
	uv_run(&fx->loop, UV_RUN_DEFAULT);
	UNIT_EXPECT_INT("uv_loop_close", uv_loop_close(&fx->loop), 0);
}

static void
on_result(const struct dns_result *r, void *arg)
{
	struct got *g = arg;
	g->calls++;
	g->seq = ++delivered;
	dns_result_free(&g->r);
	g->r = dns_result_dup(r);
}

static void
got_reset(struct got *g)
{
	dns_result_free(&g->r);
	g->calls = 0;
}

/* Resolve MX for name and wait (5 s at most); the result is in g->r. */
static int
mx_wait(struct fixture *fx, const char *name, struct got *g)
{
	got_reset(g);
	dns_resolve_mx(fx->res, name, on_result, g);
	if (run_until(fx, &g->calls, 1, 5000) < 0)
		return -1;
	UNIT_EXPECT_INT("callbacks", g->calls, 1);
	return g->r != NULL ? 0 : -1;
}

static int
addrs_wait(struct fixture *fx, const char *name, struct got *g)
{
	got_reset(g);
	dns_resolve_addrs(fx->res, name, on_result, g);
	if (run_until(fx, &g->calls, 1, 5000) < 0)
		return -1;
	return g->r != NULL ? 0 : -1;
}

/* ---- resolver tests ---- */

static void
test_mx_order(void)
{
	struct fixture fx;
	struct got g = {0, 0, NULL};
	char *site;

	CU_ASSERT_FATAL(fixture_init(&fx, 0, 3000) == 0);
	CU_ASSERT_FATAL(mx_wait(&fx, "example.test", &g) == 0);
	UNIT_EXPECT_STR("status", dns_status_str(g.r->status), "ok");
	UNIT_EXPECT_INT("n_mx", g.r->n_mx, 3);
	if (g.r->n_mx == 3) {
		UNIT_EXPECT_STR("mx[0]", g.r->mx[0].host, "mx0.example.test");
		UNIT_EXPECT_INT("pref[0]", g.r->mx[0].pref, 10);
		UNIT_EXPECT_STR("mx[1]", g.r->mx[1].host, "mx1.example.test");
		UNIT_EXPECT_INT("pref[1]", g.r->mx[1].pref, 10);
		UNIT_EXPECT_STR("mx[2]", g.r->mx[2].host, "mx2.example.test");
		UNIT_EXPECT_INT("pref[2]", g.r->mx[2].pref, 20);
	}
	UNIT_EXPECT_STR("name", g.r->name, "example.test");
	UNIT_EXPECT_INT("rrtype", g.r->rrtype, DNS_TYPE_MX);
	UNIT_EXPECT_INT("secure (local data)", g.r->secure, 0);
	UNIT_EXPECT_INT("from_cache", g.r->from_cache, 0);
	UNIT_EXPECT_INT("ttl capped by cache_max_ttl", g.r->ttl, 60);
	site = dns_site_name_for(g.r, "example.test");
	UNIT_EXPECT_STR("site", site, "(mx0|mx1|mx2).example.test");
	free(site);

	/* Equal preferences sorted by name; a name listed twice in other case once. */
	CU_ASSERT_FATAL(mx_wait(&fx, "order.test", &g) == 0);
	UNIT_EXPECT_INT("order: n_mx", g.r->n_mx, 4);
	if (g.r->n_mx == 4) {
		UNIT_EXPECT_STR("order[0]", g.r->mx[0].host, "z.order.test");
		UNIT_EXPECT_STR("order[1]", g.r->mx[1].host, "a.order.test");
		UNIT_EXPECT_STR("order[2]", g.r->mx[2].host, "b.order.test");
		UNIT_EXPECT_STR("order[3]", g.r->mx[3].host, "c.order.test");
	}

	CU_ASSERT_FATAL(mx_wait(&fx, "gmail.test", &g) == 0);
	site = dns_site_name_for(g.r, "gmail.test");
	UNIT_EXPECT_STR("gmail site", site, "(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com");
	free(site);
	UNIT_EXPECT_INT("local data never reaches the forwarder", fx.fwd.queries, 0);
	got_reset(&g);
	fixture_done(&fx);
}

static void
test_mx_special(void)
{
	struct fixture fx;
	struct got g = {0, 0, NULL};
	char *site;

	CU_ASSERT_FATAL(fixture_init(&fx, 0, 3000) == 0);

	CU_ASSERT_FATAL(mx_wait(&fx, "nomx.test", &g) == 0);
	UNIT_EXPECT_STR("no MX: status", dns_status_str(g.r->status), "nodata");
	UNIT_EXPECT_INT("no MX: implicit MX", g.r->n_mx, 1);
	if (g.r->n_mx == 1) {
		UNIT_EXPECT_STR("implicit MX host", g.r->mx[0].host, "nomx.test");
		UNIT_EXPECT_INT("implicit MX pref", g.r->mx[0].pref, 0);
	}
	site = dns_site_name_for(g.r, "nomx.test");
	UNIT_EXPECT_STR("no MX: site is the domain", site, "nomx.test");
	free(site);

	CU_ASSERT_FATAL(mx_wait(&fx, "nullmx.test", &g) == 0);
	UNIT_EXPECT_STR("null MX: status", dns_status_str(g.r->status), "null-mx");
	UNIT_EXPECT_INT("null MX: no hosts", g.r->n_mx, 0);
	CU_ASSERT_PTR_NULL(dns_site_name_for(g.r, "nullmx.test"));

	CU_ASSERT_FATAL(mx_wait(&fx, "missing.nx.test", &g) == 0);
	UNIT_EXPECT_STR("nxdomain: status", dns_status_str(g.r->status), "nxdomain");
	UNIT_EXPECT_INT("nxdomain: rcode", g.r->rcode, 3);
	UNIT_EXPECT_INT("nxdomain: no hosts", g.r->n_mx, 0);

	CU_ASSERT_FATAL(mx_wait(&fx, "bad name.test", &g) == 0);
	UNIT_EXPECT_STR("invalid name", dns_status_str(g.r->status), "nxdomain");
	UNIT_EXPECT_STR("invalid name: why", g.r->why, "invalid name");
	CU_ASSERT_FATAL(mx_wait(&fx, "a..test", &g) == 0);
	UNIT_EXPECT_STR("empty label", dns_status_str(g.r->status), "nxdomain");
	CU_ASSERT_FATAL(mx_wait(&fx, "", &g) == 0);
	UNIT_EXPECT_STR("empty name", dns_status_str(g.r->status), "nxdomain");
	UNIT_EXPECT_INT("nothing reached the forwarder", fx.fwd.queries, 0);

	/* No local data: forwarded to our fake forwarder, which says SERVFAIL. */
	CU_ASSERT_FATAL(mx_wait(&fx, "unknown.test", &g) == 0);
	UNIT_EXPECT_STR("servfail: status", dns_status_str(g.r->status), "tempfail");
	UNIT_EXPECT_INT("servfail: no hosts", g.r->n_mx, 0);
	CU_ASSERT(fx.fwd.queries >= 1);
	CU_ASSERT_PTR_NULL(dns_site_name_for(g.r, "unknown.test"));
	got_reset(&g);
	fixture_done(&fx);
}

static void
test_addrs(void)
{
	struct fixture fx;
	struct got g = {0, 0, NULL};
	struct dns_stats st;
	int before;

	CU_ASSERT_FATAL(fixture_init(&fx, 0, 3000) == 0);

	CU_ASSERT_FATAL(addrs_wait(&fx, "mx1.example.test", &g) == 0);
	UNIT_EXPECT_STR("A+AAAA: status", dns_status_str(g.r->status), "ok");
	UNIT_EXPECT_INT("A+AAAA: count", g.r->n_addrs, 2);
	if (g.r->n_addrs == 2) {
		UNIT_EXPECT_STR("IPv4 first", g.r->addrs[0].text, "127.0.0.1");
		UNIT_EXPECT_INT("family 4", g.r->addrs[0].family, AF_INET);
		UNIT_EXPECT_INT("ss family 4", g.r->addrs[0].ss.ss_family, AF_INET);
		UNIT_EXPECT_STR("then IPv6", g.r->addrs[1].text, "::1");
		UNIT_EXPECT_INT("family 6", g.r->addrs[1].family, AF_INET6);
		CU_ASSERT(memcmp(&((struct sockaddr_in6 *)&g.r->addrs[1].ss)->sin6_addr, &in6addr_loopback, 16) ==
			  0);
	}
	UNIT_EXPECT_INT("rrtype", g.r->rrtype, DNS_TYPE_A);

	CU_ASSERT_FATAL(addrs_wait(&fx, "mx2.example.test", &g) == 0);
	UNIT_EXPECT_STR("two A: status", dns_status_str(g.r->status), "ok");
	UNIT_EXPECT_INT("two A: count", g.r->n_addrs, 2);
	if (g.r->n_addrs == 2) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&g.r->addrs[0].ss;
		char a[2][46];
		snprintf(a[0], sizeof(a[0]), "%s", g.r->addrs[0].text);
		snprintf(a[1], sizeof(a[1]), "%s", g.r->addrs[1].text);
		CU_ASSERT((strcmp(a[0], "127.0.0.2") == 0 && strcmp(a[1], "127.0.0.3") == 0) ||
			  (strcmp(a[0], "127.0.0.3") == 0 && strcmp(a[1], "127.0.0.2") == 0));
		CU_ASSERT(ntohl(sin->sin_addr.s_addr) >> 24 == 127);
		UNIT_EXPECT_INT("port 0", sin->sin_port, 0);
	}

	CU_ASSERT_FATAL(addrs_wait(&fx, "v6only.test", &g) == 0);
	UNIT_EXPECT_STR("AAAA only: status", dns_status_str(g.r->status), "ok");
	UNIT_EXPECT_INT("AAAA only: count", g.r->n_addrs, 1);
	if (g.r->n_addrs == 1)
		UNIT_EXPECT_STR("AAAA only: text", g.r->addrs[0].text, "2001:db8::1");

	CU_ASSERT_FATAL(addrs_wait(&fx, "nullmx.test", &g) == 0);
	UNIT_EXPECT_STR("name without addresses", dns_status_str(g.r->status), "nodata");
	UNIT_EXPECT_INT("no addresses", g.r->n_addrs, 0);

	CU_ASSERT_FATAL(addrs_wait(&fx, "gone.nx.test", &g) == 0);
	UNIT_EXPECT_STR("addrs nxdomain", dns_status_str(g.r->status), "nxdomain");
	UNIT_EXPECT_INT("local answers never reach the forwarder", fx.fwd.queries, 0);

	/* mx0.example.test has no data: it goes out, to our forwarder only. */
	CU_ASSERT_FATAL(addrs_wait(&fx, "mx0.example.test", &g) == 0);
	UNIT_EXPECT_STR("servfail: status", dns_status_str(g.r->status), "tempfail");
	CU_ASSERT(fx.fwd.queries >= 1);

	/*
	 * Failures are not in our cache: asking again starts new lookups
	 * (libunbound may answer those from its own short SERVFAIL memory).
	 */
	dns_resolver_stats(fx.res, &st);
	before = (int)st.lookups;
	CU_ASSERT_FATAL(addrs_wait(&fx, "mx0.example.test", &g) == 0);
	UNIT_EXPECT_STR("servfail again", dns_status_str(g.r->status), "tempfail");
	UNIT_EXPECT_INT("from_cache", g.r->from_cache, 0);
	dns_resolver_stats(fx.res, &st);
	UNIT_EXPECT_INT("new lookups", st.lookups, before + 2);
	got_reset(&g);
	fixture_done(&fx);
}

static void
test_raw_txt(void)
{
	struct fixture fx;
	struct got g = {0, 0, NULL};
	static const unsigned char want[] = "\005hello\005world";

	CU_ASSERT_FATAL(fixture_init(&fx, 0, 3000) == 0);
	dns_resolve(fx.res, "txt.test", DNS_TYPE_TXT, on_result, &g);
	CU_ASSERT_FATAL(run_until(&fx, &g.calls, 1, 5000) == 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g.r);
	UNIT_EXPECT_STR("txt status", dns_status_str(g.r->status), "ok");
	UNIT_EXPECT_INT("txt records", g.r->n_rr, 1);
	if (g.r->n_rr == 1) {
		UNIT_EXPECT_INT("txt len", g.r->rr[0].len, sizeof(want) - 1);
		CU_ASSERT(g.r->rr[0].len == sizeof(want) - 1 && memcmp(g.r->rr[0].data, want, sizeof(want) - 1) == 0);
	}
	UNIT_EXPECT_INT("rrtype", g.r->rrtype, DNS_TYPE_TXT);
	got_reset(&g);
	dns_resolve(fx.res, "example.test", DNS_TYPE_TLSA, on_result, &g);
	CU_ASSERT_FATAL(run_until(&fx, &g.calls, 1, 5000) == 0);
	UNIT_EXPECT_STR("no TLSA", dns_status_str(g.r->status), "nodata");
	UNIT_EXPECT_INT("no TLSA rr", g.r->n_rr, 0);
	got_reset(&g);
	fixture_done(&fx);
}

static void
test_cache(void)
{
	struct fixture fx;
	struct got g = {0, 0, NULL};
	struct dns_stats st0, st1;

	CU_ASSERT_FATAL(fixture_init(&fx, 0, 3000) == 0);
	CU_ASSERT_FATAL(mx_wait(&fx, "example.test", &g) == 0);
	UNIT_EXPECT_INT("first: not cached", g.r->from_cache, 0);
	dns_resolver_stats(fx.res, &st0);
	UNIT_EXPECT_INT("first: one lookup", st0.lookups, 1);
	UNIT_EXPECT_INT("first: no hit", st0.cache_hits, 0);
	UNIT_EXPECT_INT("first: one entry", st0.cache_entries, 1);

	/* Same name, other spelling: one key. */
	got_reset(&g);
	dns_resolve_mx(fx.res, "EXAMPLE.test.", on_result, &g);
	UNIT_EXPECT_INT("a cache hit is not delivered synchronously", g.calls, 0);
	CU_ASSERT_FATAL(run_until(&fx, &g.calls, 1, 5000) == 0);
	UNIT_EXPECT_INT("second: from cache", g.r->from_cache, 1);
	UNIT_EXPECT_STR("second: status", dns_status_str(g.r->status), "ok");
	UNIT_EXPECT_INT("second: n_mx", g.r->n_mx, 3);
	CU_ASSERT(g.r->ttl > 0 && g.r->ttl <= 60);
	dns_resolver_stats(fx.res, &st1);
	UNIT_EXPECT_INT("second: no new lookup", st1.lookups, st0.lookups);
	UNIT_EXPECT_INT("second: one hit", st1.cache_hits, st0.cache_hits + 1);
	UNIT_EXPECT_INT("queries", st1.queries, 2);
	UNIT_EXPECT_INT("ok counter", st1.ok, 2);
	UNIT_EXPECT_INT("pending", st1.pending, 0);

	/* Addresses: A and AAAA are cached separately, a hit needs both. */
	CU_ASSERT_FATAL(addrs_wait(&fx, "mx1.example.test", &g) == 0);
	UNIT_EXPECT_INT("addrs first: not cached", g.r->from_cache, 0);
	CU_ASSERT_FATAL(addrs_wait(&fx, "mx1.example.test", &g) == 0);
	UNIT_EXPECT_INT("addrs second: cached", g.r->from_cache, 1);
	UNIT_EXPECT_INT("addrs second: count", g.r->n_addrs, 2);
	dns_resolver_stats(fx.res, &st1);
	UNIT_EXPECT_INT("lookups: MX + A + AAAA", st1.lookups, 3);
	UNIT_EXPECT_INT("hits", st1.cache_hits, 2);
	UNIT_EXPECT_INT("entries", st1.cache_entries, 3);

	dns_cache_flush(fx.res);
	dns_resolver_stats(fx.res, &st1);
	UNIT_EXPECT_INT("flushed", st1.cache_entries, 0);
	CU_ASSERT_FATAL(mx_wait(&fx, "example.test", &g) == 0);
	UNIT_EXPECT_INT("after flush: not cached", g.r->from_cache, 0);
	got_reset(&g);
	fixture_done(&fx);
}

static void
test_coalesce_and_cancel(void)
{
	struct fixture fx;
	struct got g[4];
	struct dns_query *q;
	struct dns_stats st;
	int i;

	memset(g, 0, sizeof(g));
	CU_ASSERT_FATAL(fixture_init(&fx, 0, 3000) == 0);
	dns_resolve_mx(fx.res, "gmail.test", on_result, &g[0]);
	dns_resolve_mx(fx.res, "gmail.test", on_result, &g[1]);
	q = dns_resolve_mx(fx.res, "gmail.test", on_result, &g[2]);
	dns_resolve_mx(fx.res, "gmail.test", on_result, &g[3]);
	dns_resolve_addrs(fx.res, "mx1.example.test", on_result, &g[3]);
	CU_ASSERT_PTR_NOT_NULL(q);
	dns_cancel(fx.res, &q);
	CU_ASSERT_PTR_NULL(q);
	UNIT_EXPECT_INT("cancel by arg", dns_cancel_arg(fx.res, &g[3]), 2);
	UNIT_EXPECT_INT("cancel by arg, none left", dns_cancel_arg(fx.res, &g[3]), 0);
	dns_resolver_stats(fx.res, &st);
	UNIT_EXPECT_INT("pending", st.pending, 2);
	UNIT_EXPECT_INT("one lookup for four MX queries", st.lookups, 3);
	UNIT_EXPECT_INT("coalesced", st.coalesced, 3);
	/* Wait for both live ones. */
	CU_ASSERT(run_until(&fx, &g[0].calls, 1, 5000) == 0);
	CU_ASSERT(run_until(&fx, &g[1].calls, 1, 5000) == 0);
	/* The cancelled address query's lookups are still running: let them end. */
	for (i = 0; i < 3; i++) {
		dns_resolver_stats(fx.res, &st);
		if (st.cache_entries == 3)
			break;
		uv_run(&fx.loop, UV_RUN_NOWAIT);
		uv_sleep(50);
	}
	UNIT_EXPECT_INT("first", g[0].calls, 1);
	UNIT_EXPECT_INT("second", g[1].calls, 1);
	CU_ASSERT(g[0].seq < g[1].seq); /* answered in the order asked */
	UNIT_EXPECT_INT("cancelled one never called", g[2].calls, 0);
	UNIT_EXPECT_INT("cancelled by arg never called", g[3].calls, 0);
	if (g[0].r && g[1].r) {
		UNIT_EXPECT_INT("shared answer", g[0].r->n_mx, 5);
		UNIT_EXPECT_INT("shared answer", g[1].r->n_mx, 5);
	}
	dns_resolver_stats(fx.res, &st);
	UNIT_EXPECT_INT("cancelled counter", st.cancelled, 3);
	UNIT_EXPECT_INT("pending after", st.pending, 0);
	/* The cancelled address lookups still ran and filled the cache. */
	UNIT_EXPECT_INT("cache entries", st.cache_entries, 3);
	for (i = 0; i < 4; i++)
		got_reset(&g[i]);
	fixture_done(&fx);
}

/* A callback that starts a new query and cancels another one. */
struct chain {
	struct fixture *fx;
	struct dns_query *victim;
	struct got inner, victim_got;
	int calls;
};

static void
on_chain(const struct dns_result *r, void *arg)
{
	struct chain *c = arg;
	(void)r;
	c->calls++;
	dns_cancel(c->fx->res, &c->victim);
	dns_resolve_addrs(c->fx->res, "mx2.example.test", on_result, &c->inner);
}

static void
test_callback_reentry(void)
{
	struct fixture fx;
	struct chain c;

	memset(&c, 0, sizeof(c));
	CU_ASSERT_FATAL(fixture_init(&fx, 0, 3000) == 0);
	c.fx = &fx;
	/* Both cached so both are ready in the same round. */
	CU_ASSERT_FATAL(mx_wait(&fx, "example.test", &c.inner) == 0);
	got_reset(&c.inner);
	dns_resolve_mx(fx.res, "example.test", on_chain, &c);
	c.victim = dns_resolve_mx(fx.res, "example.test", on_result, &c.victim_got);
	CU_ASSERT_FATAL(run_until(&fx, &c.calls, 1, 5000) == 0);
	/* The inner answer may already be in: it is local data. */
	CU_ASSERT_FATAL(run_until(&fx, &c.inner.calls, 1, 5000) == 0);
	UNIT_EXPECT_STR("query from a callback", dns_status_str(c.inner.r->status), "ok");
	UNIT_EXPECT_INT("victim cancelled from a callback", c.victim_got.calls, 0);
	CU_ASSERT_PTR_NULL(c.victim);
	got_reset(&c.inner);
	got_reset(&c.victim_got);
	fixture_done(&fx);
}

static void
test_timeout(void)
{
	struct fixture fx;
	struct got g = {0, 0, NULL};
	struct dns_stats st;
	uint64_t t0;

	/* A forwarder that never answers, and a 300 ms deadline. */
	CU_ASSERT_FATAL(fixture_init(&fx, 1, 300) == 0);
	uv_update_time(&fx.loop);
	t0 = uv_now(&fx.loop);
	dns_resolve_mx(fx.res, "silent.test", on_result, &g);
	CU_ASSERT_FATAL(run_until(&fx, &g.calls, 1, 5000) == 0);
	UNIT_EXPECT_STR("timeout: status", dns_status_str(g.r->status), "tempfail");
	UNIT_EXPECT_STR("timeout: why", g.r->why, "timeout");
	CU_ASSERT(uv_now(&fx.loop) - t0 >= 250 && uv_now(&fx.loop) - t0 < 3000);
	dns_resolver_stats(fx.res, &st);
	UNIT_EXPECT_INT("timeouts", st.timeouts, 1);
	UNIT_EXPECT_INT("tempfail", st.tempfail, 1);
	CU_ASSERT(fx.fwd.queries >= 1);
	/* A query still waiting at free time: dropped, its callback never runs. */
	got_reset(&g);
	dns_resolve_mx(fx.res, "silent2.test", on_result, &g);
	got_reset(&g);
	fixture_done(&fx);
	UNIT_EXPECT_INT("dropped at free", g.calls, 0);
}

static void
test_bad_options(void)
{
	static const struct {
		const char *what;
		const char *fwd, *zone, *data, *want;
	} cases[] = {
		{"bad forwarder", "not-an-address", NULL, NULL, "forwarder"},
		{"zone without type", NULL, "lonely.test.", NULL, "local zone"},
		{"bad zone type", NULL, "z.test. wobbly", NULL, "local zone"},
		{"bad data", NULL, NULL, "this is not a record", "local data"},
	};
	size_t i;
	uv_loop_t loop;

	CU_ASSERT_FATAL(uv_loop_init(&loop) == 0);
	for (i = 0; i < KUMO_NELEM(cases); i++) {
		const char *f[] = {cases[i].fwd, NULL}, *z[] = {cases[i].zone, NULL}, *d[] = {cases[i].data, NULL};
		struct dns_options o;
		struct dns_resolver *res;
		char *err = NULL;

		memset(&o, 0, sizeof(o));
		o.forwarders = f;
		o.local_zones = z;
		o.local_data = d;
		res = dns_resolver_new(&loop, &o, &err);
		if (res != NULL)
			fprintf(stderr, "  %s: accepted\n", cases[i].what);
		CU_ASSERT_PTR_NULL(res);
		dns_resolver_free(&res);
		CU_ASSERT_PTR_NOT_NULL(err);
		if (err && strstr(err, cases[i].want) == NULL)
			fprintf(stderr, "  %s: error \"%s\" lacks \"%s\"\n", cases[i].what, err, cases[i].want);
		CU_ASSERT(err != NULL && strstr(err, cases[i].want) != NULL);
		free(err);
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	UNIT_EXPECT_INT("uv_loop_close", uv_loop_close(&loop), 0);
}

/* Many names at once, duplicates coalesced, and a small cache that evicts. */
static void
test_many(void)
{
	enum { N = 300, CAP = 100 };
	struct fixture fx;
	struct got *g = xcalloc(2 * N, sizeof(*g));
	char **data = xcalloc(N + 1, sizeof(char *)), fwd[64], name[64], *err = NULL;
	const char *fwds[] = {fwd, NULL};
	struct dns_options o;
	struct dns_stats st;
	int i, done = 0, ok = 0;

	memset(&fx, 0, sizeof(fx));
	CU_ASSERT_FATAL(uv_loop_init(&fx.loop) == 0 && fwd_start(&fx.loop, &fx.fwd, 0) == 0);
	uv_timer_init(&fx.loop, &fx.guard);
	fx.guard.data = &fx;
	for (i = 0; i < N; i++)
		data[i] = xasprintf("h%d.many.test. A 127.0.%d.%d", i, i / 250, i % 250 + 1);
	snprintf(fwd, sizeof(fwd), "127.0.0.1@%d", fx.fwd.port);
	memset(&o, 0, sizeof(o));
	o.forwarders = fwds;
	o.local_data = (const char *const *)data;
	o.cache_max_entries = CAP;
	o.no_aaaa = 1;
	o.timeout_ms = 5000;
	fx.res = dns_resolver_new(&fx.loop, &o, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fx.res);
	for (i = 0; i < 2 * N; i++) {
		snprintf(name, sizeof(name), "h%d.many.test", i % N);
		dns_resolve_addrs(fx.res, name, on_result, &g[i]);
	}
	fx.expired = 0;
	uv_timer_start(&fx.guard, on_guard, 10000, 0);
	while (done < 2 * N && !fx.expired) {
		uv_run(&fx.loop, UV_RUN_ONCE);
		for (done = 0, i = 0; i < 2 * N; i++)
			done += g[i].calls;
	}
	uv_timer_stop(&fx.guard);
	UNIT_EXPECT_INT("callbacks", done, 2 * N);
	for (i = 0; i < 2 * N; i++) {
		char want[32];
		snprintf(want, sizeof(want), "127.0.%d.%d", (i % N) / 250, (i % N) % 250 + 1);
		if (g[i].r && g[i].r->status == DNS_OK && g[i].r->n_addrs == 1 &&
		    strcmp(g[i].r->addrs[0].text, want) == 0)
			ok++;
		got_reset(&g[i]);
	}
	UNIT_EXPECT_INT("right answers", ok, 2 * N);
	dns_resolver_stats(fx.res, &st);
	UNIT_EXPECT_INT("one lookup per name", st.lookups, N);
	UNIT_EXPECT_INT("duplicates coalesced", st.coalesced, N);
	UNIT_EXPECT_INT("cache capped", st.cache_entries, CAP);
	UNIT_EXPECT_INT("nothing reached the forwarder", fx.fwd.queries, 0);

	/* The oldest answers were evicted, the newest are still there. */
	dns_resolve_addrs(fx.res, "h0.many.test", on_result, &g[0]);
	dns_resolve_addrs(fx.res, "h299.many.test", on_result, &g[1]);
	CU_ASSERT(run_until(&fx, &g[0].calls, 1, 5000) == 0);
	CU_ASSERT(run_until(&fx, &g[1].calls, 1, 5000) == 0);
	if (g[0].r && g[1].r) {
		UNIT_EXPECT_INT("evicted: looked up again", g[0].r->from_cache, 0);
		UNIT_EXPECT_INT("newest: cached", g[1].r->from_cache, 1);
	}
	got_reset(&g[0]);
	got_reset(&g[1]);
	fixture_done(&fx);
	for (i = 0; i < N; i++)
		free(data[i]);
	free(data);
	free(g);
}

/*
 * DNSSEC against a signed zone served by nsd on loopback. Runs only when
 * tests/integration/dns-dnssec.sh sets the environment (it starts nsd);
 * otherwise it passes as skipped.
 */
struct sec_case {
	const char *what, *name;
	int kind; /* 0 MX, 1 addrs, else a raw type */
	enum dns_status want;
	int secure;
	size_t n; /* records, hosts or addresses */
};

static int
run_sec_cases(const char *fwd, const char *ta, const struct sec_case *cases, size_t n_cases)
{
	const char *fwds[] = {fwd, NULL};
	struct dns_options o;
	struct fixture fx;
	size_t i;
	char *err = NULL;
	int failed = 0;

	memset(&fx, 0, sizeof(fx));
	if (uv_loop_init(&fx.loop) != 0 || fwd_start(&fx.loop, &fx.fwd, 1) != 0)
		return -1;
	uv_timer_init(&fx.loop, &fx.guard);
	fx.guard.data = &fx;
	memset(&o, 0, sizeof(o));
	o.forwarders = fwds;
	o.trust_anchor_file = ta;
	o.timeout_ms = 8000;
	fx.res = dns_resolver_new(&fx.loop, &o, &err);
	if (fx.res == NULL) {
		fprintf(stderr, "  dns_resolver_new: %s\n", err ? err : "?");
		free(err);
		return -1;
	}
	for (i = 0; i < n_cases; i++) {
		const struct sec_case *c = &cases[i];
		struct got g = {0, 0, NULL};
		size_t got_n;

		if (c->kind == 0)
			dns_resolve_mx(fx.res, c->name, on_result, &g);
		else if (c->kind == 1)
			dns_resolve_addrs(fx.res, c->name, on_result, &g);
		else
			dns_resolve(fx.res, c->name, c->kind, on_result, &g);
		if (run_until(&fx, &g.calls, 1, 10000) < 0 || g.r == NULL) {
			failed++;
			continue;
		}
		got_n = c->kind == 0 ? g.r->n_mx : c->kind == 1 ? g.r->n_addrs : g.r->n_rr;
		fprintf(stderr, "  %s: %s secure=%d n=%zu (%s)\n", c->what, dns_status_str(g.r->status),
			g.r->secure, got_n, g.r->why);
		UNIT_EXPECT_STR(c->what, dns_status_str(g.r->status), dns_status_str(c->want));
		UNIT_EXPECT_INT(c->what, g.r->secure, c->secure);
		UNIT_EXPECT_INT(c->what, got_n, c->n);
		if (g.r->status != c->want || g.r->secure != c->secure || got_n != c->n)
			failed++;
		got_reset(&g);
	}
	fixture_done(&fx);
	return failed;
}

static void
test_dnssec(void)
{
	static const struct sec_case good[] = {
		{"signed MX", "example.test", 0, DNS_OK, 1, 1},
		{"signed A+AAAA", "mx.example.test", 1, DNS_OK, 1, 2},
		{"signed TLSA", "_25._tcp.mx.example.test", DNS_TYPE_TLSA, DNS_OK, 1, 1},
		{"signed TXT", "example.test", DNS_TYPE_TXT, DNS_OK, 1, 1},
		{"signed no MX", "nomx.example.test", 0, DNS_NODATA, 1, 1},
		{"signed nxdomain", "missing.example.test", 0, DNS_NXDOMAIN, 1, 0},
		{"tampered A", "bad.example.test", 1, DNS_BOGUS, 0, 0},
		{"tampered A, raw", "bad.example.test", DNS_TYPE_A, DNS_BOGUS, 0, 0},
	};
	static const struct sec_case wrong_anchor[] = {
		{"MX, wrong anchor", "example.test", 0, DNS_BOGUS, 0, 0},
		{"addrs, wrong anchor", "mx.example.test", 1, DNS_BOGUS, 0, 0},
	};
	const char *fwd = getenv("KUMO_DNS_DNSSEC_FWD");
	const char *ta = getenv("KUMO_DNS_DNSSEC_TA");
	const char *bad_ta = getenv("KUMO_DNS_DNSSEC_BADTA");

	if (fwd == NULL || ta == NULL) {
		CU_PASS("skipped: run tests/integration/dns-dnssec.sh");
		return;
	}
	UNIT_EXPECT_INT("good anchor: failed cases", run_sec_cases(fwd, ta, good, KUMO_NELEM(good)), 0);
	if (bad_ta != NULL)
		UNIT_EXPECT_INT("wrong anchor: failed cases",
				run_sec_cases(fwd, bad_ta, wrong_anchor, KUMO_NELEM(wrong_anchor)), 0);
}

static void
test_result_dup(void)
{
	struct dns_mx mx[] = {{"a.test", 1}};
	unsigned char raw[] = {1, 2, 3};
	struct dns_rdata rr[] = {{raw, sizeof(raw)}};
	struct dns_result r, *c;

	memset(&r, 0, sizeof(r));
	r.status = DNS_OK;
	r.name = (char[]){"a.test"};
	r.why = "ok";
	r.mx = mx;
	r.n_mx = 1;
	r.rr = rr;
	r.n_rr = 1;
	c = dns_result_dup(&r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(c->mx != mx && c->name != r.name && c->rr != rr && c->rr[0].data != raw);
	UNIT_EXPECT_STR("dup host", c->mx[0].host, "a.test");
	UNIT_EXPECT_STR("dup why", c->why, "ok");
	CU_ASSERT(c->rr[0].len == 3 && memcmp(c->rr[0].data, raw, 3) == 0);
	dns_result_free(&c);
	CU_ASSERT_PTR_NULL(c);
	dns_result_free(&c);
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{"site_name table", test_site_name_table},
		{"site_name_for", test_site_name_for},
		{"status_str", test_status_str},
		{"result dup", test_result_dup},
		{"MX order", test_mx_order},
		{"MX special answers", test_mx_special},
		{"addresses", test_addrs},
		{"raw TXT and TLSA", test_raw_txt},
		{"cache", test_cache},
		{"coalesce and cancel", test_coalesce_and_cancel},
		{"callback re-entry", test_callback_reentry},
		{"timeout", test_timeout},
		{"bad options", test_bad_options},
		{"many queries, small cache", test_many},
		{"DNSSEC (with nsd)", test_dnssec},
		{NULL, NULL},
	};
	return unit_run("dns", tests);
}
