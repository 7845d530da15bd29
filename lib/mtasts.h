/*
 * mtasts.h: SMTP MTA Strict Transport Security (RFC 8461). This module owns
 * the parsing of the `_mta-sts.DOMAIN` TXT record (the DNS lookup itself is
 * the dns module's job), the HTTPS fetch of
 * https://mta-sts.DOMAIN/.well-known/mta-sts.txt through libcurl, the policy
 * parser and validator, MX pattern matching, a per-domain policy cache that
 * honours max_age, and the mapping of a policy onto KumoMTA's enable_mta_sts
 * rules (seed 001). It does not depend on the tls module: the TLS decision is
 * its own enum, which the caller maps onto its enable_tls modes.
 */
#ifndef KUMO_MTASTS_H
#define KUMO_MTASTS_H

#include <stddef.h>
#include <time.h>

/* RFC 8461 3.2: max_age is at most 31557600 s (about one year); larger values are capped. */
#define MTASTS_MAX_AGE_CAP 31557600UL
/* Policy bodies larger than this are refused: a real policy is a few hundred bytes. */
#define MTASTS_MAX_BODY (64 * 1024)
/* The TXT id is 1 to 32 letters or digits; buffers hold that plus a terminator. */
#define MTASTS_ID_MAX 32

enum mtasts_mode {
	MTASTS_MODE_NONE = 0,
	MTASTS_MODE_TESTING,
	MTASTS_MODE_ENFORCE,
};

/* A parsed, validated policy. mx[] holds lower-case patterns without a trailing dot. */
struct mtasts_policy {
	enum mtasts_mode mode;
	unsigned long max_age; /* seconds, already capped at MTASTS_MAX_AGE_CAP */
	int max_age_capped;    /* 1 if the document asked for more than the cap */
	char **mx;
	size_t mx_count;
};

/* "none", "testing" or "enforce"; never NULL. */
const char *mtasts_mode_str(enum mtasts_mode mode);

/*
 * Pick the MTA-STS record among the TXT records of _mta-sts.DOMAIN (each
 * record's strings already concatenated). Records that do not begin with
 * "v=STSv1" are discarded (RFC 8461 3.1). Returns 0 and the policy id in
 * id_r (MTASTS_ID_MAX + 1 bytes) when exactly one valid record remains;
 * KUMO_ENOTFOUND when none does; KUMO_EPARSE when more than one remains or
 * the one left is malformed. Any non-zero result means "this domain has no
 * usable MTA-STS record"; err_r (optional, caller frees) says why.
 */
int mtasts_txt_parse(const char *const *records, size_t count, char *id_r, char **err_r);

/*
 * Parse a policy document (RFC 8461 3.2) into *policy, which the caller
 * later releases with mtasts_policy_clear(). Returns 0, or KUMO_EPARSE with
 * err_r (optional, caller frees) naming the line: `line 3: mode: "strict":
 * must be enforce, testing or none`. On failure *policy is left empty. Total:
 * any bytes are fine, including NULs.
 */
int mtasts_policy_parse(const char *text, size_t len, struct mtasts_policy *policy, char **err_r);
/* Free the mx list and reset the policy to an empty "none" policy. NULL is fine. */
void mtasts_policy_clear(struct mtasts_policy *policy);
/* Move src's contents into dst (which is cleared first); src is left empty. */
void mtasts_policy_move(struct mtasts_policy *dst, struct mtasts_policy *src);

/*
 * Does mx_host match one of the policy's mx patterns? Case-insensitive, a
 * trailing dot on mx_host ignored; "*.example.test" matches exactly one extra
 * leftmost label. Returns 1 or 0.
 */
int mtasts_mx_match(const struct mtasts_policy *policy, const char *mx_host);

/*
 * What a policy means for one candidate MX host under enable_mta_sts (seed
 * 001). When every candidate gets MTASTS_TLS_SKIP_MX the caller defers the
 * queue: enforce never falls back to a host outside the policy.
 */
enum mtasts_tls {
	MTASTS_TLS_CONFIGURED = 0, /* no policy or mode none: use the configured enable_tls */
	MTASTS_TLS_REQUIRED,       /* enforce and the host matches: enable_tls = Required */
	MTASTS_TLS_SKIP_MX,        /* enforce and the host does not match: do not use it */
	MTASTS_TLS_OPPORTUNISTIC_INSECURE, /* testing: enable_tls = OpportunisticInsecure */
};

/* The decision for mx_host under policy (NULL: no policy). */
enum mtasts_tls mtasts_tls_decide(const struct mtasts_policy *policy, const char *mx_host);
/* "configured", "Required", "skip-mx", "OpportunisticInsecure"; never NULL. */
const char *mtasts_tls_str(enum mtasts_tls decision);

