/*
 * tls-probe: look at a mail server's TLS the way a sending MTA does.
 * Subcommands: probe (one SMTP session: banner, EHLO, STARTTLS, the
 * handshake facts, the chain, PKIX, EHLO again), list-ciphers, ciphers (a
 * scan by handshakes offering one version / one suite at a time), mta-sts,
 * dane, and check (all of it for every MX host of a domain).
 *
 * Everything runs on one libuv loop driven synchronously: each step starts
 * an asynchronous operation (lib/conn, lib/dns) and turns the loop until it
 * finishes, bounded by the conn phase timer or the resolver timeout.
 * Results are built as JSON objects (jansson); --json prints each as one
 * line, otherwise the same object is printed as indented "key: value" text.
 *
 * Exit status: 0 every check passed, 1 a check failed, 2 usage or
 * environment error.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>
#include <uv.h>

#include "buf.h"
#include "conn.h"
#include "dane.h"
#include "dns.h"
#include "kumo.h"
#include "mtasts.h"
#include "smtp_proto.h"
#include "tls.h"

#define EXIT_OK 0
#define EXIT_CHECK 1
#define EXIT_USAGE 2

#define CHAIN_MAX 10

static struct {
	unsigned port;
	int port_set;
	const char *priority, *cafile, *cert, *key, *ehlo;
	int insecure, implicit_tls, json;
	unsigned timeout_ms;
	const char *forwarder, *trust_anchor, *connect_to;
} O = { 25, 0, NULL, NULL, NULL, NULL, "tls-probe.invalid", 0, 0, 0, 10000, NULL, NULL, NULL };

static uv_loop_t loop;
static struct dns_resolver *resolver;
static int check_failed;

/* ---------------------------------------------------------------- output */

static void
human(json_t *v, int indent, const char *key)
{
	const char *k;
	json_t *m;
	size_t i;

	if (json_is_object(v)) {
		if (key != NULL)
			printf("%*s%s:\n", indent, "", key);
		json_object_foreach(v, k, m) human(m, key ? indent + 2 : indent, k);
	} else if (json_is_array(v)) {
		if (json_array_size(v) == 0) {
			printf("%*s%s: (none)\n", indent, "", key ? key : "");
			return;
		}
		printf("%*s%s:\n", indent, "", key ? key : "");
		json_array_foreach(v, i, m) {
			if (json_is_object(m)) {
				printf("%*s- #%zu\n", indent + 2, "", i);
				human(m, indent + 4, NULL);
			} else {
				char *s = json_is_string(m) ? xstrdup(json_string_value(m))
							    : json_dumps(m, JSON_ENCODE_ANY);
				printf("%*s- %s\n", indent + 2, "", s ? s : "");
				free(s);
			}
		}
	} else if (json_is_string(v)) {
		printf("%*s%s: %s\n", indent, "", key ? key : "", json_string_value(v));
	} else {
		char *s = json_dumps(v, JSON_ENCODE_ANY);
		printf("%*s%s: %s\n", indent, "", key ? key : "", s ? s : "");
		free(s);
	}
}

/* Print one result object (one JSON line or indented text) and free it. */
static void
emit(json_t *o)
{
	if (O.json) {
		char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (s != NULL)
			printf("%s\n", s);
		free(s);
	} else {
		human(o, 0, NULL);
		printf("\n");
	}
	fflush(stdout);
	json_decref(o);
}

/*
 * A JSON string from bytes a peer chose: control characters (and, unless
 * the whole text is valid UTF-8, every byte above 0x7e) become \xNN, so
 * neither the JSON nor the terminal gets anything raw. Never NULL.
 */
static json_t *
jstr(const char *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	json_t *probe = json_stringn(p, n);
	int utf8_ok = probe != NULL;
	struct buf b;
	size_t i;
	json_t *j;

	json_decref(probe);
	buf_init(&b, 0);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == 0x7f || (c > 0x7e && !utf8_ok)) {
			buf_puts(&b, "\\x");
			buf_putc(&b, hex[c >> 4]);
			buf_putc(&b, hex[c & 15]);
		} else {
			buf_putc(&b, c);
		}
	}
	j = json_stringn(b.data ? b.data : "", b.len);
	buf_release(&b);
	return j != NULL ? j : json_string("?");
}

static json_t *
jstrz(const char *s)
{
	return jstr(s ? s : "", s ? strlen(s) : 0);
}

static void
set_str(json_t *o, const char *k, const char *v)
{
	json_object_set_new(o, k, jstrz(v));
}

