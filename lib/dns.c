/*
 * dns.c: the asynchronous resolver on the libuv loop, its answer cache, and
 * the site_name of an MX set.
 *
 * Layers, bottom up:
 * - a lookup is one libunbound query (name, type) in flight; queries asking
 *   the same thing at the same time wait on the same lookup;
 * - an answer is the outcome of one lookup (status, rdata, TTL), refcounted,
 *   shared by the cache and by the queries that waited for it;
 * - a query is one caller's request: one answer for MX and raw queries, two
 *   (A and AAAA) for address queries. When all its answers are in (or its
 *   deadline passed) it moves to the ready list, and the ready list is
 *   delivered outside libunbound's ub_process() and outside the caller's
 *   dns_resolve_*() call, so a callback may do anything but free the
 *   resolver.
 * The resolver owns three libuv handles: the poll on ub_fd(), an idle handle
 * that delivers the ready list, and a timer that enforces query deadlines.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <unbound.h>
#include <uv.h>

#include "kumo.h"
#include "buf.h"
#include "log.h"
#include "dns.h"

#define DEFAULT_MAX_TTL 3600
#define DEFAULT_NEG_TTL 300
#define DEFAULT_MAX_ENTRIES 10000
#define DEFAULT_TIMEOUT_MS 30000
#define TICK_MS 200
#define CACHE_BUCKETS 1024 /* a power of two */
#define MAX_NAME 253

/* One libunbound lookup's outcome, shared by the cache and by waiters. */
struct answer {
	int refs;
	enum dns_status status; /* DNS_OK, DNS_NODATA, DNS_NXDOMAIN, DNS_TEMPFAIL, DNS_BOGUS */
	int secure;
	int rcode;
	uint32_t ttl;
	char *why;
	struct dns_rdata *rr;
	size_t n_rr;
};

struct lookup;
struct dns_query;

/* One answer a query waits for. */
struct slot {
	struct dns_query *q;
	int rrtype;
	struct lookup *lk;	/* while waiting */
	struct answer *ans;	/* once answered */
	uint32_t ttl;		/* the answer's TTL for this query: clamped, or what is left in the cache */
	struct slot *wnext, *wprev; /* in lk's waiter list */
};

enum query_kind { KIND_MX, KIND_ADDRS, KIND_RAW };

struct dns_query {
	struct dns_query *next, *prev; /* in res->waiting or res->ready */
	struct dns_resolver *res;
	enum query_kind kind;
	char *name; /* normalized; NULL if the name was invalid */
	int rrtype;
	dns_cb cb;
	void *arg;
	uint64_t deadline; /* uv_now() ms */
	struct slot slots[2];
	int n_slots;
	int remaining; /* slots still waiting */
	int is_ready;
	int timed_out;
	int all_cached;
};

struct lookup {
	struct lookup *next, *prev; /* in res->lookups */
	struct lookup *hnext;	    /* in res->lbuckets */
	struct dns_resolver *res;
	char *name;
	int rrtype;
	int async_id;
	int started;
	struct slot *waiters, *wtail; /* in the order they came: answered in that order */
};

struct cache_entry {
	struct cache_entry *hnext;	/* hash chain */
	struct cache_entry *onext, *oprev; /* insertion order, oldest first */
	char *name;
	int rrtype;
	uint64_t expires; /* uv_now() ms */
	struct answer *ans;
};

struct dns_resolver {
	uv_loop_t *loop;
	struct ub_ctx *ub;
	uv_poll_t poll;
	uv_idle_t idle;
	uv_timer_t timer;
	int open_handles;
	int timer_running, idle_running;
	int delivering;

	struct dns_query *waiting, *ready, *ready_tail;
	size_t n_waiting, n_ready;
	struct lookup *lookups;
	struct lookup *lbuckets[CACHE_BUCKETS]; /* the same lookups by (name, type) */

	struct cache_entry *buckets[CACHE_BUCKETS];
	struct cache_entry *oldest, *newest;
	size_t n_entries;

	uint32_t min_ttl, max_ttl, neg_ttl;
	size_t max_entries;
	unsigned timeout_ms;
	int no_aaaa;

	struct dns_stats st;
};

const char *
dns_status_str(enum dns_status st)
{
	switch (st) {
	case DNS_OK:
		return "ok";
	case DNS_NODATA:
		return "nodata";
	case DNS_NULL_MX:
		return "null-mx";
	case DNS_NXDOMAIN:
		return "nxdomain";
	case DNS_TEMPFAIL:
		return "tempfail";
	case DNS_BOGUS:
		return "bogus";
	}
	return "unknown";
}

/* ---- names ---- */

/*
 * Normalize a name for queries and cache keys: lowercase, no trailing dot.
 * Returns an allocated string, or NULL if the name is empty, too long, has
 * an empty or too long label, or holds bytes libunbound's parser would
 * treat specially (controls, space, backslash) or non-ASCII bytes.
 */
static char *
name_normalize(const char *in)
{
	size_t len, i, label = 0;
	char *out;

	if (in == NULL)
		return NULL;
	len = strlen(in);
	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0 || len > MAX_NAME)
		return NULL;
	out = xmalloc(len + 1);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c <= 0x20 || c >= 0x7f || c == '\\' || c == '"')
			goto bad;
		if (c == '.') {
			if (label == 0)
				goto bad;
			label = 0;
		} else if (++label > 63) {
			goto bad;
		}
		out[i] = (char)tolower(c);
	}
	out[len] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/*
 * Decode an uncompressed wire-format name at p[0..len) into text (lowercase,
 * no trailing dot; "" for the root) in out[0..outsz). Returns the bytes
 * consumed, or -1 if malformed or holding bytes we refuse in host names.
 */
