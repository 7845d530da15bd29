/*
 * ctl-echo.c: a stand-in control server for kumoctl's integration tests.
 * It runs daemon/control.c on a libuv loop with canned answers in the
 * result shapes of doc/control-protocol.md (queue-summary, inspect-*,
 * suspend and bounce rules kept in memory, resolve-egress-path, metrics,
 * watch and trace streams, complete), so kumoctl's modes, output and exit
 * codes are exercised over a real Unix socket before kumod serves them.
 *
 *   ctl-echo SOCKET [MAX_CLIENTS [MODE]]     (SIGTERM or SIGINT stops it)
 *
 * MODE is the socket's octal file mode (0666 lets any user reach the
 * SO_PEERCRED check).
 *
 * For kumotop's tests and load bench: CTL_ECHO_READY=N adds N generated
 * ready queues ("ip-K->mxI.load.test") to watch snapshots; snapshot
 * counters grow over time, and a path with a suspend-ready-q rule in force
 * shows "suspended" in later snapshots.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "kumo.h"
#include "log.h"

#include "../../daemon/control.h"

struct echo {
	uv_loop_t *loop;
	struct control_server *srv;
	json_t *rules[3]; /* suspend, suspend-ready-q, bounce: arrays of rule objects */
	json_int_t next_rule;
	json_t *load_rows; /* CTL_ECHO_READY generated ready rows, or NULL */
};

static const char *const sched_names[] = {"example.test", "foo.test", "bar.test"};
static const char *const ready_names[] = {"ip-1->mx.example.test", "ip-2->mx.example.test",
                                          "ip-1->mx.foo.test"};

static json_t *
ready_rows(void)
{
	return json_pack("[{s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:s},{s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:s},"
	                 "{s:s,s:s,s:s,s:i,s:i,s:i,s:i,s:s}]",
	                 "name", ready_names[0], "source", "ip-1", "site", "mx.example.test",
	                 "delivered", 120, "transient", 3, "connections", 2, "queued", 5, "status",
	                 "active", "name", ready_names[1], "source", "ip-2", "site",
	                 "mx.example.test", "delivered", 7, "transient", 0, "connections", 0,
	                 "queued", 40, "status", "suspended", "name", ready_names[2], "source",
	                 "ip-1", "site", "mx.foo.test", "delivered", 0, "transient", 9,
	                 "connections", 1, "queued", 12, "status", "throttled");
}

static json_t *
sched_rows(void)
{
	return json_pack("[{s:s,s:s,s:i,s:i,s:s},{s:s,s:s,s:i,s:i,s:s},{s:s,s:s,s:i,s:i,s:s}]",
	                 "name", sched_names[0], "domain", "example.test", "queued", 3,
	                 "next_due_in", 90, "status", "active", "name", sched_names[1], "domain",
	                 "foo.test", "queued", 30, "next_due_in", 1200, "status", "suspended",
	                 "name", sched_names[2], "domain", "bar.test", "queued", 1, "next_due_in",
	                 5, "status", "active");
}

static int
by_queued_desc(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "queued"));
	json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "queued"));

	return x < y ? 1 : x > y ? -1 : 0;
}

/* Apply --domain, --by-volume and --limit to one table. */
static json_t *
shape(json_t *rows, json_t *args, const char *domain_key)
{
	json_t *out = json_array(), *row, **v;
	const char *domain = json_string_value(json_object_get(args, "domain"));
	json_int_t limit = json_integer_value(json_object_get(args, "limit"));
	size_t i, n = 0;

	v = xcalloc(json_array_size(rows) + 1, sizeof(*v));
	json_array_foreach(rows, i, row)
	{
		const char *d = json_string_value(json_object_get(row, domain_key));

		if (domain == NULL || (d != NULL && strstr(d, domain) != NULL))
			v[n++] = row;
	}
	if (json_is_true(json_object_get(args, "by_volume")))
		qsort(v, n, sizeof(*v), by_queued_desc);
	for (i = 0; i < n && (limit <= 0 || (json_int_t)i < limit); i++)
		json_array_append(out, v[i]);
	free(v);
	json_decref(rows);
	return out;
}

