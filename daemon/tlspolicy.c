/*
 * tlspolicy.c: enable_mta_sts and enable_dane for kumod (seed 001, RFC 8461,
 * RFC 7672). Before a ready queue connects, every MX host of its site gets
 * a TLS policy:
 *
 *  - DANE (enable_dane): behind a DNSSEC-secure MX answer and secure address
 *    records, the host's _PORT._tcp TLSA RRset is looked up. Usable records
 *    (usages 2 and 3) in a secure answer make the host Required, with the
 *    records checked inside the handshake (smtp_client + lib/dane), and
 *    MTA-STS is ignored for that host. A bogus or failed lookup means no
 *    delivery to that host. A secure denial, an insecure zone or only
 *    unusable records mean no DANE.
 *  - MTA-STS (enable_mta_sts): the domain's policy from the cache, fetched
 *    when the _mta-sts TXT id is new (the TXT record is checked at most every
 *    STS_RECHECK_S per domain). enforce: Required (PKIX and the MX name) and
 *    hosts outside the policy's mx patterns are skipped; testing:
 *    OpportunisticInsecure; none: the path's enable_tls.
 *
 * The policy fetch (lib/mtasts) is libcurl's blocking easy interface, so it
 * runs on libuv's thread pool, at most STS_MAX_FETCHES at a time: the pool's
 * four threads also carry the spool's fsync batches, and fetches are rare
 * (one per domain per max_age or id change), which does not pay for driving
 * curl's multi interface from the loop. While a domain has no unexpired
 * cached policy, a resolution waits for its lookup at most mta_sts.wait,
 * then goes on as if the domain had no policy while the lookup finishes in
 * the background (RFC 8461 5.1 allows fetching asynchronously); the next
 * resolution of the ready queue's hosts (at most a minute later) applies it.
 * DANE never falls back that way: its lookups are waited for.
 *
 * Owns: the policy cache, per-domain lookup state, the resolutions in
 * flight, the answers in force per owner (a ready queue), a TLS client
 * context for tls_client.ca_file, and the parsing of the tls_client and
 * mta_sts configuration groups. Everything runs on the loop thread except the
 * fetch workers, which touch nothing but their own job.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <libconfig.h>
#include <uv.h>

#include "buf.h"
#include "dane.h"
#include "dns.h"
#include "duration.h"
#include "egress.h"
#include "kumo.h"
#include "log.h"
#include "mtasts.h"
#include "smtp_client.h"
#include "tls.h"

#include "kumod.h"

#define STS_RECHECK_S 300 /* default mta_sts.recheck_interval: TXT checked at most this often */
#define STS_MAX_FETCHES 2 /* policy fetches on the thread pool at once */
#define STS_MAX_DOMAINS 10000
#define STS_DEFAULT_WAIT_S 2
#define STS_DEFAULT_FETCH_TIMEOUT_S 10
#define TLSA_MAX 32 /* records per RRset looked at */

/* ---------------------------------------------------------------- host policies */

struct host_tls {
	int use_path_mode; /* the path's enable_tls applies (mode unused) */
	enum tls_mode mode;
	int skip;
	char label[24]; /* "configured", "mta-sts:enforce", "mta-sts:testing", "mta-sts:none",
	                   "dane" */
	char why[400];
	struct dane_tlsa *tlsa; /* DANE: usable records; data in tlsa_data */
	size_t ntlsa;
	unsigned char *tlsa_data;
};

void
tlspolicy_host_free(struct host_tls **tp)
{
	struct host_tls *t = *tp;

	if (t == NULL)
		return;
	free(t->tlsa);
	free(t->tlsa_data);
	free(t);
	*tp = NULL;
}

int
tlspolicy_host_skip(const struct host_tls *t)
{
	return t != NULL && t->skip;
}

const char *
tlspolicy_host_why(const struct host_tls *t)
{
	return t != NULL ? t->why : "";
}

const char *
tlspolicy_host_label(const struct host_tls *t)
{
	return t != NULL ? t->label : "configured";
}

size_t
tlspolicy_host_ntlsa(const struct host_tls *t)
{
	return t != NULL ? t->ntlsa : 0;
}

/* The usable records of a secure TLSA answer, copied into t. */
static void
take_tlsa(struct host_tls *t, const struct dns_result *r)
{
	struct dane_tlsa recs[TLSA_MAX];
	size_t i, n = 0, total = 0, off = 0;

	for (i = 0; i < r->n_rr && n < TLSA_MAX; i++)
		if (dane_tlsa_parse(r->rr[i].data, r->rr[i].len, &recs[n]) == 0 &&
		    dane_tlsa_usable(&recs[n]))
			total += recs[n++].len;
	if (n == 0)
		return;
	t->tlsa = xcalloc(n, sizeof(*t->tlsa));
	t->tlsa_data = xmalloc(total ? total : 1);
	for (i = 0; i < n; i++) {
		t->tlsa[i] = recs[i];
		memcpy(t->tlsa_data + off, recs[i].data, recs[i].len);
		t->tlsa[i].data = t->tlsa_data + off;
		off += recs[i].len;
	}
	t->ntlsa = n;
}