static int
wire_name(const unsigned char *p, size_t len, char *out, size_t outsz)
{
	size_t pos = 0, o = 0;

	for (;;) {
		size_t l, i;
		if (pos >= len)
			return -1;
		l = p[pos++];
		if (l == 0)
			break;
		if (l > 63 || pos + l > len)
			return -1;
		if (o != 0) {
			if (o + 1 >= outsz)
				return -1;
			out[o++] = '.';
		}
		for (i = 0; i < l; i++) {
			unsigned char c = p[pos + i];
			if (c <= 0x20 || c >= 0x7f || c == '.' || c == '\\' || c == '"')
				return -1;
			if (o + 1 >= outsz)
				return -1;
			out[o++] = (char)tolower(c);
		}
		pos += l;
	}
	out[o] = '\0';
	return (int)pos;
}

/* ---- answers ---- */

static struct answer *
answer_new(enum dns_status status, int rcode, const char *why)
{
	struct answer *a = xcalloc(1, sizeof(*a));
	a->refs = 1;
	a->status = status;
	a->rcode = rcode;
	a->why = xstrdup(why);
	return a;
}

static void
answer_unref(struct answer **ap)
{
	struct answer *a = *ap;
	size_t i;

	if (a == NULL)
		return;
	*ap = NULL;
	if (--a->refs > 0)
		return;
	for (i = 0; i < a->n_rr; i++)
		free(a->rr[i].data);
	free(a->rr);
	free(a->why);
	free(a);
}

/* Turn libunbound's result (or error) into an answer; frees the result. */
static struct answer *
answer_from_ub(int err, struct ub_result *r)
{
	struct answer *a;
	size_t n, i;

	if (err != 0 || r == NULL) {
		a = answer_new(DNS_TEMPFAIL, -1, err ? ub_strerror(err) : "no result");
		if (r)
			ub_resolve_free(r);
		return a;
	}
	/* A bogus answer may still carry data: check it first. */
	if (r->bogus) {
		/* why_bogus reads "validation failure <name type class>: ..." */
		a = answer_new(DNS_BOGUS, r->rcode, r->why_bogus ? r->why_bogus : "validation failure");
	} else if (r->rcode == 3 || r->nxdomain) {
		a = answer_new(DNS_NXDOMAIN, 3, "nxdomain");
	} else if (r->rcode != 0) {
		char *why = r->rcode == 2 ? xstrdup("servfail") : xasprintf("rcode %d", r->rcode);
		a = answer_new(DNS_TEMPFAIL, r->rcode, why);
		free(why);
	} else if (r->havedata && r->data != NULL && r->data[0] != NULL) {
		a = answer_new(DNS_OK, 0, "ok");
		for (n = 0; r->data[n] != NULL; n++)
			;
		a->rr = xcalloc(n, sizeof(*a->rr));
		for (i = 0; i < n; i++) {
			size_t l = r->len[i] > 0 ? (size_t)r->len[i] : 0;
			a->rr[i].data = xmalloc(l ? l : 1);
			if (l)
				memcpy(a->rr[i].data, r->data[i], l);
			a->rr[i].len = l;
		}
		a->n_rr = n;
	} else {
		a = answer_new(DNS_NODATA, 0, "nodata");
	}
	a->secure = r->secure && !r->bogus;
	a->ttl = r->ttl > 0 ? (uint32_t)r->ttl : 0;
	ub_resolve_free(r);
	return a;
}

/* ---- lists ---- */

static void
qlist_remove(struct dns_resolver *res, struct dns_query *q)
{
	if (q->is_ready) {
		if (q->prev)
			q->prev->next = q->next;
		else
			res->ready = q->next;
		if (q->next)
			q->next->prev = q->prev;
		else
			res->ready_tail = q->prev;
		res->n_ready--;
	} else {
		if (q->prev)
			q->prev->next = q->next;
		else
			res->waiting = q->next;
		if (q->next)
			q->next->prev = q->prev;
		res->n_waiting--;
	}
	q->next = q->prev = NULL;
}

static void
start_idle(struct dns_resolver *res);

/* Move q from the waiting list to the tail of the ready list. */
static void
query_make_ready(struct dns_query *q)
{
	struct dns_resolver *res = q->res;

	qlist_remove(res, q);
	q->is_ready = 1;
	q->prev = res->ready_tail;
	if (res->ready_tail)
		res->ready_tail->next = q;
	else
		res->ready = q;
	res->ready_tail = q;
	res->n_ready++;
	start_idle(res);
}

static void
slot_unlink(struct slot *s)
{
	if (s->lk == NULL)
		return;
	if (s->wprev)
		s->wprev->wnext = s->wnext;
	else
		s->lk->waiters = s->wnext;
	if (s->wnext)
		s->wnext->wprev = s->wprev;
	else
		s->lk->wtail = s->wprev;
	s->wnext = s->wprev = NULL;
	s->lk = NULL;
}

static void
query_free(struct dns_query *q)
{
	int i;

	for (i = 0; i < q->n_slots; i++) {
		slot_unlink(&q->slots[i]);
		answer_unref(&q->slots[i].ans);
	}
	free(q->name);
	free(q);
}

/* ---- cache ---- */

static size_t
cache_hash(const char *name, int rrtype)
{
	size_t h = 5381u + (size_t)rrtype;
	for (; *name; name++)
		h = h * 33u + (unsigned char)*name;
	return h & (CACHE_BUCKETS - 1);
}

