/*
 * kumotop.h: kumotop's private header. snap.c turns a `watch` snapshot
 * (doc/control-protocol.md) into plain structs and formats them as text
 * (the batch mode and the screen share the row formats); view.c draws the
 * ncurses screen and handles keys; main.c owns the options, the connection
 * (with reconnection) and the poll() loop.
 */
#ifndef KUMOTOP_H
#define KUMOTOP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "ctl.h"

/* Exit codes, as kumoctl's (documented in kumotop.1). */
enum {
	KT_EXIT_OK = 0,
	KT_EXIT_FAILED = 1, /* the daemon refused the watch */
	KT_EXIT_USAGE = 2,  /* usage or environment error (bad arguments, no daemon) */
};

/* Strings are borrowed from the snapshot's JSON document (struct kt_snap's root). */
struct kt_ready {
	const char *name, *source, *site, *status, *tls;
	int64_t delivered, transient, connections, queued, next_permit_in, failures;
	double rate;
};

struct kt_sched {
	const char *name, *status;
	int64_t queued, next_due_in;
};

struct kt_snap {
	json_t *root; /* a reference to the snapshot document the strings point into, */
	char *text;   /* or the copy of the line they point into (kt_snap_parse_fast) */
	int64_t time, uptime;
	int64_t received, delivered, transient, bounced, expired; /* counters since start */
	int64_t scheduled, ready, connections, memory;            /* gauges */
	double r_received, r_delivered, r_transient, r_bounced;   /* per second */
	struct kt_ready *rq;
	size_t n_rq;
	struct kt_sched *sq;
	size_t n_sq;
};

/* Sort keys of the two tables; `s` cycles through them. */
enum kt_rsort { KT_RS_NAME, KT_RS_D, KT_RS_T, KT_RS_C, KT_RS_Q, KT_RS_RATE, KT_RS_STATE, KT_RS_N };
enum kt_ssort { KT_SS_NAME, KT_SS_Q, KT_SS_DUE, KT_SS_STATE, KT_SS_N };

const char *kt_rsort_str(int key);
const char *kt_ssort_str(int key);

/*
 * Fill *s from a snapshot object (any JSON: missing or mistyped members read
 * as 0/""). It keeps a reference to item and may rewrite its strings (control
 * bytes become '?'); kt_snap_clear() drops it.
 */
void kt_snap_parse(json_t *item, struct kt_snap *s);
void kt_snap_clear(struct kt_snap *s);
/*
 * The fast path for a whole `{"id":watch_id,"stream":{snapshot}}` line: 1
 * with *s filled, or 0 when the line is of another kind or shape, or has
 * anything unusual (escapes, non-ASCII, wrong types): then parse it with
 * ctl_msg_parse() and kt_snap_parse(). Total over any bytes.
 */
int kt_snap_parse_fast(const char *line, size_t len, long long watch_id, struct kt_snap *s);

/*
 * The rows to show: an allocated array of indexes into s->rq (or s->sq),
 * filtered by substring (NULL or "" keeps all) and sorted by key. *n_r
 * gets the count; the caller frees.
 */
size_t *kt_ready_view(const struct kt_snap *s, const char *filter, int key, size_t *n_r);
size_t *kt_sched_view(const struct kt_snap *s, const char *filter, int key, size_t *n_r);

/* "1d2h", "3h04m", "5m07s", "42s". */
void kt_fmt_duration(char *out, size_t size, int64_t secs);
/* "52.4M", "1.2G", "900K", "512". */
void kt_fmt_bytes(char *out, size_t size, int64_t n);
/* The STATE cell: "throttled 2s", "delayed (3 failures)", "suspended", ... */
void kt_fmt_state(char *out, size_t size, const struct kt_ready *r);

/*
 * Column layout of the ready table for a terminal width: the PATH column
 * grows; the TLS column shows when cols >= 100 or cols is 0 (batch).
 * longest: the longest name on screen (without the TLS column, names that
 * long may narrow STATE, the last column, down to 9).
 */
int kt_ready_name_width(int cols, size_t longest);
void kt_fmt_ready_header(char *out, size_t size, int name_w, int cols);
void kt_fmt_ready_row(char *out, size_t size, int name_w, int cols, const struct kt_ready *r);
void kt_fmt_sched_header(char *out, size_t size, int name_w);
void kt_fmt_sched_row(char *out, size_t size, int name_w, const struct kt_sched *q);

/* The header lines (shared by the screen and the batch mode). */
void kt_fmt_totals(char *out, size_t size, const struct kt_snap *s);
void kt_fmt_gauges(char *out, size_t size, const struct kt_snap *s);
void kt_fmt_rates(char *out, size_t size, const struct kt_snap *s);

/* One batch-mode snapshot, like `top -b`: header, both tables, a blank line. */
void kt_print_batch(FILE *out, const char *server, const struct kt_snap *s, const char *filter);

/* Rates kept for the sparklines: one sample per snapshot. */
#define KT_HIST 256
enum { KT_H_RECEIVED, KT_H_DELIVERED, KT_H_TRANSIENT, KT_H_BOUNCED, KT_H_N };

enum kt_mode { KT_NORMAL, KT_FILTER, KT_CONFIRM, KT_HELP };
enum kt_table { KT_READY, KT_SCHED };

/* The interactive program's state: main.c owns it, view.c draws it. */
struct kt_app {
	/* options */
	const char *socket;
	int interval; /* seconds */
	int color;
	int suspend_secs;
	/* connection */
	struct ctl_client *c;
	char *server;                  /* the hello's "server" and pid, for the title */
	char *down;                    /* why the daemon is unreachable, NULL while connected */
	long long retry_at, last_data; /* monotonic ms */
	int backoff_ms;
	/* data */
	struct kt_snap snap;
	int have_snap;
	double hist[KT_H_N][KT_HIST];
	size_t hist_n; /* samples kept, at most KT_HIST; the newest is at hist_n - 1 */
	/* navigation */
	enum kt_table table;
	int sort[2];
	char filter[128];
	size_t *view, n_view;
	size_t sel, top;
	char *sel_name;
	enum kt_mode mode;
	int confirm; /* 'S' or 'R' */
	char *confirm_name;
	/* the detail pane */
	int detail;
	enum kt_table detail_table;
	char *detail_name;
	json_t *detail_inspect, *detail_resolve;
	int detail_resolve_wanted; /* ask resolve-egress-path once inspect names the domain */
	char *detail_err;
	/* the bottom line's last message */
	char *msg;
	int msg_error;
	int rows_visible; /* table rows that fit, set by the last draw (PgUp/PgDn step) */
};

/* ncurses set-up and tear-down; colours only when app->color. */
void kt_view_open(struct kt_app *app);
void kt_view_close(void);
/* Draw the whole screen (ncurses sends only what changed). */
void kt_view_draw(struct kt_app *app);

#endif
