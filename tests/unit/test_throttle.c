/* test_throttle.c: rate strings and the GCRA with an injected clock (lib/throttle.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kumo.h"
#include "throttle.h"
#include "unit.h"

#define SEC 1000000ull
#define MIN (60 * SEC)
#define HOUR (3600 * SEC)
#define DAY (86400 * SEC)

static unsigned long long rng_state = 0x9e3779b97f4a7c15ull;

/* A small deterministic generator (xorshift64*) so failures reproduce. */
static uint64_t
rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static void
test_parse_seeds(void)
{
	/* Every example from the seeds' max_connection_rate documentation, plus a few more. */
	static const struct {
		const char *in;
		uint64_t limit, period_us;
	} rows[] = {
	    {"10/s", 10, SEC},
	    {"10/sec", 10, SEC},
	    {"10/second", 10, SEC},
	    {"50/m", 50, MIN},
	    {"50/min", 50, MIN},
	    {"50/minute", 50, MIN},
	    {"1,000/hr", 1000, HOUR},
	    {"1_000/h", 1000, HOUR},
	    {"1000/hour", 1000, HOUR},
	    {"10_000/d", 10000, DAY},
	    {"10,000/day", 10000, DAY},
	    {"100/min", 100, MIN},
	    {"20/min", 20, MIN},
	    {"5/min", 5, MIN},
	    {"50/s", 50, SEC},
	    {"1/secs", 1, SEC},
	    {"3/seconds", 3, SEC},
	    {"3/mins", 3, MIN},
	    {"3/minutes", 3, MIN},
	    {"3/hrs", 3, HOUR},
	    {"3/hours", 3, HOUR},
	    {"3/days", 3, DAY},
	    {"1/w", 1, 7 * DAY},
	    {"2/weeks", 2, 7 * DAY},
	    {"10/SEC", 10, SEC},
	    {" 10 / s ", 10, SEC},
	    {"100/5min", 100, 5 * MIN},
	    {"100/ 5 min", 100, 5 * MIN},
	    {"1/30s", 1, 30 * SEC},
	    {"1,000,000/s", 1000000, SEC},
	    {"1_0,0_0/h", 1000, HOUR},
	    {"18446744073709551615/s", UINT64_MAX, SEC},
	    {"1/30500568w", 1, 30500568ull * 7 * DAY},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		struct throttle_spec spec = {0, 0, 0};
		char *err = NULL;

		UNIT_EXPECT_INT(rows[i].in, throttle_parse(rows[i].in, &spec, &err), 0);
		UNIT_EXPECT_INT(rows[i].in, spec.limit, rows[i].limit);
		UNIT_EXPECT_INT(rows[i].in, spec.period_us, rows[i].period_us);
		UNIT_EXPECT_INT("burst defaults to limit", spec.burst, rows[i].limit);
		CU_ASSERT_PTR_NULL(err);
		free(err);
	}
}