static void
cache_remove(struct dns_resolver *res, struct cache_entry *e)
{
	struct cache_entry **pp = &res->buckets[cache_hash(e->name, e->rrtype)];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	if (e->oprev)
		e->oprev->onext = e->onext;
	else
		res->oldest = e->onext;
	if (e->onext)
		e->onext->oprev = e->oprev;
	else
		res->newest = e->oprev;
	res->n_entries--;
	answer_unref(&e->ans);
	free(e->name);
	free(e);
}

/* A live cached answer for (name, type) with a new reference, or NULL. */
static struct answer *
cache_get(struct dns_resolver *res, const char *name, int rrtype, uint32_t *ttl_r)
{
	struct cache_entry *e;
	uint64_t now = uv_now(res->loop);

	for (e = res->buckets[cache_hash(name, rrtype)]; e; e = e->hnext) {
		if (e->rrtype != rrtype || strcmp(e->name, name) != 0)
			continue;
		if (e->expires <= now) {
			cache_remove(res, e);
			return NULL;
		}
		*ttl_r = (uint32_t)((e->expires - now + 999) / 1000);
		e->ans->refs++;
		return e->ans;
	}
	return NULL;
}

/* The TTL an answer is cached for (seconds), 0 for not at all. */
static uint32_t
cache_ttl(const struct dns_resolver *res, const struct answer *a)
{
	uint32_t ttl = a->ttl;

	switch (a->status) {
	case DNS_OK:
		if (ttl > res->max_ttl)
			ttl = res->max_ttl;
		break;
	case DNS_NODATA:
	case DNS_NXDOMAIN:
		if (ttl > res->neg_ttl)
			ttl = res->neg_ttl;
		break;
	default:
		return 0; /* failures are never cached */
	}
	if (ttl < res->min_ttl)
		ttl = res->min_ttl;
	return ttl;
}

static void
cache_put(struct dns_resolver *res, const char *name, int rrtype, struct answer *a)
{
	struct cache_entry *e, *next;
	uint32_t ttl = cache_ttl(res, a);
	uint64_t now = uv_now(res->loop);
	size_t h;

	if (ttl == 0)
		return;
	for (e = res->buckets[cache_hash(name, rrtype)]; e; e = next) {
		next = e->hnext;
		if (e->rrtype == rrtype && strcmp(e->name, name) == 0)
			cache_remove(res, e);
	}
	if (res->n_entries >= res->max_entries) {
		/* Expired entries first, then the oldest ones. */
		for (e = res->oldest; e; e = next) {
			next = e->onext;
			if (e->expires <= now)
				cache_remove(res, e);
		}
		while (res->n_entries >= res->max_entries && res->oldest)
			cache_remove(res, res->oldest);
	}
	e = xcalloc(1, sizeof(*e));
	e->name = xstrdup(name);
	e->rrtype = rrtype;
	e->expires = now + (uint64_t)ttl * 1000;
	e->ans = a;
	a->refs++;
	h = cache_hash(name, rrtype);
	e->hnext = res->buckets[h];
	res->buckets[h] = e;
	e->oprev = res->newest;
	if (res->newest)
		res->newest->onext = e;
	else
		res->oldest = e;
	res->newest = e;
	res->n_entries++;
}

void
dns_cache_flush(struct dns_resolver *res)
{
	while (res && res->oldest)
		cache_remove(res, res->oldest);
}

/* ---- results ---- */

static int
mx_cmp(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;
	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return strcmp(x->host, y->host);
}

/* Fill r's MX fields from an MX answer for name. */
static void
result_mx(struct dns_result *r, const struct answer *a, const char *name)
{
	size_t i, n = 0, roots = 0;
	char host[MAX_NAME + 2];

	if (a->status == DNS_NODATA) {
		r->mx = xcalloc(1, sizeof(*r->mx));
		r->mx[0].host = xstrdup(name);
		r->mx[0].pref = 0;
		r->n_mx = 1;
		return;
	}
	if (a->status != DNS_OK)
		return;
	r->mx = xcalloc(a->n_rr, sizeof(*r->mx));
	for (i = 0; i < a->n_rr; i++) {
		const unsigned char *p = a->rr[i].data;
		size_t len = a->rr[i].len, j;
		int used, dup = 0;

		if (len < 3)
			continue;
		used = wire_name(p + 2, len - 2, host, sizeof(host));
		if (used < 0 || (size_t)used != len - 2)
			continue;
		if (host[0] == '\0') {
			roots++;
			continue;
		}
		for (j = 0; j < n; j++) {
			if (strcmp(r->mx[j].host, host) == 0) {
				/* Listed twice: the better preference wins. */
				if (((p[0] << 8) | p[1]) < r->mx[j].pref)
					r->mx[j].pref = (p[0] << 8) | p[1];
				dup = 1;
			}
		}
		if (dup)
			continue;
		r->mx[n].host = xstrdup(host);
		r->mx[n].pref = (p[0] << 8) | p[1];
		n++;
	}
	r->n_mx = n;
	if (n == 0) {
		free(r->mx);
		r->mx = NULL;
		if (roots > 0) {
			/* RFC 7505: a lone "." MX says the domain takes no mail. */
			r->status = DNS_NULL_MX;
			r->why = "null mx";
		} else {
			r->status = DNS_TEMPFAIL;
			r->why = "no usable mx record";
		}
		return;
	}
	qsort(r->mx, n, sizeof(*r->mx), mx_cmp);
}

