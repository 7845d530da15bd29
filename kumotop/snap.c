/*
 * snap.c: kumotop's model. It turns one `watch` snapshot into plain
 * structs (total over any JSON the daemon might send: absent or mistyped
 * members read as 0 or "", control characters in names become '?' so they
 * cannot move the cursor), builds the filtered and sorted row views, and
 * formats the header lines and table rows that both the ncurses screen and
 * the batch mode print.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "kumo.h"

#include "kumotop.h"

/*
 * A string member, borrowed from o; "" when absent or not a string. A value
 * with control bytes is replaced in o by a copy with '?' in their place, so
 * the terminal never receives them and clean values cost no copy.
 */
static const char *
member_str(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key)), *p;
	char *copy, *q;

	if (v == NULL)
		return "";
	for (p = v; *p != '\0' && (unsigned char)*p >= 0x20 && *p != 0x7f; p++)
		;
	if (*p == '\0')
		return v;
	copy = xstrdup(v);
	for (q = copy; *q != '\0'; q++) {
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = '?';
	}
	json_object_set_new(o, key, json_string(copy));
	free(copy);
	v = json_string_value(json_object_get(o, key));
	return v != NULL ? v : "";
}

static int64_t
member_int(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_real(v)) {
		double d = json_real_value(v);

		/* clamp: a double outside int64 range would be undefined to convert */
		if (d > 9.0e18)
			return INT64_C(9000000000000000000);
		if (d < -9.0e18)
			return -INT64_C(9000000000000000000);
		return (int64_t)d;
	}
	return 0;
}

static double
member_num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	double d = json_is_number(v) ? json_number_value(v) : 0.0;

	/* a rate beyond this is nonsense, and would blow the columns apart */
	return d > 1e12 ? 1e12 : d < -1e12 ? -1e12 : d;
}

void
kt_snap_parse(json_t *item, struct kt_snap *s)
{
	json_t *totals = json_object_get(item, "totals");
	json_t *rates = json_object_get(item, "rates");
	json_t *ready = json_object_get(item, "ready");
	json_t *sched = json_object_get(item, "scheduled");
	json_t *row;
	size_t i, n;

	memset(s, 0, sizeof(*s));
	s->root = json_incref(item);
	s->time = member_int(item, "time");
	s->uptime = member_int(item, "uptime");
	s->received = member_int(totals, "received");
	s->delivered = member_int(totals, "delivered");
	s->transient = member_int(totals, "transient");
	s->bounced = member_int(totals, "bounced");
	s->expired = member_int(totals, "expired");
	s->scheduled = member_int(totals, "scheduled");
	s->ready = member_int(totals, "ready");
	s->connections = member_int(totals, "connections");
	s->memory = member_int(totals, "memory");
	s->r_received = member_num(rates, "received");
	s->r_delivered = member_num(rates, "delivered");
	s->r_transient = member_num(rates, "transient");
	s->r_bounced = member_num(rates, "bounced");

	n = json_is_array(ready) ? json_array_size(ready) : 0;
	s->rq = xcalloc(n + 1, sizeof(*s->rq));
	for (i = 0; i < n; i++) {
		struct kt_ready *r = &s->rq[s->n_rq];

		row = json_array_get(ready, i);
		if (!json_is_object(row))
			continue;
		r->name = member_str(row, "name");
		r->source = member_str(row, "source");
		r->site = member_str(row, "site");
		r->status = member_str(row, "status");
		r->tls = member_str(row, "tls");
		r->delivered = member_int(row, "delivered");
		r->transient = member_int(row, "transient");
		r->connections = member_int(row, "connections");
		r->queued = member_int(row, "queued");
		r->next_permit_in = member_int(row, "next_permit_in");
		r->failures = member_int(row, "consecutive_failures");
		r->rate = member_num(row, "rate");
		s->n_rq++;
	}
	n = json_is_array(sched) ? json_array_size(sched) : 0;
	s->sq = xcalloc(n + 1, sizeof(*s->sq));
	for (i = 0; i < n; i++) {
		struct kt_sched *q = &s->sq[s->n_sq];

		row = json_array_get(sched, i);
		if (!json_is_object(row))
			continue;
		q->name = member_str(row, "name");
		q->status = member_str(row, "status");
		q->queued = member_int(row, "queued");
		q->next_due_in = member_int(row, "next_due_in");
		s->n_sq++;
	}
}

