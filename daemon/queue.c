/*
 * queue.c: what happens to a message between the spool and the wire.
 *
 *  - Scheduled: every message waiting for a (re)try sits in one min-heap
 *    keyed by its due time, with one timer for the earliest. Its queue name
 *    ("campaign:tenant@domain") picks the queue rules (egress pool, retry
 *    interval, max_age). Retries back off exponentially with jitter; a
 *    retry that would fall after max_age expires the message (551 5.4.7).
 *  - Routing: a due message takes the next source of its pool (weighted
 *    round-robin), its domain's MX set (lib/dns, cached) gives the
 *    site_name, and (source, site) names its ready queue "source->site".
 *  - Ready queues: FIFO of messages, the merged egress path (shaping), the
 *    site's hosts in MX order with their addresses, and the connections
 *    (lib/smtp_client). The dispatcher opens connections up to
 *    connection_limit; a connection delivers one message per transaction
 *    (RSET between them, pipelined when offered), is reused until
 *    max_deliveries_per_connection, and closes after idle_timeout.
 *  - Dispositions per recipient: 2xx Delivery (removed), 5xx Bounce
 *    (removed), 4xx TransientFailure (kept; the message is rescheduled).
 *    The spool file goes only when no recipient is left.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "buf.h"
#include "cidr.h"
#include "dns.h"
#include "egress.h"
#include "kumo.h"
#include "log.h"
#include "smtp_client.h"
#include "smtp_proto.h"
#include "throttle.h"
#include "tls.h"

#include "kumod.h"

#define DEST_MAX_CACHE_S 300

struct dest;
struct ready_queue;

/* One address of one MX host, in delivery order. */
struct rq_host {
	char *name;
	struct sockaddr_storage sa;
	char text[64];
	size_t mx;		    /* index into rq->mx */
	const struct host_tls *tls; /* its TLS policy (tlspolicy.c); NULL: the path's enable_tls */
};

struct oconn {
	struct ready_queue *rq;
	struct smtp_client *client;
	uv_timer_t idle;
	int idle_open;
	unsigned nclients; /* clients not yet closed (an old one may still be closing) */
	size_t host; /* index into rq->hosts of the current attempt */
	int ready;   /* the session reached `ready` */
	int quitting;
	int stale; /* made under an older path config: no new message after the current one */
	unsigned deliveries;
	struct msg *m; /* in flight */
	struct smtp_txn txn;
	struct oconn *next, *prev;
	char last_error[600];
};

struct ready_queue {
	char *name; /* "source->site", or "source->domain@site" for an own-domain queue */
	char *source_name;
	char *site;
	char *domain;	 /* the domain whose MX set named the site (for display) */
	int own_domain; /* shaped on its own: domain has an mx_rollup = false entry */
	struct egress_source source;
	struct egress_path path;
	struct msg *head, *tail;
	size_t nmsgs;
	struct oconn *conns;
	size_t nconns;
	/* hosts */
	struct dns_mx *mx;
	size_t nmx;
	struct rq_host *hosts;
	size_t nhosts;
	int hosts_state; /* 0 unknown, 1 resolving, 2 ready, 3 failed */
	size_t addr_pending;
	struct dns_result **addr_results;
	uint64_t hosts_expire_ms;
	char hosts_error[256];
	int hosts_error_code; /* 550 (prohibited/skip) or 451 */
	unsigned consecutive_failures;
	uint64_t delivered, transient; /* recipients, since start */
	/* max_connection_rate / max_message_rate (GCRA) of this path */
	struct throttle_state conn_thr, msg_thr;
	uint64_t wake_ms;	     /* loop time: dispatch again (a throttle's wait); 0 = none */
	uint64_t throttled_until_ms; /* loop time: a throttle holds the queue back until then */
	struct ready_queue *next;
};

/* A destination domain's routing state. */
struct dest {
	char *domain;
	int state; /* 0 unknown, 1 resolving, 2 ok */
	char *site;
	struct dns_mx *mx;
	size_t nmx;
	uint64_t expire_ms;
	struct msg *wait_head, *wait_tail; /* messages waiting for the lookup */
	struct dest *next;
};

static struct kumod *K;
static struct msg **heap;
static size_t nheap, aheap;
static uv_timer_t sched_timer;
static uv_timer_t flush_timer;
static struct dns_resolver *resolver;
static struct tls_ctx *client_tls;
/* Client contexts for paths with their own tls_priority / rustls_cipher_suites. */
struct prio_ctx {
	char *priority;
	struct tls_ctx *ctx; /* NULL: the priority was refused (the default is used) */
	struct prio_ctx *next;
};
static struct prio_ctx *prio_ctxs;
static struct dest *dests;
static struct ready_queue *rqs;
static size_t nmsgs_total;
static struct egress_pool *pools; /* live copies with round-robin state */
static size_t npools;
static struct qrule *rules; /* operator rules, newest first */
static unsigned rule_ids;
static uv_timer_t rules_timer;
static uv_timer_t throttle_timer; /* the earliest ready_queue.wake_ms */

static void route(struct msg *m);
static void dispatch(struct ready_queue *rq);
static void conn_start(struct ready_queue *rq, struct oconn *oc);
static void rq_resolve_hosts(struct ready_queue *rq);
static int rules_hold(struct msg *m);
static int rq_admin_suspended(const struct ready_queue *rq);
static const struct qrule *rule_for_msg(enum qrule_kind kind, const struct msg *m);
static void msg_admin_bounce(struct msg *m, const struct qrule *r);

static uint64_t
now_ms(void)
{
	return uv_now(K->loop);
}

static double
wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- names and retry arithmetic ---- */

char *
queue_name(const char *campaign, const char *tenant, const char *domain)
{
	struct buf b;

	buf_init(&b, 0);
	if (campaign != NULL)
		buf_appendf(&b, "%s:", campaign);
	if (tenant != NULL)
		buf_appendf(&b, "%s@", tenant);
	buf_puts(&b, domain);
	return buf_steal(&b, NULL);
}

double
queue_retry_delay(double interval, double max_interval, unsigned attempts, double jitter)
{
	double d = interval;
	unsigned i;

	/* The k-th retry waits interval * 2^(k-1): attempts counts tries made so far. */
	for (i = 1; i < attempts && i < 64; i++) {
		d *= 2;
		if (max_interval > 0 && d >= max_interval)
			break;
	}
	d += d * 0.1 * jitter;
	if (max_interval > 0 && d > max_interval)
		d = max_interval;
	return d;
}

/* ---- the scheduled heap ---- */

static void
heap_swap(size_t a, size_t b)
{
	struct msg *t = heap[a];

	heap[a] = heap[b];
	heap[b] = t;
	heap[a]->heap_idx = a;
	heap[b]->heap_idx = b;
}

static void
heap_up(size_t i)
{
	while (i > 0 && heap[(i - 1) / 2]->due_ms > heap[i]->due_ms) {
		heap_swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void
heap_down(size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < nheap && heap[l]->due_ms < heap[m]->due_ms)
			m = l;
		if (r < nheap && heap[r]->due_ms < heap[m]->due_ms)
			m = r;
		if (m == i)
			return;
		heap_swap(i, m);
		i = m;
	}
}

static struct msg *
heap_pop(void)
{
	struct msg *m = heap[0];

	heap_swap(0, nheap - 1);
	nheap--;
	if (nheap > 0)
		heap_down(0);
	m->heap_idx = (size_t)-1;
	return m;
}

static void sched_fire(uv_timer_t *t);

static void
sched_arm(void)
{
	uint64_t now = now_ms();

	if (nheap == 0) {
		uv_timer_stop(&sched_timer);
		return;
	}
	uv_timer_start(&sched_timer, sched_fire, heap[0]->due_ms > now ? heap[0]->due_ms - now : 0, 0);
}

static void
schedule(struct msg *m, uint64_t due_ms)
{
	if (nheap == aheap) {
		aheap = aheap ? aheap * 2 : 1024;
		heap = xreallocarray(heap, aheap, sizeof(*heap));
	}
	m->where = MSG_SCHEDULED;
	m->due_ms = due_ms;
	m->heap_idx = nheap;
	heap[nheap++] = m;
	heap_up(nheap - 1);
	if (m->heap_idx == 0)
		sched_arm();
}

/* ---- final dispositions ---- */

static void
msg_finish(struct msg *m)
{
	m->where = MSG_DONE;
	if (m->spooled)
		spool_remove(K->spool, m);
	nmsgs_total--;
	msg_free(&m);
}

static const struct kconf_queue *
rules_for(const struct msg *m)
{
	return kconf_queue_for(K->conf, m->queue, m->tenant, m->domain);
}