/* "a.example.test, *.example.test" from a policy's mx list, into out. */
static void
mx_list(const struct mtasts_policy *p, char *out, size_t outlen)
{
	size_t i, len = 0;

	out[0] = '\0';
	for (i = 0; i < p->mx_count && len + 1 < outlen; i++) {
		int w = snprintf(out + len, outlen - len, "%s%s", i ? ", " : "", p->mx[i]);

		if (w < 0)
			break;
		len += (size_t)w;
	}
	if (p->mx_count == 0)
		snprintf(out, outlen, "(none)");
}

struct host_tls *
tlspolicy_decide(const struct tlspolicy_facts *f)
{
	struct host_tls *t = xcalloc(1, sizeof(*t));
	char dane_note[200] = "";
	char pats[200];

	if (f->dane) {
		const struct dns_result *r = f->tlsa;

		if (!f->mx_secure) {
			snprintf(dane_note, sizeof(dane_note), "DANE: MX answer not DNSSEC-secure");
		} else if (!f->addr_secure) {
			snprintf(dane_note, sizeof(dane_note),
			         "DANE: address records of %s not DNSSEC-secure", f->host);
		} else if (r == NULL || r->status == DNS_BOGUS || r->status == DNS_TEMPFAIL) {
			/* RFC 7672 2.2: no delivery to this host until the lookup works. */
			t->skip = 1;
			t->use_path_mode = 1;
			snprintf(t->label, sizeof(t->label), "dane");
			snprintf(t->why, sizeof(t->why), "DANE: TLSA lookup for %s %s: %s",
			         r != NULL ? r->name : f->host,
			         r == NULL                ? "not done"
			         : r->status == DNS_BOGUS ? "is bogus"
			                                  : "failed",
			         r != NULL ? r->why : "no answer");
			return t;
		} else if (r->status != DNS_OK) {
			snprintf(dane_note, sizeof(dane_note),
			         "DANE: no TLSA records for %s (%s%s)", f->host,
			         r->secure ? "secure " : "", dns_status_str(r->status));
		} else if (!r->secure) {
			snprintf(dane_note, sizeof(dane_note),
			         "DANE: TLSA records of %s not DNSSEC-secure", f->host);
		} else {
			take_tlsa(t, r);
			if (t->ntlsa > 0) {
				/* Seed 001: TLSA records present, MTA-STS ignored, Required. */
				t->mode = TLS_REQUIRED;
				snprintf(t->label, sizeof(t->label), "dane");
				snprintf(t->why, sizeof(t->why),
				         "DANE: %zu usable TLSA record%s for %s", t->ntlsa,
				         t->ntlsa == 1 ? "" : "s", r->name);
				return t;
			}
			snprintf(dane_note, sizeof(dane_note),
			         "DANE: no usable TLSA records for %s (usages 2 and 3 only)",
			         f->host);
		}
	}
	if (f->mta_sts && f->policy != NULL) {
		switch (mtasts_tls_decide(f->policy, f->host)) {
		case MTASTS_TLS_REQUIRED:
			t->mode = TLS_REQUIRED;
			snprintf(t->label, sizeof(t->label), "mta-sts:enforce");
			snprintf(t->why, sizeof(t->why), "MTA-STS enforce: %s matches the policy",
			         f->host);
			break;
		case MTASTS_TLS_SKIP_MX:
			t->skip = 1;
			t->use_path_mode = 1;
			mx_list(f->policy, pats, sizeof(pats));
			snprintf(t->label, sizeof(t->label), "mta-sts:enforce");
			snprintf(t->why, sizeof(t->why),
			         "MTA-STS enforce: %s is not allowed by the policy (mx: %s)",
			         f->host, pats);
			break;
		case MTASTS_TLS_OPPORTUNISTIC_INSECURE:
			t->mode = TLS_OPPORTUNISTIC_INSECURE;
			snprintf(t->label, sizeof(t->label), "mta-sts:testing");
			snprintf(t->why, sizeof(t->why), "MTA-STS testing");
			break;
		case MTASTS_TLS_CONFIGURED:
		default:
			t->use_path_mode = 1;
			snprintf(t->label, sizeof(t->label), "mta-sts:none");
			snprintf(t->why, sizeof(t->why), "MTA-STS none: the configured enable_tls");
			break;
		}
	} else {
		t->use_path_mode = 1;
		snprintf(t->label, sizeof(t->label), "configured");
		snprintf(t->why, sizeof(t->why), "%s",
		         f->mta_sts && f->sts_note != NULL ? f->sts_note
		                                           : "the configured enable_tls");
	}
	if (dane_note[0] != '\0') {
		size_t len = strlen(t->why);

		snprintf(t->why + len, sizeof(t->why) - len, "; %s", dane_note);
	}
	return t;
}

/* ---------------------------------------------------------------- the TLS contexts */

/*
 * Client contexts trusting tls_client.ca_file, one per priority string in
 * use (a handful); rebuilt when the file setting changes on reload.
 */