static void
set_fmt(json_t *o, const char *k, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
set_fmt(json_t *o, const char *k, const char *fmt, ...)
{
	va_list ap;
	char tmp[1024];

	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	json_object_set_new(o, k, jstrz(tmp));
}

/* ---------------------------------------------------------------- DNS */

struct dwait {
	int done;
	struct dns_result *r;
};

static void
dns_done(const struct dns_result *r, void *arg)
{
	struct dwait *w = arg;

	w->r = dns_result_dup(r);
	w->done = 1;
}

static int
resolver_init(void)
{
	static const char *fwd[2];
	struct dns_options dopts;
	char *err = NULL;

	if (resolver != NULL)
		return 0;
	memset(&dopts, 0, sizeof(dopts));
	if (O.forwarder != NULL) {
		fwd[0] = O.forwarder;
		dopts.forwarders = fwd;
	}
	dopts.trust_anchor_file = O.trust_anchor;
	if (O.trust_anchor == NULL && access("/usr/share/dns/root.key", R_OK) == 0)
		dopts.trust_anchor_file = "/usr/share/dns/root.key";
	if (O.trust_anchor != NULL && strcmp(O.trust_anchor, "none") == 0)
		dopts.trust_anchor_file = NULL; /* no validation: nothing is secure */
	dopts.timeout_ms = O.timeout_ms;
	resolver = dns_resolver_new(&loop, &dopts, &err);
	if (resolver == NULL) {
		fprintf(stderr, "tls-probe: resolver: %s\n", err ? err : "failed");
		free(err);
		return -1;
	}
	return 0;
}

/* Run one query to completion. kind: 'm' MX, 'a' addresses, else rrtype. Caller frees. */
static struct dns_result *
dns_sync(int kind, int rrtype, const char *name)
{
	struct dwait w = { 0, NULL };

	if (resolver_init() < 0)
		exit(EXIT_USAGE);
	if (kind == 'm')
		dns_resolve_mx(resolver, name, dns_done, &w);
	else if (kind == 'a')
		dns_resolve_addrs(resolver, name, dns_done, &w);
	else
		dns_resolve(resolver, name, rrtype, dns_done, &w);
	while (!w.done)
		if (uv_run(&loop, UV_RUN_ONCE) == 0 && !w.done)
			break;
	if (!w.done) {
		dns_cancel_arg(resolver, &w);
		return NULL;
	}
	return w.r;
}

static void
dns_json(json_t *o, const char *key, const struct dns_result *r)
{
	json_t *d = json_object();

	set_str(d, "status", r ? dns_status_str(r->status) : "tempfail");
	json_object_set_new(d, "secure", json_boolean(r && r->secure));
	set_str(d, "why", r ? r->why : "no answer");
	json_object_set_new(o, key, d);
}

/* ---------------------------------------------------------------- SMTP sessions */

struct probe {
	struct conn *c;
	int connected, conn_status;
	int failed, err;
	int tls_done, tls_status;
	int readable, closed;
};

static void
p_on_connect(struct conn *c, int status, void *arg)
{
	struct probe *p = arg;

	(void)c;
	p->connected = 1;
	p->conn_status = status;
}

static void
p_on_read(struct conn *c, struct buf *in, void *arg)
{
	struct probe *p = arg;

	(void)c;
	(void)in;
	p->readable++;
}

static void
p_on_error(struct conn *c, int err, void *arg)
{
	struct probe *p = arg;

	(void)c;
	p->failed = 1;
	p->err = err;
}

static void
p_on_close(struct conn *c, void *arg)
{
	struct probe *p = arg;

	(void)c;
	p->closed = 1;
}

static void
p_on_tls(struct conn *c, int status, void *arg)
{
	struct probe *p = arg;

	(void)c;
	p->tls_done = 1;
	p->tls_status = status;
}

/* Turn the loop until *flag is set, the conn fails, or nothing is left to run. */
static void
run_until(struct probe *p, const int *flag)
{
	while (!*flag && !p->failed)
		if (uv_run(&loop, UV_RUN_ONCE) == 0 && !*flag)
			break;
}

/* Read one SMTP reply into r (initialised by the caller). 0 or a negative code. */
static int
read_reply(struct probe *p, struct smtp_reply *r)
{
	for (;;) {
		struct buf *in = conn_rbuf(p->c);
		size_t used = 0;
		int ret, before;

		smtp_reply_release(r);
		smtp_reply_init(r);
		ret = smtp_reply_parse(in->data, in->len, r, &used);
		if (ret == 0) {
			buf_drain(in, used);
			return 0;
		}
		if (ret != KUMO_EAGAIN)
			return ret;
		before = p->readable;
		conn_set_timeout(p->c, O.timeout_ms);
		while (p->readable == before && !p->failed)
			if (uv_run(&loop, UV_RUN_ONCE) == 0)
				break;
		if (p->failed)
			return p->err;
		if (p->readable == before)
			return KUMO_EIO;
	}
}

static int
command(struct probe *p, const char *line, struct smtp_reply *r)
{
	conn_write(p->c, line, strlen(line));
	conn_write(p->c, "\r\n", 2);
	return read_reply(p, r);
}

/* The reply's lines (EHLO capabilities) as a JSON array, the greeting line dropped. */
static json_t *
caps_json(const struct smtp_reply *r)
{
	json_t *a = json_array();
	const char *s = r->text.data, *nl;

	if (s == NULL)
		return a;
	nl = strchr(s, '\n');
	while (nl != NULL) {
		s = nl + 1;
		nl = strchr(s, '\n');
		json_array_append_new(a, jstr(s, nl ? (size_t)(nl - s) : strlen(s)));
	}
	return a;
}

static void
reply_json(json_t *o, const char *key, const struct smtp_reply *r)
{
	const char *t = r->text.data ? r->text.data : "";
	const char *nl = strchr(t, '\n');

	set_fmt(o, key, "%d %.*s", r->code, (int)(nl ? nl - t : (long)strlen(t)), t);
}

static char *
time_str(time_t t, char *out, size_t n)
{
	struct tm tm;

	if (t == (time_t)-1 || gmtime_r(&t, &tm) == NULL)
		snprintf(out, n, "?");
	else
		strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return out;
}

/* One certificate's subject, issuer, SANs and validity. */
static json_t *
cert_json(const gnutls_datum_t *der)
{
	json_t *o = json_object(), *sans = json_array();
	gnutls_x509_crt_t crt;
	gnutls_datum_t d;
	char tbuf[32], san[512];
	unsigned i, crit;
	size_t n;
	int type;
	time_t now = time(NULL), from, until;

	if (gnutls_x509_crt_init(&crt) < 0 || gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER) < 0) {
		set_str(o, "error", "unreadable certificate");
		json_decref(sans);
		gnutls_x509_crt_deinit(crt);
		return o;
	}
	if (gnutls_x509_crt_get_dn3(crt, &d, 0) == 0) {
		json_object_set_new(o, "subject", jstr((const char *)d.data, d.size));
		gnutls_free(d.data);
	}
	if (gnutls_x509_crt_get_issuer_dn3(crt, &d, 0) == 0) {
		json_object_set_new(o, "issuer", jstr((const char *)d.data, d.size));
		gnutls_free(d.data);
	}
	for (i = 0; i < 64; i++) {
		n = sizeof(san) - 1;
		type = gnutls_x509_crt_get_subject_alt_name(crt, i, san, &n, &crit);
		if (type == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			break;
		if (type == GNUTLS_SAN_DNSNAME)
			json_array_append_new(sans, jstr(san, n));
		else if (type == GNUTLS_SAN_IPADDRESS && (n == 4 || n == 16)) {
			char ip[INET6_ADDRSTRLEN];
			if (inet_ntop(n == 4 ? AF_INET : AF_INET6, san, ip, sizeof(ip)) != NULL)
				json_array_append_new(sans, json_string(ip));
		}
	}
	json_object_set_new(o, "sans", sans);
	from = gnutls_x509_crt_get_activation_time(crt);
	until = gnutls_x509_crt_get_expiration_time(crt);
	set_str(o, "not_before", time_str(from, tbuf, sizeof(tbuf)));
	set_str(o, "not_after", time_str(until, tbuf, sizeof(tbuf)));
	json_object_set_new(o, "expired", json_boolean(until < now));
	gnutls_x509_crt_deinit(crt);
	return o;
}

static int
is_ip(const char *s)
{
	struct in6_addr a;

	return inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &a) == 1;
}

/* What one SMTP session found. */
struct sres {
	int handshake_ok;
	int starttls;	  /* advertised (or implicit TLS) */
	int pkix_ok;
	char error[512];
	gnutls_datum_t chain[CHAIN_MAX];
	size_t chain_len;
	char version[16], suite[96];
};

static void
sres_clear(struct sres *r)
{
	size_t i;

	for (i = 0; i < r->chain_len; i++)
		free(r->chain[i].data);
	memset(r, 0, sizeof(*r));
}

static struct tls_ctx *
make_ctx(const char *priority)
{
	struct tls_ctx_config cfg;
	struct tls_ctx *ctx = NULL;
	char *err = NULL;

	memset(&cfg, 0, sizeof(cfg));
	cfg.priority = priority;
	cfg.ca_file = O.cafile;
	cfg.cert_file = O.cert;
	cfg.key_file = O.key;
	if (tls_ctx_new_client(&cfg, &ctx, &err) < 0) {
		fprintf(stderr, "tls-probe: %s\n", err ? err : "TLS setup failed");
		free(err);
		return NULL;
	}
	return ctx;
}

/*
 * One SMTP session to sa: banner, EHLO, STARTTLS (or implicit TLS), the
 * handshake with ctx, the facts, EHLO again, QUIT. name is the SNI and the
 * name checked by PKIX (NULL or an IP literal: no SNI, no name check). o,
 * if not NULL, receives the details. 0 if the handshake succeeded.
 */
static int
smtp_session(const struct sockaddr *sa, const char *name, struct tls_ctx *ctx, json_t *o,
	     struct sres *res)
{
	static const struct conn_cbs cbs = { p_on_connect, p_on_read, p_on_error, NULL, p_on_close };
	struct probe p;
	struct smtp_reply r;
	struct smtp_caps caps;
	struct tls_peer peer;
	struct tls_info info;
	gnutls_session_t s;
	char ehlo[300], addr[64];
	int ret, rc = -1;

