/*
 * stats.c: what smtp-sink measured. Counters overall, per client address
 * and per EHLO name (connections, peak concurrency, messages), the
 * messages-per-connection histogram, per-second arrivals, TLS versions and
 * suites, AUTH users, PROXY sources, replies by code and named events.
 * Written as one JSON object by sink_stats_write() (write then rename), and
 * as the -c running counter line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "kumo.h"
#include "log.h"
#include "sink.h"

#define MAP_MAX 10000 /* distinct keys per table; later ones are counted as MAP_OTHER */
#define MAP_OTHER "(other)"
#define HIST_MAX 10000 /* messages per connection above this share the last bucket */

struct entry {
	char *key;
	uint64_t n;    /* connections (or plain count) */
	uint64_t cur;  /* open now */
	uint64_t peak; /* highest cur */
	uint64_t msgs;
	struct entry *next;
};

struct map {
	struct entry **b;
	size_t nb, count;
};

static struct {
	time_t started;
	uint64_t start_ms;
	uint64_t conns, cur, peak;
	uint64_t messages, recipients, bytes;
	uint64_t *hist;
	size_t nhist;
	uint64_t *sec_msgs, *sec_conns;
	size_t nsec;
	uint64_t replies[600];
	struct map by_addr, by_ehlo, tls_versions, tls_suites, auth, proxy, events;
	uint64_t last_counter_ms;
} st;

static uint64_t
hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

