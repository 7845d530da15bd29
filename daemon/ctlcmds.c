/*
 * ctlcmds.c: kumod's control commands, the table daemon/control.c serves.
 * Each handler reads its arguments from the request's args object (every
 * member checked for type: a client can send anything), asks queue.c for
 * a view or a change, and answers in the shapes doc/control-protocol.md
 * defines. The streams (watch) keep their own timers and forget their
 * control_stream when it is cancelled.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "buf.h"
#include "egress.h"
#include "kumo.h"
#include "log.h"

#include "control.h"
#include "kumod.h"

static double started_wall;

static double
wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- argument helpers: 0 (absent: default kept), 1 (set), or an error in *err_r ---- */

static int
arg_str(json_t *args, const char *name, const char **out, char **err_r)
{
	json_t *v = json_object_get(args, name);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v)) {
		*err_r = xasprintf("\"%s\" must be a string", name);
		return KUMO_EINVAL;
	}
	*out = json_string_value(v);
	return 1;
}

static int
arg_int(json_t *args, const char *name, json_int_t *out, char **err_r)
{
	json_t *v = json_object_get(args, name);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		*err_r = xasprintf("\"%s\" must be a non-negative integer", name);
		return KUMO_EINVAL;
	}
	*out = json_integer_value(v);
	return 1;
}

static int
arg_bool(json_t *args, const char *name, int *out, char **err_r)
{
	json_t *v = json_object_get(args, name);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_boolean(v)) {
		*err_r = xasprintf("\"%s\" must be true or false", name);
		return KUMO_EINVAL;
	}
	*out = json_is_true(v);
	return 1;
}

static json_int_t
secs(double s)
{
	return (json_int_t)ceil(s);
}

/* ---- queue-summary ---- */

static int
cmp_rq_volume(const void *a, const void *b)
{
	const struct rq_info *x = a, *y = b;

	if (x->queued != y->queued)
		return x->queued < y->queued ? 1 : -1;
	return strcmp(x->name, y->name);
}

static int
cmp_rq_name(const void *a, const void *b)
{
	const struct rq_info *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static int
cmp_sq_volume(const void *a, const void *b)
{
	const struct sq_info *x = a, *y = b;

	if (x->queued != y->queued)
		return x->queued < y->queued ? 1 : -1;
	return strcmp(x->name, y->name);
}

static int
cmp_sq_name(const void *a, const void *b)
{
	const struct sq_info *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static json_t *
rq_row(const struct rq_info *r)
{
	return json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:s}", "name", r->name, "source", r->source,
			 "site", r->site, "delivered", (json_int_t)r->delivered, "transient",
			 (json_int_t)r->transient, "connections", (json_int_t)r->connections,
			 "queued", (json_int_t)r->queued, "status", r->status);
}

static json_t *
sq_row(const struct sq_info *q, int with_domain)
{
	json_t *o = json_object();

	json_object_set_new(o, "name", json_string(q->name));
	if (with_domain)
		json_object_set_new(o, "domain", json_string(q->domain));
	json_object_set_new(o, "queued", json_integer((json_int_t)q->queued));
	json_object_set_new(o, "next_due_in", json_integer(secs(q->next_due_in)));
	json_object_set_new(o, "status", json_string(q->status));
	return o;
}

static int
cmd_queue_summary(struct control_session *s, json_int_t id, json_t *args, void *arg,
		  json_t **result_r, char **err_r)
{
	struct rq_info *rq;
	struct sq_info *sq;
	size_t nrq, nsq, i, shown;
	json_int_t limit = -1;
	int by_volume = 0;
	const char *domain = NULL;
	json_t *ready, *sched;

	(void)s, (void)id, (void)arg;
	if (arg_bool(args, "by_volume", &by_volume, err_r) < 0 ||
	    arg_int(args, "limit", &limit, err_r) < 0 || arg_str(args, "domain", &domain, err_r) < 0)
		return KUMO_EINVAL;
	rq = queue_ready_info(&nrq);
	sq = queue_sched_info(&nsq);
	if (nrq > 0)
		qsort(rq, nrq, sizeof(*rq), by_volume ? cmp_rq_volume : cmp_rq_name);
	if (nsq > 0)
		qsort(sq, nsq, sizeof(*sq), by_volume ? cmp_sq_volume : cmp_sq_name);
	ready = json_array();
	for (i = shown = 0; i < nrq && (limit < 0 || (json_int_t)shown < limit); i++) {
		if (domain != NULL && strcasecmp(rq[i].domain, domain) != 0 &&
		    strcasecmp(rq[i].site, domain) != 0)
			continue;
		json_array_append_new(ready, rq_row(&rq[i]));
		shown++;
	}
	sched = json_array();
	for (i = shown = 0; i < nsq && (limit < 0 || (json_int_t)shown < limit); i++) {
		if (domain != NULL && strcasecmp(sq[i].domain, domain) != 0)
			continue;
		json_array_append_new(sched, sq_row(&sq[i], 1));
		shown++;
	}
	free(rq);
	queue_sched_info_free(sq, nsq);
	*result_r = json_pack("{s:o,s:o}", "ready", ready, "scheduled", sched);
	return CONTROL_DONE;
}

/* ---- rules ---- */

static json_t *
rule_json(const struct qrule *r)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", json_integer(r->id));
	json_object_set_new(o, qsel_str(r->sel), json_string(r->value));
	json_object_set_new(o, "reason", json_string(r->reason));
	json_object_set_new(o, "expires_in", json_integer(secs(queue_secs_until(r->expires_ms))));
	return o;
}

static json_t *
rules_json(enum qrule_kind kind)
{
	const struct qrule *r;
	json_t *a = json_array();

	for (r = queue_rules(); r != NULL; r = r->next)
		if (r->kind == kind && queue_secs_until(r->expires_ms) > 0)
			json_array_append_new(a, rule_json(r));
	return a;
}

/* The duration and reason shared by suspend, bounce and suspend-ready-q. */
static int
rule_common(json_t *args, json_int_t *duration, const char **reason, char **err_r)
{
	*duration = 300;
	if (arg_int(args, "duration", duration, err_r) < 0)
		return KUMO_EINVAL;
	if (*duration == 0) {
		*err_r = xstrdup("\"duration\" must be at least 1 second");
		return KUMO_EINVAL;
	}
	if (arg_str(args, "reason", reason, err_r) <= 0) {
		if (*err_r == NULL)
			*err_r = xstrdup("\"reason\" is required");
		return KUMO_EINVAL;
	}
	if (**reason == '\0') {
		*err_r = xstrdup("\"reason\" must not be empty");
		return KUMO_EINVAL;
	}
	return 0;
}

static int
sched_rule(json_t *args, enum qrule_kind kind, json_t **result_r, char **err_r)
{
	static const char *const names[] = {"domain", "tenant", "campaign"};
	static const enum qrule_sel sels[] = {QSEL_DOMAIN, QSEL_TENANT, QSEL_CAMPAIGN};
	const char *value = NULL, *reason = NULL, *v;
	enum qrule_sel sel = QSEL_DOMAIN;
	json_int_t duration;
	const struct qrule *r;
	size_t i, n = 0, bounced = 0;
	int rc;

	for (i = 0; i < KUMO_NELEM(names); i++) {
		v = NULL;
		rc = arg_str(args, names[i], &v, err_r);
		if (rc < 0)
			return rc;
		if (rc > 0) {
			value = v;
			sel = sels[i];
			n++;
		}
	}
	if (n != 1) {
		*err_r = xstrdup("give exactly one of \"domain\", \"tenant\", \"campaign\"");
		return KUMO_EINVAL;
	}
	if (*value == '\0') {
		*err_r = xasprintf("\"%s\" must not be empty", qsel_str(sel));
		return KUMO_EINVAL;
	}
	if (rule_common(args, &duration, &reason, err_r) < 0)
		return KUMO_EINVAL;
	r = queue_rule_add(kind, sel, value, reason, (double)duration, &bounced);
	*result_r = rule_json(r);
	if (kind == QRULE_BOUNCE)
		json_object_set_new(*result_r, "bounced", json_integer((json_int_t)bounced));
	return CONTROL_DONE;
}

