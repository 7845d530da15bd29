/* test_duration.c: operator durations to seconds and back (lib/duration.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "kumo.h"
#include "unit.h"

static void
test_parse_good(void)
{
	static const struct {
		const char *in;
		uint64_t want;
	} rows[] = {
	    {"0", 0},
	    {"60", 60},
	    {" 60 ", 60},
	    {"60s", 60},
	    {"60 s", 60},
	    {"60sec", 60},
	    {"1 second", 1},
	    {"2 seconds", 2},
	    {"2min", 120},
	    {"5 mins", 300},
	    {"5 minutes", 300},
	    {"1 minute", 60},
	    {"3m", 180},
	    {"1h", 3600},
	    {"2hr", 7200},
	    {"2 hrs", 7200},
	    {"1 hour", 3600},
	    {"4 hours", 14400},
	    {"1h 30m", 5400},
	    {"1h30m", 5400},
	    {"1h30m15s", 5415},
	    {"1 h 30 m", 5400},
	    {"3 days", 259200},
	    {"1d", 86400},
	    {"1 day", 86400},
	    {"2 weeks", 1209600},
	    {"1w", 604800},
	    {"1 week", 604800},
	    {"7d", 604800},
	    {"1H30M", 5400},
	    {"5 MINS", 300},
	    {"1h 1h", 7200},
	    {"0s", 0},
	    {"\t20m\t", 1200},
	    {"9223372036854775807", INT64_MAX},
	    {"9223372036854775807s", INT64_MAX},
	    {"15250284452471w", 15250284452471ull * 604800},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		uint64_t got = 12345;
		char *err = NULL;
		int rc = duration_parse(rows[i].in, &got, &err);

		UNIT_EXPECT_INT(rows[i].in, rc, 0);
		UNIT_EXPECT_INT(rows[i].in, got, rows[i].want);
		CU_ASSERT_PTR_NULL(err);
		if (err != NULL)
			fprintf(stderr, "  %s: unexpected error %s\n", rows[i].in, err);
		free(err);
	}
}

static void
test_parse_bad(void)
{
	static const struct {
		const char *in;
		int want_rc;
		const char *want_err;
	} rows[] = {
	    {"5 fortnights", KUMO_EPARSE, "\"5 fortnights\": unknown unit \"fortnights\""},
	    {"", KUMO_EPARSE, "\"\": empty duration"},
	    {"   ", KUMO_EPARSE, "\"   \": empty duration"},
	    {"min", KUMO_EPARSE, "\"min\": expected a number at \"min\""},
	    {"-5", KUMO_EPARSE, "\"-5\": negative durations are not allowed"},
	    {"-5s", KUMO_EPARSE, "\"-5s\": negative durations are not allowed"},
	    {"500ms", KUMO_EPARSE, "\"500ms\": sub-second units are not supported: \"ms\""},
	    {"1h 500ms", KUMO_EPARSE, "\"1h 500ms\": sub-second units are not supported: \"ms\""},
	    {"10 us", KUMO_EPARSE, "\"10 us\": sub-second units are not supported: \"us\""},
	    {"1.5h", KUMO_EPARSE, "\"1.5h\": fractions are not supported: \"1.5h\""},
	    {"1h 30", KUMO_EPARSE, "\"1h 30\": missing unit after \"30\""},
	    {"60 60", KUMO_EPARSE, "\"60 60\": missing unit after \"60\""},
	    {"1,000s", KUMO_EPARSE, "\"1,000s\": unexpected \",000s\""},
	    {"5m!", KUMO_EPARSE, "\"5m!\": expected a number at \"!\""},
	    {"1h-30m", KUMO_EPARSE, "\"1h-30m\": negative durations are not allowed"},
	    {"2x", KUMO_EPARSE, "\"2x\": unknown unit \"x\""},
	    {"2 minutesx", KUMO_EPARSE, "\"2 minutesx\": unknown unit \"minutesx\""},
	    {"5\x01s", KUMO_EPARSE, "\"5\\x01s\": unexpected \"\\x01s\""},
	    {"\"5s\"", KUMO_EPARSE, "\"\\x225s\\x22\": expected a number at \"\\x225s\\x22\""},
	    {"9223372036854775808", KUMO_ERANGE,
	     "\"9223372036854775808\": number too large: \"9223372036854775808\""},
	    {"99999999999999999999999s", KUMO_ERANGE,
	     "\"99999999999999999999999s\": number too large: \"99999999999999999999999\""},
	    {"15250284452472w", KUMO_ERANGE, "\"15250284452472w\": too large"},
	    {"9223372036854775807s 1s", KUMO_ERANGE, "\"9223372036854775807s 1s\": too large"},
	    {"153722867280912931m", KUMO_ERANGE, "\"153722867280912931m\": too large"},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		uint64_t got = 777;
		char *err = NULL;
		int rc = duration_parse(rows[i].in, &got, &err);

		UNIT_EXPECT_INT(rows[i].want_err, rc, rows[i].want_rc);
		UNIT_EXPECT_STR(rows[i].in, err, rows[i].want_err);
		UNIT_EXPECT_INT("untouched on error", got, 777);
		free(err);
		/* err_r is optional */
		UNIT_EXPECT_INT("no err_r", duration_parse(rows[i].in, &got, NULL),
		                rows[i].want_rc);
	}
	UNIT_EXPECT_INT("NULL input", duration_parse(NULL, &(uint64_t){0}, NULL), KUMO_EPARSE);
}