	memset(&p, 0, sizeof(p));
	memset(res, 0, sizeof(*res));
	smtp_reply_init(&r);
	p.c = conn_new(&loop, &cbs, &p);
	if (o != NULL)
		set_str(o, "address", conn_addr_str(sa, addr, sizeof(addr)));
	snprintf(ehlo, sizeof(ehlo), "EHLO %s", O.ehlo);
	ret = conn_connect(p.c, sa, NULL, O.timeout_ms);
	if (ret == 0) {
		run_until(&p, &p.connected);
		ret = p.connected ? p.conn_status : KUMO_ETIMEDOUT;
	}
	if (ret < 0) {
		snprintf(res->error, sizeof(res->error), "connect: %s", kumo_strerror(ret));
		goto out;
	}
	memset(&peer, 0, sizeof(peer));
	peer.server_name = name != NULL && !is_ip(name) ? name : NULL;
	peer.verify = 0; /* verified below, so the chain can be shown even when it fails */
	if (O.implicit_tls) {
		res->starttls = 1;
		goto handshake;
	}
banner:
	if ((ret = read_reply(&p, &r)) < 0) {
		snprintf(res->error, sizeof(res->error), "%s: %s", conn_is_tls(p.c) ? "banner (TLS)" : "banner",
			 kumo_strerror(ret));
		goto out;
	}
	if (o != NULL)
		reply_json(o, "banner", &r);
	if (r.code != 220) {
		snprintf(res->error, sizeof(res->error), "banner: %d", r.code);
		goto out;
	}
	if ((ret = command(&p, ehlo, &r)) < 0 || r.code != 250) {
		snprintf(res->error, sizeof(res->error), "EHLO: %s",
			 ret < 0 ? kumo_strerror(ret) : "refused");
		goto out;
	}
	smtp_caps_parse(&r, &caps);
	if (conn_is_tls(p.c)) {
		if (o != NULL)
			json_object_set_new(o, "ehlo_after_tls", caps_json(&r));
		rc = 0;
		goto quit;
	}
	if (o != NULL)
		json_object_set_new(o, "ehlo", caps_json(&r));
	if (!(caps.flags & SMTP_CAP_STARTTLS)) {
		snprintf(res->error, sizeof(res->error), "STARTTLS not offered");
		goto quit;
	}
	res->starttls = 1;
	if ((ret = command(&p, "STARTTLS", &r)) < 0 || r.code != 220) {
		snprintf(res->error, sizeof(res->error), "STARTTLS: %s",
			 ret < 0 ? kumo_strerror(ret) : "refused");
		goto out;
	}
handshake:
	conn_set_timeout(p.c, O.timeout_ms);
	ret = conn_starttls(p.c, ctx, &peer, p_on_tls);
	if (ret == 0) {
		run_until(&p, &p.tls_done);
		ret = p.tls_done ? p.tls_status : (p.failed ? p.err : KUMO_ETIMEDOUT);
	}
	if (ret < 0) {
		snprintf(res->error, sizeof(res->error), "TLS handshake: %s%s%s", kumo_strerror(ret),
			 *conn_error_text(p.c) ? ": " : "", conn_error_text(p.c));
		goto out;
	}
	res->handshake_ok = 1;
	s = conn_tls_session(p.c);
	tls_session_info(s, &info);
	snprintf(res->version, sizeof(res->version), "%s", info.version);
	snprintf(res->suite, sizeof(res->suite), "%s", gnutls_ciphersuite_get(s) ? gnutls_ciphersuite_get(s) : info.cipher);
	{
		unsigned n = 0, i, status = 0;
		const gnutls_datum_t *chain = gnutls_certificate_get_peers(s, &n);
		json_t *ch = json_array();

		for (i = 0; chain != NULL && i < n && i < CHAIN_MAX; i++) {
			res->chain[i].data = xmalloc(chain[i].size ? chain[i].size : 1);
			memcpy(res->chain[i].data, chain[i].data, chain[i].size);
			res->chain[i].size = chain[i].size;
			res->chain_len++;
			json_array_append_new(ch, cert_json(&chain[i]));
		}
		ret = gnutls_certificate_verify_peers3(s, peer.server_name, &status);
		res->pkix_ok = ret == 0 && status == 0;
		if (o != NULL) {
			json_t *t = json_object();
			gnutls_datum_t txt = { NULL, 0 };
			set_str(t, "version", info.version);
			set_str(t, "cipher_suite", res->suite);
			if (gnutls_protocol_get_version(s) == GNUTLS_TLS1_3)
				/* gnutls_kx_get() guesses from the certificate in TLS 1.3: use the group. */
				set_str(t, "key_exchange",
					gnutls_group_get_name(gnutls_group_get(s)) != NULL &&
						strncmp(gnutls_group_get_name(gnutls_group_get(s)), "FFDHE", 5) == 0
						? "DHE" : "ECDHE");
			else
				set_str(t, "key_exchange", gnutls_kx_get_name(gnutls_kx_get(s)));
			set_str(t, "group", gnutls_group_get(s) ? gnutls_group_get_name(gnutls_group_get(s)) : "");
			set_str(t, "description", info.desc);
			json_object_set_new(o, "tls", t);
			json_object_set_new(o, "chain", ch);
			t = json_object();
			set_str(t, "verdict", res->pkix_ok ? "ok" : "failed");
			set_str(t, "name", peer.server_name ? peer.server_name : "(not checked: no host name)");
			if (ret < 0)
				set_str(t, "reason", gnutls_strerror(ret));
			else if (status != 0 &&
				 gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &txt, 0) == 0) {
				set_str(t, "reason", (const char *)txt.data);
				gnutls_free(txt.data);
			}
			json_object_set_new(o, "pkix", t);
		} else {
			json_decref(ch);
		}
	}
	if (O.implicit_tls)
		goto banner;
	if ((ret = command(&p, ehlo, &r)) < 0 || r.code != 250) {
		snprintf(res->error, sizeof(res->error), "EHLO after TLS: %s",
			 ret < 0 ? kumo_strerror(ret) : "refused");
		rc = 0; /* the handshake itself succeeded */
		goto out;
	}
	if (o != NULL)
		json_object_set_new(o, "ehlo_after_tls", caps_json(&r));
	rc = 0;
quit:
	command(&p, "QUIT", &r);
out:
	smtp_reply_release(&r);
	conn_close(p.c);
	while (!p.closed)
		if (uv_run(&loop, UV_RUN_ONCE) == 0)
			break;
	if (o != NULL && res->error[0] != '\0')
		set_str(o, "error", res->error);
	return rc;
}

/* HOST[:PORT] or [v6]:PORT into host (allocated) and port. 0 or -1. */
static int
split_hostport(const char *arg, char **host, unsigned *port)
{
	const char *colon;
	char *end;
	unsigned long v;

	*port = O.port;
	if (arg[0] == '[') {
		const char *rb = strchr(arg, ']');
		if (rb == NULL)
			return -1;
		*host = xstrndup(arg + 1, (size_t)(rb - arg - 1));
		colon = rb[1] == ':' ? rb + 1 : NULL;
		if (rb[1] != '\0' && colon == NULL)
			goto bad;
	} else {
		colon = strrchr(arg, ':');
		if (colon != NULL && strchr(arg, ':') != colon)
			colon = NULL; /* a bare IPv6 address */
		*host = colon ? xstrndup(arg, (size_t)(colon - arg)) : xstrdup(arg);
	}
	if (colon != NULL && !O.port_set) {
		errno = 0;
		v = strtoul(colon + 1, &end, 10);
		if (errno != 0 || *end != '\0' || v == 0 || v > 65535)
			goto bad;
		*port = (unsigned)v;
	}
	if (**host == '\0')
		goto bad;
	return 0;
bad:
	free(*host);
	*host = NULL;
	return -1;
}