/* Remember a transient failure for inspect-message. */
static void
msg_set_error(struct msg *m, int code, const char *enh, const char *text)
{
	free(m->last_error);
	m->last_error = xasprintf("%d%s%s %s", code, enh != NULL && *enh ? " " : "", enh != NULL ? enh : "",
				  text != NULL ? text : "");
}

static void
log_all(struct msg *m, enum jlog_kind kind, int code, const char *enh, const char *text,
	const struct ready_queue *rq, const char *peer)
{
	if (kind == JLOG_TRANSIENT)
		msg_set_error(m, code, enh, text);
	struct jlog_rec r = {.kind = kind, .m = m, .code = code, .enhanced = enh, .text = text,
			     .site = rq != NULL ? rq->site : NULL,
			     .source = rq != NULL ? rq->source_name : NULL, .peer_address = peer};

	jlog_write(&r);
}

/*
 * The message failed transiently (its remaining recipients keep their
 * reply): reschedule with backoff, or expire it if that would pass max_age.
 */
static void
msg_retry(struct msg *m)
{
	const struct kconf_queue *q = rules_for(m);
	double delay = queue_retry_delay(q->retry_interval, q->max_retry_interval,
					 m->attempts ? m->attempts : 1, (double)rand() / RAND_MAX);
	double now = wall_now();

	if (now + delay > m->created + q->max_age) {
		log_all(m, JLOG_EXPIRATION, 551, "5.4.7", "Next delivery time would be after the expiration time",
			NULL, NULL);
		K->expired += m->nrcpts;
		msg_finish(m);
		return;
	}
	/* The backoff survives a restart: the file keeps the attempt count and the due time. */
	m->due_wall = now + delay;
	if (m->spooled)
		spool_touch(K->spool, m);
	schedule(m, now_ms() + (uint64_t)(delay * 1000));
}

static void
msg_transient_all(struct msg *m, struct ready_queue *rq, int code, const char *enh,
		  const char *text, const char *peer)
{
	log_all(m, JLOG_TRANSIENT, code, enh, text, rq, peer);
	K->transient += m->nrcpts;
	if (rq != NULL)
		rq->transient += m->nrcpts;
	msg_retry(m);
}

static void
msg_bounce_all(struct msg *m, const struct ready_queue *rq, int code, const char *enh,
	       const char *text, const char *peer)
{
	log_all(m, JLOG_BOUNCE, code, enh, text, rq, peer);
	K->bounced += m->nrcpts;
	msg_finish(m);
}

/* ---- scheduled -> routing ---- */

static struct egress_pool *
live_pool(const char *name)
{
	size_t i;

	for (i = 0; i < npools; i++)
		if (strcmp(pools[i].name, name) == 0)
			return &pools[i];
	for (i = 0; i < npools; i++)
		if (strcmp(pools[i].name, EGRESS_POOL_UNSPECIFIED) == 0)
			return &pools[i];
	return NULL;
}

static int
expired(struct msg *m)
{
	const struct kconf_queue *q = rules_for(m);

	if (wall_now() <= m->created + q->max_age)
		return 0;
	log_all(m, JLOG_EXPIRATION, 551, "5.4.7", "Message has expired", NULL, NULL);
	K->expired += m->nrcpts;
	msg_finish(m);
	return 1;
}

static void
sched_fire(uv_timer_t *t)
{
	uint64_t now = now_ms();
	unsigned n = 0;

	(void)t;
	/* Bounded per turn so reception keeps its share of the loop. */
	while (nheap > 0 && heap[0]->due_ms <= now && n++ < 2000) {
		struct msg *m = heap_pop();

		if (!expired(m))
			route(m);
	}
	sched_arm();
}

static struct dest *
dest_get(const char *domain)
{
	struct dest *d;

	for (d = dests; d != NULL; d = d->next)
		if (strcmp(d->domain, domain) == 0)
			return d;
	d = xcalloc(1, sizeof(*d));
	d->domain = xstrdup(domain);
	d->next = dests;
	dests = d;
	return d;
}

/* rq's merged egress path from the current shaping (rq->path must be released first). */
static void
rq_resolve_path(struct ready_queue *rq)
{
	egress_shaping_resolve(&K->conf->shaping, rq->own_domain ? rq->domain : NULL, rq->site,
			       rq->source_name, &rq->path);
}

static void shaping_site_learnt(const char *domain, const char *site);

static struct ready_queue *
rq_get(const char *source, const struct dest *d)
{
	struct ready_queue *rq;
	const struct egress_source *src;

	/*
	 * A domain with an mx_rollup = false entry is shaped on its own (seed
	 * 002: foo.com on yahoo.com's MXs keeps its own max_message_rate), so
	 * it gets its own ready queue; every other domain of a site shares the
	 * site's, whose path therefore does not depend on which domain came first.
	 */
	int own = egress_shaping_own_domain(&K->conf->shaping, d->domain) != NULL;

	for (rq = rqs; rq != NULL; rq = rq->next)
		if (strcmp(rq->source_name, source) == 0 && strcmp(rq->site, d->site) == 0 &&
		    rq->own_domain == own && (!own || strcmp(rq->domain, d->domain) == 0))
			return rq;
	rq = xcalloc(1, sizeof(*rq));
	rq->source_name = xstrdup(source);
	rq->site = xstrdup(d->site);
	rq->domain = xstrdup(d->domain);
	rq->own_domain = own;
	rq->name = own ? xasprintf("%s->%s@%s", source, d->domain, d->site)
		       : xasprintf("%s->%s", source, d->site);
	src = kconf_source(K->conf, source);
	if (src != NULL)
		egress_source_copy(&rq->source, src);
	else
		egress_source_init(&rq->source, source);
	rq_resolve_path(rq);
	rq->mx = xcalloc(d->nmx ? d->nmx : 1, sizeof(*rq->mx));
	for (rq->nmx = 0; rq->nmx < d->nmx; rq->nmx++) {
		rq->mx[rq->nmx].host = xstrdup(d->mx[rq->nmx].host);
		rq->mx[rq->nmx].pref = d->mx[rq->nmx].pref;
	}
	rq->next = rqs;
	rqs = rq;
	log_trace(LOG_TRACE_QUEUE, "ready queue %s created (connection_limit %ld)", rq->name,
		  rq->path.connection_limit);
	return rq;
}

static void
rq_push(struct ready_queue *rq, struct msg *m)
{
	m->where = MSG_READY;
	m->rq = rq;
	m->next = NULL;
	m->prev = rq->tail;
	if (rq->tail != NULL)
		rq->tail->next = m;
	else
		rq->head = m;
	rq->tail = m;
	rq->nmsgs++;
}

static struct msg *
rq_pop(struct ready_queue *rq)
{
	struct msg *m = rq->head;

	if (m == NULL)
		return NULL;
	rq->head = m->next;
	if (rq->head != NULL)
		rq->head->prev = NULL;
	else
		rq->tail = NULL;
	m->next = m->prev = NULL;
	rq->nmsgs--;
	return m;
}

static void
to_ready(struct msg *m, struct dest *d)
{
	const struct kconf_queue *q = rules_for(m);
	struct egress_pool *pool = live_pool(q->egress_pool != NULL ? q->egress_pool
								    : EGRESS_POOL_UNSPECIFIED);
	const char *source = pool != NULL ? egress_pool_next(pool) : EGRESS_POOL_UNSPECIFIED;
	struct ready_queue *rq = rq_get(source != NULL ? source : EGRESS_POOL_UNSPECIFIED, d);
	const struct qrule *r;

	/* A bounce rule made while the message waited for its MX lookup. */
	if (rules != NULL && (r = rule_for_msg(QRULE_BOUNCE, m)) != NULL) {
		msg_admin_bounce(m, r);
		return;
	}
	if (rq->path.suspended) {
		schedule(m, now_ms() + 60000);
		return;
	}
	if ((long)rq->nmsgs >= rq->path.max_ready) {
		/* Over max_ready: back to the scheduled queue for up to a minute, no attempt counted. */
		schedule(m, now_ms() + 1000 + (uint64_t)(rand() % 59000));
		return;
	}
	rq_push(rq, m);
	dispatch(rq);
}