struct ca_ctx {
	char *priority; /* NULL: the default */
	struct tls_ctx *ctx;
	struct ca_ctx *next;
};
static struct ca_ctx *ca_ctxs;
static char *ca_ctxs_file;

static void
ca_ctxs_free(void)
{
	while (ca_ctxs != NULL) {
		struct ca_ctx *c = ca_ctxs;

		ca_ctxs = c->next;
		tls_ctx_unref(&c->ctx);
		free(c->priority);
		free(c);
	}
	free(ca_ctxs_file);
	ca_ctxs_file = NULL;
}

/*
 * The context trusting tls_client.ca_file with path's priority. *none_r is
 * set when the file is configured but unusable: the caller must not fall
 * back to the system store.
 */
static struct tls_ctx *
ca_context(const struct kconf *conf, const struct egress_path *path, int *none_r)
{
	char *prio, *err = NULL;
	struct ca_ctx *c;

	*none_r = 0;
	if (conf == NULL || conf->tls_client_ca_file == NULL)
		return NULL;
	if (ca_ctxs_file == NULL || strcmp(ca_ctxs_file, conf->tls_client_ca_file) != 0) {
		ca_ctxs_free();
		ca_ctxs_file = xstrdup(conf->tls_client_ca_file);
	}
	prio = path != NULL ? egress_path_tls_priority(path) : NULL;
	for (c = ca_ctxs; c != NULL; c = c->next)
		if ((c->priority == NULL && prio == NULL) ||
		    (c->priority != NULL && prio != NULL && strcmp(c->priority, prio) == 0))
			break;
	if (c == NULL) {
		struct tls_ctx_config tc = {prio, ca_ctxs_file, NULL, NULL};

		c = xcalloc(1, sizeof(*c));
		c->priority = prio;
		prio = NULL;
		if (tls_ctx_new_client(&tc, &c->ctx, &err) != 0) {
			/* Checked at load time; the file changed since. Verifying sessions fail
			 * closed. */
			log_error("tls_client.ca_file: %s", err != NULL ? err : ca_ctxs_file);
			free(err);
			c->ctx = NULL;
		}
		c->next = ca_ctxs;
		ca_ctxs = c;
	}
	free(prio);
	*none_r = c->ctx == NULL;
	return c->ctx;
}

void
tlspolicy_client_params(const struct kconf *conf, const struct egress_path *path,
                        const struct host_tls *t, const char *domain, struct smtp_client_params *p)
{
	int none = 0;
	struct tls_ctx *ctx = ca_context(conf, path, &none);

	if (ctx != NULL || none)
		p->tls_ctx = ctx; /* NULL: STARTTLS fails rather than trusting the wrong store */
	if (t == NULL) {
		p->tls_policy = "configured";
		return;
	}
	if (!t->use_path_mode)
		p->tls_mode = t->mode;
	p->tls_policy = t->label;
	if (t->ntlsa > 0) {
		p->dane_tlsa = t->tlsa;
		p->dane_count = t->ntlsa;
		p->dane_domain = domain;
	}
}

/* ---------------------------------------------------------------- MTA-STS lookups */

struct req;

/* A domain's MTA-STS lookup state. */
struct sts_dom {
	char *domain;
	int busy;               /* a TXT lookup or a fetch is in flight */
	uint64_t next_check_ms; /* loop time: check the TXT record again from then on */
	char id[MTASTS_ID_MAX + 1];
	char last[200];      /* the last check's outcome, for logs and the why text */
	struct req *waiters; /* resolutions waiting for this lookup */
	struct sts_dom *next;
};

/* One policy fetch on the thread pool. Worker side: domain, opts, rc, pol, err only. */
struct fetch {
	uv_work_t work;
	struct sts_dom *dom;
	char *domain, *connect_to, *cafile;
	long timeout_ms;
	int rc;
	struct mtasts_policy pol;
	char *err;
	struct fetch *next;
};

/* One resolution in flight. */
struct req {
	void *owner;
	char *domain;
	tlspolicy_cb cb;
	void *arg;
	struct dns_resolver *res;
	enum tls_mode path_mode;
	int sts_on, dane_on;
	unsigned port;
	size_t n;
	char **names;
	int *addr_secure;
	struct dns_result **tlsa; /* per host; NULL: not (yet) answered */
	struct dns_result *mx;
	size_t pending;  /* DNS answers awaited */
	int sts_waiting; /* waiting for its domain's MTA-STS lookup */
	uint64_t deadline;
	char sts_note[256];
	struct sts_dom *dom;
	struct req *next, *prev; /* all requests */
	struct req *wnext;       /* the domain's waiters */
};

/* The answer in force for one owner. */
struct answer {
	void *owner;
	struct host_tls **hosts;
	size_t n;
	struct answer *next;
};

static uv_loop_t *loop;
static struct mtasts_cache *cache;
static struct sts_dom *doms;
static size_t ndoms;
static struct req *reqs;
static struct answer *answers;
static struct fetch *fetch_queue, *fetch_queue_tail;
static unsigned fetches_running;
static uv_timer_t wait_timer;
static int wait_timer_init;
static int curl_ready;

static void req_maybe_done(struct req *q);