static int
rule_cancel(json_t *args, enum qrule_kind kind, json_t **result_r, char **err_r)
{
	json_int_t rid = -1;

	if (arg_int(args, "id", &rid, err_r) <= 0) {
		if (*err_r == NULL)
			*err_r = xstrdup("\"id\" is required");
		return KUMO_EINVAL;
	}
	if (rid > 0xffffffffLL || queue_rule_cancel(kind, (unsigned)rid) != 0) {
		*err_r = xasprintf("no %s rule with id %lld",
				   kind == QRULE_BOUNCE	   ? "bounce"
				   : kind == QRULE_SUSPEND ? "suspend"
							   : "ready-queue suspend",
				   (long long)rid);
		return KUMO_ENOTFOUND;
	}
	*result_r = json_pack("{s:I}", "cancelled", rid);
	return CONTROL_DONE;
}

static int
cmd_suspend(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **result_r,
	    char **err_r)
{
	(void)s, (void)id, (void)arg;
	return sched_rule(args, QRULE_SUSPEND, result_r, err_r);
}

static int
cmd_bounce(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **result_r,
	   char **err_r)
{
	(void)s, (void)id, (void)arg;
	return sched_rule(args, QRULE_BOUNCE, result_r, err_r);
}

static int
cmd_suspend_list(struct control_session *s, json_int_t id, json_t *args, void *arg,
		 json_t **result_r, char **err_r)
{
	(void)s, (void)id, (void)args, (void)arg, (void)err_r;
	*result_r = json_pack("{s:o}", "suspensions", rules_json(QRULE_SUSPEND));
	return CONTROL_DONE;
}

static int
cmd_bounce_list(struct control_session *s, json_int_t id, json_t *args, void *arg,
		json_t **result_r, char **err_r)
{
	(void)s, (void)id, (void)args, (void)arg, (void)err_r;
	*result_r = json_pack("{s:o}", "bounces", rules_json(QRULE_BOUNCE));
	return CONTROL_DONE;
}

static int
cmd_suspend_rq_list(struct control_session *s, json_int_t id, json_t *args, void *arg,
		    json_t **result_r, char **err_r)
{
	(void)s, (void)id, (void)args, (void)arg, (void)err_r;
	*result_r = json_pack("{s:o}", "suspensions", rules_json(QRULE_SUSPEND_READY));
	return CONTROL_DONE;
}

static int
cmd_suspend_cancel(struct control_session *s, json_int_t id, json_t *args, void *arg,
		   json_t **result_r, char **err_r)
{
	(void)s, (void)id, (void)arg;
	return rule_cancel(args, QRULE_SUSPEND, result_r, err_r);
}

static int
cmd_bounce_cancel(struct control_session *s, json_int_t id, json_t *args, void *arg,
		  json_t **result_r, char **err_r)
{
	(void)s, (void)id, (void)arg;
	return rule_cancel(args, QRULE_BOUNCE, result_r, err_r);
}

static int
cmd_suspend_rq_cancel(struct control_session *s, json_int_t id, json_t *args, void *arg,
		      json_t **result_r, char **err_r)
{
	(void)s, (void)id, (void)arg;
	return rule_cancel(args, QRULE_SUSPEND_READY, result_r, err_r);
}

static int
cmd_suspend_rq(struct control_session *s, json_int_t id, json_t *args, void *arg,
	       json_t **result_r, char **err_r)
{
	const char *name = NULL, *reason = NULL;
	json_int_t duration;

	(void)s, (void)id, (void)arg;
	if (arg_str(args, "name", &name, err_r) <= 0 || *name == '\0') {
		if (*err_r == NULL)
			*err_r = xstrdup("\"name\" (a ready queue, SOURCE->SITE) is required");
		return KUMO_EINVAL;
	}
	if (rule_common(args, &duration, &reason, err_r) < 0)
		return KUMO_EINVAL;
	/* A path that has no queue yet may be suspended too (it takes effect when it appears). */
	*result_r = rule_json(
		queue_rule_add(QRULE_SUSPEND_READY, QSEL_READY, name, reason, (double)duration, NULL));
	return CONTROL_DONE;
}

/* ---- egress path config as JSON ---- */

/* The doc's origin words for egress.c's origin strings (built-in < default < site < domain < source). */
static const char *
origin_word(const char *origin, const struct egress_shaping *sh, int f, const char *source)
{
	size_t i, j;

	if (origin == NULL || strcmp(origin, "built-in") == 0 || strcmp(origin, "builtin") == 0)
		return "built-in";
	if (strcmp(origin, "shaping.default") == 0)
		return "default";
	for (i = 0; i < sh->ndomains; i++) {
		const struct egress_shaping_domain *d = &sh->domains[i];

		if (d->origin == NULL || strcmp(d->origin, origin) != 0)
			continue;
		if (source != NULL)
			for (j = 0; j < d->nsources; j++)
				if (strcmp(d->sources[j].name, source) == 0 &&
				    (d->sources[j].path.set & ((uint64_t)1 << f)) != 0)
					return "source";
		return d->mx_rollup ? "site" : "domain";
	}
	return origin;
}

static json_t *
field_value(const struct egress_path *p, int f)
{
	const struct egress_field *fd = &egress_path_fields()[f];
	char text[1024];

	switch (fd->type) {
	case EGRESS_T_INT:
		return json_integer(*(const long *)(const void *)((const char *)p + fd->offset));
	case EGRESS_T_BOOL:
		return json_boolean(*(const int *)(const void *)((const char *)p + fd->offset));
	default:
		egress_path_format(p, f, text, sizeof(text));
		return json_string(text);
	}
}

/* {key: value} of a merged path, keys as in kumod.conf. */
static json_t *
path_object(const struct egress_path *p)
{
	json_t *o = json_object();
	int f;

	for (f = 0; f < EGRESS_PATH_NFIELDS; f++)
		json_object_set_new(o, egress_path_fields()[f].name, field_value(p, f));
	return o;
}

/* The resolve-egress-path result for (domain, site, source); site may be NULL. */
static json_t *
resolve_result(const struct kumod *k, const char *domain, const char *site, const char *source,
	       const char *why)
{
	struct egress_path p;
	json_t *cfg, *res;
	int f, own = egress_shaping_own_domain(&k->conf->shaping, domain) != NULL;
	char *queue = NULL;

	egress_shaping_resolve(&k->conf->shaping, domain, site, source, &p);
	cfg = json_array();
	for (f = 0; f < EGRESS_PATH_NFIELDS; f++)
		json_array_append_new(cfg, json_pack("{s:s,s:o,s:s}", "key",
						     egress_path_fields()[f].name, "value",
						     field_value(&p, f), "origin",
						     origin_word(p.origin[f], &k->conf->shaping, f,
								 source)));
	/* The ready queue this domain's mail goes to (the first source of a pool is not known here). */
	if (site != NULL)
		queue = own ? xasprintf("%s->%s@%s", source != NULL ? source : EGRESS_POOL_UNSPECIFIED,
					domain, site)
			    : xasprintf("%s->%s", source != NULL ? source : EGRESS_POOL_UNSPECIFIED,
					site);
	egress_path_release(&p);
	res = json_pack("{s:s,s:o,s:o,s:b,s:o,s:o,s:o}", "domain", domain, "site",
			site != NULL ? json_string(site) : json_null(), "source",
			source != NULL ? json_string(source) : json_null(), "own_queue", own,
			"ready_queue", queue != NULL ? json_string(queue) : json_null(), "site_error",
			why != NULL ? json_string(why) : json_null(), "config", cfg);
	free(queue);
	return res;
}

