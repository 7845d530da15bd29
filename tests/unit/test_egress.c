/* test_egress.c: egress paths (seed defaults, parsing, errors), pools, sources, shaping merge. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libconfig.h>

#include "buf.h"
#include "cidr.h"
#include "egress.h"
#include "kumo.h"
#include "throttle.h"
#include "tls.h"
#include "unit.h"

static config_t cfg;

/* Parse text into the global cfg; returns the root or NULL. */
static const config_setting_t *
load(const char *text)
{
	config_destroy(&cfg);
	config_init(&cfg);
	if (config_read_string(&cfg, text) != CONFIG_TRUE) {
		fprintf(stderr, "  libconfig: line %d: %s\n", config_error_line(&cfg),
		        config_error_text(&cfg));
		return NULL;
	}
	return config_root_setting(&cfg);
}

static void
test_defaults(void)
{
	static const uint64_t want[EGRESS_NTIMEOUTS] = {60, 60, 5, 300, 300, 300, 30, 60, 5};
	struct egress_path p;
	size_t i;
	char what[64];

	egress_path_init(&p);
	UNIT_EXPECT_INT("set", p.set, 0);
	UNIT_EXPECT_INT("consecutive failures", p.consecutive_connection_failures_before_delay,
	                100);
	UNIT_EXPECT_INT("enable_tls", p.enable_tls, TLS_OPPORTUNISTIC);
	for (i = 0; i < EGRESS_NTIMEOUTS; i++) {
		snprintf(what, sizeof(what), "timeout %s",
		         egress_path_fields()[EGRESS_F_TIMEOUT0 + i].name);
		UNIT_EXPECT_INT(what, p.timeout[i], want[i]);
	}
	UNIT_EXPECT_INT("idle_timeout", p.idle_timeout, 60);
	UNIT_EXPECT_INT("max_deliveries_per_connection", p.max_deliveries_per_connection, 1024);
	UNIT_EXPECT_INT("max_ready", p.max_ready, 1024);
	UNIT_EXPECT_INT("smtp_port", p.smtp_port, 25);
	UNIT_EXPECT_INT("suspended", p.suspended, 0);
	UNIT_EXPECT_INT("enable_mta_sts", p.enable_mta_sts, 1);
	UNIT_EXPECT_INT("enable_dane", p.enable_dane, 0);
	CU_ASSERT_PTR_NULL(p.ehlo_domain);
	CU_ASSERT_PTR_NULL(p.skip_hosts);
	/* The default prohibited_hosts: loopback. */
	UNIT_EXPECT_INT("prohibited 127.0.0.1",
	                cidr_list_match_str(p.prohibited_hosts, "127.0.0.1"), 1);
	UNIT_EXPECT_INT("prohibited 127.9.9.9",
	                cidr_list_match_str(p.prohibited_hosts, "127.9.9.9"), 1);
	UNIT_EXPECT_INT("prohibited ::1", cidr_list_match_str(p.prohibited_hosts, "::1"), 1);
	UNIT_EXPECT_INT("prohibited 10.0.0.1", cidr_list_match_str(p.prohibited_hosts, "10.0.0.1"),
	                0);
	egress_path_release(&p);
	CU_ASSERT_PTR_NULL(p.prohibited_hosts);
}

static void
test_field_table(void)
{
	const struct egress_field *f = egress_path_fields();
	int i, j;

	for (i = 0; i < EGRESS_PATH_NFIELDS; i++) {
		CU_ASSERT_PTR_NOT_NULL(f[i].name);
		CU_ASSERT_PTR_NOT_NULL(f[i].def);
		for (j = 0; j < i; j++)
			CU_ASSERT_TRUE(strcmp(f[i].name, f[j].name) != 0);
	}
	CU_ASSERT_PTR_EQUAL(egress_path_field("data_dot_timeout"),
	                    &f[EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_DATA_DOT]);
	CU_ASSERT_PTR_NULL(egress_path_field("nope"));
}

static void
test_parse_values(void)
{
	const config_setting_t *root =
	    load("p = { connection_limit = 3; connect_timeout = \"2min\"; rset_timeout = 7;"
	         " idle_timeout = \"1h 30m\"; enable_tls = \"requiredinsecure\"; ehlo_domain = "
	         "\"mta.x\";"
	         " max_message_rate = \"1,000/hr\"; prohibited_hosts = [ \"10.0.0.0/8\" ];"
	         " skip_hosts = [ \"192.0.2.1\" ]; smtp_port = 2525; suspended = true; };");
	struct egress_path p;
	struct buf errs;
	char text[128];

	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	buf_init(&errs, 0);
	egress_path_init(&p);
	UNIT_EXPECT_INT("problems",
	                egress_path_parse(&p, config_setting_get_member(root, "p"), NULL, &errs),
	                0);
	UNIT_EXPECT_STR("errs", errs.data != NULL ? errs.data : "", "");
	UNIT_EXPECT_INT("connection_limit", p.connection_limit, 3);
	UNIT_EXPECT_INT("connect_timeout", p.timeout[EGRESS_TIMEOUT_CONNECT], 120);
	UNIT_EXPECT_INT("rset_timeout", p.timeout[EGRESS_TIMEOUT_RSET], 7);
	UNIT_EXPECT_INT("banner_timeout untouched", p.timeout[EGRESS_TIMEOUT_BANNER], 60);
	UNIT_EXPECT_INT("idle_timeout", p.idle_timeout, 5400);
	UNIT_EXPECT_INT("enable_tls", p.enable_tls, TLS_REQUIRED_INSECURE);
	UNIT_EXPECT_STR("ehlo_domain", p.ehlo_domain, "mta.x");
	UNIT_EXPECT_INT("rate limit", p.max_message_rate.limit, 1000);
	UNIT_EXPECT_INT("rate period", p.max_message_rate.period_us, 3600ULL * 1000000);
	UNIT_EXPECT_INT("prohibited replaced: 127.0.0.1",
	                cidr_list_match_str(p.prohibited_hosts, "127.0.0.1"), 0);
	UNIT_EXPECT_INT("prohibited 10.1.2.3", cidr_list_match_str(p.prohibited_hosts, "10.1.2.3"),
	                1);
	UNIT_EXPECT_INT("skip", cidr_list_match_str(p.skip_hosts, "192.0.2.1"), 1);
	UNIT_EXPECT_INT("smtp_port", p.smtp_port, 2525);
	UNIT_EXPECT_INT("suspended", p.suspended, 1);
	CU_ASSERT_TRUE(p.set & (UINT64_C(1) << EGRESS_F_CONNECTION_LIMIT));
	CU_ASSERT_TRUE(p.set & (UINT64_C(1) << EGRESS_F_MAX_MESSAGE_RATE));
	CU_ASSERT_FALSE(p.set & (UINT64_C(1) << EGRESS_F_MAX_READY));
	egress_path_format(&p, EGRESS_F_IDLE_TIMEOUT, text, sizeof(text));
	UNIT_EXPECT_STR("format idle", text, "1h30m");
	egress_path_format(&p, EGRESS_F_ENABLE_TLS, text, sizeof(text));
	UNIT_EXPECT_STR("format tls", text, "RequiredInsecure");
	egress_path_format(&p, EGRESS_F_MAX_CONNECTION_RATE, text, sizeof(text));
	UNIT_EXPECT_STR("format unset rate", text, "unlimited");
	egress_path_release(&p);
	buf_release(&errs);
}

static void
test_parse_errors(void)
{
	/* Each row: a group body, the problem text that must appear. */
	static const struct {
		const char *body;
		const char *want;
	} rows[] = {
	    {"connection_limit = -1;", ":1: p.connection_limit: -1 is out of range"},
	    {"connection_limit = \"3\";", ":1: p.connection_limit: want an integer"},
	    {"max_message_rate = \"5/fortnight\";",
	     "p.max_message_rate: \"5/fortnight\": unknown period"},
	    {"enable_tls = \"Sometimes\";", "p.enable_tls: \"Sometimes\": unknown mode"},
	    {"frobnicate = 1;", "p.frobnicate: unknown key"},
	    {"openssl_cipher_list = \"x\";",
	     "p.openssl_cipher_list: unknown key (kumo uses GnuTLS"},
	    {"data_timeout = -5;", "p.data_timeout: -5: a duration cannot be negative"},
	    {"data_timeout = \"5 parsecs\";", "p.data_timeout: "},
	    {"prohibited_hosts = [ \"10.0.0.0/33\" ];", "p.prohibited_hosts.[0]: "},
	    {"prohibited_hosts = \"10.0.0.0/8\";", "p.prohibited_hosts: want a list"},
	    {"smtp_port = 70000;", "p.smtp_port: 70000 is out of range"},
	    {"suspended = 1;", "p.suspended: want true or false"},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		char text[256];
		const config_setting_t *root;
		struct egress_path p;
		struct buf errs;
		int n;

		snprintf(text, sizeof(text), "p = { %s };", rows[i].body);
		root = load(text);
		CU_ASSERT_PTR_NOT_NULL_FATAL(root);
		buf_init(&errs, 0);
		egress_path_init(&p);
		n = egress_path_parse(&p, config_setting_get_member(root, "p"), NULL, &errs);
		if (n != 1 || errs.data == NULL || strstr(errs.data, rows[i].want) == NULL)
			fprintf(stderr, "  row %zu: got %d problems \"%s\", want 1 with \"%s\"\n",
			        i, n, errs.data != NULL ? errs.data : "", rows[i].want);
		CU_ASSERT_EQUAL(n, 1);
		CU_ASSERT_TRUE(errs.data != NULL && strstr(errs.data, rows[i].want) != NULL);
		/* A refused value leaves the field unset. */
		UNIT_EXPECT_INT("set after error", p.set, 0);
		egress_path_release(&p);
		buf_release(&errs);
	}
}