void
kt_snap_clear(struct kt_snap *s)
{
	free(s->rq);
	free(s->sq);
	free(s->text);
	json_decref(s->root);
	memset(s, 0, sizeof(*s));
}

const char *
kt_rsort_str(int key)
{
	static const char *const names[KT_RS_N] = {"PATH", "D", "T", "C", "Q", "RATE", "STATE"};

	return key >= 0 && key < KT_RS_N ? names[key] : "?";
}

const char *
kt_ssort_str(int key)
{
	static const char *const names[KT_SS_N] = {"NAME", "Q", "NEXT-DUE", "STATE"};

	return key >= 0 && key < KT_SS_N ? names[key] : "?";
}

/* qsort has no context argument: the view being sorted. */
static const struct kt_snap *sort_snap;
static int sort_key;

#define CMP_DESC(a, b) ((a) < (b) ? 1 : (a) > (b) ? -1 : 0)

static int
cmp_ready(const void *pa, const void *pb)
{
	const struct kt_ready *a = &sort_snap->rq[*(const size_t *)pa];
	const struct kt_ready *b = &sort_snap->rq[*(const size_t *)pb];
	int c = 0;

	switch (sort_key) {
	case KT_RS_D:
		c = CMP_DESC(a->delivered, b->delivered);
		break;
	case KT_RS_T:
		c = CMP_DESC(a->transient, b->transient);
		break;
	case KT_RS_C:
		c = CMP_DESC(a->connections, b->connections);
		break;
	case KT_RS_Q:
		c = CMP_DESC(a->queued, b->queued);
		break;
	case KT_RS_RATE:
		c = CMP_DESC(a->rate, b->rate);
		break;
	case KT_RS_STATE:
		c = strcmp(a->status, b->status);
		break;
	default:
		break;
	}
	/* ties (and the PATH key) by name, so rows do not jump between snapshots */
	return c != 0 ? c : strcmp(a->name, b->name);
}

static int
cmp_sched(const void *pa, const void *pb)
{
	const struct kt_sched *a = &sort_snap->sq[*(const size_t *)pa];
	const struct kt_sched *b = &sort_snap->sq[*(const size_t *)pb];
	int c = 0;

	switch (sort_key) {
	case KT_SS_Q:
		c = CMP_DESC(a->queued, b->queued);
		break;
	case KT_SS_DUE:
		c = a->next_due_in < b->next_due_in ? -1 : a->next_due_in > b->next_due_in;
		break;
	case KT_SS_STATE:
		c = strcmp(a->status, b->status);
		break;
	default:
		break;
	}
	return c != 0 ? c : strcmp(a->name, b->name);
}

size_t *
kt_ready_view(const struct kt_snap *s, const char *filter, int key, size_t *n_r)
{
	size_t *v = xcalloc(s->n_rq + 1, sizeof(*v)), i, n = 0;

	for (i = 0; i < s->n_rq; i++) {
		if (filter == NULL || *filter == '\0' || strstr(s->rq[i].name, filter) != NULL)
			v[n++] = i;
	}
	sort_snap = s;
	sort_key = key;
	qsort(v, n, sizeof(*v), cmp_ready);
	*n_r = n;
	return v;
}

size_t *
kt_sched_view(const struct kt_snap *s, const char *filter, int key, size_t *n_r)
{
	size_t *v = xcalloc(s->n_sq + 1, sizeof(*v)), i, n = 0;

	for (i = 0; i < s->n_sq; i++) {
		if (filter == NULL || *filter == '\0' || strstr(s->sq[i].name, filter) != NULL)
			v[n++] = i;
	}
	sort_snap = s;
	sort_key = key;
	qsort(v, n, sizeof(*v), cmp_sched);
	*n_r = n;
	return v;
}