struct resolve_req {
	struct kumod *k;
	struct control_stream *st; /* NULL once the client went away */
	char *domain, *source;
};

static void
resolve_cancel(void *arg)
{
	((struct resolve_req *)arg)->st = NULL;
}

static void
resolve_site_answer(const char *site, const char *why, void *arg)
{
	struct resolve_req *r = arg;

	/* The source may have gone with a reload meanwhile: then without it. */
	if (r->source != NULL && kconf_source(r->k->conf, r->source) == NULL &&
	    strcmp(r->source, EGRESS_POOL_UNSPECIFIED) != 0) {
		free(r->source);
		r->source = NULL;
	}
	if (r->st != NULL)
		control_stream_finish(r->st, resolve_result(r->k, r->domain, site, r->source, why));
	free(r->domain);
	free(r->source);
	free(r);
}

static int
cmd_resolve(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **result_r,
	    char **err_r)
{
	struct kumod *k = arg;
	const char *domain = NULL, *source = NULL, *site;
	struct resolve_req *r;
	char *lower;

	if (arg_str(args, "domain", &domain, err_r) <= 0 || *domain == '\0') {
		if (*err_r == NULL)
			*err_r = xstrdup("\"domain\" is required");
		return KUMO_EINVAL;
	}
	if (arg_str(args, "source", &source, err_r) < 0)
		return KUMO_EINVAL;
	if (source != NULL && kconf_source(k->conf, source) == NULL &&
	    strcmp(source, EGRESS_POOL_UNSPECIFIED) != 0) {
		*err_r = xasprintf("unknown egress source \"%s\"", source);
		return KUMO_ENOTFOUND;
	}
	lower = xstrdup(domain);
	for (char *p = lower; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	/* The site as delivery sees it: a cached MX answer, else a lookup now. */
	if ((site = queue_known_site(lower)) != NULL) {
		*result_r = resolve_result(k, lower, site, source, NULL);
		free(lower);
		return CONTROL_DONE;
	}
	r = xcalloc(1, sizeof(*r));
	r->k = k;
	r->domain = lower;
	r->source = source != NULL ? xstrdup(source) : NULL;
	r->st = control_stream_open(s, id, resolve_cancel, r);
	queue_lookup_site(lower, resolve_site_answer, r);
	return CONTROL_LATER;
}

/* ---- inspect ---- */

static int
cmd_inspect_sched(struct control_session *s, json_int_t id, json_t *args, void *arg,
		  json_t **result_r, char **err_r)
{
	struct kumod *k = arg;
	const char *name = NULL;
	struct sq_info *sq;
	size_t n, i;
	const struct kconf_queue *q;
	const struct qrule *r;
	json_t *rl;

	(void)s, (void)id;
	if (arg_str(args, "name", &name, err_r) <= 0) {
		if (*err_r == NULL)
			*err_r = xstrdup("\"name\" is required");
		return KUMO_EINVAL;
	}
	sq = queue_sched_info(&n);
	for (i = 0; i < n; i++)
		if (strcmp(sq[i].name, name) == 0)
			break;
	if (i == n) {
		queue_sched_info_free(sq, n);
		*err_r = xasprintf("unknown scheduled queue \"%s\"", name);
		return KUMO_ENOTFOUND;
	}
	q = kconf_queue_for(k->conf, sq[i].name, sq[i].tenant, sq[i].domain);
	rl = json_array();
	for (r = queue_rules(); r != NULL; r = r->next) {
		const char *want = r->sel == QSEL_DOMAIN   ? sq[i].domain
				   : r->sel == QSEL_TENANT ? sq[i].tenant
				   : r->sel == QSEL_CAMPAIGN ? sq[i].campaign
							     : NULL;

		if (r->kind == QRULE_SUSPEND_READY || want == NULL ||
		    (r->sel == QSEL_DOMAIN ? strcasecmp(want, r->value) : strcmp(want, r->value)) != 0)
			continue;
		json_array_append_new(
			rl, json_pack("{s:s,s:I,s:s,s:I}", "kind",
				      r->kind == QRULE_BOUNCE ? "bounce" : "suspend", "id",
				      (json_int_t)r->id, "reason", r->reason, "expires_in",
				      secs(queue_secs_until(r->expires_ms))));
	}
	*result_r = json_pack("{s:s,s:s,s:o,s:o,s:I,s:I,s:I,s:I,s:s,s:o}", "name", sq[i].name,
			      "domain", sq[i].domain, "tenant",
			      sq[i].tenant ? json_string(sq[i].tenant) : json_null(), "campaign",
			      sq[i].campaign ? json_string(sq[i].campaign) : json_null(), "queued",
			      (json_int_t)sq[i].queued, "next_due_in", secs(sq[i].next_due_in),
			      "retry_interval", (json_int_t)q->retry_interval, "max_age",
			      (json_int_t)q->max_age, "status", sq[i].status, "rules", rl);
	queue_sched_info_free(sq, n);
	return CONTROL_DONE;
}

static int
cmd_inspect_ready(struct control_session *s, json_int_t id, json_t *args, void *arg,
		  json_t **result_r, char **err_r)
{
	const char *name = NULL;
	struct rq_info *rq, *r;
	size_t n, i;
	char rate[64];
	json_t *thr;

	(void)s, (void)id, (void)arg;
	if (arg_str(args, "name", &name, err_r) <= 0) {
		if (*err_r == NULL)
			*err_r = xstrdup("\"name\" is required");
		return KUMO_EINVAL;
	}
	rq = queue_ready_info(&n);
	for (i = 0; i < n; i++)
		if (strcmp(rq[i].name, name) == 0)
			break;
	if (i == n) {
		free(rq);
		*err_r = xasprintf("unknown ready queue \"%s\"", name);
		return KUMO_ENOTFOUND;
	}
	r = &rq[i];
	thr = json_object();
	egress_path_format(r->path, EGRESS_F_MAX_CONNECTION_RATE, rate, sizeof(rate));
	json_object_set_new(thr, "max_connection_rate", json_string(rate));
	egress_path_format(r->path, EGRESS_F_MAX_MESSAGE_RATE, rate, sizeof(rate));
	json_object_set_new(thr, "max_message_rate", json_string(rate));
	json_object_set_new(thr, "next_permit_in", json_integer((json_int_t)ceil(r->next_permit_in)));
	*result_r = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:o}", "name",
			      r->name, "source", r->source, "site", r->site, "domain", r->domain,
			      "status", r->status,
			      "connections", (json_int_t)r->connections, "queued",
			      (json_int_t)r->queued, "delivered", (json_int_t)r->delivered,
			      "transient", (json_int_t)r->transient, "consecutive_failures",
			      (json_int_t)r->consecutive_failures, "next_due_in", secs(r->next_due_in),
			      "throttle", thr, "config", path_object(r->path), "last_error",
			      r->hosts_error ? json_string(r->hosts_error) : json_null());
	{
		size_t nc, j;
		struct conn_info *ci = queue_ready_conns(r->name, &nc);
		json_t *ca = json_array();

		for (j = 0; j < nc; j++)
			json_array_append_new(
				ca, json_pack("{s:s,s:s,s:I,s:o}", "state", ci[j].state, "host",
					      ci[j].host, "deliveries", (json_int_t)ci[j].deliveries,
					      "message", ci[j].msg_id != NULL ? json_string(ci[j].msg_id)
									: json_null()));
		json_object_set_new(*result_r, "connection_states", ca);
		free(ci);
	}
	free(rq);
	return CONTROL_DONE;
}