static void
add_addrs(struct dns_result *r, const struct answer *a, int rrtype)
{
	size_t i;

	if (a == NULL || a->status != DNS_OK)
		return;
	r->addrs = xreallocarray(r->addrs, r->n_addrs + a->n_rr, sizeof(*r->addrs));
	for (i = 0; i < a->n_rr; i++) {
		struct dns_addr *d = &r->addrs[r->n_addrs];
		memset(d, 0, sizeof(*d));
		if (rrtype == DNS_TYPE_A && a->rr[i].len == 4) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&d->ss;
			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, a->rr[i].data, 4);
			d->family = AF_INET;
			inet_ntop(AF_INET, &sin->sin_addr, d->text, sizeof(d->text));
		} else if (rrtype == DNS_TYPE_AAAA && a->rr[i].len == 16) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&d->ss;
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, a->rr[i].data, 16);
			d->family = AF_INET6;
			inet_ntop(AF_INET6, &sin6->sin6_addr, d->text, sizeof(d->text));
		} else {
			continue;
		}
		r->n_addrs++;
	}
}

static int
is_failure(enum dns_status st)
{
	return st == DNS_TEMPFAIL || st == DNS_BOGUS;
}

/* Build the caller's result for a finished query. */
static void
result_build(struct dns_result *r, struct dns_query *q)
{
	const struct answer *a = q->slots[0].ans;
	const struct answer *b = q->n_slots > 1 ? q->slots[1].ans : NULL;
	uint32_t ta = q->slots[0].ttl, tb = q->slots[1].ttl;
	size_t i;

	memset(r, 0, sizeof(*r));
	r->name = q->name;
	r->rrtype = q->rrtype;
	r->from_cache = q->all_cached;
	if (q->name == NULL) {
		r->status = DNS_NXDOMAIN;
		r->rcode = -1;
		r->why = "invalid name";
		return;
	}
	if (q->timed_out) {
		r->status = DNS_TEMPFAIL;
		r->rcode = -1;
		r->why = "timeout";
		return;
	}
	r->status = a->status;
	r->secure = a->secure;
	r->rcode = a->rcode;
	r->why = a->why;
	r->ttl = ta;
	switch (q->kind) {
	case KIND_MX:
		result_mx(r, a, q->name);
		break;
	case KIND_RAW:
		if (a->status == DNS_OK) {
			r->rr = xcalloc(a->n_rr, sizeof(*r->rr));
			for (i = 0; i < a->n_rr; i++) {
				r->rr[i].data = a->rr[i].data; /* borrowed: freed by the answer */
				r->rr[i].len = a->rr[i].len;
			}
			r->n_rr = a->n_rr;
		}
		break;
	case KIND_ADDRS:
		if (b != NULL) {
			const struct answer *pick = a;
			if (a->status == DNS_BOGUS || b->status == DNS_BOGUS)
				pick = a->status == DNS_BOGUS ? a : b;
			else if (a->status == DNS_OK || b->status == DNS_OK)
				pick = a->status == DNS_OK ? a : b;
			else if (a->status == DNS_NXDOMAIN || b->status == DNS_NXDOMAIN)
				pick = a->status == DNS_NXDOMAIN ? a : b;
			else if (is_failure(a->status) || is_failure(b->status))
				pick = is_failure(a->status) ? a : b;
			r->status = pick->status;
			r->rcode = pick->rcode;
			r->why = pick->why;
			if (r->status == DNS_OK) {
				/* Secure only if every non-failed part is. */
				r->secure = 1;
				r->ttl = UINT32_MAX;
				if (!is_failure(a->status)) {
					r->secure &= a->secure;
					r->ttl = ta;
				}
				if (!is_failure(b->status)) {
					r->secure &= b->secure;
					if (tb < r->ttl)
						r->ttl = tb;
				}
			} else {
				r->secure = pick->secure;
				r->ttl = pick == a ? ta : tb;
			}
		}
		if (r->status == DNS_OK) {
			add_addrs(r, a, DNS_TYPE_A);
			add_addrs(r, b, DNS_TYPE_AAAA);
			if (r->n_addrs == 0) {
				r->status = DNS_TEMPFAIL;
				r->why = "no usable address record";
			}
		}
		break;
	}
}

/* Free what result_build() allocated (the rest is borrowed). */
static void
result_release(struct dns_result *r)
{
	size_t i;

	for (i = 0; i < r->n_mx; i++)
		free(r->mx[i].host);
	free(r->mx);
	free(r->addrs);
	free(r->rr);
}

struct result_copy {
	struct dns_result r; /* first: the public pointer is to it */
	char *why;
};

struct dns_result *
dns_result_dup(const struct dns_result *r)
{
	struct result_copy *c = xcalloc(1, sizeof(*c));
	size_t i;

	c->r = *r;
	c->r.name = r->name ? xstrdup(r->name) : NULL;
	c->why = xstrdup(r->why ? r->why : "");
	c->r.why = c->why;
	c->r.mx = NULL;
	c->r.addrs = NULL;
	c->r.rr = NULL;
	if (r->n_mx) {
		c->r.mx = xcalloc(r->n_mx, sizeof(*r->mx));
		for (i = 0; i < r->n_mx; i++) {
			c->r.mx[i].host = xstrdup(r->mx[i].host);
			c->r.mx[i].pref = r->mx[i].pref;
		}
	}
	if (r->n_addrs) {
		c->r.addrs = xcalloc(r->n_addrs, sizeof(*r->addrs));
		memcpy(c->r.addrs, r->addrs, r->n_addrs * sizeof(*r->addrs));
	}
	if (r->n_rr) {
		c->r.rr = xcalloc(r->n_rr, sizeof(*r->rr));
		for (i = 0; i < r->n_rr; i++) {
			c->r.rr[i].data = xmalloc(r->rr[i].len ? r->rr[i].len : 1);
			if (r->rr[i].len)
				memcpy(c->r.rr[i].data, r->rr[i].data, r->rr[i].len);
			c->r.rr[i].len = r->rr[i].len;
		}
	}
	return &c->r;
}