static void
test_pool_wrr(void)
{
	const config_setting_t *root = load("p = { name = \"pool\"; entries = ( { name = \"A\"; "
	                                    "weight = 2; }, { name = \"B\"; } ); };");
	static const char *const want[] = {"A", "A", "B", "A", "A", "B", "A"};
	struct egress_pool p, u;
	struct buf errs;
	size_t i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	buf_init(&errs, 0);
	UNIT_EXPECT_INT("problems",
	                egress_pool_parse(&p, config_setting_get_member(root, "p"), &errs), 0);
	UNIT_EXPECT_INT("entries", p.n, 2);
	for (i = 0; i < KUMO_NELEM(want); i++) {
		char what[32];

		snprintf(what, sizeof(what), "pick %zu", i);
		UNIT_EXPECT_STR(what, egress_pool_next(&p), want[i]);
	}
	egress_pool_release(&p);
	egress_pool_init_unspecified(&u);
	UNIT_EXPECT_STR("unspecified pool", u.name, "unspecified");
	UNIT_EXPECT_STR("unspecified source", egress_pool_next(&u), "unspecified");
	UNIT_EXPECT_STR("unspecified again", egress_pool_next(&u), "unspecified");
	egress_pool_release(&u);
	/* A pool without entries or with a bad weight is an error. */
	root = load("p = { name = \"x\"; entries = ( { name = \"A\"; weight = 0; } ); };");
	CU_ASSERT_TRUE(egress_pool_parse(&p, config_setting_get_member(root, "p"), &errs) > 0);
	egress_pool_release(&p);
	root = load("p = { name = \"x\"; };");
	CU_ASSERT_TRUE(egress_pool_parse(&p, config_setting_get_member(root, "p"), &errs) > 0);
	egress_pool_release(&p);
	buf_release(&errs);
}

static void
test_source_and_precedence(void)
{
	const config_setting_t *root = load(
	    "s = { name = \"ip-1\"; source_address = \"127.0.0.2\"; ehlo_domain = \"src.example\";"
	    " remote_port = 2526; ttl = \"5 mins\"; };");
	struct egress_source s;
	struct egress_path p;
	struct buf errs;

	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	buf_init(&errs, 0);
	UNIT_EXPECT_INT("problems",
	                egress_source_parse(&s, config_setting_get_member(root, "s"), &errs), 0);
	UNIT_EXPECT_STR("name", s.name, "ip-1");
	UNIT_EXPECT_INT("family", s.source_sa.ss_family, AF_INET);
	UNIT_EXPECT_INT("ttl", s.ttl, 300);
	egress_path_init(&p);
	/* EHLO: path > source > hostname. Port: source's remote_port > smtp_port. */
	UNIT_EXPECT_STR("ehlo from source", egress_ehlo_domain(&p, &s, "host"), "src.example");
	UNIT_EXPECT_INT("port from source", egress_port(&p, &s), 2526);
	p.ehlo_domain = xstrdup("path.example");
	UNIT_EXPECT_STR("ehlo from path", egress_ehlo_domain(&p, &s, "host"), "path.example");
	s.remote_port = 0;
	UNIT_EXPECT_INT("port from path", egress_port(&p, &s), 25);
	UNIT_EXPECT_STR("ehlo hostname", egress_ehlo_domain(NULL, NULL, "host"), "host");
	egress_path_release(&p);
	egress_source_release(&s);
	root = load("s = { source_address = \"nope\"; bogus = 1; };");
	CU_ASSERT_EQUAL(egress_source_parse(&s, config_setting_get_member(root, "s"), &errs), 3);
	egress_source_release(&s);
	buf_release(&errs);
}

/* The seed's shaping.json example (002), as DESIGN.md writes it in libconfig. */
static const char shaping_text[] =
    "shaping = {\n"
    "  default = { connection_limit = 3; max_connection_rate = \"100/min\"; };\n"
    "  domains = (\n"
    "    { domain = \"yahoo.com\"; max_deliveries_per_connection = 5;\n"
    "      max_connection_rate = \"20/min\"; max_message_rate = \"50/s\"; },\n"
    "    { domain = \"foo.com\"; mx_rollup = false; max_message_rate = \"5/min\"; },\n"
    "    { domain = \"gmail.com\"; connection_limit = 3;\n"
    "      sources = ( { name = \"ip-1\"; connection_limit = 5; } ); }\n"
    "  );\n"
    "};\n";

static void
test_shaping_seed_example(void)
{
	const config_setting_t *root = load(shaping_text);
	struct egress_shaping sh;
	struct egress_path p;
	struct buf errs;
	char text[64];
	const char *yahoo_site = "(mta5|mta6|mta7).am0.yahoodns.net";

	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	buf_init(&errs, 0);
	egress_shaping_init(&sh);
	UNIT_EXPECT_INT(
	    "problems",
	    egress_shaping_parse(&sh, config_setting_get_member(root, "shaping"), &errs), 0);
	UNIT_EXPECT_INT("domains", sh.ndomains, 3);
	egress_shaping_set_site(&sh, "yahoo.com", yahoo_site);
	egress_shaping_set_site(&sh, "gmail.com",
	                        "(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com");

	/* foo.com is hosted on yahoo's MXs: the seed's worked answer. */
	egress_shaping_resolve(&sh, "foo.com", yahoo_site, "ip-1", &p);
	UNIT_EXPECT_INT("foo connection_limit", p.connection_limit, 3);
	UNIT_EXPECT_INT("foo max_deliveries", p.max_deliveries_per_connection, 5);
	egress_path_format(&p, EGRESS_F_MAX_CONNECTION_RATE, text, sizeof(text));
	UNIT_EXPECT_STR("foo max_connection_rate", text, "20/min");
	egress_path_format(&p, EGRESS_F_MAX_MESSAGE_RATE, text, sizeof(text));
	UNIT_EXPECT_STR("foo max_message_rate", text, "5/min");
	UNIT_EXPECT_STR("origin of connection_limit", p.origin[EGRESS_F_CONNECTION_LIMIT],
	                "default");
	UNIT_EXPECT_STR("origin of max_message_rate", p.origin[EGRESS_F_MAX_MESSAGE_RATE],
	                "domain:foo.com");
	UNIT_EXPECT_STR("origin of max_deliveries", p.origin[EGRESS_F_MAX_DELIVERIES],
	                "site:yahoo.com");
	UNIT_EXPECT_STR("origin of smtp_port", p.origin[EGRESS_F_SMTP_PORT], "builtin");
	egress_path_release(&p);

	/* Another domain on yahoo's site gets the site entry (mx_rollup), not foo's. */
	egress_shaping_resolve(&sh, "bar.com", yahoo_site, NULL, &p);
	egress_path_format(&p, EGRESS_F_MAX_MESSAGE_RATE, text, sizeof(text));
	UNIT_EXPECT_STR("bar max_message_rate", text, "50/s");
	egress_path_release(&p);

	/* gmail: the source override wins for ip-1 only. */
	egress_shaping_resolve(&sh, "gmail.com",
	                       "(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com", "ip-1", &p);
	UNIT_EXPECT_INT("gmail ip-1 connection_limit", p.connection_limit, 5);
	UNIT_EXPECT_STR("gmail ip-1 origin", p.origin[EGRESS_F_CONNECTION_LIMIT], "source:ip-1");
	egress_path_release(&p);
	egress_shaping_resolve(&sh, "googlemail.com",
	                       "(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com", "ip-2", &p);
	UNIT_EXPECT_INT("gmail-site ip-2 connection_limit", p.connection_limit, 3);
	UNIT_EXPECT_INT("gmail max_deliveries default", p.max_deliveries_per_connection, 1024);
	egress_path_release(&p);

	/* An unrelated domain: default over built-ins. */
	egress_shaping_resolve(&sh, "example.net", "mx.example.net", NULL, &p);
	UNIT_EXPECT_INT("other connection_limit", p.connection_limit, 3);
	egress_path_format(&p, EGRESS_F_MAX_CONNECTION_RATE, text, sizeof(text));
	UNIT_EXPECT_STR("other max_connection_rate", text, "100/min");
	egress_path_release(&p);
	egress_shaping_release(&sh);
	buf_release(&errs);
}

static void
test_shaping_errors(void)
{
	const config_setting_t *root =
	    load("shaping = { default = { bogus = 1; }; domains = ( { domain = \"a.com\"; },"
	         " { domain = \"A.com.\"; }, { connection_limit = 2; } ); other = 1; };");
	struct egress_shaping sh;
	struct buf errs;
	int n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	buf_init(&errs, 0);
	egress_shaping_init(&sh);
	n = egress_shaping_parse(&sh, config_setting_get_member(root, "shaping"), &errs);
	UNIT_EXPECT_INT("problems", n, 4);
	CU_ASSERT_TRUE(strstr(errs.data, "shaping.other: unknown key") != NULL);
	CU_ASSERT_TRUE(strstr(errs.data, "shaping.default.bogus: unknown key") != NULL);
	CU_ASSERT_TRUE(strstr(errs.data, "domain \"a.com\" is configured twice") != NULL);
	CU_ASSERT_TRUE(strstr(errs.data, "shaping.domains.[2]: domain: an entry needs a domain") !=
	               NULL);
	if (n != 4)
		fprintf(stderr, "%s", errs.data);
	egress_shaping_release(&sh);
	buf_release(&errs);
}

