/*
 * egress.c: egress sources, pools and paths: the seeds' defaults, libconfig
 * parsing driven by one field table, the shaping merge with the origin of
 * every value, and its text and JSON forms. The only I/O is reading a
 * keysource's key_file at load time; the daemon asks for a merged path per
 * ready queue.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <libconfig.h>

#include "buf.h"
#include "cidr.h"
#include "cfg.h"
#include "duration.h"
#include "egress.h"
#include "kumo.h"
#include "log.h"
#include "throttle.h"
#include "tls.h"

#define OFF(m) offsetof(struct egress_path, m)

static const struct egress_field fields[EGRESS_PATH_NFIELDS] = {
    [EGRESS_F_CONNECTION_LIMIT] = {"connection_limit", EGRESS_T_INT, OFF(connection_limit), 1,
                                   "32"},
    [EGRESS_F_CONSECUTIVE_FAILURES] = {"consecutive_connection_failures_before_delay", EGRESS_T_INT,
                                       OFF(consecutive_connection_failures_before_delay), 0, "100"},
    [EGRESS_F_EHLO_DOMAIN] = {"ehlo_domain", EGRESS_T_STRING, OFF(ehlo_domain), 0,
                              "the source's ehlo_domain, else the host name"},
    [EGRESS_F_ENABLE_TLS] = {"enable_tls", EGRESS_T_TLS, OFF(enable_tls), 0, "Opportunistic"},
    [EGRESS_F_ENABLE_MTA_STS] = {"enable_mta_sts", EGRESS_T_BOOL, OFF(enable_mta_sts), 0, "true"},
    [EGRESS_F_ENABLE_DANE] = {"enable_dane", EGRESS_T_BOOL, OFF(enable_dane), 0, "false"},
    [EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_CONNECT] = {"connect_timeout", EGRESS_T_DURATION,
                                                    OFF(timeout[EGRESS_TIMEOUT_CONNECT]), 1, "60s"},
    [EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_BANNER] = {"banner_timeout", EGRESS_T_DURATION,
                                                   OFF(timeout[EGRESS_TIMEOUT_BANNER]), 1, "60s"},
    [EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_STARTTLS] = {"starttls_timeout", EGRESS_T_DURATION,
                                                     OFF(timeout[EGRESS_TIMEOUT_STARTTLS]), 1,
                                                     "5s"},
    [EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_EHLO] = {"ehlo_timeout", EGRESS_T_DURATION,
                                                 OFF(timeout[EGRESS_TIMEOUT_EHLO]), 1, "300s"},
    [EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_MAIL_FROM] = {"mail_from_timeout", EGRESS_T_DURATION,
                                                      OFF(timeout[EGRESS_TIMEOUT_MAIL_FROM]), 1,
                                                      "300s"},
    [EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_RCPT_TO] = {"rcpt_to_timeout", EGRESS_T_DURATION,
                                                    OFF(timeout[EGRESS_TIMEOUT_RCPT_TO]), 1,
                                                    "300s"},
    [EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_DATA] = {"data_timeout", EGRESS_T_DURATION,
                                                 OFF(timeout[EGRESS_TIMEOUT_DATA]), 1, "30s"},
    [EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_DATA_DOT] = {"data_dot_timeout", EGRESS_T_DURATION,
                                                     OFF(timeout[EGRESS_TIMEOUT_DATA_DOT]), 1,
                                                     "60s"},
    [EGRESS_F_TIMEOUT0 + EGRESS_TIMEOUT_RSET] = {"rset_timeout", EGRESS_T_DURATION,
                                                 OFF(timeout[EGRESS_TIMEOUT_RSET]), 1, "5s"},
    [EGRESS_F_IDLE_TIMEOUT] = {"idle_timeout", EGRESS_T_DURATION, OFF(idle_timeout), 0, "60s"},
    [EGRESS_F_MAX_CONNECTION_RATE] = {"max_connection_rate", EGRESS_T_RATE,
                                      OFF(max_connection_rate), 0, "unlimited"},
    [EGRESS_F_MAX_DELIVERIES] = {"max_deliveries_per_connection", EGRESS_T_INT,
                                 OFF(max_deliveries_per_connection), 1, "1024"},
    [EGRESS_F_MAX_MESSAGE_RATE] = {"max_message_rate", EGRESS_T_RATE, OFF(max_message_rate), 0,
                                   "unlimited"},
    [EGRESS_F_MAX_READY] = {"max_ready", EGRESS_T_INT, OFF(max_ready), 1, "1024"},
    [EGRESS_F_PROHIBITED_HOSTS] = {"prohibited_hosts", EGRESS_T_CIDR, OFF(prohibited_hosts), 0,
                                   "[ \"127.0.0.0/8\", \"::1\" ]"},
    [EGRESS_F_SKIP_HOSTS] = {"skip_hosts", EGRESS_T_CIDR, OFF(skip_hosts), 0, "[ ]"},
    [EGRESS_F_SMTP_PORT] = {"smtp_port", EGRESS_T_INT, OFF(smtp_port), 1, "25"},
    [EGRESS_F_SMTP_AUTH_USERNAME] = {"smtp_auth_plain_username", EGRESS_T_STRING,
                                     OFF(smtp_auth_plain_username), 0, "unset (no AUTH)"},
    [EGRESS_F_SMTP_AUTH_PASSWORD] = {"smtp_auth_plain_password", EGRESS_T_KEYSOURCE,
                                     OFF(smtp_auth_plain_password), 0, "unset"},
    [EGRESS_F_ALLOW_AUTH_WITHOUT_TLS] = {"allow_smtp_auth_plain_without_tls", EGRESS_T_BOOL,
                                         OFF(allow_smtp_auth_plain_without_tls), 0, "false"},
    [EGRESS_F_SUSPENDED] = {"suspended", EGRESS_T_BOOL, OFF(suspended), 0, "false"},
    [EGRESS_F_AGGRESSIVE_OPENING] = {"aggressive_connection_opening", EGRESS_T_BOOL,
                                     OFF(aggressive_connection_opening), 0, "false",
                                     "deprecated: it no longer has any effect"},
    [EGRESS_F_TLS_PREFER_OPENSSL] = {"tls_prefer_openssl", EGRESS_T_BOOL, OFF(tls_prefer_openssl),
                                     0, "false",
                                     "no effect: kumo's only TLS implementation is GnuTLS"},
    [EGRESS_F_TLS_PRIORITY] = {"tls_priority", EGRESS_T_PRIORITY, OFF(tls_priority), 0,
                               TLS_DEFAULT_PRIORITY},
    [EGRESS_F_RUSTLS_CIPHER_SUITES] = {"rustls_cipher_suites", EGRESS_T_SUITES,
                                       OFF(rustls_cipher_suites), 0, "unset"},
};

/*
 * The seed's OpenSSL keys have no GnuTLS meaning: each is refused with the
 * GnuTLS way to say the same thing. The text starts "unknown key (kumo uses
 * GnuTLS" as kumod's integration tests expect.
 */
static const struct {
	const char *name, *instead;
} refused[] = {
    {"openssl_cipher_list", "set the TLS 1.2 ciphers in tls_priority, a GnuTLS priority string "
                            "such as \"NORMAL:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM\""},
    {"openssl_cipher_suites", "set the TLS 1.3 suites in tls_priority (\"NORMAL:-CIPHER-ALL:"
                              "+AES-256-GCM\") or name them in rustls_cipher_suites"},
    {"openssl_options", "set protocol versions and options in tls_priority, a GnuTLS priority "
                        "string such as \"NORMAL:-VERS-ALL:+VERS-TLS1.3\""},
};

/*
 * rustls cipher suite names and the GnuTLS priority tokens that select the
 * same cipher. TLS 1.2 suites also pin the key exchange to ECDHE with the
 * named signature kind.
 */
static const struct {
	const char *name;
	const char *cipher; /* GnuTLS cipher token */
	const char *kx;     /* GnuTLS key exchange token; NULL for TLS 1.3 */
} rustls_suites[] = {
    {"TLS13_AES_256_GCM_SHA384", "AES-256-GCM", NULL},
    {"TLS13_AES_128_GCM_SHA256", "AES-128-GCM", NULL},
    {"TLS13_CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305", NULL},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "AES-256-GCM", "ECDHE-ECDSA"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "AES-128-GCM", "ECDHE-ECDSA"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305", "ECDHE-ECDSA"},
    {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "AES-256-GCM", "ECDHE-RSA"},
    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "AES-128-GCM", "ECDHE-RSA"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305", "ECDHE-RSA"},
};

/* The longest key_file accepted: a password, not a document. */
#define KEYSOURCE_MAX 4096

static const char *const tls_names[] = {
    [TLS_DISABLED] = "Disabled",
    [TLS_OPPORTUNISTIC] = "Opportunistic",
    [TLS_OPPORTUNISTIC_INSECURE] = "OpportunisticInsecure",
    [TLS_REQUIRED] = "Required",
    [TLS_REQUIRED_INSECURE] = "RequiredInsecure",
};