static int
stopping(void)
{
	return kd.stopping;
}

static void
answer_free(struct answer *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		tlspolicy_host_free(&a->hosts[i]);
	free(a->hosts);
	free(a);
}

static struct sts_dom *
dom_get(const char *domain)
{
	struct sts_dom *d, **link;

	for (d = doms; d != NULL; d = d->next)
		if (strcasecmp(d->domain, domain) == 0)
			return d;
	if (ndoms >= STS_MAX_DOMAINS) {
		/* Forget the oldest idle domain (the list is newest first): it is only checked
		 * sooner. */
		struct sts_dom **victim = NULL;

		for (link = &doms; *link != NULL; link = &(*link)->next)
			if (!(*link)->busy && (*link)->waiters == NULL)
				victim = link;
		if (victim != NULL) {
			d = *victim;
			*victim = d->next;
			free(d->domain);
			free(d);
			ndoms--;
		}
	}
	d = xcalloc(1, sizeof(*d));
	d->domain = xstrdup(domain);
	d->next = doms;
	doms = d;
	ndoms++;
	return d;
}

static void wait_timer_arm(void);

/* The domain's lookup is over: release the resolutions waiting for it. */
static void
sts_done(struct sts_dom *d)
{
	struct req *w, *next;

	d->busy = 0;
	d->next_check_ms =
	    uv_now(loop) +
	    (uint64_t)((kd.conf != NULL && kd.conf->mta_sts_recheck > 0 ? kd.conf->mta_sts_recheck
	                                                                 : STS_RECHECK_S) *
	               1000);
	log_trace(LOG_TRACE_DNS, "MTA-STS %s: %s", d->domain, d->last);
	w = d->waiters;
	d->waiters = NULL;
	for (; w != NULL; w = next) {
		next = w->wnext;
		w->wnext = NULL;
		w->sts_waiting = 0;
		req_maybe_done(w);
	}
}

static void fetch_start_queued(void);

static void
fetch_work(uv_work_t *w)
{
	struct fetch *f = w->data;
	struct mtasts_fetch_opts o = {f->connect_to, f->cafile, f->timeout_ms};

	f->rc = mtasts_fetch(f->domain, &o, &f->pol, NULL, &f->err);
}

static void
fetch_after(uv_work_t *w, int status)
{
	struct fetch *f = w->data;
	struct sts_dom *d = f->dom;
	const struct mtasts_policy *p;

	fetches_running--;
	if (status != 0 && f->rc == 0)
		f->rc = KUMO_EIO; /* cancelled */
	p = mtasts_cache_update(cache, d->domain, d->id, f->rc, &f->pol, time(NULL));
	if (f->rc == 0)
		snprintf(d->last, sizeof(d->last), "policy id %s fetched: mode %s", d->id,
		         p != NULL ? mtasts_mode_str(p->mode) : "?");
	else {
		log_notice("MTA-STS policy fetch for %s failed: %s%s", d->domain,
		           f->err != NULL ? f->err : kumo_strerror(f->rc),
		           p != NULL ? " (the cached policy stays)" : " (no policy applies)");
		snprintf(d->last, sizeof(d->last), "policy fetch failed: %s%s",
		         f->err != NULL ? f->err : kumo_strerror(f->rc),
		         p != NULL ? "; cached policy kept" : "");
	}
	mtasts_policy_clear(&f->pol);
	free(f->err);
	free(f->domain);
	free(f->connect_to);
	free(f->cafile);
	free(f);
	sts_done(d);
	fetch_start_queued();
}

static void
fetch_start_queued(void)
{
	while (fetches_running < STS_MAX_FETCHES && fetch_queue != NULL && !stopping()) {
		struct fetch *f = fetch_queue;

		fetch_queue = f->next;
		if (fetch_queue == NULL)
			fetch_queue_tail = NULL;
		f->next = NULL;
		f->work.data = f;
		if (uv_queue_work(loop, &f->work, fetch_work, fetch_after) != 0) {
			f->rc = KUMO_EIO;
			fetches_running++;
			fetch_after(&f->work, -1);
			continue;
		}
		fetches_running++;
	}
}

/* The connect_to entry for mta-sts.DOMAIN:443, or NULL. */
static const char *
connect_to_for(const struct kconf *conf, const char *domain)
{
	size_t i, dl = strlen(domain);

	for (i = 0; conf != NULL && i < conf->nmta_sts_connect_to; i++) {
		const char *e = conf->mta_sts_connect_to[i];

		if (strncasecmp(e, "mta-sts.", 8) == 0 && strncasecmp(e + 8, domain, dl) == 0 &&
		    strncmp(e + 8 + dl, ":443:", 5) == 0)
			return e;
	}
	return NULL;
}