static int
cmd_queue_summary(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r,
                  char **e)
{
	(void)s, (void)id, (void)arg, (void)e;
	*r = json_pack("{s:o,s:o}", "ready", shape(ready_rows(), args, "site"), "scheduled",
	               shape(sched_rows(), args, "domain"));
	return CONTROL_DONE;
}

static int
find_name(const char *const *names, size_t n, const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < n; i++) {
		if (strcmp(names[i], name) == 0)
			return 1;
	}
	return 0;
}

static int
cmd_inspect_sched(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r,
                  char **e)
{
	const char *name = json_string_value(json_object_get(args, "name"));

	(void)s, (void)id, (void)arg;
	if (!find_name(sched_names, KUMO_NELEM(sched_names), name)) {
		*e = xasprintf("unknown scheduled queue \"%s\"", name != NULL ? name : "");
		return KUMO_ENOTFOUND;
	}
	*r = json_pack("{s:s,s:i,s:i,s:s,s:[]}", "name", name, "queued", 3, "next_due_in", 90,
	               "retry_interval", "20m", "rules");
	return CONTROL_DONE;
}

static int load_name(struct echo *ec, const char *name);

static int
cmd_inspect_ready(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r,
                  char **e)
{
	const char *name = json_string_value(json_object_get(args, "name"));

	(void)s, (void)id;
	if (!find_name(ready_names, KUMO_NELEM(ready_names), name) && !load_name(arg, name)) {
		*e = xasprintf("unknown ready queue \"%s\"", name != NULL ? name : "");
		return KUMO_ENOTFOUND;
	}
	*r = json_pack("{s:s,s:i,s:i,s:i,s:{s:i,s:s}}", "name", name, "connections", 2,
	               "consecutive_failures", 0, "next_due_in", 0, "config", "connection_limit", 3,
	               "max_connection_rate", "100/min");
	return CONTROL_DONE;
}

static int
cmd_inspect_message(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r,
                    char **e)
{
	(void)s, (void)id, (void)arg, (void)r;
	*e = xasprintf("no message \"%s\" in the spool",
	               json_string_value(json_object_get(args, "id")));
	return KUMO_ENOTFOUND;
}

/* Rules: which list a command name works on. */
static int
rule_index(const char *cmd)
{
	if (strncmp(cmd, "suspend-ready-q", 15) == 0)
		return 1;
	if (strncmp(cmd, "suspend", 7) == 0)
		return 0;
	return 2;
}

static int
rule_add(struct echo *ec, int which, json_t *args, json_t **r)
{
	json_t *rule = json_deep_copy(args);
	json_int_t dur = json_object_get(args, "duration")
	                     ? json_integer_value(json_object_get(args, "duration"))
	                     : 300;

	json_object_del(rule, "duration");
	json_object_set_new(rule, "expires_in", json_integer(dur));
	{
		/* "id" first, so tables print it first */
		json_t *ordered = json_pack("{s:I}", "id", ++ec->next_rule);

		json_object_update(ordered, rule);
		json_decref(rule);
		rule = ordered;
	}
	json_array_append(ec->rules[which], rule);
	*r = rule;
	return CONTROL_DONE;
}

static int
cmd_suspend(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r, char **e)
{
	(void)s, (void)id, (void)e;
	return rule_add(arg, 0, args, r);
}

/* A generated load row's name: "ip-K->mxI.load.test" with I below n. */
static int
load_name(struct echo *ec, const char *name)
{
	json_t *row;
	unsigned k, i;
	int end = 0;

	if (ec->load_rows == NULL || name == NULL ||
	    sscanf(name, "ip-%u->mx%u.load.test%n", &k, &i, &end) != 2 || name[end] != '\0')
		return 0;
	row = json_array_get(ec->load_rows, i);
	return row != NULL && strcmp(json_string_value(json_object_get(row, "name")), name) == 0;
}

