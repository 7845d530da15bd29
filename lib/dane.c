/*
 * dane.c: TLSA matching and DANE-TA chain verification for SMTP (RFC 7672).
 * DANE-EE is a byte comparison (or digest) of the leaf or its SPKI; DANE-TA
 * builds a throwaway gnutls_x509_trust_list per check holding only the
 * matched certificate and verifies the certificates below it against it,
 * then checks the leaf's names. Nothing is cached between calls.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "dane.h"
#include "kumo.h"

int
dane_tlsa_parse(const void *rdata, size_t len, struct dane_tlsa *t)
{
	const unsigned char *p = rdata;

	memset(t, 0, sizeof(*t));
	if (p == NULL || len < 4)
		return KUMO_EPARSE;
	t->usage = p[0];
	t->selector = p[1];
	t->mtype = p[2];
	t->data = p + 3;
	t->len = len - 3;
	if ((t->mtype == DANE_MTYPE_SHA256 && t->len != 32) ||
	    (t->mtype == DANE_MTYPE_SHA512 && t->len != 64))
		return KUMO_EPARSE;
	return 0;
}

int
dane_tlsa_usable(const struct dane_tlsa *t)
{
	if (t->usage != DANE_USAGE_DANE_TA && t->usage != DANE_USAGE_DANE_EE)
		return 0;
	if (t->selector != DANE_SELECTOR_CERT && t->selector != DANE_SELECTOR_SPKI)
		return 0;
	if (t->mtype == DANE_MTYPE_FULL)
		return t->len > 0;
	if (t->mtype == DANE_MTYPE_SHA256)
		return t->len == 32;
	if (t->mtype == DANE_MTYPE_SHA512)
		return t->len == 64;
	return 0;
}

char *
dane_tlsa_str(const struct dane_tlsa *t)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = t->len, i, off;
	char *s = xmalloc(3 * 4 + 2 * n + 1);

	off = (size_t)snprintf(s, 13, "%u %u %u ", t->usage & 0xff, t->selector & 0xff,
			       t->mtype & 0xff);
	for (i = 0; i < n; i++) {
		s[off++] = hex[t->data[i] >> 4];
		s[off++] = hex[t->data[i] & 15];
	}
	s[off] = '\0';
	return s;
}

const char *
dane_verdict_str(enum dane_verdict v)
{
	switch (v) {
	case DANE_VERIFIED:
		return "verified";
	case DANE_FAILED:
		return "failed";
	case DANE_NO_USABLE:
		return "no-usable-tlsa";
	}
	return "?";
}

static void
say(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* The DER SubjectPublicKeyInfo of a DER certificate into *out (gnutls_free). 0 or <0. */
static int
spki_der(const gnutls_datum_t *cert, gnutls_datum_t *out)
{
	gnutls_x509_crt_t crt = NULL;
	gnutls_pubkey_t pub = NULL;
	int ret;

	out->data = NULL;
	out->size = 0;
	if ((ret = gnutls_x509_crt_init(&crt)) < 0)
		return ret;
	if ((ret = gnutls_x509_crt_import(crt, cert, GNUTLS_X509_FMT_DER)) < 0)
		goto done;
	if ((ret = gnutls_pubkey_init(&pub)) < 0)
		goto done;
	if ((ret = gnutls_pubkey_import_x509(pub, crt, 0)) < 0)
		goto done;
	ret = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, out);
done:
	if (pub != NULL)
		gnutls_pubkey_deinit(pub);
	gnutls_x509_crt_deinit(crt);
	return ret < 0 ? ret : 0;
}

/* Does record t match the DER certificate cert? 1, 0, or <0 if cert is unreadable. */
static int
record_matches(const struct dane_tlsa *t, const gnutls_datum_t *cert)
{
	gnutls_datum_t spki = { NULL, 0 };
	const unsigned char *p;
	size_t n;
	unsigned char digest[64];
	int ret, match = 0;

	if (t->selector == DANE_SELECTOR_SPKI) {
		if ((ret = spki_der(cert, &spki)) < 0)
			return ret;
		p = spki.data;
		n = spki.size;
	} else {
		p = cert->data;
		n = cert->size;
	}
	switch (t->mtype) {
	case DANE_MTYPE_FULL:
		match = n == t->len && memcmp(p, t->data, n) == 0;
		break;
	case DANE_MTYPE_SHA256:
		ret = gnutls_hash_fast(GNUTLS_DIG_SHA256, p, n, digest);
		match = ret == 0 && t->len == 32 && memcmp(digest, t->data, 32) == 0;
		break;
	case DANE_MTYPE_SHA512:
		ret = gnutls_hash_fast(GNUTLS_DIG_SHA512, p, n, digest);
		match = ret == 0 && t->len == 64 && memcmp(digest, t->data, 64) == 0;
		break;
	}
	gnutls_free(spki.data);
	return match;
}