static int
cmd_inspect_msg(struct control_session *s, json_int_t id, json_t *args, void *arg,
		json_t **result_r, char **err_r)
{
	const char *mid = NULL;
	const struct msg *m;
	json_t *rc;
	size_t i;

	(void)s, (void)id, (void)arg;
	if (arg_str(args, "id", &mid, err_r) <= 0) {
		if (*err_r == NULL)
			*err_r = xstrdup("\"id\" (a spool id) is required");
		return KUMO_EINVAL;
	}
	m = queue_find_msg(mid);
	if (m == NULL) {
		*err_r = xasprintf("unknown message \"%s\" (not queued here)", mid);
		return KUMO_ENOTFOUND;
	}
	rc = json_array();
	for (i = 0; i < m->nrcpts; i++)
		json_array_append_new(rc, json_string(m->rcpts[i]));
	*result_r = json_pack("{s:s,s:s,s:o,s:s,s:I,s:I,s:f,s:I,s:n,s:s}", "id", m->id, "sender",
			      m->sender != NULL ? m->sender : "", "recipients", rc, "queue",
			      m->queue != NULL ? m->queue : "", "size",
			      (json_int_t)(m->data != NULL ? m->data->len : 0), "attempts",
			      (json_int_t)m->attempts, "received", m->created, "next_due_in",
			      m->where == MSG_SCHEDULED ? secs(queue_secs_until(m->due_ms))
							: (json_int_t)0,
			      "last_error", "where", queue_where_str(m->where));
	json_object_set_new(*result_r, "last_error",
			    m->last_error != NULL ? json_string(m->last_error) : json_null());
	return CONTROL_DONE;
}

/* ---- metrics ---- */

static void
metric(struct buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
	buf_appendf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
		    (unsigned long long)v);
}

static long
rss_bytes(void)
{
	FILE *fp = fopen("/proc/self/statm", "r");
	long pages = 0, resident = 0;

	if (fp == NULL)
		return 0;
	if (fscanf(fp, "%ld %ld", &pages, &resident) != 2)
		resident = 0;
	fclose(fp);
	return resident * sysconf(_SC_PAGESIZE);
}

static int
cmd_metrics(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **result_r,
	    char **err_r)
{
	struct kumod *k = arg;
	struct buf b;
	size_t sched, ready, n, i;
	struct rq_info *rq;

	(void)s, (void)id, (void)args, (void)err_r;
	buf_init(&b, 0);
	queue_gauges(&sched, &ready);
	metric(&b, "kumo_received_total", "counter", "Messages received (per recipient domain).",
	       k->received);
	metric(&b, "kumo_delivered_total", "counter", "Recipients delivered.", k->delivered);
	metric(&b, "kumo_transient_total", "counter", "Transient failures (per recipient).",
	       k->transient);
	metric(&b, "kumo_bounced_total", "counter", "Recipients bounced.", k->bounced);
	metric(&b, "kumo_expired_total", "counter", "Recipients expired.", k->expired);
	metric(&b, "kumo_scheduled_messages", "gauge", "Messages in scheduled queues.", sched);
	metric(&b, "kumo_ready_messages", "gauge", "Messages in ready queues or in flight.", ready);
	metric(&b, "kumo_connections", "gauge", "Open outbound SMTP connections.",
	       queue_connections());
	metric(&b, "kumo_smtp_sessions", "gauge", "Open inbound SMTP sessions.", listener_sessions());
	rq = queue_ready_info(&n);
	if (n > 0) {
		buf_puts(&b, "# HELP kumo_ready_queue_queued Messages queued per ready queue.\n"
			     "# TYPE kumo_ready_queue_queued gauge\n");
		for (i = 0; i < n; i++) {
			const char *p;

			buf_puts(&b, "kumo_ready_queue_queued{queue=\"");
			/* Label values escape backslash, quote and newline (exposition format 0.0.4). */
			for (p = rq[i].name; *p != '\0'; p++) {
				if (*p == '\\' || *p == '"')
					buf_putc(&b, '\\');
				if (*p == '\n')
					buf_puts(&b, "\\n");
				else
					buf_putc(&b, *p);
			}
			buf_appendf(&b, "\"} %zu\n", rq[i].queued);
		}
	}
	free(rq);
	*result_r = json_string(b.data != NULL ? b.data : "");
	buf_release(&b);
	return CONTROL_DONE;
}

/* ---- complete ---- */

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
cmd_complete(struct control_session *s, json_int_t id, json_t *args, void *arg,
	     json_t **result_r, char **err_r)
{
	struct kumod *k = arg;
	const char *kind = NULL, *prefix = "";
	const char **names = NULL;
	size_t nn = 0, an = 0, i, n, nsq;
	struct rq_info *rq;
	struct sq_info *sq;
	json_t *out;

	(void)s, (void)id;
	if (arg_str(args, "kind", &kind, err_r) <= 0) {
		if (*err_r == NULL)
			*err_r = xstrdup("\"kind\" is required (sched, ready, site, source, domain)");
		return KUMO_EINVAL;
	}
	if (arg_str(args, "prefix", &prefix, err_r) < 0)
		return KUMO_EINVAL;
	rq = queue_ready_info(&n);
	sq = queue_sched_info(&nsq);
	an = n + nsq + k->conf->nsources + k->conf->shaping.ndomains + 1;
	names = xcalloc(an, sizeof(*names));
#define ADD(x)                                                                  \
	do {                                                                    \
		if ((x) != NULL && strncmp((x), prefix, strlen(prefix)) == 0 && nn < an) \
			names[nn++] = (x);                                      \
	} while (0)
	if (strcmp(kind, "ready") == 0) {
		for (i = 0; i < n; i++)
			ADD(rq[i].name);
	} else if (strcmp(kind, "site") == 0) {
		for (i = 0; i < n; i++)
			ADD(rq[i].site);
	} else if (strcmp(kind, "source") == 0) {
		for (i = 0; i < k->conf->nsources; i++)
			ADD(k->conf->sources[i].name);
		for (i = 0; i < n; i++)
			ADD(rq[i].source);
	} else if (strcmp(kind, "sched") == 0 || strcmp(kind, "domain") == 0) {
		for (i = 0; i < nsq; i++)
			ADD(strcmp(kind, "sched") == 0 ? sq[i].name : sq[i].domain);
		if (strcmp(kind, "domain") == 0) {
			for (i = 0; i < n; i++)
				ADD(rq[i].domain);
			for (i = 0; i < k->conf->shaping.ndomains; i++)
				ADD(k->conf->shaping.domains[i].domain);
		}
	} else {
		free(names);
		free(rq);
		queue_sched_info_free(sq, nsq);
		*err_r = xasprintf("unknown completion kind \"%s\" (sched, ready, site, source, domain)",
				   kind);
		return KUMO_EINVAL;
	}
#undef ADD
	if (nn > 0)
		qsort(names, nn, sizeof(*names), cmp_str);
	out = json_array();
	for (i = 0; i < nn && json_array_size(out) < 1000; i++)
		if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
			json_array_append_new(out, json_string(names[i]));
	free(names);
	free(rq);
	queue_sched_info_free(sq, nsq);
	*result_r = json_pack("{s:o}", "names", out);
	return CONTROL_DONE;
}

/* ---- reload, set-log-filter ---- */

static int
cmd_reload(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **result_r,
	   char **err_r)
{
	(void)s, (void)id, (void)args, (void)arg;
	if (kumod_reload(err_r) != 0)
		return KUMO_EINVAL;
	*result_r = json_pack("{s:b}", "reloaded", 1);
	return CONTROL_DONE;
}