/* Every key's built-in default, as egress_path_format prints it (seed 001's values). */
static void
test_every_default(void)
{
	static const struct {
		int f;
		const char *want;
	} rows[] = {
	    {EGRESS_F_CONNECTION_LIMIT, "32"},
	    {EGRESS_F_CONSECUTIVE_FAILURES, "100"},
	    {EGRESS_F_EHLO_DOMAIN, "unset"},
	    {EGRESS_F_ENABLE_TLS, "Opportunistic"},
	    {EGRESS_F_ENABLE_MTA_STS, "true"},
	    {EGRESS_F_ENABLE_DANE, "false"},
	    {EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_CONNECT, "1m"},
	    {EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_BANNER, "1m"},
	    {EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_STARTTLS, "5s"},
	    {EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_EHLO, "5m"},
	    {EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_MAIL_FROM, "5m"},
	    {EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_RCPT_TO, "5m"},
	    {EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_DATA, "30s"},
	    {EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_DATA_DOT, "1m"},
	    {EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_RSET, "5s"},
	    {EGRESS_F_IDLE_TIMEOUT, "1m"},
	    {EGRESS_F_MAX_CONNECTION_RATE, "unlimited"},
	    {EGRESS_F_MAX_DELIVERIES, "1024"},
	    {EGRESS_F_MAX_MESSAGE_RATE, "unlimited"},
	    {EGRESS_F_MAX_READY, "1024"},
	    {EGRESS_F_PROHIBITED_HOSTS, "127.0.0.0/8, ::1"},
	    {EGRESS_F_SKIP_HOSTS, ""},
	    {EGRESS_F_SMTP_PORT, "25"},
	    {EGRESS_F_SMTP_AUTH_USERNAME, "unset"},
	    {EGRESS_F_SMTP_AUTH_PASSWORD, "unset"},
	    {EGRESS_F_ALLOW_AUTH_WITHOUT_TLS, "false"},
	    {EGRESS_F_SUSPENDED, "false"},
	    {EGRESS_F_AGGRESSIVE_OPENING, "false"},
	    {EGRESS_F_TLS_PREFER_OPENSSL, "false"},
	    {EGRESS_F_TLS_PRIORITY, TLS_DEFAULT_PRIORITY},
	    {EGRESS_F_RUSTLS_CIPHER_SUITES, "unset"},
	};
	struct egress_path p;
	char text[256];
	size_t i;
	int seen[EGRESS_PATH_NFIELDS] = {0};

	UNIT_EXPECT_INT("rows cover every field", KUMO_NELEM(rows), EGRESS_PATH_NFIELDS);
	egress_path_init(&p);
	for (i = 0; i < KUMO_NELEM(rows); i++) {
		char what[96];

		seen[rows[i].f]++;
		egress_path_format(&p, rows[i].f, text, sizeof(text));
		snprintf(what, sizeof(what), "default %s", egress_path_fields()[rows[i].f].name);
		UNIT_EXPECT_STR(what, text, rows[i].want);
		UNIT_EXPECT_STR("origin", p.origin[rows[i].f], "builtin");
	}
	for (i = 0; i < EGRESS_PATH_NFIELDS; i++)
		UNIT_EXPECT_INT(egress_path_fields()[i].name, seen[i], 1);
	UNIT_EXPECT_INT("allow auth without tls", p.allow_smtp_auth_plain_without_tls, 0);
	CU_ASSERT_PTR_NULL(p.smtp_auth_plain_username);
	CU_ASSERT_PTR_NULL(p.smtp_auth_plain_password.data);
	CU_ASSERT_PTR_NULL(p.tls_priority);
	CU_ASSERT_PTR_NULL(egress_path_tls_priority(&p));
	/* The table's documented default agrees with the seed for the numbers. */
	UNIT_EXPECT_STR("table def consecutive",
	                egress_path_fields()[EGRESS_F_CONSECUTIVE_FAILURES].def, "100");
	UNIT_EXPECT_STR("table def data_timeout",
	                egress_path_fields()[EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_DATA].def, "30s");
	egress_path_release(&p);
}

/* Every key parses from a libconfig snippet; the formatted value and the set bit prove it. */
static void
test_every_key_parses(void)
{
	static const struct {
		const char *body;
		int f;
		const char *want;
	} rows[] = {
	    {"connection_limit = 7;", EGRESS_F_CONNECTION_LIMIT, "7"},
	    {"connection_limit = 1;", EGRESS_F_CONNECTION_LIMIT, "1"},
	    {"consecutive_connection_failures_before_delay = 0;", EGRESS_F_CONSECUTIVE_FAILURES,
	     "0"},
	    {"consecutive_connection_failures_before_delay = 250;", EGRESS_F_CONSECUTIVE_FAILURES,
	     "250"},
	    {"ehlo_domain = \"mta1.example.com\";", EGRESS_F_EHLO_DOMAIN, "mta1.example.com"},
	    {"enable_tls = \"Disabled\";", EGRESS_F_ENABLE_TLS, "Disabled"},
	    {"enable_tls = \"Opportunistic\";", EGRESS_F_ENABLE_TLS, "Opportunistic"},
	    {"enable_tls = \"OpportunisticInsecure\";", EGRESS_F_ENABLE_TLS,
	     "OpportunisticInsecure"},
	    {"enable_tls = \"Required\";", EGRESS_F_ENABLE_TLS, "Required"},
	    {"enable_tls = \"RequiredInsecure\";", EGRESS_F_ENABLE_TLS, "RequiredInsecure"},
	    {"enable_mta_sts = false;", EGRESS_F_ENABLE_MTA_STS, "false"},
	    {"enable_dane = true;", EGRESS_F_ENABLE_DANE, "true"},
	    {"connect_timeout = 10;", EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_CONNECT, "10s"},
	    {"banner_timeout = \"2min\";", EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_BANNER, "2m"},
	    {"starttls_timeout = \"9s\";", EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_STARTTLS, "9s"},
	    {"ehlo_timeout = 1;", EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_EHLO, "1s"},
	    {"mail_from_timeout = \"1h\";", EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_MAIL_FROM, "1h"},
	    {"rcpt_to_timeout = 90;", EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_RCPT_TO, "1m30s"},
	    {"data_timeout = \"45 seconds\";", EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_DATA, "45s"},
	    {"data_dot_timeout = 600;", EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_DATA_DOT, "10m"},
	    {"rset_timeout = 3;", EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_RSET, "3s"},
	    {"idle_timeout = 0;", EGRESS_F_IDLE_TIMEOUT, "0s"},
	    {"idle_timeout = \"5 mins\";", EGRESS_F_IDLE_TIMEOUT, "5m"},
	    {"max_connection_rate = \"10/s\";", EGRESS_F_MAX_CONNECTION_RATE, "10/s"},
	    {"max_connection_rate = \"50/minute\";", EGRESS_F_MAX_CONNECTION_RATE, "50/min"},
	    {"max_deliveries_per_connection = 5;", EGRESS_F_MAX_DELIVERIES, "5"},
	    {"max_message_rate = \"10_000/d\";", EGRESS_F_MAX_MESSAGE_RATE, "10000/d"},
	    {"max_ready = 10;", EGRESS_F_MAX_READY, "10"},
	    {"prohibited_hosts = [ \"10.0.0.0/8\", \"2001:db8::/32\" ];", EGRESS_F_PROHIBITED_HOSTS,
	     "10.0.0.0/8, 2001:db8::/32"},
	    {"prohibited_hosts = [ ];", EGRESS_F_PROHIBITED_HOSTS, ""},
	    {"skip_hosts = [ \"192.0.2.1\" ];", EGRESS_F_SKIP_HOSTS, "192.0.2.1"},
	    {"smtp_port = 2525;", EGRESS_F_SMTP_PORT, "2525"},
	    {"smtp_port = 65535;", EGRESS_F_SMTP_PORT, "65535"},
	    {"smtp_auth_plain_username = \"scott\";", EGRESS_F_SMTP_AUTH_USERNAME, "scott"},
	    {"smtp_auth_plain_password = { key_data = \"tiger\"; };", EGRESS_F_SMTP_AUTH_PASSWORD,
	     "{ key_data = (hidden) }"},
	    {"allow_smtp_auth_plain_without_tls = true;", EGRESS_F_ALLOW_AUTH_WITHOUT_TLS, "true"},
	    {"suspended = true;", EGRESS_F_SUSPENDED, "true"},
	    {"aggressive_connection_opening = true;", EGRESS_F_AGGRESSIVE_OPENING, "true"},
	    {"tls_prefer_openssl = true;", EGRESS_F_TLS_PREFER_OPENSSL, "true"},
	    {"tls_priority = \"NORMAL:-VERS-ALL:+VERS-TLS1.3\";", EGRESS_F_TLS_PRIORITY,
	     "NORMAL:-VERS-ALL:+VERS-TLS1.3"},
	    {"rustls_cipher_suites = [ \"TLS13_AES_256_GCM_SHA384\", "
	     "\"tls13_chacha20_poly1305_sha256\" ];",
	     EGRESS_F_RUSTLS_CIPHER_SUITES,
	     "TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256"},
	};
	struct buf warns;
	size_t i;
	int covered[EGRESS_PATH_NFIELDS] = {0};

	buf_init(&warns, 0);
	egress_set_warnings(&warns);
	for (i = 0; i < KUMO_NELEM(rows); i++) {
		char text[512], what[160];
		const config_setting_t *root;
		struct egress_path p;
		struct buf errs;
		int n;

		snprintf(text, sizeof(text), "p = { %s };", rows[i].body);
		root = load(text);
		CU_ASSERT_PTR_NOT_NULL_FATAL(root);
		buf_init(&errs, 0);
		egress_path_init(&p);
		n = egress_path_parse(&p, config_setting_get_member(root, "p"), NULL, &errs);
		snprintf(what, sizeof(what), "row %zu (%s) problems", i, rows[i].body);
		UNIT_EXPECT_INT(what, n, 0);
		if (n != 0)
			fprintf(stderr, "  %s", errs.data);
		UNIT_EXPECT_INT("only its bit is set", p.set, UINT64_C(1) << rows[i].f);
		egress_path_format(&p, rows[i].f, text, sizeof(text));
		snprintf(what, sizeof(what), "row %zu (%s) value", i, rows[i].body);
		UNIT_EXPECT_STR(what, text, rows[i].want);
		covered[rows[i].f] = 1;
		egress_path_release(&p);
		buf_release(&errs);
	}
	for (i = 0; i < EGRESS_PATH_NFIELDS; i++) {
		char what[96];

		snprintf(what, sizeof(what), "a parse row for %s", egress_path_fields()[i].name);
		UNIT_EXPECT_INT(what, covered[i], 1);
	}
	/* The two no-effect keys warned, naming where. */
	CU_ASSERT_TRUE(
	    warns.data != NULL &&
	    strstr(warns.data, "(config):1: p.aggressive_connection_opening: deprecated") != NULL);
	CU_ASSERT_TRUE(warns.data != NULL &&
	               strstr(warns.data, "(config):1: p.tls_prefer_openssl: no effect") != NULL);
	egress_set_warnings(NULL);
	buf_release(&warns);
}