/* 1 if the certificate matches one of names (RFC 6125 rules, gnutls). */
static int
name_ok(gnutls_x509_crt_t leaf, const char *const *names, size_t n_names, char *why, size_t whylen)
{
	size_t i;

	for (i = 0; i < n_names; i++)
		if (names[i] != NULL && names[i][0] != '\0' &&
		    gnutls_x509_crt_check_hostname2(leaf, names[i], 0))
			return 1;
	if (n_names == 0)
		say(why, whylen, "no reference name to check the certificate against");
	else
		say(why, whylen, "certificate does not match %s%s", names[0] ? names[0] : "",
		    n_names > 1 ? " or the other reference names" : "");
	return 0;
}

/*
 * DANE-TA with the TA at chain[depth]: verify chain[0..depth) against a
 * trust list holding only chain[depth], then the leaf's names. 1 or 0.
 */
static int
verify_below_ta(const gnutls_datum_t *chain, size_t depth, const char *const *names,
		size_t n_names, char *why, size_t whylen)
{
	gnutls_x509_trust_list_t tl = NULL;
	gnutls_x509_crt_t ta = NULL, crts[16];
	size_t n = 0, i;
	unsigned status = 0;
	int ret, ok = 0;
	time_t now = time(NULL);

	memset(crts, 0, sizeof(crts));
	if (depth >= KUMO_NELEM(crts)) {
		say(why, whylen, "chain too long");
		return 0;
	}
	if (gnutls_x509_crt_init(&ta) < 0 ||
	    gnutls_x509_crt_import(ta, &chain[depth], GNUTLS_X509_FMT_DER) < 0) {
		say(why, whylen, "chain[%zu] is not a readable certificate", depth);
		goto done;
	}
	if (depth == 0) {
		/* The TA is the leaf itself: no chain below, only dates and names. */
		if (gnutls_x509_crt_get_expiration_time(ta) < now ||
		    gnutls_x509_crt_get_activation_time(ta) > now) {
			say(why, whylen, "matched the leaf as trust anchor, but it is outside its validity period");
			goto done;
		}
		ok = name_ok(ta, names, n_names, why, whylen);
		if (ok)
			say(why, whylen, "matched the leaf as trust anchor; name ok");
		goto done;
	}
	for (n = 0; n < depth; n++) {
		if (gnutls_x509_crt_init(&crts[n]) < 0 ||
		    gnutls_x509_crt_import(crts[n], &chain[n], GNUTLS_X509_FMT_DER) < 0) {
			say(why, whylen, "chain[%zu] is not a readable certificate", n);
			n++;
			goto done;
		}
	}
	if ((ret = gnutls_x509_trust_list_init(&tl, 0)) < 0) {
		say(why, whylen, "trust list: %s", gnutls_strerror(ret));
		goto done;
	}
	/* add_cas takes ownership of ta on success. */
	if ((ret = gnutls_x509_trust_list_add_cas(tl, &ta, 1, 0)) != 1) {
		say(why, whylen, "trust list: cannot add the matched certificate");
		goto done;
	}
	ta = NULL;
	ret = gnutls_x509_trust_list_verify_crt2(tl, crts, (unsigned)depth, NULL, 0, 0, &status, NULL);
	if (ret < 0) {
		say(why, whylen, "matched chain[%zu]; verification error: %s", depth, gnutls_strerror(ret));
		goto done;
	}
	if (status != 0) {
		gnutls_datum_t out = { NULL, 0 };
		if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) == 0) {
			size_t k;
			say(why, whylen, "matched chain[%zu]; chain below it does not verify: %s", depth,
			    (const char *)out.data);
			gnutls_free(out.data);
			/* gnutls ends its sentences with a blank. */
			for (k = why ? strlen(why) : 0; k > 0 && why[k - 1] == ' '; k--)
				why[k - 1] = '\0';
		} else {
			say(why, whylen, "matched chain[%zu]; chain below it does not verify", depth);
		}
		goto done;
	}
	if (!name_ok(crts[0], names, n_names, why, whylen))
		goto done;
	ok = 1;
	say(why, whylen, "matched chain[%zu] as trust anchor; chain and name verified", depth);
done:
	for (i = 0; i < n; i++)
		if (crts[i] != NULL)
			gnutls_x509_crt_deinit(crts[i]);
	if (ta != NULL)
		gnutls_x509_crt_deinit(ta);
	if (tl != NULL)
		gnutls_x509_trust_list_deinit(tl, 1);
	return ok;
}