void
kt_fmt_duration(char *out, size_t size, int64_t secs)
{
	if (secs < 0)
		secs = 0;
	if (secs >= 1000 * 86400)
		snprintf(out, size, ">999d");
	else if (secs >= 86400)
		snprintf(out, size, "%" PRId64 "d%" PRId64 "h", secs / 86400, secs % 86400 / 3600);
	else if (secs >= 3600)
		snprintf(out, size, "%" PRId64 "h%02" PRId64 "m", secs / 3600, secs % 3600 / 60);
	else if (secs >= 60)
		snprintf(out, size, "%" PRId64 "m%02" PRId64 "s", secs / 60, secs % 60);
	else
		snprintf(out, size, "%" PRId64 "s", secs);
}

void
kt_fmt_bytes(char *out, size_t size, int64_t n)
{
	if (n >= (INT64_C(1) << 30))
		snprintf(out, size, "%.1fG", (double)n / (double)(INT64_C(1) << 30));
	else if (n >= (1 << 20))
		snprintf(out, size, "%.1fM", (double)n / (double)(1 << 20));
	else if (n >= (1 << 10))
		snprintf(out, size, "%.0fK", (double)n / 1024.0);
	else
		snprintf(out, size, "%" PRId64, n < 0 ? 0 : n);
}

void
kt_fmt_state(char *out, size_t size, const struct kt_ready *r)
{
	char d[32];

	if (strcmp(r->status, "throttled") == 0) {
		kt_fmt_duration(d, sizeof(d), r->next_permit_in);
		if (r->failures > 0)
			snprintf(out, size, "throttled %s, %" PRId64 " fail%s", d, r->failures,
			         r->failures == 1 ? "" : "s");
		else
			snprintf(out, size, "throttled %s", d);
	} else if (strcmp(r->status, "delayed") == 0 ||
	           (r->failures > 0 && strcmp(r->status, "suspended") != 0)) {
		snprintf(out, size, "%s (%" PRId64 " fail%s)", r->status, r->failures,
		         r->failures == 1 ? "" : "s");
	} else {
		snprintf(out, size, "%s", r->status);
	}
}

/* Fixed columns after PATH: D T C Q RATE STATE, and TLS when wide, single spaces. */
#define KT_FIXED_W (7 + 1 + 5 + 1 + 3 + 1 + 6 + 1 + 6 + 1 + 22)
#define KT_TLS_W 13
#define KT_STATE_W 22  /* the STATE column in KT_FIXED_W */
#define KT_STATE_MIN 9 /* what it keeps for long names: "suspended" */

int
kt_ready_name_width(int cols, size_t longest)
{
	int w = cols - 1 - KT_FIXED_W - (cols >= 100 ? KT_TLS_W + 1 : 0);

	/*
	 * Without the TLS column STATE is the last one: names longer than the
	 * room left may take all but KT_STATE_MIN of its width (a long state
	 * text is cut at the edge instead of every path name).
	 */
	if (cols > 0 && cols < 100 && longest > (size_t)(w > 0 ? w : 0)) {
		int most = cols - 1 - (KT_FIXED_W - KT_STATE_W + KT_STATE_MIN);

		w = longest < (size_t)most ? (int)longest : most;
	}
	return w < 12 ? 12 : w > 120 ? 120 : w;
}

/* Whether the TLS column fits (the batch mode, cols 0, always has it). */
static int
tls_shown(int cols)
{
	return cols <= 0 || cols >= 100;
}

void
kt_fmt_ready_header(char *out, size_t size, int name_w, int cols)
{
	snprintf(out, size, "%-*s %7s %5s %3s %6s %6s %-22s%s%s", name_w, "PATH", "D", "T", "C",
	         "Q", "RATE/s", "STATE", tls_shown(cols) ? " " : "", tls_shown(cols) ? "TLS" : "");
}

/* The name cut to w bytes, with '~' marking a cut. */
static void
fit(char *out, size_t size, const char *s, int w)
{
	size_t len = strlen(s);

	if (w <= 0 || size == 0) {
		if (size > 0)
			*out = '\0';
		return;
	}
	if (len <= (size_t)w) {
		snprintf(out, size, "%s", s);
		return;
	}
	snprintf(out, size, "%.*s~", w - 1, s);
}