void
dns_result_free(struct dns_result **rp)
{
	struct result_copy *c;
	size_t i;

	if (rp == NULL || *rp == NULL)
		return;
	c = (struct result_copy *)*rp;
	*rp = NULL;
	for (i = 0; i < c->r.n_mx; i++)
		free(c->r.mx[i].host);
	free(c->r.mx);
	free(c->r.addrs);
	for (i = 0; i < c->r.n_rr; i++)
		free(c->r.rr[i].data);
	free(c->r.rr);
	free(c->r.name);
	free(c->why);
	free(c);
}

/* ---- delivery ---- */

static void
count_status(struct dns_resolver *res, const struct dns_result *r, const struct dns_query *q)
{
	if (q->timed_out)
		res->st.timeouts++;
	switch (r->status) {
	case DNS_OK:
		res->st.ok++;
		break;
	case DNS_NODATA:
		res->st.nodata++;
		break;
	case DNS_NULL_MX:
		res->st.null_mx++;
		break;
	case DNS_NXDOMAIN:
		res->st.nxdomain++;
		break;
	case DNS_TEMPFAIL:
		res->st.tempfail++;
		break;
	case DNS_BOGUS:
		res->st.bogus++;
		break;
	}
}

/*
 * Run the callbacks of the queries that are ready now; those made ready by
 * the callbacks themselves wait for the next round.
 */
static void
deliver_ready(struct dns_resolver *res)
{
	size_t n = res->n_ready;

	res->delivering++;
	while (n-- > 0 && res->ready != NULL) {
		struct dns_query *q = res->ready;
		struct dns_result r;

		qlist_remove(res, q);
		result_build(&r, q);
		count_status(res, &r, q);
		log_trace(LOG_TRACE_DNS, "dns: %s type %d: %s (%s)%s%s", q->name ? q->name : "(invalid)",
			  q->rrtype, dns_status_str(r.status), r.why, r.secure ? " secure" : "",
			  r.from_cache ? " cached" : "");
		q->cb(&r, q->arg);
		result_release(&r);
		query_free(q);
	}
	res->delivering--;
	if (res->ready == NULL && res->idle_running) {
		uv_idle_stop(&res->idle);
		res->idle_running = 0;
	}
}

static void
on_idle(uv_idle_t *h)
{
	deliver_ready(h->data);
}

static void
start_idle(struct dns_resolver *res)
{
	if (!res->idle_running) {
		uv_idle_start(&res->idle, on_idle);
		res->idle_running = 1;
	}
}

/* ---- lookups ---- */

static void
lookup_finish(struct lookup *lk, struct answer *a)
{
	struct dns_resolver *res = lk->res;
	struct lookup **pp;
	struct slot *s;

	/* Out of the in-flight set first: a waiter's new query must start anew. */
	if (lk->prev)
		lk->prev->next = lk->next;
	else
		res->lookups = lk->next;
	if (lk->next)
		lk->next->prev = lk->prev;
	for (pp = &res->lbuckets[cache_hash(lk->name, lk->rrtype)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == lk) {
			*pp = lk->hnext;
			break;
		}
	}
	cache_put(res, lk->name, lk->rrtype, a);
	while ((s = lk->waiters) != NULL) {
		slot_unlink(s);
		s->ans = a;
		s->ttl = cache_ttl(res, a);
		a->refs++;
		if (--s->q->remaining == 0)
			query_make_ready(s->q);
	}
	answer_unref(&a);
	free(lk->name);
	free(lk);
}

/* libunbound's callback, from inside ub_process() on the loop thread. */
static void
on_ub_answer(void *arg, int err, struct ub_result *result)
{
	struct lookup *lk = arg;
	lookup_finish(lk, answer_from_ub(err, result));
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct dns_resolver *res = h->data;
	int rc;

	(void)events;
	if (status < 0)
		log_warn("dns: poll on the resolver fd: %s", uv_strerror(status));
	rc = ub_process(res->ub);
	if (rc == UB_PIPE) {
		/* The worker thread is gone: stop spinning on a dead fd; the
		   waiting queries end by their deadlines. */
		log_error("dns: lost the resolver thread: %s", ub_strerror(rc));
		uv_poll_stop(&res->poll);
	} else if (rc != 0) {
		log_warn("dns: ub_process: %s", ub_strerror(rc));
	}
	deliver_ready(res);
}

static void
on_tick(uv_timer_t *h)
{
	struct dns_resolver *res = h->data;
	uint64_t now = uv_now(res->loop);
	struct dns_query *q, *next;

	for (q = res->waiting; q; q = next) {
		next = q->next;
		if (q->deadline <= now) {
			int i;
			/* The lookup goes on without us; its answer still fills the cache. */
			for (i = 0; i < q->n_slots; i++)
				slot_unlink(&q->slots[i]);
			q->remaining = 0;
			q->timed_out = 1;
			query_make_ready(q);
		}
	}
	if (res->waiting == NULL && res->timer_running) {
		uv_timer_stop(&res->timer);
		res->timer_running = 0;
	}
}

