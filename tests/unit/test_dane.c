/*
 * test_dane.c: TLSA parsing and RFC 7672 chain checks against certificates
 * made at test time with the GnuTLS x509 API (a real CA, a leaf it issued,
 * an attacker CA with the real CA's name and an attacker leaf). Expected
 * TLSA data is computed independently of lib/dane.c: SPKI digests come
 * from gnutls_x509_crt_get_key_id(), certificate digests from
 * gnutls_hash_fast() over the DER. Covers DANE-EE 3 1 1 / 3 0 1 / 3 0 0 /
 * 3 1 2, DANE-TA 2 1 1 / 2 0 1, the LAB.md forged chain, wrong names, an
 * expired leaf (accepted by DANE-EE, refused by DANE-TA), unusable
 * usages 0/1, and dane_session_install() inside real in-memory handshakes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/types.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "dane.h"
#include "kumo.h"
#include "unit.h"

#define MX "mx.example.test"

struct pair {
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
	gnutls_datum_t der;
};

static struct pair real_ca, real_leaf, evil_ca, evil_leaf, expired_leaf, evil_direct;
static unsigned serial_next = 1;

/* A fresh ECDSA key and a certificate for cn, signed by issuer (NULL: self-signed). */
static void
make_pair(struct pair *p, const char *cn, const char *san, int is_ca, const struct pair *issuer,
	  time_t from, time_t until)
{
	unsigned char serial[4];
	int ret;

	ret = gnutls_x509_privkey_init(&p->key);
	if (ret == 0)
		ret = gnutls_x509_privkey_generate(p->key, GNUTLS_PK_ECDSA,
						   GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	if (ret == 0)
		ret = gnutls_x509_crt_init(&p->crt);
	if (ret == 0)
		ret = gnutls_x509_crt_set_version(p->crt, 3);
	serial[0] = 0;
	serial[1] = 0;
	serial[2] = (unsigned char)(serial_next >> 8);
	serial[3] = (unsigned char)serial_next++;
	if (ret == 0)
		ret = gnutls_x509_crt_set_serial(p->crt, serial, sizeof(serial));
	if (ret == 0)
		ret = gnutls_x509_crt_set_activation_time(p->crt, from);
	if (ret == 0)
		ret = gnutls_x509_crt_set_expiration_time(p->crt, until);
	if (ret == 0)
		ret = gnutls_x509_crt_set_dn_by_oid(p->crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn));
	if (ret == 0 && san != NULL)
		ret = gnutls_x509_crt_set_subject_alt_name(p->crt, GNUTLS_SAN_DNSNAME, san, strlen(san),
							   GNUTLS_FSAN_APPEND);
	if (ret == 0)
		ret = gnutls_x509_crt_set_key(p->crt, p->key);
	if (ret == 0) {
		unsigned char kid[64];
		size_t kn = sizeof(kid);
		ret = gnutls_x509_crt_get_key_id(p->crt, 0, kid, &kn);
		if (ret == 0)
			ret = gnutls_x509_crt_set_subject_key_id(p->crt, kid, kn);
		kn = sizeof(kid);
		if (ret == 0 && issuer != NULL)
			ret = gnutls_x509_crt_get_subject_key_id(issuer->crt, kid, &kn, NULL);
		if (ret == 0 && issuer != NULL)
			ret = gnutls_x509_crt_set_authority_key_id(p->crt, kid, kn);
	}
	if (ret == 0)
		ret = gnutls_x509_crt_set_basic_constraints(p->crt, is_ca, -1);
	if (ret == 0)
		ret = gnutls_x509_crt_set_key_usage(p->crt, is_ca ? GNUTLS_KEY_KEY_CERT_SIGN |
									GNUTLS_KEY_CRL_SIGN
								  : GNUTLS_KEY_DIGITAL_SIGNATURE);
	if (ret == 0)
		ret = gnutls_x509_crt_sign2(p->crt, issuer ? issuer->crt : p->crt,
					    issuer ? issuer->key : p->key, GNUTLS_DIG_SHA256, 0);
	if (ret == 0)
		ret = gnutls_x509_crt_export2(p->crt, GNUTLS_X509_FMT_DER, &p->der);
	if (ret != 0) {
		fprintf(stderr, "make_pair %s: %s\n", cn, gnutls_strerror(ret));
		exit(2);
	}
}

