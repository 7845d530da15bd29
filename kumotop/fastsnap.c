/*
 * fastsnap.c: a fast path for the one line kumotop reads most: a watch
 * snapshot, `{"id":N,"stream":{...}}`. With 10,000 ready queues that line
 * is about 2 MB every second, and building a jansson tree of it (hash
 * tables for 10,000 objects, then freeing them) cost 50 ms, most of
 * kumotop's CPU. This parser walks the text once, writing rows straight
 * into struct kt_snap and pointing its strings into one copy of the line.
 *
 * It is deliberately narrow: anything it does not expect (a string with an
 * escape, a control byte or a non-ASCII byte, a member of the wrong type, a
 * line of another shape or id) makes it give up and the caller parses the
 * line with jansson (lib/ctl.c) as before, so the slow path keeps the
 * protocol's validation and this one never has to be clever. It is total:
 * every read is bounds-checked and nesting is capped.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kumo.h"

#include "kumotop.h"

#define FP_DEPTH 32

struct fp {
	char *p, *end;
};

static void
ws(struct fp *f)
{
	while (f->p < f->end && (*f->p == ' ' || *f->p == '\t' || *f->p == '\n' || *f->p == '\r'))
		f->p++;
}

/* Skip whitespace and take the character c. */
static int
take(struct fp *f, char c)
{
	ws(f);
	if (f->p < f->end && *f->p == c) {
		f->p++;
		return 1;
	}
	return 0;
}

static int
peek(struct fp *f, char c)
{
	ws(f);
	return f->p < f->end && *f->p == c;
}

/* A plain string (printable ASCII, no escapes): NUL-terminated in place. NULL to give up. */
static const char *
str(struct fp *f)
{
	char *s;

	if (!take(f, '"'))
		return NULL;
	for (s = f->p; f->p < f->end; f->p++) {
		unsigned char c = (unsigned char)*f->p;

		if (c == '"') {
			*f->p++ = '\0';
			return s;
		}
		if (c < 0x20 || c >= 0x7f || c == '\\')
			return NULL;
	}
	return NULL;
}

/* A JSON number; *is_int when it had no fraction or exponent. 0 to give up. */
static int
num(struct fp *f, double *d, int64_t *i, int *is_int)
{
	char *s, *q, tmp[64];
	size_t len;

	ws(f);
	s = q = f->p;
	*is_int = 1;
	if (q < f->end && *q == '-')
		q++;
	if (q >= f->end || *q < '0' || *q > '9')
		return 0;
	if (*q == '0' && q + 1 < f->end && q[1] >= '0' && q[1] <= '9')
		return 0; /* JSON has no leading zeros */
	while (q < f->end && *q >= '0' && *q <= '9')
		q++;
	if (q < f->end && *q == '.') {
		*is_int = 0;
		q++;
		if (q >= f->end || *q < '0' || *q > '9')
			return 0;
		while (q < f->end && *q >= '0' && *q <= '9')
			q++;
	}
	if (q < f->end && (*q == 'e' || *q == 'E')) {
		*is_int = 0;
		q++;
		if (q < f->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= f->end || *q < '0' || *q > '9')
			return 0;
		while (q < f->end && *q >= '0' && *q <= '9')
			q++;
	}
	len = (size_t)(q - s);
	if (len >= sizeof(tmp))
		return 0; /* let jansson judge numbers this long */
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	errno = 0;
	*d = strtod(tmp, NULL);
	if (errno == ERANGE && (*d == HUGE_VAL || *d == -HUGE_VAL))
		return 0; /* jansson calls this an overflow: let it say so */
	if (*is_int) {
		char *e;

		*i = (int64_t)strtoll(tmp, &e, 10);
		if (len > 18)
			return 0; /* near or past int64: the slow path clamps */
	} else {
		*i = *d > 9.0e18    ? INT64_C(9000000000000000000)
		     : *d < -9.0e18 ? -INT64_C(9000000000000000000)
		                    : (int64_t)*d;
	}
	f->p = q;
	return 1;
}

static int64_t
int_member(struct fp *f, int *ok)
{
	double d;
	int64_t i;
	int is_int;

	*ok = num(f, &d, &i, &is_int);
	return i;
}

static double
real_member(struct fp *f, int *ok)
{
	double d;
	int64_t i;
	int is_int;

	*ok = num(f, &d, &i, &is_int);
	(void)i;
	return d > 1e12 ? 1e12 : d < -1e12 ? -1e12 : d;
}

