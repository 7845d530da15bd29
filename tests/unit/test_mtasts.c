/*
 * test_mtasts.c: lib/mtasts.c. Table-driven cases for the TXT record, the
 * policy document, MX matching, the TLS decision and the cache (with an
 * injected clock), then real fetches over HTTPS on 127.0.0.1 against
 * tests/lab/mtasts-server.py with a CA and server certificate made by
 * certtool at test time. If the lab cannot be set up (no python3, no
 * certtool) the fetch tests fail: they never pass by skipping.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kumo.h"
#include "mtasts.h"
#include "unit.h"

#define PYTHON "/usr/bin/python3"

/* ---- TXT records ---- */

static const char id32[] = "abcdefghijklmnopqrstuvwxyz012345";
static const char id33[] = "abcdefghijklmnopqrstuvwxyz0123456";

struct txt_case {
	const char *name;
	const char *recs[4];
	size_t n;
	int rc;
	const char *id; /* when rc == 0 */
};

static void
test_txt_parse(void)
{
	static char rec32[64], rec33[64];
	const struct txt_case cases[] = {
	    {"one record", {"v=STSv1; id=20160831085700Z;"}, 1, 0, "20160831085700Z"},
	    {"among others", {"v=spf1 -all", "v=STSv1; id=abc", "hello"}, 3, 0, "abc"},
	    {"no records", {NULL}, 0, KUMO_ENOTFOUND, NULL},
	    {"no sts record",
	     {"v=spf1 -all", "google-site-verification=x"},
	     2,
	     KUMO_ENOTFOUND,
	     NULL},
	    {"two sts records", {"v=STSv1; id=a", "v=STSv1; id=b"}, 2, KUMO_EPARSE, NULL},
	    {"two identical", {"v=STSv1; id=a", "v=STSv1; id=a"}, 2, KUMO_EPARSE, NULL},
	    {"STSv10 is another version", {"v=STSv10; id=abc"}, 1, KUMO_ENOTFOUND, NULL},
	    {"version is case-sensitive", {"v=stsv1; id=abc"}, 1, KUMO_ENOTFOUND, NULL},
	    {"leading space", {" v=STSv1; id=abc"}, 1, KUMO_ENOTFOUND, NULL},
	    {"no id", {"v=STSv1"}, 1, KUMO_EPARSE, NULL},
	    {"no id, other field", {"v=STSv1; foo=bar"}, 1, KUMO_EPARSE, NULL},
	    {"empty id", {"v=STSv1; id="}, 1, KUMO_EPARSE, NULL},
	    {"32-char id", {rec32}, 1, 0, id32},
	    {"33-char id", {rec33}, 1, KUMO_EPARSE, NULL},
	    {"id with a hyphen", {"v=STSv1; id=abc-def"}, 1, KUMO_EPARSE, NULL},
	    {"no space", {"v=STSv1;id=abc"}, 1, 0, "abc"},
	    {"space before ;", {"v=STSv1 ; id=abc ; ext=v.1"}, 1, 0, "abc"},
	    {"extension first", {"v=STSv1; foo_bar=x; id=xyz"}, 1, 0, "xyz"},
	    {"first id wins", {"v=STSv1; id=a1; id=b2"}, 1, 0, "a1"},
	    {"space inside id", {"v=STSv1; id=abc def"}, 1, KUMO_EPARSE, NULL},
	    {"control byte", {"v=STSv1; id=abc\x01"}, 1, KUMO_EPARSE, NULL},
	    {"missing delimiter", {"v=STSv1 id=abc"}, 1, KUMO_EPARSE, NULL},
	    {"= in value", {"v=STSv1; id=abc; x=a=b"}, 1, KUMO_EPARSE, NULL},
	    {"double ;", {"v=STSv1;; id=abc"}, 1, KUMO_EPARSE, NULL},
	};

	snprintf(rec32, sizeof(rec32), "v=STSv1; id=%s", id32);
	snprintf(rec33, sizeof(rec33), "v=STSv1; id=%s", id33);
	for (size_t i = 0; i < KUMO_NELEM(cases); i++) {
		const struct txt_case *c = &cases[i];
		char id[MTASTS_ID_MAX + 1], *err = NULL;
		int rc = mtasts_txt_parse(c->recs, c->n, id, &err);

		UNIT_EXPECT_INT(c->name, rc, c->rc);
		if (c->rc == 0)
			UNIT_EXPECT_STR(c->name, id, c->id);
		else if (err == NULL || *err == '\0') {
			fprintf(stderr, "  %s: no error text\n", c->name);
			CU_FAIL("error text missing");
		}
		free(err);
	}
}

/* ---- policy documents ---- */

struct policy_case {
	const char *name;
	const char *text;
	int rc;
	enum mtasts_mode mode;
	unsigned long max_age;
	size_t mx_count;
	const char *mx0;     /* first mx, when rc == 0 and mx_count > 0 */
	const char *err_sub; /* a substring of the error, when rc != 0 */
};

#define GOOD_LF                                                                                    \
	"version: STSv1\nmode: enforce\nmx: mail.example.test\nmx: *.example.net\nmax_age: "       \
	"86400\n"
#define GOOD_CRLF                                                                                  \
	"version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmx: "                         \
	"*.example.net\r\nmax_age: 86400\r\n"

