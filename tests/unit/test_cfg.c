/* test_cfg.c: libconfig loading and typed getters with FILE:LINE: PATH: errors (lib/config.c).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cidr.h"
#include "cfg.h"
#include "kumo.h"
#include "throttle.h"
#include "unit.h"

static char tmpdir[64];

/*
 * The test configuration, one string per line so line numbers are plain:
 * line N is lines[N - 1].
 */
static const char *const kumod_conf[] = {
    /*  1 */ "# kumod.conf for test_cfg",
    /*  2 */ "spool_dir = \"/var/spool/kumod\";",
    /*  3 */ "log_dir = 42;",
    /*  4 */ "listen = ( { address = \"127.0.0.1:2525\";",
    /*  5 */ "             relay_hosts = [ \"127.0.0.0/8\", \"::1\" ]; },",
    /*  6 */ "           { address = \"[::1]:2525\"; relay_hosts = \"10.0.0.0/8\"; },",
    /*  7 */ "           { address = \"x\"; relay_hosts = [ \"10.0.0.0/8\",",
    /*  8 */ "                                            \"10.0.0.0/33\" ]; },",
    /*  9 */ "           { relay_hosts = ( \"10.0.0.0/8\", 5 ); nets = [ ]; h = 5; } );",
    /* 10 */ "dns = { local_data = [ \"example.test. MX 10 mx.example.test.\",",
    /* 11 */ "                      \"mx.example.test. A 127.0.0.1\" ];",
    /* 12 */ "        mixed = ( \"a\", true ); empty = [ ]; };",
    /* 13 */ "queues = { default = { retry_interval = \"20m\"; max_age = \"7d\";",
    /* 14 */ "                       timeout = 60; neg = -5; bad = \"5 fortnights\";",
    /* 15 */ "                       flt = 1.5; yes = true; no = false; big = 10000000000L;",
    /* 16 */ "                       ms = \"500ms\"; }; };",
    /* 17 */ "shaping = {",
    /* 18 */ "  default = { connection_limit = 3; max_connection_rate = \"100/min\"; };",
    /* 19 */ "  domains = (",
    /* 20 */ "    { domain = \"yahoo.com\"; max_deliveries_per_connection = 5;",
    /* 21 */ "      max_connection_rate = \"20/min\"; max_message_rate = \"50/s\"; },",
    /* 22 */ "    { domain = \"foo.com\"; mx_rollup = false; max_message_rate = \"1,000/hr\"; },",
    /* 23 */ "    { domain = \"gmail.com\"; connection_limit = \"3\";",
    /* 24 */ "      max_message_rate = \"5/fortnight\"; max_connection_rate = 10; }",
    /* 25 */ "  );",
    /* 26 */ "};",
    /* 27 */ "sources = ( { name = \"ip-1\"; sorce_address = \"127.0.0.2\"; },",
    /* 28 */ "            { name = \"ip-2\"; source_address = \"127.0.0.3\"; ehlo_domain = \"x\";",
    /* 29 */ "              zzzzzz = 1; } );",
};

