/*
 * throttle.c: rate strings and the GCRA (see throttle.h). The parser is
 * total over any bytes. throttle_check() works in "scaled" time, where one
 * microsecond is `limit` units: the emission interval is then exactly
 * period_us units and nothing is rounded until a wait is reported (rounded
 * up, so a wait is never too short). Scaled values need up to 128 bits.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "kumo.h"
#include "throttle.h"

#ifndef __SIZEOF_INT128__
#error "throttle.c needs a compiler with unsigned __int128"
#endif
typedef unsigned __int128 throttle_u128;

#define USEC_PER_SEC 1000000ull

struct throttle_period {
	const char *name;
	uint64_t secs;
};

static const struct throttle_period throttle_periods[] = {
    {"s", 1},          {"sec", 1},     {"secs", 1},     {"second", 1},  {"seconds", 1},
    {"m", 60},         {"min", 60},    {"mins", 60},    {"minute", 60}, {"minutes", 60},
    {"h", 3600},       {"hr", 3600},   {"hrs", 3600},   {"hour", 3600}, {"hours", 3600},
    {"d", 86400},      {"day", 86400}, {"days", 86400}, {"w", 604800},  {"week", 604800},
    {"weeks", 604800},
};

static int
throttle_isspace(char c)
{
	return c == ' ' || c == '\t';
}

static int
throttle_issep(char c)
{
	return c == ',' || c == '_';
}

int
throttle_parse(const char *s, struct throttle_spec *spec, char **err_r)
{
	const char *p, *tok, *unit;
	const struct throttle_period *per = NULL;
	uint64_t limit = 0, mult = 1;
	size_t toklen, i;

	if (s == NULL)
		return kumo_input_error(err_r, KUMO_EPARSE, "", "empty rate", NULL, 0);
	p = s;
	while (throttle_isspace(*p))
		p++;
	if (*p == '\0')
		return kumo_input_error(err_r, KUMO_EPARSE, s, "empty rate", NULL, 0);
	if (*p == '-')
		return kumo_input_error(err_r, KUMO_EPARSE, s, "negative rates are not allowed", NULL,
		                      0);

	/* The count: digits grouped by single separators. */
	tok = p;
	toklen = strspn(tok, "0123456789,_");
	if (toklen == 0)
		return kumo_input_error(err_r, KUMO_EPARSE, s, "expected a number at", tok,
		                      strlen(tok));
	for (i = 0; i < toklen; i++) {
		if (throttle_issep(tok[i])) {
			if (i == 0 || i + 1 == toklen || throttle_issep(tok[i + 1]))
				return kumo_input_error(err_r, KUMO_EPARSE, s,
				                      "misplaced digit separator in", tok, toklen);
			continue;
		}
		if (limit > (UINT64_MAX - (uint64_t)(tok[i] - '0')) / 10)
			return kumo_input_error(err_r, KUMO_ERANGE, s, "number too large:", tok,
			                      toklen);
		limit = limit * 10 + (uint64_t)(tok[i] - '0');
	}
	if (limit == 0)
		return kumo_input_error(err_r, KUMO_ERANGE, s, "the limit must be at least 1", NULL,
		                      0);
	p = tok + toklen;
	while (throttle_isspace(*p))
		p++;
	if (*p == '\0')
		return kumo_input_error(err_r, KUMO_EPARSE, s, "missing \"/period\"", NULL, 0);
	if (*p != '/')
		return kumo_input_error(err_r, KUMO_EPARSE, s, "unexpected", p, strlen(p));
	p++;
	while (throttle_isspace(*p))
		p++;

	/* An optional multiplier, then the period's unit. */
	if (isdigit((unsigned char)*p)) {
		tok = p;
		mult = 0;
		for (; isdigit((unsigned char)*p); p++) {
			if (mult > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
				return kumo_input_error(err_r, KUMO_ERANGE, s, "period too long",
				                      NULL, 0);
			mult = mult * 10 + (uint64_t)(*p - '0');
		}
		if (mult == 0)
			return kumo_input_error(err_r, KUMO_ERANGE, s,
			                      "the period multiplier must be at least 1", NULL, 0);
		while (throttle_isspace(*p))
			p++;
	}
	unit = p;
	while (isalpha((unsigned char)*p))
		p++;
	if (p == unit) {
		if (*p == '\0')
			return kumo_input_error(err_r, KUMO_EPARSE, s, "missing period", NULL, 0);
		return kumo_input_error(err_r, KUMO_EPARSE, s, "unexpected", p, strlen(p));
	}
	for (i = 0; i < KUMO_NELEM(throttle_periods); i++)
		if (strlen(throttle_periods[i].name) == (size_t)(p - unit) &&
		    strncasecmp(throttle_periods[i].name, unit, (size_t)(p - unit)) == 0)
			per = &throttle_periods[i];
	if (per == NULL)
		return kumo_input_error(err_r, KUMO_EPARSE, s, "unknown period", unit,
		                      (size_t)(p - unit));
	while (throttle_isspace(*p))
		p++;
	if (*p != '\0')
		return kumo_input_error(err_r, KUMO_EPARSE, s, "unexpected", p, strlen(p));
	if (mult > UINT64_MAX / USEC_PER_SEC / per->secs)
		return kumo_input_error(err_r, KUMO_ERANGE, s, "period too long", NULL, 0);
	spec->limit = limit;
	spec->period_us = mult * per->secs * USEC_PER_SEC;
	spec->burst = limit;
	return 0;
}