static void
test_policy_parse(void)
{
	const struct policy_case cases[] = {
	    {"LF", GOOD_LF, 0, MTASTS_MODE_ENFORCE, 86400, 2, "mail.example.test", NULL},
	    {"CRLF", GOOD_CRLF, 0, MTASTS_MODE_ENFORCE, 86400, 2, "mail.example.test", NULL},
	    {"no final newline", "version: STSv1\nmode: testing\nmx: a.example.test\nmax_age: 5", 0,
	     MTASTS_MODE_TESTING, 5, 1, "a.example.test", NULL},
	    {"mixed endings", "version: STSv1\r\nmode: testing\nmx: a.example.test\r\nmax_age: 5\n",
	     0, MTASTS_MODE_TESTING, 5, 1, "a.example.test", NULL},
	    {"none without mx", "version: STSv1\nmode: none\nmax_age: 0\n", 0, MTASTS_MODE_NONE, 0,
	     0, NULL, NULL},
	    {"mode first wins",
	     "version: STSv1\nmode: testing\nmode: enforce\nmx: a.example.test\nmax_age: 1\n", 0,
	     MTASTS_MODE_TESTING, 1, 1, "a.example.test", NULL},
	    {"later bad mode ignored", "version: STSv1\nmode: none\nmode: bogus\nmax_age: 1\n", 0,
	     MTASTS_MODE_NONE, 1, 0, NULL, NULL},
	    {"max_age first wins", "version: STSv1\nmode: none\nmax_age: 100\nmax_age: 200\n", 0,
	     MTASTS_MODE_NONE, 100, 0, NULL, NULL},
	    {"version first wins", "version: STSv1\nversion: STSv2\nmode: none\nmax_age: 1\n", 0,
	     MTASTS_MODE_NONE, 1, 0, NULL, NULL},
	    {"mx repeats",
	     "version: STSv1\nmode: enforce\nmx: a.example.test\nmx: b.example.test\nmx: "
	     "c.example.test\nmax_age: 1\n",
	     0, MTASTS_MODE_ENFORCE, 1, 3, "a.example.test", NULL},
	    {"max_age capped", "version: STSv1\nmode: none\nmax_age: 31557601\n", 0,
	     MTASTS_MODE_NONE, MTASTS_MAX_AGE_CAP, 0, NULL, NULL},
	    {"max_age 10 digits capped", "version: STSv1\nmode: none\nmax_age: 9999999999\n", 0,
	     MTASTS_MODE_NONE, MTASTS_MAX_AGE_CAP, 0, NULL, NULL},
	    {"max_age at cap", "version: STSv1\nmode: none\nmax_age: 31557600\n", 0,
	     MTASTS_MODE_NONE, 31557600, 0, NULL, NULL},
	    {"unknown keys ignored",
	     "version: STSv1\nfoo: bar baz\nmode: none\nx-y.z_1: 1\nmax_age: 7\n", 0,
	     MTASTS_MODE_NONE, 7, 0, NULL, NULL},
	    {"UTF-8 extension value",
	     "version: STSv1\ncomment: h\xc3\xa9llo\nmode: none\nmax_age: 7\n", 0, MTASTS_MODE_NONE,
	     7, 0, NULL, NULL},
	    {"tabs and trailing space",
	     "version:\tSTSv1 \t\nmode:enforce\nmx:   a.example.test  \nmax_age: 3\n", 0,
	     MTASTS_MODE_ENFORCE, 3, 1, "a.example.test", NULL},
	    {"blank lines skipped", "version: STSv1\n\nmode: none\r\n\r\nmax_age: 1\n\n\n", 0,
	     MTASTS_MODE_NONE, 1, 0, NULL, NULL},
	    {"mx lower-cased, dot dropped",
	     "version: STSv1\nmode: enforce\nmx: MX.Example.TEST.\nmax_age: 1\n", 0,
	     MTASTS_MODE_ENFORCE, 1, 1, "mx.example.test", NULL},
	    {"wildcard mx", "version: STSv1\nmode: enforce\nmx: *.Example.Test\nmax_age: 1\n", 0,
	     MTASTS_MODE_ENFORCE, 1, 1, "*.example.test", NULL},

	    {"missing version", "mode: none\nmax_age: 1\n", KUMO_EPARSE, 0, 0, 0, NULL,
	     "no version"},
	    {"wrong version", "version: STSv2\nmode: none\nmax_age: 1\n", KUMO_EPARSE, 0, 0, 0,
	     NULL, "line 1: version"},
	    {"missing mode", "version: STSv1\nmax_age: 1\n", KUMO_EPARSE, 0, 0, 0, NULL, "no mode"},
	    {"keys are case-sensitive", "version: STSv1\nMode: none\nmax_age: 1\n", KUMO_EPARSE, 0,
	     0, 0, NULL, "no mode"},
	    {"missing max_age", "version: STSv1\nmode: none\n", KUMO_EPARSE, 0, 0, 0, NULL,
	     "no max_age"},
	    {"bad mode", "version: STSv1\nmode: strict\nmax_age: 1\n", KUMO_EPARSE, 0, 0, 0, NULL,
	     "line 2: mode: \"strict\""},
	    {"mode is case-sensitive",
	     "version: STSv1\nmode: Enforce\nmx: a.example.test\nmax_age: 1\n", KUMO_EPARSE, 0, 0,
	     0, NULL, "line 2: mode"},
	    {"enforce without mx", "version: STSv1\nmode: enforce\nmax_age: 1\n", KUMO_EPARSE, 0, 0,
	     0, NULL, "enforce needs at least one mx"},
	    {"testing without mx", "version: STSv1\nmode: testing\nmax_age: 1\n", KUMO_EPARSE, 0, 0,
	     0, NULL, "testing needs at least one mx"},
	    {"max_age 11 digits", "version: STSv1\nmode: none\nmax_age: 12345678901\n", KUMO_EPARSE,
	     0, 0, 0, NULL, "line 3: max_age"},
	    {"max_age negative", "version: STSv1\nmode: none\nmax_age: -1\n", KUMO_EPARSE, 0, 0, 0,
	     NULL, "line 3: max_age"},
	    {"max_age 1e5", "version: STSv1\nmode: none\nmax_age: 1e5\n", KUMO_EPARSE, 0, 0, 0,
	     NULL, "line 3: max_age"},
	    {"leading whitespace", "version: STSv1\n mode: none\nmax_age: 1\n", KUMO_EPARSE, 0, 0,
	     0, NULL, "line 2: leading whitespace"},
	    {"space before colon", "version: STSv1\nmode : none\nmax_age: 1\n", KUMO_EPARSE, 0, 0,
	     0, NULL, "line 2: expected"},
	    {"no colon", "version: STSv1\nmode none\nmax_age: 1\n", KUMO_EPARSE, 0, 0, 0, NULL,
	     "line 2"},
	    {"empty value", "version: STSv1\nmode:\nmax_age: 1\n", KUMO_EPARSE, 0, 0, 0, NULL,
	     "line 2: mode: empty value"},
	    {"bare CR inside", "version: STSv1\r\r\nmode: none\nmax_age: 1\n", KUMO_EPARSE, 0, 0, 0,
	     NULL, "line 1: version: control character"},
	    {"bad mx", "version: STSv1\nmode: enforce\nmx: -bad.example.test\nmax_age: 1\n",
	     KUMO_EPARSE, 0, 0, 0, NULL, "line 3: mx"},
	    {"double wildcard mx",
	     "version: STSv1\nmode: enforce\nmx: *.*.example.test\nmax_age: 1\n", KUMO_EPARSE, 0, 0,
	     0, NULL, "line 3: mx"},
	    {"empty label mx", "version: STSv1\nmode: enforce\nmx: a..example.test\nmax_age: 1\n",
	     KUMO_EPARSE, 0, 0, 0, NULL, "line 3: mx"},
	    {"mx with a space", "version: STSv1\nmode: enforce\nmx: a b.example.test\nmax_age: 1\n",
	     KUMO_EPARSE, 0, 0, 0, NULL, "line 3: mx"},
	    {"empty document", "", KUMO_EPARSE, 0, 0, 0, NULL, "no version"},
	    {"HTML instead", "<html><body>hi</body></html>\n", KUMO_EPARSE, 0, 0, 0, NULL,
	     "line 1: expected"},
	};

	for (size_t i = 0; i < KUMO_NELEM(cases); i++) {
		const struct policy_case *c = &cases[i];
		struct mtasts_policy p;
		char *err = NULL;
		int rc = mtasts_policy_parse(c->text, strlen(c->text), &p, &err);

		UNIT_EXPECT_INT(c->name, rc, c->rc);
		if (c->rc == 0 && rc == 0) {
			UNIT_EXPECT_INT(c->name, p.mode, c->mode);
			UNIT_EXPECT_INT(c->name, p.max_age, c->max_age);
			UNIT_EXPECT_INT(c->name, p.mx_count, c->mx_count);
			if (c->mx0 != NULL && p.mx_count > 0)
				UNIT_EXPECT_STR(c->name, p.mx[0], c->mx0);
		} else if (c->rc != 0) {
			int found = err != NULL && strstr(err, c->err_sub) != NULL;
			if (!found)
				fprintf(stderr, "  %s: error \"%s\", want it to contain \"%s\"\n",
				        c->name, err ? err : "(null)", c->err_sub);
			CU_ASSERT_TRUE(found);
			/* A failed parse leaves an empty policy behind. */
			UNIT_EXPECT_INT(c->name, p.mx_count, 0);
		}
		mtasts_policy_clear(&p);
		free(err);
	}
}