/* Write lines (or text) to tmpdir/name; returns the path (static buffer per call site). */
static void
write_file(const char *name, const char *const *lines, size_t n, char *path, size_t pathlen)
{
	FILE *fp;
	size_t i;

	snprintf(path, pathlen, "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	for (i = 0; i < n; i++)
		fprintf(fp, "%s\n", lines[i]);
	fclose(fp);
}

/* err without the leading "tmpdir/" if it has one; "(no error)" for NULL. */
static const char *
strip_dir(const char *err)
{
	size_t n = strlen(tmpdir);

	if (err == NULL)
		return "(no error)";
	if (strncmp(err, tmpdir, n) != 0 || err[n] != '/')
		return err;
	return err + n + 1;
}

static struct cfg *
load_kumod_conf(void)
{
	char path[256], *err = NULL;
	struct cfg *c;

	write_file("kumod.conf", kumod_conf, KUMO_NELEM(kumod_conf), path, sizeof(path));
	c = cfg_load(path, &err);
	if (c == NULL)
		fprintf(stderr, "  load: %s\n", err);
	free(err);
	return c;
}

static void
test_load_errors(void)
{
	static const struct {
		const char *name;
		const char *const lines[4];
		const char *want; /* NULL: loads */
	} rows[] = {
	    {"ok.conf", {"a = 1;", "b = \"x\";", NULL}, NULL},
	    {"empty.conf", {NULL}, NULL},
	    {"syntax.conf", {"a = 1;", "b = \"x\";", "c = ;", NULL}, "syntax.conf:3: syntax error"},
	    {"unterminated.conf", {"a = \"abc", NULL}, "unterminated.conf:2: syntax error"},
	    {"dup.conf", {"a = 1;", "a = 2;", NULL}, "dup.conf:2: duplicate setting name"},
	    {"noinclude.conf",
	     {"@include \"missing.conf\"", NULL},
	     "noinclude.conf:1: cannot open include file"},
	    {"mixedarray.conf",
	     {"a = [ \"x\", 5 ];", NULL},
	     "mixedarray.conf:1: mismatched element type in array"},
	};
	size_t i, n;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		char path[256], *err = NULL;
		struct cfg *c;

		for (n = 0; rows[i].lines[n] != NULL; n++)
			;
		write_file(rows[i].name, rows[i].lines, n, path, sizeof(path));
		c = cfg_load(path, &err);
		if (rows[i].want == NULL) {
			CU_ASSERT_PTR_NOT_NULL(c);
			CU_ASSERT_PTR_NULL(err);
			if (c != NULL)
				UNIT_EXPECT_STR("name", cfg_name(c), path);
		} else {
			CU_ASSERT_PTR_NULL(c);
			UNIT_EXPECT_STR(rows[i].name, strip_dir(err), rows[i].want);
		}
		free(err);
		cfg_free(&c);
		CU_ASSERT_PTR_NULL(c);
		unlink(path);
	}
}

static void
test_load_io_errors(void)
{
	char path[256], want[320], *err = NULL;
	struct cfg *c;

	snprintf(path, sizeof(path), "%s/nope.conf", tmpdir);
	c = cfg_load(path, &err);
	CU_ASSERT_PTR_NULL(c);
	snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", path);
	UNIT_EXPECT_STR("missing", err, want);
	free(err);
	err = NULL;
	c = cfg_load(tmpdir, &err);
	CU_ASSERT_PTR_NULL(c);
	snprintf(want, sizeof(want), "%s: cannot read: Is a directory", tmpdir);
	UNIT_EXPECT_STR("directory", err, want);
	free(err);
	CU_ASSERT_PTR_NULL(cfg_load(path, NULL)); /* err_r optional */
	cfg_free(NULL);
}

static void
test_load_string(void)
{
	char *err = NULL;
	struct cfg *c = cfg_load_string("a = 1;\nb = ;\n", NULL, &err);

	CU_ASSERT_PTR_NULL(c);
	UNIT_EXPECT_STR("unnamed", err, "<string>:2: syntax error");
	free(err);
	err = NULL;
	c = cfg_load_string("a = 1;\n\nb = \"x\";\n", "inline", &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	{
		int64_t v = -1;

		UNIT_EXPECT_INT("int", cfg_get_int(cfg_root(c), "a", 0, 10, &v, &err), 0);
		UNIT_EXPECT_INT("int value", v, 1);
		UNIT_EXPECT_INT("wrong type", cfg_get_int(cfg_root(c), "b", 0, 10, &v, &err),
		                KUMO_EPARSE);
		UNIT_EXPECT_STR("named source", err,
		                "inline:3: b: expected an integer, got a string");
		free(err);
	}
	cfg_free(&c);
}

/* Relative @include resolves next to the main file; errors name the included file. */
static void
test_include(void)
{
	static const char *const main_lines[] = {"a = 1;", "@include \"part.conf\"", "c = 3;"};
	static const char *const part_lines[] = {"# part", "b = \"5/fortnight\";"};
	char mpath[256], ppath[256], *err = NULL, cwd[512];
	struct cfg *c;
	struct throttle_spec spec;

	write_file("main.conf", main_lines, KUMO_NELEM(main_lines), mpath, sizeof(mpath));
	write_file("part.conf", part_lines, KUMO_NELEM(part_lines), ppath, sizeof(ppath));
	/* Load from another working directory so only the include dir can find part.conf. */
	CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof(cwd)));
	CU_ASSERT_EQUAL_FATAL(chdir("/"), 0);
	c = cfg_load(mpath, &err);
	CU_ASSERT_EQUAL(chdir(cwd), 0);
	if (c == NULL)
		fprintf(stderr, "  include: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	UNIT_EXPECT_INT("rate in include", cfg_get_rate(cfg_root(c), "b", &spec, &err),
	                KUMO_EPARSE);
	UNIT_EXPECT_STR("error names the included file", strip_dir(err),
	                "part.conf:2: b: \"5/fortnight\": unknown period \"fortnight\"");
	free(err);
	cfg_free(&c);
	unlink(mpath);
	unlink(ppath);
}