/* Attach slot s to a lookup of (name, type), starting one if none is in flight. */
static void
slot_attach(struct dns_resolver *res, struct slot *s, const char *name)
{
	size_t h = cache_hash(name, s->rrtype);
	struct lookup *lk;
	int rc;

	for (lk = res->lbuckets[h]; lk; lk = lk->hnext)
		if (lk->rrtype == s->rrtype && strcmp(lk->name, name) == 0)
			break;
	if (lk != NULL) {
		res->st.coalesced++;
	} else {
		lk = xcalloc(1, sizeof(*lk));
		lk->res = res;
		lk->name = xstrdup(name);
		lk->rrtype = s->rrtype;
		lk->next = res->lookups;
		if (res->lookups)
			res->lookups->prev = lk;
		res->lookups = lk;
		lk->hnext = res->lbuckets[h];
		res->lbuckets[h] = lk;
	}
	s->lk = lk;
	s->wnext = NULL;
	s->wprev = lk->wtail;
	if (lk->wtail)
		lk->wtail->wnext = s;
	else
		lk->waiters = s;
	lk->wtail = s;
	if (lk->started)
		return;
	lk->started = 1;
	res->st.lookups++;
	rc = ub_resolve_async(res->ub, name, s->rrtype, 1 /* IN */, lk, on_ub_answer, &lk->async_id);
	if (rc != 0) {
		char *why = xasprintf("resolver: %s", ub_strerror(rc));
		struct answer *a = answer_new(DNS_TEMPFAIL, -1, why);
		free(why);
		lookup_finish(lk, a);
	}
}

static struct dns_query *
query_start(struct dns_resolver *res, enum query_kind kind, const char *name, int rrtype, dns_cb cb,
	    void *arg)
{
	struct dns_query *q = xcalloc(1, sizeof(*q));
	int i;

	q->res = res;
	q->kind = kind;
	q->rrtype = rrtype;
	q->cb = cb;
	q->arg = arg;
	q->name = name_normalize(name);
	q->deadline = uv_now(res->loop) + res->timeout_ms;
	res->st.queries++;

	/* On the waiting list first: slots may complete at once. */
	q->next = res->waiting;
	if (res->waiting)
		res->waiting->prev = q;
	res->waiting = q;
	res->n_waiting++;

	if (q->name == NULL) {
		query_make_ready(q);
		return q;
	}
	q->slots[0].rrtype = rrtype;
	q->n_slots = 1;
	if (kind == KIND_ADDRS && !res->no_aaaa) {
		q->slots[1].rrtype = DNS_TYPE_AAAA;
		q->n_slots = 2;
	}
	q->all_cached = 1;
	for (i = 0; i < q->n_slots; i++) {
		uint32_t ttl;
		q->slots[i].q = q;
		q->slots[i].ans = cache_get(res, q->name, q->slots[i].rrtype, &ttl);
		if (q->slots[i].ans != NULL) {
			q->slots[i].ttl = ttl; /* what is left, not the original TTL */
		} else {
			q->all_cached = 0;
			q->remaining++;
		}
	}
	if (q->all_cached)
		res->st.cache_hits++;
	if (q->remaining == 0) {
		query_make_ready(q);
		return q;
	}
	if (!res->timer_running) {
		uv_timer_start(&res->timer, on_tick, TICK_MS, TICK_MS);
		res->timer_running = 1;
	}
	/* Attaching may finish a slot at once (a failed start), so count first. */
	for (i = 0; i < q->n_slots; i++)
		if (q->slots[i].ans == NULL)
			slot_attach(res, &q->slots[i], q->name);
	return q;
}

struct dns_query *
dns_resolve_mx(struct dns_resolver *res, const char *domain, dns_cb cb, void *arg)
{
	return query_start(res, KIND_MX, domain, DNS_TYPE_MX, cb, arg);
}

struct dns_query *
dns_resolve_addrs(struct dns_resolver *res, const char *host, dns_cb cb, void *arg)
{
	return query_start(res, KIND_ADDRS, host, DNS_TYPE_A, cb, arg);
}

struct dns_query *
dns_resolve(struct dns_resolver *res, const char *name, int rrtype, dns_cb cb, void *arg)
{
	return query_start(res, KIND_RAW, name, rrtype, cb, arg);
}

void
dns_cancel(struct dns_resolver *res, struct dns_query **qp)
{
	struct dns_query *q;

	if (qp == NULL || *qp == NULL)
		return;
	q = *qp;
	*qp = NULL;
	qlist_remove(res, q);
	res->st.cancelled++;
	query_free(q);
}

size_t
dns_cancel_arg(struct dns_resolver *res, void *arg)
{
	struct dns_query *q, *next;
	size_t n = 0;

	for (q = res->waiting; q; q = next) {
		next = q->next;
		if (q->arg == arg) {
			dns_cancel(res, &q);
			n++;
		}
	}
	for (q = res->ready; q; q = next) {
		next = q->next;
		if (q->arg == arg) {
			dns_cancel(res, &q);
			n++;
		}
	}
	return n;
}

void
dns_resolver_stats(const struct dns_resolver *res, struct dns_stats *st)
{
	*st = res->st;
	st->pending = res->n_waiting + res->n_ready;
	st->cache_entries = res->n_entries;
}

/* ---- set-up and tear-down ---- */

static int
is_loopback(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0 || strncmp(addr, "::1", 3) == 0;
}