static void
free_pair(struct pair *p)
{
	gnutls_x509_crt_deinit(p->crt);
	gnutls_x509_privkey_deinit(p->key);
	gnutls_free(p->der.data);
}

/* Owned storage for one record's data. */
struct rec {
	struct dane_tlsa t;
	unsigned char data[64];
};

static void
rec_spki(struct rec *r, unsigned usage, unsigned mtype, const struct pair *p)
{
	size_t n = sizeof(r->data);
	unsigned flag = mtype == 2 ? GNUTLS_KEYID_USE_SHA512 : GNUTLS_KEYID_USE_SHA256;

	CU_ASSERT_EQUAL_FATAL(gnutls_x509_crt_get_key_id(p->crt, flag, r->data, &n), 0);
	r->t.usage = usage;
	r->t.selector = 1;
	r->t.mtype = mtype;
	r->t.data = r->data;
	r->t.len = n;
}

static void
rec_cert(struct rec *r, unsigned usage, unsigned mtype, const struct pair *p)
{
	gnutls_digest_algorithm_t alg = mtype == 2 ? GNUTLS_DIG_SHA512 : GNUTLS_DIG_SHA256;

	CU_ASSERT_EQUAL_FATAL(gnutls_hash_fast(alg, p->der.data, p->der.size, r->data), 0);
	r->t.usage = usage;
	r->t.selector = 0;
	r->t.mtype = mtype;
	r->t.data = r->data;
	r->t.len = mtype == 2 ? 64 : 32;
}

static enum dane_verdict
check1(const struct rec *r, const struct pair *const *chain, size_t n, const char *name,
       const char *what)
{
	gnutls_datum_t c[4];
	const char *names[2] = { name, "example.test" };
	struct dane_result res;
	size_t i;

	for (i = 0; i < n; i++)
		c[i] = chain[i]->der;
	dane_verify(&r->t, 1, c, n, names, 2, &res);
	printf("  %s: %s: %s\n", what, dane_verdict_str(res.verdict), res.reason);
	return res.verdict;
}

static void
test_parse(void)
{
	static const unsigned char good[3 + 32] = { 3, 1, 1, 0xab };
	static const unsigned char shortdig[3 + 31] = { 3, 1, 1 };
	static const unsigned char full[5] = { 2, 0, 0, 0x01, 0xff };
	struct dane_tlsa t;
	char *s;

	UNIT_EXPECT_INT("parse 3 1 1", dane_tlsa_parse(good, sizeof(good), &t), 0);
	UNIT_EXPECT_INT("usage", t.usage, 3);
	UNIT_EXPECT_INT("len", t.len, 32);
	UNIT_EXPECT_INT("usable", dane_tlsa_usable(&t), 1);
	UNIT_EXPECT_INT("short digest", dane_tlsa_parse(shortdig, sizeof(shortdig), &t), KUMO_EPARSE);
	UNIT_EXPECT_INT("3 bytes", dane_tlsa_parse(good, 3, &t), KUMO_EPARSE);
	UNIT_EXPECT_INT("NULL", dane_tlsa_parse(NULL, 0, &t), KUMO_EPARSE);
	UNIT_EXPECT_INT("parse 2 0 0", dane_tlsa_parse(full, sizeof(full), &t), 0);
	s = dane_tlsa_str(&t);
	UNIT_EXPECT_STR("str", s, "2 0 0 01ff");
	free(s);
	t.usage = 1;
	UNIT_EXPECT_INT("usage 1 unusable", dane_tlsa_usable(&t), 0);
	t.usage = 3;
	t.selector = 2;
	UNIT_EXPECT_INT("selector 2 unusable", dane_tlsa_usable(&t), 0);
	t.selector = 0;
	t.mtype = 3;
	UNIT_EXPECT_INT("mtype 3 unusable", dane_tlsa_usable(&t), 0);
	UNIT_EXPECT_STR("verdict str", dane_verdict_str(DANE_NO_USABLE), "no-usable-tlsa");
}