/* Every invalid value: one problem, "file:line: setting.path: problem", and nothing set. */
static void
test_every_error(void)
{
	static const struct {
		const char *body;
		const char *want;
	} rows[] = {
	    {"connection_limit = 0;",
	     "(config):2: p.connection_limit: 0 is out of range (1..1000000000)"},
	    {"connection_limit = -3;", "(config):2: p.connection_limit: -3 is out of range"},
	    {"connection_limit = 3.5;", "(config):2: p.connection_limit: want an integer"},
	    {"smtp_port = 70000;", "(config):2: p.smtp_port: 70000 is out of range (1..65535)"},
	    {"consecutive_connection_failures_before_delay = -1;",
	     "p.consecutive_connection_failures_before_delay: -1 is out of range (0..1000000000)"},
	    {"ehlo_domain = \"\";", "(config):2: p.ehlo_domain: want a non-empty string"},
	    {"ehlo_domain = 5;", "p.ehlo_domain: want a non-empty string"},
	    {"enable_tls = \"Always\";", "(config):2: p.enable_tls: \"Always\": unknown mode"},
	    {"enable_tls = true;", "p.enable_tls: not a string: unknown mode"},
	    {"enable_mta_sts = \"yes\";", "(config):2: p.enable_mta_sts: want true or false"},
	    {"enable_dane = 1;", "p.enable_dane: want true or false"},
	    {"connect_timeout = 0;", "(config):2: p.connect_timeout: 0: must be at least 1s"},
	    {"banner_timeout = \"0s\";", "p.banner_timeout: \"0s\": must be at least 1s"},
	    {"starttls_timeout = -1;", "p.starttls_timeout: -1: a duration cannot be negative"},
	    {"ehlo_timeout = 0;", "p.ehlo_timeout: 0: must be at least 1s"},
	    {"mail_from_timeout = 0;", "p.mail_from_timeout: 0: must be at least 1s"},
	    {"rcpt_to_timeout = \"soon\";", "(config):2: p.rcpt_to_timeout: "},
	    {"data_timeout = 0;", "p.data_timeout: 0: must be at least 1s"},
	    {"data_dot_timeout = true;", "p.data_dot_timeout: want seconds or a duration string"},
	    {"rset_timeout = 0;", "p.rset_timeout: 0: must be at least 1s"},
	    {"idle_timeout = -1;", "p.idle_timeout: -1: a duration cannot be negative"},
	    {"max_connection_rate = \"5/fortnight\";",
	     "(config):2: p.max_connection_rate: \"5/fortnight\": unknown period"},
	    {"max_connection_rate = 5;", "p.max_connection_rate: want a rate string"},
	    {"max_message_rate = \"many/s\";", "(config):2: p.max_message_rate: "},
	    {"max_deliveries_per_connection = 0;",
	     "p.max_deliveries_per_connection: 0 is out of range"},
	    {"max_ready = -1;", "p.max_ready: -1 is out of range"},
	    {"prohibited_hosts = [ \"300.1.1.1\" ];", "(config):2: p.prohibited_hosts.[0]: "},
	    {"skip_hosts = [ 5 ];", "p.skip_hosts.[0]: want a string"},
	    {"skip_hosts = \"10.0.0.1\";", "p.skip_hosts: want a list"},
	    {"smtp_port = 0;", "p.smtp_port: 0 is out of range"},
	    {"smtp_port = 65536;", "(config):2: p.smtp_port: 65536 is out of range"},
	    {"smtp_auth_plain_username = \"\";",
	     "p.smtp_auth_plain_username: want a non-empty string"},
	    {"smtp_auth_plain_password = \"tiger\";",
	     "(config):2: p.smtp_auth_plain_password: want a keysource"},
	    {"smtp_auth_plain_password = { };",
	     "p.smtp_auth_plain_password: want exactly one of key_data or key_file"},
	    {"smtp_auth_plain_password = { key_data = \"a\"; key_file = \"/b\"; };",
	     "p.smtp_auth_plain_password: want exactly one of key_data or key_file"},
	    {"smtp_auth_plain_password = { key_data = \"\"; };",
	     "p.smtp_auth_plain_password.key_data: want a non-empty string"},
	    {"smtp_auth_plain_password = { vault_mount = \"secret\"; vault_path = \"x\"; };",
	     "p.smtp_auth_plain_password.vault_mount: HashiCorp Vault keysources are not "
	     "supported"},
	    {"smtp_auth_plain_password = { key_file = \"/nonexistent/kumo-test-pw\"; };",
	     "p.smtp_auth_plain_password.key_file: key_file \"/nonexistent/kumo-test-pw\": cannot "
	     "read"},
	    {"smtp_auth_plain_password = { password = \"x\"; };",
	     "p.smtp_auth_plain_password.password: unknown keysource key"},
	    {"allow_smtp_auth_plain_without_tls = \"true\";",
	     "p.allow_smtp_auth_plain_without_tls: want true or false"},
	    {"suspended = 0;", "p.suspended: want true or false"},
	    {"aggressive_connection_opening = 1;",
	     "p.aggressive_connection_opening: want true or false"},
	    {"tls_prefer_openssl = \"no\";", "p.tls_prefer_openssl: want true or false"},
	    {"tls_priority = \"NORMAL:+NOT-A-THING\";",
	     "(config):2: p.tls_priority: \"NORMAL:+NOT-A-THING\": error at offset"},
	    {"tls_priority = \"\";", "p.tls_priority: want a GnuTLS priority string"},
	    {"rustls_cipher_suites = [ \"TLS13_AES_512_GCM\" ];",
	     "(config):2: p.rustls_cipher_suites.[0]: \"TLS13_AES_512_GCM\": unknown rustls cipher "
	     "suite"},
	    {"rustls_cipher_suites = [ ];", "p.rustls_cipher_suites: want at least one suite name"},
	    {"rustls_cipher_suites = \"TLS13_AES_256_GCM_SHA384\";",
	     "p.rustls_cipher_suites: want a list"},
	    {"openssl_cipher_list = \"HIGH\";",
	     "(config):2: p.openssl_cipher_list: unknown key (kumo uses GnuTLS: set the TLS 1.2 "
	     "ciphers in tls_priority"},
	    {"openssl_cipher_suites = \"TLS_AES_256_GCM_SHA384\";",
	     "p.openssl_cipher_suites: unknown key (kumo uses GnuTLS: set the TLS 1.3 suites in "
	     "tls_priority"},
	    {"openssl_options = \"NO_TLSV1\";",
	     "p.openssl_options: unknown key (kumo uses GnuTLS: set protocol versions and options "
	     "in tls_priority"},
	    {"openssl_whatever = 1;",
	     "p.openssl_whatever: unknown key (kumo uses GnuTLS: see tls_priority)"},
	    {"connection_limt = 3;", "(config):2: p.connection_limt: unknown key"},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		char text[512];
		const config_setting_t *root;
		struct egress_path p;
		struct buf errs;
		int n;

		snprintf(text, sizeof(text), "# line 1\np = { %s\n};", rows[i].body);
		root = load(text);
		CU_ASSERT_PTR_NOT_NULL_FATAL(root);
		buf_init(&errs, 0);
		egress_path_init(&p);
		n = egress_path_parse(&p, config_setting_get_member(root, "p"), NULL, &errs);
		if (n != 1 || errs.data == NULL || strstr(errs.data, rows[i].want) == NULL)
			fprintf(stderr, "  row %zu: got %d problems \"%s\", want 1 with \"%s\"\n",
			        i, n, errs.data != NULL ? errs.data : "", rows[i].want);
		CU_ASSERT_EQUAL(n, 1);
		CU_ASSERT_TRUE(errs.data != NULL && strstr(errs.data, rows[i].want) != NULL);
		UNIT_EXPECT_INT("set after error", p.set, 0);
		egress_path_release(&p);
		buf_release(&errs);
	}
	/* tls_priority and rustls_cipher_suites in one group: one problem naming the second. */
	{
		const config_setting_t *root =
		    load("p = { tls_priority = \"NORMAL\";\n rustls_cipher_suites = [ "
		         "\"TLS13_AES_128_GCM_SHA256\" ]; };");
		struct egress_path p;
		struct buf errs;

		buf_init(&errs, 0);
		egress_path_init(&p);
		UNIT_EXPECT_INT(
		    "both tls keys",
		    egress_path_parse(&p, config_setting_get_member(root, "p"), NULL, &errs), 1);
		CU_ASSERT_TRUE(errs.data != NULL &&
		               strstr(errs.data,
		                      "(config):2: p.rustls_cipher_suites: set tls_priority or "
		                      "rustls_cipher_suites, not both") != NULL);
		egress_path_release(&p);
		buf_release(&errs);
	}
}