/* Set an unbound option ("name:" form) and report a failure. */
static int
set_option(struct ub_ctx *ub, const char *opt, const char *val, char **err_r)
{
	int rc = ub_ctx_set_option(ub, opt, val);
	if (rc != 0) {
		*err_r = xasprintf("dns: option %s %s: %s", opt, val, ub_strerror(rc));
		return -1;
	}
	return 0;
}

static void
on_close(uv_handle_t *h)
{
	struct dns_resolver *res = h->data;
	if (--res->open_handles == 0)
		free(res);
}

struct dns_resolver *
dns_resolver_new(uv_loop_t *loop, const struct dns_options *opts, char **err_r)
{
	static const struct dns_options defaults;
	struct dns_resolver *res;
	struct ub_ctx *ub;
	size_t i;
	int rc, fd, loopback_fwd = 0;
	char num[32];

	*err_r = NULL;
	if (opts == NULL)
		opts = &defaults;
	ub = ub_ctx_create();
	if (ub == NULL) {
		*err_r = xstrdup("dns: cannot create the libunbound context");
		return NULL;
	}
	if (opts->config_file != NULL && (rc = ub_ctx_config(ub, opts->config_file)) != 0) {
		*err_r = xasprintf("dns: config_file %s: %s", opts->config_file, ub_strerror(rc));
		goto fail;
	}
	/* A thread, not a forked helper that would inherit the daemon's fds. */
	if ((rc = ub_ctx_async(ub, 1)) != 0) {
		*err_r = xasprintf("dns: async mode: %s", ub_strerror(rc));
		goto fail;
	}
	if (opts->infra_cache_max_rtt > 0) {
		snprintf(num, sizeof(num), "%u", opts->infra_cache_max_rtt);
		if (set_option(ub, "infra-cache-max-rtt:", num, err_r) < 0)
			goto fail;
	}
	for (i = 0; opts->forwarders && opts->forwarders[i]; i++) {
		if ((rc = ub_ctx_set_fwd(ub, opts->forwarders[i])) != 0) {
			*err_r = xasprintf("dns: forwarder \"%s\": %s", opts->forwarders[i], ub_strerror(rc));
			goto fail;
		}
		loopback_fwd |= is_loopback(opts->forwarders[i]);
	}
	/* unbound refuses to send queries to 127.0.0.0/8 and ::1 unless told. */
	if (loopback_fwd && set_option(ub, "do-not-query-localhost:", "no", err_r) < 0)
		goto fail;
	if (opts->trust_anchor_file != NULL && (rc = ub_ctx_add_ta_file(ub, opts->trust_anchor_file)) != 0) {
		*err_r = xasprintf("dns: trust_anchor_file %s: %s", opts->trust_anchor_file, ub_strerror(rc));
		goto fail;
	}
	/*
	 * Zones and data finalize the context, so they come last. ".test" is a
	 * built-in static zone (RFC 6761) that answers NXDOMAIN for all of it;
	 * making it transparent lets lab data and forwarded lab zones answer.
	 * With nowhere to forward to it stays static (lab data still answers):
	 * the root has no .test, and recursing for it would only end in a
	 * SERVFAIL many seconds later (e.g. kumod's _mta-sts lookups in a lab).
	 */
	if ((rc = ub_ctx_zone_add(ub, "test.",
				  (opts->forwarders != NULL && opts->forwarders[0] != NULL) ||
					  opts->config_file != NULL
				      ? "transparent"
				      : "static")) != 0) {
		*err_r = xasprintf("dns: local zone test.: %s", ub_strerror(rc));
		goto fail;
	}
	for (i = 0; opts->local_zones && opts->local_zones[i]; i++) {
		const char *z = opts->local_zones[i];
		const char *sp = strchr(z, ' ');
		char *zname;
		if (sp == NULL) {
			*err_r = xasprintf("dns: local zone \"%s\": want \"name type\"", z);
			goto fail;
		}
		zname = xstrndup(z, (size_t)(sp - z));
		while (*sp == ' ')
			sp++;
		rc = ub_ctx_zone_add(ub, zname, sp);
		free(zname);
		if (rc != 0) {
			*err_r = xasprintf("dns: local zone \"%s\": %s", z, ub_strerror(rc));
			goto fail;
		}
	}
	for (i = 0; opts->local_data && opts->local_data[i]; i++) {
		if ((rc = ub_ctx_data_add(ub, opts->local_data[i])) != 0) {
			*err_r = xasprintf("dns: local data \"%s\": %s", opts->local_data[i], ub_strerror(rc));
			goto fail;
		}
	}
	fd = ub_fd(ub);
	if (fd < 0) {
		*err_r = xstrdup("dns: libunbound has no result fd");
		goto fail;
	}

	res = xcalloc(1, sizeof(*res));
	res->loop = loop;
	res->ub = ub;
	res->min_ttl = opts->cache_min_ttl;
	res->max_ttl = opts->cache_max_ttl ? opts->cache_max_ttl : DEFAULT_MAX_TTL;
	res->neg_ttl = opts->negative_ttl ? opts->negative_ttl : DEFAULT_NEG_TTL;
	if (res->min_ttl > res->max_ttl)
		res->min_ttl = res->max_ttl;
	res->max_entries = opts->cache_max_entries ? opts->cache_max_entries : DEFAULT_MAX_ENTRIES;
	res->timeout_ms = opts->timeout_ms ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
	res->no_aaaa = opts->no_aaaa;
	rc = uv_poll_init(loop, &res->poll, fd);
	if (rc < 0) {
		*err_r = xasprintf("dns: watching the resolver fd: %s", uv_strerror(rc));
		free(res);
		goto fail;
	}
	res->poll.data = res;
	uv_idle_init(loop, &res->idle);
	res->idle.data = res;
	uv_timer_init(loop, &res->timer);
	res->timer.data = res;
	res->open_handles = 3;
	uv_poll_start(&res->poll, UV_READABLE, on_poll);
	/* The loop need not stay alive for an idle resolver. */
	uv_unref((uv_handle_t *)&res->poll);
	return res;
fail:
	ub_ctx_delete(ub);
	return NULL;
}