static int
cmd_set_log_filter(struct control_session *s, json_int_t id, json_t *args, void *arg,
		   json_t **result_r, char **err_r)
{
	const char *filter = NULL, *comma;
	char level[32], *names, *tok, *save = NULL;
	unsigned trace = 0, bit;
	int lv;
	struct buf out;

	(void)s, (void)id, (void)arg;
	if (arg_str(args, "filter", &filter, err_r) <= 0) {
		if (*err_r == NULL)
			*err_r = xstrdup("\"filter\" is required, e.g. \"info,trace=dns\"");
		return KUMO_EINVAL;
	}
	comma = strchr(filter, ',');
	snprintf(level, sizeof(level), "%.*s", (int)(comma ? (size_t)(comma - filter) : strlen(filter)),
		 filter);
	lv = log_level_parse(level);
	if (lv < 0) {
		*err_r = xasprintf("unknown log level \"%s\" (debug, info, notice, warn, error)", level);
		return KUMO_EINVAL;
	}
	if (comma != NULL) {
		if (strncmp(comma + 1, "trace=", 6) != 0) {
			*err_r = xasprintf("after the level, want \",trace=NAME+NAME\": \"%s\"", comma + 1);
			return KUMO_EINVAL;
		}
		names = xstrdup(comma + 7);
		for (tok = strtok_r(names, "+,", &save); tok != NULL; tok = strtok_r(NULL, "+,", &save)) {
			bit = log_trace_parse(tok);
			if (bit == 0) {
				*err_r = xasprintf("unknown trace name \"%s\" (smtp_server, smtp_client, "
						   "dns, tls, queue, spool, control, all)",
						   tok);
				free(names);
				return KUMO_EINVAL;
			}
			trace |= bit;
		}
		free(names);
	}
	log_set_level((enum log_level)lv);
	ctlcmds_set_trace(trace);
	buf_init(&out, 0);
	buf_puts(&out, log_level_str((enum log_level)lv));
	if (comma != NULL)
		buf_appendf(&out, ",%s", comma + 1);
	*result_r = json_pack("{s:s}", "filter", out.data);
	buf_release(&out);
	return CONTROL_DONE;
}

/* ---- watch ---- */

/*
 * A snapshot of 10,000 ready queues is over 2 MB of JSON every second
 * per watcher. Built as json_t objects it cost kumod ~9 % of a core (most
 * of it malloc and free); it is written as text instead, in the shape of
 * doc/control-protocol.md, and sent with control_stream_send_text().
 */
struct watch {
	struct kumod *k;
	struct control_stream *st;
	uv_timer_t timer;
	json_int_t remaining; /* snapshots left; -1 forever */
	double last_time;
	uint64_t last[4]; /* received, delivered, transient, bounced */
	/* per ready queue delivered count at the last snapshot, by name (sorted) */
	struct buf names; /* the names, each NUL-terminated */
	size_t *name_off;
	uint64_t *rq_delivered;
	size_t nrq;
};

static void
watch_closed(uv_handle_t *h)
{
	struct watch *w = h->data;

	buf_release(&w->names);
	free(w->name_off);
	free(w->rq_delivered);
	free(w);
}

static void
watch_cancel(void *arg)
{
	struct watch *w = arg;

	w->st = NULL;
	uv_timer_stop(&w->timer);
	if (!uv_is_closing((uv_handle_t *)&w->timer))
		uv_close((uv_handle_t *)&w->timer, watch_closed);
}

/* s as a JSON string. Names are ASCII in practice; anything else goes through jansson. */
static void
text_str(struct buf *b, const char *s)
{
	const unsigned char *p, *run;

	for (p = (const unsigned char *)s; *p != '\0' && *p < 0x80; p++)
		;
	if (*p != '\0') {
		json_t *v = json_string(s);
		char *t = v != NULL ? json_dumps(v, JSON_ENCODE_ANY) : NULL;

		buf_puts(b, t != NULL ? t : "\"?\""); /* not UTF-8: a placeholder */
		free(t);
		json_decref(v);
		return;
	}
	buf_putc(b, '"');
	for (run = p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p != '"' && *p != '\\' && *p >= 0x20 && *p != 0x7f)
			continue;
		buf_append(b, run, (size_t)(p - run));
		if (*p == '"' || *p == '\\') {
			buf_putc(b, '\\');
			buf_putc(b, *p);
		} else {
			buf_appendf(b, "\\u%04x", *p);
		}
		run = p + 1;
	}
	buf_append(b, run, (size_t)(p - run));
	buf_putc(b, '"');
}