static int
cmd_suspend_ready(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r,
                  char **e)
{
	const char *name = json_string_value(json_object_get(args, "name"));

	(void)s, (void)id;
	if (!find_name(ready_names, KUMO_NELEM(ready_names), name) && !load_name(arg, name)) {
		*e = xasprintf("unknown ready queue \"%s\"", name != NULL ? name : "");
		return KUMO_ENOTFOUND;
	}
	return rule_add(arg, 1, args, r);
}

static int
cmd_bounce(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r, char **e)
{
	(void)s, (void)id, (void)e;
	return rule_add(arg, 2, args, r);
}

static int
cmd_rule_list(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r,
              char **e, const char *cmd, const char *key)
{
	struct echo *ec = arg;

	(void)s, (void)id, (void)args, (void)e;
	*r = json_pack("{s:O}", key, ec->rules[rule_index(cmd)]);
	return CONTROL_DONE;
}

static int
cmd_rule_cancel(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r,
                char **e, const char *cmd)
{
	struct echo *ec = arg;
	json_t *list = ec->rules[rule_index(cmd)], *rule;
	json_int_t want = json_integer_value(json_object_get(args, "id"));
	size_t i;

	(void)s, (void)id;
	json_array_foreach(list, i, rule)
	{
		if (json_integer_value(json_object_get(rule, "id")) == want) {
			json_array_remove(list, i);
			*r = json_pack("{s:I}", "cancelled", want);
			return CONTROL_DONE;
		}
	}
	*e = xasprintf("no rule %lld", (long long)want);
	return KUMO_ENOTFOUND;
}

#define LIST_CMD(fn, wire, key)                                                                    \
	static int fn(struct control_session *s, json_int_t id, json_t *args, void *arg,           \
	              json_t **r, char **e)                                                        \
	{                                                                                          \
		return cmd_rule_list(s, id, args, arg, r, e, wire, key);                           \
	}
#define CANCEL_CMD(fn, wire)                                                                       \
	static int fn(struct control_session *s, json_int_t id, json_t *args, void *arg,           \
	              json_t **r, char **e)                                                        \
	{                                                                                          \
		return cmd_rule_cancel(s, id, args, arg, r, e, wire);                              \
	}
LIST_CMD(cmd_suspend_list, "suspend", "suspensions")
LIST_CMD(cmd_suspend_ready_list, "suspend-ready-q", "suspensions")
LIST_CMD(cmd_bounce_list, "bounce", "bounces")
CANCEL_CMD(cmd_suspend_cancel, "suspend")
CANCEL_CMD(cmd_suspend_ready_cancel, "suspend-ready-q")
CANCEL_CMD(cmd_bounce_cancel, "bounce")

static int
cmd_resolve(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r, char **e)
{
	const char *domain = json_string_value(json_object_get(args, "domain"));
	const char *source = json_string_value(json_object_get(args, "source"));

	(void)s, (void)id, (void)arg, (void)e;
	*r = json_pack("{s:s,s:s,s:s?,s:[{s:s,s:i,s:s},{s:s,s:s,s:s},{s:s,s:i,s:s}]}", "domain",
	               domain, "site", "mx.example.test", "source", source, "config", "key",
	               "connection_limit", "value", 3, "origin", "default", "key",
	               "max_connection_rate", "value", "20/min", "origin", "site", "key",
	               "max_deliveries_per_connection", "value", 5, "origin", "built-in");
	return CONTROL_DONE;
}

static int
cmd_reload(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r, char **e)
{
	(void)s, (void)id, (void)args, (void)arg, (void)e;
	*r = json_pack("{s:b}", "reloaded", 1);
	return CONTROL_DONE;
}

static int
cmd_set_log_filter(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r,
                   char **e)
{
	const char *f = json_string_value(json_object_get(args, "filter"));

	(void)s, (void)id, (void)arg;
	if (f == NULL || log_level_parse(f) < 0) {
		*e = xasprintf("set-log-filter: unknown level \"%s\"", f != NULL ? f : "");
		return KUMO_EINVAL;
	}
	*r = json_pack("{s:s}", "filter", f);
	return CONTROL_DONE;
}

