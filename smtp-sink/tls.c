/*
 * tls.c: smtp-sink's GnuTLS server credentials and priority. With --cert and
 * --key the PEM chain is loaded; without them a self-signed ECDSA P-256
 * certificate for the --hostname is made at start (a lab sink needs no
 * trust, only a handshake). The default priority pins TLS 1.2 and 1.3:
 * Debian 12's NORMAL still enables 1.0 and 1.1 (LAB.md).
 */
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "kumo.h"
#include "log.h"
#include "sink.h"

#define DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

static gnutls_certificate_credentials_t creds;
static gnutls_priority_t prio;

/* Make a self-signed certificate for name; log_fatal on failure. */
static void
self_signed(const char *name)
{
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	unsigned char serial[8];
	time_t now = time(NULL);
	int rc;

	if ((rc = gnutls_x509_privkey_init(&key)) < 0 ||
	    (rc = gnutls_x509_privkey_generate(
	         key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0 ||
	    (rc = gnutls_x509_crt_init(&crt)) < 0)
		log_fatal("TLS: cannot make a key: %s", gnutls_strerror(rc));
	gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
	serial[0] &= 0x7f;
	if ((rc = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (rc = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0 ||
	    (rc = gnutls_x509_crt_set_activation_time(crt, now - 3600)) < 0 ||
	    (rc = gnutls_x509_crt_set_expiration_time(crt, now + 30 * 86400)) < 0 ||
	    (rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, name,
	                                        (unsigned)strlen(name))) < 0 ||
	    (rc = gnutls_x509_crt_set_subject_alt_name(
	         crt, GNUTLS_SAN_DNSNAME, name, (unsigned)strlen(name), GNUTLS_FSAN_SET)) < 0 ||
	    (rc = gnutls_x509_crt_set_key(crt, key)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (rc = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0 ||
	    (rc = gnutls_certificate_set_x509_key(creds, &crt, 1, key)) < 0)
		log_fatal("TLS: cannot make a self-signed certificate: %s", gnutls_strerror(rc));
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
}

void
sink_tls_init(void)
{
	const char *errpos = NULL;
	int rc;

	if ((rc = gnutls_certificate_allocate_credentials(&creds)) < 0)
		log_fatal("TLS: %s", gnutls_strerror(rc));
	if (cfg.cert != NULL) {
		rc = gnutls_certificate_set_x509_key_file(creds, cfg.cert, cfg.key,
		                                          GNUTLS_X509_FMT_PEM);
		if (rc < 0)
			log_fatal("--cert %s / --key %s: %s", cfg.cert, cfg.key,
			          gnutls_strerror(rc));
	} else {
		self_signed(cfg.hostname);
	}
	rc = gnutls_priority_init(
	    &prio, cfg.tls_priority != NULL ? cfg.tls_priority : DEFAULT_PRIORITY, &errpos);
	if (rc < 0)
		log_fatal("--tls-priority: \"%s\": %s at \"%s\"", cfg.tls_priority,
		          gnutls_strerror(rc), errpos != NULL ? errpos : "");
}

void
sink_tls_deinit(void)
{
	if (prio != NULL)
		gnutls_priority_deinit(prio);
	if (creds != NULL)
		gnutls_certificate_free_credentials(creds);
	prio = NULL;
	creds = NULL;
}

int
sink_tls_session(gnutls_session_t *sp, int fd)
{
	gnutls_session_t s;

	(void)fd; /* the caller sets its own transport functions on fd */
	if (gnutls_init(&s, GNUTLS_SERVER | GNUTLS_NONBLOCK) < 0)
		return KUMO_ETLS;
	if (gnutls_priority_set(s, prio) < 0 ||
	    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, creds) < 0) {
		gnutls_deinit(s);
		return KUMO_ETLS;
	}
	if (cfg.tls_client_cert > 0)
		gnutls_certificate_server_set_request(
		    s, cfg.tls_client_cert > 1 ? GNUTLS_CERT_REQUIRE : GNUTLS_CERT_REQUEST);
	gnutls_handshake_set_timeout(s, 0);
	*sp = s;
	return 0;
}
