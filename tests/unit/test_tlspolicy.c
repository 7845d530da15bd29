/*
 * test_tlspolicy.c: the pure parts of daemon/tlspolicy.c. A table of one
 * MX host's facts (enable_dane / enable_mta_sts, DNSSEC status of the MX,
 * address and TLSA answers, the domain's MTA-STS policy) against seed 001's
 * rules and RFC 7672 2.2, seen through the session parameters it yields;
 * the connect_to syntax; and the tls_client / mta_sts configuration groups
 * with their file:line errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>

#include "buf.h"
#include "dns.h"
#include "kumo.h"
#include "mtasts.h"
#include "smtp_client.h"
#include "tls.h"
#include "unit.h"

#include "kumod.h"

/* tlspolicy.c reads kd.stopping. */
struct kumod kd;

static char tmpdir[64];

/* A TLSA answer with one record "usage selector 1 <32 bytes>". */
struct tlsa_ans {
	struct dns_result r;
	struct dns_rdata rr;
	unsigned char data[35];
};

static const struct dns_result *
tlsa_answer(struct tlsa_ans *a, enum dns_status st, int secure, unsigned usage)
{
	memset(a, 0, sizeof(*a));
	a->data[0] = (unsigned char)usage;
	a->data[1] = 1;
	a->data[2] = 1;
	memset(a->data + 3, 0xab, 32);
	a->rr.data = a->data;
	a->rr.len = sizeof(a->data);
	a->r.status = st;
	a->r.secure = secure;
	a->r.name = (char *)"_25._tcp.mx.example.test";
	a->r.rrtype = DNS_TYPE_TLSA;
	a->r.why = st == DNS_BOGUS ? "validation failure" : dns_status_str(st);
	if (st == DNS_OK) {
		a->r.rr = &a->rr;
		a->r.n_rr = 1;
	}
	return &a->r;
}

enum tlsa_kind { T_NONE, T_OK_EE, T_OK_TA, T_OK_PKIX, T_INSECURE, T_NODATA, T_BOGUS, T_SERVFAIL };

