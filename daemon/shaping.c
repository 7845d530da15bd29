/*
 * shaping.c: the site of every shaping entry. A domain entry (mx_rollup,
 * the default) speaks for every domain hosted on the same MX hosts, so
 * kumod must know the entry's site_name before it routes the first message
 * there, and two such entries on one site are a configuration error (seed
 * 002). The sites are learnt by resolving each entry's MX on a private loop
 * and resolver with a bounded wait: at start, by --check-config, and on
 * reload for the entries whose site is not known yet. An entry whose lookup
 * fails is reported and applies to its own domain until the daemon learns
 * its site from live traffic (queue.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "buf.h"
#include "dns.h"
#include "egress.h"
#include "kumo.h"

#include "kumod.h"

struct learn {
	struct egress_shaping *sh;
	size_t i;
	size_t *pending;
	struct buf *warnings;
};

static void
learnt(const struct dns_result *r, void *arg)
{
	struct learn *l = arg;
	struct egress_shaping_domain *d = &l->sh->domains[l->i];
	char *site = NULL;

	(*l->pending)--;
	if (r->status == DNS_OK || r->status == DNS_NODATA)
		site = dns_site_name_for(r, d->domain);
	if (site != NULL) {
		free(d->site_name);
		d->site_name = site;
		return;
	}
	if (l->warnings == NULL)
		return;
	if (r->status == DNS_NULL_MX)
		buf_appendf(l->warnings,
			    "%s: shaping: domain \"%s\" has a null MX (no mail): it has no site to "
			    "roll up\n",
			    d->where != NULL ? d->where : "shaping", d->domain);
	else
		buf_appendf(l->warnings,
			    "%s: shaping: domain \"%s\": MX lookup failed (%s): until its site is "
			    "known its settings apply to \"%s\" alone\n",
			    d->where != NULL ? d->where : "shaping", d->domain, r->why, d->domain);
}

static void
on_timeout(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

void
shaping_dns_options(const struct kconf *c, struct dns_options *o)
{
	memset(o, 0, sizeof(*o));
	o->forwarders = (const char *const *)c->dns_forwarders;
	o->local_data = (const char *const *)c->dns_local_data;
	o->local_zones = (const char *const *)c->dns_local_zones;
	o->trust_anchor_file = c->dns_trust_anchor_file;
}

int
shaping_learn_sites(const struct kconf *c, struct egress_shaping *sh, unsigned timeout_ms,
		    struct buf *warnings)
{
	struct dns_options o;
	struct dns_resolver *res;
	struct learn *ls;
	uv_loop_t loop;
	uv_timer_t timer;
	size_t i, pending = 0;
	int timed_out = 0, asked = 0;
	char *err = NULL;

	for (i = 0; i < sh->ndomains; i++)
		if (sh->domains[i].mx_rollup && sh->domains[i].site_name == NULL)
			asked++;
	if (asked == 0)
		return 0;
	if (uv_loop_init(&loop) != 0)
		return KUMO_EIO;
	shaping_dns_options(c, &o);
	o.timeout_ms = timeout_ms;
	res = dns_resolver_new(&loop, &o, &err);
	if (res == NULL) {
		if (warnings != NULL)
			buf_appendf(warnings, "shaping: cannot learn the sites of its domains: %s\n",
				    err != NULL ? err : "no resolver");
		free(err);
		uv_loop_close(&loop);
		return KUMO_EIO;
	}
	ls = xcalloc(sh->ndomains, sizeof(*ls));
	for (i = 0; i < sh->ndomains; i++) {
		if (!sh->domains[i].mx_rollup || sh->domains[i].site_name != NULL)
			continue;
		ls[i] = (struct learn){.sh = sh, .i = i, .pending = &pending, .warnings = warnings};
		pending++;
		dns_resolve_mx(res, sh->domains[i].domain, learnt, &ls[i]);
	}
	uv_timer_init(&loop, &timer);
	timer.data = &timed_out;
	uv_timer_start(&timer, on_timeout, timeout_ms, 0);
	while (pending > 0 && !timed_out)
		uv_run(&loop, UV_RUN_ONCE);
	if (pending > 0 && warnings != NULL)
		for (i = 0; i < sh->ndomains; i++)
			if (ls[i].sh != NULL && sh->domains[i].site_name == NULL &&
			    sh->domains[i].mx_rollup)
				buf_appendf(warnings,
					    "%s: shaping: domain \"%s\": no MX answer within %u ms: "
					    "until its site is known its settings apply to \"%s\" alone\n",
					    sh->domains[i].where != NULL ? sh->domains[i].where : "shaping",
					    sh->domains[i].domain, timeout_ms, sh->domains[i].domain);
	/* Cancelling drops the callbacks of lookups still out (their answers are not needed). */
	dns_resolver_free(&res);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	free(ls);
	return 0;
}

void
shaping_copy_sites(struct egress_shaping *to, const struct egress_shaping *from)
{
	size_t i;

	for (i = 0; i < from->ndomains; i++)
		if (from->domains[i].site_name != NULL && from->domains[i].mx_rollup)
			egress_shaping_set_site(to, from->domains[i].domain, from->domains[i].site_name);
}