/* Addresses of host (an IP literal, or through the resolver). Returns count (<= max). */
static size_t
host_addrs(const char *host, unsigned port, struct sockaddr_storage *out, size_t max, json_t *o)
{
	struct dns_result *r;
	size_t n = 0, i;

	memset(out, 0, sizeof(*out) * max);
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&out[0])->sin_addr) == 1) {
		((struct sockaddr_in *)&out[0])->sin_family = AF_INET;
		((struct sockaddr_in *)&out[0])->sin_port = htons((uint16_t)port);
		return 1;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&out[0])->sin6_addr) == 1) {
		((struct sockaddr_in6 *)&out[0])->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)&out[0])->sin6_port = htons((uint16_t)port);
		return 1;
	}
	r = dns_sync('a', 0, host);
	if (o != NULL)
		dns_json(o, "addresses_dns", r);
	for (i = 0; r != NULL && r->status == DNS_OK && i < r->n_addrs && n < max; i++) {
		memcpy(&out[n], &r->addrs[i].ss, sizeof(out[n]));
		if (r->addrs[i].family == AF_INET)
			((struct sockaddr_in *)&out[n])->sin_port = htons((uint16_t)port);
		else
			((struct sockaddr_in6 *)&out[n])->sin6_port = htons((uint16_t)port);
		n++;
	}
	dns_result_free(&r);
	return n;
}

/* ---------------------------------------------------------------- probe */

static int
cmd_probe(int argc, char **argv)
{
	struct sockaddr_storage addrs[4];
	struct tls_ctx *ctx;
	struct sres res;
	char *host = NULL;
	unsigned port;
	size_t n;
	json_t *o;
	int rc;

	if (argc != 1 || split_hostport(argv[0], &host, &port) < 0) {
		fprintf(stderr, "usage: tls-probe probe [options] HOST[:PORT]\n");
		return EXIT_USAGE;
	}
	if ((ctx = make_ctx(O.priority)) == NULL) {
		free(host);
		return EXIT_USAGE;
	}
	o = json_object();
	set_str(o, "type", "probe");
	set_str(o, "host", host);
	json_object_set_new(o, "port", json_integer(port));
	n = host_addrs(host, port, addrs, KUMO_NELEM(addrs), o);
	if (n == 0) {
		set_str(o, "error", "no address");
		set_str(o, "verdict", "failed");
		emit(o);
		free(host);
		tls_ctx_unref(&ctx);
		return EXIT_CHECK;
	}
	rc = smtp_session((struct sockaddr *)&addrs[0], host, ctx, o, &res);
	if (rc == 0 && (res.pkix_ok || O.insecure))
		set_str(o, "verdict", res.pkix_ok ? "ok" : "ok (insecure: PKIX not required)");
	else
		set_str(o, "verdict", "failed");
	if (rc != 0 || !(res.pkix_ok || O.insecure))
		check_failed = 1;
	emit(o);
	sres_clear(&res);
	tls_ctx_unref(&ctx);
	free(host);
	return check_failed ? EXIT_CHECK : EXIT_OK;
}

/* ---------------------------------------------------------------- ciphers */

/* GnuTLS's "TLS_ECDHE_RSA_AES_128_CBC_SHA1" → IANA "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA". */
static void
iana_name(const char *gname, int tls13, char *out, size_t outlen)
{
	static const char *const ciphers[] = { "NULL", "AES", "3DES", "ARCFOUR", "CAMELLIA", "CHACHA20",
					       "GOST28147", "DES", "SEED", "ARIA", NULL };
	struct buf b;
	const char *p = gname, *tok, *end;
	int with_done = tls13;
	size_t len;

	buf_init(&b, 0);
	if (strncmp(p, "TLS_", 4) == 0 || strncmp(p, "GNUTLS_", 7) == 0)
		p = strchr(p, '_') + 1;
	buf_puts(&b, "TLS");
	for (tok = p; *tok != '\0'; tok = *end ? end + 1 : end) {
		size_t k;
		end = strchr(tok, '_');
		if (end == NULL)
			end = tok + strlen(tok);
		len = (size_t)(end - tok);
		for (k = 0; !with_done && ciphers[k] != NULL; k++)
			if (strlen(ciphers[k]) == len && strncmp(tok, ciphers[k], len) == 0) {
				buf_puts(&b, "_WITH");
				with_done = 1;
			}
		buf_putc(&b, '_');
		if (len == 4 && strncmp(tok, "ANON", 4) == 0)
			buf_puts(&b, "anon");
		else if (len == 7 && strncmp(tok, "ARCFOUR", 7) == 0)
			buf_puts(&b, "RC4");
		else if (len == 4 && *end == '\0' && strncmp(tok, "SHA1", 4) == 0)
			buf_puts(&b, "SHA");
		else
			buf_append(&b, tok, len);
	}
	len = b.len;
	if (len > 9 && strcmp(b.data + len - 9, "_POLY1305") == 0 && !tls13)
		buf_puts(&b, "_SHA256");
	snprintf(out, outlen, "%s", b.data);
	buf_release(&b);
}

/* Why a suite or version is weak; "" if it is not. */
static const char *
weakness(gnutls_kx_algorithm_t kx, gnutls_cipher_algorithm_t cipher, gnutls_mac_algorithm_t mac,
	 gnutls_protocol_t minver)
{
	(void)minver;
	if (cipher == GNUTLS_CIPHER_NULL)
		return "no encryption";
	if (cipher == GNUTLS_CIPHER_ARCFOUR_128 || cipher == GNUTLS_CIPHER_ARCFOUR_40)
		return "RC4";
	if (cipher == GNUTLS_CIPHER_3DES_CBC || cipher == GNUTLS_CIPHER_DES_CBC)
		return "64-bit block cipher";
	if (kx == GNUTLS_KX_ANON_DH || kx == GNUTLS_KX_ANON_ECDH)
		return "anonymous";
	if (mac == GNUTLS_MAC_MD5)
		return "MD5";
	if (kx == GNUTLS_KX_RSA || kx == GNUTLS_KX_RSA_PSK || kx == GNUTLS_KX_PSK)
		return "no forward secrecy";
	return "";
}

static int
kx_offerable(gnutls_kx_algorithm_t kx)
{
	switch (kx) {
	case GNUTLS_KX_RSA:
	case GNUTLS_KX_DHE_RSA:
	case GNUTLS_KX_DHE_DSS:
	case GNUTLS_KX_ECDHE_RSA:
	case GNUTLS_KX_ECDHE_ECDSA:
		return 1;
	default:
		return 0;
	}
}

static int
cmd_list_ciphers(int argc, char **argv)
{
	gnutls_priority_t prio = NULL;
	const char *gname, *perr = NULL;
	unsigned char id[2];
	gnutls_kx_algorithm_t kx;
	gnutls_cipher_algorithm_t cipher;
	gnutls_mac_algorithm_t mac;
	gnutls_protocol_t minver;
	char iana[128];
	size_t i;
	unsigned j, sidx;
	const char *priority = O.priority ? O.priority : TLS_DEFAULT_PRIORITY;
	unsigned char enabled[4096];

	(void)argv;
	if (argc != 0) {
		fprintf(stderr, "usage: tls-probe list-ciphers [--priority STRING] [--json]\n");
		return EXIT_USAGE;
	}
	memset(enabled, 0, sizeof(enabled));
	if (gnutls_priority_init(&prio, priority, &perr) < 0) {
		fprintf(stderr, "tls-probe: bad priority string at \"%s\"\n", perr ? perr : "");
		return EXIT_USAGE;
	}
	for (j = 0; gnutls_priority_get_cipher_suite_index(prio, j, &sidx) != GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE; j++)
		if (sidx < sizeof(enabled))
			enabled[sidx] = 1;
	gnutls_priority_deinit(prio);
	if (!O.json)
		printf("%-48s %-9s %-8s %-7s %s\n", "IANA name", "id", "min", "enabled", "weak");
	for (i = 0; (gname = gnutls_cipher_suite_info(i, id, &kx, &cipher, &mac, &minver)) != NULL; i++) {
		const char *weak = weakness(kx, cipher, mac, minver);
		iana_name(gname, minver == GNUTLS_TLS1_3, iana, sizeof(iana));
		if (O.json) {
			json_t *o = json_object();
			set_str(o, "type", "cipher");
			set_str(o, "name", iana);
			set_str(o, "gnutls_name", gname);
			set_fmt(o, "id", "0x%02X,0x%02X", id[0], id[1]);
			set_str(o, "min_version", gnutls_protocol_get_name(minver));
			json_object_set_new(o, "enabled", json_boolean(i < sizeof(enabled) && enabled[i]));
			set_str(o, "weak", weak);
			emit(o);
		} else {
			printf("%-48s 0x%02X,0x%02X %-8s %-7s %s\n", iana, id[0], id[1],
			       gnutls_protocol_get_name(minver),
			       i < sizeof(enabled) && enabled[i] ? "yes" : "no", weak);
		}
	}
	return EXIT_OK;
}