static const char builtin[] = "builtin";

static struct buf *warn_sink;

const struct egress_field *
egress_path_fields(void)
{
	return fields;
}

const struct egress_field *
egress_path_field(const char *name)
{
	size_t i;

	for (i = 0; i < EGRESS_PATH_NFIELDS; i++)
		if (strcmp(fields[i].name, name) == 0)
			return &fields[i];
	return NULL;
}

/*
 * The enable_tls names. tls_mode_parse() in lib/tls.c says the same; the
 * table is kept here because the formatter reads it too (tls_priority is
 * checked with lib/tls's tls_priority_check all the same).
 */
static int
tls_name_parse(const char *s, enum tls_mode *mode)
{
	size_t i;

	for (i = 0; i < KUMO_NELEM(tls_names); i++)
		if (strcasecmp(s, tls_names[i]) == 0) {
			*mode = (enum tls_mode)i;
			return 0;
		}
	return KUMO_EPARSE;
}

void
egress_config_error(struct buf *errs, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	const char *file = s != NULL ? config_setting_source_file(s) : NULL;

	buf_appendf(errs, "%s:%u: ", file != NULL ? file : "(config)",
	            s != NULL ? config_setting_source_line(s) : 0);
	if (s != NULL) {
		/* The same path form as lib/cfg: "shaping.domains.[2].connection_limit". */
		char *path = cfg_setting_path(s);

		if (path != NULL && *path != '\0') {
			buf_puts(errs, path);
			buf_puts(errs, ": ");
		}
		free(path);
	}
	va_start(ap, fmt);
	buf_vappendf(errs, fmt, ap);
	va_end(ap);
	buf_putc(errs, '\n');
}

static struct cidr_list *
cidr_dup(const struct cidr_list *l)
{
	struct cidr_list *n;
	char text[CIDR_FORMAT_MAX];
	size_t i;

	if (l == NULL)
		return NULL;
	n = cidr_list_new();
	for (i = 0; cidr_list_entry_format(l, i, text, sizeof(text)) == 0; i++)
		cidr_list_add(n, text, NULL);
	return n;
}

void
egress_path_init(struct egress_path *p)
{
	size_t i;
	static const uint64_t timeouts[EGRESS_NTIMEOUTS] = {60, 60, 5, 300, 300, 300, 30, 60, 5};

	memset(p, 0, sizeof(*p));
	p->connection_limit = 32;
	p->consecutive_connection_failures_before_delay = 100;
	p->enable_tls = TLS_OPPORTUNISTIC;
	p->enable_mta_sts = 1;
	for (i = 0; i < EGRESS_NTIMEOUTS; i++)
		p->timeout[i] = timeouts[i];
	p->idle_timeout = 60;
	p->max_deliveries_per_connection = 1024;
	p->max_ready = 1024;
	/* KumoMTA's default: refuse MXs on loopback, which would loop mail back. */
	p->prohibited_hosts = cidr_list_new();
	cidr_list_add(p->prohibited_hosts, "127.0.0.0/8", NULL);
	cidr_list_add(p->prohibited_hosts, "::1", NULL);
	p->smtp_port = 25;
	for (i = 0; i < EGRESS_PATH_NFIELDS; i++)
		p->origin[i] = builtin;
}

/* Forget a secret: overwrite it before freeing. */
static void
keysource_release(struct egress_keysource *k)
{
	if (k->data != NULL) {
		volatile char *v = k->data;

		while (*v != '\0')
			*v++ = '\0';
	}
	free(k->data);
	free(k->key_file);
	k->data = NULL;
	k->key_file = NULL;
}

static void
keysource_copy(struct egress_keysource *dst, const struct egress_keysource *src)
{
	keysource_release(dst);
	dst->data = src->data != NULL ? xstrdup(src->data) : NULL;
	dst->key_file = src->key_file != NULL ? xstrdup(src->key_file) : NULL;
}

void
egress_path_release(struct egress_path *p)
{
	free(p->ehlo_domain);
	p->ehlo_domain = NULL;
	cidr_list_free(&p->prohibited_hosts);
	cidr_list_free(&p->skip_hosts);
	free(p->smtp_auth_plain_username);
	p->smtp_auth_plain_username = NULL;
	keysource_release(&p->smtp_auth_plain_password);
	free(p->tls_priority);
	p->tls_priority = NULL;
	free(p->rustls_cipher_suites);
	p->rustls_cipher_suites = NULL;
}

void
egress_set_warnings(struct buf *warns)
{
	warn_sink = warns;
}

/* A warning about setting s: to the warnings buffer, else to the log. */
static void
config_warning(const config_setting_t *s, const char *what)
{
	struct buf line;

	buf_init(&line, 0);
	egress_config_error(&line, s, "%s", what);
	if (warn_sink != NULL)
		buf_puts(warn_sink, line.data);
	else {
		line.data[line.len - 1] = '\0'; /* the newline */
		log_warn("%s", line.data);
	}
	buf_release(&line);
}

/* Copy field f from src to dst (deep), freeing what dst held. */
static void
copy_field(struct egress_path *dst, const struct egress_path *src, int f)
{
	const struct egress_field *fd = &fields[f];
	char *d = (char *)dst + fd->offset;
	const char *s = (const char *)src + fd->offset;

	switch (fd->type) {
	case EGRESS_T_INT:
		memcpy(d, s, sizeof(long));
		break;
	case EGRESS_T_BOOL:
		memcpy(d, s, sizeof(int));
		break;
	case EGRESS_T_DURATION:
		memcpy(d, s, sizeof(uint64_t));
		break;
	case EGRESS_T_TLS:
		memcpy(d, s, sizeof(enum tls_mode));
		break;
	case EGRESS_T_RATE:
		memcpy(d, s, sizeof(struct throttle_spec));
		break;
	case EGRESS_T_STRING:
	case EGRESS_T_PRIORITY:
	case EGRESS_T_SUITES: {
		char **dp = (char **)(void *)d;
		char *const *sp = (char *const *)(const void *)s;

		free(*dp);
		*dp = *sp != NULL ? xstrdup(*sp) : NULL;
		break;
	}
	case EGRESS_T_CIDR: {
		struct cidr_list **dp = (struct cidr_list **)(void *)d;
		struct cidr_list *const *sp = (struct cidr_list *const *)(const void *)s;

		cidr_list_free(dp);
		*dp = cidr_dup(*sp);
		break;
	}
	case EGRESS_T_KEYSOURCE:
		keysource_copy((struct egress_keysource *)(void *)d,
		               (const struct egress_keysource *)(const void *)s);
		break;
	}
}

void
egress_path_copy(struct egress_path *dst, const struct egress_path *src)
{
	int f;

	memset(dst, 0, sizeof(*dst));
	for (f = 0; f < EGRESS_PATH_NFIELDS; f++) {
		copy_field(dst, src, f);
		dst->origin[f] = src->origin[f];
	}
	dst->set = src->set;
}

void
egress_path_merge(struct egress_path *dst, const struct egress_path *src, const char *origin)
{
	int f;

	for (f = 0; f < EGRESS_PATH_NFIELDS; f++) {
		if (!(src->set & (UINT64_C(1) << f)))
			continue;
		copy_field(dst, src, f);
		dst->set |= UINT64_C(1) << f;
		dst->origin[f] = origin != NULL ? origin : src->origin[f];
	}
}

/* Read a duration of at least min seconds: an integer of seconds, or a duration string. */
static int
get_duration(const config_setting_t *m, uint64_t *out, long min, struct buf *errs)
{
	char *err = NULL;
	uint64_t v;

	switch (config_setting_type(m)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64: {
		long long iv = config_setting_get_int64(m);

		if (iv < 0) {
			egress_config_error(errs, m, "%lld: a duration cannot be negative", iv);
			return 1;
		}
		if (iv < min) {
			egress_config_error(errs, m, "%lld: must be at least %lds", iv, min);
			return 1;
		}
		*out = (uint64_t)iv;
		return 0;
	}
	case CONFIG_TYPE_STRING:
		if (duration_parse(config_setting_get_string(m), &v, &err) != 0) {
			egress_config_error(errs, m, "%s", err != NULL ? err : "bad duration");
			free(err);
			return 1;
		}
		if (v < (uint64_t)min) {
			egress_config_error(errs, m, "\"%s\": must be at least %lds",
			                    config_setting_get_string(m), min);
			return 1;
		}
		*out = v;
		return 0;
	default:
		egress_config_error(errs, m, "want seconds or a duration string such as \"2min\"");
		return 1;
	}
}