enum kind { K_STRING, K_INT, K_BOOL, K_DURATION, K_RATE, K_CIDR, K_STRINGS, K_GROUP, K_LIST };

/* Run one getter and render what it produced as text; "<default>" if out was untouched. */
static int
get_as_text(const config_setting_t *grp, const char *name, enum kind k, int64_t min, int64_t max,
            char *out, size_t outlen, char **err)
{
	int rc = 0;

	snprintf(out, outlen, "<default>");
	switch (k) {
	case K_STRING: {
		const char *s = NULL;

		rc = cfg_get_string(grp, name, &s, err);
		if (s != NULL)
			snprintf(out, outlen, "%s", s);
		break;
	}
	case K_INT: {
		int64_t v = INT64_MIN;

		rc = cfg_get_int(grp, name, min, max, &v, err);
		if (v != INT64_MIN)
			snprintf(out, outlen, "%lld", (long long)v);
		break;
	}
	case K_BOOL: {
		int v = -1;

		rc = cfg_get_bool(grp, name, &v, err);
		if (v != -1)
			snprintf(out, outlen, "%d", v);
		break;
	}
	case K_DURATION: {
		uint64_t v = UINT64_MAX;

		rc = cfg_get_duration(grp, name, &v, err);
		if (v != UINT64_MAX)
			snprintf(out, outlen, "%llu", (unsigned long long)v);
		break;
	}
	case K_RATE: {
		struct throttle_spec spec = {0, 0, 0};

		rc = cfg_get_rate(grp, name, &spec, err);
		if (spec.limit != 0)
			throttle_spec_format(&spec, out, outlen);
		break;
	}
	case K_CIDR: {
		struct cidr_list *l = cidr_list_new(), *orig = l;

		cidr_list_add(l, "192.0.2.1", NULL);
		rc = cfg_get_cidr_list(grp, name, &l, err);
		if (l != orig) {
			char *s = cidr_list_format(l);

			snprintf(out, outlen, "%s", s);
			free(s);
		}
		cidr_list_free(&l);
		break;
	}
	case K_STRINGS: {
		const char **v = NULL;
		size_t n = 99, i, len = 0;

		rc = cfg_get_strings(grp, name, &v, &n, err);
		if (v != NULL) {
			out[0] = '\0';
			for (i = 0; i < n; i++)
				len += (size_t)snprintf(out + len, outlen - len, "%s%s",
				                        i ? "|" : "", v[i]);
			if (v[n] != NULL)
				snprintf(out, outlen, "not NULL-terminated");
			free(v);
		}
		break;
	}
	case K_GROUP:
	case K_LIST: {
		config_setting_t *s = NULL;

		rc = k == K_GROUP ? cfg_get_group(grp, name, &s, err)
		                  : cfg_get_list(grp, name, &s, err);
		if (s != NULL) {
			char *p = cfg_setting_path(s);

			snprintf(out, outlen, "%s", p);
			free(p);
		}
		break;
	}
	}
	return rc;
}