/* Skip any value of the kinds this parser reads. 0 to give up. */
static int
skip(struct fp *f, int depth)
{
	double d;
	int64_t i;
	int is_int;

	if (depth > FP_DEPTH)
		return 0;
	ws(f);
	if (f->p >= f->end)
		return 0;
	switch (*f->p) {
	case '"':
		return str(f) != NULL;
	case '{':
		f->p++;
		if (take(f, '}'))
			return 1;
		do {
			if (str(f) == NULL || !take(f, ':') || !skip(f, depth + 1))
				return 0;
		} while (take(f, ','));
		return take(f, '}');
	case '[':
		f->p++;
		if (take(f, ']'))
			return 1;
		do {
			if (!skip(f, depth + 1))
				return 0;
		} while (take(f, ','));
		return take(f, ']');
	case 't':
		if (f->end - f->p >= 4 && memcmp(f->p, "true", 4) == 0) {
			f->p += 4;
			return 1;
		}
		return 0;
	case 'f':
		if (f->end - f->p >= 5 && memcmp(f->p, "false", 5) == 0) {
			f->p += 5;
			return 1;
		}
		return 0;
	case 'n':
		if (f->end - f->p >= 4 && memcmp(f->p, "null", 4) == 0) {
			f->p += 4;
			return 1;
		}
		return 0;
	default:
		return num(f, &d, &i, &is_int);
	}
}

static int
ready_row(struct fp *f, struct kt_ready *r)
{
	const char *key;
	int ok = 1;

	memset(r, 0, sizeof(*r));
	r->name = r->source = r->site = r->status = r->tls = "";
	if (!take(f, '{'))
		return 0;
	if (take(f, '}'))
		return 1;
	do {
		const char **sp = NULL;
		int64_t *ip = NULL;

		if ((key = str(f)) == NULL || !take(f, ':'))
			return 0;
		if (strcmp(key, "name") == 0)
			sp = &r->name;
		else if (strcmp(key, "source") == 0)
			sp = &r->source;
		else if (strcmp(key, "site") == 0)
			sp = &r->site;
		else if (strcmp(key, "status") == 0)
			sp = &r->status;
		else if (strcmp(key, "tls") == 0)
			sp = &r->tls;
		else if (strcmp(key, "delivered") == 0)
			ip = &r->delivered;
		else if (strcmp(key, "transient") == 0)
			ip = &r->transient;
		else if (strcmp(key, "connections") == 0)
			ip = &r->connections;
		else if (strcmp(key, "queued") == 0)
			ip = &r->queued;
		else if (strcmp(key, "next_permit_in") == 0)
			ip = &r->next_permit_in;
		else if (strcmp(key, "consecutive_failures") == 0)
			ip = &r->failures;
		if (sp != NULL)
			ok = (*sp = str(f)) != NULL;
		else if (ip != NULL)
			*ip = int_member(f, &ok);
		else if (strcmp(key, "rate") == 0)
			r->rate = real_member(f, &ok);
		else
			ok = skip(f, 2);
		if (!ok)
			return 0;
	} while (take(f, ','));
	return take(f, '}');
}

static int
sched_row(struct fp *f, struct kt_sched *q)
{
	const char *key;
	int ok = 1;

	memset(q, 0, sizeof(*q));
	q->name = q->status = "";
	if (!take(f, '{'))
		return 0;
	if (take(f, '}'))
		return 1;
	do {
		if ((key = str(f)) == NULL || !take(f, ':'))
			return 0;
		if (strcmp(key, "name") == 0)
			ok = (q->name = str(f)) != NULL;
		else if (strcmp(key, "status") == 0)
			ok = (q->status = str(f)) != NULL;
		else if (strcmp(key, "queued") == 0)
			q->queued = int_member(f, &ok);
		else if (strcmp(key, "next_due_in") == 0)
			q->next_due_in = int_member(f, &ok);
		else
			ok = skip(f, 2);
		if (!ok)
			return 0;
	} while (take(f, ','));
	return take(f, '}');
}

/* An object of numbers: each key found in keys[] is stored through its slot. */
static int
numbers(struct fp *f, const char *const *keys, int64_t **islots, double **dslots, size_t n)
{
	const char *key;
	size_t k;
	int ok = 1;

	if (!take(f, '{'))
		return 0;
	if (take(f, '}'))
		return 1;
	do {
		if ((key = str(f)) == NULL || !take(f, ':'))
			return 0;
		for (k = 0; k < n && strcmp(keys[k], key) != 0; k++)
			;
		if (k == n)
			ok = skip(f, 2);
		else if (islots != NULL)
			*islots[k] = int_member(f, &ok);
		else
			*dslots[k] = real_member(f, &ok);
		if (!ok)
			return 0;
	} while (take(f, ','));
	return take(f, '}');
}