static int
get_cidr(const config_setting_t *m, struct cidr_list **out, struct buf *errs)
{
	struct cidr_list *l;
	int i, n, bad = 0;

	if (config_setting_type(m) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(m) != CONFIG_TYPE_LIST) {
		egress_config_error(errs, m,
		                    "want a list of addresses or CIDR blocks, [ \"10.0.0.0/8\" ]");
		return 1;
	}
	l = cidr_list_new();
	n = config_setting_length(m);
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
		const char *s = config_setting_get_string(e);
		char *err = NULL;

		if (s == NULL) {
			egress_config_error(errs, e, "want a string such as \"10.0.0.0/8\"");
			bad++;
		} else if (cidr_list_add(l, s, &err) != 0) {
			egress_config_error(errs, e, "%s", err != NULL ? err : "bad CIDR block");
			free(err);
			bad++;
		}
	}
	if (bad) {
		cidr_list_free(&l);
		return bad;
	}
	cidr_list_free(out);
	*out = l;
	return 0;
}

/* Read a whole key_file (at most KEYSOURCE_MAX bytes, no NUL, one trailing newline dropped). */
static int
read_key_file(const config_setting_t *m, const char *path, char **out, struct buf *errs)
{
	FILE *f = fopen(path, "r");
	char *data;
	size_t n;

	if (f == NULL) {
		egress_config_error(errs, m, "key_file \"%s\": cannot read: %s", path,
		                    kumo_strerror(-errno));
		return 1;
	}
	data = xmalloc(KEYSOURCE_MAX + 2);
	n = fread(data, 1, KEYSOURCE_MAX + 1, f);
	if (ferror(f)) {
		egress_config_error(errs, m, "key_file \"%s\": cannot read: %s", path,
		                    kumo_strerror(-errno));
		goto fail;
	}
	if (n > KEYSOURCE_MAX) {
		egress_config_error(errs, m, "key_file \"%s\": longer than %d bytes", path,
		                    KEYSOURCE_MAX);
		goto fail;
	}
	data[n] = '\0';
	if (n > 0 && data[n - 1] == '\n')
		data[--n] = '\0';
	if (n > 0 && data[n - 1] == '\r')
		data[--n] = '\0';
	if (memchr(data, '\0', n) != NULL) {
		egress_config_error(errs, m, "key_file \"%s\": holds a NUL byte", path);
		goto fail;
	}
	if (n == 0) {
		egress_config_error(errs, m, "key_file \"%s\": is empty", path);
		goto fail;
	}
	fclose(f);
	*out = data;
	return 0;
fail:
	memset(data, 0, KEYSOURCE_MAX + 2);
	free(data);
	fclose(f);
	return 1;
}

/* A keysource group: { key_data = "..." } or { key_file = "/path" }. */
static int
get_keysource(const config_setting_t *m, struct egress_keysource *out, struct buf *errs)
{
	const config_setting_t *data, *file;
	struct egress_keysource k = {NULL, NULL};
	int i, n;

	if (!config_setting_is_group(m)) {
		egress_config_error(
		    errs, m,
		    "want a keysource { key_data = \"...\"; } or { key_file = \"/path\"; }");
		return 1;
	}
	n = config_setting_length(m);
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
		const char *name = config_setting_name(e);

		if (strncmp(name, "vault_", 6) == 0) {
			egress_config_error(
			    errs, e,
			    "HashiCorp Vault keysources are not supported (use key_data "
			    "or key_file)");
			return 1;
		}
		if (strcmp(name, "key_data") != 0 && strcmp(name, "key_file") != 0) {
			egress_config_error(errs, e,
			                    "unknown keysource key (want key_data or key_file)");
			return 1;
		}
	}
	data = config_setting_get_member(m, "key_data");
	file = config_setting_get_member(m, "key_file");
	if ((data == NULL) == (file == NULL)) {
		egress_config_error(errs, m, "want exactly one of key_data or key_file");
		return 1;
	}
	if (data != NULL) {
		const char *v = config_setting_get_string(data);

		if (v == NULL || *v == '\0') {
			egress_config_error(errs, data, "want a non-empty string");
			return 1;
		}
		k.data = xstrdup(v);
	} else {
		const char *v = config_setting_get_string(file);

		if (v == NULL || *v == '\0') {
			egress_config_error(errs, file, "want a file name");
			return 1;
		}
		if (read_key_file(file, v, &k.data, errs) != 0)
			return 1;
		k.key_file = xstrdup(v);
	}
	keysource_release(out);
	*out = k;
	return 0;
}

/* A GnuTLS priority string that gnutls accepts. */
static int
get_priority(const config_setting_t *m, char **out, struct buf *errs)
{
	const char *v = config_setting_get_string(m);
	char *err = NULL;

	if (v == NULL || *v == '\0') {
		egress_config_error(errs, m, "want a GnuTLS priority string such as \"%s\"",
		                    TLS_DEFAULT_PRIORITY);
		return 1;
	}
	if (tls_priority_check(v, &err) != 0) {
		egress_config_error(errs, m, "%s",
		                    err != NULL ? err : "not a GnuTLS priority string");
		free(err);
		return 1;
	}
	free(*out);
	*out = xstrdup(v);
	return 0;
}

