/* test_log.c: levels, trace mask and the sink. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kumo.h"
#include "log.h"
#include "unit.h"

static char last_line[256];
static int lines_seen;
static enum log_level last_level;

static void
capture(enum log_level level, const char *line, void *arg)
{
	(void)arg;
	snprintf(last_line, sizeof(last_line), "%s", line);
	last_level = level;
	lines_seen++;
}

static void
test_level_parse(void)
{
	static const struct {
		const char *in;
		int want;
	} rows[] = {
		{"debug", LOG_LEVEL_DEBUG}, {"INFO", LOG_LEVEL_INFO},	{"notice", LOG_LEVEL_NOTICE},
		{"warn", LOG_LEVEL_WARN},   {"warning", LOG_LEVEL_WARN}, {"error", LOG_LEVEL_ERROR},
		{"loud", -1},		    {"", -1},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++)
		UNIT_EXPECT_INT(rows[i].in, log_level_parse(rows[i].in), rows[i].want);
	UNIT_EXPECT_STR("str", log_level_str(LOG_LEVEL_WARN), "warn");
}

static void
test_filter_and_format(void)
{
	log_set_sink(capture, NULL);
	log_set_level(LOG_LEVEL_WARN);
	lines_seen = 0;
	log_info("quiet %d", 1);
	UNIT_EXPECT_INT("info filtered", lines_seen, 0);
	log_error("loud %s=%d", "code", 451);
	UNIT_EXPECT_INT("error passes", lines_seen, 1);
	UNIT_EXPECT_STR("formatted", last_line, "loud code=451");
	UNIT_EXPECT_INT("level", last_level, LOG_LEVEL_ERROR);
	log_set_sink(NULL, NULL);
	log_set_level(LOG_LEVEL_INFO);
}

static void
test_trace_mask(void)
{
	log_set_sink(capture, NULL);
	log_set_level(LOG_LEVEL_ERROR);
	lines_seen = 0;
	log_set_trace(0);
	log_trace(LOG_TRACE_DNS, "off");
	UNIT_EXPECT_INT("trace off", lines_seen, 0);
	log_set_trace(log_trace_parse("dns"));
	log_trace(LOG_TRACE_SMTP_CLIENT, "other subsystem");
	UNIT_EXPECT_INT("other bit", lines_seen, 0);
	log_trace(LOG_TRACE_DNS, "mx %s", "example.test");
	UNIT_EXPECT_INT("trace on, despite level", lines_seen, 1);
	UNIT_EXPECT_STR("trace text", last_line, "mx example.test");
	UNIT_EXPECT_INT("unknown trace", log_trace_parse("nosuch"), 0);
	UNIT_EXPECT_INT("all", log_trace_parse("all") & LOG_TRACE_SPOOL, LOG_TRACE_SPOOL);
	log_set_trace(0);
	log_set_sink(NULL, NULL);
	log_set_level(LOG_LEVEL_INFO);
}

static void
test_strerror(void)
{
	UNIT_EXPECT_STR("ours", kumo_strerror(KUMO_ENOSPACE), "size limit exceeded");
	UNIT_EXPECT_STR("ok", kumo_strerror(0), "success");
	CU_ASSERT_PTR_NOT_NULL(kumo_strerror(-2)); /* libuv's ENOENT */
	CU_ASSERT(strlen(kumo_strerror(-2)) > 0);
	UNIT_EXPECT_STR("unknown", kumo_strerror(-99999), "unknown error");
}

static void
test_quote_and_input_error(void)
{
	char *q, *err = NULL;

	q = kumo_quote("a\"b\\c\n\x01", 7);
	UNIT_EXPECT_STR("quoted", q, "\"a\\x22b\\x5cc\\x0a\\x01\"");
	free(q);
	UNIT_EXPECT_INT("code passes through",
			kumo_input_error(&err, KUMO_EPARSE, "5/fortnight", "unknown period",
					 "fortnight", 9),
			KUMO_EPARSE);
	UNIT_EXPECT_STR("message", err, "\"5/fortnight\": unknown period \"fortnight\"");
	free(err);
	err = NULL;
	kumo_input_error(&err, KUMO_ERANGE, "", "empty", NULL, 0);
	UNIT_EXPECT_STR("no token", err, "\"\": empty");
	free(err);
	UNIT_EXPECT_INT("no err_r", kumo_input_error(NULL, KUMO_EINVAL, "x", "y", NULL, 0),
			KUMO_EINVAL);
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{"level names", test_level_parse},
		{"level filter and format", test_filter_and_format},
		{"trace mask", test_trace_mask},
		{"kumo_strerror", test_strerror},
		{"kumo_quote and kumo_input_error", test_quote_and_input_error},
		{NULL, NULL},
	};
	return unit_run("log", tests);
}