static void
test_dane_ee(void)
{
	const struct pair *chain[] = { &real_leaf, &real_ca };
	const struct pair *exp_chain[] = { &expired_leaf, &real_ca };
	struct rec r;

	rec_spki(&r, 3, 1, &real_leaf);
	UNIT_EXPECT_INT("3 1 1", check1(&r, chain, 2, MX, "3 1 1"), DANE_VERIFIED);
	/* DANE-EE checks no name. */
	UNIT_EXPECT_INT("3 1 1 other name", check1(&r, chain, 2, "other.test", "3 1 1 name"),
			DANE_VERIFIED);
	r.data[5] ^= 1;
	UNIT_EXPECT_INT("3 1 1 mismatch", check1(&r, chain, 2, MX, "3 1 1 bad"), DANE_FAILED);
	rec_spki(&r, 3, 1, &real_ca);
	UNIT_EXPECT_INT("3 1 1 of the CA", check1(&r, chain, 2, MX, "3 1 1 ca"), DANE_FAILED);
	rec_cert(&r, 3, 1, &real_leaf);
	UNIT_EXPECT_INT("3 0 1", check1(&r, chain, 2, MX, "3 0 1"), DANE_VERIFIED);
	rec_cert(&r, 3, 2, &real_leaf);
	UNIT_EXPECT_INT("3 0 2", check1(&r, chain, 2, MX, "3 0 2"), DANE_VERIFIED);
	rec_spki(&r, 3, 2, &real_leaf);
	UNIT_EXPECT_INT("3 1 2", check1(&r, chain, 2, MX, "3 1 2"), DANE_VERIFIED);
	/* 3 0 0: the whole certificate. */
	{
		struct dane_tlsa t = { 3, 0, 0, real_leaf.der.data, real_leaf.der.size };
		struct dane_result res;
		gnutls_datum_t c[1] = { real_leaf.der };
		UNIT_EXPECT_INT("3 0 0", dane_verify(&t, 1, c, 1, NULL, 0, &res), DANE_VERIFIED);
		t.len--;
		UNIT_EXPECT_INT("3 0 0 short", dane_verify(&t, 1, c, 1, NULL, 0, &res), DANE_FAILED);
	}
	/* An expired leaf is fine under DANE-EE (RFC 7672 3.1.1). */
	rec_spki(&r, 3, 1, &expired_leaf);
	UNIT_EXPECT_INT("3 1 1 expired", check1(&r, exp_chain, 2, MX, "3 1 1 expired"), DANE_VERIFIED);
}

static void
test_dane_ta(void)
{
	const struct pair *chain[] = { &real_leaf, &real_ca };
	const struct pair *leaf_only[] = { &real_leaf };
	const struct pair *forged[] = { &evil_leaf, &evil_ca, &real_ca };
	const struct pair *forged2[] = { &evil_direct, &real_ca };
	const struct pair *exp_chain[] = { &expired_leaf, &real_ca };
	struct rec r;

	rec_spki(&r, 2, 1, &real_ca);
	UNIT_EXPECT_INT("2 1 1", check1(&r, chain, 2, MX, "2 1 1"), DANE_VERIFIED);
	UNIT_EXPECT_INT("2 1 1 next-hop name", check1(&r, chain, 2, "wrong.test", "2 1 1 nexthop"),
			DANE_FAILED);
	UNIT_EXPECT_INT("2 1 1 wrong name", check1(&r, chain, 2, "other.example.test", "wrong name"),
			DANE_FAILED);
	UNIT_EXPECT_INT("2 1 1 forged chain", check1(&r, forged, 3, MX, "forged"), DANE_FAILED);
	UNIT_EXPECT_INT("2 1 1 forged direct", check1(&r, forged2, 2, MX, "forged2"), DANE_FAILED);
	UNIT_EXPECT_INT("2 1 1 TA not sent", check1(&r, leaf_only, 1, MX, "ta absent"), DANE_FAILED);
	UNIT_EXPECT_INT("2 1 1 expired leaf", check1(&r, exp_chain, 2, MX, "expired"), DANE_FAILED);
	r.data[0] ^= 0x80;
	UNIT_EXPECT_INT("2 1 1 mismatch", check1(&r, chain, 2, MX, "2 1 1 bad"), DANE_FAILED);
	rec_cert(&r, 2, 1, &real_ca);
	UNIT_EXPECT_INT("2 0 1", check1(&r, chain, 2, MX, "2 0 1"), DANE_VERIFIED);
	/* A DANE-TA record matching the leaf itself: the leaf is its own anchor (dates and names still checked). */
	rec_cert(&r, 2, 1, &real_leaf);
	UNIT_EXPECT_INT("2 0 1 of the leaf", check1(&r, chain, 2, MX, "2 0 1 leaf"), DANE_VERIFIED);
	UNIT_EXPECT_INT("2 0 1 of the leaf, wrong name", check1(&r, chain, 2, "nope.test", "2 0 1 leaf name"),
			DANE_FAILED);
	rec_cert(&r, 2, 1, &expired_leaf);
	UNIT_EXPECT_INT("2 0 1 of an expired leaf", check1(&r, exp_chain, 2, MX, "2 0 1 expired leaf"),
			DANE_FAILED);
	/* The attacker's CA as TA does authenticate the attacker's leaf: the record decides. */
	rec_spki(&r, 2, 1, &evil_ca);
	UNIT_EXPECT_INT("2 1 1 evil ca", check1(&r, forged, 3, MX, "evil ta"), DANE_VERIFIED);
	/* The next-hop domain is a reference name too: names[1] is example.test. */
	{
		struct dane_result res;
		gnutls_datum_t c[2] = { real_leaf.der, real_ca.der };
		const char *names[] = { "nomatch.test", MX };
		rec_spki(&r, 2, 1, &real_ca);
		UNIT_EXPECT_INT("second name", dane_verify(&r.t, 1, c, 2, names, 2, &res), DANE_VERIFIED);
		UNIT_EXPECT_INT("depth", res.depth, 1);
		UNIT_EXPECT_INT("record", res.record, 0);
		UNIT_EXPECT_INT("no names", dane_verify(&r.t, 1, c, 2, NULL, 0, &res), DANE_FAILED);
	}
}