static void
test_format(void)
{
	static const struct {
		uint64_t secs;
		const char *want;
	} rows[] = {
	    {0, "0s"},
	    {1, "1s"},
	    {59, "59s"},
	    {60, "1m"},
	    {61, "1m1s"},
	    {3600, "1h"},
	    {5400, "1h30m"},
	    {86400, "1d"},
	    {90061, "1d1h1m1s"},
	    {604800, "1w"},
	    {691261, "1w1d1m1s"},
	    {1209600, "2w"},
	    {INT64_MAX, "15250284452471w3d15h30m7s"},
	    {UINT64_MAX, "30500568904943w7h15s"},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		char out[DURATION_FORMAT_MAX];
		size_t n = duration_format(rows[i].secs, out, sizeof(out));

		UNIT_EXPECT_STR("format", out, rows[i].want);
		UNIT_EXPECT_INT(rows[i].want, n, strlen(rows[i].want));
	}
}

static void
test_format_truncates(void)
{
	char small[4] = "zzz";
	size_t n = duration_format(5400, small, sizeof(small));

	UNIT_EXPECT_INT("full length", n, 5);
	UNIT_EXPECT_STR("truncated", small, "1h3");
	n = duration_format(5400, small, 0);
	UNIT_EXPECT_INT("outlen 0 length", n, 5);
	UNIT_EXPECT_STR("outlen 0 leaves out alone", small, "1h3");
}

/* Everything format() writes, parse() reads back to the same value. */
static void
test_roundtrip(void)
{
	uint64_t v = 1;
	int i, bad = 0;

	for (i = 0; i < 200; i++) {
		char out[DURATION_FORMAT_MAX];
		uint64_t back = 0;

		duration_format(v, out, sizeof(out));
		if (duration_parse(out, &back, NULL) != 0 || back != v) {
			fprintf(stderr, "  roundtrip %llu -> %s -> %llu\n", (unsigned long long)v,
			        out, (unsigned long long)back);
			bad++;
		}
		v = v * 3 + (uint64_t)i; /* spreads over the whole range, then wraps */
		if (v > DURATION_MAX)
			v %= 1000003;
	}
	UNIT_EXPECT_INT("roundtrip failures", bad, 0);
}

/* The parser is total: arbitrary bytes give a value or an error, never a crash. */
static void
test_total(void)
{
	static const char alphabet[] = "0123456789 smhdwinecour.,-_\t\x01\xff";
	unsigned seed = 12345;
	int i, j, errs = 0, oks = 0;

	for (i = 0; i < 20000; i++) {
		char in[16];
		int len;
		uint64_t v;
		char *err = NULL;

		seed = seed * 1103515245u + 12345u;
		len = (int)((seed >> 16) % sizeof(in));
		for (j = 0; j < len; j++) {
			seed = seed * 1103515245u + 12345u;
			in[j] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		in[len] = '\0';
		if (duration_parse(in, &v, &err) == 0) {
			oks++;
			if (err != NULL)
				errs = -1000000;
		} else {
			errs += err != NULL && err[0] == '"';
		}
		free(err);
	}
	CU_ASSERT_TRUE(oks > 0);
	UNIT_EXPECT_INT("every failure explained", errs + oks, 20000);
}

int
main(void)
{
	static const struct unit_test tests[] = {
	    {"parse good", test_parse_good},
	    {"parse bad", test_parse_bad},
	    {"format", test_format},
	    {"format truncates", test_format_truncates},
	    {"roundtrip", test_roundtrip},
	    {"total on random input", test_total},
	    {NULL, NULL},
	};
	return unit_run("duration", tests);
}