static void
dest_answer(const struct dns_result *r, void *arg)
{
	struct dest *d = arg;
	struct msg *m, *next;
	char *site = NULL;
	size_t i;

	d->state = 0;
	m = d->wait_head;
	d->wait_head = d->wait_tail = NULL;
	if (r->status == DNS_OK || r->status == DNS_NODATA)
		site = dns_site_name_for(r, d->domain);
	if (site != NULL) {
		for (i = 0; i < d->nmx; i++)
			free(d->mx[i].host);
		free(d->mx);
		free(d->site);
		d->site = site;
		d->nmx = r->n_mx;
		d->mx = xcalloc(r->n_mx ? r->n_mx : 1, sizeof(*d->mx));
		for (i = 0; i < r->n_mx; i++) {
			d->mx[i].host = xstrdup(r->mx[i].host);
			d->mx[i].pref = r->mx[i].pref;
		}
		d->state = 2;
		d->expire_ms = now_ms() + 1000 * (uint64_t)(r->ttl < DEST_MAX_CACHE_S ? (r->ttl ? r->ttl : 1) : DEST_MAX_CACHE_S);
		if (egress_shaping_set_site(&K->conf->shaping, d->domain, site))
			shaping_site_learnt(d->domain, site);
	}
	log_trace(LOG_TRACE_DNS, "MX %s: %s site %s", d->domain, dns_status_str(r->status),
		  site != NULL ? site : "-");
	for (; m != NULL; m = next) {
		next = m->next;
		m->next = m->prev = NULL;
		m->attempts++;
		if (site != NULL) {
			m->attempts--;
			to_ready(m, d);
		} else if (r->status == DNS_NULL_MX) {
			msg_bounce_all(m, NULL, 556, "5.1.10", "Recipient address has null MX", NULL);
		} else if (r->status == DNS_NXDOMAIN) {
			char text[300];

			snprintf(text, sizeof(text), "Domain %s does not exist (NXDOMAIN)", d->domain);
			msg_bounce_all(m, NULL, 550, "5.1.2", text, NULL);
		} else {
			char text[300];

			snprintf(text, sizeof(text), "MX lookup for %s failed: %s (%s)", d->domain,
				 dns_status_str(r->status), r->why);
			msg_transient_all(m, NULL, 451, "4.4.3", text, NULL);
		}
	}
}

static void
route(struct msg *m)
{
	struct dest *d;

	if (rules_hold(m))
		return;
	d = dest_get(m->domain);
	m->where = MSG_ROUTING;
	if (d->state == 2 && d->expire_ms > now_ms()) {
		to_ready(m, d);
		return;
	}
	m->next = NULL;
	if (d->wait_tail != NULL)
		d->wait_tail->next = m;
	else
		d->wait_head = m;
	d->wait_tail = m;
	if (d->state != 1) {
		d->state = 1;
		dns_resolve_mx(resolver, d->domain, dest_answer, d);
	}
}

void
queue_insert(struct msg *m, int recovered)
{
	nmsgs_total++;
	if (recovered || m->attempts > 0) {
		/* Recovered mail waits for the retry time its file recorded, if any. */
		double wait = m->due_wall - wall_now(), cap = rules_for(m)->max_retry_interval;

		if (cap > 0 && wait > cap)
			wait = cap; /* the clock went back, or the config changed */

		schedule(m, now_ms() + (wait > 0 ? (uint64_t)(wait * 1000) : 0));
		return;
	}
	route(m);
}

size_t
queue_count(void)
{
	return nmsgs_total;
}

/* ---- ready queue hosts ---- */

static void
rq_hosts_fail_all(struct ready_queue *rq)
{
	struct msg *m;

	while ((m = rq_pop(rq)) != NULL) {
		m->attempts++;
		if (rq->hosts_error_code >= 500)
			msg_bounce_all(m, rq, rq->hosts_error_code, "5.4.4", rq->hosts_error, NULL);
		else
			msg_transient_all(m, rq, rq->hosts_error_code, "4.4.3", rq->hosts_error, NULL);
	}
}

/* A ready queue's new host list while its TLS policy is decided (tlspolicy.c). */
struct hosts_pending {
	struct ready_queue *rq;
	struct rq_host *hosts;
	size_t nhosts;
};

static void
rq_hosts_free(struct rq_host *hosts, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(hosts[i].name);
	free(hosts);
}

/*
 * The TLS policy of each MX host is known (tls[i] for rq->mx[i]; NULL: the
 * resolution was dropped at exit): hosts that may not be used (MTA-STS
 * enforce, bogus TLSA) leave the list, the rest carry their policy. The new
 * list replaces the old one only now, so connections failing over in the
 * meantime used the old hosts with their old policy.
 */
static void
rq_policy_done(void *arg, const struct host_tls *const *tls, size_t n)
{
	struct hosts_pending *hp = arg;
	struct ready_queue *rq = hp->rq;
	char why[sizeof(rq->hosts_error)] = "";
	size_t i, kept = 0, len;

	if (tls == NULL) {
		rq_hosts_free(hp->hosts, hp->nhosts);
		free(hp);
		return;
	}
	for (i = 0; i < hp->nhosts; i++) {
		const struct host_tls *t = hp->hosts[i].mx < n ? tls[hp->hosts[i].mx] : NULL;

		if (tlspolicy_host_skip(t)) {
			len = strlen(why);
			if (strstr(why, tlspolicy_host_why(t)) == NULL)
				snprintf(why + len, sizeof(why) - len, "%s%s", len ? "; " : "", tlspolicy_host_why(t));
			free(hp->hosts[i].name);
			continue;
		}
		hp->hosts[i].tls = t;
		hp->hosts[kept++] = hp->hosts[i];
	}
	rq_hosts_free(rq->hosts, rq->nhosts);
	rq->hosts = hp->hosts;
	rq->nhosts = kept;
	free(hp);
	/*
	 * Hosts (and the TLS policy each carries) are reused for a minute, or
	 * for mta_sts.recheck_interval if shorter, so that a new MTA-STS policy
	 * applies no later than the check that found it.
	 */
	{
		uint64_t keep = 60000;

		if (rq->path.enable_mta_sts && K->conf->mta_sts_recheck > 0 &&
		    K->conf->mta_sts_recheck * 1000 < keep)
			keep = (uint64_t)(K->conf->mta_sts_recheck * 1000);
		rq->hosts_expire_ms = now_ms() + keep;
	}
	if (kept == 0) {
		rq->hosts_state = 3;
		rq->hosts_error_code = 451;
		snprintf(rq->hosts_error, sizeof(rq->hosts_error), "no MX host of %s may be used: %s",
			 rq->domain, why);
		rq_hosts_fail_all(rq);
		rq->hosts_expire_ms = now_ms(); /* try again for the next message */
		return;
	}
	rq->hosts_state = 2;
	dispatch(rq);
}

static void
rq_hosts_done(struct ready_queue *rq)
{
	struct rq_host *hosts;
	struct tlspolicy_host *th;
	struct hosts_pending *hp;
	size_t i, j, n = 0, nhosts = 0;
	int prohibited = 0;

	for (i = 0; i < rq->nmx; i++)
		if (rq->addr_results[i] != NULL && rq->addr_results[i]->status == DNS_OK)
			n += rq->addr_results[i]->n_addrs;
	hosts = xcalloc(n ? n : 1, sizeof(*hosts));
	th = xcalloc(rq->nmx ? rq->nmx : 1, sizeof(*th));
	for (i = 0; i < rq->nmx; i++) {
		const struct dns_result *r = rq->addr_results[i];

		th[i].name = rq->mx[i].host;
		th[i].addr_secure = r != NULL && r->status == DNS_OK && r->secure;
		if (r == NULL || r->status != DNS_OK)
			continue;
		for (j = 0; j < r->n_addrs; j++) {
			const struct sockaddr *sa = (const struct sockaddr *)&r->addrs[j].ss;

			if (rq->path.prohibited_hosts != NULL &&
			    cidr_list_match(rq->path.prohibited_hosts, sa)) {
				prohibited = 1;
				snprintf(rq->hosts_error, sizeof(rq->hosts_error),
					 "MX host %s address %s is in prohibited_hosts", rq->mx[i].host,
					 r->addrs[j].text);
			}
			if (rq->path.skip_hosts != NULL && cidr_list_match(rq->path.skip_hosts, sa))
				continue;
			hosts[nhosts].name = xstrdup(rq->mx[i].host);
			hosts[nhosts].sa = r->addrs[j].ss;
			snprintf(hosts[nhosts].text, sizeof(hosts[nhosts].text), "%s", r->addrs[j].text);
			hosts[nhosts].mx = i;
			nhosts++;
		}
	}
	for (i = 0; i < rq->nmx; i++)
		dns_result_free(&rq->addr_results[i]);
	free(rq->addr_results);
	rq->addr_results = NULL;
	if (prohibited || nhosts == 0) {
		rq_hosts_free(rq->hosts, rq->nhosts);
		rq->hosts = hosts;
		rq->nhosts = 0;
		rq->hosts_state = 3;
		if (prohibited) {
			rq->hosts_error_code = 550;
		} else if (n > 0) {
			rq->hosts_error_code = 550;
			snprintf(rq->hosts_error, sizeof(rq->hosts_error),
				 "every MX host address of %s is in skip_hosts", rq->site);
		} else {
			rq->hosts_error_code = 451;
			snprintf(rq->hosts_error, sizeof(rq->hosts_error),
				 "no address found for any MX host of %s", rq->site);
		}
		for (i = 0; i < nhosts; i++)
			free(hosts[i].name);
		free(th);
		rq_hosts_fail_all(rq);
		rq->hosts_expire_ms = now_ms(); /* try again for the next message */
		return;
	}
	/* enable_mta_sts / enable_dane: each host's TLS policy, then rq_policy_done. */
	hp = xcalloc(1, sizeof(*hp));
	hp->rq = rq;
	hp->hosts = hosts;
	hp->nhosts = nhosts;
	{
		struct tlspolicy_query q = {.owner = rq, .loop = K->loop, .conf = K->conf, .res = resolver,
					    .path = &rq->path,
					    .port = (unsigned)egress_port(&rq->path, &rq->source),
					    .domain = rq->domain, .hosts = th, .n = rq->nmx};

		tlspolicy_resolve(&q, rq_policy_done, hp);
	}
	free(th);
}