static int
snapshot(struct fp *f, struct kt_snap *s)
{
	static const char *const tkeys[] = {"received", "delivered",   "transient",
	                                    "bounced",  "expired",     "scheduled",
	                                    "ready",    "connections", "memory"};
	static const char *const rkeys[] = {"received", "delivered", "transient", "bounced"};
	int64_t *tslots[] = {&s->received, &s->delivered,   &s->transient,
	                     &s->bounced,  &s->expired,     &s->scheduled,
	                     &s->ready,    &s->connections, &s->memory};
	double *rslots[] = {&s->r_received, &s->r_delivered, &s->r_transient, &s->r_bounced};
	const char *key;
	size_t cap;
	int ok = 1;

	if (!take(f, '{'))
		return 0;
	if (take(f, '}'))
		return 1;
	do {
		if ((key = str(f)) == NULL || !take(f, ':'))
			return 0;
		if (strcmp(key, "time") == 0) {
			s->time = int_member(f, &ok);
		} else if (strcmp(key, "uptime") == 0) {
			s->uptime = int_member(f, &ok);
		} else if (strcmp(key, "totals") == 0) {
			ok = numbers(f, tkeys, tslots, NULL, KUMO_NELEM(tkeys));
		} else if (strcmp(key, "rates") == 0) {
			ok = numbers(f, rkeys, NULL, rslots, KUMO_NELEM(rkeys));
		} else if (strcmp(key, "ready") == 0 && s->rq == NULL) {
			cap = 64;
			s->rq = xcalloc(cap, sizeof(*s->rq));
			if (!take(f, '['))
				return 0;
			if (!take(f, ']')) {
				do {
					if (s->n_rq == cap) {
						cap *= 2;
						s->rq = xreallocarray(s->rq, cap, sizeof(*s->rq));
					}
					if (!ready_row(f, &s->rq[s->n_rq++]))
						return 0;
				} while (take(f, ','));
				ok = take(f, ']');
			}
		} else if (strcmp(key, "scheduled") == 0 && s->sq == NULL) {
			cap = 16;
			s->sq = xcalloc(cap, sizeof(*s->sq));
			if (!take(f, '['))
				return 0;
			if (!take(f, ']')) {
				do {
					if (s->n_sq == cap) {
						cap *= 2;
						s->sq = xreallocarray(s->sq, cap, sizeof(*s->sq));
					}
					if (!sched_row(f, &s->sq[s->n_sq++]))
						return 0;
				} while (take(f, ','));
				ok = take(f, ']');
			}
		} else if (strcmp(key, "ready") == 0 || strcmp(key, "scheduled") == 0) {
			return 0; /* a duplicate: the slow path reports it */
		} else {
			ok = skip(f, 1);
		}
		if (!ok)
			return 0;
	} while (take(f, ','));
	return take(f, '}');
}

int
kt_snap_parse_fast(const char *line, size_t len, long long watch_id, struct kt_snap *s)
{
	struct fp f;
	const char *key;
	int64_t id = -1;
	int got = 0, ok = 1;

	memset(s, 0, sizeof(*s));
	/* cheap refusal of every other kind of line before copying anything */
	if (len < 12 || memcmp(line, "{\"id\":", 6) != 0 ||
	    memmem(line, len < 64 ? len : 64, "\"stream\"", 8) == NULL)
		return 0;
	s->text = xmalloc(len + 1);
	memcpy(s->text, line, len);
	s->text[len] = '\0';
	f.p = s->text;
	f.end = s->text + len;
	if (!take(&f, '{'))
		goto giveup;
	do {
		if ((key = str(&f)) == NULL || !take(&f, ':'))
			goto giveup;
		if (strcmp(key, "id") == 0 && id < 0)
			id = int_member(&f, &ok);
		else if (strcmp(key, "stream") == 0 && !got && peek(&f, '{'))
			ok = got = snapshot(&f, s);
		else
			goto giveup;
		if (!ok)
			goto giveup;
	} while (take(&f, ','));
	if (!take(&f, '}') || (ws(&f), f.p != f.end) || !got || id != watch_id)
		goto giveup;
	if (s->rq == NULL)
		s->rq = xcalloc(1, sizeof(*s->rq));
	if (s->sq == NULL)
		s->sq = xcalloc(1, sizeof(*s->sq));
	return 1;
giveup:
	kt_snap_clear(s);
	return 0;
}