/* The entry for key, created when absent. */
static struct entry *
map_get(struct map *m, const char *key)
{
	struct entry *e;
	size_t i;

	if (m->nb == 0) {
		m->nb = 64;
		m->b = xcalloc(m->nb, sizeof(*m->b));
	}
	i = hash(key) & (m->nb - 1);
	for (e = m->b[i]; e != NULL; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	if (m->count >= MAP_MAX && strcmp(key, MAP_OTHER) != 0)
		return map_get(m, MAP_OTHER); /* peers choose keys: bound the table */
	if (m->count >= m->nb) {
		size_t nb = m->nb * 2;
		struct entry **b = xcalloc(nb, sizeof(*b));

		for (size_t j = 0; j < m->nb; j++)
			while ((e = m->b[j]) != NULL) {
				size_t k = hash(e->key) & (nb - 1);

				m->b[j] = e->next;
				e->next = b[k];
				b[k] = e;
			}
		free(m->b);
		m->b = b;
		m->nb = nb;
		i = hash(key) & (m->nb - 1);
	}
	e = xcalloc(1, sizeof(*e));
	e->key = xstrdup(key);
	e->next = m->b[i];
	m->b[i] = e;
	m->count++;
	return e;
}

static void
map_free(struct map *m)
{
	for (size_t i = 0; i < m->nb; i++)
		while (m->b[i] != NULL) {
			struct entry *e = m->b[i];

			m->b[i] = e->next;
			free(e->key);
			free(e);
		}
	free(m->b);
	memset(m, 0, sizeof(*m));
}

static void
enter(struct entry *e)
{
	e->n++;
	e->cur++;
	if (e->cur > e->peak)
		e->peak = e->cur;
}

/* Count one arrival in this second's slot of arr. */
static void
per_second(uint64_t **arr)
{
	size_t sec = (size_t)((uv_now(sink_loop) - st.start_ms) / 1000);

	if (sec >= st.nsec) {
		size_t n = sec + 64;

		st.sec_msgs = xreallocarray(st.sec_msgs, n, sizeof(uint64_t));
		st.sec_conns = xreallocarray(st.sec_conns, n, sizeof(uint64_t));
		memset(st.sec_msgs + st.nsec, 0, (n - st.nsec) * sizeof(uint64_t));
		memset(st.sec_conns + st.nsec, 0, (n - st.nsec) * sizeof(uint64_t));
		st.nsec = n;
	}
	(*arr)[sec]++;
}

void
sink_stats_init(void)
{
	st.started = time(NULL);
	uv_update_time(sink_loop);
	st.start_ms = uv_now(sink_loop);
}

void
sink_stats_conn_open(const char *addr)
{
	st.conns++;
	st.cur++;
	if (st.cur > st.peak)
		st.peak = st.cur;
	enter(map_get(&st.by_addr, addr));
	per_second(&st.sec_conns);
}

void
sink_stats_ehlo(const char *prev, const char *name)
{
	if (prev != NULL) {
		if (strcmp(prev, name) == 0)
			return;
		map_get(&st.by_ehlo, prev)->cur--;
	}
	enter(map_get(&st.by_ehlo, name));
}

void
sink_stats_conn_close(const char *addr, const char *ehlo, uint64_t nmsgs)
{
	size_t i = nmsgs < HIST_MAX ? (size_t)nmsgs : HIST_MAX;

	st.cur--;
	map_get(&st.by_addr, addr)->cur--;
	if (ehlo != NULL)
		map_get(&st.by_ehlo, ehlo)->cur--;
	if (i >= st.nhist) {
		size_t n = i + 16;

		st.hist = xreallocarray(st.hist, n, sizeof(uint64_t));
		memset(st.hist + st.nhist, 0, (n - st.nhist) * sizeof(uint64_t));
		st.nhist = n;
	}
	st.hist[i]++;
}

void
sink_stats_message(const char *addr, const char *ehlo, int nrcpt, uint64_t bytes)
{
	st.messages++;
	st.recipients += (uint64_t)nrcpt;
	st.bytes += bytes;
	map_get(&st.by_addr, addr)->msgs++;
	if (ehlo != NULL)
		map_get(&st.by_ehlo, ehlo)->msgs++;
	per_second(&st.sec_msgs);
	if (cfg.counter)
		sink_stats_counter(0);
}

void
sink_stats_reply(int code)
{
	if (code >= 0 && code < 600)
		st.replies[code]++;
}

void
sink_stats_tls(const char *version, const char *suite)
{
	map_get(&st.tls_versions, version != NULL ? version : "unknown")->n++;
	map_get(&st.tls_suites, suite != NULL ? suite : "unknown")->n++;
}

void
sink_stats_auth(const char *user)
{
	map_get(&st.auth, user)->n++;
}

void
sink_stats_proxy(const char *src)
{
	map_get(&st.proxy, src)->n++;
}

void
sink_stats_event(const char *what)
{
	map_get(&st.events, what)->n++;
}

uint64_t
sink_stats_messages(void)
{
	return st.messages;
}

int
sink_stats_current(void)
{
	return (int)st.cur;
}

void
sink_json_str(struct buf *b, const char *s)
{
	buf_putc(b, '"');
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			buf_appendf(b, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			/* Peer bytes need not be UTF-8: escape everything outside ASCII. */
			buf_appendf(b, "\\u%04x", c);
		else
			buf_putc(b, (char)c);
	}
	buf_putc(b, '"');
}

/* {"key":n,...} of a counting map. */
static void
json_counts(struct buf *b, const struct map *m)
{
	int first = 1;

	buf_putc(b, '{');
	for (size_t i = 0; i < m->nb; i++)
		for (struct entry *e = m->b[i]; e != NULL; e = e->next) {
			if (!first)
				buf_putc(b, ',');
			first = 0;
			sink_json_str(b, e->key);
			buf_appendf(b, ":%llu", (unsigned long long)e->n);
		}
	buf_putc(b, '}');
}

/* {"key":{"connections":n,"current":n,"peak_concurrent":n,"messages":n},...} */
static void
json_conns(struct buf *b, const struct map *m)
{
	int first = 1;

	buf_putc(b, '{');
	for (size_t i = 0; i < m->nb; i++)
		for (struct entry *e = m->b[i]; e != NULL; e = e->next) {
			if (!first)
				buf_putc(b, ',');
			first = 0;
			sink_json_str(b, e->key);
			buf_appendf(
			    b,
			    ":{\"connections\":%llu,\"current\":%llu,\"peak_concurrent\":%llu,"
			    "\"messages\":%llu}",
			    (unsigned long long)e->n, (unsigned long long)e->cur,
			    (unsigned long long)e->peak, (unsigned long long)e->msgs);
		}
	buf_putc(b, '}');
}

static void
json_array(struct buf *b, const uint64_t *a, size_t n)
{
	buf_putc(b, '[');
	for (size_t i = 0; i < n; i++)
		buf_appendf(b, "%s%llu", i > 0 ? "," : "", (unsigned long long)a[i]);
	buf_putc(b, ']');
}

int
sink_stats_write(const char *path)
{
	struct buf b;
	char *tmp;
	FILE *fp;
	size_t nsec, i;
	int first = 1, rc = 0;

	uv_update_time(sink_loop);
	nsec = (size_t)((uv_now(sink_loop) - st.start_ms) / 1000) + 1;
	if (nsec > st.nsec)
		nsec = st.nsec;
	buf_init(&b, 0);
	buf_appendf(&b, "{\"started\":%lld,\"written\":%lld,\"pid\":%d,", (long long)st.started,
	            (long long)time(NULL), (int)getpid());
	buf_appendf(
	    &b, "\"connections\":{\"total\":%llu,\"current\":%llu,\"peak_concurrent\":%llu},",
	    (unsigned long long)st.conns, (unsigned long long)st.cur, (unsigned long long)st.peak);
	buf_appendf(&b, "\"messages\":%llu,\"recipients\":%llu,\"bytes\":%llu,",
	            (unsigned long long)st.messages, (unsigned long long)st.recipients,
	            (unsigned long long)st.bytes);
	buf_puts(&b, "\"by_client\":");
	json_conns(&b, &st.by_addr);
	buf_puts(&b, ",\"by_ehlo\":");
	json_conns(&b, &st.by_ehlo);
	buf_puts(&b, ",\"messages_per_connection\":{");
	for (i = 0; i < st.nhist; i++) {
		if (st.hist[i] == 0)
			continue;
		buf_appendf(&b, "%s\"%zu%s\":%llu", first ? "" : ",", i, i == HIST_MAX ? "+" : "",
		            (unsigned long long)st.hist[i]);
		first = 0;
	}
	buf_appendf(&b, "},\"per_second\":{\"start\":%lld,\"messages\":", (long long)st.started);
	json_array(&b, st.sec_msgs, nsec);
	buf_puts(&b, ",\"connections\":");
	json_array(&b, st.sec_conns, nsec);
	buf_puts(&b, "},\"tls\":{\"versions\":");
	json_counts(&b, &st.tls_versions);
	buf_puts(&b, ",\"suites\":");
	json_counts(&b, &st.tls_suites);
	buf_puts(&b, "},\"auth_users\":");
	json_counts(&b, &st.auth);
	buf_puts(&b, ",\"proxy_sources\":");
	json_counts(&b, &st.proxy);
	buf_puts(&b, ",\"replies\":{");
	first = 1;
	for (i = 0; i < KUMO_NELEM(st.replies); i++) {
		if (st.replies[i] == 0)
			continue;
		buf_appendf(&b, "%s\"%zu\":%llu", first ? "" : ",", i,
		            (unsigned long long)st.replies[i]);
		first = 0;
	}
	buf_puts(&b, "},\"events\":");
	json_counts(&b, &st.events);
	buf_puts(&b, "}\n");

	tmp = xasprintf("%s.tmp", path);
	fp = fopen(tmp, "w");
	if (fp == NULL) {
		rc = -errno;
	} else {
		if (fwrite(b.data, 1, b.len, fp) != b.len)
			rc = -errno;
		if (fclose(fp) != 0 && rc == 0)
			rc = -errno;
		if (rc == 0 && rename(tmp, path) != 0)
			rc = -errno;
	}
	if (rc != 0)
		log_warn("--stats-json: %s: %s", path, strerror(-rc));
	free(tmp);
	buf_release(&b);
	return rc;
}

void
sink_stats_counter(int final)
{
	uint64_t now = uv_now(sink_loop);

	if (!final && now - st.last_counter_ms < 100)
		return;
	st.last_counter_ms = now;
	printf(
	    "\rconnections %llu (now %llu, peak %llu) messages %llu recipients %llu bytes %llu%s",
	    (unsigned long long)st.conns, (unsigned long long)st.cur, (unsigned long long)st.peak,
	    (unsigned long long)st.messages, (unsigned long long)st.recipients,
	    (unsigned long long)st.bytes, final ? "\n" : "");
	fflush(stdout);
}

void
sink_stats_deinit(void)
{
	map_free(&st.by_addr);
	map_free(&st.by_ehlo);
	map_free(&st.tls_versions);
	map_free(&st.tls_suites);
	map_free(&st.auth);
	map_free(&st.proxy);
	map_free(&st.events);
	free(st.hist);
	free(st.sec_msgs);
	free(st.sec_conns);
	memset(&st, 0, sizeof(st));
}