static void
test_decide(void)
{
	static const char enforce_mx[] =
	    "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 86400\n";
	static const char enforce_other[] =
	    "version: STSv1\nmode: enforce\nmx: other.example.test\nmax_age: 86400\n";
	static const char testing[] =
	    "version: STSv1\nmode: testing\nmx: other.example.test\nmax_age: 86400\n";
	static const char none[] = "version: STSv1\nmode: none\nmax_age: 86400\n";
	static const struct {
		const char *name;
		int dane, mx_secure, addr_secure;
		enum tlsa_kind tlsa;
		int sts;
		const char *policy; /* NULL: none */
		/* want */
		int skip;
		enum tls_mode mode;
		const char *label;
		size_t ntlsa;
		const char *why; /* a substring */
	} rows[] = {
	    {"nothing enabled", 0, 1, 1, T_NONE, 0, NULL, 0, TLS_OPPORTUNISTIC, "configured", 0,
	     "configured"},
	    {"no policy", 0, 0, 0, T_NONE, 1, NULL, 0, TLS_OPPORTUNISTIC, "configured", 0, ""},
	    {"enforce, MX matches", 0, 0, 0, T_NONE, 1, enforce_mx, 0, TLS_REQUIRED,
	     "mta-sts:enforce", 0, "matches"},
	    {"enforce, MX outside", 0, 0, 0, T_NONE, 1, enforce_other, 1, TLS_OPPORTUNISTIC,
	     "mta-sts:enforce", 0,
	     "MTA-STS enforce: mx.example.test is not allowed by the policy (mx: "
	     "other.example.test)"},
	    {"testing", 0, 0, 0, T_NONE, 1, testing, 0, TLS_OPPORTUNISTIC_INSECURE,
	     "mta-sts:testing", 0, "testing"},
	    {"mode none", 0, 0, 0, T_NONE, 1, none, 0, TLS_OPPORTUNISTIC, "mta-sts:none", 0,
	     "none"},
	    {"enable_mta_sts false ignores a policy", 0, 0, 0, T_NONE, 0, enforce_other, 0,
	     TLS_OPPORTUNISTIC, "configured", 0, ""},
	    {"DANE-EE secure", 1, 1, 1, T_OK_EE, 0, NULL, 0, TLS_REQUIRED, "dane", 1,
	     "1 usable TLSA record"},
	    {"DANE-TA secure", 1, 1, 1, T_OK_TA, 0, NULL, 0, TLS_REQUIRED, "dane", 1, "DANE"},
	    {"DANE beats an enforce policy that skips the MX", 1, 1, 1, T_OK_EE, 1, enforce_other,
	     0, TLS_REQUIRED, "dane", 1, "DANE"},
	    {"only PKIX usages: no DANE, MTA-STS applies", 1, 1, 1, T_OK_PKIX, 1, enforce_mx, 0,
	     TLS_REQUIRED, "mta-sts:enforce", 0, "no usable TLSA records"},
	    {"bogus TLSA: skipped", 1, 1, 1, T_BOGUS, 1, enforce_mx, 1, TLS_OPPORTUNISTIC, "dane",
	     0, "DANE: TLSA lookup for _25._tcp.mx.example.test is bogus"},
	    {"SERVFAIL TLSA: skipped", 1, 1, 1, T_SERVFAIL, 0, NULL, 1, TLS_OPPORTUNISTIC, "dane",
	     0, "failed"},
	    {"secure denial: no DANE", 1, 1, 1, T_NODATA, 0, NULL, 0, TLS_OPPORTUNISTIC,
	     "configured", 0, "no TLSA records"},
	    {"insecure TLSA: no DANE", 1, 1, 1, T_INSECURE, 0, NULL, 0, TLS_OPPORTUNISTIC,
	     "configured", 0, "not DNSSEC-secure"},
	    {"insecure MX: no DANE (even a bogus TLSA is not looked at)", 1, 0, 1, T_BOGUS, 0, NULL,
	     0, TLS_OPPORTUNISTIC, "configured", 0, "MX answer not DNSSEC-secure"},
	    {"insecure addresses: no DANE", 1, 1, 0, T_OK_EE, 1, testing, 0,
	     TLS_OPPORTUNISTIC_INSECURE, "mta-sts:testing", 0, "address records"},
	    {"enable_dane false ignores TLSA", 0, 1, 1, T_OK_EE, 0, NULL, 0, TLS_OPPORTUNISTIC,
	     "configured", 0, ""},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		struct mtasts_policy pol;
		struct tlsa_ans ta;
		const struct dns_result *tr = NULL;
		struct tlspolicy_facts f;
		struct smtp_client_params p;
		struct host_tls *t;
		char *err = NULL;

		memset(&pol, 0, sizeof(pol));
		if (rows[i].policy != NULL)
			CU_ASSERT_EQUAL_FATAL(
			    mtasts_policy_parse(rows[i].policy, strlen(rows[i].policy), &pol, &err),
			    0);
		switch (rows[i].tlsa) {
		case T_NONE:
			break;
		case T_OK_EE:
			tr = tlsa_answer(&ta, DNS_OK, 1, 3);
			break;
		case T_OK_TA:
			tr = tlsa_answer(&ta, DNS_OK, 1, 2);
			break;
		case T_OK_PKIX:
			tr = tlsa_answer(&ta, DNS_OK, 1, 1);
			break;
		case T_INSECURE:
			tr = tlsa_answer(&ta, DNS_OK, 0, 3);
			break;
		case T_NODATA:
			tr = tlsa_answer(&ta, DNS_NODATA, 1, 3);
			break;
		case T_BOGUS:
			tr = tlsa_answer(&ta, DNS_BOGUS, 0, 3);
			break;
		case T_SERVFAIL:
			tr = tlsa_answer(&ta, DNS_TEMPFAIL, 0, 3);
			break;
		}
		memset(&f, 0, sizeof(f));
		f.host = "mx.example.test";
		f.configured = TLS_OPPORTUNISTIC;
		f.dane = rows[i].dane;
		f.mx_secure = rows[i].mx_secure;
		f.addr_secure = rows[i].addr_secure;
		f.tlsa = tr;
		f.mta_sts = rows[i].sts;
		f.policy = rows[i].policy != NULL ? &pol : NULL;
		t = tlspolicy_decide(&f);
		smtp_client_params_init(&p);
		p.tls_mode = TLS_OPPORTUNISTIC; /* the path's enable_tls, set by conn_start */
		tlspolicy_client_params(NULL, NULL, t, "example.test", &p);
		fprintf(stderr, "  %s: %s, %s, %s\n", rows[i].name, tlspolicy_host_label(t),
		        tls_mode_str(p.tls_mode), tlspolicy_host_why(t));
		UNIT_EXPECT_INT(rows[i].name, tlspolicy_host_skip(t), rows[i].skip);
		if (!rows[i].skip)
			UNIT_EXPECT_STR(rows[i].name, tls_mode_str(p.tls_mode),
			                tls_mode_str(rows[i].mode));
		UNIT_EXPECT_STR(rows[i].name, tlspolicy_host_label(t), rows[i].label);
		UNIT_EXPECT_STR(rows[i].name, p.tls_policy, rows[i].label);
		UNIT_EXPECT_INT(rows[i].name, p.dane_count, rows[i].ntlsa);
		UNIT_EXPECT_INT(rows[i].name, tlspolicy_host_ntlsa(t), rows[i].ntlsa);
		if (rows[i].ntlsa > 0) {
			UNIT_EXPECT_STR(rows[i].name, p.dane_domain, "example.test");
			/* The records are a copy: the answer may go away. */
			CU_ASSERT_TRUE(p.dane_tlsa != NULL && p.dane_tlsa[0].data != ta.data + 3);
			CU_ASSERT_TRUE(p.dane_tlsa != NULL &&
			               memcmp(p.dane_tlsa[0].data, ta.data + 3, 32) == 0);
		}
		if (strstr(tlspolicy_host_why(t), rows[i].why) == NULL) {
			fprintf(stderr, "  %s: why \"%s\" lacks \"%s\"\n", rows[i].name,
			        tlspolicy_host_why(t), rows[i].why);
			CU_FAIL("why");
		}
		tlspolicy_host_free(&t);
		CU_ASSERT_PTR_NULL(t);
		mtasts_policy_clear(&pol);
		free(err);
	}
	/* No decision at all: the path's mode stands, labelled "configured". */
	{
		struct smtp_client_params p;

		smtp_client_params_init(&p);
		p.tls_mode = TLS_DISABLED;
		tlspolicy_client_params(NULL, NULL, NULL, "example.test", &p);
		UNIT_EXPECT_STR("NULL policy", tls_mode_str(p.tls_mode), "Disabled");
		UNIT_EXPECT_STR("NULL policy label", p.tls_policy, "configured");
	}
}