static void
fetch_queue_add(struct sts_dom *d, const struct kconf *conf)
{
	struct fetch *f = xcalloc(1, sizeof(*f));
	const char *ct = connect_to_for(conf, d->domain);

	if (!curl_ready) {
		/* curl_global_init on the loop thread; libcurl 7.84+ makes it thread-safe anyway.
		 */
		if (mtasts_global_init() != 0)
			log_error("MTA-STS: libcurl initialisation failed");
		curl_ready = 1;
	}
	f->dom = d;
	f->domain = xstrdup(d->domain);
	f->connect_to = ct != NULL ? xstrdup(ct) : NULL;
	f->cafile = conf->mta_sts_ca_file != NULL ? xstrdup(conf->mta_sts_ca_file) : NULL;
	f->timeout_ms = (long)(conf->mta_sts_fetch_timeout * 1000);
	if (fetch_queue_tail != NULL)
		fetch_queue_tail->next = f;
	else
		fetch_queue = f;
	fetch_queue_tail = f;
	fetch_start_queued();
}

/* The TXT records of r as strings (each record's strings concatenated); caller frees. */
static char **
txt_strings(const struct dns_result *r)
{
	char **v = xcalloc(r->n_rr + 1, sizeof(*v));
	size_t i, j;

	for (i = 0; i < r->n_rr; i++) {
		const unsigned char *p = r->rr[i].data;
		struct buf b;

		buf_init(&b, 65536);
		for (j = 0; j < r->rr[i].len;) {
			size_t l = p[j++];

			if (l > r->rr[i].len - j)
				l = r->rr[i].len - j;
			buf_append(&b, p + j, l);
			j += l;
		}
		v[i] = buf_steal(&b, NULL);
		buf_release(&b);
	}
	return v;
}

/* Settings a TXT answer needs for a fetch: the conf of the request that started the check. */
static const struct kconf *check_conf;

static void
sts_txt_answer(const struct dns_result *r, void *arg)
{
	struct sts_dom *d = arg;
	char *err = NULL, **recs = NULL;
	size_t i;
	int ret;

	if (r->status == DNS_NODATA || r->status == DNS_NXDOMAIN) {
		snprintf(d->last, sizeof(d->last), "no _mta-sts TXT record");
	} else if (r->status != DNS_OK) {
		snprintf(d->last, sizeof(d->last), "_mta-sts TXT lookup: %s (%s)",
		         dns_status_str(r->status), r->why);
	} else {
		recs = txt_strings(r);
		ret = mtasts_txt_parse((const char *const *)recs, r->n_rr, d->id, &err);
		for (i = 0; i < r->n_rr; i++)
			free(recs[i]);
		free(recs);
		if (ret == 0 && !stopping() &&
		    mtasts_cache_needs_fetch(cache, d->domain, d->id, time(NULL))) {
			free(err);
			fetch_queue_add(d, check_conf);
			return;
		}
		if (ret == 0)
			snprintf(d->last, sizeof(d->last),
			         "TXT id %s: the cached policy is current", d->id);
		else
			snprintf(d->last, sizeof(d->last), "unusable _mta-sts TXT record: %s",
			         err != NULL ? err : kumo_strerror(ret));
		free(err);
	}
	sts_done(d);
}

static void
wait_timer_fire(uv_timer_t *t)
{
	struct req *q, *next;
	uint64_t now = uv_now(loop);

	(void)t;
	for (q = reqs; q != NULL; q = next) {
		next = q->next;
		if (q->sts_waiting && q->deadline <= now) {
			struct req **link;

			for (link = &q->dom->waiters; *link != NULL; link = &(*link)->wnext)
				if (*link == q) {
					*link = q->wnext;
					break;
				}
			q->wnext = NULL;
			q->sts_waiting = 0;
			snprintf(
			    q->sts_note, sizeof(q->sts_note),
			    "MTA-STS: no policy yet (lookup still running after mta_sts.wait)");
			req_maybe_done(q); /* may free q, never next */
		}
	}
	wait_timer_arm();
}

static void
wait_timer_arm(void)
{
	struct req *q;
	uint64_t next = 0, now;

	if (!wait_timer_init || stopping())
		return;
	for (q = reqs; q != NULL; q = q->next)
		if (q->sts_waiting && (next == 0 || q->deadline < next))
			next = q->deadline;
	if (next == 0) {
		uv_timer_stop(&wait_timer);
		return;
	}
	now = uv_now(loop);
	uv_timer_start(&wait_timer, wait_timer_fire, next > now ? next - now : 0, 0);
}

/* Start or join the MTA-STS lookup of q's domain. */
static void
sts_join(struct req *q, const struct kconf *conf)
{
	struct sts_dom *d = dom_get(q->domain);

	q->dom = d;
	if (!d->busy && uv_now(loop) >= d->next_check_ms && !stopping()) {
		char name[300];

		d->busy = 1;
		check_conf = conf;
		snprintf(name, sizeof(name), "_mta-sts.%s", d->domain);
		dns_resolve(q->res, name, DNS_TYPE_TXT, sts_txt_answer, d);
	}
	if (d->busy && mtasts_cache_get(cache, q->domain, time(NULL), NULL) == NULL) {
		if (conf->mta_sts_wait <= 0) {
			snprintf(q->sts_note, sizeof(q->sts_note),
			         "MTA-STS: no policy yet (lookup running)");
			return;
		}
		q->sts_waiting = 1;
		q->deadline = uv_now(loop) + (uint64_t)(conf->mta_sts_wait * 1000);
		q->wnext = d->waiters;
		d->waiters = q;
		wait_timer_arm();
	} else if (mtasts_cache_get(cache, q->domain, time(NULL), NULL) == NULL) {
		snprintf(q->sts_note, sizeof(q->sts_note), "MTA-STS: no policy (%.200s)",
		         d->last[0] ? d->last : "not looked up");
	}
}