/* ,"key":N (without the comma when first) */
static void
text_uint(struct buf *b, const char *key, uint64_t v)
{
	char d[24];
	size_t n = sizeof(d);

	do {
		d[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	buf_putc(b, ',');
	buf_putc(b, '"');
	buf_puts(b, key);
	buf_puts(b, "\":");
	buf_append(b, d + n, sizeof(d) - n);
}

/* ,"key":X.YYY for a non-negative rate (anything else reads as 0) */
static void
text_rate(struct buf *b, const char *key, double v)
{
	uint64_t milli = v > 0 && v < 1e15 ? (uint64_t)(v * 1000 + 0.5) : 0;

	text_uint(b, key, milli / 1000);
	buf_appendf(b, ".%03u", (unsigned)(milli % 1000));
}

static char *
snapshot(struct watch *w, size_t *len_r)
{
	struct kumod *k = w->k;
	double now = wall_now(), dt = now - w->last_time;
	uint64_t cur[4] = {k->received, k->delivered, k->transient, k->bounced};
	struct rq_info *rq;
	struct sq_info *sq;
	size_t nrq, nsq, sched, ready, i, j;
	struct buf b, names;
	size_t *off;
	uint64_t *deliv;
	double sec = w->last_time > 0 ? 1.0 / (dt > 0 ? dt : 1) : 0;

	if (dt <= 0)
		dt = 1;
	queue_gauges(&sched, &ready);
	rq = queue_ready_info(&nrq);
	sq = queue_sched_info(&nsq);
	if (nrq > 0)
		qsort(rq, nrq, sizeof(*rq), cmp_rq_name);
	if (nsq > 0)
		qsort(sq, nsq, sizeof(*sq), cmp_sq_name);
	buf_init(&b, 0);
	buf_appendf(&b, "{\"time\":%lld", (long long)now);
	text_uint(&b, "uptime", (uint64_t)(now > started_wall ? now - started_wall : 0));
	buf_puts(&b, ",\"totals\":{\"received\":");
	buf_appendf(&b, "%llu", (unsigned long long)k->received);
	text_uint(&b, "delivered", k->delivered);
	text_uint(&b, "transient", k->transient);
	text_uint(&b, "bounced", k->bounced);
	text_uint(&b, "expired", k->expired);
	text_uint(&b, "scheduled", sched);
	text_uint(&b, "ready", ready);
	text_uint(&b, "connections", queue_connections());
	text_uint(&b, "memory", (uint64_t)rss_bytes());
	buf_appendf(&b, "},\"rates\":{\"received\":%.3f",
		    cur[0] >= w->last[0] ? (double)(cur[0] - w->last[0]) * sec : 0.0);
	text_rate(&b, "delivered", cur[1] >= w->last[1] ? (double)(cur[1] - w->last[1]) * sec : 0);
	text_rate(&b, "transient", cur[2] >= w->last[2] ? (double)(cur[2] - w->last[2]) * sec : 0);
	text_rate(&b, "bounced", cur[3] >= w->last[3] ? (double)(cur[3] - w->last[3]) * sec : 0);
	buf_puts(&b, "},\"ready\":[");
	buf_init(&names, 0);
	off = xcalloc(nrq ? nrq : 1, sizeof(*off));
	deliv = xcalloc(nrq ? nrq : 1, sizeof(*deliv));
	/* Both this and the last snapshot's names are sorted: one merge pass finds each rate. */
	for (i = j = 0; i < nrq; i++) {
		const struct rq_info *r = &rq[i];
		double rate = 0;
		int c = 1;

		while (j < w->nrq && (c = strcmp(w->names.data + w->name_off[j], r->name)) < 0)
			j++;
		if (j < w->nrq && c == 0 && r->delivered >= w->rq_delivered[j])
			rate = (double)(r->delivered - w->rq_delivered[j]) / dt;
		buf_puts(&b, i > 0 ? ",{\"name\":" : "{\"name\":");
		text_str(&b, r->name);
		buf_puts(&b, ",\"source\":");
		text_str(&b, r->source);
		buf_puts(&b, ",\"site\":");
		text_str(&b, r->site);
		text_uint(&b, "delivered", r->delivered);
		text_uint(&b, "transient", r->transient);
		text_uint(&b, "connections", r->connections);
		text_uint(&b, "queued", r->queued);
		buf_puts(&b, ",\"status\":");
		text_str(&b, r->status);
		text_rate(&b, "rate", rate);
		text_uint(&b, "next_permit_in",
			  r->next_permit_in > 0 ? (uint64_t)ceil(r->next_permit_in) : 0);
		text_uint(&b, "consecutive_failures", r->consecutive_failures);
		buf_puts(&b, ",\"tls\":");
		text_str(&b, tls_mode_str(r->path->enable_tls));
		buf_putc(&b, '}');
		off[i] = names.len;
		buf_append(&names, r->name, strlen(r->name) + 1);
		deliv[i] = r->delivered;
	}
	buf_release(&w->names);
	free(w->name_off);
	free(w->rq_delivered);
	w->names = names;
	w->name_off = off;
	w->rq_delivered = deliv;
	w->nrq = nrq;
	buf_puts(&b, "],\"scheduled\":[");
	for (i = 0; i < nsq; i++) {
		buf_puts(&b, i > 0 ? ",{\"name\":" : "{\"name\":");
		text_str(&b, sq[i].name);
		text_uint(&b, "queued", sq[i].queued);
		buf_puts(&b, ",\"next_due_in\":");
		buf_appendf(&b, "%lld", (long long)secs(sq[i].next_due_in));
		buf_puts(&b, ",\"status\":");
		text_str(&b, sq[i].status);
		buf_putc(&b, '}');
	}
	buf_puts(&b, "]}");
	memcpy(w->last, cur, sizeof(cur));
	w->last_time = now;
	free(rq);
	queue_sched_info_free(sq, nsq);
	return buf_steal(&b, len_r);
}

static void
watch_tick(uv_timer_t *t)
{
	struct watch *w = t->data;

	if (w->st == NULL)
		return;
	/* A client that has not read the last snapshots misses this one. */
	if (control_stream_pending(w->st) < 1024 * 1024) {
		size_t len;
		char *text = snapshot(w, &len);

		control_stream_send_text(w->st, text, len);
		free(text);
	}
	if (w->remaining > 0 && --w->remaining == 0) {
		control_stream_end(w->st, NULL);
		w->st = NULL;
		uv_timer_stop(&w->timer);
		uv_close((uv_handle_t *)&w->timer, watch_closed);
	}
}

static int
cmd_watch(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **result_r,
	  char **err_r)
{
	json_int_t interval = 1, count = -1;
	struct watch *w;

	(void)result_r;
	if (arg_int(args, "interval", &interval, err_r) < 0 ||
	    arg_int(args, "count", &count, err_r) < 0)
		return KUMO_EINVAL;
	if (interval < 1 || interval > 86400) {
		*err_r = xstrdup("\"interval\" must be 1 to 86400 seconds");
		return KUMO_EINVAL;
	}
	if (count == 0) {
		*err_r = xstrdup("\"count\" must be at least 1");
		return KUMO_EINVAL;
	}
	w = xcalloc(1, sizeof(*w));
	w->k = arg;
	w->remaining = count;
	uv_timer_init(w->k->loop, &w->timer);
	w->timer.data = w;
	w->st = control_stream_open(s, id, watch_cancel, w);
	uv_timer_start(&w->timer, watch_tick, 0, (uint64_t)interval * 1000);
	return CONTROL_LATER;
}

/* ---- inject ---- */

/*
 * One inject request. Messages are made and spooled as the request goes:
 * at most `concurrency` spool writes are outstanding at once (the window),
 * so memory holds the window, not the whole count. Each message counts as
 * received once its spool write is synced (as the listener's 250 does) and
 * goes to its queue at once; the reply comes when the last one is done.
 * `cancel` or the client going away stops new messages; those already
 * spooled stay.
 */
#define INJECT_DEFAULT_CONCURRENCY 64
#define INJECT_MAX_CONCURRENCY 10000

struct inject {
	struct control_stream *st; /* NULL once cancelled or the client went away */
	char *to, *from;
	struct blob *file;	 /* the message of "file", or NULL: generated ones */
	char *tenant, *campaign; /* from the file's headers */
	json_int_t count, size;
	json_int_t next; /* the number of the next message to make, from 1 */
	size_t window, in_flight, max_in_flight, stored;
	double t0;
	char first_id[40];
};

static void
inject_cancel(void *arg)
{
	struct inject *in = arg;

	in->st = NULL;
}

/* A spool id that cannot collide with the listener's 16-digit ones. */
static void
inject_id(char *out, size_t outlen)
{
	static uint64_t last;
	static unsigned seq;
	struct timespec ts;
	uint64_t us;

	clock_gettime(CLOCK_REALTIME, &ts);
	us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	if (us <= last)
		us = last;
	else
		seq = 0;
	last = us;
	snprintf(out, outlen, "%016llx%04x", (unsigned long long)us, seq++ & 0xffff);
}

/* The recipient for message number n: {n} replaced. */
static char *
inject_rcpt(const char *pattern, json_int_t n)
{
	struct buf b;
	const char *p, *hit;

	buf_init(&b, 0);
	for (p = pattern; (hit = strstr(p, "{n}")) != NULL; p = hit + 3) {
		buf_append(&b, p, (size_t)(hit - p));
		buf_appendf(&b, "%lld", (long long)n);
	}
	buf_puts(&b, p);
	return buf_steal(&b, NULL);
}

/* The domain part of a plain address, lower case; NULL if it has none or odd bytes. */
static char *
rcpt_domain_of(const char *rcpt)
{
	const char *at = strrchr(rcpt, '@'), *p;
	char *d;
	size_t i;

	if (at == NULL || at == rcpt || at[1] == '\0' || strlen(at + 1) > 253)
		return NULL;
	for (p = rcpt; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || (unsigned char)*p >= 0x7f)
			return NULL;
	d = xstrdup(at + 1);
	for (i = 0; d[i] != '\0'; i++)
		if (d[i] >= 'A' && d[i] <= 'Z')
			d[i] = (char)(d[i] - 'A' + 'a');
	return d;
}

/* Read an absolute path's message (at most max bytes), LF line ends made CRLF. */
static char *
inject_read_file(const char *path, size_t max, size_t *len_r, char **err_r)
{
	FILE *fp;
	struct buf b;
	int c, prev = 0;

	if (path[0] != '/') {
		*err_r = xasprintf("\"file\" must be an absolute path (the daemon reads it): %s", path);
		return NULL;
	}
	fp = fopen(path, "rb");
	if (fp == NULL) {
		*err_r = xasprintf("%s: %s", path, strerror(errno));
		return NULL;
	}
	buf_init(&b, 0);
	while ((c = getc(fp)) != EOF) {
		if (b.len + 2 > max) {
			fclose(fp);
			buf_release(&b);
			*err_r = xasprintf("%s: larger than %zu bytes", path, max);
			return NULL;
		}
		if (c == '\n' && prev != '\r')
			buf_putc(&b, '\r');
		buf_putc(&b, (char)c);
		prev = c;
	}
	fclose(fp);
	if (b.len < 2 || b.data[b.len - 1] != '\n')
		buf_puts(&b, "\r\n");
	return buf_steal(&b, len_r);
}

/* The value of header `name` in a message's header block (unfolded lines only), or NULL. */
static char *
inject_header(const char *data, size_t len, const char *name)
{
	size_t off = 0, nlen = strlen(name);

	while (off < len) {
		const char *line = data + off, *nl = memchr(line, '\n', len - off);
		size_t ll = nl != NULL ? (size_t)(nl - line) : len - off;
		size_t vb, ve;

		if (ll == 0 || (ll == 1 && line[0] == '\r'))
			return NULL; /* the end of the header block */
		if (ll > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			for (vb = nlen + 1; vb < ll && (line[vb] == ' ' || line[vb] == '\t'); vb++)
				;
			for (ve = ll; ve > vb && (line[ve - 1] == '\r' || line[ve - 1] == ' ' ||
						  line[ve - 1] == '\t');
			     ve--)
				;
			if (ve == vb || ve - vb > 200)
				return NULL;
			return xasprintf("%.*s", (int)(ve - vb), line + vb);
		}
		off += ll + 1;
	}
	return NULL;
}

static char *
inject_generate(const char *from, const char *rcpt, json_int_t n, json_int_t size, size_t *len_r)
{
	struct buf b;
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	buf_init(&b, 0);
	buf_appendf(&b,
		    "From: <%s>\r\nTo: <%s>\r\nSubject: kumoctl inject %lld\r\nDate: %s\r\n"
		    "Message-ID: <inject.%lld.%ld@%s>\r\n\r\n",
		    from, rcpt, (long long)n, date, (long long)n, (long)now,
		    kd.conf->hostname != NULL ? kd.conf->hostname : "kumod");
	while ((json_int_t)b.len < size)
		buf_puts(&b, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n");
	return buf_steal(&b, len_r);
}

/* Message number n of an inject request, ready to spool. */
static struct msg *
inject_make(struct inject *in, json_int_t n)
{
	struct msg *m = msg_new();
	char *rcpt = inject_rcpt(in->to, n), *domain = rcpt_domain_of(rcpt);

	if (domain == NULL)
		domain = xstrdup("invalid"); /* {n} cannot make an address invalid; defensive */
	inject_id(m->id, sizeof(m->id));
	m->sender = xstrdup(in->from);
	m->domain = domain;
	m->tenant = in->tenant != NULL ? xstrdup(in->tenant) : NULL;
	m->campaign = in->campaign != NULL ? xstrdup(in->campaign) : NULL;
	m->queue = queue_name(m->campaign, m->tenant, domain);
	m->peer = xstrdup("control");
	m->created = wall_now();
	m->rcpts = xcalloc(1, sizeof(char *));
	m->rcpts[0] = rcpt;
	m->nrcpts = 1;
	if (in->file != NULL) {
		m->data = blob_ref(in->file);
	} else {
		size_t len;
		char *data = inject_generate(in->from, rcpt, n, in->size, &len);

		m->data = blob_take(data, len);
	}
	return m;
}

static void
inject_free(struct inject *in)
{
	free(in->to);
	free(in->from);
	free(in->tenant);
	free(in->campaign);
	blob_unref(&in->file);
	free(in);
}

static void inject_spooled(struct msg *m, int status, void *arg);

/*
 * Fill the window with new messages; when nothing is outstanding and
 * nothing more will start, answer and free the request (in is gone then).
 */
static void
inject_pump(struct inject *in)
{
	while (in->in_flight < in->window && in->next <= in->count && in->st != NULL &&
	       !kd.stopping) {
		struct msg *m = inject_make(in, in->next++);

		/* first_id names message number 1 (or, if it fails, the first one stored) */
		if (in->next == 2)
			snprintf(in->first_id, sizeof(in->first_id), "%s", m->id);
		if (++in->in_flight > in->max_in_flight)
			in->max_in_flight = in->in_flight;
		spool_store(kd.spool, m, inject_spooled, in);
	}
	if (in->in_flight > 0)
		return;
	if (in->st != NULL)
		control_stream_finish(
			in->st,
			json_pack("{s:I,s:I,s:s,s:f,s:I,s:I}", "injected", (json_int_t)in->stored,
				  "failed", in->count - (json_int_t)in->stored, "first_id",
				  in->first_id, "seconds", wall_now() - in->t0, "concurrency",
				  (json_int_t)in->window, "max_in_flight",
				  (json_int_t)in->max_in_flight));
	inject_free(in);
}

static void
inject_spooled(struct msg *m, int status, void *arg)
{
	struct inject *in = arg;

	in->in_flight--;
	if (status != 0) {
		if (strcmp(m->id, in->first_id) == 0)
			in->first_id[0] = '\0';
		msg_free(&m); /* the spool removed its half-written file */
	} else {
		/* On disk: as the listener does once it may say 250. */
		struct jlog_rec r = {.kind = JLOG_RECEPTION, .m = m, .peer_address = "control",
				     .code = 250, .enhanced = "2.0.0"};

		m->spooled = 1;
		jlog_write(&r);
		kd.received++;
		in->stored++;
		if (in->first_id[0] == '\0')
			snprintf(in->first_id, sizeof(in->first_id), "%s", m->id);
		if (kd.stopping)
			msg_free(&m); /* spooled: the next start delivers it */
		else
			queue_insert(m, 0);
	}
	inject_pump(in);
}

static int
cmd_inject(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **result_r,
	   char **err_r)
{
	const char *to = NULL, *from = "inject@localhost", *file = NULL;
	json_int_t count = 1, size = 1024, conc = INJECT_DEFAULT_CONCURRENCY;
	struct blob *fileblob = NULL;
	struct inject *in;

	(void)arg, (void)result_r;
	if (arg_str(args, "to", &to, err_r) <= 0 || *to == '\0') {
		if (*err_r == NULL)
			*err_r = xstrdup("\"to\" is required");
		return KUMO_EINVAL;
	}
	if (arg_str(args, "from", &from, err_r) < 0 || arg_str(args, "file", &file, err_r) < 0 ||
	    arg_int(args, "count", &count, err_r) < 0 || arg_int(args, "size", &size, err_r) < 0 ||
	    arg_int(args, "concurrency", &conc, err_r) < 0)
		return KUMO_EINVAL;
	if (count < 1 || count > 1000000) {
		*err_r = xstrdup("\"count\" must be 1 to 1000000");
		return KUMO_EINVAL;
	}
	if (size > 50 * 1024 * 1024) {
		*err_r = xstrdup("\"size\" must be at most 50 MiB");
		return KUMO_EINVAL;
	}
	if (conc < 1 || conc > INJECT_MAX_CONCURRENCY) {
		*err_r = xasprintf("\"concurrency\" must be 1 to %d", INJECT_MAX_CONCURRENCY);
		return KUMO_EINVAL;
	}
	if (strlen(to) > 900 || strlen(from) > 900 || strchr(from, '\n') != NULL ||
	    strchr(from, '\r') != NULL) {
		*err_r = xstrdup("\"to\" or \"from\" is not a plain address");
		return KUMO_EINVAL;
	}
	if (kd.stopping) {
		*err_r = xstrdup("kumod is shutting down");
		return KUMO_EINVAL;
	}
	{
		char *r0 = inject_rcpt(to, 1), *d0 = rcpt_domain_of(r0);

		free(r0);
		if (d0 == NULL) {
			*err_r = xasprintf("\"to\" is not an address with a domain: %s", to);
			return KUMO_EINVAL;
		}
		free(d0);
	}
	if (file != NULL) {
		size_t len;
		char *data = inject_read_file(file, 50 * 1024 * 1024, &len, err_r);

		if (data == NULL)
			return KUMO_EIO;
		fileblob = blob_take(data, len);
	}
	in = xcalloc(1, sizeof(*in));
	in->to = xstrdup(to);
	in->from = xstrdup(from);
	in->file = fileblob;
	if (fileblob != NULL) {
		/* Tenant and campaign as the listener takes them (kumod.conf(5)). */
		in->tenant = inject_header(fileblob->data, fileblob->len, "X-Tenant");
		in->campaign = inject_header(fileblob->data, fileblob->len, "X-Campaign");
	}
	in->count = count;
	in->size = size;
	in->next = 1;
	in->window = (size_t)conc;
	in->t0 = wall_now();
	in->st = control_stream_open(s, id, inject_cancel, in);
	inject_pump(in); /* spool writes complete later, in the loop: this never answers at once */
	return CONTROL_LATER;
}

/* ---- trace-smtp-client ---- */

/*
 * lib/smtp_client traces through lib/log only. While a trace stream is
 * open, a log sink takes every log line: client trace lines (their session
 * ids are "kc<N>@source->site", set in queue.c) go to the subscribed
 * streams, and to the log only if the operator asked for that trace; all
 * other lines are written as lib/log would.
 */
struct tracer {
	struct control_stream *st;
	char *site, *source; /* filters; NULL: any */
	unsigned long dropped;
	struct tracer *next;
};

static struct tracer *tracers;
static unsigned user_trace;

void
ctlcmds_set_trace(unsigned mask)
{
	user_trace = mask;
	log_set_trace(tracers != NULL ? mask | LOG_TRACE_SMTP_CLIENT : mask);
}

static void
plain_log(enum log_level level, const char *line)
{
	static const int prio[] = {LOG_DEBUG, LOG_INFO, LOG_NOTICE, LOG_WARNING, LOG_ERR};
	char stamp[32];
	struct tm tm;
	time_t now;

	if (!kd.foreground) {
		syslog((unsigned)level < KUMO_NELEM(prio) ? prio[level] : LOG_ERR, "%s", line);
		return;
	}
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(stderr, "%s kumod[%ld]: %s: %s\n", stamp, (long)getpid(), log_level_str(level), line);
}

static void
trace_sink(enum log_level level, const char *line, void *arg)
{
	const char *p = line, *at, *sp, *arrow, *rest;
	char path[300], *site, *source, *end;
	unsigned long session = 0;
	const char *dir = "info";
	struct tracer *t;

	(void)arg;
	if (strncmp(p, "kc", 2) != 0 || !(p[2] >= '0' && p[2] <= '9'))
		goto plain;
	session = strtoul(p + 2, &end, 10);
	at = end;
	if (*at != '@' || (sp = strchr(at, ' ')) == NULL || (size_t)(sp - at - 1) >= sizeof(path))
		goto plain;
	memcpy(path, at + 1, (size_t)(sp - at - 1));
	path[sp - at - 1] = '\0';
	arrow = strstr(path, "->");
	if (arrow == NULL)
		goto plain;
	source = path;
	path[arrow - path] = '\0';
	site = path + (arrow - path) + 2;
	rest = sp + 1;
	if (strncmp(rest, "> ", 2) == 0) {
		dir = "send";
		rest += 2;
	} else if (strncmp(rest, "< ", 2) == 0) {
		dir = "recv";
		rest += 2;
	}
	for (t = tracers; t != NULL; t = t->next) {
		if ((t->site != NULL && strcmp(t->site, site) != 0) ||
		    (t->source != NULL && strcmp(t->source, source) != 0))
			continue;
		if (control_stream_pending(t->st) > 4 * 1024 * 1024) {
			t->dropped++;
			continue;
		}
		control_stream_send(t->st, json_pack("{s:I,s:s,s:s,s:s,s:s,s:f}", "session",
						     (json_int_t)session, "direction", dir, "line",
						     rest, "site", site, "source", source, "time",
						     wall_now()));
	}
	if ((user_trace & LOG_TRACE_SMTP_CLIENT) == 0)
		return;
plain:
	plain_log(level, line);
}

static void
tracer_cancel(void *arg)
{
	struct tracer *t = arg, **pp;

	for (pp = &tracers; *pp != NULL; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	free(t->site);
	free(t->source);
	free(t);
	if (tracers == NULL) {
		log_set_sink(NULL, NULL);
		log_set_trace(user_trace);
	}
}

static int
cmd_trace(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **result_r,
	  char **err_r)
{
	const char *site = NULL, *source = NULL;
	struct tracer *t;

	(void)arg, (void)result_r;
	if (arg_str(args, "site", &site, err_r) < 0 || arg_str(args, "source", &source, err_r) < 0)
		return KUMO_EINVAL;
	t = xcalloc(1, sizeof(*t));
	t->site = site != NULL ? xstrdup(site) : NULL;
	t->source = source != NULL ? xstrdup(source) : NULL;
	t->st = control_stream_open(s, id, tracer_cancel, t);
	if (tracers == NULL) {
		log_set_sink(trace_sink, NULL);
		log_set_trace(user_trace | LOG_TRACE_SMTP_CLIENT);
	}
	t->next = tracers;
	tracers = t;
	return CONTROL_LATER;
}

static const struct control_cmd kumod_commands[] = {
	{"bounce", cmd_bounce, "bounce queued messages of a domain, tenant or campaign (and new ones)"},
	{"bounce-cancel", cmd_bounce_cancel, "end a bounce rule"},
	{"bounce-list", cmd_bounce_list, "the bounce rules in force"},
	{"complete", cmd_complete, "live names for completion"},
	{"inject", cmd_inject, "inject messages through the reception path"},
	{"inspect-message", cmd_inspect_msg, "one queued message"},
	{"inspect-ready-q", cmd_inspect_ready, "one ready queue (egress path)"},
	{"inspect-sched-q", cmd_inspect_sched, "one scheduled queue"},
	{"metrics", cmd_metrics, "counters in Prometheus text format"},
	{"queue-summary", cmd_queue_summary, "ready and scheduled queues"},
	{"reload", cmd_reload, "re-read the configuration (as SIGHUP)"},
	{"resolve-egress-path", cmd_resolve, "the merged egress path config with origins"},
	{"set-log-filter", cmd_set_log_filter, "log level and trace subsystems"},
	{"suspend", cmd_suspend, "hold scheduled messages of a domain, tenant or campaign"},
	{"suspend-cancel", cmd_suspend_cancel, "end a suspension"},
	{"suspend-list", cmd_suspend_list, "the suspensions in force"},
	{"suspend-ready-q", cmd_suspend_rq, "stop an egress path opening connections"},
	{"suspend-ready-q-cancel", cmd_suspend_rq_cancel, "end a ready-queue suspension"},
	{"suspend-ready-q-list", cmd_suspend_rq_list, "the ready-queue suspensions in force"},
	{"trace-smtp-client", cmd_trace, "stream live SMTP client transcripts"},
	{"watch", cmd_watch, "a stream of snapshots (kumotop)"},
	{NULL, NULL, NULL},
};

const struct control_cmd *
ctlcmds_table(void)
{
	if (started_wall == 0)
		started_wall = wall_now();
	return kumod_commands;
}