static int
rustls_suite(const char *name)
{
	size_t i;

	for (i = 0; i < KUMO_NELEM(rustls_suites); i++)
		if (strcasecmp(rustls_suites[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* rustls_cipher_suites: a list of known suite names, kept canonical and joined by ", ". */
static int
get_suites(const config_setting_t *m, char **out, struct buf *errs)
{
	struct buf joined;
	int i, n, bad = 0;

	if (config_setting_type(m) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(m) != CONFIG_TYPE_LIST) {
		egress_config_error(errs, m,
		                    "want a list of suite names, [ \"TLS13_AES_256_GCM_SHA384\" ]");
		return 1;
	}
	n = config_setting_length(m);
	if (n == 0) {
		egress_config_error(errs, m, "want at least one suite name");
		return 1;
	}
	buf_init(&joined, 0);
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
		const char *v = config_setting_get_string(e);
		int k = v != NULL ? rustls_suite(v) : -1;

		if (k < 0) {
			egress_config_error(
			    errs, e,
			    "%s%s%s: unknown rustls cipher suite (known: TLS13_AES_256_GCM_SHA384, "
			    "TLS13_AES_128_GCM_SHA256, TLS13_CHACHA20_POLY1305_SHA256, "
			    "TLS_ECDHE_{ECDSA,RSA}_WITH_{AES_256_GCM_SHA384,AES_128_GCM_SHA256,"
			    "CHACHA20_POLY1305_SHA256})",
			    v != NULL ? "\"" : "", v != NULL ? v : "not a string",
			    v != NULL ? "\"" : "");
			bad++;
			continue;
		}
		if (joined.len > 0)
			buf_puts(&joined, ", ");
		buf_puts(&joined, rustls_suites[k].name);
	}
	if (bad == 0) {
		free(*out);
		*out = xstrdup(joined.data);
	}
	buf_release(&joined);
	return bad;
}

int
egress_rustls_priority(const char *const *names, size_t n, char **out, char **err_r)
{
	struct buf p;
	int tls13 = 0, tls12 = 0, k;
	size_t i, j;

	*out = NULL;
	if (n == 0) {
		if (err_r != NULL)
			*err_r = xstrdup("no rustls cipher suites");
		return KUMO_EPARSE;
	}
	for (i = 0; i < n; i++) {
		if ((k = rustls_suite(names[i])) < 0) {
			if (err_r != NULL)
				*err_r = xasprintf("\"%s\": unknown rustls cipher suite", names[i]);
			return KUMO_EPARSE;
		}
		if (rustls_suites[k].kx != NULL)
			tls12 = 1;
		else
			tls13 = 1;
	}
	/* rustls negotiates only the versions its suites belong to; so do we. */
	buf_init(&p, 0);
	buf_puts(&p, "NORMAL:-VERS-ALL");
	if (tls13)
		buf_puts(&p, ":+VERS-TLS1.3");
	if (tls12)
		buf_puts(&p, ":+VERS-TLS1.2");
	buf_puts(&p, ":-CIPHER-ALL");
	for (i = 0; i < n; i++) {
		const char *c = rustls_suites[rustls_suite(names[i])].cipher;
		int dup = 0;

		for (j = 0; j < i; j++)
			if (strcmp(rustls_suites[rustls_suite(names[j])].cipher, c) == 0)
				dup = 1;
		if (!dup)
			buf_appendf(&p, ":+%s", c);
	}
	if (tls12) {
		buf_puts(&p, ":-KX-ALL");
		for (i = 0; i < n; i++) {
			const char *x = rustls_suites[rustls_suite(names[i])].kx;
			int dup = 0;

			if (x == NULL)
				continue;
			for (j = 0; j < i; j++) {
				const char *y = rustls_suites[rustls_suite(names[j])].kx;

				if (y != NULL && strcmp(x, y) == 0)
					dup = 1;
			}
			if (!dup)
				buf_appendf(&p, ":+%s", x);
		}
	}
	*out = xstrdup(p.data);
	buf_release(&p);
	return 0;
}

char *
egress_path_tls_priority(const struct egress_path *p)
{
	char *names[KUMO_NELEM(rustls_suites) * 4];
	char *copy, *tok, *save = NULL, *out = NULL;
	size_t n = 0;

	if (p->tls_priority != NULL)
		return xstrdup(p->tls_priority);
	if (p->rustls_cipher_suites == NULL)
		return NULL;
	copy = xstrdup(p->rustls_cipher_suites);
	for (tok = strtok_r(copy, ", ", &save); tok != NULL && n < KUMO_NELEM(names);
	     tok = strtok_r(NULL, ", ", &save))
		names[n++] = tok;
	if (egress_rustls_priority((const char *const *)names, n, &out, NULL) != 0)
		out = NULL;
	free(copy);
	return out;
}

static int
in_list(const char *name, const char *const *list)
{
	for (; list != NULL && *list != NULL; list++)
		if (strcmp(name, *list) == 0)
			return 1;
	return 0;
}

int
egress_path_parse(struct egress_path *p, const config_setting_t *group, const char *const *other,
                  struct buf *errs)
{
	int i, n, bad = 0;

	if (!config_setting_is_group(group)) {
		egress_config_error(errs, group, "want a group { key = value; ... }");
		return 1;
	}
	n = config_setting_length(group);
	for (i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(m);
		const struct egress_field *fd;
		char *d;
		int f, before = bad;

		if (name == NULL || in_list(name, other))
			continue;
		fd = egress_path_field(name);
		if (fd == NULL) {
			size_t r;

			for (r = 0; r < KUMO_NELEM(refused); r++)
				if (strcmp(name, refused[r].name) == 0)
					break;
			if (r < KUMO_NELEM(refused))
				egress_config_error(errs, m, "unknown key (kumo uses GnuTLS: %s)",
				                    refused[r].instead);
			else if (strncmp(name, "openssl_", 8) == 0)
				egress_config_error(
				    errs, m, "unknown key (kumo uses GnuTLS: see tls_priority)");
			else
				egress_config_error(errs, m, "unknown key");
			bad++;
			continue;
		}
		f = (int)(fd - fields);
		d = (char *)p + fd->offset;
		switch (fd->type) {
		case EGRESS_T_INT:
			if (config_setting_type(m) != CONFIG_TYPE_INT &&
			    config_setting_type(m) != CONFIG_TYPE_INT64) {
				egress_config_error(errs, m, "want an integer");
				bad++;
			} else {
				long long v = config_setting_get_int64(m);
				long max = fd->offset == OFF(smtp_port) ? 65535 : 1000000000;

				if (v < fd->min || v > max) {
					egress_config_error(errs, m, "%lld is out of range (%ld..%ld)", v,
					                    fd->min, max);
					bad++;
				} else {
					long lv = (long)v;

					memcpy(d, &lv, sizeof(lv));
				}
			}
			break;
		case EGRESS_T_BOOL:
			if (config_setting_type(m) != CONFIG_TYPE_BOOL) {
				egress_config_error(errs, m, "want true or false");
				bad++;
			} else {
				int v = config_setting_get_bool(m);

				memcpy(d, &v, sizeof(v));
			}
			break;
		case EGRESS_T_DURATION: {
			uint64_t v;

			if (get_duration(m, &v, fd->min, errs) != 0)
				bad++;
			else
				memcpy(d, &v, sizeof(v));
			break;
		}
		case EGRESS_T_STRING: {
			const char *s = config_setting_get_string(m);
			char **dp = (char **)(void *)d;

			if (s == NULL || *s == '\0') {
				egress_config_error(errs, m, "want a non-empty string");
				bad++;
			} else {
				free(*dp);
				*dp = xstrdup(s);
			}
			break;
		}
		case EGRESS_T_TLS: {
			const char *s = config_setting_get_string(m);
			enum tls_mode mode;

			if (s == NULL || tls_name_parse(s, &mode) != 0) {
				egress_config_error(
				    errs, m,
				    "%s%s%s: unknown mode (want Disabled, Opportunistic, "
				    "OpportunisticInsecure, Required or RequiredInsecure)",
				    s != NULL ? "\"" : "", s != NULL ? s : "not a string",
				    s != NULL ? "\"" : "");
				bad++;
			} else
				memcpy(d, &mode, sizeof(mode));
			break;
		}
		case EGRESS_T_RATE: {
			const char *s = config_setting_get_string(m);
			struct throttle_spec spec;
			char *err = NULL;

			if (s == NULL) {
				egress_config_error(errs, m,
				                    "want a rate string such as \"100/min\"");
				bad++;
			} else if (throttle_parse(s, &spec, &err) != 0) {
				egress_config_error(errs, m, "%s", err != NULL ? err : "bad rate");
				free(err);
				bad++;
			} else
				memcpy(d, &spec, sizeof(spec));
			break;
		}
		case EGRESS_T_CIDR:
			if (get_cidr(m, (struct cidr_list **)(void *)d, errs) != 0)
				bad++;
			break;
		case EGRESS_T_KEYSOURCE:
			if (get_keysource(m, (struct egress_keysource *)(void *)d, errs) != 0)
				bad++;
			break;
		case EGRESS_T_PRIORITY:
			if (get_priority(m, (char **)(void *)d, errs) != 0)
				bad++;
			break;
		case EGRESS_T_SUITES:
			bad += get_suites(m, (char **)(void *)d, errs);
			break;
		}
		if (bad == before) {
			p->set |= UINT64_C(1) << f;
			if (fd->warn != NULL)
				config_warning(m, fd->warn);
		}
	}
	/* Two ways to say one thing in one group: refuse rather than guess. */
	if (config_setting_get_member(group, "tls_priority") != NULL &&
	    config_setting_get_member(group, "rustls_cipher_suites") != NULL &&
	    !in_list("tls_priority", other)) {
		egress_config_error(errs, config_setting_get_member(group, "rustls_cipher_suites"),
		                    "set tls_priority or rustls_cipher_suites, not both");
		bad++;
	}
	return bad;
}

void
egress_path_format(const struct egress_path *p, int f, char *out, size_t outlen)
{
	const struct egress_field *fd;
	const char *d;

	if (f < 0 || f >= EGRESS_PATH_NFIELDS) {
		snprintf(out, outlen, "?");
		return;
	}
	fd = &fields[f];
	d = (const char *)p + fd->offset;
	switch (fd->type) {
	case EGRESS_T_INT: {
		long v;

		memcpy(&v, d, sizeof(v));
		snprintf(out, outlen, "%ld", v);
		break;
	}
	case EGRESS_T_BOOL: {
		int v;

		memcpy(&v, d, sizeof(v));
		snprintf(out, outlen, "%s", v ? "true" : "false");
		break;
	}
	case EGRESS_T_DURATION: {
		uint64_t v;

		memcpy(&v, d, sizeof(v));
		duration_format(v, out, outlen);
		break;
	}
	case EGRESS_T_STRING:
	case EGRESS_T_PRIORITY:
	case EGRESS_T_SUITES: {
		char *const *v = (char *const *)(const void *)d;

		if (*v != NULL)
			snprintf(out, outlen, "%s", *v);
		else if (fd->type == EGRESS_T_PRIORITY)
			snprintf(out, outlen, "%s", TLS_DEFAULT_PRIORITY);
		else
			snprintf(out, outlen, "unset");
		break;
	}
	case EGRESS_T_KEYSOURCE: {
		const struct egress_keysource *k = (const struct egress_keysource *)(const void *)d;

		if (k->data == NULL)
			snprintf(out, outlen, "unset");
		else if (k->key_file != NULL)
			snprintf(out, outlen, "{ key_file = \"%s\" }", k->key_file);
		else
			snprintf(out, outlen, "{ key_data = (hidden) }");
		break;
	}
	case EGRESS_T_TLS: {
		enum tls_mode v;

		memcpy(&v, d, sizeof(v));
		snprintf(out, outlen, "%s",
		         (unsigned)v < KUMO_NELEM(tls_names) ? tls_names[v] : "?");
		break;
	}
	case EGRESS_T_RATE: {
		struct throttle_spec v;

		memcpy(&v, d, sizeof(v));
		if (!(p->set & (UINT64_C(1) << f)))
			snprintf(out, outlen, "unlimited");
		else
			throttle_spec_format(&v, out, outlen);
		break;
	}
	case EGRESS_T_CIDR: {
		struct cidr_list *const *v = (struct cidr_list *const *)(const void *)d;
		char *s = *v != NULL ? cidr_list_format(*v) : NULL;

		snprintf(out, outlen, "%s", s != NULL ? s : "");
		free(s);
		break;
	}
	}
}

void
egress_path_describe(const struct egress_path *p, struct buf *out)
{
	char text[1024];
	int f;

	for (f = 0; f < EGRESS_PATH_NFIELDS; f++) {
		egress_path_format(p, f, text, sizeof(text));
		buf_appendf(out, "%s = %s  (from %s)\n", fields[f].name, text,
		            p->origin[f] != NULL ? p->origin[f] : builtin);
	}
}

/* A ", "-separated list as a JSON array of strings. */
static json_t *
json_split(const char *s)
{
	json_t *a = json_array();
	char *copy = xstrdup(s), *tok, *save = NULL;

	for (tok = strtok_r(copy, ", ", &save); tok != NULL; tok = strtok_r(NULL, ", ", &save))
		json_array_append_new(a, json_string(tok));
	free(copy);
	return a;
}

/* Field f's value as JSON (see egress_path_json). */
static json_t *
field_json(const struct egress_path *p, int f)
{
	const struct egress_field *fd = &fields[f];
	const char *d = (const char *)p + fd->offset;
	char text[1024];

	switch (fd->type) {
	case EGRESS_T_INT: {
		long v;

		memcpy(&v, d, sizeof(v));
		return json_integer(v);
	}
	case EGRESS_T_BOOL: {
		int v;

		memcpy(&v, d, sizeof(v));
		return json_boolean(v);
	}
	case EGRESS_T_DURATION: {
		uint64_t v;

		memcpy(&v, d, sizeof(v));
		return json_integer((json_int_t)v);
	}
	case EGRESS_T_STRING:
	case EGRESS_T_PRIORITY: {
		char *const *v = (char *const *)(const void *)d;

		if (*v == NULL && fd->type == EGRESS_T_PRIORITY)
			return json_string(TLS_DEFAULT_PRIORITY);
		return *v != NULL ? json_string(*v) : json_null();
	}
	case EGRESS_T_SUITES: {
		char *const *v = (char *const *)(const void *)d;

		return *v != NULL ? json_split(*v) : json_null();
	}
	case EGRESS_T_RATE:
		if (!(p->set & (UINT64_C(1) << f)))
			return json_null();
		break;
	case EGRESS_T_CIDR: {
		struct cidr_list *const *v = (struct cidr_list *const *)(const void *)d;
		json_t *a = json_array();
		size_t i;

		for (i = 0; *v != NULL && cidr_list_entry_format(*v, i, text, sizeof(text)) == 0;
		     i++)
			json_array_append_new(a, json_string(text));
		return a;
	}
	case EGRESS_T_KEYSOURCE: {
		const struct egress_keysource *k = (const struct egress_keysource *)(const void *)d;

		if (k->data == NULL)
			return json_null();
		if (k->key_file != NULL)
			return json_pack("{s:s}", "key_file", k->key_file);
		return json_pack("{s:s}", "key_data", "(hidden)");
	}
	case EGRESS_T_TLS:
		break;
	}
	egress_path_format(p, f, text, sizeof(text));
	return json_string(text);
}

struct json_t *
egress_path_json(const struct egress_path *p)
{
	json_t *a = json_array();
	int f;

	for (f = 0; f < EGRESS_PATH_NFIELDS; f++)
		json_array_append_new(a, json_pack("{s:s,s:o,s:s}", "key", fields[f].name, "value",
		                                   field_json(p, f), "origin",
		                                   p->origin[f] != NULL ? p->origin[f] : builtin));
	return a;
}

/* ---- sources ---- */

void
egress_source_init(struct egress_source *s, const char *name)
{
	memset(s, 0, sizeof(*s));
	s->name = xstrdup(name != NULL ? name : EGRESS_POOL_UNSPECIFIED);
	s->ttl = 60;
}

void
egress_source_release(struct egress_source *s)
{
	free(s->name);
	free(s->source_address);
	free(s->ehlo_domain);
	free(s->ha_proxy_server);
	free(s->ha_proxy_source_address);
	free(s->socks5_proxy_server);
	free(s->socks5_proxy_source_address);
	free(s->socks5_proxy_username);
	keysource_release(&s->socks5_proxy_password);
	memset(s, 0, sizeof(*s));
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

void
egress_source_copy(struct egress_source *dst, const struct egress_source *src)
{
	*dst = *src;
	dst->name = xstrdup(src->name);
	dst->source_address = dup_or_null(src->source_address);
	dst->ehlo_domain = dup_or_null(src->ehlo_domain);
	dst->ha_proxy_server = dup_or_null(src->ha_proxy_server);
	dst->ha_proxy_source_address = dup_or_null(src->ha_proxy_source_address);
	dst->socks5_proxy_server = dup_or_null(src->socks5_proxy_server);
	dst->socks5_proxy_source_address = dup_or_null(src->socks5_proxy_source_address);
	dst->socks5_proxy_username = dup_or_null(src->socks5_proxy_username);
	memset(&dst->socks5_proxy_password, 0, sizeof(dst->socks5_proxy_password));
	keysource_copy(&dst->socks5_proxy_password, &src->socks5_proxy_password);
}

static int
parse_ip(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, s, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		return 0;
	}
	return KUMO_EPARSE;
}

/* "192.0.2.1:5000" or "[2001:db8::1]:5000": an IP literal and a port 1..65535. */
static int
parse_ip_port(const char *s, struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon, *hs = s, *he;
	char *end;
	unsigned long port;

	if (*s == '[') {
		he = strchr(s, ']');
		if (he == NULL || he[1] != ':')
			return KUMO_EPARSE;
		hs = s + 1;
		colon = he + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return KUMO_EPARSE; /* IPv6 needs brackets */
		he = colon;
	}
	if ((size_t)(he - hs) >= sizeof(host) || he == hs)
		return KUMO_EPARSE;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	if (colon[1] < '0' || colon[1] > '9')
		return KUMO_EPARSE;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || port < 1 || port > 65535)
		return KUMO_ERANGE;
	if (parse_ip(host, ss) != 0)
		return KUMO_EPARSE;
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
	return 0;
}

/* One of the source's address keys: an IP (with_port 0) or "ip:port" (with_port 1). */
static int
source_addr(const config_setting_t *m, int with_port, char **text, struct sockaddr_storage *ss,
            struct buf *errs)
{
	const char *str = config_setting_get_string(m);
	int r;

	if (str == NULL) {
		egress_config_error(errs, m,
		                    with_port ? "want \"address:port\" such as \"10.0.0.1:5000\""
		                              : "want an IPv4 or IPv6 address");
		return 1;
	}
	r = with_port ? parse_ip_port(str, ss) : parse_ip(str, ss);
	if (r == KUMO_ERANGE) {
		egress_config_error(errs, m, "the port must be 1..65535, not \"%s\"", str);
		return 1;
	}
	if (r != 0) {
		egress_config_error(errs, m,
		                    with_port
		                        ? "want an IP address and a port, \"10.0.0.1:5000\" or "
		                          "\"[2001:db8::1]:5000\", not \"%s\""
		                        : "want an IPv4 or IPv6 address, not \"%s\"",
		                    str);
		return 1;
	}
	free(*text);
	*text = xstrdup(str);
	return 0;
}

int
egress_source_parse(struct egress_source *s, const config_setting_t *group, struct buf *errs)
{
	int i, n, bad = 0;
	const char *name = NULL;

	if (!config_setting_is_group(group)) {
		egress_source_init(s, NULL);
		egress_config_error(errs, group, "want a group { name = \"...\"; ... }");
		return 1;
	}
	config_setting_lookup_string(group, "name", &name);
	if (name == NULL || *name == '\0') {
		egress_config_error(errs, group, "name: a source needs a name");
		bad++;
	}
	egress_source_init(s, name);
	n = config_setting_length(group);
	for (i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
		const char *key = config_setting_name(m);
		const char *str = config_setting_get_string(m);

		if (strcmp(key, "name") == 0)
			continue;
		if (strcmp(key, "source_address") == 0)
			bad += source_addr(m, 0, &s->source_address, &s->source_sa, errs);
		else if (strcmp(key, "ha_proxy_server") == 0)
			bad += source_addr(m, 1, &s->ha_proxy_server, &s->ha_proxy_sa, errs);
		else if (strcmp(key, "ha_proxy_source_address") == 0)
			bad += source_addr(m, 0, &s->ha_proxy_source_address,
			                   &s->ha_proxy_source_sa, errs);
		else if (strcmp(key, "socks5_proxy_server") == 0)
			bad +=
			    source_addr(m, 1, &s->socks5_proxy_server, &s->socks5_proxy_sa, errs);
		else if (strcmp(key, "socks5_proxy_source_address") == 0)
			bad += source_addr(m, 0, &s->socks5_proxy_source_address,
			                   &s->socks5_proxy_source_sa, errs);
		else if (strcmp(key, "socks5_proxy_username") == 0) {
			/* RFC 1929: 1 to 255 octets */
			if (str == NULL || *str == '\0' || strlen(str) > 255) {
				egress_config_error(errs, m, "want a user name of 1 to 255 bytes");
				bad++;
			} else
				s->socks5_proxy_username = xstrdup(str);
		} else if (strcmp(key, "socks5_proxy_password") == 0) {
			if (get_keysource(m, &s->socks5_proxy_password, errs) != 0)
				bad++;
			else if (strlen(s->socks5_proxy_password.data) > 255) {
				egress_config_error(errs, m, "a SOCKS5 password is at most 255 bytes (RFC 1929)");
				bad++;
			}
		} else if (strcmp(key, "ehlo_domain") == 0) {
			if (str == NULL || *str == '\0') {
				egress_config_error(errs, m, "want a non-empty string");
				bad++;
			} else
				s->ehlo_domain = xstrdup(str);
		} else if (strcmp(key, "remote_port") == 0) {
			int t = config_setting_type(m);
			long long v = config_setting_get_int64(m);

			if ((t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64) || v < 1 ||
			    v > 65535) {
				egress_config_error(errs, m, "want a port number 1..65535");
				bad++;
			} else
				s->remote_port = (long)v;
		} else if (strcmp(key, "ttl") == 0) {
			if (get_duration(m, &s->ttl, 0, errs) != 0)
				bad++;
		} else {
			egress_config_error(errs, m, "unknown key");
			bad++;
		}
	}
	/*
	 * The seed proxies only when both keys of a kind are given; one alone
	 * would silently send direct, so it is refused.
	 */
	if ((config_setting_get_member(group, "ha_proxy_server") != NULL) !=
	    (config_setting_get_member(group, "ha_proxy_source_address") != NULL)) {
		egress_config_error(
		    errs, group,
		    "ha_proxy_server and ha_proxy_source_address must be set together");
		bad++;
	}
	if ((config_setting_get_member(group, "socks5_proxy_server") != NULL) !=
	    (config_setting_get_member(group, "socks5_proxy_source_address") != NULL)) {
		egress_config_error(
		    errs, group,
		    "socks5_proxy_server and socks5_proxy_source_address must be set together");
		bad++;
	}
	if ((config_setting_get_member(group, "socks5_proxy_username") != NULL) !=
	    (config_setting_get_member(group, "socks5_proxy_password") != NULL)) {
		egress_config_error(
		    errs, group,
		    "socks5_proxy_username and socks5_proxy_password must be set together");
		bad++;
	} else if (config_setting_get_member(group, "socks5_proxy_username") != NULL &&
	           config_setting_get_member(group, "socks5_proxy_server") == NULL) {
		egress_config_error(errs, group,
		                    "socks5_proxy_username needs socks5_proxy_server");
		bad++;
	}
	if ((config_setting_get_member(group, "ha_proxy_server") != NULL ||
	     config_setting_get_member(group, "ha_proxy_source_address") != NULL) &&
	    (config_setting_get_member(group, "socks5_proxy_server") != NULL ||
	     config_setting_get_member(group, "socks5_proxy_source_address") != NULL)) {
		egress_config_error(errs, group,
		                    "a source uses an HA proxy or a SOCKS5 proxy, not both");
		bad++;
	}
	return bad;
}

const char *
egress_ehlo_domain(const struct egress_path *p, const struct egress_source *s, const char *hostname)
{
	if (p != NULL && p->ehlo_domain != NULL)
		return p->ehlo_domain;
	if (s != NULL && s->ehlo_domain != NULL)
		return s->ehlo_domain;
	return hostname;
}

int
egress_port(const struct egress_path *p, const struct egress_source *s)
{
	if (s != NULL && s->remote_port > 0)
		return (int)s->remote_port;
	return (int)p->smtp_port;
}

/* ---- pools ---- */

void
egress_pool_init_unspecified(struct egress_pool *p)
{
	memset(p, 0, sizeof(*p));
	p->name = xstrdup(EGRESS_POOL_UNSPECIFIED);
	p->entries = xcalloc(1, sizeof(*p->entries));
	p->entries[0].name = xstrdup(EGRESS_POOL_UNSPECIFIED);
	p->entries[0].weight = 1;
	p->n = 1;
}

void
egress_pool_release(struct egress_pool *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		free(p->entries[i].name);
	free(p->entries);
	free(p->name);
	memset(p, 0, sizeof(*p));
}

void
egress_pool_copy(struct egress_pool *dst, const struct egress_pool *src)
{
	size_t i;

	*dst = *src;
	dst->name = xstrdup(src->name);
	dst->entries = xcalloc(src->n ? src->n : 1, sizeof(*dst->entries));
	for (i = 0; i < src->n; i++) {
		dst->entries[i].name = xstrdup(src->entries[i].name);
		dst->entries[i].weight = src->entries[i].weight;
	}
}

int
egress_pool_parse(struct egress_pool *p, const config_setting_t *group, struct buf *errs)
{
	const config_setting_t *entries;
	const char *name = NULL;
	int i, n, bad = 0;

	memset(p, 0, sizeof(*p));
	if (!config_setting_is_group(group)) {
		egress_config_error(errs, group,
		                    "want a group { name = \"...\"; entries = ( ... ); }");
		return 1;
	}
	config_setting_lookup_string(group, "name", &name);
	if (name == NULL || *name == '\0') {
		egress_config_error(errs, group, "name: a pool needs a name");
		bad++;
	}
	p->name = xstrdup(name != NULL ? name : "");
	n = config_setting_length(group);
	for (i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
		const char *key = config_setting_name(m);

		if (strcmp(key, "name") != 0 && strcmp(key, "entries") != 0) {
			egress_config_error(errs, m, "unknown key");
			bad++;
		}
	}
	entries = config_setting_get_member(group, "entries");
	if (entries == NULL || !config_setting_is_aggregate(entries) ||
	    config_setting_length(entries) == 0) {
		egress_config_error(errs, entries != NULL ? entries : group,
		                    "entries: a pool needs at least one source");
		return bad + 1;
	}
	n = config_setting_length(entries);
	p->entries = xcalloc((size_t)n, sizeof(*p->entries));
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(entries, (unsigned)i);
		const char *sname = NULL;
		int weight = 1, j, en;

		if (!config_setting_is_group(e)) {
			egress_config_error(errs, e, "want { name = \"source\"; weight = 1; }");
			bad++;
			continue;
		}
		config_setting_lookup_string(e, "name", &sname);
		if (sname == NULL || *sname == '\0') {
			egress_config_error(errs, e, "name: an entry needs a source name");
			bad++;
			continue;
		}
		en = config_setting_length(e);
		for (j = 0; j < en; j++) {
			const config_setting_t *m = config_setting_get_elem(e, (unsigned)j);
			const char *key = config_setting_name(m);

			if (strcmp(key, "weight") == 0) {
				if (config_setting_type(m) != CONFIG_TYPE_INT ||
				    config_setting_get_int(m) < 1) {
					egress_config_error(errs, m, "want an integer >= 1");
					bad++;
				} else
					weight = config_setting_get_int(m);
			} else if (strcmp(key, "name") != 0) {
				egress_config_error(errs, m, "unknown key");
				bad++;
			}
		}
		p->entries[p->n].name = xstrdup(sname);
		p->entries[p->n].weight = (unsigned)weight;
		p->n++;
	}
	return bad;
}

const char *
egress_pool_next(struct egress_pool *p)
{
	const char *name;

	if (p->n == 0)
		return NULL;
	if (p->pos >= p->n)
		p->pos = 0, p->used = 0;
	name = p->entries[p->pos].name;
	if (++p->used >= p->entries[p->pos].weight) {
		p->used = 0;
		p->pos = (p->pos + 1) % p->n;
	}
	return name;
}

/* ---- shaping ---- */

void
egress_shaping_init(struct egress_shaping *sh)
{
	memset(sh, 0, sizeof(*sh));
	egress_path_init(&sh->deflt);
	sh->deflt.set = 0;
}

static void
domain_release(struct egress_shaping_domain *d)
{
	size_t j;

	free(d->domain);
	free(d->site_name);
	free(d->origin);
	free(d->where);
	egress_path_release(&d->path);
	for (j = 0; j < d->nsources; j++) {
		free(d->sources[j].name);
		free(d->sources[j].origin);
		egress_path_release(&d->sources[j].path);
	}
	free(d->sources);
}

void
egress_shaping_release(struct egress_shaping *sh)
{
	size_t i;

	egress_path_release(&sh->deflt);
	for (i = 0; i < sh->ndomains; i++)
		domain_release(&sh->domains[i]);
	free(sh->domains);
	memset(sh, 0, sizeof(*sh));
}

static char *
lower_dup(const char *s)
{
	char *r = xstrdup(s);
	char *p;

	for (p = r; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	/* A trailing dot names the same domain. */
	if (p > r && p[-1] == '.')
		p[-1] = '\0';
	return r;
}

static int
parse_domain_entry(struct egress_shaping_domain *d, const config_setting_t *e, struct buf *errs)
{
	static const char *const other[] = {"domain", "mx_rollup", "sources", NULL};
	static const char *const src_other[] = {"name", NULL};
	const config_setting_t *m;
	const char *name = NULL;
	int bad = 0, i, n;

	memset(d, 0, sizeof(*d));
	d->mx_rollup = 1;
	egress_path_init(&d->path);
	d->path.set = 0;
	if (!config_setting_is_group(e)) {
		egress_config_error(errs, e, "want { domain = \"example.com\"; ... }");
		d->domain = xstrdup("");
		d->origin = xstrdup("shaping");
		return 1;
	}
	if (config_setting_source_line(e) > 0)
		d->where = xasprintf("%s:%u",
		                     config_setting_source_file(e) != NULL ? config_setting_source_file(e)
		                                                           : "shaping",
		                     config_setting_source_line(e));
	config_setting_lookup_string(e, "domain", &name);
	if (name == NULL || *name == '\0') {
		egress_config_error(errs, e, "domain: an entry needs a domain");
		bad++;
	}
	d->domain = lower_dup(name != NULL ? name : "");
	if ((m = config_setting_get_member(e, "mx_rollup")) != NULL) {
		if (config_setting_type(m) != CONFIG_TYPE_BOOL) {
			egress_config_error(errs, m, "want true or false");
			bad++;
		} else
			d->mx_rollup = config_setting_get_bool(m);
	}
	/* A rollup entry speaks for its whole site; the others for one domain. */
	d->origin = xasprintf("%s:%s", d->mx_rollup ? "site" : "domain", d->domain);
	bad += egress_path_parse(&d->path, e, other, errs);
	if ((m = config_setting_get_member(e, "sources")) != NULL) {
		if (!config_setting_is_list(m)) {
			egress_config_error(errs, m, "want a list ( { name = \"ip-1\"; ... } )");
			return bad + 1;
		}
		n = config_setting_length(m);
		d->sources = xcalloc((size_t)n + 1, sizeof(*d->sources));
		for (i = 0; i < n; i++) {
			const config_setting_t *s = config_setting_get_elem(m, (unsigned)i);
			struct egress_shaping_source *ss = &d->sources[d->nsources];
			const char *sname = NULL;

			if (!config_setting_is_group(s)) {
				egress_config_error(errs, s, "want { name = \"ip-1\"; ... }");
				bad++;
				continue;
			}
			config_setting_lookup_string(s, "name", &sname);
			if (sname == NULL || *sname == '\0') {
				egress_config_error(errs, s,
				                    "name: a source override needs a name");
				bad++;
				continue;
			}
			ss->name = xstrdup(sname);
			ss->origin = xasprintf("source:%s", sname);
			egress_path_init(&ss->path);
			ss->path.set = 0;
			bad += egress_path_parse(&ss->path, s, src_other, errs);
			d->nsources++;
		}
	}
	return bad;
}

int
egress_shaping_parse(struct egress_shaping *sh, const config_setting_t *group, struct buf *errs)
{
	const config_setting_t *m;
	int bad = 0, i, n;

	if (!config_setting_is_group(group)) {
		egress_config_error(errs, group,
		                    "want a group { default = { ... }; domains = ( ... ); }");
		return 1;
	}
	n = config_setting_length(group);
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(group, (unsigned)i);
		const char *key = config_setting_name(e);

		if (strcmp(key, "default") != 0 && strcmp(key, "domains") != 0) {
			egress_config_error(errs, e, "unknown key (want default or domains)");
			bad++;
		}
	}
	if ((m = config_setting_get_member(group, "default")) != NULL)
		bad += egress_path_parse(&sh->deflt, m, NULL, errs);
	if ((m = config_setting_get_member(group, "domains")) != NULL) {
		if (!config_setting_is_list(m)) {
			egress_config_error(errs, m, "want a list ( { domain = \"...\"; ... } )");
			return bad + 1;
		}
		n = config_setting_length(m);
		sh->domains = xcalloc((size_t)n + 1, sizeof(*sh->domains));
		for (i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
			size_t j;

			bad += parse_domain_entry(&sh->domains[sh->ndomains], e, errs);
			for (j = 0; j < sh->ndomains; j++)
				if (strcmp(sh->domains[j].domain,
				           sh->domains[sh->ndomains].domain) == 0) {
					egress_config_error(errs, e,
					                    "domain \"%s\" is configured twice",
					                    sh->domains[j].domain);
					bad++;
				}
			sh->ndomains++;
		}
	}
	return bad;
}

/* Add JSON value v under parent (name NULL inside a list). Returns the number of problems. */
static int
json_to_setting(config_setting_t *parent, const char *name, json_t *v, struct buf *errs)
{
	config_setting_t *n;
	const char *key;
	json_t *m;
	size_t i;
	int bad = 0;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if ((n = config_setting_add(parent, name, CONFIG_TYPE_GROUP)) == NULL)
			goto badname;
		json_object_foreach(v, key, m) bad += json_to_setting(n, key, m, errs);
		return bad;
	case JSON_ARRAY:
		if ((n = config_setting_add(parent, name, CONFIG_TYPE_LIST)) == NULL)
			goto badname;
		json_array_foreach(v, i, m) bad += json_to_setting(n, NULL, m, errs);
		return bad;
	case JSON_STRING:
		if ((n = config_setting_add(parent, name, CONFIG_TYPE_STRING)) == NULL)
			goto badname;
		config_setting_set_string(n, json_string_value(v));
		return 0;
	case JSON_INTEGER:
		if ((n = config_setting_add(parent, name, CONFIG_TYPE_INT64)) == NULL)
			goto badname;
		config_setting_set_int64(n, json_integer_value(v));
		return 0;
	case JSON_REAL:
		if ((n = config_setting_add(parent, name, CONFIG_TYPE_FLOAT)) == NULL)
			goto badname;
		config_setting_set_float(n, json_real_value(v));
		return 0;
	case JSON_TRUE:
	case JSON_FALSE:
		if ((n = config_setting_add(parent, name, CONFIG_TYPE_BOOL)) == NULL)
			goto badname;
		config_setting_set_bool(n, json_is_true(v));
		return 0;
	case JSON_NULL:
		egress_config_error(errs, parent, "%s%snull is not a value",
		                    name != NULL ? name : "", name != NULL ? ": " : "");
		return 1;
	}
	return 0;
badname:
	egress_config_error(errs, parent, "\"%s\": not a key kumo knows", name != NULL ? name : "");
	return 1;
}