/* Odd bytes (NUL, 0xff, a capped flag) and the capped flag itself. */
static void
test_policy_bytes(void)
{
	static const char with_nul[] = "version: STSv1\nmode: none\0\nmax_age: 1\n";
	struct mtasts_policy p;
	char *err = NULL;
	int rc;

	rc = mtasts_policy_parse(with_nul, sizeof(with_nul) - 1, &p, &err);
	UNIT_EXPECT_INT("NUL in value", rc, KUMO_EPARSE);
	CU_ASSERT_TRUE(err != NULL && strstr(err, "line 2") != NULL);
	free(err);
	err = NULL;

	static const char capped[] = "version: STSv1\nmode: none\nmax_age: 99999999\n";
	rc = mtasts_policy_parse(capped, strlen(capped), &p, &err);
	UNIT_EXPECT_INT("capped", rc, 0);
	UNIT_EXPECT_INT("capped flag", p.max_age_capped, 1);
	mtasts_policy_clear(&p);

	rc = mtasts_policy_parse(NULL, 0, &p, NULL);
	UNIT_EXPECT_INT("NULL, 0", rc, KUMO_EPARSE);

	/* Every prefix of a good document either parses or fails cleanly (no crash, no leak). */
	for (size_t n = 0; n <= strlen(GOOD_CRLF); n++) {
		rc = mtasts_policy_parse(GOOD_CRLF, n, &p, NULL);
		CU_ASSERT_TRUE(rc == 0 || rc == KUMO_EPARSE);
		mtasts_policy_clear(&p);
	}
	UNIT_EXPECT_STR("mode str", mtasts_mode_str(MTASTS_MODE_ENFORCE), "enforce");
	UNIT_EXPECT_STR("mode str", mtasts_mode_str(MTASTS_MODE_TESTING), "testing");
	UNIT_EXPECT_STR("mode str", mtasts_mode_str(MTASTS_MODE_NONE), "none");
}