struct addr_ctx {
	struct ready_queue *rq;
	size_t i;
};

static void
addr_answer(const struct dns_result *r, void *arg)
{
	struct addr_ctx *ac = arg;
	struct ready_queue *rq = ac->rq;

	rq->addr_results[ac->i] = dns_result_dup(r);
	free(ac);
	if (--rq->addr_pending == 0)
		rq_hosts_done(rq);
}

static void
rq_resolve_hosts(struct ready_queue *rq)
{
	size_t i;

	rq->hosts_state = 1;
	rq->addr_pending = rq->nmx;
	rq->addr_results = xcalloc(rq->nmx ? rq->nmx : 1, sizeof(*rq->addr_results));
	if (rq->nmx == 0) {
		rq_hosts_done(rq);
		return;
	}
	for (i = 0; i < rq->nmx; i++) {
		struct addr_ctx *ac = xmalloc(sizeof(*ac));

		ac->rq = rq;
		ac->i = i;
		dns_resolve_addrs(resolver, rq->mx[i].host, addr_answer, ac);
	}
}

/* ---- rate throttles: max_connection_rate, max_message_rate (seed 001) ---- */

static uint64_t throttle_armed_ms; /* loop time throttle_timer is set for; 0: stopped */

static uint64_t
now_us(void)
{
	return uv_hrtime() / 1000;
}

static int
rate_set(const struct throttle_spec *spec)
{
	return spec->limit > 0 && spec->period_us > 0;
}

/*
 * One GCRA decision for this path: 1 admitted; 0 denied with the wait in
 * whole milliseconds (rounded up, so the retry is admitted).
 */
static int
rate_admit(struct throttle_state *st, const struct throttle_spec *spec, uint64_t *wait_ms_r)
{
	uint64_t wait_us = 0;

	if (!rate_set(spec) || throttle_check(st, spec, now_us(), &wait_us) != 0)
		return 1;
	*wait_ms_r = (wait_us + 999) / 1000;
	return 0;
}

static void
throttle_fire(uv_timer_t *t)
{
	struct ready_queue *rq;
	uint64_t now = now_ms(), next = 0;

	(void)t;
	throttle_armed_ms = 0;
	for (rq = rqs; rq != NULL; rq = rq->next)
		if (rq->wake_ms != 0 && rq->wake_ms <= now) {
			rq->wake_ms = 0;
			dispatch(rq); /* may set a new wake_ms (and arm the timer) */
		}
	for (rq = rqs; rq != NULL; rq = rq->next)
		if (rq->wake_ms != 0 && (next == 0 || rq->wake_ms < next))
			next = rq->wake_ms;
	if (next != 0 && (throttle_armed_ms == 0 || next < throttle_armed_ms)) {
		throttle_armed_ms = next;
		uv_timer_start(&throttle_timer, throttle_fire, next > now ? next - now : 0, 0);
	}
}

/* Dispatch rq again at loop time t (a throttle's wait is over). */
static void
rq_wake_at(struct ready_queue *rq, uint64_t t)
{
	uint64_t now = now_ms();

	if (rq->wake_ms != 0 && rq->wake_ms <= t)
		return;
	rq->wake_ms = t;
	if (throttle_armed_ms == 0 || t < throttle_armed_ms) {
		throttle_armed_ms = t;
		uv_timer_start(&throttle_timer, throttle_fire, t > now ? t - now : 0, 0);
	}
}

/*
 * A throttle's wait is longer than idle_timeout: every message waiting in
 * the ready queue goes back to the scheduled queue until the throttle
 * permits, without counting an attempt (seed 001).
 */
static void
rq_delay_all(struct ready_queue *rq, uint64_t wait_ms, const char *which)
{
	uint64_t due = now_ms() + wait_ms;
	struct msg *m;
	size_t n = 0;

	rq->throttled_until_ms = due;
	while ((m = rq_pop(rq)) != NULL) {
		m->rq = NULL;
		schedule(m, due);
		n++;
	}
	log_trace(LOG_TRACE_QUEUE, "%s: %s: %zu messages delayed %.3f s (longer than idle_timeout %us)",
		  rq->name, which, n, (double)wait_ms / 1000.0, (unsigned)rq->path.idle_timeout);
}

/* ---- connections ---- */

static void
oc_maybe_free(struct oconn *oc)
{
	struct ready_queue *rq = oc->rq;

	if (oc->idle_open || oc->nclients > 0)
		return;
	if (oc->prev != NULL)
		oc->prev->next = oc->next;
	else
		rq->conns = oc->next;
	if (oc->next != NULL)
		oc->next->prev = oc->prev;
	rq->nconns--;
	free(oc);
	if (!K->stopping)
		dispatch(rq);
}

static void
idle_closed(uv_handle_t *h)
{
	struct oconn *oc = h->data;

	oc->idle_open = 0;
	oc_maybe_free(oc);
}

static void
client_closed(struct smtp_client *c, void *arg)
{
	struct oconn *oc = arg;

	oc->nclients--;
	if (c == oc->client)
		oc->client = NULL;
	/* No current client: this connection is over. */
	if (oc->client == NULL && oc->idle_open && !uv_is_closing((uv_handle_t *)&oc->idle))
		uv_close((uv_handle_t *)&oc->idle, idle_closed);
	oc_maybe_free(oc);
}

static void
oc_quit(struct oconn *oc)
{
	if (oc->quitting)
		return;
	oc->quitting = 1;
	if (oc->idle_open)
		uv_timer_stop(&oc->idle);
	if (oc->client != NULL)
		smtp_client_quit(oc->client);
}

static void idle_fire(uv_timer_t *t);
static void throttle_wait_fire(uv_timer_t *t);

/* Send the next message on an idle, ready connection; or idle; or quit. */
static void
oc_next(struct oconn *oc)
{
	struct ready_queue *rq = oc->rq;
	struct msg *m;
	uint64_t wait_ms = 0;
	int r;

	if (K->stopping || oc->stale ||
	    oc->deliveries >= (unsigned)rq->path.max_deliveries_per_connection ||
	    rq_admin_suspended(rq) || rq->path.suspended) {
		oc_quit(oc);
		return;
	}
	if (rq->nmsgs > 0 && !rate_admit(&rq->msg_thr, &rq->path.max_message_rate, &wait_ms)) {
		rq->throttled_until_ms = now_ms() + wait_ms;
		if (wait_ms <= rq->path.idle_timeout * 1000) {
			/* Wait on this connection, then try again. */
			uv_timer_start(&oc->idle, throttle_wait_fire, wait_ms, 0);
			return;
		}
		rq_delay_all(rq, wait_ms, "max_message_rate");
	}
	m = rq_pop(rq);
	if (m == NULL) {
		uv_timer_start(&oc->idle, idle_fire, rq->path.idle_timeout * 1000, 0);
		return;
	}
	uv_timer_stop(&oc->idle);
	m->where = MSG_INFLIGHT;
	m->attempts++;
	oc->m = m;
	oc->txn.sender = m->sender;
	oc->txn.recipients = (const char *const *)m->rcpts;
	oc->txn.nrecipients = m->nrcpts;
	oc->txn.data = m->data->data;
	oc->txn.len = m->data->len;
	oc->deliveries++;
	r = smtp_client_send(oc->client, &oc->txn);
	if (r != 0) {
		oc->m = NULL;
		msg_transient_all(m, rq, 451, "4.3.0", "internal error starting the transaction",
				  smtp_client_peer_str(oc->client));
		oc_quit(oc);
	}
}

static void
idle_fire(uv_timer_t *t)
{
	struct oconn *oc = t->data;

	oc_quit(oc);
}