static void
test_connect_to(void)
{
	static const struct {
		const char *s;
		int ok;
	} rows[] = {
	    {"mta-sts.example.test:443:127.0.0.1:8443", 1},
	    {"mta-sts.example.test:443:[::1]:8443", 1},
	    {"mta-sts.example.test:443:lab-host.test:8443", 1},
	    {"mta-sts.example.test:443:127.0.0.1", 0},
	    {"mta-sts.example.test:443", 0},
	    {":443:127.0.0.1:8443", 0},
	    {"mta-sts.example.test::127.0.0.1:8443", 0},
	    {"mta-sts.example.test:443:127.0.0.1:0", 0},
	    {"mta-sts.example.test:443:127.0.0.1:65536", 0},
	    {"mta-sts.example.test:443:[::1:8443", 0},
	    {"mta-sts.example.test:443:[nope]:8443", 0},
	    {"mta sts.example.test:443:127.0.0.1:8443", 0},
	    {"mta-sts.example.test:443::8443", 0},
	    {"", 0},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++)
		UNIT_EXPECT_INT(rows[i].s, tlspolicy_connect_to_check(rows[i].s) == 0, rows[i].ok);
}

/* Load text as a config file; the tls_client / mta_sts groups into c, problems into errs. */
static int
parse(const char *text, struct kconf *c, struct buf *errs)
{
	char path[128];
	config_t cfg;
	FILE *fp;
	int bad;

	snprintf(path, sizeof(path), "%s/k.conf", tmpdir);
	fp = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	fputs(text, fp);
	fclose(fp);
	memset(c, 0, sizeof(*c));
	buf_init(errs, 0);
	config_init(&cfg);
	if (config_read_file(&cfg, path) != CONFIG_TRUE) {
		fprintf(stderr, "  libconfig: %s\n", config_error_text(&cfg));
		config_destroy(&cfg);
		return -1;
	}
	bad = tlspolicy_parse_config(c, config_root_setting(&cfg), errs);
	config_destroy(&cfg);
	return bad;
}

static void
expect_err(const struct buf *errs, const char *want)
{
	const char *got = errs->data != NULL ? errs->data : "";

	if (strstr(got, want) == NULL) {
		fprintf(stderr, "  errors \"%s\" lack \"%s\"\n", got, want);
		CU_FAIL("error text");
	}
}