enum dane_match
dane_check_record(const struct dane_tlsa *t, const gnutls_datum_t *chain, size_t chain_len,
		  const char *const *names, size_t n_names, int *depth_r, char *why, size_t whylen)
{
	size_t i;
	int m;
	char sub[384];

	if (depth_r != NULL)
		*depth_r = -1;
	if (!dane_tlsa_usable(t)) {
		say(why, whylen, "unusable record (usage %u, selector %u, matching type %u)", t->usage,
		    t->selector, t->mtype);
		return DANE_MATCH_UNUSABLE;
	}
	if (chain == NULL || chain_len == 0) {
		say(why, whylen, "no certificate presented");
		return DANE_MATCH_NONE;
	}
	if (t->usage == DANE_USAGE_DANE_EE) {
		m = record_matches(t, &chain[0]);
		if (m < 0) {
			say(why, whylen, "leaf certificate unreadable: %s", gnutls_strerror(m));
			return DANE_MATCH_NONE;
		}
		if (m == 0) {
			say(why, whylen, "DANE-EE: the leaf's %s does not match",
			    t->selector == DANE_SELECTOR_SPKI ? "public key" : "certificate");
			return DANE_MATCH_NONE;
		}
		if (depth_r != NULL)
			*depth_r = 0;
		say(why, whylen, "DANE-EE: matched the leaf's %s",
		    t->selector == DANE_SELECTOR_SPKI ? "public key" : "certificate");
		return DANE_MATCH_OK;
	}
	/* DANE-TA: try every presented certificate as the anchor, nearest first. */
	snprintf(sub, sizeof(sub), "DANE-TA: no presented certificate matches");
	for (i = 0; i < chain_len; i++) {
		m = record_matches(t, &chain[i]);
		if (m <= 0)
			continue;
		if (verify_below_ta(chain, i, names, n_names, sub, sizeof(sub))) {
			if (depth_r != NULL)
				*depth_r = (int)i;
			say(why, whylen, "DANE-TA: %s", sub);
			return DANE_MATCH_OK;
		}
	}
	say(why, whylen, "%s%s", strncmp(sub, "DANE-TA", 7) == 0 ? "" : "DANE-TA: ", sub);
	return DANE_MATCH_NONE;
}

enum dane_verdict
dane_verify(const struct dane_tlsa *recs, size_t n, const gnutls_datum_t *chain, size_t chain_len,
	    const char *const *names, size_t n_names, struct dane_result *res)
{
	size_t i;
	int depth;
	char why[400];

	memset(res, 0, sizeof(*res));
	res->record = -1;
	res->depth = -1;
	res->verdict = DANE_NO_USABLE;
	for (i = 0; i < n; i++)
		if (dane_tlsa_usable(&recs[i]))
			res->usable++;
	if (res->usable == 0) {
		snprintf(res->reason, sizeof(res->reason), "no usable TLSA records");
		return res->verdict;
	}
	res->verdict = DANE_FAILED;
	snprintf(res->reason, sizeof(res->reason), "no certificate presented");
	if (chain == NULL || chain_len == 0)
		return res->verdict;
	for (i = 0; i < n; i++) {
		switch (dane_check_record(&recs[i], chain, chain_len, names, n_names, &depth, why,
					  sizeof(why))) {
		case DANE_MATCH_OK:
			res->verdict = DANE_VERIFIED;
			res->record = (int)i;
			res->depth = depth;
			snprintf(res->reason, sizeof(res->reason), "record %zu: %s", i, why);
			return res->verdict;
		case DANE_MATCH_NONE:
			snprintf(res->reason, sizeof(res->reason), "record %zu: %s", i, why);
			break;
		case DANE_MATCH_UNUSABLE:
			break;
		}
	}
	return res->verdict;
}

enum dane_verdict
dane_verify_session(gnutls_session_t s, const struct dane_tlsa *recs, size_t n,
		    const char *const *names, size_t n_names, struct dane_result *res)
{
	const gnutls_datum_t *chain = NULL;
	unsigned chain_len = 0;

	if (s != NULL && gnutls_certificate_type_get(s) == GNUTLS_CRT_X509)
		chain = gnutls_certificate_get_peers(s, &chain_len);
	return dane_verify(recs, n, chain, chain ? chain_len : 0, names, n_names, res);
}

/* gnutls's certificate callback: run the DANE check stored as the session pointer. */
static int
session_verify(gnutls_session_t s)
{
	struct dane_check *chk = gnutls_session_get_ptr(s);

	if (chk == NULL)
		return -1;
	dane_verify_session(s, chk->recs, chk->n, chk->names, chk->n_names, &chk->result);
	chk->checked = 1;
	return chk->result.verdict == DANE_FAILED ? -1 : 0;
}

void
dane_session_install(gnutls_session_t s, struct dane_check *chk)
{
	memset(&chk->result, 0, sizeof(chk->result));
	chk->result.record = -1;
	chk->result.depth = -1;
	chk->checked = 0;
	gnutls_session_set_ptr(s, chk);
	gnutls_session_set_verify_function(s, session_verify);
}