/* A connection's max_message_rate wait is over. */
static void
throttle_wait_fire(uv_timer_t *t)
{
	struct oconn *oc = t->data;

	if (!oc->quitting && oc->client != NULL && oc->m == NULL)
		oc_next(oc);
}

static void
on_ready(struct smtp_client *c, void *arg)
{
	struct oconn *oc = arg;

	(void)c;
	oc->ready = 1;
	oc->rq->consecutive_failures = 0;
	oc_next(oc);
}

static void
tls_strings(struct smtp_client *c, struct tls_info *ti)
{
	memset(ti, 0, sizeof(*ti));
	if (c != NULL && smtp_client_is_tls(c))
		smtp_client_tls_info(c, ti);
}

static void
on_txn_done(struct smtp_client *c, const struct smtp_txn *txn, const struct smtp_txn_result *r,
	    void *arg)
{
	struct oconn *oc = arg;
	struct ready_queue *rq = oc->rq;
	struct msg *m = oc->m;
	struct tls_info ti;
	const char *peer = smtp_client_peer_str(c);
	size_t i, kept = 0;
	int changed = 0;

	(void)txn;
	oc->m = NULL;
	tls_strings(c, &ti);
	for (i = 0; i < m->nrcpts; i++) {
		const struct smtp_reply *rep = smtp_txn_rcpt_reply(r, i);
		int cls = rep->code / 100;
		struct jlog_rec rec = {.m = m, .recipient = m->rcpts[i], .site = rq->site,
				       .source = rq->source_name, .peer_address = peer,
				       .code = rep->code, .enhanced = rep->enhanced,
				       .text = rep->text.data != NULL ? rep->text.data : "",
				       .tls_version = ti.version, .tls_cipher = ti.cipher, .client = c};

		if (cls == 2) {
			rec.kind = JLOG_DELIVERY;
			K->delivered++;
			rq->delivered++;
		} else if (cls == 5) {
			rec.kind = JLOG_BOUNCE;
			K->bounced++;
		} else {
			rec.kind = JLOG_TRANSIENT;
			K->transient++;
			rq->transient++;
			msg_set_error(m, rep->code, rep->enhanced, rec.text);
		}
		jlog_write(&rec);
		if (cls == 2 || cls == 5) {
			free(m->rcpts[i]);
			changed = 1;
		} else
			m->rcpts[kept++] = m->rcpts[i];
	}
	m->nrcpts = kept;
	if (kept == 0)
		msg_finish(m);
	else {
		if (changed && m->spooled)
			spool_rewrite(K->spool, m);
		msg_retry(m);
	}
	oc_next(oc);
}

static void
on_error(struct smtp_client *c, const struct smtp_client_error *e, void *arg)
{
	struct oconn *oc = arg;
	struct ready_queue *rq = oc->rq;
	struct msg *m = oc->m;
	char text[600];
	const char *peer = smtp_client_peer_str(c);

	snprintf(text, sizeof(text), "%s: %s%s%s", smtp_phase_str(e->phase),
		 e->text != NULL ? e->text : kumo_strerror(e->err),
		 e->reply != NULL && e->reply->text.data != NULL ? ": " : "",
		 e->reply != NULL && e->reply->text.data != NULL ? e->reply->text.data : "");
	snprintf(oc->last_error, sizeof(oc->last_error), "%s", text);
	log_trace(LOG_TRACE_SMTP_CLIENT, "%s %s: %s", rq->name, peer, text);
	smtp_client_close(c);
	if (m != NULL) {
		/* The transaction's outcome is unknown: retry it (a duplicate is possible if the dot went out). */
		oc->m = NULL;
		msg_transient_all(m, rq, e->reply != NULL && e->reply->code >= 400 && e->reply->code < 500
					     ? e->reply->code : 451,
				  e->reply != NULL && e->reply->enhanced[0] ? e->reply->enhanced : "4.4.2",
				  text, peer);
		return;
	}
	if (oc->ready || K->stopping)
		return; /* an idle connection went away */
	/* Setting up failed: try the next host. */
	if (oc->host + 1 < rq->nhosts) {
		oc->host++;
		conn_start(rq, oc);
		return;
	}
	/* Every host failed. */
	rq->consecutive_failures++;
	/* Each message failed here counts an attempt, so its retries back off. */
	if (rq->consecutive_failures > (unsigned)rq->path.consecutive_connection_failures_before_delay) {
		while ((m = rq_pop(rq)) != NULL) {
			m->attempts++;
			msg_transient_all(m, rq, 451, "4.4.1", "No answer from any hosts listed in MX", NULL);
		}
		rq->consecutive_failures = 0;
	} else if ((m = rq_pop(rq)) != NULL) {
		m->attempts++;
		msg_transient_all(m, rq, e->reply != NULL && e->reply->code / 100 == 4 ? e->reply->code : 451,
				  "4.4.1", text, peer);
	}
}

/*
 * The client TLS context for a path: the shared one, or one made for the
 * path's tls_priority / rustls_cipher_suites (kept for the daemon's life;
 * a handful of distinct strings in practice).
 */
static struct tls_ctx *
path_tls_ctx(const struct ready_queue *rq)
{
	char *prio = egress_path_tls_priority(&rq->path);
	struct prio_ctx *pc;
	struct tls_ctx_config tc = {0};
	char *err = NULL;

	if (prio == NULL || client_tls == NULL) {
		free(prio);
		return client_tls;
	}
	for (pc = prio_ctxs; pc != NULL; pc = pc->next)
		if (strcmp(pc->priority, prio) == 0)
			break;
	if (pc == NULL) {
		pc = xcalloc(1, sizeof(*pc));
		pc->priority = prio;
		prio = NULL;
		tc.priority = pc->priority;
		if (tls_ctx_new_client(&tc, &pc->ctx, &err) != 0) {
			/* Checked when the config was loaded; this is not expected. */
			log_warn("%s: TLS priority \"%s\": %s (using the default)", rq->name, pc->priority,
				 err != NULL ? err : "?");
			pc->ctx = NULL;
		}
		free(err);
		pc->next = prio_ctxs;
		prio_ctxs = pc;
	}
	free(prio);
	return pc->ctx != NULL ? pc->ctx : client_tls;
}

/* The egress source's forward proxy, if it names one (seeds 003/004). */
static void
conn_proxy_params(const struct ready_queue *rq, struct smtp_client_params *p)
{
	const struct egress_source *s = &rq->source;

	if (s->ha_proxy_server != NULL) {
		p->proxy = SMTP_PROXY_HAPROXY;
		p->proxy_server = (const struct sockaddr *)&s->ha_proxy_sa;
		p->proxy_source = (const struct sockaddr *)&s->ha_proxy_source_sa;
	} else if (s->socks5_proxy_server != NULL) {
		p->proxy = SMTP_PROXY_SOCKS5;
		p->proxy_server = (const struct sockaddr *)&s->socks5_proxy_sa;
		p->proxy_source = (const struct sockaddr *)&s->socks5_proxy_source_sa;
		p->proxy_username = s->socks5_proxy_username;
		p->proxy_password = s->socks5_proxy_password.data;
	}
}

static void
conn_start(struct ready_queue *rq, struct oconn *oc)
{
	struct smtp_client_params p;
	static const struct smtp_client_cbs cbs = {
		.ready = on_ready, .txn_done = on_txn_done, .error = on_error, .closed = client_closed};
	struct sockaddr_storage peer;
	struct rq_host *h = &rq->hosts[oc->host];
	int i, r;

	static unsigned session_seq;
	char sid[320];

	smtp_client_params_init(&p);
	/* "kc<N>@source->site": trace-smtp-client (ctlcmds.c) reads the path from trace lines. */
	snprintf(sid, sizeof(sid), "kc%u@%s", ++session_seq, rq->name);
	p.session_id = sid;
	p.ehlo_domain = egress_ehlo_domain(&rq->path, &rq->source, K->conf->hostname);
	p.tls_mode = rq->path.enable_tls;
	p.tls_ctx = path_tls_ctx(rq);
	/* enable_mta_sts / enable_dane: this host's mode, TLSA records, trust anchors (tlspolicy.c). */
	tlspolicy_client_params(K->conf, &rq->path, h->tls, rq->domain, &p);
	if (rq->source.source_sa.ss_family != 0)
		p.source_address = (const struct sockaddr *)&rq->source.source_sa;
	if (rq->path.smtp_auth_plain_username != NULL) {
		p.auth_username = rq->path.smtp_auth_plain_username;
		p.auth_password = rq->path.smtp_auth_plain_password.data != NULL
					  ? rq->path.smtp_auth_plain_password.data : "";
		p.allow_auth_plain_without_tls = rq->path.allow_smtp_auth_plain_without_tls;
	}
	conn_proxy_params(rq, &p);
	for (i = 0; i < SMTP_TIMEOUT_COUNT && i < EGRESS_NTIMEOUTS; i++)
		p.timeout_ms[i] = (unsigned)(rq->path.timeout[i] * 1000);
	peer = h->sa;
	if (peer.ss_family == AF_INET)
		((struct sockaddr_in *)&peer)->sin_port = htons((uint16_t)egress_port(&rq->path, &rq->source));
	else
		((struct sockaddr_in6 *)&peer)->sin6_port = htons((uint16_t)egress_port(&rq->path, &rq->source));
	oc->client = smtp_client_new(K->loop, &p, &cbs, oc);
	oc->nclients++;
	r = smtp_client_connect(oc->client, (struct sockaddr *)&peer, h->name);
	if (r != 0) {
		struct smtp_client_error e = {.err = r, .phase = SMTP_PHASE_CONNECT,
					      .text = kumo_strerror(r)};

		on_error(oc->client, &e, oc);
	}
}