/* Errors from a real file name the file and the line. */
static void
test_error_names_file(void)
{
	char path[] = "/tmp/test_egress_XXXXXX";
	int fd = mkstemp(path);
	FILE *f;
	config_t c;
	struct egress_shaping sh;
	struct buf errs;
	char want[256];

	CU_ASSERT_FATAL(fd >= 0);
	f = fdopen(fd, "w");
	fputs("shaping = {\n"
	      "  default = {\n"
	      "    connection_limit = 3;\n"
	      "    openssl_options = \"NO_TLSV1\";\n"
	      "    max_message_rate = \"5/fortnight\";\n"
	      "  };\n"
	      "  domains = ( { domain = \"x.test\";\n"
	      "    sources = ( { name = \"ip-1\"; smtp_port = 99999; } ); } );\n"
	      "};\n",
	      f);
	fclose(f);
	config_init(&c);
	CU_ASSERT_FATAL(config_read_file(&c, path) == CONFIG_TRUE);
	buf_init(&errs, 0);
	egress_shaping_init(&sh);
	UNIT_EXPECT_INT("problems", egress_shaping_parse(&sh, config_lookup(&c, "shaping"), &errs),
	                3);
	snprintf(want, sizeof(want),
	         "%s:4: shaping.default.openssl_options: unknown key (kumo uses GnuTLS", path);
	CU_ASSERT_TRUE(strstr(errs.data, want) != NULL);
	snprintf(want, sizeof(want),
	         "%s:5: shaping.default.max_message_rate: \"5/fortnight\": unknown period", path);
	CU_ASSERT_TRUE(strstr(errs.data, want) != NULL);
	snprintf(want, sizeof(want),
	         "%s:8: shaping.domains.[0].sources.[0].smtp_port: 99999 is out of range", path);
	CU_ASSERT_TRUE(strstr(errs.data, want) != NULL);
	if (strstr(errs.data, want) == NULL)
		fprintf(stderr, "%s", errs.data);
	egress_shaping_release(&sh);
	buf_release(&errs);
	config_destroy(&c);
	unlink(path);
}

static void
test_rustls_mapping(void)
{
	static const struct {
		const char *names[4];
		size_t n;
		const char *want;
	} rows[] = {
	    {{"TLS13_AES_256_GCM_SHA384"},
	     1,
	     "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-256-GCM"},
	    {{"TLS13_AES_128_GCM_SHA256"},
	     1,
	     "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM"},
	    {{"TLS13_CHACHA20_POLY1305_SHA256"},
	     1,
	     "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305"},
	    {{"TLS13_AES_256_GCM_SHA384", "TLS13_AES_128_GCM_SHA256",
	      "TLS13_CHACHA20_POLY1305_SHA256"},
	     3,
	     "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-"
	     "POLY1305"},
	    {{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
	     1,
	     "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:-KX-ALL:+ECDHE-RSA"},
	    {{"TLS13_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	      "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
	     3,
	     "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+CHACHA20-"
	     "POLY1305:"
	     "-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA"},
	};
	static const char *const every[] = {
	    "TLS13_AES_256_GCM_SHA384",
	    "TLS13_AES_128_GCM_SHA256",
	    "TLS13_CHACHA20_POLY1305_SHA256",
	    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
	    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
	    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
	    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
	};
	const char *bad[] = {"TLS13_AES_256_GCM_SHA384", "TLS_RSA_WITH_RC4_128_MD5"};
	size_t i;
	char *out, *err = NULL;
	const config_setting_t *root;
	struct egress_path p;
	struct buf errs;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		char *perr = NULL;

		UNIT_EXPECT_INT("map", egress_rustls_priority(rows[i].names, rows[i].n, &out, NULL),
		                0);
		UNIT_EXPECT_STR("priority", out, rows[i].want);
		/* GnuTLS itself accepts what the mapping builds. */
		UNIT_EXPECT_INT("gnutls accepts", tls_priority_check(out, &perr), 0);
		if (perr != NULL)
			fprintf(stderr, "  %s\n", perr);
		free(perr);
		free(out);
	}
	for (i = 0; i < KUMO_NELEM(every); i++) {
		UNIT_EXPECT_INT(every[i], egress_rustls_priority(&every[i], 1, &out, NULL), 0);
		UNIT_EXPECT_INT("gnutls accepts it", tls_priority_check(out, NULL), 0);
		free(out);
	}
	UNIT_EXPECT_INT("unknown suite", egress_rustls_priority(bad, 2, &out, &err), KUMO_EPARSE);
	CU_ASSERT_PTR_NULL(out);
	UNIT_EXPECT_STR("unknown suite text", err,
	                "\"TLS_RSA_WITH_RC4_128_MD5\": unknown rustls cipher suite");
	free(err);
	UNIT_EXPECT_INT("no suites", egress_rustls_priority(bad, 0, &out, NULL), KUMO_EPARSE);

	/* A path: rustls_cipher_suites gives the priority, tls_priority wins over it once merged.
	 */
	root = load("p = { rustls_cipher_suites = [ \"TLS13_AES_128_GCM_SHA256\" ]; };"
	            "q = { tls_priority = \"SECURE256\"; };");
	buf_init(&errs, 0);
	egress_path_init(&p);
	UNIT_EXPECT_INT(
	    "parse", egress_path_parse(&p, config_setting_get_member(root, "p"), NULL, &errs), 0);
	out = egress_path_tls_priority(&p);
	UNIT_EXPECT_STR("path priority", out,
	                "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM");
	free(out);
	{
		struct egress_path q;

		egress_path_init(&q);
		q.set = 0;
		UNIT_EXPECT_INT(
		    "parse q",
		    egress_path_parse(&q, config_setting_get_member(root, "q"), NULL, &errs), 0);
		egress_path_merge(&p, &q, "domain:x");
		out = egress_path_tls_priority(&p);
		UNIT_EXPECT_STR("tls_priority wins", out, "SECURE256");
		free(out);
		egress_path_release(&q);
	}
	egress_path_release(&p);
	buf_release(&errs);
}

static void
test_keysource(void)
{
	char path[] = "/tmp/test_egress_pw_XXXXXX";
	int fd = mkstemp(path);
	char text[512];
	const config_setting_t *root;
	struct egress_path p, c;
	struct buf errs;

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, "s3cret pass\n", 12) == 12);
	close(fd);
	buf_init(&errs, 0);

	/* key_data */
	root = load("p = { smtp_auth_plain_username = \"scott\"; smtp_auth_plain_password = { "
	            "key_data = \"tiger\"; }; };");
	egress_path_init(&p);
	UNIT_EXPECT_INT("key_data problems",
	                egress_path_parse(&p, config_setting_get_member(root, "p"), NULL, &errs),
	                0);
	UNIT_EXPECT_STR("key_data secret", p.smtp_auth_plain_password.data, "tiger");
	CU_ASSERT_PTR_NULL(p.smtp_auth_plain_password.key_file);
	UNIT_EXPECT_STR("username", p.smtp_auth_plain_username, "scott");
	egress_path_format(&p, EGRESS_F_SMTP_AUTH_PASSWORD, text, sizeof(text));
	CU_ASSERT_PTR_NULL(strstr(text, "tiger"));
	egress_path_release(&p);

	/* key_file: read at load time, the trailing newline dropped */
	snprintf(text, sizeof(text), "p = { smtp_auth_plain_password = { key_file = \"%s\"; }; };",
	         path);
	root = load(text);
	egress_path_init(&p);
	UNIT_EXPECT_INT("key_file problems",
	                egress_path_parse(&p, config_setting_get_member(root, "p"), NULL, &errs),
	                0);
	UNIT_EXPECT_STR("key_file secret", p.smtp_auth_plain_password.data, "s3cret pass");
	UNIT_EXPECT_STR("key_file path", p.smtp_auth_plain_password.key_file, path);
	egress_path_format(&p, EGRESS_F_SMTP_AUTH_PASSWORD, text, sizeof(text));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, path));
	CU_ASSERT_PTR_NULL(strstr(text, "s3cret"));
	/* deep copy and merge carry the secret */
	egress_path_copy(&c, &p);
	egress_path_release(&p);
	UNIT_EXPECT_STR("copied secret", c.smtp_auth_plain_password.data, "s3cret pass");
	egress_path_init(&p);
	egress_path_merge(&p, &c, "default");
	UNIT_EXPECT_STR("merged secret", p.smtp_auth_plain_password.data, "s3cret pass");
	UNIT_EXPECT_STR("merged origin", p.origin[EGRESS_F_SMTP_AUTH_PASSWORD], "default");
	egress_path_release(&c);
	egress_path_release(&p);

	/* an empty file and an unreadable one are errors naming the file */
	CU_ASSERT_FATAL(truncate(path, 0) == 0);
	snprintf(text, sizeof(text), "p = { smtp_auth_plain_password = { key_file = \"%s\"; }; };",
	         path);
	root = load(text);
	egress_path_init(&p);
	UNIT_EXPECT_INT("empty key_file",
	                egress_path_parse(&p, config_setting_get_member(root, "p"), NULL, &errs),
	                1);
	CU_ASSERT_TRUE(errs.data != NULL && strstr(errs.data, "is empty") != NULL);
	CU_ASSERT_PTR_NULL(p.smtp_auth_plain_password.data);
	egress_path_release(&p);
	unlink(path);
	buf_reset(&errs);
	egress_path_init(&p);
	UNIT_EXPECT_INT("missing key_file",
	                egress_path_parse(&p, config_setting_get_member(root, "p"), NULL, &errs),
	                1);
	snprintf(text, sizeof(text),
	         "(config):1: p.smtp_auth_plain_password.key_file: key_file \"%s\": cannot read",
	         path);
	CU_ASSERT_TRUE(errs.data != NULL && strstr(errs.data, text) != NULL);
	egress_path_release(&p);
	buf_release(&errs);
}

