/*
 * tls.c: GnuTLS credentials, priority caches and per-connection sessions,
 * and the enable_tls mode names. A tls_ctx is built once per configuration
 * (trust store loading is slow) and shared by reference among connections;
 * a reload builds a new one while old connections keep the old one alive.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "kumo.h"
#include "tls.h"

struct tls_ctx {
	int refs;
	int server;
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
};

static const struct {
	enum tls_mode mode;
	const char *name;
} tls_modes[] = {
	{TLS_DISABLED, "Disabled"},
	{TLS_OPPORTUNISTIC, "Opportunistic"},
	{TLS_OPPORTUNISTIC_INSECURE, "OpportunisticInsecure"},
	{TLS_REQUIRED, "Required"},
	{TLS_REQUIRED_INSECURE, "RequiredInsecure"},
};

int
tls_mode_parse(const char *s, enum tls_mode *mode)
{
	size_t i;

	if (s == NULL)
		return KUMO_EPARSE;
	for (i = 0; i < KUMO_NELEM(tls_modes); i++) {
		if (strcasecmp(s, tls_modes[i].name) == 0) {
			*mode = tls_modes[i].mode;
			return 0;
		}
	}
	return KUMO_EPARSE;
}

const char *
tls_mode_str(enum tls_mode mode)
{
	size_t i;

	for (i = 0; i < KUMO_NELEM(tls_modes); i++)
		if (tls_modes[i].mode == mode)
			return tls_modes[i].name;
	return "?";
}

int
tls_mode_verifies(enum tls_mode mode)
{
	return mode == TLS_OPPORTUNISTIC || mode == TLS_REQUIRED;
}

int
tls_mode_requires(enum tls_mode mode)
{
	return mode == TLS_REQUIRED || mode == TLS_REQUIRED_INSECURE;
}

/* Set *err_r (if wanted) to an allocated message. */
static void
set_err(char **err_r, const char *what, const char *arg, int gerr)
{
	if (err_r == NULL)
		return;
	*err_r = xasprintf("%s%s%s: %s", what, arg ? " " : "", arg ? arg : "", gnutls_strerror(gerr));
}

/* Build a priority cache, reporting where gnutls stopped parsing. */
static int
prio_init(const char *priority, gnutls_priority_t *prio, char **err_r)
{
	const char *errpos = NULL;
	int ret;

	ret = gnutls_priority_init(prio, priority, &errpos);
	if (ret == GNUTLS_E_SUCCESS)
		return 0;
	*prio = NULL;
	if (err_r != NULL) {
		if (errpos != NULL && errpos >= priority && errpos <= priority + strlen(priority))
			*err_r = xasprintf("\"%s\": error at offset %zu (\"%s\"): %s", priority,
					   (size_t)(errpos - priority), errpos, gnutls_strerror(ret));
		else
			*err_r = xasprintf("\"%s\": %s", priority, gnutls_strerror(ret));
	}
	return KUMO_EPARSE;
}

int
tls_priority_check(const char *priority, char **err_r)
{
	gnutls_priority_t prio;
	int ret;

	if (priority == NULL || *priority == '\0') {
		if (err_r != NULL)
			*err_r = xstrdup("empty priority string");
		return KUMO_EPARSE;
	}
	ret = prio_init(priority, &prio, err_r);
	if (ret == 0)
		gnutls_priority_deinit(prio);
	return ret;
}

static struct tls_ctx *
ctx_alloc(int server)
{
	struct tls_ctx *ctx = xcalloc(1, sizeof(*ctx));

	ctx->refs = 1;
	ctx->server = server;
	return ctx;
}

static void
ctx_destroy(struct tls_ctx *ctx)
{
	if (ctx->prio != NULL)
		gnutls_priority_deinit(ctx->prio);
	if (ctx->cred != NULL)
		gnutls_certificate_free_credentials(ctx->cred);
	free(ctx);
}

/* The parts client and server contexts share: credentials, priority, key pair. */
static int
ctx_common(struct tls_ctx *ctx, const struct tls_ctx_config *cfg, char **err_r)
{
	const char *priority = cfg->priority ? cfg->priority : TLS_DEFAULT_PRIORITY;
	int ret;

	ret = gnutls_certificate_allocate_credentials(&ctx->cred);
	if (ret < 0) {
		set_err(err_r, "allocating credentials", NULL, ret);
		return KUMO_ETLS;
	}
	ret = prio_init(priority, &ctx->prio, err_r);
	if (ret < 0)
		return ret;
	if (cfg->cert_file != NULL && cfg->key_file != NULL) {
		ret = gnutls_certificate_set_x509_key_file(ctx->cred, cfg->cert_file, cfg->key_file,
							   GNUTLS_X509_FMT_PEM);
		if (ret < 0) {
			if (err_r != NULL)
				*err_r = xasprintf("loading certificate %s with key %s: %s",
						   cfg->cert_file, cfg->key_file, gnutls_strerror(ret));
			return KUMO_ETLS;
		}
	}
	return 0;
}