static int
cmd_metrics(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r, char **e)
{
	(void)s, (void)id, (void)args, (void)arg, (void)e;
	*r = json_string(
	    "# HELP kumo_delivered_total Messages delivered.\n# TYPE kumo_delivered_total counter\n"
	    "kumo_delivered_total 127\n");
	return CONTROL_DONE;
}

static int
cmd_inject(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r, char **e)
{
	json_int_t count =
	    json_object_get(args, "count") ? json_integer_value(json_object_get(args, "count")) : 1;
	json_int_t conc = json_object_get(args, "concurrency")
	                      ? json_integer_value(json_object_get(args, "concurrency"))
	                      : 64;

	(void)s, (void)id, (void)arg, (void)e;
	*r = json_pack("{s:I,s:i,s:s,s:f,s:I,s:I}", "injected", count, "failed", 0, "first_id",
	               "0000000000000001", "seconds", 0.01, "concurrency", conc, "max_in_flight",
	               conc < count ? conc : count);
	return CONTROL_DONE;
}

static int
cmd_complete(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r,
             char **e)
{
	const char *kind = json_string_value(json_object_get(args, "kind"));
	const char *prefix = json_string_value(json_object_get(args, "prefix"));
	const char *const *names;
	json_t *out = json_array();
	size_t n, i;

	(void)s, (void)id, (void)arg, (void)e;
	if (kind != NULL && strcmp(kind, "ready") == 0) {
		names = ready_names;
		n = KUMO_NELEM(ready_names);
	} else {
		names = sched_names;
		n = KUMO_NELEM(sched_names);
	}
	for (i = 0; i < n; i++) {
		if (prefix == NULL || strncmp(names[i], prefix, strlen(prefix)) == 0)
			json_array_append_new(out, json_string(names[i]));
	}
	*r = json_pack("{s:o}", "names", out);
	return CONTROL_DONE;
}

/* watch and trace: a timer per stream. */
struct ticker {
	uv_timer_t timer;
	struct echo *ec;
	struct control_stream *st;
	int watch;
	json_int_t n;
};

static void
ticker_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
ticker_cancel(void *arg)
{
	struct ticker *t = arg;

	uv_timer_stop(&t->timer);
	uv_close((uv_handle_t *)&t->timer, ticker_closed);
}

/* Is a suspend-ready-q rule for this path in force? */
static int
ready_suspended(struct echo *ec, const char *name)
{
	json_t *rule;
	size_t i;

	json_array_foreach(ec->rules[1], i, rule)
	{
		const char *n = json_string_value(json_object_get(rule, "name"));

		if (n != NULL && strcmp(n, name) == 0)
			return 1;
	}
	return 0;
}

/* CTL_ECHO_READY=N: n generated ready rows with varied counts and states. */
static json_t *
load_rows_make(size_t n)
{
	static const char *const st[] = {"active", "active", "idle", "throttled", "delayed"};
	json_t *rows = json_array();
	size_t i;

	for (i = 0; i < n; i++) {
		char name[96], site[48], source[16];

		snprintf(source, sizeof(source), "ip-%zu", i % 4);
		snprintf(site, sizeof(site), "mx%zu.load.test", i);
		snprintf(name, sizeof(name), "%s->%s", source, site);
		/* complete watch rows, shared by every snapshot (built once) */
		json_array_append_new(
		    rows,
		    json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:s,s:f,s:I,s:I,s:s}", "name", name,
		              "source", source, "site", site, "delivered",
		              (json_int_t)(i * 7 % 1000), "transient", (json_int_t)(i % 13),
		              "connections", (json_int_t)(i % 3), "queued",
		              (json_int_t)(i * 31 % 500), "status", st[i % KUMO_NELEM(st)], "rate",
		              (double)(i % 7) / 2.0, "next_permit_in",
		              (json_int_t)(i % KUMO_NELEM(st) == 3 ? 1 + i % 5 : 0),
		              "consecutive_failures", (json_int_t)(i % KUMO_NELEM(st) == 4 ? 2 : 0),
		              "tls", i % 2 ? "opportunistic" : "required"));
	}
	return rows;
}