static void
test_unusable(void)
{
	struct rec r[3];
	struct dane_tlsa t[3];
	struct dane_result res;
	gnutls_datum_t c[2] = { real_leaf.der, real_ca.der };
	const char *names[] = { MX };

	rec_spki(&r[0], 0, 1, &real_ca);   /* PKIX-TA: ignored */
	rec_spki(&r[1], 1, 1, &real_leaf); /* PKIX-EE: ignored */
	rec_spki(&r[2], 3, 1, &real_ca);   /* usable, does not match */
	t[0] = r[0].t;
	t[1] = r[1].t;
	t[2] = r[2].t;
	UNIT_EXPECT_INT("0/1 only", dane_verify(t, 2, c, 2, names, 1, &res), DANE_NO_USABLE);
	UNIT_EXPECT_STR("reason", res.reason, "no usable TLSA records");
	UNIT_EXPECT_INT("usable count", res.usable, 0);
	UNIT_EXPECT_INT("0/1 + bad 3", dane_verify(t, 3, c, 2, names, 1, &res), DANE_FAILED);
	UNIT_EXPECT_INT("usable count 1", res.usable, 1);
	UNIT_EXPECT_INT("empty set", dane_verify(t, 0, c, 2, names, 1, &res), DANE_NO_USABLE);
	rec_spki(&r[2], 3, 1, &real_leaf);
	t[2] = r[2].t;
	UNIT_EXPECT_INT("0/1 + good 3", dane_verify(t, 3, c, 2, names, 1, &res), DANE_VERIFIED);
	UNIT_EXPECT_INT("matched record", res.record, 2);
	UNIT_EXPECT_INT("no chain", dane_verify(t, 3, NULL, 0, names, 1, &res), DANE_FAILED);
	UNIT_EXPECT_INT("record unusable", dane_check_record(&t[0], c, 2, names, 1, NULL, NULL, 0),
			DANE_MATCH_UNUSABLE);
}

static void
test_garbage_chain(void)
{
	static unsigned char junk[] = "not a certificate at all";
	gnutls_datum_t c[2] = { { junk, sizeof(junk) }, { junk, 3 } };
	struct rec r;
	struct dane_result res;
	const char *names[] = { MX };

	rec_spki(&r, 3, 1, &real_leaf);
	UNIT_EXPECT_INT("junk EE", dane_verify(&r.t, 1, c, 2, names, 1, &res), DANE_FAILED);
	rec_spki(&r, 2, 1, &real_ca);
	UNIT_EXPECT_INT("junk TA", dane_verify(&r.t, 1, c, 2, names, 1, &res), DANE_FAILED);
	rec_cert(&r, 2, 1, &real_ca);
	c[1] = real_ca.der;
	UNIT_EXPECT_INT("junk leaf, real TA", dane_verify(&r.t, 1, c, 2, names, 1, &res),
			DANE_FAILED);
}