/* ---------------------------------------------------------------- DANE lookups */

static void
req_dns(const struct dns_result *r, void *arg)
{
	struct req *q = arg;
	size_t i;

	q->pending--;
	if (r->rrtype == DNS_TYPE_MX) {
		q->mx = dns_result_dup(r);
		if ((r->status == DNS_OK || r->status == DNS_NODATA) && r->secure && !stopping()) {
			/* RFC 7672 2.2.1: TLSA only behind a secure MX answer (and secure
			 * addresses). */
			for (i = 0; i < q->n; i++) {
				char name[300];

				if (!q->addr_secure[i])
					continue;
				snprintf(name, sizeof(name), "_%u._tcp.%s", q->port, q->names[i]);
				q->pending++;
				dns_resolve(q->res, name, DNS_TYPE_TLSA, req_dns, q);
			}
		}
	} else {
		for (i = 0; i < q->n; i++) {
			char name[300];

			snprintf(name, sizeof(name), "_%u._tcp.%s", q->port, q->names[i]);
			if (q->tlsa[i] == NULL && strcasecmp(name, r->name) == 0) {
				q->tlsa[i] = dns_result_dup(r);
				break;
			}
		}
	}
	req_maybe_done(q);
}

/* ---------------------------------------------------------------- resolutions */

static void
req_free(struct req *q)
{
	size_t i;

	if (q->prev != NULL)
		q->prev->next = q->next;
	else if (reqs == q)
		reqs = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	for (i = 0; i < q->n; i++) {
		free(q->names[i]);
		dns_result_free(&q->tlsa[i]);
	}
	free(q->names);
	free(q->tlsa);
	free(q->addr_secure);
	dns_result_free(&q->mx);
	free(q->domain);
	free(q);
}

/* Everything q needs is known: decide each host, answer, forget q. */
static void
req_maybe_done(struct req *q)
{
	const struct mtasts_policy *pol = NULL;
	struct answer *a, *old = NULL, **link;
	size_t i;
	int mx_secure;

	if (q->pending > 0 || q->sts_waiting)
		return;
	if (stopping()) {
		/* A fetch finishing during shutdown: the queues take no new hosts now. */
		q->cb(q->arg, NULL, 0);
		req_free(q);
		return;
	}
	if (q->sts_on)
		pol = mtasts_cache_get(cache, q->domain, time(NULL), NULL);
	mx_secure = q->mx != NULL && (q->mx->status == DNS_OK || q->mx->status == DNS_NODATA) &&
	            q->mx->secure;
	a = xcalloc(1, sizeof(*a));
	a->owner = q->owner;
	a->n = q->n;
	a->hosts = xcalloc(q->n ? q->n : 1, sizeof(*a->hosts));
	for (i = 0; i < q->n; i++) {
		struct tlspolicy_facts f = {.host = q->names[i],
		                            .configured = q->path_mode,
		                            .dane = q->dane_on,
		                            .mx_secure = mx_secure,
		                            .addr_secure = q->addr_secure[i],
		                            .tlsa = q->tlsa[i],
		                            .mta_sts = q->sts_on,
		                            .policy = pol,
		                            .sts_note = q->sts_note[0] ? q->sts_note : NULL};

		a->hosts[i] = tlspolicy_decide(&f);
		log_trace(LOG_TRACE_QUEUE, "TLS policy %s for %s: %s%s%s", q->domain, q->names[i],
		          a->hosts[i]->label, a->hosts[i]->skip ? " (skipped) " : " ",
		          a->hosts[i]->why);
	}
	for (link = &answers; *link != NULL; link = &(*link)->next)
		if ((*link)->owner == q->owner) {
			old = *link;
			*link = old->next;
			break;
		}
	a->next = answers;
	answers = a;
	/* Old pointers stay valid during the callback, which replaces them. */
	q->cb(q->arg, (const struct host_tls *const *)a->hosts, a->n);
	if (old != NULL)
		answer_free(old);
	req_free(q);
}