/* ---- MX matching and the TLS decision ---- */

static void
make_policy(struct mtasts_policy *p, const char *text)
{
	char *err = NULL;
	int rc = mtasts_policy_parse(text, strlen(text), p, &err);

	if (rc != 0)
		fprintf(stderr, "  make_policy: %s\n", err ? err : "?");
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	free(err);
}

static void
test_mx_match(void)
{
	static const struct {
		const char *host;
		int want;
	} cases[] = {
	    {"mail.example.test", 1},
	    {"MAIL.Example.TEST", 1},
	    {"mail.example.test.", 1},
	    {"mail.example.test..", 0},
	    {"other.example.test", 0},
	    {"mail.example.testx", 0},
	    {"xmail.example.test", 0},
	    {"a.wild.example.test", 1},
	    {"A.WILD.EXAMPLE.TEST.", 1},
	    {"a.b.wild.example.test", 0},
	    {"wild.example.test", 0},
	    {".wild.example.test", 0},
	    {"xwild.example.test", 0},
	    {"", 0},
	    {".", 0},
	    {"mx1.example.net", 1},
	    {"mx2.example.net", 0},
	};
	struct mtasts_policy p;

	make_policy(
	    &p, "version: STSv1\nmode: enforce\nmx: mail.example.test\nmx: *.wild.example.test\n"
	        "mx: mx1.example.net\nmax_age: 60\n");
	for (size_t i = 0; i < KUMO_NELEM(cases); i++)
		UNIT_EXPECT_INT(cases[i].host, mtasts_mx_match(&p, cases[i].host), cases[i].want);
	/* A pattern without the wildcard matches only itself, not its subdomains. */
	mtasts_policy_clear(&p);
	make_policy(&p, "version: STSv1\nmode: enforce\nmx: example.test\nmax_age: 60\n");
	UNIT_EXPECT_INT("no wildcard: a.example.test", mtasts_mx_match(&p, "a.example.test"), 0);
	UNIT_EXPECT_INT("no wildcard: example.test", mtasts_mx_match(&p, "example.test"), 1);
	UNIT_EXPECT_INT("NULL policy", mtasts_mx_match(NULL, "example.test"), 0);
	mtasts_policy_clear(&p);
}

static void
test_tls_decide(void)
{
	struct mtasts_policy enforce, testing, none;
	static const char *mx = "mx.example.test";

	make_policy(&enforce, "version: STSv1\nmode: enforce\nmx: *.example.test\nmax_age: 60\n");
	make_policy(&testing,
	            "version: STSv1\nmode: testing\nmx: other.example.net\nmax_age: 60\n");
	make_policy(&none, "version: STSv1\nmode: none\nmax_age: 60\n");

	UNIT_EXPECT_INT("enforce, match", mtasts_tls_decide(&enforce, mx), MTASTS_TLS_REQUIRED);
	UNIT_EXPECT_INT("enforce, no match", mtasts_tls_decide(&enforce, "mx.evil.test"),
	                MTASTS_TLS_SKIP_MX);
	UNIT_EXPECT_INT("testing, no match", mtasts_tls_decide(&testing, mx),
	                MTASTS_TLS_OPPORTUNISTIC_INSECURE);
	UNIT_EXPECT_INT("testing, match", mtasts_tls_decide(&testing, "other.example.net"),
	                MTASTS_TLS_OPPORTUNISTIC_INSECURE);
	UNIT_EXPECT_INT("none", mtasts_tls_decide(&none, mx), MTASTS_TLS_CONFIGURED);
	UNIT_EXPECT_INT("no policy", mtasts_tls_decide(NULL, mx), MTASTS_TLS_CONFIGURED);
	UNIT_EXPECT_STR("str", mtasts_tls_str(MTASTS_TLS_REQUIRED), "Required");
	UNIT_EXPECT_STR("str", mtasts_tls_str(MTASTS_TLS_OPPORTUNISTIC_INSECURE),
	                "OpportunisticInsecure");
	UNIT_EXPECT_STR("str", mtasts_tls_str(MTASTS_TLS_SKIP_MX), "skip-mx");
	UNIT_EXPECT_STR("str", mtasts_tls_str(MTASTS_TLS_CONFIGURED), "configured");
	mtasts_policy_clear(&enforce);
	mtasts_policy_clear(&testing);
	mtasts_policy_clear(&none);
}

/* ---- the cache, with an injected clock ---- */

static void
policy_for(struct mtasts_policy *p, const char *mode, unsigned long max_age)
{
	char text[256];

	snprintf(text, sizeof(text),
	         "version: STSv1\nmode: %s\nmx: mx.example.test\nmax_age: %lu\n", mode, max_age);
	make_policy(p, text);
}