/* One watch snapshot in the documented shape; counters grow with k. */
static json_t *
snapshot(struct echo *ec, json_int_t k)
{
	static const char *const tls[] = {"opportunistic", "required", "disabled"};
	json_t *ready = ready_rows(), *row;
	size_t i;

	json_array_foreach(ready, i, row)
	{
		const char *status = json_string_value(json_object_get(row, "status"));
		const char *name = json_string_value(json_object_get(row, "name"));

		if (i == 0)
			json_object_set_new(row, "delivered", json_integer(120 + 4 * k));
		if (ready_suspended(ec, name))
			json_object_set_new(row, "status", json_string(status = "suspended"));
		json_object_set_new(row, "rate", json_real(i == 0 ? 4.5 : 0.0));
		json_object_set_new(row, "next_permit_in",
		                    json_integer(strcmp(status, "throttled") == 0 ? 2 : 0));
		json_object_set_new(row, "consecutive_failures", json_integer(i == 2 ? 3 : 0));
		json_object_set_new(row, "tls", json_string(tls[i % 3]));
	}
	/* load rows are shared, complete and unchanged, except a suspended one (a copy) */
	json_array_foreach(ec->load_rows, i, row)
	{
		if (json_array_size(ec->rules[1]) > 0 &&
		    ready_suspended(ec, json_string_value(json_object_get(row, "name")))) {
			row = json_copy(row);
			json_object_set_new(row, "status", json_string("suspended"));
			json_array_append_new(ready, row);
		} else {
			json_array_append(ready, row);
		}
	}
	return json_pack("{s:I,s:I,s:{s:I,s:I,s:I,s:i,s:i,s:i,s:i,s:i,s:i},"
	                 "s:{s:f,s:f,s:f,s:f},s:o,s:o}",
	                 "time", (json_int_t)time(NULL), "uptime", 100 + k, "totals", "received",
	                 10 * k, "delivered", 9 * k, "transient", k, "bounced", 0, "expired", 0,
	                 "scheduled", 34, "ready", 57, "connections", 3, "memory", 52428800,
	                 "rates", "received", 8.0 + (double)(k % 5), "delivered", 9.0, "transient",
	                 (double)(k % 3), "bounced", 0.0, "ready", ready, "scheduled",
	                 sched_rows());
}

static void
ticker_tick(uv_timer_t *timer)
{
	struct ticker *t = timer->data;
	json_int_t k = t->n++;

	if (control_stream_pending(t->st) > 1024 * 1024)
		return; /* a slow reader: skip this one */
	if (t->watch)
		control_stream_send(t->st, snapshot(t->ec, k));
	else
		control_stream_send(t->st, json_pack("{s:I,s:s,s:s}", "session", 7 + k % 2,
		                                     "direction", k % 2 ? "recv" : "send", "line",
		                                     k % 2 ? "250 ok" : "EHLO mta1.example.test"));
}

static int
start_ticker(struct control_session *s, json_int_t id, struct echo *ec, int watch, uint64_t ms)
{
	struct ticker *t = xcalloc(1, sizeof(*t));

	t->watch = watch;
	t->ec = ec;
	t->st = control_stream_open(s, id, ticker_cancel, t);
	uv_timer_init(ec->loop, &t->timer);
	t->timer.data = t;
	uv_timer_start(&t->timer, ticker_tick, 0, ms);
	return CONTROL_LATER;
}

static int
cmd_watch(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r, char **e)
{
	json_t *iv = json_object_get(args, "interval");

	(void)r, (void)e;
	return start_ticker(s, id, arg, 1,
	                    iv != NULL && json_integer_value(iv) > 0
	                        ? 1000 * (uint64_t)json_integer_value(iv)
	                        : 1000);
}

static int
cmd_trace(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **r, char **e)
{
	(void)args, (void)r, (void)e;
	return start_ticker(s, id, arg, 0, 50);
}