static void
test_config(void)
{
	char ca[128], text[1024];
	struct kconf c;
	struct buf errs;
	char *err = NULL;
	FILE *fp;

	/* Defaults without the groups. */
	UNIT_EXPECT_INT("empty", parse("", &c, &errs), 0);
	UNIT_EXPECT_INT("default fetch_timeout", (long)c.mta_sts_fetch_timeout, 10);
	UNIT_EXPECT_INT("default wait", (long)c.mta_sts_wait, 2);
	CU_ASSERT_PTR_NULL(c.tls_client_ca_file);
	tlspolicy_free_config(&c);
	buf_release(&errs);

	/* Everything set, with a real CA file. */
	snprintf(ca, sizeof(ca), "%s/ca.pem", tmpdir);
	{
		char key[128];

		snprintf(key, sizeof(key), "%s/ca.key", tmpdir);
		CU_ASSERT_EQUAL_FATAL(tls_make_self_signed("ca.example.test", ca, key, &err), 0);
	}
	snprintf(text, sizeof(text),
	         "tls_client = { ca_file = \"%s\"; };\n"
	         "mta_sts = { ca_file = \"%s\"; fetch_timeout = \"30s\"; wait = 0;\n"
	         "  connect_to = [ \"mta-sts.a.test:443:127.0.0.1:8443\", "
	         "\"mta-sts.b.test:443:[::1]:8443\" ]; };\n",
	         ca, ca);
	UNIT_EXPECT_INT("full", parse(text, &c, &errs), 0);
	UNIT_EXPECT_STR("ca_file", c.tls_client_ca_file, ca);
	UNIT_EXPECT_STR("mta_sts.ca_file", c.mta_sts_ca_file, ca);
	UNIT_EXPECT_INT("fetch_timeout", (long)c.mta_sts_fetch_timeout, 30);
	UNIT_EXPECT_INT("wait", (long)c.mta_sts_wait, 0);
	UNIT_EXPECT_INT("connect_to entries", c.nmta_sts_connect_to, 2);
	tlspolicy_free_config(&c);
	buf_release(&errs);

	/* Errors name file:line and the setting, all of them. */
	snprintf(text, sizeof(text), "%s/empty.pem", tmpdir);
	fp = fopen(text, "w");
	fclose(fp);
	snprintf(text, sizeof(text),
	         "tls_client = { ca_file = \"%s/nonexistent.pem\"; verify = true; };\n"
	         "mta_sts = {\n"
	         "  ca_file = \"%s/empty.pem\";\n"
	         "  fetch_timeout = \"0s\";\n"
	         "  wait = \"2 fortnights\";\n"
	         "  connect_to = ( \"mta-sts.a.test:443:127.0.0.1\", 7 );\n"
	         "};\n",
	         tmpdir, tmpdir);
	UNIT_EXPECT_INT("problems", parse(text, &c, &errs), 7);
	expect_err(&errs, "k.conf:1: tls_client.ca_file: ");
	expect_err(&errs, "nonexistent.pem: No such file or directory");
	expect_err(&errs, "k.conf:1: tls_client.verify: unknown key");
	expect_err(&errs, "k.conf:3: mta_sts.ca_file: loading CA file");
	expect_err(&errs, "k.conf:4: mta_sts.fetch_timeout: 0 s: want 1 to 300 seconds");
	expect_err(&errs, "k.conf:5: mta_sts.wait: ");
	expect_err(&errs, "k.conf:6: mta_sts.connect_to.[0]: \"mta-sts.a.test:443:127.0.0.1\": "
	                  "want HOST:PORT:ADDR:PORT");
	expect_err(&errs, "k.conf:6: mta_sts.connect_to.[1]: \"(not a string)\"");
	tlspolicy_free_config(&c);
	buf_release(&errs);

	UNIT_EXPECT_INT("not a group", parse("mta_sts = 5;\ntls_client = [ 1 ];\n", &c, &errs), 2);
	expect_err(&errs, "k.conf:1: mta_sts: want a group");
	expect_err(&errs, "k.conf:2: tls_client: want a group");
	tlspolicy_free_config(&c);
	buf_release(&errs);
	free(err);
}

int
main(void)
{
	static const struct unit_test tests[] = {
	    {"decisions per host", test_decide},
	    {"connect_to syntax", test_connect_to},
	    {"configuration", test_config},
	    {NULL, NULL},
	};
	static const char *const files[] = {"k.conf", "ca.pem", "ca.key", "empty.pem"};
	char path[128];
	size_t i;
	int rc;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kumo-test-tlspolicy-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	rc = unit_run("tlspolicy", tests);
	for (i = 0; i < KUMO_NELEM(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i]);
		unlink(path);
	}
	rmdir(tmpdir);
	tlspolicy_free();
	return rc;
}