void
kt_fmt_ready_row(char *out, size_t size, int name_w, int cols, const struct kt_ready *r)
{
	char name[256], state[64];

	fit(name, sizeof(name), r->name, name_w);
	kt_fmt_state(state, sizeof(state), r);
	snprintf(out, size,
	         "%-*s %7" PRId64 " %5" PRId64 " %3" PRId64 " %6" PRId64 " %6.1f %-22.22s%s%.13s",
	         name_w, name, r->delivered, r->transient, r->connections, r->queued, r->rate,
	         state, tls_shown(cols) ? " " : "", tls_shown(cols) ? r->tls : "");
}

void
kt_fmt_sched_header(char *out, size_t size, int name_w)
{
	snprintf(out, size, "%-*s %7s %9s %-12s", name_w, "SCHEDULED", "Q", "NEXT-DUE", "STATE");
}

void
kt_fmt_sched_row(char *out, size_t size, int name_w, const struct kt_sched *q)
{
	char name[256], due[32];

	fit(name, sizeof(name), q->name, name_w);
	kt_fmt_duration(due, sizeof(due), q->next_due_in);
	snprintf(out, size, "%-*s %7" PRId64 " %9s %-12.12s", name_w, name, q->queued, due,
	         q->status);
}

void
kt_fmt_totals(char *out, size_t size, const struct kt_snap *s)
{
	snprintf(out, size,
	         "Totals: received %" PRId64 "  delivered %" PRId64 "  transient %" PRId64
	         "  bounced %" PRId64 "  expired %" PRId64,
	         s->received, s->delivered, s->transient, s->bounced, s->expired);
}

void
kt_fmt_gauges(char *out, size_t size, const struct kt_snap *s)
{
	char mem[32];

	kt_fmt_bytes(mem, sizeof(mem), s->memory);
	snprintf(out, size,
	         "Now: connections %" PRId64 "  queued %" PRId64 " (scheduled %" PRId64
	         ", ready %" PRId64 ")  memory %s  paths %zu",
	         s->connections, s->scheduled + s->ready, s->scheduled, s->ready, mem, s->n_rq);
}

void
kt_fmt_rates(char *out, size_t size, const struct kt_snap *s)
{
	snprintf(out, size, "Rates/s: received %.1f  delivered %.1f  transient %.1f  bounced %.1f",
	         s->r_received, s->r_delivered, s->r_transient, s->r_bounced);
}

/* Print a line without the padding of its last column. */
static void
put_line(FILE *out, const char *line)
{
	size_t n = strlen(line);

	while (n > 0 && line[n - 1] == ' ')
		n--;
	fprintf(out, "%.*s\n", (int)n, line);
}

void
kt_print_batch(FILE *out, const char *server, const struct kt_snap *s, const char *filter)
{
	char line[1024], up[32], when[32];
	struct tm tm;
	time_t t = (time_t)s->time;
	size_t *v, n, i;
	int w = 40;

	kt_fmt_duration(up, sizeof(up), s->uptime);
	if (gmtime_r(&t, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	else
		snprintf(when, sizeof(when), "?");
	fprintf(out, "kumotop - %s - %s - up %s\n", server, when, up);
	kt_fmt_totals(line, sizeof(line), s);
	put_line(out, line);
	kt_fmt_gauges(line, sizeof(line), s);
	put_line(out, line);
	kt_fmt_rates(line, sizeof(line), s);
	fprintf(out, "%s\n\n", line);

	v = kt_ready_view(s, filter, KT_RS_NAME, &n);
	for (i = 0; i < n; i++) {
		size_t len = strlen(s->rq[v[i]].name);

		if (len > (size_t)w)
			w = len > 120 ? 120 : (int)len;
	}
	kt_fmt_ready_header(line, sizeof(line), w, 0);
	put_line(out, line);
	for (i = 0; i < n; i++) {
		kt_fmt_ready_row(line, sizeof(line), w, 0, &s->rq[v[i]]);
		put_line(out, line);
	}
	free(v);
	fputc('\n', out);

	v = kt_sched_view(s, filter, KT_SS_NAME, &n);
	kt_fmt_sched_header(line, sizeof(line), w);
	put_line(out, line);
	for (i = 0; i < n; i++) {
		kt_fmt_sched_row(line, sizeof(line), w, &s->sq[v[i]]);
		put_line(out, line);
	}
	free(v);
	fputc('\n', out);
	fflush(out);
}