static void
test_cache_rules(void)
{
	struct mtasts_cache *c = mtasts_cache_new(0);
	const struct mtasts_policy *got;
	struct mtasts_policy p;
	const char *id = NULL;

	/* Empty: nothing cached; a TXT id means fetch, no TXT record means nothing to do. */
	CU_ASSERT_PTR_NULL(mtasts_cache_get(c, "example.test", 1000, NULL));
	UNIT_EXPECT_INT("empty, id", mtasts_cache_needs_fetch(c, "example.test", "a", 1000), 1);
	UNIT_EXPECT_INT("empty, no id", mtasts_cache_needs_fetch(c, "example.test", NULL, 1000), 0);

	/* Stored at t=1000 with max_age 100: valid until t=1100 (exclusive). */
	policy_for(&p, "enforce", 100);
	mtasts_cache_put(c, "Example.TEST.", "a", &p, 1000);
	UNIT_EXPECT_INT("put takes the mx list", p.mx_count, 0);
	got = mtasts_cache_get(c, "example.test", 1050, &id);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	UNIT_EXPECT_INT("cached mode", got->mode, MTASTS_MODE_ENFORCE);
	UNIT_EXPECT_STR("cached id", id, "a");
	UNIT_EXPECT_INT("same id", mtasts_cache_needs_fetch(c, "example.test", "a", 1050), 0);
	UNIT_EXPECT_INT("id changed", mtasts_cache_needs_fetch(c, "EXAMPLE.test", "b", 1050), 1);
	UNIT_EXPECT_INT("TXT gone, cache valid",
	                mtasts_cache_needs_fetch(c, "example.test", NULL, 1050), 0);

	/* A failed refresh (the id changed, the fetch failed) keeps the unexpired policy. */
	got = mtasts_cache_update(c, "example.test", "b", KUMO_EIO, NULL, 1060);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	UNIT_EXPECT_INT("kept after failure", got->mode, MTASTS_MODE_ENFORCE);
	(void)mtasts_cache_get(c, "example.test", 1060, &id);
	UNIT_EXPECT_STR("old id kept", id, "a");

	/* A successful refresh replaces it and restarts the clock: t=1070 + 50. */
	policy_for(&p, "testing", 50);
	got = mtasts_cache_update(c, "example.test", "b", 0, &p, 1070);
	CU_ASSERT_PTR_NOT_NULL_FATAL(got);
	UNIT_EXPECT_INT("refreshed mode", got->mode, MTASTS_MODE_TESTING);
	(void)mtasts_cache_get(c, "example.test", 1119, &id);
	UNIT_EXPECT_STR("new id", id, "b");
	UNIT_EXPECT_INT("one entry", mtasts_cache_count(c), 1);

	/* Expired at t=1120: dropped when seen, and a failed fetch now leaves no policy. */
	CU_ASSERT_PTR_NULL(mtasts_cache_get(c, "example.test", 1120, &id));
	CU_ASSERT_PTR_NULL(id);
	UNIT_EXPECT_INT("expired dropped", mtasts_cache_count(c), 0);
	CU_ASSERT_PTR_NULL(mtasts_cache_update(c, "example.test", "b", KUMO_ETIMEDOUT, NULL, 1121));
	UNIT_EXPECT_INT("expired, no id", mtasts_cache_needs_fetch(c, "example.test", NULL, 1121),
	                0);
	UNIT_EXPECT_INT("expired, id", mtasts_cache_needs_fetch(c, "example.test", "b", 1121), 1);

	/* max_age 0: the fetched policy applies to this delivery, then is gone. */
	policy_for(&p, "enforce", 0);
	got = mtasts_cache_update(c, "zero.example.test", "z", 0, &p, 2000);
	CU_ASSERT_PTR_NOT_NULL(got);
	CU_ASSERT_PTR_NULL(mtasts_cache_get(c, "zero.example.test", 2000, NULL));

	/* Remove. */
	policy_for(&p, "none", 10);
	mtasts_cache_put(c, "gone.example.test", "g", &p, 3000);
	UNIT_EXPECT_INT("remove", mtasts_cache_remove(c, "GONE.example.test"), 1);
	UNIT_EXPECT_INT("remove again", mtasts_cache_remove(c, "gone.example.test"), 0);

	mtasts_cache_free(&c);
	CU_ASSERT_PTR_NULL(c);
	mtasts_cache_free(&c); /* NULL is fine */
}

static void
test_cache_capacity(void)
{
	struct mtasts_cache *c = mtasts_cache_new(3);
	struct mtasts_policy p;
	char name[64];
	size_t missing = 0;

	/* Expiries 100+10, 100+30, 100+20: at the cap the one expiring first goes. */
	policy_for(&p, "none", 10);
	mtasts_cache_put(c, "a.test", "1", &p, 100);
	policy_for(&p, "none", 30);
	mtasts_cache_put(c, "b.test", "1", &p, 100);
	policy_for(&p, "none", 20);
	mtasts_cache_put(c, "c.test", "1", &p, 100);
	policy_for(&p, "none", 40);
	mtasts_cache_put(c, "d.test", "1", &p, 101);
	UNIT_EXPECT_INT("capped count", mtasts_cache_count(c), 3);
	CU_ASSERT_PTR_NULL(mtasts_cache_get(c, "a.test", 102, NULL));
	CU_ASSERT_PTR_NOT_NULL(mtasts_cache_get(c, "b.test", 102, NULL));
	CU_ASSERT_PTR_NOT_NULL(mtasts_cache_get(c, "d.test", 102, NULL));
	/* Replacing an existing domain at the cap evicts nothing. */
	policy_for(&p, "testing", 40);
	mtasts_cache_put(c, "c.test", "2", &p, 103);
	CU_ASSERT_PTR_NOT_NULL(mtasts_cache_get(c, "b.test", 104, NULL));
	UNIT_EXPECT_INT("replace count", mtasts_cache_count(c), 3);
	mtasts_cache_free(&c);

	/* Many domains: the table grows and keeps every one. */
	c = mtasts_cache_new(0);
	for (int i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "d%d.example.test", i);
		policy_for(&p, "none", 1000);
		mtasts_cache_put(c, name, "x", &p, 0);
	}
	for (int i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "D%d.EXAMPLE.TEST", i);
		if (mtasts_cache_get(c, name, 1, NULL) == NULL)
			missing++;
	}
	UNIT_EXPECT_INT("grown count", mtasts_cache_count(c), 500);
	UNIT_EXPECT_INT("missing after growth", missing, 0);
	mtasts_cache_free(&c);
}

