/*
 * tls.h: GnuTLS credentials, priority strings and certificate checks, plus
 * the five enable_tls modes of make_egress_path. A tls_ctx holds what many
 * connections share (credentials, trust store, priority cache); conn.c asks
 * it for one gnutls session per connection. Sessions are driven by conn.c
 * (nonblocking, on the event loop); nothing here does I/O.
 *
 * Verification happens inside the handshake (gnutls_session_set_verify_cert)
 * so no application data is ever sent to an unverified peer.
 */
#ifndef KUMO_TLS_H
#define KUMO_TLS_H

#include <gnutls/gnutls.h>

/* The enable_tls modes, with the seed's exact names (see tls_mode_parse). */
enum tls_mode {
	TLS_DISABLED = 0,	    /* "Disabled": never STARTTLS */
	TLS_OPPORTUNISTIC,	    /* "Opportunistic": STARTTLS if advertised; must verify */
	TLS_OPPORTUNISTIC_INSECURE, /* "OpportunisticInsecure": if advertised; no verification */
	TLS_REQUIRED,		    /* "Required": must be advertised and must verify */
	TLS_REQUIRED_INSECURE,	    /* "RequiredInsecure": must be advertised; no verification */
};

/* The default when a config says nothing: the seed's "Opportunistic". */
#define TLS_MODE_DEFAULT TLS_OPPORTUNISTIC

/*
 * Versions are pinned: Debian 12's NORMAL still enables TLS 1.0 and 1.1.
 * Operators may replace the whole string (tls_priority); it is checked by
 * tls_priority_check().
 */
#define TLS_DEFAULT_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/*
 * Parse a mode name: "Disabled", "Opportunistic", "OpportunisticInsecure",
 * "Required", "RequiredInsecure" (case-insensitive). 0 and *mode set, or
 * KUMO_EPARSE (mode untouched).
 */
int tls_mode_parse(const char *s, enum tls_mode *mode);
/* The seed's name of a mode ("OpportunisticInsecure"); "?" for a bad value. */
const char *tls_mode_str(enum tls_mode mode);
/* 1 if the mode checks the certificate (Opportunistic, Required). */
int tls_mode_verifies(enum tls_mode mode);
/* 1 if the mode fails a host that does not advertise STARTTLS (Required*). */
int tls_mode_requires(enum tls_mode mode);

/*
 * Check a GnuTLS priority string. 0 if gnutls accepts it; otherwise
 * KUMO_EPARSE and, if err_r is not NULL, *err_r is an allocated message
 * naming the offending position, e.g. `"NORMAL:+FOO": error at offset 7
 * ("+FOO"): The request is invalid.` (caller frees).
 */
int tls_priority_check(const char *priority, char **err_r);

/* What a tls_ctx is made from. Every field may be NULL. */
struct tls_ctx_config {
	const char *priority;  /* NULL: TLS_DEFAULT_PRIORITY */
	const char *ca_file;   /* PEM trust anchors; NULL: the system trust store */
	const char *cert_file; /* PEM certificate chain (required for a server) */
	const char *key_file;  /* PEM private key (required for a server) */
};

/* Shared, reference-counted credentials + priority. Opaque. */
struct tls_ctx;

/*
 * Build a client context. cert_file/key_file, if both set, are offered as a
 * client certificate. 0 with *ctxp set (one reference), or a negative code
 * with *err_r an allocated message saying what failed (caller frees).
 */
int tls_ctx_new_client(const struct tls_ctx_config *cfg, struct tls_ctx **ctxp, char **err_r);
/*
 * Build a server context from cert_file + key_file (both required).
 * Same return convention as tls_ctx_new_client().
 */
int tls_ctx_new_server(const struct tls_ctx_config *cfg, struct tls_ctx **ctxp, char **err_r);
/* Take one more reference; returns ctx. */
struct tls_ctx *tls_ctx_ref(struct tls_ctx *ctx);
/* Drop one reference (freeing at zero) and clear the caller's pointer; NULL is fine. */
void tls_ctx_unref(struct tls_ctx **ctxp);
/* 1 for a server context, 0 for a client context. */
int tls_ctx_is_server(const struct tls_ctx *ctx);

/* Per-connection choices for a client handshake. Zero-initialise. */
struct tls_peer {
	const char *server_name; /* SNI, and the name checked against the certificate; NULL: neither */
	int verify;		 /* 1: chain (PKIX) + hostname must verify inside the handshake */
};

/*
 * Create a gnutls session for one connection, nonblocking, with ctx's
 * credentials and priority; peer is used only by client contexts (may be
 * NULL: no SNI, no verification). The caller (conn.c) sets the transport
 * and drives the handshake, and deinits the session. 0 or KUMO_ETLS with
 * *err_r allocated (if err_r is not NULL).
 */
int tls_session_new(struct tls_ctx *ctx, const struct tls_peer *peer, gnutls_session_t *sp,
		    char **err_r);

/*
 * Write a fresh self-signed certificate for cn (subject CN and DNS SAN,
 * ECDSA P-256, valid from an hour ago for 30 days) and its key (mode 0600)
 * as PEM files. For labs and tests (smtp-sink, unit suites): such a
 * certificate fails verification unless it is itself the trust anchor
 * (tls_ctx_config.ca_file = cert_file). 0 or KUMO_ETLS / KUMO_EIO with
 * *err_r allocated (if err_r is not NULL).
 */
int tls_make_self_signed(const char *cn, const char *cert_file, const char *key_file, char **err_r);

/* Facts about a session for logs and delivery records. */
struct tls_info {
	char version[16];      /* "TLS1.3"; "" before a handshake */
	char cipher[64];       /* "TLS_AES_256_GCM_SHA384" (GnuTLS canonical name) */
	char desc[128];	       /* gnutls_session_get_desc(): "(TLS1.3)-(ECDHE-X25519)-..." */
	int verified;	       /* 1 if verification was asked for and passed (filled by conn_tls_info) */
	unsigned verify_status; /* gnutls_certificate_status_t bits (0 when fine or not checked) */
	char verify_text[256]; /* why verification failed; "" if it did not */
	char peer_dn[256];     /* subject DN of the peer's first certificate; "" if none */
};

/*
 * Fill info from a session (before, during or after the handshake);
 * `verified` is left 0: only the session's owner knows what was asked.
 */
void tls_session_info(gnutls_session_t s, struct tls_info *info);

#endif