static void
test_source_keys(void)
{
	const config_setting_t *root =
	    load("s = { name = \"ip-1\"; source_address = \"127.0.0.2\"; ehlo_domain = "
	         "\"mta1.example.test\";"
	         " remote_port = 2526; ttl = \"5 mins\";"
	         " ha_proxy_server = \"127.0.0.1:5000\"; ha_proxy_source_address = \"10.0.0.1\"; };"
	         "t = { name = \"ip-2\"; socks5_proxy_server = \"[::1]:1080\";"
	         " socks5_proxy_source_address = \"2001:db8::5\"; ttl = 0; };");
	struct egress_source s, t, c;
	struct buf errs;
	char addr[INET6_ADDRSTRLEN];

	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	buf_init(&errs, 0);
	UNIT_EXPECT_INT("ha source",
	                egress_source_parse(&s, config_setting_get_member(root, "s"), &errs), 0);
	if (errs.data != NULL)
		fprintf(stderr, "%s", errs.data);
	UNIT_EXPECT_STR("ha server", s.ha_proxy_server, "127.0.0.1:5000");
	UNIT_EXPECT_INT("ha server family", s.ha_proxy_sa.ss_family, AF_INET);
	UNIT_EXPECT_INT("ha server port", ntohs(((struct sockaddr_in *)&s.ha_proxy_sa)->sin_port),
	                5000);
	UNIT_EXPECT_STR("ha source", s.ha_proxy_source_address, "10.0.0.1");
	inet_ntop(AF_INET, &((struct sockaddr_in *)&s.ha_proxy_source_sa)->sin_addr, addr,
	          sizeof(addr));
	UNIT_EXPECT_STR("ha source parsed", addr, "10.0.0.1");
	UNIT_EXPECT_INT("remote_port", s.remote_port, 2526);
	UNIT_EXPECT_INT("ttl", s.ttl, 300);
	CU_ASSERT_PTR_NULL(s.socks5_proxy_server);
	UNIT_EXPECT_INT("socks source",
	                egress_source_parse(&t, config_setting_get_member(root, "t"), &errs), 0);
	UNIT_EXPECT_STR("socks server", t.socks5_proxy_server, "[::1]:1080");
	UNIT_EXPECT_INT("socks family", t.socks5_proxy_sa.ss_family, AF_INET6);
	UNIT_EXPECT_INT("socks port", ntohs(((struct sockaddr_in6 *)&t.socks5_proxy_sa)->sin6_port),
	                1080);
	UNIT_EXPECT_INT("socks source family", t.socks5_proxy_source_sa.ss_family, AF_INET6);
	UNIT_EXPECT_INT("ttl 0", t.ttl, 0);
	UNIT_EXPECT_INT("no remote_port", t.remote_port, 0);
	egress_source_copy(&c, &t);
	egress_source_release(&t);
	UNIT_EXPECT_STR("copy socks", c.socks5_proxy_server, "[::1]:1080");
	UNIT_EXPECT_STR("copy socks source", c.socks5_proxy_source_address, "2001:db8::5");
	UNIT_EXPECT_INT("copy sa", c.socks5_proxy_sa.ss_family, AF_INET6);
	egress_source_release(&c);
	egress_source_release(&s);
	buf_release(&errs);
}

static void
test_source_errors(void)
{
	static const struct {
		const char *body;
		int n;
		const char *want;
	} rows[] = {
	    {"name = \"a\"; source_address = \"10.0.0.300\";", 1,
	     "(config):2: s.source_address: want an IPv4 or IPv6 address, not \"10.0.0.300\""},
	    {"name = \"a\"; source_address = 10;", 1,
	     "s.source_address: want an IPv4 or IPv6 address"},
	    {"name = \"a\"; ehlo_domain = \"\";", 1, "s.ehlo_domain: want a non-empty string"},
	    {"name = \"a\"; remote_port = 0;", 1,
	     "(config):2: s.remote_port: want a port number 1..65535"},
	    {"name = \"a\"; remote_port = 65536;", 1, "s.remote_port: want a port number 1..65535"},
	    {"name = \"a\"; ttl = -5;", 1, "s.ttl: -5: a duration cannot be negative"},
	    {"name = \"a\"; ttl = \"forever\";", 1, "s.ttl: "},
	    {"name = \"a\"; ha_proxy_server = \"10.0.0.1\"; ha_proxy_source_address = "
	     "\"10.0.0.2\";",
	     1,
	     "s.ha_proxy_server: want an IP address and a port, \"10.0.0.1:5000\" or "
	     "\"[2001:db8::1]:5000\", not \"10.0.0.1\""},
	    {"name = \"a\"; ha_proxy_server = \"10.0.0.1:0\"; ha_proxy_source_address = "
	     "\"10.0.0.2\";",
	     1, "s.ha_proxy_server: the port must be 1..65535, not \"10.0.0.1:0\""},
	    {"name = \"a\"; ha_proxy_server = \"10.0.0.1:70000\"; ha_proxy_source_address = "
	     "\"10.0.0.2\";",
	     1, "the port must be 1..65535"},
	    {"name = \"a\"; ha_proxy_server = \"proxy.example:5000\"; ha_proxy_source_address = "
	     "\"10.0.0.2\";",
	     1, "s.ha_proxy_server: want an IP address and a port"},
	    {"name = \"a\"; socks5_proxy_server = \"::1:1080\"; socks5_proxy_source_address = "
	     "\"10.0.0.2\";",
	     1,
	     "s.socks5_proxy_server: want an IP address and a port, \"10.0.0.1:5000\" or "
	     "\"[2001:db8::1]:5000\", not \"::1:1080\""},
	    {"name = \"a\"; socks5_proxy_server = \"[::1]1080\"; socks5_proxy_source_address = "
	     "\"10.0.0.2\";",
	     1,
	     "s.socks5_proxy_server: want an IP address and a port, \"10.0.0.1:5000\" or "
	     "\"[2001:db8::1]:5000\", not \"[::1]1080\""},
	    {"name = \"a\"; socks5_proxy_server = \"[::1]:\"; socks5_proxy_source_address = "
	     "\"10.0.0.2\";",
	     1, "not \"[::1]:\""},
	    {"name = \"a\"; ha_proxy_source_address = \"10.0.0.1:5\"; ha_proxy_server = "
	     "\"10.0.0.1:5\";",
	     1, "s.ha_proxy_source_address: want an IPv4 or IPv6 address, not \"10.0.0.1:5\""},
	    {"name = \"a\"; ha_proxy_server = \"10.0.0.1:5000\";", 1,
	     "(config):1: s: ha_proxy_server and ha_proxy_source_address must be set together"},
	    {"name = \"a\"; ha_proxy_source_address = \"10.0.0.1\";", 1,
	     "s: ha_proxy_server and ha_proxy_source_address must be set together"},
	    {"name = \"a\"; socks5_proxy_server = \"10.0.0.1:1080\";", 1,
	     "s: socks5_proxy_server and socks5_proxy_source_address must be set together"},
	    {"name = \"a\"; ha_proxy_server = \"10.0.0.1:5000\"; ha_proxy_source_address = "
	     "\"10.0.0.2\";"
	     " socks5_proxy_server = \"10.0.0.1:1080\"; socks5_proxy_source_address = "
	     "\"10.0.0.2\";",
	     1, "s: a source uses an HA proxy or a SOCKS5 proxy, not both"},
	    {"source_address = \"10.0.0.1\";", 1, "s: name: a source needs a name"},
	    {"name = \"a\"; socks5_proxy_username = \"u\";", 1,
	     "s: socks5_proxy_username and socks5_proxy_password must be set together"},
	    {"name = \"a\"; socks5_proxy_username = \"u\"; socks5_proxy_password = { key_data = \"p\"; };",
	     1, "s: socks5_proxy_username needs socks5_proxy_server"},
	    {"name = \"a\"; socks5_proxy_server = \"10.0.0.1:1080\"; socks5_proxy_source_address = "
	     "\"0.0.0.0\"; socks5_proxy_username = \"\"; socks5_proxy_password = { key_data = \"p\"; };",
	     1, "s.socks5_proxy_username: want a user name of 1 to 255 bytes"},
	    {"name = \"a\"; socks5_proxy_server = \"10.0.0.1:1080\"; socks5_proxy_source_address = "
	     "\"0.0.0.0\"; socks5_proxy_username = \"u\"; socks5_proxy_password = \"p\";",
	     1, "s.socks5_proxy_password: want a keysource"},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		char text[512];
		const config_setting_t *root;
		struct egress_source s;
		struct buf errs;
		int n;

		snprintf(text, sizeof(text), "s = {\n %s };", rows[i].body);
		root = load(text);
		CU_ASSERT_PTR_NOT_NULL_FATAL(root);
		buf_init(&errs, 0);
		n = egress_source_parse(&s, config_setting_get_member(root, "s"), &errs);
		if (n != rows[i].n || errs.data == NULL || strstr(errs.data, rows[i].want) == NULL)
			fprintf(stderr, "  row %zu: got %d problems \"%s\", want %d with \"%s\"\n",
			        i, n, errs.data != NULL ? errs.data : "", rows[i].n, rows[i].want);
		CU_ASSERT_EQUAL(n, rows[i].n);
		CU_ASSERT_TRUE(errs.data != NULL && strstr(errs.data, rows[i].want) != NULL);
		egress_source_release(&s);
		buf_release(&errs);
	}
}