/* One handshake with priority; 0 if accepted. Fills version/suite in res. */
static int
try_priority(const struct sockaddr *sa, const char *host, const char *priority, struct sres *res)
{
	struct tls_ctx *ctx;
	int rc;

	memset(res, 0, sizeof(*res));
	if ((ctx = make_ctx(priority)) == NULL)
		return KUMO_EINVAL;
	rc = smtp_session(sa, host, ctx, NULL, res);
	tls_ctx_unref(&ctx);
	return rc == 0 && res->handshake_ok ? 0 : -1;
}

/* Append "+NAME" for each distinct name to b. */
static void
add_names(struct buf *b, const char *const *names, size_t n, int reverse)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf_appendf(b, ":+%s", names[reverse ? n - 1 - i : i]);
}

/* Remember name in set (n entries, at most max) unless it is there already. */
static void
set_add(const char **set, size_t *n, size_t max, const char *name)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (strcmp(set[i], name) == 0)
			return;
	if (*n < max)
		set[(*n)++] = name;
}

/*
 * Whose order decides, for one version: offer the accepted ciphers in one
 * order, then reversed. The same choice twice means the server's order.
 * Returns a static description, or NULL when it cannot be seen (one cipher).
 */
static const char *
preference(const struct sockaddr *sa, const char *host, const char *vname, const char **ciphers,
	   size_t nc, const char **macs, size_t nm, const char **kxs, size_t nk, char *out, size_t outlen)
{
	struct buf b;
	struct sres r1, r2;
	int i, ok[2];
	char first[96];

	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	if (nc < 2)
		return NULL;
	for (i = 0; i < 2; i++) {
		buf_init(&b, 4096);
		buf_appendf(&b, "NONE:+VERS-%s", vname);
		add_names(&b, ciphers, nc, i);
		add_names(&b, macs, nm, 0);
		add_names(&b, kxs, nk, 0);
		buf_puts(&b, ":+SIGN-ALL:+GROUP-ALL:+CTYPE-X509:+COMP-NULL");
		ok[i] = try_priority(sa, host, b.data, i ? &r2 : &r1) == 0;
		buf_release(&b);
	}
	out[0] = '\0';
	if (ok[0] && ok[1]) {
		snprintf(first, sizeof(first), "%s", r1.suite);
		if (strcmp(r1.suite, r2.suite) == 0)
			snprintf(out, outlen, "server (prefers %s)", first);
		else
			snprintf(out, outlen, "client");
	}
	sres_clear(&r1);
	sres_clear(&r2);
	return out[0] ? out : NULL;
}

static int
cmd_ciphers(int argc, char **argv)
{
	static const struct {
		const char *name;
		gnutls_protocol_t v;
	} versions[] = {
		{ "TLS1.3", GNUTLS_TLS1_3 },
		{ "TLS1.2", GNUTLS_TLS1_2 },
		{ "TLS1.1", GNUTLS_TLS1_1 },
		{ "TLS1.0", GNUTLS_TLS1_0 },
	};
	struct sockaddr_storage addrs[4];
	struct sres res;
	char *host = NULL, prio[512], iana[128];
	unsigned port;
	size_t vi, i, accepted = 0, weak_accepted = 0;
	json_t *sum, *vlist;
	const char *gname;
	unsigned char id[2];
	gnutls_kx_algorithm_t kx;
	gnutls_cipher_algorithm_t cipher;
	gnutls_mac_algorithm_t mac;
	gnutls_protocol_t minver;
	const char *cset[64], *mset[16], *kset[16];
	size_t nc = 0, nm = 0, nk = 0;

	if (argc != 1 || split_hostport(argv[0], &host, &port) < 0) {
		fprintf(stderr, "usage: tls-probe ciphers [options] HOST[:PORT]\n");
		return EXIT_USAGE;
	}
	if (host_addrs(host, port, addrs, KUMO_NELEM(addrs), NULL) == 0) {
		fprintf(stderr, "tls-probe: %s: no address\n", host);
		free(host);
		return EXIT_CHECK;
	}
	sum = json_object();
	vlist = json_array();
	set_str(sum, "type", "ciphers-summary");
	set_str(sum, "host", host);
	json_object_set_new(sum, "port", json_integer(port));
	/* The normal session first: a server without STARTTLS ends the scan. */
	if (try_priority((struct sockaddr *)&addrs[0], host, "NORMAL:+VERS-TLS-ALL", &res) < 0) {
		set_str(sum, "error", res.error);
		set_str(sum, "verdict", "failed");
		emit(sum);
		json_decref(vlist);
		sres_clear(&res);
		free(host);
		return EXIT_CHECK;
	}
	sres_clear(&res);
	for (vi = 0; vi < KUMO_NELEM(versions); vi++) {
		int vok;
		snprintf(prio, sizeof(prio), "NORMAL:-VERS-ALL:+VERS-%s", versions[vi].name);
		vok = try_priority((struct sockaddr *)&addrs[0], host, prio, &res) == 0;
		sres_clear(&res);
		if (vok) {
			json_t *v = json_object();
			set_str(v, "version", versions[vi].name);
			set_str(v, "weak", versions[vi].v < GNUTLS_TLS1_2 ? "obsolete protocol version" : "");
			json_array_append_new(vlist, v);
			if (versions[vi].v < GNUTLS_TLS1_2)
				weak_accepted++;
		}
		if (!vok)
			continue;
		nc = nm = nk = 0;
		for (i = 0; (gname = gnutls_cipher_suite_info(i, id, &kx, &cipher, &mac, &minver)) != NULL;
		     i++) {
			int is13 = minver == GNUTLS_TLS1_3;
			const char *weak;
			json_t *o;

			if ((versions[vi].v == GNUTLS_TLS1_3) != is13)
				continue;
			if (!is13 && (minver > versions[vi].v || !kx_offerable(kx)))
				continue;
			if (is13)
				snprintf(prio, sizeof(prio), "NONE:+VERS-TLS1.3:+%s:+%s:+SIGN-ALL:+GROUP-ALL:+CTYPE-X509:+COMP-NULL",
					 gnutls_cipher_get_name(cipher), gnutls_mac_get_name(mac));
			else
				snprintf(prio, sizeof(prio), "NONE:+VERS-%s:+%s:+%s:+%s:+SIGN-ALL:+GROUP-ALL:+CTYPE-X509:+COMP-NULL",
					 versions[vi].name, gnutls_cipher_get_name(cipher),
					 gnutls_mac_get_name(mac), gnutls_kx_get_name(kx));
			if (tls_priority_check(prio, NULL) < 0)
				continue;
			if (try_priority((struct sockaddr *)&addrs[0], host, prio, &res) < 0) {
				sres_clear(&res);
				continue;
			}
			sres_clear(&res);
			iana_name(gname, is13, iana, sizeof(iana));
			weak = weakness(kx, cipher, mac, minver);
			accepted++;
			if (*weak)
				weak_accepted++;
			set_add(cset, &nc, KUMO_NELEM(cset), gnutls_cipher_get_name(cipher));
			set_add(mset, &nm, KUMO_NELEM(mset), gnutls_mac_get_name(mac));
			if (!is13)
				set_add(kset, &nk, KUMO_NELEM(kset), gnutls_kx_get_name(kx));
			o = json_object();
			set_str(o, "type", "cipher-accepted");
			set_str(o, "version", versions[vi].name);
			set_str(o, "name", iana);
			set_fmt(o, "id", "0x%02X,0x%02X", id[0], id[1]);
			set_str(o, "weak", weak);
			if (O.json)
				emit(o);
			else {
				printf("%-7s %-48s 0x%02X,0x%02X %s%s\n", versions[vi].name, iana, id[0], id[1],
				       *weak ? "WEAK: " : "", weak);
				json_decref(o);
			}
		}
		{
			char pref[160];
			const char *who = preference((struct sockaddr *)&addrs[0], host, versions[vi].name, cset,
						     nc, mset, nm, kset, nk, pref, sizeof(pref));
			json_t *v = json_array_get(vlist, json_array_size(vlist) - 1);
			set_str(v, "preference", who ? who : "not seen (fewer than two ciphers)");
			if (!O.json && who != NULL)
				printf("%-7s order: %s\n", versions[vi].name, who);
		}
	}
	json_object_set_new(sum, "versions", vlist);
	json_object_set_new(sum, "accepted", json_integer((json_int_t)accepted));
	json_object_set_new(sum, "weak_accepted", json_integer((json_int_t)weak_accepted));
	set_str(sum, "verdict", weak_accepted ? "weak" : "ok");
	if (!O.json)
		printf("\n");
	emit(sum);
	free(host);
	return weak_accepted ? EXIT_CHECK : EXIT_OK;
}