static const struct control_cmd table[] = {
    {"queue-summary", cmd_queue_summary, "ready and scheduled queues"},
    {"inspect-sched-q", cmd_inspect_sched, "one scheduled queue"},
    {"inspect-ready-q", cmd_inspect_ready, "one ready queue"},
    {"inspect-message", cmd_inspect_message, "one message"},
    {"suspend", cmd_suspend, "add a suspension"},
    {"suspend-list", cmd_suspend_list, "list suspensions"},
    {"suspend-cancel", cmd_suspend_cancel, "lift a suspension"},
    {"suspend-ready-q", cmd_suspend_ready, "suspend a ready queue"},
    {"suspend-ready-q-list", cmd_suspend_ready_list, "list ready-queue suspensions"},
    {"suspend-ready-q-cancel", cmd_suspend_ready_cancel, "lift a ready-queue suspension"},
    {"bounce", cmd_bounce, "add a bounce rule"},
    {"bounce-list", cmd_bounce_list, "list bounce rules"},
    {"bounce-cancel", cmd_bounce_cancel, "remove a bounce rule"},
    {"resolve-egress-path", cmd_resolve, "merged path config"},
    {"reload", cmd_reload, "reload"},
    {"set-log-filter", cmd_set_log_filter, "log level"},
    {"metrics", cmd_metrics, "Prometheus text"},
    {"inject", cmd_inject, "inject"},
    {"complete", cmd_complete, "names for completion"},
    {"watch", cmd_watch, "snapshots"},
    {"trace-smtp-client", cmd_trace, "SMTP client transcripts"},
    {NULL, NULL, NULL},
};

static void
on_signal(uv_signal_t *sig, int signum)
{
	struct echo *ec = sig->data;

	(void)signum;
	control_server_stop(&ec->srv);
	uv_close((uv_handle_t *)sig, NULL);
	uv_stop(ec->loop);
}

int
main(int argc, char **argv)
{
	struct control_opts opts = {0};
	struct echo ec = {0};
	uv_signal_t sterm, sint;
	char *err = NULL;
	size_t i;

	if (argc < 2) {
		fprintf(stderr, "usage: ctl-echo SOCKET [MAX_CLIENTS [MODE]]\n");
		return 2;
	}
	log_init("ctl-echo", 0, LOG_LEVEL_NOTICE);
	signal(SIGPIPE, SIG_IGN); /* control.h: the daemon must ignore it */
	if (argc > 2)
		opts.max_clients = (unsigned)atoi(argv[2]);
	if (argc > 3)
		opts.mode = (unsigned)strtoul(argv[3], NULL, 8);
	opts.server_name = "ctl-echo " PACKAGE_VERSION;
	ec.loop = uv_default_loop();
	for (i = 0; i < 3; i++)
		ec.rules[i] = json_array();
	if (getenv("CTL_ECHO_READY") != NULL && atoi(getenv("CTL_ECHO_READY")) > 0)
		ec.load_rows = load_rows_make((size_t)atoi(getenv("CTL_ECHO_READY")));
	if (control_server_start(ec.loop, argv[1], &opts, table, &ec, &ec.srv, &err) < 0) {
		fprintf(stderr, "ctl-echo: %s\n", err);
		free(err);
		return 2;
	}
	uv_signal_init(ec.loop, &sterm);
	uv_signal_init(ec.loop, &sint);
	sterm.data = sint.data = &ec;
	uv_signal_start(&sterm, on_signal, SIGTERM);
	uv_signal_start(&sint, on_signal, SIGINT);
	uv_run(ec.loop, UV_RUN_DEFAULT);
	/* Let the close callbacks run: the streams' timers and the sessions. */
	if (!uv_is_closing((uv_handle_t *)&sterm))
		uv_close((uv_handle_t *)&sterm, NULL);
	if (!uv_is_closing((uv_handle_t *)&sint))
		uv_close((uv_handle_t *)&sint, NULL);
	uv_run(ec.loop, UV_RUN_DEFAULT);
	uv_loop_close(ec.loop);
	for (i = 0; i < 3; i++)
		json_decref(ec.rules[i]);
	json_decref(ec.load_rows);
	return 0;
}
