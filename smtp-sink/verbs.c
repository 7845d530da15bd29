/*
 * verbs.c: smtp-sink's verb table, one row per SMTP verb holding its default
 * reply and the faults the options put on it (a replacement reply with a
 * probability, a delay with a probability, drop or 421-and-drop), plus the
 * parsers of those options and the seeded PRNG that decides the @PERCENT
 * faults. Like Postfix smtp-sink's command_table[], options only edit rows.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "duration.h"
#include "kumo.h"
#include "sink.h"

struct sink_row sink_verbs[SV_COUNT] = {
    [SV_CONNECT] = {"CONNECT", 220, NULL, NULL, NULL, 0, 100, 0, 100, 0},
    [SV_EHLO] = {"EHLO", 250, NULL, NULL, NULL, 0, 100, 0, 100, 0},
    [SV_HELO] = {"HELO", 250, NULL, NULL, NULL, 0, 100, 0, 100, 0},
    [SV_STARTTLS] = {"STARTTLS", 220, "2.0.0", "Ready to start TLS", NULL, 0, 100, 0, 100, 0},
    [SV_AUTH] = {"AUTH", 235, "2.7.0", "Authentication successful", NULL, 0, 100, 0, 100, 0},
    [SV_MAIL] = {"MAIL", 250, "2.1.0", "Ok", NULL, 0, 100, 0, 100, 0},
    [SV_RCPT] = {"RCPT", 250, "2.1.5", "Ok", NULL, 0, 100, 0, 100, 0},
    [SV_DATA] = {"DATA", 354, NULL, "End data with <CR><LF>.<CR><LF>", NULL, 0, 100, 0, 100, 0},
    [SV_DOT] = {"DOT", 250, "2.0.0", "Ok: queued", NULL, 0, 100, 0, 100, 0},
    [SV_BDAT] = {"BDAT", 250, "2.0.0", "Ok: chunk received", NULL, 0, 100, 0, 100, 0},
    [SV_RSET] = {"RSET", 250, "2.0.0", "Ok", NULL, 0, 100, 0, 100, 0},
    [SV_NOOP] = {"NOOP", 250, "2.0.0", "Ok", NULL, 0, 100, 0, 100, 0},
    [SV_VRFY] = {"VRFY", 252, "2.0.0", "Cannot VRFY user, but will accept message", NULL, 0, 100, 0,
                 100, 0},
    [SV_QUIT] = {"QUIT", 221, "2.0.0", "Bye", NULL, 0, 100, 0, 100, 0},
};

void
sink_verbs_prepare(int enhanced)
{
	for (int i = 0; i < SV_COUNT; i++) {
		struct sink_row *r = &sink_verbs[i];

		if (r->text == NULL)
			continue;
		free(r->line);
		if (r->enh != NULL && enhanced)
			r->line = xasprintf("%d %s %s\r\n", r->code, r->enh, r->text);
		else
			r->line = xasprintf("%d %s\r\n", r->code, r->text);
		r->linelen = strlen(r->line);
	}
}

void
sink_verbs_free(void)
{
	for (int i = 0; i < SV_COUNT; i++) {
		free(sink_verbs[i].reply);
		free(sink_verbs[i].line);
		sink_verbs[i].reply = sink_verbs[i].line = NULL;
	}
}

int
sink_verb_lookup(const char *name)
{
	if (strcmp(name, ".") == 0)
		return SV_DOT;
	if (strcasecmp(name, "LHLO") == 0)
		return SV_EHLO;
	for (int i = 0; i < SV_COUNT; i++)
		if (strcasecmp(name, sink_verbs[i].name) == 0)
			return i;
	return -1;
}

/*
 * kumo's durations (lib/duration: "30s", "2min", "1h30m"; whole seconds)
 * plus what a lab needs on top: "NUMBERms", "NUMBERus" and "forever" (-1).
 */
int
sink_duration_parse(const char *s, double *secs)
{
	size_t len = strlen(s);
	uint64_t v;

	if (strcasecmp(s, "forever") == 0 || strcasecmp(s, "inf") == 0) {
		*secs = -1;
		return 0;
	}
	if (len > 2 && (strcasecmp(s + len - 2, "ms") == 0 || strcasecmp(s + len - 2, "us") == 0)) {
		uint64_t n = 0;

		for (size_t i = 0; i < len - 2; i++) {
			if (!isdigit((unsigned char)s[i]) || n > 1000000000000ull)
				return KUMO_EPARSE;
			n = n * 10 + (uint64_t)(s[i] - '0');
		}
		*secs = (double)n / (tolower((unsigned char)s[len - 2]) == 'm' ? 1e3 : 1e6);
		return 0;
	}
	if (duration_parse(s, &v, NULL) != 0 || v > 1000000000ull)
		return KUMO_EPARSE;
	*secs = (double)v;
	return 0;
}