/* ---- in-memory handshakes: two gnutls sessions joined by two byte queues ---- */

struct pipe {
	unsigned char data[65536];
	size_t len;
};

struct end {
	gnutls_session_t s;
	struct pipe *in, *out;
};

static ssize_t
mem_push(gnutls_transport_ptr_t p, const void *data, size_t n)
{
	struct end *e = p;

	if (n > sizeof(e->out->data) - e->out->len) {
		gnutls_transport_set_errno(e->s, EAGAIN);
		return -1;
	}
	memcpy(e->out->data + e->out->len, data, n);
	e->out->len += n;
	return (ssize_t)n;
}

static ssize_t
mem_pull(gnutls_transport_ptr_t p, void *data, size_t n)
{
	struct end *e = p;

	if (e->in->len == 0) {
		gnutls_transport_set_errno(e->s, EAGAIN);
		return -1;
	}
	if (n > e->in->len)
		n = e->in->len;
	memcpy(data, e->in->data, n);
	memmove(e->in->data, e->in->data + n, e->in->len - n);
	e->in->len -= n;
	return (ssize_t)n;
}

/*
 * A client with chk installed against a server presenting chain (leaf's key
 * is the first pair's). Returns the client's final handshake code.
 */
static int
handshake(const struct pair *const *chain, size_t n, struct dane_check *chk)
{
	static struct pipe c2s, s2c;
	struct end cl = { NULL, &s2c, &c2s }, sv = { NULL, &c2s, &s2c };
	gnutls_certificate_credentials_t ccred, scred;
	gnutls_x509_crt_t crts[4];
	int cr = GNUTLS_E_AGAIN, sr = GNUTLS_E_AGAIN, i;
	size_t k;

	c2s.len = s2c.len = 0;
	for (k = 0; k < n; k++)
		crts[k] = chain[k]->crt;
	CU_ASSERT_EQUAL_FATAL(gnutls_certificate_allocate_credentials(&scred), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_certificate_set_x509_key(scred, crts, (int)n, chain[0]->key), 0);
	CU_ASSERT_EQUAL_FATAL(gnutls_certificate_allocate_credentials(&ccred), 0);
	gnutls_init(&cl.s, GNUTLS_CLIENT | GNUTLS_NONBLOCK);
	gnutls_init(&sv.s, GNUTLS_SERVER | GNUTLS_NONBLOCK);
	gnutls_set_default_priority(cl.s);
	gnutls_set_default_priority(sv.s);
	gnutls_credentials_set(cl.s, GNUTLS_CRD_CERTIFICATE, ccred);
	gnutls_credentials_set(sv.s, GNUTLS_CRD_CERTIFICATE, scred);
	gnutls_transport_set_ptr(cl.s, &cl);
	gnutls_transport_set_ptr(sv.s, &sv);
	gnutls_transport_set_push_function(cl.s, mem_push);
	gnutls_transport_set_pull_function(cl.s, mem_pull);
	gnutls_transport_set_push_function(sv.s, mem_push);
	gnutls_transport_set_pull_function(sv.s, mem_pull);
	gnutls_server_name_set(cl.s, GNUTLS_NAME_DNS, MX, strlen(MX));
	dane_session_install(cl.s, chk);
	/* Bounded: a handshake is a few flights. */
	for (i = 0; i < 50 && (cr == GNUTLS_E_AGAIN || sr == GNUTLS_E_AGAIN); i++) {
		if (cr == GNUTLS_E_AGAIN || cr == GNUTLS_E_INTERRUPTED)
			cr = gnutls_handshake(cl.s);
		if (sr == GNUTLS_E_AGAIN || sr == GNUTLS_E_INTERRUPTED)
			sr = gnutls_handshake(sv.s);
		if (cr < 0 && cr != GNUTLS_E_AGAIN)
			break;
	}
	gnutls_deinit(cl.s);
	gnutls_deinit(sv.s);
	gnutls_certificate_free_credentials(ccred);
	gnutls_certificate_free_credentials(scred);
	return cr;
}

