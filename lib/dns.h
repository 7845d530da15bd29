/*
 * dns.h: the asynchronous resolver on the libuv loop (libunbound in thread
 * mode, its fd watched by a uv_poll_t), a TTL cache of its answers, and the
 * site_name computed from an MX set (DESIGN.md).
 *
 * Usage: dns_resolver_new() once per loop; dns_resolve_mx(),
 * dns_resolve_addrs() or dns_resolve() start a query and return a handle; the
 * callback runs later on the loop thread, exactly once, never from inside the
 * dns_resolve_*() call itself (cache hits are delivered on the next loop
 * turn), unless the query is cancelled first with dns_cancel() or
 * dns_cancel_arg(); after a cancel the callback never runs. A caller being
 * freed cancels its queries (dns_cancel_arg(res, self) is the easy way).
 *
 * Identical queries in flight share one libunbound lookup; answers are kept
 * for their TTL (clamped by the options) and shared by later queries.
 * Everything here is called from the loop's thread only.
 */
#ifndef KUMO_DNS_H
#define KUMO_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

/* The outcome of a query, from the caller's point of view. */
enum dns_status {
	DNS_OK = 0,	/* data: mx / addrs / rr below are filled */
	DNS_NODATA,	/* the name exists, no record of that type; for MX: no MX
			   records, and mx[] holds the implicit MX (the domain itself,
			   preference 0, RFC 5321 5.1) */
	DNS_NULL_MX,	/* MX only: the single null MX "." (RFC 7505): no mail */
	DNS_NXDOMAIN,	/* the name does not exist: permanent */
	DNS_TEMPFAIL,	/* SERVFAIL, REFUSED, timeout, resolver error: try later */
	DNS_BOGUS,	/* DNSSEC validation failed: treat as a failure, never as
			   insecure data (temporary for delivery purposes) */
};

/* "ok", "nodata", "null-mx", "nxdomain", "tempfail", "bogus". */
const char *dns_status_str(enum dns_status st);

/* DNS record types the callers use (values from the IANA registry). */
#define DNS_TYPE_A 1
#define DNS_TYPE_MX 15
#define DNS_TYPE_TXT 16
#define DNS_TYPE_AAAA 28
#define DNS_TYPE_TLSA 52

struct dns_mx {
	char *host; /* lowercase, no trailing dot */
	int pref;
};

struct dns_addr {
	struct sockaddr_storage ss; /* AF_INET or AF_INET6, port 0 */
	int family;		    /* AF_INET or AF_INET6 */
	char text[46];		    /* "127.0.0.1", "::1" (INET6_ADDRSTRLEN) */
};

/* One record's raw rdata, wire format (for TLSA, TXT and the like). */
struct dns_rdata {
	unsigned char *data;
	size_t len;
};

/*
 * One answer. Only the arrays of the query's kind are filled: mx for
 * dns_resolve_mx(), addrs for dns_resolve_addrs(), rr for dns_resolve().
 */
struct dns_result {
	enum dns_status status;
	char *name;	   /* the name queried: lowercase, no trailing dot */
	int rrtype;	   /* DNS_TYPE_MX, DNS_TYPE_A for address queries (A and
			      AAAA), or the type given to dns_resolve() */
	int secure;	   /* 1 if every answer used was DNSSEC-validated */
	int from_cache;	   /* 1 if no lookup was needed */
	uint32_t ttl;	   /* seconds the answer stays valid (after clamping) */
	int rcode;	   /* DNS rcode of the answer (0 NOERROR, 2 SERVFAIL, 3
			      NXDOMAIN), -1 for a local failure or timeout */
	const char *why;   /* short text for logs: "ok", "nodata", "nxdomain",
			      "servfail", "timeout", "invalid name", libunbound's
			      "validation failure <name type class>: ...";
			      never NULL */
	struct dns_mx *mx; /* DNS_OK: sorted by preference then host name */
	size_t n_mx;
	struct dns_addr *addrs; /* DNS_OK: IPv4 first, then IPv6, answer order */
	size_t n_addrs;
	struct dns_rdata *rr; /* DNS_OK: answer order */
	size_t n_rr;
};

/*
 * The callback of a query. r is valid only during the call: copy what you
 * keep (dns_result_dup() copies it all). The callback may start new
 * queries, cancel others, and free its own caller; it must not call
 * dns_resolver_free().
 */
typedef void (*dns_cb)(const struct dns_result *r, void *arg);

/* A deep copy of r; free it with dns_result_free(). */
struct dns_result *dns_result_dup(const struct dns_result *r);
/* Free a copy from dns_result_dup() and clear the pointer; NULL is fine. */
void dns_result_free(struct dns_result **rp);

/*
 * Resolver settings; a zeroed struct is a valid default (full recursion
 * from the root, no validation, default cache bounds). String lists are
 * NULL-terminated arrays (NULL means empty); nothing is kept after
 * dns_resolver_new() returns.
 */