static void
test_getters(void)
{
	static const struct {
		const char *grp, *name;
		enum kind k;
		int64_t min, max;
		int want_rc;
		const char *want; /* the value as text, or the error without the temp dir */
	} rows[] = {
	    /* strings */
	    {"", "spool_dir", K_STRING, 0, 0, 0, "/var/spool/kumod"},
	    {"", "nothere", K_STRING, 0, 0, 1, "<default>"},
	    {"", "log_dir", K_STRING, 0, 0, KUMO_EPARSE,
	     "kumod.conf:3: log_dir: expected a string, got an integer"},
	    {"listen.[1]", "address", K_STRING, 0, 0, 0, "[::1]:2525"},
	    {"shaping.domains.[2]", "domain", K_STRING, 0, 0, 0, "gmail.com"},
	    {"shaping", "default", K_STRING, 0, 0, KUMO_EPARSE,
	     "kumod.conf:18: shaping.default: expected a string, got a group"},
	    /* integers */
	    {"shaping.default", "connection_limit", K_INT, 1, 1000, 0, "3"},
	    {"shaping.default", "connection_limit", K_INT, 4, 1000, KUMO_ERANGE,
	     "kumod.conf:18: shaping.default.connection_limit: 3 is too small (the minimum is 4)"},
	    {"shaping.default", "connection_limit", K_INT, 0, 2, KUMO_ERANGE,
	     "kumod.conf:18: shaping.default.connection_limit: 3 is too large (the maximum is 2)"},
	    {"shaping.default", "connection_limit", K_INT, 3, 3, 0, "3"},
	    {"shaping.domains.[2]", "connection_limit", K_INT, 0, 100, KUMO_EPARSE,
	     "kumod.conf:23: shaping.domains.[2].connection_limit: expected an integer, got a "
	     "string"},
	    {"shaping.domains.[2]", "max_deliveries_per_connection", K_INT, 0, 100, 1, "<default>"},
	    {"shaping.domains.[0]", "max_deliveries_per_connection", K_INT, 0, 100, 0, "5"},
	    {"queues.default", "neg", K_INT, INT64_MIN, INT64_MAX, 0, "-5"},
	    {"queues.default", "big", K_INT, 0, INT64_MAX, 0, "10000000000"},
	    {"queues.default", "big", K_INT, 0, 1000, KUMO_ERANGE,
	     "kumod.conf:15: queues.default.big: 10000000000 is too large (the maximum is 1000)"},
	    {"queues.default", "flt", K_INT, 0, 10, KUMO_EPARSE,
	     "kumod.conf:15: queues.default.flt: expected an integer, got a float"},
	    {"queues.default", "yes", K_INT, 0, 10, KUMO_EPARSE,
	     "kumod.conf:15: queues.default.yes: expected an integer, got a boolean"},
	    {"listen", "address", K_INT, 0, 10, 1, "<default>"}, /* a list is not a group */
	    /* booleans */
	    {"queues.default", "yes", K_BOOL, 0, 0, 0, "1"},
	    {"queues.default", "no", K_BOOL, 0, 0, 0, "0"},
	    {"shaping.domains.[1]", "mx_rollup", K_BOOL, 0, 0, 0, "0"},
	    {"shaping.domains.[0]", "mx_rollup", K_BOOL, 0, 0, 1, "<default>"},
	    {"queues.default", "timeout", K_BOOL, 0, 0, KUMO_EPARSE,
	     "kumod.conf:14: queues.default.timeout: expected a boolean (true or false), got an "
	     "integer"},
	    /* durations */
	    {"queues.default", "retry_interval", K_DURATION, 0, 0, 0, "1200"},
	    {"queues.default", "max_age", K_DURATION, 0, 0, 0, "604800"},
	    {"queues.default", "timeout", K_DURATION, 0, 0, 0, "60"},
	    {"queues.default", "idle_timeout", K_DURATION, 0, 0, 1, "<default>"},
	    {"queues.default", "neg", K_DURATION, 0, 0, KUMO_ERANGE,
	     "kumod.conf:14: queues.default.neg: -5: negative durations are not allowed"},
	    {"queues.default", "bad", K_DURATION, 0, 0, KUMO_EPARSE,
	     "kumod.conf:14: queues.default.bad: \"5 fortnights\": unknown unit \"fortnights\""},
	    {"queues.default", "ms", K_DURATION, 0, 0, KUMO_EPARSE,
	     "kumod.conf:16: queues.default.ms: \"500ms\": sub-second units are not supported: "
	     "\"ms\""},
	    {"queues.default", "flt", K_DURATION, 0, 0, KUMO_EPARSE,
	     "kumod.conf:15: queues.default.flt: expected a duration (seconds, or a string like "
	     "\"5min\"), got a float"},
	    /* rates */
	    {"shaping.default", "max_connection_rate", K_RATE, 0, 0, 0, "100/min"},
	    {"shaping.domains.[0]", "max_message_rate", K_RATE, 0, 0, 0, "50/s"},
	    {"shaping.domains.[1]", "max_message_rate", K_RATE, 0, 0, 0, "1000/h"},
	    {"shaping.domains.[1]", "max_connection_rate", K_RATE, 0, 0, 1, "<default>"},
	    {"shaping.domains.[2]", "max_message_rate", K_RATE, 0, 0, KUMO_EPARSE,
	     "kumod.conf:24: shaping.domains.[2].max_message_rate: \"5/fortnight\": unknown "
	     "period \"fortnight\""},
	    {"shaping.domains.[2]", "max_connection_rate", K_RATE, 0, 0, KUMO_EPARSE,
	     "kumod.conf:24: shaping.domains.[2].max_connection_rate: expected a rate string "
	     "like \"100/min\", got an integer"},
	    /* CIDR lists */
	    {"listen.[0]", "relay_hosts", K_CIDR, 0, 0, 0, "127.0.0.0/8, ::1"},
	    {"listen.[1]", "relay_hosts", K_CIDR, 0, 0, 0, "10.0.0.0/8"},
	    {"listen.[2]", "relay_hosts", K_CIDR, 0, 0, KUMO_ERANGE,
	     "kumod.conf:8: listen.[2].relay_hosts.[1]: \"10.0.0.0/33\": prefix length 33 is "
	     "above 32"},
	    {"listen.[3]", "relay_hosts", K_CIDR, 0, 0, KUMO_EPARSE,
	     "kumod.conf:9: listen.[3].relay_hosts.[1]: expected an address or network string, "
	     "got an integer"},
	    {"listen.[3]", "nets", K_CIDR, 0, 0, 0, ""},
	    {"listen.[3]", "skip_hosts", K_CIDR, 0, 0, 1, "<default>"},
	    {"listen.[3]", "h", K_CIDR, 0, 0, KUMO_EPARSE,
	     "kumod.conf:9: listen.[3].h: expected an array of address or network strings, got "
	     "an integer"},
	    /* string arrays */
	    {"dns", "local_data", K_STRINGS, 0, 0, 0,
	     "example.test. MX 10 mx.example.test.|mx.example.test. A 127.0.0.1"},
	    {"dns", "empty", K_STRINGS, 0, 0, 0, ""},
	    {"dns", "mixed", K_STRINGS, 0, 0, KUMO_EPARSE,
	     "kumod.conf:12: dns.mixed.[1]: expected a string, got a boolean"},
	    {"", "spool_dir", K_STRINGS, 0, 0, KUMO_EPARSE,
	     "kumod.conf:2: spool_dir: expected an array of strings, got a string"},
	    {"dns", "nope", K_STRINGS, 0, 0, 1, "<default>"},
	    /* groups and lists */
	    {"", "shaping", K_GROUP, 0, 0, 0, "shaping"},
	    {"shaping", "domains", K_LIST, 0, 0, 0, "shaping.domains"},
	    {"dns", "local_data", K_LIST, 0, 0, 0, "dns.local_data"},
	    {"shaping", "domains", K_GROUP, 0, 0, KUMO_EPARSE,
	     "kumod.conf:19: shaping.domains: expected a group, got a list"},
	    {"", "spool_dir", K_LIST, 0, 0, KUMO_EPARSE,
	     "kumod.conf:2: spool_dir: expected a list, got a string"},
	    {"", "absent", K_GROUP, 0, 0, 1, "<default>"},
	    /* a missing group: everything in it is absent */
	    {"no.such.group", "x", K_INT, 0, 10, 1, "<default>"},
	    {"no.such.group", "x", K_CIDR, 0, 10, 1, "<default>"},
	};
	struct cfg *c = load_kumod_conf();
	size_t i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	for (i = 0; i < KUMO_NELEM(rows); i++) {
		config_setting_t *grp = rows[i].grp[0]
		                            ? config_setting_lookup(cfg_root(c), rows[i].grp)
		                            : cfg_root(c);
		char out[512], what[128], *err = NULL;
		int rc = get_as_text(grp, rows[i].name, rows[i].k, rows[i].min, rows[i].max, out,
		                     sizeof(out), &err);

		snprintf(what, sizeof(what), "row %zu %s.%s rc", i, rows[i].grp, rows[i].name);
		UNIT_EXPECT_INT(what, rc, rows[i].want_rc);
		snprintf(what, sizeof(what), "row %zu %s.%s", i, rows[i].grp, rows[i].name);
		if (rc < 0) {
			UNIT_EXPECT_STR(what, strip_dir(err), rows[i].want);
			UNIT_EXPECT_STR("untouched on error", out, "<default>");
		} else {
			CU_ASSERT_PTR_NULL(err);
			UNIT_EXPECT_STR(what, out, rows[i].want);
		}
		free(err);
		/* err_r is optional everywhere */
		UNIT_EXPECT_INT("no err_r",
		                get_as_text(grp, rows[i].name, rows[i].k, rows[i].min, rows[i].max,
		                            out, sizeof(out), NULL),
		                rows[i].want_rc);
	}
	cfg_free(&c);
}