/* Each level of the precedence, and the origin it records. */
static void
test_precedence_levels(void)
{
	const config_setting_t *root =
	    load("shaping = {\n"
	         "  default = { connection_limit = 2; smtp_port = 2525; idle_timeout = 30; };\n"
	         "  domains = (\n"
	         "    { domain = \"site.test\"; connection_limit = 4; max_ready = 50;\n"
	         "      sources = ( { name = \"ip-1\"; max_ready = 60; suspended = true; } ); },\n"
	         "    { domain = \"alias.test\"; mx_rollup = false; max_ready = 70; enable_tls = "
	         "\"Required\";\n"
	         "      sources = ( { name = \"ip-1\"; enable_tls = \"Disabled\"; },\n"
	         "                  { name = \"ip-2\"; max_ready = 80; } ); }\n"
	         "  );\n"
	         "};\n");
	static const struct {
		const char *domain, *source;
		int f;
		const char *value, *origin;
	} rows[] = {
	    /* builtin: nobody sets it */
	    {"other.test", NULL, EGRESS_F_MAX_DELIVERIES, "1024", "builtin"},
	    {"alias.test", "ip-2", EGRESS_F_MAX_DELIVERIES, "1024", "builtin"},
	    /* default */
	    {"other.test", NULL, EGRESS_F_CONNECTION_LIMIT, "2", "default"},
	    {"other.test", "ip-1", EGRESS_F_SMTP_PORT, "2525", "default"},
	    {"alias.test", "ip-1", EGRESS_F_IDLE_TIMEOUT, "30s", "default"},
	    /* site: by the entry's own domain and by any domain on its site */
	    {"site.test", NULL, EGRESS_F_CONNECTION_LIMIT, "4", "site:site.test"},
	    {"hosted.test", NULL, EGRESS_F_CONNECTION_LIMIT, "4", "site:site.test"},
	    {"alias.test", NULL, EGRESS_F_CONNECTION_LIMIT, "4", "site:site.test"},
	    /* domain with mx_rollup = false beats the site */
	    {"alias.test", NULL, EGRESS_F_MAX_READY, "70", "domain:alias.test"},
	    {"alias.test", "ip-3", EGRESS_F_ENABLE_TLS, "Required", "domain:alias.test"},
	    {"hosted.test", NULL, EGRESS_F_MAX_READY, "50", "site:site.test"},
	    /* source overrides beat both; the domain's beat the site's */
	    {"hosted.test", "ip-1", EGRESS_F_MAX_READY, "60", "source:ip-1"},
	    {"hosted.test", "ip-1", EGRESS_F_SUSPENDED, "true", "source:ip-1"},
	    {"hosted.test", "ip-2", EGRESS_F_SUSPENDED, "false", "builtin"},
	    /* the site's ip-1 override is a source override too: it beats the domain entry */
	    {"alias.test", "ip-1", EGRESS_F_MAX_READY, "60", "source:ip-1"},
	    {"alias.test", "ip-1", EGRESS_F_SUSPENDED, "true", "source:ip-1"},
	    {"alias.test", "ip-1", EGRESS_F_ENABLE_TLS, "Disabled", "source:ip-1"},
	    {"alias.test", "ip-2", EGRESS_F_MAX_READY, "80", "source:ip-2"},
	    {"alias.test", "ip-2", EGRESS_F_ENABLE_TLS, "Required", "domain:alias.test"},
	};
	struct egress_shaping sh;
	struct buf errs;
	size_t i;

	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	buf_init(&errs, 0);
	egress_shaping_init(&sh);
	UNIT_EXPECT_INT(
	    "problems",
	    egress_shaping_parse(&sh, config_setting_get_member(root, "shaping"), &errs), 0);
	egress_shaping_set_site(&sh, "site.test", "mx.site.test");
	egress_shaping_set_site(&sh, "alias.test", "mx.site.test");
	/* alias.test is on site.test's site, but with mx_rollup = false: no conflict. */
	UNIT_EXPECT_INT("sites", egress_shaping_check_sites(&sh, NULL), 0);
	for (i = 0; i < KUMO_NELEM(rows); i++) {
		struct egress_path p;
		char text[128], what[160];
		const char *site =
		    strcmp(rows[i].domain, "other.test") == 0 ? "mx.other.test" : "mx.site.test";

		egress_shaping_resolve(&sh, rows[i].domain, site, rows[i].source, &p);
		egress_path_format(&p, rows[i].f, text, sizeof(text));
		snprintf(what, sizeof(what), "row %zu %s/%s %s value", i, rows[i].domain,
		         rows[i].source != NULL ? rows[i].source : "-",
		         egress_path_fields()[rows[i].f].name);
		UNIT_EXPECT_STR(what, text, rows[i].value);
		snprintf(what, sizeof(what), "row %zu %s/%s %s origin", i, rows[i].domain,
		         rows[i].source != NULL ? rows[i].source : "-",
		         egress_path_fields()[rows[i].f].name);
		UNIT_EXPECT_STR(what, p.origin[rows[i].f], rows[i].origin);
		egress_path_release(&p);
	}
	egress_shaping_release(&sh);
	buf_release(&errs);
}

/* Seed 002: a domain on another configured site without mx_rollup = false is an error naming both.
 */
static void
test_site_conflict(void)
{
	const config_setting_t *root =
	    load("shaping = { domains = ( { domain = \"yahoo.com\"; connection_limit = 2; },"
	         " { domain = \"foo.com\"; max_message_rate = \"5/min\"; } ); };");
	struct egress_shaping sh;
	struct buf errs;
	char *err = NULL;

	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	buf_init(&errs, 0);
	egress_shaping_init(&sh);
	UNIT_EXPECT_INT(
	    "problems",
	    egress_shaping_parse(&sh, config_setting_get_member(root, "shaping"), &errs), 0);
	egress_shaping_set_site(&sh, "yahoo.com", "mta.am0.yahoodns.net");
	UNIT_EXPECT_INT("one site known", egress_shaping_check_sites(&sh, &err), 0);
	egress_shaping_set_site(&sh, "foo.com", "mta.am0.yahoodns.net");
	UNIT_EXPECT_INT("conflict", egress_shaping_check_sites(&sh, &err), KUMO_EINVAL);
	CU_ASSERT_TRUE(err != NULL && strstr(err, "\"foo.com\"") != NULL &&
	               strstr(err, "\"yahoo.com\"") != NULL &&
	               strstr(err, "mx_rollup = false") != NULL);
	free(err);
	egress_shaping_set_site(&sh, "foo.com", "mx.foo.com");
	UNIT_EXPECT_INT("moved away", egress_shaping_check_sites(&sh, NULL), 0);
	egress_shaping_release(&sh);
	buf_release(&errs);
}

/* The human and JSON forms of a merged path (what resolve-egress-path prints). */
static void
test_describe_and_json(void)
{
	const config_setting_t *root = load(shaping_text);
	struct egress_shaping sh;
	struct egress_path p;
	struct buf errs, out;
	json_t *j, *item;
	size_t i;
	int found = 0;
	const char *site = "(mta5|mta6|mta7).am0.yahoodns.net";

	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	buf_init(&errs, 0);
	buf_init(&out, 0);
	egress_shaping_init(&sh);
	UNIT_EXPECT_INT(
	    "problems",
	    egress_shaping_parse(&sh, config_setting_get_member(root, "shaping"), &errs), 0);
	egress_shaping_set_site(&sh, "yahoo.com", site);
	egress_shaping_resolve(&sh, "foo.com", site, NULL, &p);
	egress_path_describe(&p, &out);
	CU_ASSERT_TRUE(strstr(out.data, "connection_limit = 3  (from default)\n") != NULL);
	CU_ASSERT_TRUE(
	    strstr(out.data, "max_deliveries_per_connection = 5  (from site:yahoo.com)\n") != NULL);
	CU_ASSERT_TRUE(strstr(out.data, "max_connection_rate = 20/min  (from site:yahoo.com)\n") !=
	               NULL);
	CU_ASSERT_TRUE(strstr(out.data, "max_message_rate = 5/min  (from domain:foo.com)\n") !=
	               NULL);
	CU_ASSERT_TRUE(strstr(out.data, "smtp_port = 25  (from builtin)\n") != NULL);
	CU_ASSERT_TRUE(strstr(out.data, "data_timeout = 30s  (from builtin)\n") != NULL);
	if (strstr(out.data, "max_message_rate = 5/min  (from domain:foo.com)\n") == NULL)
		fprintf(stderr, "%s", out.data);
	{
		size_t lines = 0;
		const char *c;

		for (c = out.data; *c != '\0'; c++)
			lines += *c == '\n';
		UNIT_EXPECT_INT("one line per key", lines, EGRESS_PATH_NFIELDS);
	}

	j = egress_path_json(&p);
	CU_ASSERT_FATAL(json_is_array(j));
	UNIT_EXPECT_INT("json items", json_array_size(j), EGRESS_PATH_NFIELDS);
	json_array_foreach(j, i, item)
	{
		const char *key = json_string_value(json_object_get(item, "key"));
		json_t *v = json_object_get(item, "value");
		const char *origin = json_string_value(json_object_get(item, "origin"));

		CU_ASSERT_PTR_NOT_NULL(key);
		CU_ASSERT_PTR_NOT_NULL(origin);
		if (key == NULL || origin == NULL)
			continue;
		if (strcmp(key, "connection_limit") == 0) {
			UNIT_EXPECT_INT("json connection_limit", json_integer_value(v), 3);
			UNIT_EXPECT_STR("json origin", origin, "default");
			found++;
		} else if (strcmp(key, "max_message_rate") == 0) {
			UNIT_EXPECT_STR("json rate", json_string_value(v), "5/min");
			UNIT_EXPECT_STR("json rate origin", origin, "domain:foo.com");
			found++;
		} else if (strcmp(key, "idle_timeout") == 0) {
			UNIT_EXPECT_INT("json seconds", json_integer_value(v), 60);
			found++;
		} else if (strcmp(key, "enable_mta_sts") == 0) {
			CU_ASSERT_TRUE(json_is_true(v));
			found++;
		} else if (strcmp(key, "prohibited_hosts") == 0) {
			UNIT_EXPECT_INT("json cidr array", json_array_size(v), 2);
			UNIT_EXPECT_STR("json cidr", json_string_value(json_array_get(v, 1)),
			                "::1");
			found++;
		} else if (strcmp(key, "ehlo_domain") == 0 ||
		           strcmp(key, "smtp_auth_plain_password") == 0) {
			CU_ASSERT_TRUE(json_is_null(v));
			found++;
		}
	}
	UNIT_EXPECT_INT("json keys checked", found, 7);
	json_decref(j);
	egress_path_release(&p);
	egress_shaping_release(&sh);
	buf_release(&out);
	buf_release(&errs);
}