/*
 * Where "name": appears as a key in text, from offset from on: the offset
 * of its opening quote, or (size_t)-1. jansson does not keep the position
 * of values, so the line of a value's key is found in the text itself: the
 * first such key after the entry's own key, which is right for the
 * entry-per-object layout of shaping files.
 */
static size_t
json_key_at(const char *text, size_t len, size_t from, const char *name)
{
	size_t n = strlen(name), i;

	for (i = from; i + n + 2 <= len; i++) {
		size_t j;

		if (text[i] != '"' || memcmp(text + i + 1, name, n) != 0 || text[i + n + 1] != '"')
			continue;
		for (j = i + n + 2; j < len && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r' ||
		                                text[j] == '\n');
		     j++)
			;
		if (j < len && text[j] == ':')
			return i;
	}
	return (size_t)-1;
}

static int
json_line_of(const char *text, size_t off)
{
	int line = 1;
	size_t i;

	for (i = 0; i < off; i++)
		if (text[i] == '\n')
			line++;
	return line;
}

/*
 * Copy problems from tmp to errs, turning libconfig's "(config):0: entry"
 * prefix (the in-memory group built from JSON) into `path:line: "key"`,
 * the line being that of the problem's setting under this entry.
 */
static void
json_errors(struct buf *errs, const struct buf *tmp, const char *path, const char *key,
            const char *text, size_t len, size_t key_off)
{
	static const char prefix[] = "(config):0: entry";
	const char *line = tmp->data, *nl;

	while (line != NULL && *line != '\0') {
		const char *rest = line;
		size_t at = key_off;

		nl = strchr(line, '\n');
		if (nl == NULL)
			nl = line + strlen(line);
		if (strncmp(line, prefix, sizeof(prefix) - 1) == 0) {
			rest = line + sizeof(prefix) - 1;
			if (*rest == '.')
				rest++;
			else if (*rest == ':')
				rest += *rest != '\0' && rest[1] == ' ' ? 2 : 1;
		}
		/* "max_message_rate: ..." or "sources.[0].connection_limit: ...": the last name */
		if (key_off != (size_t)-1) {
			const char *colon = memchr(rest, ':', (size_t)(nl - rest)), *name = rest, *p;

			for (p = rest; colon != NULL && p < colon; p++)
				if (*p == '.')
					name = p + 1;
			if (colon != NULL && colon > name) {
				char *field = xstrndup(name, (size_t)(colon - name));
				size_t f = json_key_at(text, len, key_off + 1, field);

				if (f != (size_t)-1)
					at = f;
				free(field);
			}
		}
		if (key_off != (size_t)-1)
			buf_appendf(errs, "%s:%d: \"%s\": %.*s\n", path, json_line_of(text, at), key,
			            (int)(nl - rest), rest);
		else
			buf_appendf(errs, "%s: \"%s\": %.*s\n", path, key, (int)(nl - rest), rest);
		line = *nl != '\0' ? nl + 1 : nl;
	}
}