static void
test_check_keys(void)
{
	static const char *const source_keys[] = {"name", "source_address", "ehlo_domain", NULL};
	static const char *const root_keys[] = {"spool_dir", "listen",  "dns", "queues",
	                                        "shaping",   "sources", NULL};
	static const char *const default_keys[] = {"connection_limit", "max_connection_rate", NULL};
	static const char *const typo_keys[] = {"connection_limit", "max_conection_rates", NULL};
	static const char *const queue_keys[] = {
	    "retry_interval", "max_age", "timeout", "neg", "bad", "flt", "yes", "nope", NULL};
	static const char *const no_keys[] = {NULL};
	static const char *const all_root_keys[] = {"spool_dir", "log_dir", "listen",  "dns",
	                                            "queues",    "shaping", "sources", NULL};
	static const struct {
		const char *grp;
		const char *const *known;
		int want_rc;
		const char *want;
	} rows[] = {
	    {"sources.[0]", source_keys, KUMO_ENOTFOUND,
	     "kumod.conf:27: sources.[0]: unknown setting \"sorce_address\" (did you mean "
	     "\"source_address\"?)"},
	    {"sources.[1]", source_keys, KUMO_ENOTFOUND,
	     "kumod.conf:29: sources.[1]: unknown setting \"zzzzzz\""},
	    {"", root_keys, KUMO_ENOTFOUND, "kumod.conf:3: unknown setting \"log_dir\""},
	    {"", all_root_keys, 0, NULL},
	    {"sources", source_keys, KUMO_EPARSE,
	     "kumod.conf:27: sources: expected a group, got a list"},
	    {"shaping.default", default_keys, 0, NULL},
	    {"shaping.default", typo_keys, KUMO_ENOTFOUND,
	     "kumod.conf:18: shaping.default: unknown setting \"max_connection_rate\" (did you "
	     "mean \"max_conection_rates\"?)"},
	    {"queues.default", queue_keys,
	     KUMO_ENOTFOUND, /* "no" is too far from "neg" and "nope" for a suggestion */
	     "kumod.conf:15: queues.default: unknown setting \"no\""},
	    {"dns", no_keys, KUMO_ENOTFOUND, "kumod.conf:10: dns: unknown setting \"local_data\""},
	};
	struct cfg *c = load_kumod_conf();
	size_t i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	for (i = 0; i < KUMO_NELEM(rows); i++) {
		config_setting_t *grp = rows[i].grp[0]
		                            ? config_setting_lookup(cfg_root(c), rows[i].grp)
		                            : cfg_root(c);
		char *err = NULL;
		int rc;

		CU_ASSERT_PTR_NOT_NULL_FATAL(grp);
		rc = cfg_check_keys(grp, rows[i].known, &err);
		UNIT_EXPECT_INT(rows[i].grp, rc, rows[i].want_rc);
		if (rows[i].want == NULL) {
			CU_ASSERT_PTR_NULL(err);
		} else {
			UNIT_EXPECT_STR(rows[i].grp, strip_dir(err), rows[i].want);
		}
		free(err);
		UNIT_EXPECT_INT("no err_r", cfg_check_keys(grp, rows[i].known, NULL),
		                rows[i].want_rc);
	}
	UNIT_EXPECT_INT("NULL group", cfg_check_keys(NULL, source_keys, NULL), 0);
	cfg_free(&c);
}