struct dns_options {
	/* "ip" or "ip@port"; when set, every query goes to these forwarders. */
	const char *const *forwarders;
	/* A trust anchor file (DS or DNSKEY records, e.g. ldns-keygen's .ds):
	   DNSSEC validation is on when given. */
	const char *trust_anchor_file;
	/* An unbound.conf file to load (ub_ctx_config()) before the rest. */
	const char *config_file;
	/* "zone. type" strings added as local zones, e.g. "nx.test. static". */
	const char *const *local_zones;
	/* Records in zone-file syntax, e.g. "example.test. MX 10 mx.example.test.",
	   "mx.example.test. A 127.0.0.1"; "test." is made transparent so
	   data under .test answers (LAB.md). */
	const char *const *local_data;
	/* Cache TTL bounds in seconds: 0 means the defaults (min 0, max 3600);
	   negative answers (NXDOMAIN, NODATA) are kept at most negative_ttl
	   (0: 300). */
	uint32_t cache_min_ttl, cache_max_ttl, negative_ttl;
	size_t cache_max_entries;    /* 0: 10000 */
	unsigned timeout_ms;	     /* per query; 0: 30000; then DNS_TEMPFAIL */
	unsigned infra_cache_max_rtt; /* ms; 0: unbound's default. Lab: 200 */
	int no_aaaa;		      /* dns_resolve_addrs() asks for A only */
};

struct dns_resolver;
struct dns_query;

/*
 * Create a resolver on loop. NULL on error with *err_r set to an allocated
 * message naming the failing setting (caller frees).
 */
struct dns_resolver *dns_resolver_new(uv_loop_t *loop, const struct dns_options *opts, char **err_r);

/*
 * Stop the resolver: pending queries are dropped without their callbacks,
 * the libunbound thread is stopped, and the handles are closed; the memory is
 * released in the last close callback, so run the loop afterwards (as with
 * any libuv handle). Clears the caller's pointer; NULL is fine.
 */
void dns_resolver_free(struct dns_resolver **resp);

/*
 * The MX set of domain. DNS_OK: mx sorted; DNS_NODATA: mx holds the
 * implicit MX (the domain); DNS_NULL_MX: none. A "." MX listed next to
 * real ones is ignored. Returns a handle valid until the callback starts or
 * the query is cancelled. Never NULL (bad names answer DNS_NXDOMAIN through
 * the callback).
 */
struct dns_query *dns_resolve_mx(struct dns_resolver *res, const char *domain, dns_cb cb, void *arg);

/*
 * The addresses of host: A and AAAA both asked (unless no_aaaa), merged.
 * DNS_OK if either has data (the other's failure is ignored); DNS_BOGUS if
 * either is bogus; else DNS_NXDOMAIN if either says so, DNS_TEMPFAIL if
 * either failed, else DNS_NODATA.
 */
struct dns_query *dns_resolve_addrs(struct dns_resolver *res, const char *host, dns_cb cb, void *arg);

/* Any record type (TLSA, TXT, ...): raw rdata in r->rr. */
struct dns_query *dns_resolve(struct dns_resolver *res, const char *name, int rrtype, dns_cb cb, void *arg);

/* Cancel one query: its callback will not run. Clears *qp; NULL is fine. */
void dns_cancel(struct dns_resolver *res, struct dns_query **qp);
/* Cancel every pending query whose callback argument is arg; returns how many. */
size_t dns_cancel_arg(struct dns_resolver *res, void *arg);

/* Counters for the control socket. */
struct dns_stats {
	uint64_t queries;     /* dns_resolve_*() calls */
	uint64_t cache_hits;  /* queries answered entirely from the cache */
	uint64_t lookups;     /* libunbound lookups started */
	uint64_t coalesced;   /* lookups shared with one already in flight */
	uint64_t ok, nodata, null_mx, nxdomain, tempfail, bogus, timeouts; /* per query */
	uint64_t cancelled;
	size_t pending;	      /* queries waiting for their callback */
	size_t cache_entries;
};
void dns_resolver_stats(const struct dns_resolver *res, struct dns_stats *st);
/* Forget every cached answer (e.g. on reload or `kumoctl` request). */
void dns_cache_flush(struct dns_resolver *res);

/*
 * The site_name of an MX set (DESIGN.md): hosts sorted by preference then
 * name, labels compared from the right, the distinct labels of each position
 * in first-seen order, several written "(a|b)", a position some hosts lack
 * suffixed "?". Case-insensitive (output lowercase), trailing dots ignored.
 * Gmail's five MXs give "(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com".
 * Returns an allocated string (caller frees), or NULL when n is 0 or every
 * host is empty or ".".
 */
char *dns_site_name(const struct dns_mx *mx, size_t n);

/*
 * The site_name for a finished MX query of domain: from the MX set for
 * DNS_OK, the domain itself (lowercase, no trailing dot) for DNS_NODATA,
 * NULL otherwise (null MX: no site; failures: not known yet). Caller frees.
 */
char *dns_site_name_for(const struct dns_result *r, const char *domain);

#endif