#define SHAPING_JSON_MAX (64u << 20) /* a shaping file larger than this is a mistake */

int
egress_shaping_load_json(struct egress_shaping *sh, const char *path, struct buf *errs)
{
	json_error_t jerr;
	json_t *root, *v;
	const char *key;
	struct buf text;
	FILE *fp;
	int bad = 0;

	fp = fopen(path, "r");
	if (fp == NULL) {
		buf_appendf(errs, "%s:0: %s\n", path, strerror(errno));
		return 1;
	}
	buf_init(&text, SHAPING_JSON_MAX);
	for (;;) {
		char *p = buf_reserve(&text, 65536);
		size_t n;

		if (p == NULL) {
			buf_appendf(errs, "%s:0: larger than %u MiB\n", path, SHAPING_JSON_MAX >> 20);
			fclose(fp);
			buf_release(&text);
			return 1;
		}
		n = fread(p, 1, 65536, fp);
		buf_commit(&text, n);
		if (n < 65536)
			break;
	}
	if (ferror(fp)) {
		buf_appendf(errs, "%s:0: read: %s\n", path, strerror(errno));
		fclose(fp);
		buf_release(&text);
		return 1;
	}
	fclose(fp);
	root = json_loadb(text.data != NULL ? text.data : "", text.len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		buf_appendf(errs, "%s:%d: %s (strict JSON: no comments, no trailing commas)\n", path,
		            jerr.line, jerr.text);
		buf_release(&text);
		return 1;
	}
	if (!json_is_object(root)) {
		buf_appendf(
		    errs, "%s:1: want an object { \"default\": { ... }, \"example.com\": { ... } }\n",
		    path);
		json_decref(root);
		buf_release(&text);
		return 1;
	}
	json_object_foreach(root, key, v)
	{
		config_t c;
		config_setting_t *entry;
		struct buf tmp;
		int n = 0;
		size_t key_off = json_key_at(text.data, text.len, 0, key);

		if (!json_is_object(v)) {
			buf_appendf(errs, "%s:%d: \"%s\": want an object of path keys\n", path,
			            key_off != (size_t)-1 ? json_line_of(text.data, key_off) : 0, key);
			bad++;
			continue;
		}
		config_init(&c);
		buf_init(&tmp, 0);
		if (strcmp(key, "default") == 0) {
			n += json_to_setting(config_root_setting(&c), "entry", v, &tmp);
			entry = config_lookup(&c, "entry");
			if (n == 0 && entry != NULL)
				n += egress_path_parse(&sh->deflt, entry, NULL, &tmp);
		} else {
			const char *mkey;
			json_t *m;
			struct egress_shaping_domain d;
			size_t j;

			entry =
			    config_setting_add(config_root_setting(&c), "entry", CONFIG_TYPE_GROUP);
			config_setting_set_string(
			    config_setting_add(entry, "domain", CONFIG_TYPE_STRING), key);
			json_object_foreach(v, mkey, m)
			{
				const char *sname;
				json_t *sv;
				config_setting_t *list;

				if (strcmp(mkey, "sources") != 0 || !json_is_object(m)) {
					n += json_to_setting(entry, mkey, m, &tmp);
					continue;
				}
				/* "sources": { "ip-1": { ... } } becomes ( { name = "ip-1"; ... }
				 * ). */
				list = config_setting_add(entry, "sources", CONFIG_TYPE_LIST);
				json_object_foreach(m, sname, sv)
				{
					config_setting_t *g =
					    config_setting_add(list, NULL, CONFIG_TYPE_GROUP);

					config_setting_set_string(
					    config_setting_add(g, "name", CONFIG_TYPE_STRING),
					    sname);
					if (!json_is_object(sv)) {
						egress_config_error(&tmp, g,
						                    "want an object of path keys");
						n++;
						continue;
					}
					json_object_foreach(sv, mkey, m) n +=
					    json_to_setting(g, mkey, m, &tmp);
				}
			}
			if (n == 0) {
				n += parse_domain_entry(&d, entry, &tmp);
				free(d.where);
				d.where = key_off != (size_t)-1
				              ? xasprintf("%s:%d", path, json_line_of(text.data, key_off))
				              : xstrdup(path);
				for (j = 0; j < sh->ndomains && n == 0; j++)
					if (strcmp(sh->domains[j].domain, d.domain) == 0) {
						buf_appendf(&tmp,
						            "(config):0: entry: domain \"%s\" is "
						            "configured twice\n",
						            d.domain);
						n++;
					}
				if (n == 0) {
					sh->domains = xreallocarray(sh->domains, sh->ndomains + 1,
					                            sizeof(*sh->domains));
					sh->domains[sh->ndomains++] = d;
				} else
					domain_release(&d);
			}
		}
		json_errors(errs, &tmp, path, key, text.data, text.len, key_off);
		bad += n;
		buf_release(&tmp);
		config_destroy(&c);
	}
	json_decref(root);
	buf_release(&text);
	return bad;
}