static void
test_in_handshake(void)
{
	const struct pair *chain[] = { &real_leaf, &real_ca };
	const struct pair *forged[] = { &evil_leaf, &evil_ca, &real_ca };
	const char *names[] = { MX, "example.test" };
	struct rec ee, ta, pkix;
	struct dane_check chk;
	int ret;

	rec_spki(&ee, 3, 1, &real_leaf);
	memset(&chk, 0, sizeof(chk));
	chk.recs = &ee.t;
	chk.n = 1;
	ret = handshake(chain, 2, &chk);
	printf("  3 1 1 in handshake: %s; %s\n", gnutls_strerror(ret), chk.result.reason);
	UNIT_EXPECT_INT("3 1 1 handshake", ret, 0);
	UNIT_EXPECT_INT("3 1 1 checked", chk.checked, 1);
	UNIT_EXPECT_INT("3 1 1 verdict", chk.result.verdict, DANE_VERIFIED);

	ee.data[0] ^= 1;
	ret = handshake(chain, 2, &chk);
	printf("  3 1 1 bad in handshake: %s; %s\n", gnutls_strerror(ret), chk.result.reason);
	UNIT_EXPECT_INT("bad 3 1 1 aborts the handshake", ret, GNUTLS_E_CERTIFICATE_ERROR);
	UNIT_EXPECT_INT("bad 3 1 1 verdict", chk.result.verdict, DANE_FAILED);

	rec_spki(&ta, 2, 1, &real_ca);
	chk.recs = &ta.t;
	chk.names = names;
	chk.n_names = 2;
	ret = handshake(chain, 2, &chk);
	printf("  2 1 1 in handshake: %s; %s\n", gnutls_strerror(ret), chk.result.reason);
	UNIT_EXPECT_INT("2 1 1 handshake", ret, 0);
	UNIT_EXPECT_INT("2 1 1 verdict", chk.result.verdict, DANE_VERIFIED);
	/* A GnuTLS server trims this chain after the attacker's self-signed CA, so the
	 * client sees no TA; the full forged chain is covered by test_dane_ta and by
	 * tests/integration/tls-probe-dane.sh (an OpenSSL server). */
	ret = handshake(forged, 3, &chk);
	printf("  forged chain in handshake: %s; %s\n", gnutls_strerror(ret), chk.result.reason);
	UNIT_EXPECT_INT("forged chain aborts the handshake", ret, GNUTLS_E_CERTIFICATE_ERROR);

	rec_spki(&pkix, 1, 1, &real_leaf);
	chk.recs = &pkix.t;
	ret = handshake(forged, 3, &chk);
	UNIT_EXPECT_INT("no usable TLSA: handshake goes on", ret, 0);
	UNIT_EXPECT_INT("no usable verdict", chk.result.verdict, DANE_NO_USABLE);
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{ "parse", test_parse },
		{ "dane-ee", test_dane_ee },
		{ "dane-ta", test_dane_ta },
		{ "unusable", test_unusable },
		{ "garbage chain", test_garbage_chain },
		{ "in handshake", test_in_handshake },
		{ NULL, NULL },
	};
	time_t now = time(NULL);
	int rc;

	make_pair(&real_ca, "Example Test CA", NULL, 1, NULL, now - 3600, now + 30 * 86400);
	make_pair(&real_leaf, MX, MX, 0, &real_ca, now - 3600, now + 30 * 86400);
	make_pair(&expired_leaf, MX, MX, 0, &real_ca, now - 10 * 86400, now - 86400);
	/* The attacker reuses the real CA's name for its own CA. */
	make_pair(&evil_ca, "Example Test CA", NULL, 1, NULL, now - 3600, now + 30 * 86400);
	make_pair(&evil_leaf, MX, MX, 0, &evil_ca, now - 3600, now + 30 * 86400);
	make_pair(&evil_direct, MX, MX, 0, &evil_ca, now - 3600, now + 30 * 86400);
	rc = unit_run("dane", tests);
	free_pair(&real_ca);
	free_pair(&real_leaf);
	free_pair(&expired_leaf);
	free_pair(&evil_ca);
	free_pair(&evil_leaf);
	free_pair(&evil_direct);
	return rc;
}