/* ---------------------------------------------------------------- MTA-STS */

/* Look up and fetch a domain's policy into o. Returns 1 policy, 0 none, -1 failure. */
static int
mtasts_lookup(const char *domain, json_t *o, struct mtasts_policy *pol)
{
	char name[300], id[MTASTS_ID_MAX + 1], *err = NULL, *body = NULL;
	char **recs = NULL;
	struct dns_result *r;
	struct mtasts_fetch_opts fo;
	json_t *m = json_object(), *txts = json_array();
	size_t i, j;
	int ret, rv = -1;

	snprintf(name, sizeof(name), "_mta-sts.%s", domain);
	r = dns_sync('r', DNS_TYPE_TXT, name);
	dns_json(m, "txt_dns", r);
	if (r == NULL || (r->status != DNS_OK && r->status != DNS_NODATA && r->status != DNS_NXDOMAIN)) {
		set_str(m, "result", "TXT lookup failed");
		goto out;
	}
	if (r->status != DNS_OK) {
		set_str(m, "result", "no MTA-STS record");
		rv = 0;
		goto out;
	}
	recs = xcalloc(r->n_rr + 1, sizeof(*recs));
	for (i = 0; i < r->n_rr; i++) {
		struct buf b;
		const unsigned char *d = r->rr[i].data;
		buf_init(&b, 65536);
		for (j = 0; j < r->rr[i].len;) {
			size_t l = d[j++];
			if (l > r->rr[i].len - j)
				l = r->rr[i].len - j;
			buf_append(&b, d + j, l);
			j += l;
		}
		recs[i] = buf_steal(&b, NULL);
		buf_release(&b);
		json_array_append_new(txts, jstrz(recs[i]));
	}
	json_object_set_new(m, "txt", txts);
	txts = NULL;
	ret = mtasts_txt_parse((const char *const *)recs, r->n_rr, id, &err);
	if (ret == KUMO_ENOTFOUND) {
		set_str(m, "result", "no MTA-STS record");
		rv = 0;
		goto out;
	}
	if (ret < 0) {
		set_fmt(m, "result", "bad TXT record: %s", err ? err : "");
		goto out;
	}
	set_str(m, "id", id);
	memset(&fo, 0, sizeof(fo));
	fo.connect_to = O.connect_to;
	fo.cafile = O.cafile;
	fo.timeout_ms = (long)O.timeout_ms;
	free(err);
	err = NULL;
	ret = mtasts_fetch(domain, &fo, pol, &body, &err);
	if (ret < 0) {
		set_fmt(m, "result", "policy fetch failed: %s", err ? err : kumo_strerror(ret));
		goto out;
	}
	{
		json_t *mx = json_array();
		set_str(m, "mode", mtasts_mode_str(pol->mode));
		json_object_set_new(m, "max_age", json_integer((json_int_t)pol->max_age));
		if (pol->max_age_capped)
			set_str(m, "warning", "max_age capped at 31557600");
		for (i = 0; i < pol->mx_count; i++)
			json_array_append_new(mx, jstrz(pol->mx[i]));
		json_object_set_new(m, "mx_patterns", mx);
	}
	set_str(m, "result", "policy fetched");
	rv = 1;
out:
	json_decref(txts);
	for (i = 0; recs != NULL && recs[i] != NULL; i++)
		free(recs[i]);
	free(recs);
	free(err);
	free(body);
	dns_result_free(&r);
	json_object_set_new(o, "mta_sts", m);
	return rv;
}

static int
cmd_mta_sts(int argc, char **argv)
{
	struct mtasts_policy pol;
	struct dns_result *r;
	json_t *o, *hosts;
	size_t i;
	int rv, bad = 0;

	if (argc != 1) {
		fprintf(stderr, "usage: tls-probe mta-sts [options] DOMAIN\n");
		return EXIT_USAGE;
	}
	memset(&pol, 0, sizeof(pol));
	o = json_object();
	set_str(o, "type", "mta-sts");
	set_str(o, "domain", argv[0]);
	rv = mtasts_lookup(argv[0], o, &pol);
	if (rv < 0)
		bad = 1;
	r = dns_sync('m', 0, argv[0]);
	dns_json(o, "mx_dns", r);
	hosts = json_array();
	for (i = 0; r != NULL && (r->status == DNS_OK || r->status == DNS_NODATA) && i < r->n_mx; i++) {
		json_t *h = json_object();
		enum mtasts_tls d = mtasts_tls_decide(rv > 0 ? &pol : NULL, r->mx[i].host);
		set_str(h, "mx", r->mx[i].host);
		json_object_set_new(h, "preference", json_integer(r->mx[i].pref));
		json_object_set_new(h, "allowed", json_boolean(rv <= 0 || pol.mode == MTASTS_MODE_NONE ||
								   mtasts_mx_match(&pol, r->mx[i].host)));
		set_str(h, "tls", mtasts_tls_str(d));
		if (rv > 0 && pol.mode != MTASTS_MODE_NONE && !mtasts_mx_match(&pol, r->mx[i].host))
			bad = 1;
		json_array_append_new(hosts, h);
	}
	json_object_set_new(o, "mx_hosts", hosts);
	set_str(o, "verdict", bad ? "failed" : (rv > 0 ? "ok" : "no policy"));
	emit(o);
	dns_result_free(&r);
	mtasts_policy_clear(&pol);
	return bad ? EXIT_CHECK : EXIT_OK;
}

/* ---------------------------------------------------------------- DANE + check */

/* The TLSA set of host, as records pointing into r (kept by the caller). */
static size_t
tlsa_lookup(const char *host, struct dns_result **rp, struct dane_tlsa *recs, size_t max, json_t *o)
{
	char name[300];
	json_t *a = json_array();
	size_t i, n = 0;

	snprintf(name, sizeof(name), "_25._tcp.%s", host);
	*rp = dns_sync('r', DNS_TYPE_TLSA, name);
	dns_json(o, "tlsa_dns", *rp);
	for (i = 0; *rp != NULL && (*rp)->status == DNS_OK && i < (*rp)->n_rr && n < max; i++) {
		struct dane_tlsa t;
		if (dane_tlsa_parse((*rp)->rr[i].data, (*rp)->rr[i].len, &t) < 0) {
			json_array_append_new(a, json_string("(malformed record)"));
			continue;
		}
		recs[n++] = t;
	}
	json_object_set_new(o, "tlsa", a);
	return n;
}