void
tlspolicy_resolve(const struct tlspolicy_query *qy, tlspolicy_cb cb, void *arg)
{
	struct req *q = xcalloc(1, sizeof(*q));
	size_t i;

	loop = qy->loop;
	if (!wait_timer_init) {
		uv_timer_init(loop, &wait_timer);
		wait_timer_init = 1;
	}
	if (cache == NULL)
		cache = mtasts_cache_new(0);
	q->owner = qy->owner;
	q->domain = xstrdup(qy->domain);
	for (i = 0; q->domain[i] != '\0'; i++)
		q->domain[i] = (char)tolower((unsigned char)q->domain[i]);
	q->cb = cb;
	q->arg = arg;
	q->res = qy->res;
	q->path_mode = qy->path->enable_tls;
	q->sts_on = qy->path->enable_mta_sts;
	q->dane_on = qy->path->enable_dane;
	q->port = qy->port;
	q->n = qy->n;
	q->names = xcalloc(qy->n ? qy->n : 1, sizeof(*q->names));
	q->addr_secure = xcalloc(qy->n ? qy->n : 1, sizeof(*q->addr_secure));
	q->tlsa = xcalloc(qy->n ? qy->n : 1, sizeof(*q->tlsa));
	for (i = 0; i < qy->n; i++) {
		q->names[i] = xstrdup(qy->hosts[i].name);
		q->addr_secure[i] = qy->hosts[i].addr_secure;
	}
	q->next = reqs;
	if (reqs != NULL)
		reqs->prev = q;
	reqs = q;
	if (q->sts_on)
		sts_join(q, qy->conf);
	if (q->dane_on && q->n > 0) {
		q->pending++;
		dns_resolve_mx(q->res, q->domain, req_dns, q);
	}
	req_maybe_done(q);
}

void
tlspolicy_free(void)
{
	struct fetch *f;

	while (reqs != NULL) {
		reqs->cb(reqs->arg, NULL, 0); /* dropped: the caller frees what it handed over */
		req_free(reqs);
	}
	while (answers != NULL) {
		struct answer *a = answers;

		answers = a->next;
		answer_free(a);
	}
	while (doms != NULL) {
		struct sts_dom *d = doms;

		doms = d->next;
		free(d->domain);
		free(d);
	}
	ndoms = 0;
	while ((f = fetch_queue) != NULL) {
		fetch_queue = f->next;
		free(f->domain);
		free(f->connect_to);
		free(f->cafile);
		free(f);
	}
	fetch_queue_tail = NULL;
	mtasts_cache_free(&cache);
	ca_ctxs_free();
	if (curl_ready)
		mtasts_global_cleanup();
	curl_ready = 0;
}

/* ---------------------------------------------------------------- configuration */

/* Report a problem at setting s; the expression's value is the count so far. */
#define ERR(s, ...) (egress_config_error(errs, (s), __VA_ARGS__), ++bad)

/* A readable PEM file of at least one certificate, or an error at m. */
static int
check_ca_file(const config_setting_t *m, const char *path, struct buf *errs)
{
	struct tls_ctx_config tc = {NULL, path, NULL, NULL};
	struct tls_ctx *ctx = NULL;
	char *err = NULL;
	int bad = 0;

	if (access(path, R_OK) != 0)
		return ERR(m, "%s: %s", path, strerror(errno));
	if (tls_ctx_new_client(&tc, &ctx, &err) != 0)
		ERR(m, "%s", err != NULL ? err : "unusable CA file");
	free(err);
	tls_ctx_unref(&ctx);
	return bad;
}

static int
get_path(const config_setting_t *g, const char *key, char **out, struct buf *errs)
{
	const config_setting_t *m = config_setting_get_member(g, key);
	const char *s;
	int bad = 0;

	if (m == NULL)
		return 0;
	s = config_setting_get_string(m);
	if (s == NULL || *s == '\0')
		return ERR(m, "want the path of a PEM file of CA certificates");
	if (check_ca_file(m, s, errs) != 0)
		return 1;
	free(*out);
	*out = xstrdup(s);
	return bad;
}

/* A duration in [lo, hi] seconds into *out. */
static int
get_secs(const config_setting_t *g, const char *key, double lo, double hi, double *out,
         struct buf *errs)
{
	const config_setting_t *m = config_setting_get_member(g, key);
	uint64_t v = 0;
	char *err = NULL;
	int bad = 0;

	if (m == NULL)
		return 0;
	switch (config_setting_type(m)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		if (config_setting_get_int64(m) < 0)
			return ERR(m, "a duration cannot be negative");
		v = (uint64_t)config_setting_get_int64(m);
		break;
	case CONFIG_TYPE_STRING:
		if (duration_parse(config_setting_get_string(m), &v, &err) != 0) {
			ERR(m, "%s", err != NULL ? err : "bad duration");
			free(err);
			return bad;
		}
		break;
	default:
		return ERR(m, "want seconds or a duration string such as \"10s\"");
	}
	if ((double)v < lo || (double)v > hi)
		return ERR(m, "%llu s: want %.0f to %.0f seconds", (unsigned long long)v, lo, hi);
	*out = (double)v;
	return 0;
}