/* Paths name list elements by index and look back up to the same setting. */
static void
test_paths_and_errorf(void)
{
	static const char *const paths[] = {
	    "spool_dir",
	    "listen.[0]",
	    "listen.[2].relay_hosts.[1]",
	    "shaping.domains.[2].max_message_rate",
	    "shaping.default.connection_limit",
	    "dns.local_data.[1]",
	    "sources.[1].zzzzzz",
	};
	struct cfg *c = load_kumod_conf();
	config_setting_t *s;
	char *p, *msg;
	size_t i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	p = cfg_setting_path(cfg_root(c));
	UNIT_EXPECT_STR("root path", p, "");
	free(p);
	for (i = 0; i < KUMO_NELEM(paths); i++) {
		s = config_setting_lookup(cfg_root(c), paths[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		p = cfg_setting_path(s);
		UNIT_EXPECT_STR("path", p, paths[i]);
		CU_ASSERT_PTR_EQUAL(config_setting_lookup(cfg_root(c), p), s);
		free(p);
	}
	s = config_setting_lookup(cfg_root(c), "shaping.domains.[1].domain");
	msg = cfg_errorf(s, "no MX for %s", "foo.com");
	UNIT_EXPECT_STR("errorf", strip_dir(msg),
	                "kumod.conf:22: shaping.domains.[1].domain: no MX for foo.com");
	free(msg);
	msg = cfg_errorf(cfg_root(c), "nothing to do");
	UNIT_EXPECT_STR("errorf at root", strip_dir(msg), "kumod.conf: nothing to do");
	free(msg);
	cfg_free(&c);
}

/* Getting a CIDR list replaces (and frees) what *out held; on error *out is kept. */
static void
test_cidr_list_replace(void)
{
	struct cfg *c =
	    cfg_load_string("a = [ \"10.0.0.0/8\" ];\nb = [ \"bogus\" ];\n", "mem", NULL);
	struct cidr_list *l = cidr_list_new(), *keep;
	char *err = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	cidr_list_add(l, "127.0.0.1", NULL);
	keep = l;
	UNIT_EXPECT_INT("bad", cfg_get_cidr_list(cfg_root(c), "b", &l, &err), KUMO_EPARSE);
	UNIT_EXPECT_STR("bad err", err, "mem:2: b.[0]: \"bogus\": bad address \"bogus\"");
	CU_ASSERT_PTR_EQUAL(l, keep);
	UNIT_EXPECT_INT("kept default", cidr_list_match_str(l, "127.0.0.1"), 1);
	free(err);
	UNIT_EXPECT_INT("good", cfg_get_cidr_list(cfg_root(c), "a", &l, NULL), 0);
	UNIT_EXPECT_INT("replaced", cidr_list_match_str(l, "127.0.0.1"), 0);
	UNIT_EXPECT_INT("new entry", cidr_list_match_str(l, "10.1.2.3"), 1);
	cidr_list_free(&l); /* the old list was freed by the getter: ASan would tell */
	cfg_free(&c);
}

int
main(void)
{
	static const struct unit_test tests[] = {
	    {"load errors", test_load_errors},
	    {"load I/O errors", test_load_io_errors},
	    {"load from a string", test_load_string},
	    {"relative include", test_include},
	    {"typed getters", test_getters},
	    {"unknown keys", test_check_keys},
	    {"paths and errorf", test_paths_and_errorf},
	    {"cidr list replaced", test_cidr_list_replace},
	    {NULL, NULL},
	};
	char path[384];
	struct dirent *de;
	DIR *dir;
	int rc;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kumo-test-config.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	rc = unit_run("config", tests);
	/* Whatever a failed test left behind goes too. */
	dir = opendir(tmpdir);
	while (dir != NULL && (de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	if (dir != NULL)
		closedir(dir);
	if (rmdir(tmpdir) != 0)
		perror(tmpdir), rc = rc ? rc : 1;
	return rc;
}