static void
dispatch(struct ready_queue *rq)
{
	struct oconn *oc;
	uint64_t wait_ms = 0;

	if (K->stopping || rq->nmsgs == 0 || rq_admin_suspended(rq))
		return;
	if (rq->path.suspended) {
		/* Suspended (by a reload): "this pathway will not be used", as in to_ready(). */
		struct msg *m;

		while ((m = rq_pop(rq)) != NULL) {
			m->rq = NULL;
			schedule(m, now_ms() + 60000);
		}
		return;
	}
	if (rq->hosts_state != 2 || rq->hosts_expire_ms < now_ms()) {
		if (rq->hosts_state != 1)
			rq_resolve_hosts(rq);
		if (rq->hosts_state != 2)
			return;
	}
	/* Idle connections take work first. */
	for (oc = rq->conns; oc != NULL && rq->nmsgs > 0; oc = oc->next)
		if (oc->ready && oc->m == NULL && !oc->quitting && uv_is_active((uv_handle_t *)&oc->idle))
			oc_next(oc);
	/* Then new ones, up to connection_limit: one per waiting message at most. */
	while (rq->nmsgs > 0 && (long)rq->nconns < rq->path.connection_limit) {
		size_t connecting = 0;

		for (oc = rq->conns; oc != NULL; oc = oc->next)
			if (!oc->ready && !oc->quitting)
				connecting++;
		if (connecting >= rq->nmsgs)
			break;
		if (!rate_admit(&rq->conn_thr, &rq->path.max_connection_rate, &wait_ms)) {
			rq->throttled_until_ms = now_ms() + wait_ms;
			if (rq->nconns == 0 && wait_ms > rq->path.idle_timeout * 1000)
				rq_delay_all(rq, wait_ms, "max_connection_rate");
			else
				rq_wake_at(rq, now_ms() + wait_ms);
			break;
		}
		oc = xcalloc(1, sizeof(*oc));
		oc->rq = rq;
		uv_timer_init(K->loop, &oc->idle);
		oc->idle.data = oc;
		oc->idle_open = 1;
		oc->next = rq->conns;
		if (rq->conns != NULL)
			rq->conns->prev = oc;
		rq->conns = oc;
		rq->nconns++;
		conn_start(rq, oc);
	}
}

/* ---- operator rules and read-only views (the control socket) ---- */

double
queue_secs_until(uint64_t t_ms)
{
	uint64_t now = now_ms();

	return t_ms > now ? (double)(t_ms - now) / 1000.0 : 0.0;
}

const char *
qsel_str(enum qrule_sel sel)
{
	switch (sel) {
	case QSEL_DOMAIN:
		return "domain";
	case QSEL_TENANT:
		return "tenant";
	case QSEL_CAMPAIGN:
		return "campaign";
	case QSEL_READY:
		return "name";
	}
	return "?";
}

static void
rule_free(struct qrule *r)
{
	free(r->value);
	free(r->reason);
	free(r);
}

static int
rule_matches(const struct qrule *r, const struct msg *m)
{
	switch (r->sel) {
	case QSEL_DOMAIN:
		return m->domain != NULL && strcasecmp(m->domain, r->value) == 0;
	case QSEL_TENANT:
		return m->tenant != NULL && strcmp(m->tenant, r->value) == 0;
	case QSEL_CAMPAIGN:
		return m->campaign != NULL && strcmp(m->campaign, r->value) == 0;
	case QSEL_READY:
		return 0;
	}
	return 0;
}

/* The first live rule of kind matching m, or NULL. */
static const struct qrule *
rule_for_msg(enum qrule_kind kind, const struct msg *m)
{
	const struct qrule *r;
	uint64_t now = now_ms();

	for (r = rules; r != NULL; r = r->next)
		if (r->kind == kind && r->expires_ms > now && rule_matches(r, m))
			return r;
	return NULL;
}

static int
rq_admin_suspended(const struct ready_queue *rq)
{
	const struct qrule *r;
	uint64_t now = now_ms();

	for (r = rules; r != NULL; r = r->next)
		if (r->kind == QRULE_SUSPEND_READY && r->expires_ms > now &&
		    strcmp(r->value, rq->name) == 0)
			return 1;
	return 0;
}

static void
msg_admin_bounce(struct msg *m, const struct qrule *r)
{
	char text[600];

	snprintf(text, sizeof(text), "Administrative bounce: %s", r->reason);
	log_all(m, JLOG_ADMIN_BOUNCE, 551, "5.7.1", text, NULL, NULL);
	K->bounced += m->nrcpts;
	msg_finish(m);
}

/* A bounce or suspend rule takes m (1), or m may go on (0). */
static int
rules_hold(struct msg *m)
{
	const struct qrule *r;
	char text[600];
	uint64_t due;

	if (rules == NULL)
		return 0;
	if ((r = rule_for_msg(QRULE_BOUNCE, m)) != NULL) {
		msg_admin_bounce(m, r);
		return 1;
	}
	if ((r = rule_for_msg(QRULE_SUSPEND, m)) == NULL)
		return 0;
	snprintf(text, sizeof(text), "Scheduled queue suspended by an operator: %s", r->reason);
	log_all(m, JLOG_TRANSIENT, 451, "4.4.5", text, NULL, NULL);
	K->transient += m->nrcpts;
	/* Wait for the rule's end, looking again at least every minute. */
	due = r->expires_ms;
	if (due > now_ms() + 60000)
		due = now_ms() + 60000;
	schedule(m, due);
	return 1;
}

static void
heap_remove(struct msg *m)
{
	size_t i = m->heap_idx;

	if (i >= nheap || heap[i] != m)
		return;
	heap_swap(i, nheap - 1);
	nheap--;
	if (i < nheap) {
		heap_up(i);
		heap_down(i);
	}
	m->heap_idx = (size_t)-1;
}

static void
rq_unlink(struct ready_queue *rq, struct msg *m)
{
	if (m->prev != NULL)
		m->prev->next = m->next;
	else
		rq->head = m->next;
	if (m->next != NULL)
		m->next->prev = m->prev;
	else
		rq->tail = m->prev;
	m->next = m->prev = NULL;
	rq->nmsgs--;
}

/* Bounce every queued message r matches (scheduled or in a ready queue); the count. */
static size_t
bounce_now(const struct qrule *r)
{
	struct msg **hit;
	struct ready_queue *rq;
	size_t i, n = 0;

	hit = xcalloc(nheap ? nheap : 1, sizeof(*hit));
	for (i = 0; i < nheap; i++)
		if (rule_matches(r, heap[i]))
			hit[n++] = heap[i];
	for (i = 0; i < n; i++) {
		heap_remove(hit[i]);
		msg_admin_bounce(hit[i], r);
	}
	free(hit);
	for (rq = rqs; rq != NULL; rq = rq->next) {
		struct msg *m, *next;

		for (m = rq->head; m != NULL; m = next) {
			next = m->next;
			if (!rule_matches(r, m))
				continue;
			rq_unlink(rq, m);
			msg_admin_bounce(m, r);
			n++;
		}
	}
	sched_arm();
	return n;
}

/* A suspension ended: what it held may go at once (other rules still apply in route()). */
static void
rule_release(const struct qrule *r)
{
	uint64_t now = now_ms();
	size_t i;

	if (r->kind == QRULE_SUSPEND) {
		for (i = 0; i < nheap; i++)
			if (rule_matches(r, heap[i]) && heap[i]->due_ms > now) {
				struct msg *m = heap[i];

				m->due_ms = now;
				heap_up(i);
			}
		sched_arm();
	} else if (r->kind == QRULE_SUSPEND_READY) {
		struct ready_queue *rq;

		for (rq = rqs; rq != NULL; rq = rq->next)
			if (strcmp(rq->name, r->value) == 0)
				dispatch(rq);
	}
}