int
tls_ctx_new_client(const struct tls_ctx_config *cfg, struct tls_ctx **ctxp, char **err_r)
{
	static const struct tls_ctx_config none;
	struct tls_ctx *ctx = ctx_alloc(0);
	int ret;

	if (cfg == NULL)
		cfg = &none;
	ret = ctx_common(ctx, cfg, err_r);
	if (ret < 0)
		goto fail;
	if (cfg->ca_file != NULL) {
		ret = gnutls_certificate_set_x509_trust_file(ctx->cred, cfg->ca_file, GNUTLS_X509_FMT_PEM);
		if (ret <= 0) {
			if (err_r != NULL)
				*err_r = xasprintf("loading CA file %s: %s", cfg->ca_file,
						   ret == 0 ? "no certificate found" : gnutls_strerror(ret));
			ret = KUMO_ETLS;
			goto fail;
		}
	} else {
		ret = gnutls_certificate_set_x509_system_trust(ctx->cred);
		if (ret < 0) {
			set_err(err_r, "loading the system trust store", NULL, ret);
			ret = KUMO_ETLS;
			goto fail;
		}
	}
	*ctxp = ctx;
	return 0;
fail:
	ctx_destroy(ctx);
	return ret;
}

int
tls_ctx_new_server(const struct tls_ctx_config *cfg, struct tls_ctx **ctxp, char **err_r)
{
	struct tls_ctx *ctx;
	int ret;

	if (cfg == NULL || cfg->cert_file == NULL || cfg->key_file == NULL) {
		if (err_r != NULL)
			*err_r = xstrdup("a TLS server needs a certificate file and a key file");
		return KUMO_EINVAL;
	}
	ctx = ctx_alloc(1);
	ret = ctx_common(ctx, cfg, err_r);
	if (ret < 0) {
		ctx_destroy(ctx);
		return ret;
	}
	*ctxp = ctx;
	return 0;
}

struct tls_ctx *
tls_ctx_ref(struct tls_ctx *ctx)
{
	ctx->refs++;
	return ctx;
}

void
tls_ctx_unref(struct tls_ctx **ctxp)
{
	struct tls_ctx *ctx;

	if (ctxp == NULL || *ctxp == NULL)
		return;
	ctx = *ctxp;
	*ctxp = NULL;
	if (--ctx->refs == 0)
		ctx_destroy(ctx);
}

int
tls_ctx_is_server(const struct tls_ctx *ctx)
{
	return ctx->server;
}

/* SNI must not carry an address literal (RFC 6066 3). */
static int
is_ip_literal(const char *name)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, name, &a4) == 1 || inet_pton(AF_INET6, name, &a6) == 1;
}

int
tls_session_new(struct tls_ctx *ctx, const struct tls_peer *peer, gnutls_session_t *sp, char **err_r)
{
	gnutls_session_t s = NULL;
	int ret;

	ret = gnutls_init(&s, (ctx->server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK);
	if (ret < 0) {
		set_err(err_r, "gnutls_init", NULL, ret);
		return KUMO_ETLS;
	}
	ret = gnutls_priority_set(s, ctx->prio);
	if (ret == 0)
		ret = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, ctx->cred);
	if (ret < 0) {
		set_err(err_r, "setting up the session", NULL, ret);
		goto fail;
	}
	/* The caller's phase timer bounds the handshake, not GnuTLS's own clock. */
	gnutls_handshake_set_timeout(s, 0);
	if (ctx->server) {
		gnutls_certificate_server_set_request(s, GNUTLS_CERT_IGNORE);
	} else if (peer != NULL) {
		const char *name = peer->server_name;

		if (name != NULL && *name != '\0' && !is_ip_literal(name)) {
			ret = gnutls_server_name_set(s, GNUTLS_NAME_DNS, name, strlen(name));
			if (ret < 0) {
				set_err(err_r, "setting SNI", name, ret);
				goto fail;
			}
		}
		if (peer->verify) {
			if (name == NULL || *name == '\0') {
				if (err_r != NULL)
					*err_r = xstrdup("certificate verification needs a host name");
				goto fail;
			}
			gnutls_session_set_verify_cert(s, name, 0);
		}
	}
	*sp = s;
	return 0;
fail:
	gnutls_deinit(s);
	return KUMO_ETLS;
}

/* Copy at most outlen-1 bytes of a datum's text. */
static void
copy_datum(char *out, size_t outlen, const gnutls_datum_t *d)
{
	size_t n = d->size < outlen - 1 ? d->size : outlen - 1;

	memcpy(out, d->data, n);
	out[n] = '\0';
}

static void
copy_str(char *out, size_t outlen, const char *s)
{
	if (s == NULL)
		s = "";
	snprintf(out, outlen, "%s", s);
}