static void
test_parse_bad(void)
{
	static const struct {
		const char *in;
		int rc;
		const char *err;
	} rows[] = {
	    {"5/fortnight", KUMO_EPARSE, "\"5/fortnight\": unknown period \"fortnight\""},
	    {"5/ms", KUMO_EPARSE, "\"5/ms\": unknown period \"ms\""},
	    {"", KUMO_EPARSE, "\"\": empty rate"},
	    {"  ", KUMO_EPARSE, "\"  \": empty rate"},
	    {"10", KUMO_EPARSE, "\"10\": missing \"/period\""},
	    {"10/", KUMO_EPARSE, "\"10/\": missing period"},
	    {"10/5", KUMO_EPARSE, "\"10/5\": missing period"},
	    {"/s", KUMO_EPARSE, "\"/s\": expected a number at \"/s\""},
	    {"0/s", KUMO_ERANGE, "\"0/s\": the limit must be at least 1"},
	    {"0,000/s", KUMO_ERANGE, "\"0,000/s\": the limit must be at least 1"},
	    {"-5/s", KUMO_EPARSE, "\"-5/s\": negative rates are not allowed"},
	    {"1,,0/s", KUMO_EPARSE, "\"1,,0/s\": misplaced digit separator in \"1,,0\""},
	    {"1_,0/s", KUMO_EPARSE, "\"1_,0/s\": misplaced digit separator in \"1_,0\""},
	    {",100/s", KUMO_EPARSE, "\",100/s\": misplaced digit separator in \",100\""},
	    {"_100/s", KUMO_EPARSE, "\"_100/s\": misplaced digit separator in \"_100\""},
	    {"100,/s", KUMO_EPARSE, "\"100,/s\": misplaced digit separator in \"100,\""},
	    {"10/0s", KUMO_ERANGE, "\"10/0s\": the period multiplier must be at least 1"},
	    {"10/1,000s", KUMO_EPARSE, "\"10/1,000s\": unexpected \",000s\""},
	    {"10 per second", KUMO_EPARSE, "\"10 per second\": unexpected \"per second\""},
	    {"10/s/s", KUMO_EPARSE, "\"10/s/s\": unexpected \"/s\""},
	    {"10/s x", KUMO_EPARSE, "\"10/s x\": unexpected \"x\""},
	    {"10/-s", KUMO_EPARSE, "\"10/-s\": unexpected \"-s\""},
	    {"1.5/s", KUMO_EPARSE, "\"1.5/s\": unexpected \".5/s\""},
	    {"x/s", KUMO_EPARSE, "\"x/s\": expected a number at \"x/s\""},
	    {"10/\x01", KUMO_EPARSE, "\"10/\\x01\": unexpected \"\\x01\""},
	    {"18446744073709551616/s", KUMO_ERANGE,
	     "\"18446744073709551616/s\": number too large: \"18446744073709551616\""},
	    {"1/30500569w", KUMO_ERANGE, "\"1/30500569w\": period too long"},
	    {"1/99999999999999999999s", KUMO_ERANGE,
	     "\"1/99999999999999999999s\": period too long"},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		struct throttle_spec spec = {7, 7, 7};
		char *err = NULL;

		UNIT_EXPECT_INT(rows[i].err, throttle_parse(rows[i].in, &spec, &err), rows[i].rc);
		UNIT_EXPECT_STR(rows[i].in, err, rows[i].err);
		CU_ASSERT_TRUE(spec.limit == 7 && spec.period_us == 7 && spec.burst == 7);
		free(err);
		UNIT_EXPECT_INT("no err_r", throttle_parse(rows[i].in, &spec, NULL), rows[i].rc);
	}
	UNIT_EXPECT_INT("NULL", throttle_parse(NULL, &(struct throttle_spec){0, 0, 0}, NULL),
	                KUMO_EPARSE);
}

static void
test_format(void)
{
	static const struct {
		struct throttle_spec spec;
		const char *want;
	} rows[] = {
	    {{10, SEC, 10}, "10/s"},
	    {{50, MIN, 50}, "50/min"},
	    {{1000, HOUR, 1000}, "1000/h"},
	    {{10000, DAY, 10000}, "10000/d"},
	    {{1, 7 * DAY, 1}, "1/w"},
	    {{100, 5 * MIN, 100}, "100/5min"},
	    {{1, 30 * SEC, 1}, "1/30s"},
	    {{3, 2 * DAY, 3}, "3/2d"},
	    {{3, 90 * MIN, 3}, "3/90min"},
	    {{10, SEC, 0}, "10/s"},
	    {{10, SEC, 20}, "10/s (burst 20)"},
	    {{5, 1500, 5}, "5/1500us"},
	    {{UINT64_MAX, SEC, 1}, "18446744073709551615/s (burst 1)"},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		char out[THROTTLE_FORMAT_MAX];
		size_t n = throttle_spec_format(&rows[i].spec, out, sizeof(out));
		struct throttle_spec back;

		UNIT_EXPECT_STR("format", out, rows[i].want);
		UNIT_EXPECT_INT(rows[i].want, n, strlen(rows[i].want));
		/* Whatever has no burst note and whole seconds parses back to the same spec. */
		if (strchr(out, '(') == NULL && strstr(out, "us") == NULL) {
			UNIT_EXPECT_INT(out, throttle_parse(out, &back, NULL), 0);
			CU_ASSERT_TRUE(back.limit == rows[i].spec.limit &&
			               back.period_us == rows[i].spec.period_us);
		}
	}
}