int
egress_shaping_set_site(struct egress_shaping *sh, const char *domain, const char *site)
{
	size_t i;
	int changed = 0;

	for (i = 0; i < sh->ndomains; i++) {
		struct egress_shaping_domain *d = &sh->domains[i];

		if (strcasecmp(d->domain, domain) != 0)
			continue;
		if ((d->site_name == NULL) != (site == NULL) ||
		    (site != NULL && strcmp(d->site_name, site) != 0))
			changed = 1;
		free(d->site_name);
		d->site_name = site != NULL ? xstrdup(site) : NULL;
	}
	return changed;
}

const struct egress_shaping_domain *
egress_shaping_own_domain(const struct egress_shaping *sh, const char *domain)
{
	size_t i;

	if (domain == NULL)
		return NULL;
	for (i = 0; i < sh->ndomains; i++)
		if (!sh->domains[i].mx_rollup && strcasecmp(sh->domains[i].domain, domain) == 0)
			return &sh->domains[i];
	return NULL;
}

int
egress_shaping_check_sites(const struct egress_shaping *sh, char **err_r)
{
	struct buf b;
	size_t i, j;
	int bad = 0;

	buf_init(&b, 0);
	for (i = 0; i < sh->ndomains; i++) {
		const struct egress_shaping_domain *a = &sh->domains[i];

		if (!a->mx_rollup || a->site_name == NULL)
			continue;
		for (j = i + 1; j < sh->ndomains; j++) {
			const struct egress_shaping_domain *b2 = &sh->domains[j];

			if (!b2->mx_rollup || b2->site_name == NULL ||
			    strcmp(a->site_name, b2->site_name) != 0)
				continue;
			bad++;
			buf_appendf(&b,
			            "%s: shaping: domain \"%s\" belongs to site %s, which domain \"%s\"%s%s%s "
			            "already configures; set mx_rollup = false on \"%s\" to shape it on its "
			            "own\n",
			            b2->where != NULL ? b2->where : "shaping", b2->domain, b2->site_name,
			            a->domain, a->where != NULL ? " (" : "", a->where != NULL ? a->where : "",
			            a->where != NULL ? ")" : "", b2->domain);
		}
	}
	if (bad == 0) {
		buf_release(&b);
		return 0;
	}
	if (b.len > 0 && b.data[b.len - 1] == '\n')
		b.data[--b.len] = '\0';
	if (err_r != NULL)
		*err_r = buf_steal(&b, NULL);
	else
		buf_release(&b);
	return KUMO_EINVAL;
}