/*
 * The checks for one MX host: addresses, TLSA, one SMTP session, DANE and
 * (if pol is given) MTA-STS. Returns 1 if the host passes.
 */
static int
check_host(const char *host, const char *domain, int mx_secure, const struct mtasts_policy *pol,
	   int want_dane_only, json_t *h)
{
	struct sockaddr_storage addrs[4];
	struct dns_result *tr = NULL;
	struct dane_tlsa recs[32];
	struct tls_ctx *ctx = NULL;
	struct sres res;
	size_t n_recs, n, i;
	int ok = 1, dane_applies = 0, addr_secure, rc;
	const char *names[2] = { host, domain };
	json_t *d = json_object(), *tl;
	char *s;

	memset(&res, 0, sizeof(res));
	(void)want_dane_only;
	set_str(h, "host", host);
	/* RFC 7672 2.2.2: DANE needs DNSSEC-secure address records for the MX host. */
	n = host_addrs(host, O.port, addrs, KUMO_NELEM(addrs), h);
	addr_secure = json_is_true(json_object_get(json_object_get(h, "addresses_dns"), "secure"));
	n_recs = tlsa_lookup(host, &tr, recs, KUMO_NELEM(recs), d);
	tl = json_object_get(d, "tlsa");
	for (i = 0; i < n_recs; i++) {
		s = dane_tlsa_str(&recs[i]);
		json_array_append_new(tl, json_string(s));
		free(s);
	}
	if (!mx_secure) {
		set_str(d, "state", "MX lookup not secure: TLSA not used (RFC 7672 2.2.1)");
	} else if (!addr_secure) {
		set_str(d, "state", "address records not secure: TLSA not used (RFC 7672 2.2.2)");
	} else if (tr == NULL || tr->status == DNS_BOGUS || tr->status == DNS_TEMPFAIL) {
		set_str(d, "state", tr && tr->status == DNS_BOGUS ? "bogus TLSA: no delivery (defer)"
								   : "TLSA lookup failed: no delivery (defer)");
		ok = 0;
	} else if (tr->status != DNS_OK) {
		set_str(d, "state", tr->secure ? "no TLSA (secure denial): no DANE" : "no TLSA: no DANE");
	} else if (!tr->secure) {
		set_str(d, "state", "TLSA not DNSSEC-signed: ignored");
	} else {
		dane_applies = 1;
		set_str(d, "state", "DANE applies");
	}
	json_object_set_new(h, "dane", d);
	if (n == 0) {
		set_str(h, "error", "no address");
		ok = 0;
		goto out;
	}
	if ((ctx = make_ctx(O.priority)) == NULL) {
		ok = 0;
		goto out;
	}
	{
		json_t *sess = json_object();
		rc = smtp_session((struct sockaddr *)&addrs[0], host, ctx, sess, &res);
		json_object_set_new(h, "session", sess);
	}
	if (rc != 0) {
		ok = 0;
		goto out;
	}
	if (dane_applies) {
		struct dane_result dr;
		json_t *per = json_array();
		for (i = 0; i < n_recs; i++) {
			char why[400];
			json_t *pr = json_object();
			enum dane_match m = dane_check_record(&recs[i], res.chain, res.chain_len, names, 2, NULL,
							      why, sizeof(why));
			s = dane_tlsa_str(&recs[i]);
			set_str(pr, "record", s);
			free(s);
			set_str(pr, "result", m == DANE_MATCH_OK ? "match" : m == DANE_MATCH_NONE ? "no match" : "unusable");
			set_str(pr, "why", why);
			json_array_append_new(per, pr);
		}
		json_object_set_new(d, "records", per);
		dane_verify(recs, n_recs, res.chain, res.chain_len, names, 2, &dr);
		set_str(d, "verdict", dane_verdict_str(dr.verdict));
		set_str(d, "reason", dr.reason);
		if (dr.verdict == DANE_FAILED)
			ok = 0;
		if (dr.verdict == DANE_VERIFIED)
			goto out; /* DANE authenticates: PKIX and MTA-STS do not matter */
	}
	if (pol != NULL && pol->mode == MTASTS_MODE_ENFORCE) {
		if (!mtasts_mx_match(pol, host)) {
			set_str(h, "mta_sts", "MX not in the enforced policy: skipped");
			ok = 0;
		} else if (!res.pkix_ok) {
			set_str(h, "mta_sts", "enforce: certificate does not verify");
			ok = 0;
		} else {
			set_str(h, "mta_sts", "enforce: ok");
		}
	} else if (pol != NULL && pol->mode == MTASTS_MODE_TESTING) {
		set_str(h, "mta_sts", mtasts_mx_match(pol, host) && res.pkix_ok ? "testing: ok"
									 : "testing: would fail (reported only)");
	}
out:
	set_str(h, "verdict", ok ? "ok" : "failed");
	sres_clear(&res);
	tls_ctx_unref(&ctx);
	dns_result_free(&tr);
	return ok;
}

/* The MX hosts for a domain (or the name itself when it has none). */
static struct dns_result *
mx_hosts(const char *domain, json_t *o)
{
	struct dns_result *r = dns_sync('m', 0, domain);

	dns_json(o, "mx_dns", r);
	if (r != NULL && r->status == DNS_OK) {
		json_t *a = json_array();
		size_t i;
		for (i = 0; i < r->n_mx; i++)
			json_array_append_new(a, jstrz(r->mx[i].host));
		json_object_set_new(o, "mx", a);
	}
	return r;
}

static int
cmd_dane_or_check(int argc, char **argv, int full)
{
	struct mtasts_policy pol;
	struct dns_result *r;
	json_t *o;
	size_t i, good = 0, total = 0;
	int stsrv = 0;

	if (argc != 1) {
		fprintf(stderr, "usage: tls-probe %s [options] %s\n", full ? "check" : "dane",
			full ? "DOMAIN" : "DOMAIN|MXHOST");
		return EXIT_USAGE;
	}
	memset(&pol, 0, sizeof(pol));
	o = json_object();
	set_str(o, "type", full ? "check" : "dane");
	set_str(o, "domain", argv[0]);
	r = mx_hosts(argv[0], o);
	if (full)
		stsrv = mtasts_lookup(argv[0], o, &pol);
	if (r == NULL || (r->status != DNS_OK && r->status != DNS_NODATA)) {
		set_str(o, "verdict", "failed");
		set_str(o, "error", r && r->status == DNS_NULL_MX ? "null MX: accepts no mail" : "no MX hosts");
		emit(o);
		dns_result_free(&r);
		mtasts_policy_clear(&pol);
		return EXIT_CHECK;
	}
	if (stsrv < 0)
		check_failed = 1;
	for (i = 0; i < r->n_mx; i++) {
		json_t *h = json_object();
		set_str(h, "type", full ? "check-host" : "dane-host");
		set_str(h, "domain", argv[0]);
		json_object_set_new(h, "preference", json_integer(r->mx[i].pref));
		total++;
		if (check_host(r->mx[i].host, argv[0], r->secure, stsrv > 0 ? &pol : NULL, !full, h))
			good++;
		emit(h);
	}
	json_object_set_new(o, "hosts", json_integer((json_int_t)total));
	json_object_set_new(o, "hosts_ok", json_integer((json_int_t)good));
	if (good != total)
		check_failed = 1;
	set_str(o, "verdict", check_failed ? "failed" : "ok");
	emit(o);
	dns_result_free(&r);
	mtasts_policy_clear(&pol);
	return check_failed ? EXIT_CHECK : EXIT_OK;
}

static int
cmd_dane(int argc, char **argv)
{
	return cmd_dane_or_check(argc, argv, 0);
}