/* Write text to a fresh temporary file; path must hold "...XXXXXX". */
static void
write_temp(char *path, const char *text)
{
	int fd = mkstemp(path);
	size_t len = strlen(text);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(write(fd, text, len) == (ssize_t)len);
	close(fd);
}

/* The seed's shaping.json, as strict JSON, merges exactly like the libconfig form. */
static void
test_shaping_json(void)
{
	char path[] = "/tmp/test_egress_json_XXXXXX";
	struct egress_shaping sh;
	struct egress_path p;
	struct buf errs;
	char text[64];
	const char *yahoo_site = "(mta5|mta6|mta7).am0.yahoodns.net";

	write_temp(
	    path,
	    "{\n"
	    "  \"default\": { \"connection_limit\": 3, \"max_connection_rate\": \"100/min\" },\n"
	    "  \"yahoo.com\": { \"max_deliveries_per_connection\": 5, \"max_connection_rate\": "
	    "\"20/min\",\n"
	    "                 \"max_message_rate\": \"50/s\" },\n"
	    "  \"foo.com\": { \"mx_rollup\": false, \"max_message_rate\": \"5/min\" },\n"
	    "  \"gmail.com\": { \"connection_limit\": 3, \"sources\": { \"ip-1\": { "
	    "\"connection_limit\": 5 } } }\n"
	    "}\n");
	buf_init(&errs, 0);
	egress_shaping_init(&sh);
	UNIT_EXPECT_INT("json problems", egress_shaping_load_json(&sh, path, &errs), 0);
	if (errs.data != NULL)
		fprintf(stderr, "%s", errs.data);
	UNIT_EXPECT_INT("json domains", sh.ndomains, 3);
	egress_shaping_set_site(&sh, "yahoo.com", yahoo_site);
	egress_shaping_set_site(&sh, "gmail.com", "gmail-smtp-in.l.google.com");
	egress_shaping_resolve(&sh, "foo.com", yahoo_site, NULL, &p);
	UNIT_EXPECT_INT("json foo connection_limit", p.connection_limit, 3);
	UNIT_EXPECT_INT("json foo max_deliveries", p.max_deliveries_per_connection, 5);
	egress_path_format(&p, EGRESS_F_MAX_CONNECTION_RATE, text, sizeof(text));
	UNIT_EXPECT_STR("json foo max_connection_rate", text, "20/min");
	egress_path_format(&p, EGRESS_F_MAX_MESSAGE_RATE, text, sizeof(text));
	UNIT_EXPECT_STR("json foo max_message_rate", text, "5/min");
	UNIT_EXPECT_STR("json foo origin", p.origin[EGRESS_F_MAX_MESSAGE_RATE], "domain:foo.com");
	egress_path_release(&p);
	egress_shaping_resolve(&sh, "gmail.com", "gmail-smtp-in.l.google.com", "ip-1", &p);
	UNIT_EXPECT_INT("json gmail ip-1", p.connection_limit, 5);
	UNIT_EXPECT_STR("json gmail ip-1 origin", p.origin[EGRESS_F_CONNECTION_LIMIT],
	                "source:ip-1");
	egress_path_release(&p);
	egress_shaping_release(&sh);
	unlink(path);

	/* Problems name the file and the entry; syntax errors the line. */
	{
		static const struct {
			const char *json;
			int n;
			const char *want;
		} rows[] = {
		    {"{ \"default\": { \"connection_limit\": -1 } }", 1,
		     ":1: \"default\": connection_limit: -1 is out of range (1..1000000000)"},
		    {"{ \"yahoo.com\": { \"max_message_rate\": \"5/fortnight\" } }", 1,
		     ":1: \"yahoo.com\": max_message_rate: \"5/fortnight\": unknown period"},
		    {"{ \"a.com\": { \"sources\": { \"ip-1\": { \"smtp_port\": 0 } } } }", 1,
		     ":1: \"a.com\": sources.[0].smtp_port: 0 is out of range"},
		    {"{ \"a.com\": { \"openssl_options\": \"x\" } }", 1,
		     ":1: \"a.com\": openssl_options: unknown key (kumo uses GnuTLS"},
		    {"{ \"a.com\": { \"connection_limit\": null } }", 1,
		     ":1: \"a.com\": connection_limit: null is not a value"},
		    {"{ \"a.com\": { \"connection_limit\": 2.5 } }", 1,
		     ":1: \"a.com\": connection_limit: want an integer"},
		    {"{ \"a.com\": { \"bad key\": 1 } }", 1,
		     ":1: \"a.com\": \"bad key\": not a key kumo knows"},
		    {"{ \"a.com\": 5 }", 1, ":1: \"a.com\": want an object of path keys"},
		    {"{ \"a.com\": {}, \"A.com\": {} }", 1,
		     ":1: \"A.com\": domain \"a.com\" is configured twice"},
		    {"[ 1 ]", 1, ":1: want an object"},
		    /* the line is that of the offending key, inside its entry */
		    {"{\n \"b.com\": { \"max_message_rate\": \"1/s\" },\n \"a.com\": {\n"
		     "  \"connection_limit\": 3,\n  \"max_message_rate\": \"5/fortnight\"\n }\n}",
		     1, ":5: \"a.com\": max_message_rate: \"5/fortnight\""},
		    {"{\n \"a.com\": {\n  \"sources\": {\n   \"ip-1\": {\n    \"smtp_port\": 0 } } } }", 1,
		     ":5: \"a.com\": sources.[0].smtp_port: 0 is out of range"},
		    {"{\n \"a.com\": { \"connection_limit\": 3, }\n}", 1, ":2: "},
		    {"{ \"a.com\": {}, \"a.com\": {} }", 1, ":1: duplicate object key"},
		};
		size_t i;

		for (i = 0; i < KUMO_NELEM(rows); i++) {
			char jpath[] = "/tmp/test_egress_json_XXXXXX";
			char want[256];
			int n;

			write_temp(jpath, rows[i].json);
			buf_reset(&errs);
			egress_shaping_init(&sh);
			n = egress_shaping_load_json(&sh, jpath, &errs);
			snprintf(want, sizeof(want), "%s%s", jpath, rows[i].want);
			if (n != rows[i].n || errs.data == NULL || strstr(errs.data, want) == NULL)
				fprintf(stderr,
				        "  json row %zu: got %d \"%s\", want %d with \"%s\"\n", i,
				        n, errs.data != NULL ? errs.data : "", rows[i].n, want);
			CU_ASSERT_EQUAL(n, rows[i].n);
			CU_ASSERT_TRUE(errs.data != NULL && strstr(errs.data, want) != NULL);
			egress_shaping_release(&sh);
			unlink(jpath);
		}
	}
	buf_reset(&errs);
	egress_shaping_init(&sh);
	UNIT_EXPECT_INT("missing file",
	                egress_shaping_load_json(&sh, "/nonexistent/shaping.json", &errs), 1);
	CU_ASSERT_TRUE(errs.data != NULL &&
	               strstr(errs.data, "/nonexistent/shaping.json:") != NULL);
	egress_shaping_release(&sh);
	buf_release(&errs);
}

static void
test_merge_copy(void)
{
	struct egress_path a, b, c;

	egress_path_init(&a);
	egress_path_init(&b);
	b.set = 0;
	b.smtp_port = 2525;
	b.set |= UINT64_C(1) << EGRESS_F_SMTP_PORT;
	cidr_list_free(&b.skip_hosts);
	b.skip_hosts = cidr_list_new();
	cidr_list_add(b.skip_hosts, "192.0.2.0/24", NULL);
	b.set |= UINT64_C(1) << EGRESS_F_SKIP_HOSTS;
	b.connection_limit = 99; /* not set: must not be merged */
	egress_path_merge(&a, &b, "layer-b");
	UNIT_EXPECT_INT("port merged", a.smtp_port, 2525);
	UNIT_EXPECT_INT("limit not merged", a.connection_limit, 32);
	UNIT_EXPECT_STR("origin", a.origin[EGRESS_F_SMTP_PORT], "layer-b");
	egress_path_release(&b);
	/* a's skip list is its own copy. */
	UNIT_EXPECT_INT("skip copied", cidr_list_match_str(a.skip_hosts, "192.0.2.9"), 1);
	egress_path_copy(&c, &a);
	egress_path_release(&a);
	UNIT_EXPECT_INT("deep copy", cidr_list_match_str(c.skip_hosts, "192.0.2.9"), 1);
	UNIT_EXPECT_INT("deep copy prohibited", cidr_list_match_str(c.prohibited_hosts, "::1"), 1);
	egress_path_release(&c);
}

int
main(void)
{
	static const struct unit_test tests[] = {
	    {"seed defaults", test_defaults},
	    {"field table", test_field_table},
	    {"parse values", test_parse_values},
	    {"parse errors name file:line: setting", test_parse_errors},
	    {"pool weighted round-robin 2:1 gives A, A, B", test_pool_wrr},
	    {"source keys and EHLO/port precedence", test_source_and_precedence},
	    {"shaping: the seed's worked example", test_shaping_seed_example},
	    {"shaping errors", test_shaping_errors},
	    {"merge and deep copy", test_merge_copy},
	    {"every key's seed default", test_every_default},
	    {"every key parses", test_every_key_parses},
	    {"every invalid value names file:line: setting", test_every_error},
	    {"errors from a file name it", test_error_names_file},
	    {"rustls cipher suites map to GnuTLS", test_rustls_mapping},
	    {"keysource key_data and key_file", test_keysource},
	    {"source keys: proxies, ttl, ports", test_source_keys},
	    {"source errors", test_source_errors},
	    {"precedence and provenance at each level", test_precedence_levels},
	    {"a domain on another configured site", test_site_conflict},
	    {"describe and JSON forms", test_describe_and_json},
	    {"shaping.json: the seed's example and its errors", test_shaping_json},
	    {NULL, NULL},
	};
	int r;

	config_init(&cfg);
	r = unit_run("egress", tests);
	config_destroy(&cfg);
	return r;
}