/* From rest, exactly `burst` go at once; the next waits exactly one emission interval. */
static void
test_fresh_burst(void)
{
	static const struct {
		struct throttle_spec spec;
		uint64_t start, want_wait;
	} rows[] = {
	    {{10, SEC, 10}, 0, 100000},
	    {{10, SEC, 10}, 1000 * SEC, 100000},
	    {{1000, HOUR, 1000}, 5, 3600000},
	    {{50, MIN, 50}, 123456789, 1200000},
	    {{7, SEC, 7}, 42, 142858}, /* 142857.14 rounded up */
	    {{3, MIN, 1}, 77, 20000000},
	    {{10, SEC, 0}, 9, 100000},       /* burst 0 means limit */
	    {{10, SEC, 25}, 9, 100000},      /* burst above limit */
	    {{3, SEC, 3}, 0, 333334},        /* 333333.33 rounded up */
	    {{2000000, SEC, 2000000}, 1, 1}, /* half a microsecond each */
	    {{10000, DAY, 10000}, 3 * DAY, 8640000},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		const struct throttle_spec *spec = &rows[i].spec;
		uint64_t burst = spec->burst ? spec->burst : spec->limit, n = 0, wait = 0;
		struct throttle_state st = {0, 0}, before, probe;
		uint64_t now = rows[i].start;
		char what[80];

		snprintf(what, sizeof(what), "row %zu admitted at once", i);
		while (n < burst + 10 && throttle_check(&st, spec, now, &wait) == 1)
			n++;
		UNIT_EXPECT_INT(what, n, burst);
		snprintf(what, sizeof(what), "row %zu first wait", i);
		UNIT_EXPECT_INT(what, wait, rows[i].want_wait);
		before = st;
		CU_ASSERT_EQUAL(throttle_check(&st, spec, now, &wait), 0);
		CU_ASSERT_TRUE(memcmp(&st, &before, sizeof(st)) == 0); /* denied: unchanged */
		probe = st;
		snprintf(what, sizeof(what), "row %zu at now+wait-1", i);
		UNIT_EXPECT_INT(what, throttle_check(&probe, spec, now + wait - 1, NULL), 0);
		snprintf(what, sizeof(what), "row %zu at now+wait", i);
		UNIT_EXPECT_INT(what, throttle_check(&probe, spec, now + wait, NULL), 1);
	}
}

/* Every denial's wait is exact, from many random states and times. */
static void
test_wait_exact(void)
{
	static const struct throttle_spec specs[] = {
	    {10, SEC, 10},    {7, SEC, 3},           {1000, HOUR, 1000}, {3, SEC, 1},
	    {1, 30 * SEC, 2}, {999983, 7 * SEC, 17}, {50, MIN, 50},
	};
	size_t i;
	int bad = 0, denials = 0, k;

	for (i = 0; i < KUMO_NELEM(specs); i++) {
		struct throttle_state st = {0, 0};
		uint64_t now = 1000 * SEC;

		for (k = 0; k < 3000; k++) {
			struct throttle_state a, b;
			uint64_t wait = 0;

			now += rng() % (specs[i].period_us / specs[i].limit * 2 + 2);
			if (throttle_check(&st, &specs[i], now, &wait) == 1)
				continue;
			denials++;
			a = st;
			b = st;
			if (wait == 0 || throttle_check(&a, &specs[i], now + wait - 1, NULL) != 0 ||
			    throttle_check(&b, &specs[i], now + wait, NULL) != 1)
				bad++;
		}
	}
	CU_ASSERT_TRUE(denials > 1000);
	UNIT_EXPECT_INT("inexact waits", bad, 0);
}