size_t
throttle_spec_format(const struct throttle_spec *spec, char *out, size_t outlen)
{
	static const struct {
		uint64_t secs;
		const char *name;
	} units[] = {{604800, "w"}, {86400, "d"}, {3600, "h"}, {60, "min"}, {1, "s"}};
	char tmp[THROTTLE_FORMAT_MAX + 32];
	size_t len, i;

	len = (size_t)snprintf(tmp, sizeof(tmp), "%llu/", (unsigned long long)spec->limit);
	if (spec->period_us == 0 || spec->period_us % USEC_PER_SEC != 0) {
		len += (size_t)snprintf(tmp + len, sizeof(tmp) - len, "%lluus",
		                        (unsigned long long)spec->period_us);
	} else {
		uint64_t secs = spec->period_us / USEC_PER_SEC;

		for (i = 0; i < KUMO_NELEM(units); i++) {
			if (secs % units[i].secs != 0)
				continue;
			if (secs != units[i].secs)
				len += (size_t)snprintf(tmp + len, sizeof(tmp) - len, "%llu",
				                        (unsigned long long)(secs / units[i].secs));
			len += (size_t)snprintf(tmp + len, sizeof(tmp) - len, "%s", units[i].name);
			break;
		}
	}
	if (spec->burst != 0 && spec->burst != spec->limit)
		len += (size_t)snprintf(tmp + len, sizeof(tmp) - len, " (burst %llu)",
		                        (unsigned long long)spec->burst);
	if (outlen > 0)
		snprintf(out, outlen, "%s", tmp);
	return len;
}

void
throttle_reset(struct throttle_state *st)
{
	st->tat_us = 0;
	st->tat_frac = 0;
}

int
throttle_check(struct throttle_state *st, const struct throttle_spec *spec, uint64_t now_us,
               uint64_t *wait_us)
{
	throttle_u128 lim, tat, now, tol, allow, next, wait;
	uint64_t burst, frac;

	if (spec->limit == 0 || spec->period_us == 0)
		return KUMO_EINVAL;
	lim = spec->limit;
	burst = spec->burst ? spec->burst : spec->limit;
	frac = st->tat_frac < spec->limit ? st->tat_frac : spec->limit - 1;
	tat = (throttle_u128)st->tat_us * lim + frac;
	now = (throttle_u128)now_us * lim;
	tol = (throttle_u128)(burst - 1) * spec->period_us;
	allow = tat > tol ? tat - tol : 0;
	if (now < allow) {
		/* Rounded up: at now + wait the request fits, one microsecond earlier it does not.
		 */
		wait = (allow - now + lim - 1) / lim;
		if (wait_us != NULL)
			*wait_us = wait > UINT64_MAX ? UINT64_MAX : (uint64_t)wait;
		return 0;
	}
	/*
	 * Plain GCRA restarts from now when the request comes after tat. A
	 * caller can only come back on a whole microsecond (the rounded-up
	 * wait), so lateness under one microsecond is treated as on time;
	 * otherwise a caller that always waits exactly as told would lose the
	 * fraction on every request. tat still only grows, by T or more per
	 * admission, so the bound of burst + rate x elapsed holds.
	 */
	next = (now >= tat && now - tat >= lim ? now : tat) + spec->period_us;
	if (next / lim > UINT64_MAX) {
		/* Only reachable with a clock near the end of 64-bit time: saturate. */
		st->tat_us = UINT64_MAX;
		st->tat_frac = spec->limit - 1;
	} else {
		st->tat_us = (uint64_t)(next / lim);
		st->tat_frac = (uint64_t)(next % lim);
	}
	if (wait_us != NULL)
		*wait_us = 0;
	return 1;
}
