/*
 * duration.c: parse and format durations in whole seconds (see duration.h).
 * The parser is total: any bytes give either a value or an error message
 * that quotes the input (non-printable bytes escaped) and names the token.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "duration.h"
#include "kumo.h"

struct duration_unit {
	const char *name;
	uint64_t secs; /* 0: a sub-second unit we refuse */
};

static const struct duration_unit duration_units[] = {
    {"s", 1},           {"sec", 1},          {"secs", 1},         {"second", 1},
    {"seconds", 1},     {"m", 60},           {"min", 60},         {"mins", 60},
    {"minute", 60},     {"minutes", 60},     {"h", 3600},         {"hr", 3600},
    {"hrs", 3600},      {"hour", 3600},      {"hours", 3600},     {"d", 86400},
    {"day", 86400},     {"days", 86400},     {"w", 604800},       {"week", 604800},
    {"weeks", 604800},  {"ms", 0},           {"msec", 0},         {"msecs", 0},
    {"millisecond", 0}, {"milliseconds", 0}, {"us", 0},           {"usec", 0},
    {"usecs", 0},       {"microsecond", 0},  {"microseconds", 0}, {"ns", 0},
    {"nsec", 0},        {"nanosecond", 0},   {"nanoseconds", 0},
};

static const struct duration_unit *
duration_unit_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < KUMO_NELEM(duration_units); i++)
		if (strlen(duration_units[i].name) == len &&
		    strncasecmp(duration_units[i].name, name, len) == 0)
			return &duration_units[i];
	return NULL;
}

static int
duration_isspace(char c)
{
	return c == ' ' || c == '\t';
}

int
duration_parse(const char *s, uint64_t *secs, char **err_r)
{
	const char *p = s, *num, *unit;
	const struct duration_unit *u;
	uint64_t total = 0, n;
	int terms = 0;

	if (s == NULL)
		return kumo_input_error(err_r, KUMO_EPARSE, "", "empty duration", NULL, 0);
	for (;;) {
		while (duration_isspace(*p))
			p++;
		if (*p == '\0')
			break;
		if (*p == '-')
			return kumo_input_error(err_r, KUMO_EPARSE, s,
			                      "negative durations are not allowed", NULL, 0);
		if (!isdigit((unsigned char)*p))
			return kumo_input_error(err_r, KUMO_EPARSE, s, "expected a number at", p,
			                      strlen(p));
		num = p;
		n = 0;
		for (; isdigit((unsigned char)*p); p++) {
			unsigned d = (unsigned)(*p - '0');

			if (n > (DURATION_MAX - d) / 10) {
				while (isdigit((unsigned char)*p))
					p++;
				return kumo_input_error(err_r, KUMO_ERANGE, s,
				                      "number too large:", num, (size_t)(p - num));
			}
			n = n * 10 + d;
		}
		if (*p == '.')
			return kumo_input_error(err_r, KUMO_EPARSE, s,
			                      "fractions are not supported:", num,
			                      strcspn(num, " \t"));
		while (duration_isspace(*p))
			p++;
		unit = p;
		while (isalpha((unsigned char)*p))
			p++;
		if (p == unit) {
			/* A bare number is seconds, but only as the whole duration. */
			if (*p == '\0' && terms == 0) {
				total = n;
				terms++;
				break;
			}
			if (*p == '\0' || duration_isspace(*p) || isdigit((unsigned char)*p))
				return kumo_input_error(err_r, KUMO_EPARSE, s, "missing unit after",
				                      num, strspn(num, "0123456789"));
			return kumo_input_error(err_r, KUMO_EPARSE, s, "unexpected", p, strlen(p));
		}
		u = duration_unit_find(unit, (size_t)(p - unit));
		if (u == NULL)
			return kumo_input_error(err_r, KUMO_EPARSE, s, "unknown unit", unit,
			                      (size_t)(p - unit));
		if (u->secs == 0)
			return kumo_input_error(err_r, KUMO_EPARSE, s,
			                      "sub-second units are not supported:", unit,
			                      (size_t)(p - unit));
		if (n > DURATION_MAX / u->secs || n * u->secs > DURATION_MAX - total)
			return kumo_input_error(err_r, KUMO_ERANGE, s, "too large", NULL, 0);
		total += n * u->secs;
		terms++;
	}
	if (terms == 0)
		return kumo_input_error(err_r, KUMO_EPARSE, s, "empty duration", NULL, 0);
	*secs = total;
	return 0;
}

size_t
duration_format(uint64_t secs, char *out, size_t outlen)
{
	static const struct {
		uint64_t secs;
		char unit;
	} parts[] = {{604800, 'w'}, {86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
	char tmp[DURATION_FORMAT_MAX + 32];
	size_t len = 0, i;

	tmp[0] = '\0';
	if (secs == 0)
		len = (size_t)snprintf(tmp, sizeof(tmp), "0s");
	for (i = 0; i < KUMO_NELEM(parts) && secs > 0; i++) {
		uint64_t q = secs / parts[i].secs;

		if (q == 0)
			continue;
		secs -= q * parts[i].secs;
		len += (size_t)snprintf(tmp + len, sizeof(tmp) - len, "%llu%c",
		                        (unsigned long long)q, parts[i].unit);
	}
	if (outlen > 0)
		snprintf(out, outlen, "%s", tmp);
	return len;
}
