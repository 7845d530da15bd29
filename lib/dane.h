/*
 * dane.h: SMTP DANE (RFC 7672, RFC 7671): TLSA rdata parsing and the check
 * of a peer's certificate chain against a TLSA RRset. Only DANE-TA(2) and
 * DANE-EE(3) are usable for SMTP; PKIX-TA(0) and PKIX-EE(1) records are
 * ignored, as are unknown selectors and matching types.
 *
 * DANE-EE matches the leaf certificate (selector 0) or its public key
 * (selector 1) and checks neither names nor dates. DANE-TA matches a
 * certificate of the presented chain and then verifies the certificates
 * below it with a trust list holding only that certificate, with dates and
 * a hostname check against the reference names (the MX host name and the
 * next-hop domain). libgnutls-dane is deliberately not used for DANE-TA:
 * GnuTLS 3.7.9's version accepts a forged chain (LAB.md).
 *
 * The DNS side (the _25._tcp.HOST TLSA query, secure/bogus) belongs to the
 * dns module; nothing here does I/O.
 */
#ifndef KUMO_DANE_H
#define KUMO_DANE_H

#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>

enum dane_usage {
	DANE_USAGE_PKIX_TA = 0,
	DANE_USAGE_PKIX_EE = 1,
	DANE_USAGE_DANE_TA = 2,
	DANE_USAGE_DANE_EE = 3,
};

enum dane_selector {
	DANE_SELECTOR_CERT = 0,
	DANE_SELECTOR_SPKI = 1,
};

enum dane_mtype {
	DANE_MTYPE_FULL = 0,
	DANE_MTYPE_SHA256 = 1,
	DANE_MTYPE_SHA512 = 2,
};

/* One TLSA record. data points into the caller's memory (not owned). */
struct dane_tlsa {
	unsigned usage, selector, mtype;
	const unsigned char *data;
	size_t len;
};

/*
 * Split raw TLSA rdata (as libunbound returns it) into t; t->data points
 * into rdata. 0, or KUMO_EPARSE when shorter than 4 bytes or when the
 * matching type's digest length is wrong (32 for SHA-256, 64 for SHA-512).
 * Total: any bytes are fine.
 */
int dane_tlsa_parse(const void *rdata, size_t len, struct dane_tlsa *t);

/* 1 if SMTP may use this record (usage 2 or 3, selector 0/1, mtype 0/1/2). */
int dane_tlsa_usable(const struct dane_tlsa *t);

/* "3 1 1 ab12..." (data in lowercase hex, in full); allocated, caller frees. */
char *dane_tlsa_str(const struct dane_tlsa *t);

/* The outcome of checking a chain against a TLSA RRset. */
enum dane_verdict {
	DANE_VERIFIED = 0, /* a usable record matched (and, for DANE-TA, the chain verified) */
	DANE_FAILED,	   /* usable records exist; none authenticates the chain */
	DANE_NO_USABLE,	   /* no usable record: DANE does not apply (RFC 7672 2.2) */
};

/* "verified", "failed", "no-usable-tlsa"; never NULL. */
const char *dane_verdict_str(enum dane_verdict v);

/* The outcome of one record against one chain. */
enum dane_match {
	DANE_MATCH_OK = 0,   /* authenticates the chain */
	DANE_MATCH_NONE,     /* usable, does not authenticate the chain */
	DANE_MATCH_UNUSABLE, /* usage 0/1 or unknown selector/matching type: ignored */
};

/*
 * Check one record against the peer's chain (DER certificates, leaf first,
 * as gnutls_certificate_get_peers() gives them). names (n_names entries)
 * are the reference identifiers for DANE-TA: the leaf must match one of
 * them (RFC 7672 3.2.3; wildcards as in RFC 6125). A DANE-TA record that
 * matches the leaf itself makes the leaf its own anchor: its dates and names
 * are still checked. *depth_r (optional)
 * gets the chain index of the matched certificate. why (optional,
 * whylen bytes) says what happened, e.g. "matched the leaf's public key",
 * "matched chain[2]; chain below it does not verify: ...".
 */
enum dane_match dane_check_record(const struct dane_tlsa *t, const gnutls_datum_t *chain,
				  size_t chain_len, const char *const *names, size_t n_names,
				  int *depth_r, char *why, size_t whylen);

/* The result of dane_verify(). */
struct dane_result {
	enum dane_verdict verdict;
	int record;	  /* index of the authenticating record, -1 if none */
	int depth;	  /* chain index it matched, -1 if none */
	size_t usable;	  /* number of usable records */
	char reason[512]; /* one line for logs and tls-probe */
};

/*
 * Check the chain against every record (see dane_check_record) and sum up:
 * DANE_VERIFIED at the first record that authenticates the chain,
 * DANE_NO_USABLE when no record is usable ("no usable TLSA records"),
 * DANE_FAILED otherwise (reason holds the last record's explanation, or
 * "no certificate presented"). res is always filled; the verdict is also
 * returned.
 */
enum dane_verdict dane_verify(const struct dane_tlsa *recs, size_t n, const gnutls_datum_t *chain,
			      size_t chain_len, const char *const *names, size_t n_names,
			      struct dane_result *res);

/*
 * dane_verify() on a session's peer chain (after or inside the handshake,
 * e.g. from a gnutls_session_set_verify_function callback).
 */
enum dane_verdict dane_verify_session(gnutls_session_t s, const struct dane_tlsa *recs, size_t n,
				      const char *const *names, size_t n_names,
				      struct dane_result *res);

/*
 * DANE inside the handshake, so nothing is sent to an unverified peer: a
 * per-session check that gnutls runs when the peer's certificate arrives.
 * The caller owns chk and keeps it (and the records and names it points
 * to) alive until the session is deinited; chk->result says what happened.
 */
struct dane_check {
	const struct dane_tlsa *recs;
	size_t n;
	const char *const *names;
	size_t n_names;
	struct dane_result result; /* filled by the handshake */
	int checked;		   /* 1 once the check ran */
};

/*
 * Install chk on a client session (gnutls_session_set_verify_function, with
 * chk as the session pointer, which must not be used for anything else).
 * Call before the server's certificate can arrive, e.g. right after
 * conn_starttls() returns (the handshake needs a loop turn to progress).
 * The handshake fails (GNUTLS_E_CERTIFICATE_ERROR) on DANE_FAILED and goes
 * on for DANE_VERIFIED and DANE_NO_USABLE (RFC 7672 2.2: unauthenticated
 * TLS; the caller decides from chk->result). Use it with tls_peer.verify = 0:
 * DANE replaces PKIX for the host.
 */
void dane_session_install(gnutls_session_t s, struct dane_check *chk);

#endif