void
tls_session_info(gnutls_session_t s, struct tls_info *info)
{
	const gnutls_datum_t *peers;
	unsigned npeers = 0;
	gnutls_datum_t d;
	char *desc;

	memset(info, 0, sizeof(*info));
	if (s == NULL)
		return;
	/*
	 * Before a cipher suite is negotiated, gnutls_ciphersuite_get() and
	 * gnutls_session_get_desc() dereference NULL (3.7.9); a non-NULL
	 * record cipher means the suite is known.
	 */
	if (gnutls_cipher_get(s) != GNUTLS_CIPHER_NULL) {
		copy_str(info->version, sizeof(info->version),
			 gnutls_protocol_get_name(gnutls_protocol_get_version(s)));
		copy_str(info->cipher, sizeof(info->cipher), gnutls_ciphersuite_get(s));
		desc = gnutls_session_get_desc(s);
		if (desc != NULL) {
			copy_str(info->desc, sizeof(info->desc), desc);
			gnutls_free(desc);
		}
	}
	info->verify_status = gnutls_session_get_verify_cert_status(s);
	if (info->verify_status != 0 &&
	    gnutls_certificate_verification_status_print(info->verify_status, GNUTLS_CRT_X509, &d, 0) == 0) {
		copy_datum(info->verify_text, sizeof(info->verify_text), &d);
		gnutls_free(d.data);
	}
	peers = gnutls_certificate_get_peers(s, &npeers);
	if (peers != NULL && npeers > 0) {
		gnutls_x509_crt_t crt;

		if (gnutls_x509_crt_init(&crt) == 0) {
			if (gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER) == 0 &&
			    gnutls_x509_crt_get_dn3(crt, &d, 0) == 0) {
				copy_datum(info->peer_dn, sizeof(info->peer_dn), &d);
				gnutls_free(d.data);
			}
			gnutls_x509_crt_deinit(crt);
		}
	}
}

/* Write a datum to path with mode; 0 or KUMO_EIO. */
static int
write_file(const char *path, const gnutls_datum_t *d, mode_t mode)
{
	int fd, ret = 0;
	size_t off = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return KUMO_EIO;
	while (off < d->size) {
		ssize_t n = write(fd, d->data + off, d->size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = KUMO_EIO;
			break;
		}
		off += (size_t)n;
	}
	if (close(fd) < 0)
		ret = KUMO_EIO;
	return ret;
}

int
tls_make_self_signed(const char *cn, const char *cert_file, const char *key_file, char **err_r)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t cpem = {NULL, 0}, kpem = {NULL, 0};
	unsigned char serial[8];
	time_t now = time(NULL);
	const char *step = "";
	int ret, rc = KUMO_ETLS;

#define STEP(what, call)                                                                           \
	do {                                                                                       \
		step = (what);                                                                     \
		if ((ret = (call)) < 0)                                                            \
			goto done;                                                                 \
	} while (0)
	STEP("privkey init", gnutls_x509_privkey_init(&key));
	STEP("key generation", gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
							    GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0));
	STEP("crt init", gnutls_x509_crt_init(&crt));
	STEP("version", gnutls_x509_crt_set_version(crt, 3));
	STEP("random serial", gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial)));
	serial[0] &= 0x7f; /* a positive INTEGER */
	serial[0] |= 0x01;
	STEP("serial", gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)));
	STEP("activation", gnutls_x509_crt_set_activation_time(crt, now - 3600));
	STEP("expiration", gnutls_x509_crt_set_expiration_time(crt, now + 30 * 86400));
	STEP("subject", gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn)));
	STEP("subject alt name",
	     gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, cn, strlen(cn), GNUTLS_FSAN_SET));
	STEP("public key", gnutls_x509_crt_set_key(crt, key));
	STEP("basic constraints", gnutls_x509_crt_set_basic_constraints(crt, 0, -1));
	STEP("key usage", gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE));
	STEP("key purpose", gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0));
	STEP("signing", gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0));
	STEP("certificate export", gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cpem));
	STEP("key export", gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &kpem));
#undef STEP
	ret = 0;
	if (write_file(key_file, &kpem, 0600) < 0) {
		rc = KUMO_EIO;
		if (err_r != NULL)
			*err_r = xasprintf("writing %s: %s", key_file, strerror(errno));
		goto out;
	}
	if (write_file(cert_file, &cpem, 0644) < 0) {
		rc = KUMO_EIO;
		if (err_r != NULL)
			*err_r = xasprintf("writing %s: %s", cert_file, strerror(errno));
		goto out;
	}
	rc = 0;
	goto out;
done:
	set_err(err_r, "self-signed certificate:", step, ret);
out:
	gnutls_free(cpem.data);
	if (kpem.data != NULL) {
		memset(kpem.data, 0, kpem.size);
		gnutls_free(kpem.data);
	}
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	if (key != NULL)
		gnutls_x509_privkey_deinit(key);
	return rc;
}