static void
rules_tick(uv_timer_t *t)
{
	struct qrule **pp = &rules, *r;
	uint64_t now = now_ms();

	(void)t;
	while ((r = *pp) != NULL) {
		if (r->expires_ms > now) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		log_notice("control: %s rule %u (%s %s) expired",
			   r->kind == QRULE_BOUNCE ? "bounce" : "suspend", r->id, qsel_str(r->sel),
			   r->value);
		rule_release(r);
		rule_free(r);
	}
}

const struct qrule *
queue_rule_add(enum qrule_kind kind, enum qrule_sel sel, const char *value, const char *reason,
	       double duration, size_t *bounced_r)
{
	struct qrule *r = xcalloc(1, sizeof(*r));

	r->id = ++rule_ids;
	r->kind = kind;
	r->sel = sel;
	r->value = xstrdup(value);
	r->reason = xstrdup(reason);
	if (duration < 1)
		duration = 1;
	if (duration > 10.0 * 365 * 86400)
		duration = 10.0 * 365 * 86400;
	r->expires_ms = now_ms() + (uint64_t)(duration * 1000);
	r->next = rules;
	rules = r;
	log_notice("control: %s rule %u: %s %s for %.0fs: %s",
		   kind == QRULE_BOUNCE ? "bounce" : "suspend", r->id, qsel_str(sel), value, duration,
		   reason);
	if (bounced_r != NULL)
		*bounced_r = kind == QRULE_BOUNCE ? bounce_now(r) : 0;
	return r;
}

int
queue_rule_cancel(enum qrule_kind kind, unsigned id)
{
	struct qrule **pp, *r;

	for (pp = &rules; (r = *pp) != NULL; pp = &r->next)
		if (r->id == id && r->kind == kind) {
			*pp = r->next;
			log_notice("control: rule %u cancelled", id);
			rule_release(r);
			rule_free(r);
			return 0;
		}
	return KUMO_ENOTFOUND;
}

const struct qrule *
queue_rules(void)
{
	return rules;
}

struct rq_info *
queue_ready_info(size_t *n_r)
{
	struct ready_queue *rq;
	struct rq_info *a;
	size_t n = 0;

	for (rq = rqs; rq != NULL; rq = rq->next)
		n++;
	a = xcalloc(n ? n : 1, sizeof(*a));
	n = 0;
	for (rq = rqs; rq != NULL; rq = rq->next) {
		struct rq_info *i = &a[n++];
		struct oconn *oc;
		size_t busy = 0;

		i->name = rq->name;
		i->source = rq->source_name;
		i->site = rq->site;
		i->domain = rq->domain;
		i->delivered = rq->delivered;
		i->transient = rq->transient;
		i->connections = rq->nconns;
		for (oc = rq->conns; oc != NULL; oc = oc->next)
			if (oc->m != NULL)
				busy++;
		i->queued = rq->nmsgs + busy;
		i->consecutive_failures = rq->consecutive_failures;
		i->path = &rq->path;
		i->hosts_error = rq->hosts_error[0] ? rq->hosts_error : NULL;
		i->next_permit_in = queue_secs_until(rq->throttled_until_ms);
		i->next_due_in = rq->nmsgs == 0 ? 0
				 : rq->wake_ms > 0 ? queue_secs_until(rq->wake_ms)
						   : i->next_permit_in;
		if (rq_admin_suspended(rq) || rq->path.suspended)
			i->status = "suspended";
		else if (rq->throttled_until_ms > now_ms())
			i->status = "throttled";
		else if (rq->consecutive_failures > 0)
			i->status = "delayed";
		else if (rq->nconns > 0 || rq->nmsgs > 0)
			i->status = "active";
		else
			i->status = "idle";
	}
	*n_r = n;
	return a;
}

struct conn_info *
queue_ready_conns(const char *name, size_t *n_r)
{
	struct ready_queue *rq;
	struct oconn *oc;
	struct conn_info *a;
	size_t n = 0;

	*n_r = 0;
	for (rq = rqs; rq != NULL && strcmp(rq->name, name) != 0; rq = rq->next)
		;
	if (rq == NULL || rq->nconns == 0)
		return NULL;
	a = xcalloc(rq->nconns, sizeof(*a));
	for (oc = rq->conns; oc != NULL && n < rq->nconns; oc = oc->next) {
		struct conn_info *ci = &a[n++];

		if (oc->client == NULL)
			ci->state = oc->quitting ? "closing" : "waiting";
		else if (oc->ready && oc->m == NULL)
			ci->state = "idle";
		else
			ci->state = smtp_client_state_str(smtp_client_state(oc->client));
		if (oc->host < rq->nhosts && rq->hosts != NULL)
			snprintf(ci->host, sizeof(ci->host), "%s %s", rq->hosts[oc->host].name,
				 oc->client != NULL ? smtp_client_peer_str(oc->client)
						    : rq->hosts[oc->host].text);
		ci->deliveries = oc->deliveries;
		ci->msg_id = oc->m != NULL ? oc->m->id : NULL;
	}
	*n_r = n;
	return a;
}

struct sq_info *
queue_sched_info(size_t *n_r)
{
	size_t n = 0, alloc = 16, i, j;
	struct sq_info *a = xcalloc(alloc, sizeof(*a));

	for (i = 0; i < nheap; i++) {
		const struct msg *m = heap[i];
		double due = queue_secs_until(m->due_ms);

		for (j = 0; j < n; j++)
			if (strcmp(a[j].name, m->queue) == 0)
				break;
		if (j == n) {
			if (n == alloc) {
				alloc *= 2;
				a = xreallocarray(a, alloc, sizeof(*a));
			}
			memset(&a[n], 0, sizeof(a[n]));
			a[n].name = xstrdup(m->queue);
			a[n].domain = xstrdup(m->domain);
			a[n].tenant = m->tenant != NULL ? xstrdup(m->tenant) : NULL;
			a[n].campaign = m->campaign != NULL ? xstrdup(m->campaign) : NULL;
			a[n].next_due_in = due;
			a[n].status = rule_for_msg(QRULE_BOUNCE, m) != NULL    ? "bouncing"
				      : rule_for_msg(QRULE_SUSPEND, m) != NULL ? "suspended"
									       : "active";
			n++;
		}
		a[j].queued++;
		if (due < a[j].next_due_in)
			a[j].next_due_in = due;
	}
	*n_r = n;
	return a;
}

void
queue_sched_info_free(struct sq_info *a, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(a[i].name);
		free(a[i].domain);
		free(a[i].tenant);
		free(a[i].campaign);
	}
	free(a);
}

void
queue_gauges(size_t *scheduled_r, size_t *ready_r)
{
	*scheduled_r = nheap;
	*ready_r = nmsgs_total > nheap ? nmsgs_total - nheap : 0;
}

const struct msg *
queue_find_msg(const char *id)
{
	struct ready_queue *rq;
	struct dest *d;
	struct oconn *oc;
	struct msg *m;
	size_t i;

	for (i = 0; i < nheap; i++)
		if (strcmp(heap[i]->id, id) == 0)
			return heap[i];
	for (rq = rqs; rq != NULL; rq = rq->next) {
		for (m = rq->head; m != NULL; m = m->next)
			if (strcmp(m->id, id) == 0)
				return m;
		for (oc = rq->conns; oc != NULL; oc = oc->next)
			if (oc->m != NULL && strcmp(oc->m->id, id) == 0)
				return oc->m;
	}
	for (d = dests; d != NULL; d = d->next)
		for (m = d->wait_head; m != NULL; m = m->next)
			if (strcmp(m->id, id) == 0)
				return m;
	return NULL;
}

const char *
queue_where_str(enum msg_where w)
{
	static const char *const names[] = {"new", "scheduled", "routing", "ready", "in-flight",
					    "done"};

	return (unsigned)w < KUMO_NELEM(names) ? names[w] : "?";
}

/* ---- set-up, reload, shutdown ---- */

static void
flush_fire(uv_timer_t *t)
{
	(void)t;
	jlog_flush();
}

static void
load_pools(void)
{
	size_t i;

	for (i = 0; i < npools; i++)
		egress_pool_release(&pools[i]);
	free(pools);
	npools = K->conf->npools;
	pools = xcalloc(npools ? npools : 1, sizeof(*pools));
	for (i = 0; i < npools; i++)
		egress_pool_copy(&pools[i], &K->conf->pools[i]);
}