static int
cmd_check(int argc, char **argv)
{
	return cmd_dane_or_check(argc, argv, 1);
}

/* ---------------------------------------------------------------- main */

static const struct command {
	const char *name, *args, *help;
	int (*fn)(int, char **);
} commands[] = {
	{ "probe", "HOST[:PORT]",
	  "One SMTP session: banner, EHLO, STARTTLS (or --implicit-tls), protocol, cipher suite,\n"
	  "key exchange, the chain (subject, issuer, SANs, validity), PKIX and host name verdict,\n"
	  "EHLO after TLS. Fails (exit 1) when TLS fails or PKIX fails without --insecure.",
	  cmd_probe },
	{ "list-ciphers", "", "The cipher suites this GnuTLS supports, with IANA names and ids;\n"
			      "\"enabled\" is membership in --priority (default: kumo's pinned string).",
	  cmd_list_ciphers },
	{ "ciphers", "HOST[:PORT]",
	  "Which protocol versions and suites the server accepts, by handshakes offering one\n"
	  "version, then one suite at a time, and whose preference order decides.\n"
	  "Exit 1 if a weak version or suite is accepted.",
	  cmd_ciphers },
	{ "mta-sts", "DOMAIN",
	  "The _mta-sts TXT record, the fetched policy, and which MX hosts it allows.\n"
	  "Exit 1 when the record or policy is broken or an MX host falls outside an active policy.",
	  cmd_mta_sts },
	{ "dane", "DOMAIN|MXHOST",
	  "Validated MX and TLSA (_25._tcp.HOST) lookups, and the live chain of each host checked\n"
	  "against each TLSA record (RFC 7672: usages 2 and 3 only). Exit 1 when a host fails.",
	  cmd_dane },
	{ "check", "DOMAIN",
	  "All of it for every MX host: DANE, MTA-STS, PKIX; one verdict per host and overall.",
	  cmd_check },
};

static void
usage(FILE *f, const struct command *c)
{
	size_t i;

	if (c != NULL) {
		fprintf(f, "usage: tls-probe %s [options] %s\n%s\n\n", c->name, c->args, c->help);
	} else {
		fprintf(f, "usage: tls-probe COMMAND [options] [ARGS]\nCommands:\n");
		for (i = 0; i < KUMO_NELEM(commands); i++)
			fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].args);
		fprintf(f, "`tls-probe COMMAND --help` describes one.\n\n");
	}
	fprintf(f,
		"Options:\n"
		"  --port N                 SMTP port (default 25; overrides HOST:PORT)\n"
		"  --implicit-tls           TLS from the first byte (port 465 style), no STARTTLS\n"
		"  --priority STRING        GnuTLS priority string (default %s)\n"
		"  --insecure               do not fail on PKIX / host name errors (still reported)\n"
		"  --cafile FILE            trust these CAs (PEM) instead of the system store\n"
		"  --cert FILE --key FILE   offer a client certificate\n"
		"  --ehlo NAME              EHLO name (default tls-probe.invalid)\n"
		"  --timeout SECONDS        per step (default 10)\n"
		"  --dns-forwarder IP@PORT  send DNS queries there (alias --resolver)\n"
		"  --trust-anchor FILE      DNSSEC trust anchor (DS/DNSKEY); default\n"
		"                           /usr/share/dns/root.key if present; none: no validation\n"
		"  --connect-to H:P:ADDR:P  redirect the MTA-STS policy fetch (as curl's)\n"
		"  --json                   JSON lines instead of text\n"
		"  -h, --help               help\n"
		"Exit status: 0 every check passed, 1 a check failed, 2 usage or environment error.\n",
		TLS_DEFAULT_PRIORITY);
}

int
main(int argc, char **argv)
{
	enum { OPT_PORT = 256, OPT_PRIO, OPT_INSECURE, OPT_CAFILE, OPT_CERT, OPT_KEY, OPT_EHLO,
	       OPT_TIMEOUT, OPT_FWD, OPT_TA, OPT_CONNECT_TO, OPT_JSON, OPT_IMPLICIT };
	static const struct option longopts[] = {
		{ "port", required_argument, NULL, OPT_PORT },
		{ "priority", required_argument, NULL, OPT_PRIO },
		{ "insecure", no_argument, NULL, OPT_INSECURE },
		{ "cafile", required_argument, NULL, OPT_CAFILE },
		{ "cert", required_argument, NULL, OPT_CERT },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "ehlo", required_argument, NULL, OPT_EHLO },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "dns-forwarder", required_argument, NULL, OPT_FWD },
		{ "resolver", required_argument, NULL, OPT_FWD },
		{ "trust-anchor", required_argument, NULL, OPT_TA },
		{ "connect-to", required_argument, NULL, OPT_CONNECT_TO },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "implicit-tls", no_argument, NULL, OPT_IMPLICIT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const struct command *cmd = NULL;
	char *end, *perr = NULL;
	unsigned long v;
	size_t i;
	int c, rc;

	if (argc < 2) {
		usage(stderr, NULL);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
		usage(stdout, NULL);
		return EXIT_OK;
	}
	for (i = 0; i < KUMO_NELEM(commands); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			cmd = &commands[i];
	if (cmd == NULL) {
		fprintf(stderr, "tls-probe: unknown command \"%s\"\n", argv[1]);
		usage(stderr, NULL);
		return EXIT_USAGE;
	}
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_PORT:
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v == 0 || v > 65535) {
				fprintf(stderr, "tls-probe: --port: \"%s\": not a port\n", optarg);
				return EXIT_USAGE;
			}
			O.port = (unsigned)v;
			O.port_set = 1;
			break;
		case OPT_PRIO:
			if (tls_priority_check(optarg, &perr) < 0) {
				fprintf(stderr, "tls-probe: --priority: %s\n", perr ? perr : optarg);
				free(perr);
				return EXIT_USAGE;
			}
			O.priority = optarg;
			break;
		case OPT_INSECURE:
			O.insecure = 1;
			break;
		case OPT_CAFILE:
			O.cafile = optarg;
			break;
		case OPT_CERT:
			O.cert = optarg;
			break;
		case OPT_KEY:
			O.key = optarg;
			break;
		case OPT_EHLO:
			if (strlen(optarg) > 255 || strpbrk(optarg, " \r\n") != NULL) {
				fprintf(stderr, "tls-probe: --ehlo: bad name\n");
				return EXIT_USAGE;
			}
			O.ehlo = optarg;
			break;
		case OPT_TIMEOUT:
			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || *end || v == 0 || v > 3600) {
				fprintf(stderr, "tls-probe: --timeout: \"%s\": seconds, 1..3600\n", optarg);
				return EXIT_USAGE;
			}
			O.timeout_ms = (unsigned)v * 1000;
			break;
		case OPT_FWD:
			O.forwarder = optarg;
			break;
		case OPT_TA:
			O.trust_anchor = optarg;
			break;
		case OPT_CONNECT_TO:
			O.connect_to = optarg;
			break;
		case OPT_JSON:
			O.json = 1;
			break;
		case OPT_IMPLICIT:
			O.implicit_tls = 1;
			break;
		case 'h':
			usage(stdout, cmd);
			return EXIT_OK;
		default:
			usage(stderr, cmd);
			return EXIT_USAGE;
		}
	}
	if ((O.cert == NULL) != (O.key == NULL)) {
		fprintf(stderr, "tls-probe: --cert and --key go together\n");
		return EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	if (uv_loop_init(&loop) != 0 || mtasts_global_init() != 0) {
		fprintf(stderr, "tls-probe: initialisation failed\n");
		return EXIT_USAGE;
	}
	rc = cmd->fn(argc - optind, argv + optind);
	dns_resolver_free(&resolver);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	mtasts_global_cleanup();
	return rc;
}