int
sink_percent_parse(const char *s, double *pct)
{
	char *end;
	double v;

	if (*s == '\0')
		return KUMO_EPARSE;
	errno = 0;
	v = strtod(s, &end);
	if (*end == '%')
		end++;
	if (errno != 0 || *end != '\0' || !(v >= 0 && v <= 100))
		return KUMO_EPARSE;
	*pct = v;
	return 0;
}

/* Split "X@PCT" at its last '@' when what follows parses as a percentage. */
static int
split_percent(char *s, double *pct)
{
	char *at = strrchr(s, '@');

	*pct = 100;
	if (at == NULL)
		return 0;
	if (sink_percent_parse(at + 1, pct) != 0)
		return KUMO_EPARSE;
	*at = '\0';
	return 0;
}

/* Split "VERB=VALUE" and find the row; -1 with *err_r set if it fails. */
static int
split_verb(const char *opt, char *copy, char **value, char **err_r)
{
	char *eq = strchr(copy, '=');
	int v;

	if (eq == NULL) {
		*err_r = xasprintf("%s: \"%s\": expected VERB=VALUE", opt, copy);
		return -1;
	}
	*eq = '\0';
	*value = eq + 1;
	v = sink_verb_lookup(copy);
	if (v < 0) {
		*err_r = xasprintf("%s: \"%s\": unknown verb (CONNECT, EHLO, HELO, STARTTLS, AUTH, "
		                   "MAIL, RCPT, DATA, DOT, BDAT, RSET, NOOP, VRFY, QUIT)",
		                   opt, copy);
		return -1;
	}
	return v;
}

int
sink_opt_delay(const char *arg, char **err_r)
{
	char *copy = xstrdup(arg), *value;
	double secs, pct;
	int v;

	v = split_verb("--delay", copy, &value, err_r);
	if (v < 0)
		goto out;
	if (split_percent(value, &pct) != 0) {
		*err_r = xasprintf("--delay: \"%s\": bad percentage after '@'", arg);
		v = -1;
		goto out;
	}
	if (sink_duration_parse(value, &secs) != 0) {
		*err_r = xasprintf("--delay: \"%s\": bad duration \"%s\" (e.g. 500ms, 30s, 2min, "
		                   "forever)",
		                   arg, value);
		v = -1;
		goto out;
	}
	sink_verbs[v].delay = secs;
	sink_verbs[v].delay_pct = pct;
out:
	free(copy);
	return v < 0 ? -1 : 0;
}

int
sink_opt_reply(const char *arg, char **err_r)
{
	char *copy = xstrdup(arg), *value;
	double pct;
	int v;
	size_t len;

	v = split_verb("--reply", copy, &value, err_r);
	if (v < 0)
		goto out;
	if (split_percent(value, &pct) != 0) {
		*err_r = xasprintf("--reply: \"%s\": bad percentage after '@'", arg);
		v = -1;
		goto out;
	}
	len = strlen(value);
	if (len < 3 || value[0] < '2' || value[0] > '5' || !isdigit((unsigned char)value[1]) ||
	    !isdigit((unsigned char)value[2]) || (len > 3 && value[3] != ' ') || len > 500 ||
	    strpbrk(value, "\r\n") != NULL) {
		*err_r =
		    xasprintf("--reply: \"%s\": expected \"CODE TEXT\" with CODE 200..599", arg);
		v = -1;
		goto out;
	}
	free(sink_verbs[v].reply);
	sink_verbs[v].reply = len == 3 ? xasprintf("%s ", value) : xstrdup(value);
	sink_verbs[v].reply_code = atoi(value);
	sink_verbs[v].reply_pct = pct;
out:
	free(copy);
	return v < 0 ? -1 : 0;
}

int
sink_opt_flag(const char *arg, unsigned flag, char **err_r)
{
	char *copy = xstrdup(arg);
	double pct;
	int v;

	/* @PERCENT is accepted for symmetry but the drop faults are all-or-nothing. */
	if (split_percent(copy, &pct) != 0 || pct != 100) {
		*err_r = xasprintf("\"%s\": --disconnect and --421 take a verb only", arg);
		free(copy);
		return -1;
	}
	v = sink_verb_lookup(copy);
	if (v < 0) {
		*err_r = xasprintf("\"%s\": unknown verb", arg);
		free(copy);
		return -1;
	}
	sink_verbs[v].flags |= flag;
	free(copy);
	return 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

void
sink_rand_seed(uint64_t seed)
{
	rng_state = seed ^ 0x9e3779b97f4a7c15ull;
	if (rng_state == 0)
		rng_state = 1;
}

/* xorshift64*: repeatable from --seed, and good enough for fault dice. */
static uint64_t
rand_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

int
sink_rand_hit(double pct)
{
	if (pct >= 100)
		return 1;
	if (pct <= 0)
		return 0;
	return (double)(rand_next() >> 11) * (1.0 / 9007199254740992.0) * 100.0 < pct;
}