int
queue_start(struct kumod *k, char **err_r)
{
	struct dns_options o;
	char *err = NULL;
	struct tls_ctx_config tc = {0};

	K = k;
	srand((unsigned)time(NULL) ^ (unsigned)getpid()); /* retry jitter, max_ready delays */
	uv_timer_init(k->loop, &sched_timer);
	uv_timer_init(k->loop, &flush_timer);
	uv_timer_start(&flush_timer, flush_fire, 200, 200);
	uv_timer_init(k->loop, &rules_timer);
	uv_timer_start(&rules_timer, rules_tick, 1000, 1000);
	uv_timer_init(k->loop, &throttle_timer);
	load_pools();
	shaping_dns_options(k->conf, &o);
	resolver = dns_resolver_new(k->loop, &o, &err);
	if (resolver == NULL) {
		*err_r = xasprintf("dns: %s", err != NULL ? err : "cannot start the resolver");
		free(err);
		return KUMO_EINVAL;
	}
	if (tls_ctx_new_client(&tc, &client_tls, &err) != 0) {
		log_warn("TLS client context: %s (STARTTLS disabled)", err != NULL ? err : "?");
		free(err);
		client_tls = NULL;
	}
	return 0;
}

static void rq_rebuild_paths(void);

void
queue_reconfigure(void)
{
	load_pools();
	rq_rebuild_paths();
}

const char *
queue_known_site(const char *domain)
{
	struct dest *d;

	for (d = dests; d != NULL; d = d->next)
		if (d->state == 2 && d->site != NULL && strcasecmp(d->domain, domain) == 0)
			return d->site;
	return NULL;
}

struct site_lookup {
	queue_site_cb cb;
	void *arg;
	char *domain;
};

static void
site_answer(const struct dns_result *r, void *arg)
{
	struct site_lookup *l = arg;
	char *site = NULL;

	if (r->status == DNS_OK || r->status == DNS_NODATA)
		site = dns_site_name_for(r, l->domain);
	l->cb(site, site != NULL ? NULL : r->why, l->arg);
	free(site);
	free(l->domain);
	free(l);
}

void
queue_lookup_site(const char *domain, queue_site_cb cb, void *arg)
{
	struct site_lookup *l = xcalloc(1, sizeof(*l));

	l->cb = cb;
	l->arg = arg;
	l->domain = xstrdup(domain);
	dns_resolve_mx(resolver, domain, site_answer, l);
}

void
queue_known_sites(struct egress_shaping *sh)
{
	struct dest *d;

	for (d = dests; d != NULL; d = d->next)
		if (d->state == 2 && d->site != NULL)
			egress_shaping_set_site(sh, d->domain, d->site);
}

/*
 * Live traffic taught a shaping entry its site (its start-up lookup had
 * failed) or a new one (the MX set changed): rebuild the paths, and say so
 * if the entry now collides with another.
 */
static void
shaping_site_learnt(const char *domain, const char *site)
{
	char *err = NULL;

	log_info("shaping: the entry for %s speaks for site %s now", domain, site);
	if (egress_shaping_check_sites(&K->conf->shaping, &err) != 0) {
		log_error("%s (settings of the first entry for that site apply; fix the configuration "
			  "and reload)",
			  err);
		free(err);
	}
	rq_rebuild_paths();
}

/*
 * Paths are rebuilt from the current shaping; new connections use them.
 * A queue whose domain gained or lost an mx_rollup = false entry keeps its
 * name and messages; new messages go to the queue that now fits.
 */
static void
rq_rebuild_paths(void)
{
	struct ready_queue *rq;

	for (rq = rqs; rq != NULL; rq = rq->next) {
		const struct egress_source *src = kconf_source(K->conf, rq->source_name);
		struct oconn *oc;

		/*
		 * Connections were made with the old settings (port, TLS mode,
		 * source, EHLO name): idle ones close now, busy ones after their
		 * message, so the next message goes out as the new config says.
		 */
		for (oc = rq->conns; oc != NULL; oc = oc->next) {
			oc->stale = 1;
			if (oc->m == NULL && oc->ready)
				oc_quit(oc);
		}
		struct throttle_spec old_conn = rq->path.max_connection_rate;
		struct throttle_spec old_msg = rq->path.max_message_rate;

		egress_path_release(&rq->path);
		rq_resolve_path(rq);
		/* A changed rate starts fresh (the state's fraction is relative to the limit). */
		if (memcmp(&old_conn, &rq->path.max_connection_rate, sizeof(old_conn)) != 0)
			throttle_reset(&rq->conn_thr);
		if (memcmp(&old_msg, &rq->path.max_message_rate, sizeof(old_msg)) != 0)
			throttle_reset(&rq->msg_thr);
		egress_source_release(&rq->source);
		if (src != NULL)
			egress_source_copy(&rq->source, src);
		else
			egress_source_init(&rq->source, rq->source_name);
		rq->hosts_expire_ms = 0;
		dispatch(rq);
	}
}

/* Connections still busy (with a message in flight). */
size_t
queue_inflight(void)
{
	struct ready_queue *rq;
	struct oconn *oc;
	size_t n = 0;

	for (rq = rqs; rq != NULL; rq = rq->next)
		for (oc = rq->conns; oc != NULL; oc = oc->next)
			if (oc->m != NULL)
				n++;
	return n;
}

/* Connections of any kind still open. */
size_t
queue_connections(void)
{
	struct ready_queue *rq;
	size_t n = 0;

	for (rq = rqs; rq != NULL; rq = rq->next)
		n += rq->nconns;
	return n;
}

void
queue_shutdown(void)
{
	struct ready_queue *rq;
	struct oconn *oc;

	/* Idle connections quit now; busy ones quit after their transaction (oc_next). */
	for (rq = rqs; rq != NULL; rq = rq->next)
		for (oc = rq->conns; oc != NULL; oc = oc->next)
			if (oc->m == NULL)
				oc_quit(oc);
}

/* Close everything at once (the shutdown bound passed). Messages stay spooled. */
void
queue_abort(void)
{
	struct ready_queue *rq;
	struct oconn *oc;

	for (rq = rqs; rq != NULL; rq = rq->next)
		for (oc = rq->conns; oc != NULL; oc = oc->next) {
			/* Left in the spool: tried again at the next start. */
			if (oc->m != NULL)
				nmsgs_total--;
			msg_free(&oc->m);
			if (oc->client != NULL)
				smtp_client_close(oc->client);
			else if (oc->idle_open && !uv_is_closing((uv_handle_t *)&oc->idle))
				uv_close((uv_handle_t *)&oc->idle, idle_closed);
		}
}

void
queue_stop_timers(void)
{
	uv_timer_stop(&sched_timer);
	uv_close((uv_handle_t *)&sched_timer, NULL);
	uv_close((uv_handle_t *)&flush_timer, NULL);
	uv_timer_stop(&rules_timer);
	uv_close((uv_handle_t *)&rules_timer, NULL);
	uv_timer_stop(&throttle_timer);
	uv_close((uv_handle_t *)&throttle_timer, NULL);
	dns_resolver_free(&resolver);
	tls_ctx_unref(&client_tls);
	while (prio_ctxs != NULL) {
		struct prio_ctx *pc = prio_ctxs;

		prio_ctxs = pc->next;
		tls_ctx_unref(&pc->ctx);
		free(pc->priority);
		free(pc);
	}
}

static void
free_list(struct msg *m)
{
	struct msg *next;

	for (; m != NULL; m = next) {
		next = m->next;
		msg_free(&m);
	}
}

/* After the loop has stopped: free every queue structure (messages stay spooled). */
void
queue_free_all(void)
{
	size_t i;

	while (nheap > 0) {
		struct msg *m = heap_pop();

		msg_free(&m);
	}
	free(heap);
	heap = NULL;
	aheap = 0;
	while (dests != NULL) {
		struct dest *d = dests;

		dests = d->next;
		free_list(d->wait_head);
		for (i = 0; i < d->nmx; i++)
			free(d->mx[i].host);
		free(d->mx);
		free(d->site);
		free(d->domain);
		free(d);
	}
	while (rqs != NULL) {
		struct ready_queue *rq = rqs;

		rqs = rq->next;
		free_list(rq->head);
		for (i = 0; i < rq->nmx; i++)
			free(rq->mx[i].host);
		free(rq->mx);
		for (i = 0; i < rq->nhosts; i++)
			free(rq->hosts[i].name);
		free(rq->hosts);
		if (rq->addr_results != NULL) {
			for (i = 0; i < rq->nmx; i++)
				dns_result_free(&rq->addr_results[i]);
			free(rq->addr_results);
		}
		egress_path_release(&rq->path);
		egress_source_release(&rq->source);
		free(rq->name);
		free(rq->source_name);
		free(rq->site);
		free(rq->domain);
		free(rq);
	}
	for (i = 0; i < npools; i++)
		egress_pool_release(&pools[i]);
	free(pools);
	pools = NULL;
	npools = 0;
	while (rules != NULL) {
		struct qrule *r = rules;

		rules = r->next;
		rule_free(r);
	}
}