/* Admissions a perfect throttle allows from rest over elapsed microseconds. */
static uint64_t
ideal(const struct throttle_spec *spec, uint64_t elapsed)
{
	return (uint64_t)((unsigned __int128)elapsed * spec->limit / spec->period_us) + spec->burst;
}

/*
 * A simulated hour with requests always pending: at every irregular clock step
 * the caller asks until denied, then sleeps a random time but never past the
 * wait it was given (as the daemon's timer does). Never more than
 * rate x elapsed + burst at any point; at the end exactly that (liveness).
 * A second pass lets the caller oversleep (idle gaps up to 5 s): the upper
 * bound must still hold.
 */
static void
test_simulated_hour(void)
{
	static const struct throttle_spec specs[] = {
	    {10, SEC, 10}, {7, SEC, 3},   {1000, HOUR, 1000},  {50, MIN, 50},
	    {1, SEC, 1},   {3, SEC, 100}, {10000, DAY, 10000}, {333, SEC, 1},
	};
	size_t i;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < KUMO_NELEM(specs); i++) {
			const struct throttle_spec *spec = &specs[i];
			struct throttle_state st = {0, 0};
			uint64_t t0 = 5 * DAY + rng() % SEC, now = t0, admitted = 0, over = 0;
			uint64_t asks = 0, wait = 0;
			char what[80];
			int guard;

			/* Bounded even if a broken throttle hands out zero waits. */
			while (now - t0 < HOUR && asks < 5000000) {
				uint64_t step;

				guard = 0;
				while (guard++ < 100000 &&
				       throttle_check(&st, spec, now, &wait) == 1)
					admitted++;
				asks++;
				if (admitted > ideal(spec, now - t0))
					over++;
				/* Irregular steps: mostly small, sometimes several seconds. */
				step = rng() % 8 == 0 ? rng() % (5 * SEC) : 1 + rng() % 20000;
				if (pass == 0 && step > wait)
					step = wait;
				now += step ? step : 1;
			}
			snprintf(what, sizeof(what), "pass %d spec %zu steps over the bound", pass,
			         i);
			UNIT_EXPECT_INT(what, over, 0);
			CU_ASSERT_TRUE(asks > 1000);
			if (pass == 1)
				continue;
			for (guard = 0;
			     guard < 100000 && throttle_check(&st, spec, now, &wait) == 1; guard++)
				admitted++;
			snprintf(what, sizeof(what), "spec %zu admitted in the hour", i);
			UNIT_EXPECT_INT(what, admitted, ideal(spec, now - t0));
		}
	}
}

/* A clock that goes backwards delays admission and never lets more through. */
static void
test_clock_backwards(void)
{
	struct throttle_spec spec = {10, SEC, 10};
	struct throttle_state st = {0, 0};
	uint64_t now = 100 * SEC, wait = 0, admitted = 0, max_now = now, t0 = now;
	int k, over = 0;

	while (admitted < 100 && throttle_check(&st, &spec, now, &wait) == 1)
		admitted++;
	UNIT_EXPECT_INT("burst", admitted, 10);
	UNIT_EXPECT_INT("5 s back: denied", throttle_check(&st, &spec, now - 5 * SEC, &wait), 0);
	UNIT_EXPECT_INT("5 s back: wait covers the jump", wait, 5 * SEC + 100000);
	UNIT_EXPECT_INT("to 0: denied", throttle_check(&st, &spec, 0, &wait), 0);
	UNIT_EXPECT_INT("to 0: wait", wait, 100 * SEC + 100000);

	/* Jitter: the clock steps back now and then; count against the furthest time seen. */
	for (k = 0; k < 200000; k++) {
		uint64_t back = rng() % (50000);

		if (rng() % 10 == 0)
			now -= back < now - t0 ? back : 0;
		else
			now += rng() % 30000;
		if (now > max_now)
			max_now = now;
		if (throttle_check(&st, &spec, now, &wait) == 1)
			admitted++;
		else if (wait == 0)
			over++;
		if (admitted > ideal(&spec, max_now - t0))
			over++;
	}
	UNIT_EXPECT_INT("violations with a jittery clock", over, 0);
	CU_ASSERT_TRUE(admitted > 1000);
}