/*
 * The HTTPS fetch. libcurl must be initialised once per process, on the main
 * thread before any other thread exists: mtasts_global_init() at start-up
 * and mtasts_global_cleanup() at exit (they wrap curl_global_init/cleanup).
 */
int mtasts_global_init(void);
void mtasts_global_cleanup(void);

struct mtasts_fetch_opts {
	/* For labs, as curl --connect-to: "mta-sts.example.test:443:127.0.0.1:8443"; NULL: none */
	const char *connect_to;
	/* A PEM file of trusted CAs instead of the system store; NULL: system store. */
	const char *cafile;
	/* Whole-request deadline in milliseconds; 0: MTASTS_FETCH_TIMEOUT_MS. */
	long timeout_ms;
};
#define MTASTS_FETCH_TIMEOUT_MS 30000L

/*
 * Fetch and parse https://mta-sts.DOMAIN/.well-known/mta-sts.txt. Blocking:
 * the daemon runs it in libuv's thread pool, tls-probe calls it directly; it
 * touches no shared state (libcurl signals are disabled). Redirects are not
 * followed and count as failures, only HTTP 200 is accepted, the body is
 * capped at MTASTS_MAX_BODY, proxies from the environment are ignored, and
 * the Content-Type must be text/plain (parameters ignored; a missing or
 * different media type is refused, since RFC 8461 3.3 asks senders to check
 * it against hosts that serve user content).
 *
 * Returns 0 with *policy filled (caller clears it) and, if body_r is not
 * NULL, the raw document (caller frees). Failures: KUMO_EINVAL (bad domain),
 * KUMO_EIO (connection), KUMO_ETLS (handshake or certificate),
 * KUMO_ETIMEDOUT, KUMO_EPROTO (status other than 200, a redirect, wrong
 * content type), KUMO_ENOSPACE (body too large), KUMO_EPARSE (bad policy);
 * err_r (optional, caller frees) says what happened.
 */
int mtasts_fetch(const char *domain, const struct mtasts_fetch_opts *opts,
                 struct mtasts_policy *policy, char **body_r, char **err_r);

/*
 * The policy cache, keyed by lower-case domain. Each entry holds a policy,
 * the TXT id it was fetched under and its expiry (fetch time + max_age). Not
 * thread-safe: use it from the loop thread only and hand fetches to workers.
 * Times are injected so tests can move the clock.
 *
 * The rules (RFC 8461): fetch when there is no unexpired entry or when
 * the TXT id differs from the cached one; a failed fetch keeps an unexpired
 * cached policy; an expired entry is dropped when it is seen.
 */
struct mtasts_cache;

/* A cache holding at most max_entries domains (0: 10000); the caller frees it. */
struct mtasts_cache *mtasts_cache_new(size_t max_entries);
void mtasts_cache_free(struct mtasts_cache **cachep);
/* Number of entries held (expired ones not yet seen included). */
size_t mtasts_cache_count(const struct mtasts_cache *cache);

/*
 * The unexpired cached policy for domain, or NULL (an expired entry is
 * dropped). id_r, if not NULL, gets the cached id. Both pointers stay valid
 * until the next call that changes the cache.
 */
const struct mtasts_policy *mtasts_cache_get(struct mtasts_cache *cache, const char *domain,
                                             time_t now, const char **id_r);

/*
 * Whether a fetch is needed, given the id from the TXT record just looked up
 * (NULL: no usable record, in which case an unexpired cached policy is used
 * as it is). Returns 1 (fetch) or 0 (use what get returns).
 */
int mtasts_cache_needs_fetch(struct mtasts_cache *cache, const char *domain, const char *txt_id,
                             time_t now);

/* Store a freshly fetched policy under id, taking policy's contents (it is left empty). */
void mtasts_cache_put(struct mtasts_cache *cache, const char *domain, const char *id,
                      struct mtasts_policy *policy, time_t now);

/*
 * Record the outcome of a fetch and return the policy to apply now, or NULL:
 * with fetch_rc == 0 this is mtasts_cache_put() then get(); otherwise the
 * cache is left alone and an unexpired cached policy (if any) is returned.
 */
const struct mtasts_policy *mtasts_cache_update(struct mtasts_cache *cache, const char *domain,
                                                const char *id, int fetch_rc,
                                                struct mtasts_policy *fetched, time_t now);

/* Remove domain's entry; returns 1 if there was one. */
int mtasts_cache_remove(struct mtasts_cache *cache, const char *domain);

#endif