void
dns_resolver_free(struct dns_resolver **resp)
{
	struct dns_resolver *res;
	struct lookup *lk;

	if (resp == NULL || *resp == NULL)
		return;
	res = *resp;
	*resp = NULL;
	if (res->delivering)
		log_panic("dns_resolver_free() called from a dns callback");
	while (res->waiting)
		dns_cancel(res, &(struct dns_query *){res->waiting});
	while (res->ready)
		dns_cancel(res, &(struct dns_query *){res->ready});
	/*
	 * Stop watching the fd before libunbound closes it (libuv must not
	 * touch a closed, possibly reused, fd number), then free the rest; the
	 * struct goes in the last close callback.
	 */
	uv_close((uv_handle_t *)&res->poll, on_close);
	uv_close((uv_handle_t *)&res->idle, on_close);
	uv_close((uv_handle_t *)&res->timer, on_close);
	ub_ctx_delete(res->ub); /* joins its thread; no callback runs after this */
	res->ub = NULL;
	while ((lk = res->lookups) != NULL) {
		res->lookups = lk->next;
		free(lk->name);
		free(lk);
	}
	dns_cache_flush(res);
}

/* ---- site_name ---- */

struct site_host {
	char *name;
	int pref;
	char **labels; /* reversed: labels[0] is the top-level label */
	size_t n_labels;
};

static int
site_host_cmp(const void *a, const void *b)
{
	const struct site_host *x = a, *y = b;
	if (x->pref != y->pref)
		return x->pref < y->pref ? -1 : 1;
	return strcmp(x->name, y->name);
}

char *
dns_site_name(const struct dns_mx *mx, size_t n)
{
	struct site_host *h;
	size_t nh = 0, i, j, k, depth = 0;
	struct buf out;
	char **seen;
	char *ret = NULL;

	if (mx == NULL || n == 0)
		return NULL;
	h = xcalloc(n, sizeof(*h));
	for (i = 0; i < n; i++) {
		char *name, *p;
		size_t len;

		if (mx[i].host == NULL)
			continue;
		name = xstrdup(mx[i].host);
		for (p = name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		len = strlen(name);
		while (len > 0 && name[len - 1] == '.')
			name[--len] = '\0';
		if (len == 0) {
			free(name);
			continue;
		}
		h[nh].name = name;
		h[nh].pref = mx[i].pref;
		nh++;
	}
	if (nh == 0)
		goto done;
	qsort(h, nh, sizeof(*h), site_host_cmp);
	for (i = 0; i < nh; i++) {
		/* Split a copy on dots (empty labels dropped), then reverse. */
		char *copy = xstrdup(h[i].name), *tok, *save = NULL;
		size_t cnt = 0;
		h[i].labels = xcalloc(strlen(copy) / 2 + 1, sizeof(char *));
		for (tok = strtok_r(copy, ".", &save); tok; tok = strtok_r(NULL, ".", &save))
			h[i].labels[cnt++] = xstrdup(tok);
		free(copy);
		for (j = 0; j < cnt / 2; j++) {
			char *t = h[i].labels[j];
			h[i].labels[j] = h[i].labels[cnt - 1 - j];
			h[i].labels[cnt - 1 - j] = t;
		}
		h[i].n_labels = cnt;
		if (cnt > depth)
			depth = cnt;
	}
	buf_init(&out, 0);
	seen = xcalloc(nh, sizeof(*seen));
	/* Write from the leftmost position (the deepest) down to the top level. */
	for (k = depth; k-- > 0;) {
		size_t n_seen = 0, have = 0;
		for (i = 0; i < nh; i++) {
			if (k >= h[i].n_labels)
				continue;
			have++;
			for (j = 0; j < n_seen; j++)
				if (strcmp(seen[j], h[i].labels[k]) == 0)
					break;
			if (j == n_seen)
				seen[n_seen++] = h[i].labels[k];
		}
		if (k + 1 != depth)
			buf_putc(&out, '.');
		if (n_seen > 1)
			buf_putc(&out, '(');
		for (j = 0; j < n_seen; j++) {
			if (j > 0)
				buf_putc(&out, '|');
			buf_puts(&out, seen[j]);
		}
		if (n_seen > 1)
			buf_putc(&out, ')');
		if (have < nh)
			buf_putc(&out, '?');
	}
	free(seen);
	if (out.len > 0)
		ret = buf_steal(&out, NULL);
	buf_release(&out);
done:
	for (i = 0; i < nh; i++) {
		for (j = 0; j < h[i].n_labels; j++)
			free(h[i].labels[j]);
		free(h[i].labels);
		free(h[i].name);
	}
	free(h);
	return ret;
}

char *
dns_site_name_for(const struct dns_result *r, const char *domain)
{
	if (r == NULL)
		return NULL;
	switch (r->status) {
	case DNS_OK:
		return dns_site_name(r->mx, r->n_mx);
	case DNS_NODATA:
		return name_normalize(domain);
	default:
		return NULL;
	}
}