static void
merge_sources(const struct egress_shaping_domain *d, const char *source, struct egress_path *out)
{
	size_t j;

	if (source == NULL)
		return;
	for (j = 0; j < d->nsources; j++)
		if (strcmp(d->sources[j].name, source) == 0)
			egress_path_merge(out, &d->sources[j].path, d->sources[j].origin);
}

void
egress_shaping_resolve(const struct egress_shaping *sh, const char *domain, const char *site,
                       const char *source, struct egress_path *out)
{
	const struct egress_shaping_domain *site_entry = NULL, *dom_entry = NULL;
	size_t i;

	egress_path_init(out);
	egress_path_merge(out, &sh->deflt, "default");
	for (i = 0; i < sh->ndomains; i++) {
		const struct egress_shaping_domain *d = &sh->domains[i];
		int same_domain = domain != NULL && strcasecmp(d->domain, domain) == 0;

		if (d->mx_rollup) {
			if (site_entry == NULL &&
			    (same_domain || (site != NULL && d->site_name != NULL &&
			                     strcmp(d->site_name, site) == 0)))
				site_entry = d;
		} else if (same_domain)
			dom_entry = d;
	}
	if (site_entry != NULL)
		egress_path_merge(out, &site_entry->path, site_entry->origin);
	if (dom_entry != NULL)
		egress_path_merge(out, &dom_entry->path, dom_entry->origin);
	/* Source overrides come last: the site's, then the domain's. */
	if (site_entry != NULL)
		merge_sources(site_entry, source, out);
	if (dom_entry != NULL)
		merge_sources(dom_entry, source, out);
}