/* ---- real fetches over HTTPS on 127.0.0.1 ---- */

static struct {
	char dir[64];
	pid_t pid;
	int port;
	int ready;
	char connect_to[96];
	char any_to[96];
	char cafile[128];
	char wrong_ca[128];
} lab = {.pid = -1};

static const char *lab_hosts[] = {
    "example.test",      "redirect.example.test", "missing.example.test", "huge.example.test",
    "html.example.test", "slow.example.test",     "bad.example.test"};

static int
write_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f == NULL)
		return -1;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -1;
}

static int
run(const char *cmd)
{
	int st = system(cmd);

	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "  lab: command failed (%d): %s\n", st, cmd);
		return -1;
	}
	return 0;
}

static const char *
srcdir(void)
{
	const char *s = getenv("top_srcdir");
	return s && *s ? s : KUMO_TOP_SRCDIR;
}

/* Make the CA, a second unrelated CA and the server certificate with certtool. */
static int
lab_certs(void)
{
	char cmd[2048], tmpl[1024];
	size_t o;

	o = (size_t)snprintf(tmpl, sizeof(tmpl),
	                     "cn = \"mta-sts.example.test\"\ntls_www_server\nsigning_key\n"
	                     "encryption_key\nexpiration_days = 2\n");
	for (size_t i = 0; i < KUMO_NELEM(lab_hosts) && o < sizeof(tmpl); i++)
		o += (size_t)snprintf(tmpl + o, sizeof(tmpl) - o, "dns_name = \"mta-sts.%s\"\n",
		                      lab_hosts[i]);
	if (o >= sizeof(tmpl))
		return -1;
	if (write_file(lab.dir, "ca.tmpl",
	               "cn = \"kumo MTA-STS test CA\"\nca\ncert_signing_key\n"
	               "expiration_days = 2\n") < 0 ||
	    write_file(lab.dir, "wrong.tmpl",
	               "cn = \"some other CA\"\nca\ncert_signing_key\n"
	               "expiration_days = 2\n") < 0 ||
	    write_file(lab.dir, "srv.tmpl", tmpl) < 0)
		return -1;
	snprintf(
	    cmd, sizeof(cmd),
	    "cd '%s' && exec >certtool.log 2>&1 && "
	    "certtool --generate-privkey --key-type=ecdsa --outfile ca.key && "
	    "certtool --generate-self-signed --load-privkey ca.key --template ca.tmpl --outfile "
	    "ca.pem && "
	    "certtool --generate-privkey --key-type=ecdsa --outfile wrong.key && "
	    "certtool --generate-self-signed --load-privkey wrong.key --template wrong.tmpl "
	    "--outfile wrong.pem && "
	    "certtool --generate-privkey --key-type=ecdsa --outfile srv.key && "
	    "certtool --generate-certificate --load-privkey srv.key --load-ca-certificate ca.pem "
	    "--load-ca-privkey ca.key --template srv.tmpl --outfile srv.pem",
	    lab.dir);
	return run(cmd);
}

static int
lab_policies(void)
{
	char www[128];

	snprintf(www, sizeof(www), "%s/www", lab.dir);
	if (mkdir(www, 0700) < 0)
		return -1;
	if (write_file(www, "mta-sts.example.test.txt",
	               "version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmx: "
	               "*.mx.example.test\r\n"
	               "max_age: 604800\r\n") < 0)
		return -1;
	/* The same good policy behind the hosts whose behaviour the server changes. */
	if (write_file(www, "mta-sts.html.example.test.txt",
	               "version: STSv1\nmode: none\nmax_age: 60\n") < 0 ||
	    write_file(www, "mta-sts.slow.example.test.txt",
	               "version: STSv1\nmode: none\nmax_age: 60\n") < 0 ||
	    write_file(www, "mta-sts.redirect.example.test.txt",
	               "version: STSv1\nmode: none\nmax_age: 60\n") < 0)
		return -1;
	if (write_file(www, "mta-sts.bad.example.test.txt",
	               "version: STSv1\nmode: enforce\nmax_age: 60\n") < 0)
		return -1;
	return 0;
}