static void
test_edges(void)
{
	struct throttle_state st = {0, 0};
	struct throttle_spec zero_limit = {0, SEC, 1}, zero_period = {1, 0, 1};
	struct throttle_spec huge = {UINT64_MAX, SEC, UINT64_MAX};
	struct throttle_spec slow = {1, UINT64_MAX, 1};
	struct throttle_spec big_burst = {1, 7 * DAY, UINT64_MAX};
	uint64_t wait = 0;
	int k, ok = 1;

	UNIT_EXPECT_INT("zero limit", throttle_check(&st, &zero_limit, 0, &wait), KUMO_EINVAL);
	UNIT_EXPECT_INT("zero period", throttle_check(&st, &zero_period, 0, &wait), KUMO_EINVAL);

	/* Near the end of 64-bit time nothing overflows and waits stay sane. */
	UNIT_EXPECT_INT("late clock", throttle_check(&st, &slow, UINT64_MAX - 5, &wait), 1);
	UNIT_EXPECT_INT("late clock, second", throttle_check(&st, &slow, UINT64_MAX - 5, &wait), 0);
	UNIT_EXPECT_INT("late clock, saturated wait", wait, 5);
	throttle_reset(&st);
	UNIT_EXPECT_INT("reset", st.tat_us + st.tat_frac, 0);
	for (k = 0; k < 1000; k++)
		ok &= throttle_check(&st, &huge, UINT64_MAX / 2, &wait) == 1;
	CU_ASSERT_TRUE(ok);
	throttle_reset(&st);
	for (k = 0; k < 1000; k++)
		ok &= throttle_check(&st, &big_burst, 3, &wait) == 1;
	CU_ASSERT_TRUE(ok);
	/* A corrupt fraction is clamped, not trusted. */
	st.tat_us = 10;
	st.tat_frac = UINT64_MAX;
	UNIT_EXPECT_INT("corrupt frac",
	                throttle_check(&st, &(struct throttle_spec){2, 10, 1}, 0, &wait), 0);
	UNIT_EXPECT_INT("corrupt frac wait", wait, 11);
}

/* The parser is total: arbitrary bytes give a spec or an error, never a crash. */
static void
test_total(void)
{
	static const char alphabet[] = "0123456789/,_ smhdin\t-.\x01\xff";
	int i, j, explained = 0, oks = 0;

	for (i = 0; i < 20000; i++) {
		char in[14];
		int len = (int)(rng() % sizeof(in));
		struct throttle_spec spec;
		char *err = NULL;

		for (j = 0; j < len; j++)
			in[j] = alphabet[rng() % (sizeof(alphabet) - 1)];
		in[len] = '\0';
		if (throttle_parse(in, &spec, &err) == 0)
			oks += err == NULL && spec.limit > 0 && spec.period_us > 0;
		else
			explained += err != NULL && err[0] == '"';
		free(err);
	}
	CU_ASSERT_TRUE(oks > 0);
	UNIT_EXPECT_INT("every input parsed or explained", oks + explained, 20000);
}

int
main(void)
{
	static const struct unit_test tests[] = {
	    {"parse seed examples", test_parse_seeds},
	    {"parse bad", test_parse_bad},
	    {"format", test_format},
	    {"fresh state admits burst", test_fresh_burst},
	    {"denial waits are exact", test_wait_exact},
	    {"simulated hour", test_simulated_hour},
	    {"clock going backwards", test_clock_backwards},
	    {"edges", test_edges},
	    {"total on random input", test_total},
	    {NULL, NULL},
	};
	return unit_run("throttle", tests);
}