/* A port, 1..65535, spanning [s, e). */
static int
port_ok(const char *s, const char *e)
{
	unsigned long v = 0;

	if (s == e || e - s > 5)
		return 0;
	for (; s < e; s++) {
		if (!isdigit((unsigned char)*s))
			return 0;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	return v >= 1 && v <= 65535;
}

int
tlspolicy_connect_to_check(const char *s)
{
	const char *p1, *p2, *p3;
	char addr[64];
	size_t i;

	/* HOST */
	p1 = strchr(s, ':');
	if (p1 == NULL || p1 == s)
		return -1;
	for (i = 0; s + i < p1; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
			return -1;
	/* PORT */
	p2 = strchr(p1 + 1, ':');
	if (p2 == NULL || !port_ok(p1 + 1, p2))
		return -1;
	/* ADDR: an IPv4 literal, [IPv6] or a host name */
	if (p2[1] == '[') {
		const char *close = strchr(p2 + 2, ']');
		struct in6_addr a6;

		if (close == NULL || (size_t)(close - (p2 + 2)) >= sizeof(addr) || close[1] != ':')
			return -1;
		memcpy(addr, p2 + 2, (size_t)(close - (p2 + 2)));
		addr[close - (p2 + 2)] = '\0';
		if (inet_pton(AF_INET6, addr, &a6) != 1)
			return -1;
		p3 = close + 1;
	} else {
		p3 = strchr(p2 + 1, ':');
		if (p3 == NULL || p3 == p2 + 1)
			return -1;
		for (i = 1; p2 + i < p3; i++)
			if (!isalnum((unsigned char)p2[i]) && p2[i] != '-' && p2[i] != '.' &&
			    p2[i] != '_')
				return -1;
	}
	/* PORT */
	return port_ok(p3 + 1, p3 + 1 + strlen(p3 + 1)) ? 0 : -1;
}

/* Unknown keys of group g. */
static int
check_keys(const config_setting_t *g, const char *const *known, struct buf *errs)
{
	const char *const *k;
	int bad = 0, i, n = config_setting_length(g);

	for (i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);

		for (k = known; *k != NULL && strcmp(*k, config_setting_name(m)) != 0; k++)
			;
		if (*k == NULL)
			ERR(m, "unknown key");
	}
	return bad;
}

static int
get_connect_to(struct kconf *c, const config_setting_t *g, struct buf *errs)
{
	const config_setting_t *m = config_setting_get_member(g, "connect_to");
	int bad = 0, i, n;

	if (m == NULL)
		return 0;
	if (config_setting_type(m) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(m) != CONFIG_TYPE_LIST)
		return ERR(
		    m, "want a list of strings [ \"mta-sts.example.test:443:127.0.0.1:8443\" ]");
	n = config_setting_length(m);
	c->mta_sts_connect_to = xcalloc((size_t)n + 1, sizeof(char *));
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
		const char *s = config_setting_get_string(e);

		if (s == NULL || tlspolicy_connect_to_check(s) != 0) {
			ERR(e,
			    "\"%s\": want HOST:PORT:ADDR:PORT, e.g. "
			    "\"mta-sts.example.test:443:127.0.0.1:8443\"",
			    s != NULL ? s : "(not a string)");
			continue;
		}
		c->mta_sts_connect_to[c->nmta_sts_connect_to++] = xstrdup(s);
	}
	return bad;
}

int
tlspolicy_parse_config(struct kconf *c, const config_setting_t *root, struct buf *errs)
{
	static const char *const tc_keys[] = {"ca_file", NULL};
	static const char *const sts_keys[] = {"ca_file", "connect_to", "fetch_timeout", "wait", "recheck_interval",
	                                       NULL};
	const config_setting_t *g;
	int bad = 0;

	c->mta_sts_fetch_timeout = STS_DEFAULT_FETCH_TIMEOUT_S;
	c->mta_sts_wait = STS_DEFAULT_WAIT_S;
	c->mta_sts_recheck = STS_RECHECK_S;
	if ((g = config_setting_get_member(root, "tls_client")) != NULL) {
		if (!config_setting_is_group(g)) {
			ERR(g, "want a group { ca_file = \"/etc/kumod/ca.pem\"; }");
		} else {
			bad += check_keys(g, tc_keys, errs);
			bad += get_path(g, "ca_file", &c->tls_client_ca_file, errs);
		}
	}
	if ((g = config_setting_get_member(root, "mta_sts")) != NULL) {
		if (!config_setting_is_group(g)) {
			ERR(g, "want a group { ca_file = ...; connect_to = [ ... ]; fetch_timeout "
			       "= ...; wait = ...; }");
		} else {
			bad += check_keys(g, sts_keys, errs);
			bad += get_path(g, "ca_file", &c->mta_sts_ca_file, errs);
			bad +=
			    get_secs(g, "fetch_timeout", 1, 300, &c->mta_sts_fetch_timeout, errs);
			bad += get_secs(g, "wait", 0, 60, &c->mta_sts_wait, errs);
			bad += get_secs(g, "recheck_interval", 1, 86400, &c->mta_sts_recheck, errs);
			bad += get_connect_to(c, g, errs);
		}
	}
	return bad;
}

void
tlspolicy_free_config(struct kconf *c)
{
	size_t i;

	free(c->tls_client_ca_file);
	free(c->mta_sts_ca_file);
	for (i = 0; i < c->nmta_sts_connect_to; i++)
		free(c->mta_sts_connect_to[i]);
	free(c->mta_sts_connect_to);
	c->tls_client_ca_file = c->mta_sts_ca_file = NULL;
	c->mta_sts_connect_to = NULL;
	c->nmta_sts_connect_to = 0;
}