/* Start the server and wait (at most 5 s) for its port file. */
static int
lab_server(void)
{
	char script[512], cert[128], key[128], www[128], portfile[128], logf[128];
	struct timespec tick = {0, 10 * 1000 * 1000};

	snprintf(script, sizeof(script), "%s/tests/lab/mtasts-server.py", srcdir());
	snprintf(cert, sizeof(cert), "%s/srv.pem", lab.dir);
	snprintf(key, sizeof(key), "%s/srv.key", lab.dir);
	snprintf(www, sizeof(www), "%s/www", lab.dir);
	snprintf(portfile, sizeof(portfile), "%s/port", lab.dir);
	snprintf(logf, sizeof(logf), "%s/server.log", lab.dir);
	if (access(script, R_OK) < 0) {
		fprintf(stderr, "  lab: %s: %s\n", script, strerror(errno));
		return -1;
	}
	lab.pid = fork();
	if (lab.pid < 0)
		return -1;
	if (lab.pid == 0) {
		int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execl(PYTHON, PYTHON, script, "--cert", cert, "--key", key, "--dir", www,
		      "--portfile", portfile, "--lifetime", "60", "--mode",
		      "mta-sts.redirect.example.test=redirect", "--mode",
		      "mta-sts.missing.example.test=404", "--mode",
		      "mta-sts.huge.example.test=huge", "--mode", "mta-sts.html.example.test=html",
		      "--mode", "mta-sts.slow.example.test=slow", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(portfile, "r");
		int status;

		if (f != NULL) {
			int ok =
			    fscanf(f, "%d", &lab.port) == 1 && lab.port > 0 && lab.port < 65536;
			fclose(f);
			return ok ? 0 : -1;
		}
		if (waitpid(lab.pid, &status, WNOHANG) == lab.pid) {
			fprintf(stderr, "  lab: server exited early (status %d); see %s\n", status,
			        logf);
			lab.pid = -1;
			return -1;
		}
		nanosleep(&tick, NULL);
	}
	fprintf(stderr, "  lab: no port file after 5 s; see %s\n", logf);
	return -1;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* Stop the server (SIGTERM, then SIGKILL after 2 s) and remove the work dir; idempotent. */
static void
lab_stop(void)
{
	struct timespec tick = {0, 10 * 1000 * 1000};

	if (lab.pid > 0) {
		int status, reaped = 0;
		kill(lab.pid, SIGTERM);
		for (int i = 0; i < 200 && !reaped; i++) {
			if (waitpid(lab.pid, &status, WNOHANG) == lab.pid)
				reaped = 1;
			else
				nanosleep(&tick, NULL);
		}
		if (!reaped) {
			kill(lab.pid, SIGKILL);
			waitpid(lab.pid, &status, 0);
		}
		lab.pid = -1;
	}
	if (lab.dir[0] != '\0' && getenv("KUMO_KEEP_LAB") == NULL)
		nftw(lab.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	lab.dir[0] = '\0';
	lab.ready = 0;
}

static void
test_lab_setup(void)
{
	atexit(lab_stop);
	if (access(PYTHON, X_OK) < 0) {
		CU_FAIL_FATAL(PYTHON " is missing: the fetch tests cannot run");
	}
	if (run("command -v certtool >/dev/null") < 0) {
		CU_FAIL_FATAL("certtool (gnutls-bin) is missing: the fetch tests cannot run");
	}
	snprintf(lab.dir, sizeof(lab.dir), "/tmp/kumo-mtasts.XXXXXX");
	if (mkdtemp(lab.dir) == NULL) {
		lab.dir[0] = '\0';
		CU_FAIL_FATAL("mkdtemp");
	}
	snprintf(lab.cafile, sizeof(lab.cafile), "%s/ca.pem", lab.dir);
	snprintf(lab.wrong_ca, sizeof(lab.wrong_ca), "%s/wrong.pem", lab.dir);
	CU_ASSERT_EQUAL_FATAL(lab_certs(), 0);
	CU_ASSERT_EQUAL_FATAL(lab_policies(), 0);
	CU_ASSERT_EQUAL_FATAL(lab_server(), 0);
	snprintf(lab.connect_to, sizeof(lab.connect_to), "mta-sts.example.test:443:127.0.0.1:%d",
	         lab.port);
	snprintf(lab.any_to, sizeof(lab.any_to), "::127.0.0.1:%d", lab.port);
	lab.ready = 1;
}

/* Fetch domain through the lab; NOT ready is a failure, never a skip. */
static int
lab_fetch(const char *domain, const char *cafile, long timeout_ms, struct mtasts_policy *p,
          char **body_r, char **err_r)
{
	struct mtasts_fetch_opts o = {
	    .connect_to = strcmp(domain, "example.test") == 0 ? lab.connect_to : lab.any_to,
	    .cafile = cafile ? cafile : lab.cafile,
	    .timeout_ms = timeout_ms ? timeout_ms : 5000,
	};
	int rc;

	if (!lab.ready) {
		CU_FAIL("the HTTPS lab is not running (see test_lab_setup)");
		memset(p, 0, sizeof(*p));
		return 1;
	}
	rc = mtasts_fetch(domain, &o, p, body_r, err_r);
	if (rc != 0 && err_r && *err_r)
		printf("    (%s: %s)\n", domain, *err_r);
	return rc;
}

static void
test_fetch_ok(void)
{
	struct mtasts_policy p;
	char *body = NULL, *err = NULL;
	int rc = lab_fetch("example.test", NULL, 0, &p, &body, &err);

	UNIT_EXPECT_INT("fetch example.test", rc, 0);
	if (rc == 0) {
		UNIT_EXPECT_INT("mode", p.mode, MTASTS_MODE_ENFORCE);
		UNIT_EXPECT_INT("max_age", p.max_age, 604800);
		UNIT_EXPECT_INT("mx count", p.mx_count, 2);
		UNIT_EXPECT_INT("mx match", mtasts_mx_match(&p, "a.mx.example.test"), 1);
		UNIT_EXPECT_INT("decision", mtasts_tls_decide(&p, "mail.example.test"),
		                MTASTS_TLS_REQUIRED);
		UNIT_EXPECT_INT("decision", mtasts_tls_decide(&p, "mail.evil.test"),
		                MTASTS_TLS_SKIP_MX);
		CU_ASSERT_TRUE(body != NULL && strncmp(body, "version: STSv1\r\n", 16) == 0);
	}
	mtasts_policy_clear(&p);
	free(body);
	free(err);
	err = NULL;

	/* A trailing dot on the domain is the same domain. */
	rc = lab_fetch("example.test.", NULL, 0, &p, NULL, &err);
	UNIT_EXPECT_INT("fetch example.test.", rc, 0);
	mtasts_policy_clear(&p);
	free(err);
}

struct fetch_case {
	const char *name;
	const char *domain;
	int wrong_ca;
	int rc;
	const char *err_sub;
};

static void
test_fetch_refused(void)
{
	static const struct fetch_case cases[] = {
	    {"302 redirect", "redirect.example.test", 0, KUMO_EPROTO, "302"},
	    {"404", "missing.example.test", 0, KUMO_EPROTO, "404"},
	    {"name not in certificate", "nocert.example.test", 0, KUMO_ETLS,
	     "mta-sts.nocert.example.test"},
	    {"oversized body", "huge.example.test", 0, KUMO_ENOSPACE, "larger than"},
	    {"text/html", "html.example.test", 0, KUMO_EPROTO, "Content-Type \"text/html\""},
	    {"wrong CA", "example.test", 1, KUMO_ETLS, "example.test"},
	    {"bad policy", "bad.example.test", 0, KUMO_EPARSE, "enforce needs at least one mx"},
	};

	for (size_t i = 0; i < KUMO_NELEM(cases); i++) {
		const struct fetch_case *c = &cases[i];
		struct mtasts_policy p;
		char *err = NULL, *body = (char *)"untouched";
		int rc =
		    lab_fetch(c->domain, c->wrong_ca ? lab.wrong_ca : NULL, 0, &p, &body, &err);
		int found = err != NULL && strstr(err, c->err_sub) != NULL;

		UNIT_EXPECT_INT(c->name, rc, c->rc);
		if (!found)
			fprintf(stderr, "  %s: error \"%s\", want it to contain \"%s\"\n", c->name,
			        err ? err : "(null)", c->err_sub);
		CU_ASSERT_TRUE(found);
		CU_ASSERT_PTR_NULL(body);
		UNIT_EXPECT_INT(c->name, p.mx_count, 0);
		mtasts_policy_clear(&p);
		free(err);
	}
}

static void
test_fetch_timeout(void)
{
	struct mtasts_policy p;
	struct timespec t0, t1;
	char *err = NULL;
	double ms;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = lab_fetch("slow.example.test", NULL, 300, &p, NULL, &err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	UNIT_EXPECT_INT("slow server", rc, KUMO_ETIMEDOUT);
	if (ms >= 2500)
		fprintf(stderr, "  timeout took %.0f ms\n", ms);
	CU_ASSERT_TRUE(ms < 2500);
	mtasts_policy_clear(&p);
	free(err);
}

/* Proxies in the environment must not be used: they point at a closed port. */
static void
test_fetch_ignores_proxy_env(void)
{
	static const char *vars[] = {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
	                             "http_proxy"};
	struct mtasts_policy p;
	char *err = NULL;
	int rc;

	for (size_t i = 0; i < KUMO_NELEM(vars); i++)
		setenv(vars[i], "http://127.0.0.1:1", 1);
	rc = lab_fetch("example.test", NULL, 0, &p, NULL, &err);
	for (size_t i = 0; i < KUMO_NELEM(vars); i++)
		unsetenv(vars[i]);
	UNIT_EXPECT_INT("fetch with https_proxy set", rc, 0);
	UNIT_EXPECT_INT("policy mode", p.mode, MTASTS_MODE_ENFORCE);
	mtasts_policy_clear(&p);
	free(err);
}

static void
test_fetch_bad_domain(void)
{
	static const char *bad[] = {
	    "", "example.test/evil?x=", "exa mple.test", "-a.test", "a..test", "."};
	struct mtasts_policy p;

	for (size_t i = 0; i < KUMO_NELEM(bad); i++) {
		char *err = NULL;
		UNIT_EXPECT_INT(bad[i], mtasts_fetch(bad[i], NULL, &p, NULL, &err), KUMO_EINVAL);
		CU_ASSERT_PTR_NOT_NULL(err);
		free(err);
	}
	UNIT_EXPECT_INT("NULL domain", mtasts_fetch(NULL, NULL, &p, NULL, NULL), KUMO_EINVAL);
}

static void
test_lab_teardown(void)
{
	pid_t pid = lab.pid;

	CU_ASSERT_TRUE(pid > 0);
	lab_stop();
	/* The server is gone: it has been reaped, so kill() cannot find it. */
	if (pid > 0)
		CU_ASSERT_EQUAL(kill(pid, 0), -1);
}

int
main(void)
{
	static const struct unit_test tests[] = {
	    {"txt_parse", test_txt_parse},
	    {"policy_parse", test_policy_parse},
	    {"policy_bytes", test_policy_bytes},
	    {"mx_match", test_mx_match},
	    {"tls_decide", test_tls_decide},
	    {"cache_rules", test_cache_rules},
	    {"cache_capacity", test_cache_capacity},
	    {"fetch_bad_domain", test_fetch_bad_domain},
	    {"lab_setup", test_lab_setup},
	    {"fetch_ok", test_fetch_ok},
	    {"fetch_refused", test_fetch_refused},
	    {"fetch_timeout", test_fetch_timeout},
	    {"fetch_ignores_proxy_env", test_fetch_ignores_proxy_env},
	    {"lab_teardown", test_lab_teardown},
	    {NULL, NULL},
	};
	int rc;

	if (mtasts_global_init() < 0) {
		fprintf(stderr, "curl_global_init failed\n");
		return 2;
	}
	rc = unit_run("mtasts", tests);
	lab_stop();
	mtasts_global_cleanup();
	return rc;
}
