/*
 * egress.h: egress sources, egress pools and egress paths (the seeds'
 * make_egress_source, make_egress_pool and make_egress_path), with the
 * seeds' defaults, their libconfig parsing, and the shaping merge that
 * builds the path of one (domain, site, source).
 *
 * A path is a flat struct plus a bit per field saying "set at this layer".
 * The fields are described once, in a table (egress_path_fields()): the
 * parser, the merge, the formatter for `kumoctl resolve-egress-path` and the
 * man page's key list all read it, so a new key is one struct member and
 * one table row.
 *
 * Shaping precedence (DESIGN.md, seed 002): built-in defaults < `default`
 * < the site entry (a domain entry applies to its whole site unless
 * mx_rollup = false) < a domain entry with mx_rollup = false < per-source
 * overrides of those entries.
 */
#ifndef KUMO_EGRESS_H
#define KUMO_EGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <libconfig.h>

#include "buf.h"
#include "throttle.h"
#include "tls.h"

struct cidr_list;
struct json_t;

/* The nine SMTP timeouts, in the seed's order (the same as enum smtp_phase). */
enum egress_timeout {
	EGRESS_TIMEOUT_CONNECT = 0,
	EGRESS_TIMEOUT_BANNER,
	EGRESS_TIMEOUT_STARTTLS,
	EGRESS_TIMEOUT_EHLO,
	EGRESS_TIMEOUT_MAIL_FROM,
	EGRESS_TIMEOUT_RCPT_TO,
	EGRESS_TIMEOUT_DATA,
	EGRESS_TIMEOUT_DATA_DOT,
	EGRESS_TIMEOUT_RSET,
	EGRESS_NTIMEOUTS
};

/* Field numbers: bit positions in egress_path.set and indexes of egress_path_fields(). */
enum egress_path_field {
	EGRESS_F_CONNECTION_LIMIT = 0,
	EGRESS_F_CONSECUTIVE_FAILURES,
	EGRESS_F_EHLO_DOMAIN,
	EGRESS_F_ENABLE_TLS,
	EGRESS_F_ENABLE_MTA_STS,
	EGRESS_F_ENABLE_DANE,
	EGRESS_F_TIMEOUT0, /* + enum egress_timeout */
	EGRESS_F_IDLE_TIMEOUT = EGRESS_F_TIMEOUT0 + EGRESS_NTIMEOUTS,
	EGRESS_F_MAX_CONNECTION_RATE,
	EGRESS_F_MAX_DELIVERIES,
	EGRESS_F_MAX_MESSAGE_RATE,
	EGRESS_F_MAX_READY,
	EGRESS_F_PROHIBITED_HOSTS,
	EGRESS_F_SKIP_HOSTS,
	EGRESS_F_SMTP_PORT,
	EGRESS_F_SMTP_AUTH_USERNAME,
	EGRESS_F_SMTP_AUTH_PASSWORD,
	EGRESS_F_ALLOW_AUTH_WITHOUT_TLS,
	EGRESS_F_SUSPENDED,
	EGRESS_F_AGGRESSIVE_OPENING, /* deprecated: accepted, no effect */
	EGRESS_F_TLS_PREFER_OPENSSL, /* accepted, no effect: kumo has only GnuTLS */
	EGRESS_F_TLS_PRIORITY,
	EGRESS_F_RUSTLS_CIPHER_SUITES,
	EGRESS_PATH_NFIELDS
};

/*
 * A keysource (seed 001's smtp_auth_plain_password): `{ key_data = "..." }`
 * or `{ key_file = "/path" }`. A key_file is read when the configuration is
 * loaded (one trailing newline dropped), so a reload re-reads it. HashiCorp
 * Vault keys (vault_mount, vault_path, ...) are refused.
 */
struct egress_keysource {
	char *key_file; /* the path as configured; NULL for key_data */
	char *data;     /* the secret, NUL-terminated (NUL bytes are refused); NULL: unset */
};

struct egress_path {
	uint64_t set; /* bit f: field f was given at the layer this came from */
	long connection_limit;
	long consecutive_connection_failures_before_delay;
	char *ehlo_domain; /* NULL: the source's, else the host name */
	enum tls_mode enable_tls;
	int enable_mta_sts;
	int enable_dane;
	uint64_t timeout[EGRESS_NTIMEOUTS];       /* seconds */
	uint64_t idle_timeout;                    /* seconds */
	struct throttle_spec max_connection_rate; /* only if its bit is set */
	long max_deliveries_per_connection;
	struct throttle_spec max_message_rate; /* only if its bit is set */
	long max_ready;
	struct cidr_list *prohibited_hosts; /* owned */
	struct cidr_list *skip_hosts;       /* owned; NULL: none */
	long smtp_port;
	char *smtp_auth_plain_username; /* NULL: no AUTH */
	struct egress_keysource smtp_auth_plain_password;
	int allow_smtp_auth_plain_without_tls;
	int suspended;
	int aggressive_connection_opening; /* no effect */
	int tls_prefer_openssl;            /* no effect */
	char *tls_priority;                /* GnuTLS priority string; NULL: TLS_DEFAULT_PRIORITY */
	char *rustls_cipher_suites;        /* canonical names joined by ", "; NULL: unset */
	/*
	 * Where each value came from: "builtin", "default", "site:yahoo.com",
	 * "domain:foo.com", "source:ip-1". Static or owned by the shaping.
	 */
	const char *origin[EGRESS_PATH_NFIELDS];
};

enum egress_type {
	EGRESS_T_INT,       /* long, with a minimum */
	EGRESS_T_BOOL,      /* int */
	EGRESS_T_DURATION,  /* uint64_t seconds: an integer or a duration string */
	EGRESS_T_STRING,    /* char * */
	EGRESS_T_TLS,       /* enum tls_mode */
	EGRESS_T_RATE,      /* struct throttle_spec */
	EGRESS_T_CIDR,      /* struct cidr_list * */
	EGRESS_T_KEYSOURCE, /* struct egress_keysource */
	EGRESS_T_PRIORITY,  /* char *: a GnuTLS priority string, checked by tls_priority_check */
	EGRESS_T_SUITES,    /* char *: rustls cipher suite names (a list in the config) */
};

struct egress_field {
	const char *name; /* the seed's key */
	enum egress_type type;
	size_t offset;    /* in struct egress_path */
	long min;         /* EGRESS_T_INT, EGRESS_T_DURATION: smallest value accepted */
	const char *def;  /* the default, as text, for documentation and tools */
	const char *warn; /* non-NULL: accepted with this warning, no effect */
};

/* The field table, EGRESS_PATH_NFIELDS rows in enum egress_path_field order. */
const struct egress_field *egress_path_fields(void);
/* The field named name, or NULL. */
const struct egress_field *egress_path_field(const char *name);

/* The seeds' defaults, nothing set. The default prohibited_hosts is 127.0.0.0/8 and ::1. */
void egress_path_init(struct egress_path *p);
void egress_path_release(struct egress_path *p);
/* Replace dst by a deep copy of src. */
void egress_path_copy(struct egress_path *dst, const struct egress_path *src);
/* Every field set in src overrides dst (deep copied); origin names src in dst->origin. */
void egress_path_merge(struct egress_path *dst, const struct egress_path *src, const char *origin);

/*
 * Read the path keys of a libconfig group into p (on top of what p holds),
 * setting their bits. Keys listed in `other` (NULL-terminated, may be NULL)
 * are left to the caller; any other unknown key is an error. Each problem
 * is appended to errs as "file:line: setting: problem\n". Returns the
 * number of problems.
 */
int egress_path_parse(struct egress_path *p, const config_setting_t *group,
                      const char *const *other, struct buf *errs);

/*
 * Where parse warnings go (deprecated or no-effect keys): appended to warns
 * as "file:line: setting: warning\n" when warns is not NULL, else logged
 * with log_warn(). Set it around a configuration load; NULL restores the log.
 */
void egress_set_warnings(struct buf *warns);

/*
 * Field f's value as text ("60s", "Opportunistic", "127.0.0.0/8, ::1", "unset").
 * A password is never shown: `{ key_data = (hidden) }` or `{ key_file = "/path" }`.
 */
void egress_path_format(const struct egress_path *p, int f, char *out, size_t outlen);
/* Every field as "key = value  (from origin)\n", in table order, appended to out. */
void egress_path_describe(const struct egress_path *p, struct buf *out);
/*
 * Every field as a JSON array of { "key": ..., "value": ..., "origin": ... }
 * (integers and booleans typed, durations in seconds, lists as arrays,
 * unset values null, passwords hidden), for resolve-egress-path. A new
 * reference; the caller decrefs.
 */
struct json_t *egress_path_json(const struct egress_path *p);

/*
 * The GnuTLS priority string for p: tls_priority if set, else the
 * rustls_cipher_suites mapped to GnuTLS (see egress_rustls_priority), else
 * NULL (the library default, TLS_DEFAULT_PRIORITY). Allocated; caller frees.
 */
char *egress_path_tls_priority(const struct egress_path *p);
/*
 * Map rustls cipher suite names ("TLS13_AES_256_GCM_SHA384", ...; a list of
 * n) to a GnuTLS priority string. 0 with *out allocated, or KUMO_EPARSE with
 * *err_r allocated naming the unknown suite (caller frees either).
 */
int egress_rustls_priority(const char *const *names, size_t n, char **out, char **err_r);

/* ---- sources ---- */

/*
 * Seeds 003/004. Proxies: ha_proxy_server + ha_proxy_source_address (both
 * or neither; a PROXY v2 header names ha_proxy_source_address as the
 * source) or socks5_proxy_server + socks5_proxy_source_address (both or
 * neither), never both kinds on one source. Server addresses are IP
 * literals with a port ("10.0.0.1:5000", "[2001:db8::1]:1080");
 * source_address is then the address kumod binds to reach the proxy.
 */
struct egress_source {
	char *name;
	char *source_address;              /* text as configured; NULL: the kernel chooses */
	struct sockaddr_storage source_sa; /* parsed, port 0; family 0 when unset */
	char *ehlo_domain;
	long remote_port;                           /* 0: the path's smtp_port */
	uint64_t ttl;                               /* seconds, default 60 */
	char *ha_proxy_server;                      /* "ip:port"; NULL: no HA proxy */
	struct sockaddr_storage ha_proxy_sa;        /* parsed, with port */
	char *ha_proxy_source_address;              /* the proxy's outgoing address */
	struct sockaddr_storage ha_proxy_source_sa; /* parsed, port 0 */
	char *socks5_proxy_server;                  /* "ip:port"; NULL: no SOCKS5 */
	struct sockaddr_storage socks5_proxy_sa;
	char *socks5_proxy_source_address;
	struct sockaddr_storage socks5_proxy_source_sa;
	/* RFC 1929 username/password for the SOCKS5 proxy (both or neither); NULL: none */
	char *socks5_proxy_username;
	struct egress_keysource socks5_proxy_password;
};

void egress_source_init(struct egress_source *s, const char *name);
void egress_source_release(struct egress_source *s);
void egress_source_copy(struct egress_source *dst, const struct egress_source *src);
/*
 * Parse one source group (name required). Returns the number of problems
 * (appended to errs). s is always initialised; release it either way.
 */
int egress_source_parse(struct egress_source *s, const config_setting_t *group, struct buf *errs);
/* The EHLO name for a connection: the path's, else the source's, else hostname. */
const char *egress_ehlo_domain(const struct egress_path *p, const struct egress_source *s,
                               const char *hostname);
/* The port to connect to: the source's remote_port, else the path's smtp_port. */
int egress_port(const struct egress_path *p, const struct egress_source *s);

/* ---- pools ---- */

struct egress_pool_entry {
	char *name;      /* a source name */
	unsigned weight; /* >= 1 */
};

struct egress_pool {
	char *name;
	struct egress_pool_entry *entries;
	size_t n;
	/* weighted round-robin position: entry `pos` has been used `used` times */
	size_t pos;
	unsigned used;
};

/* The built-in pool "unspecified": one source named "unspecified". */
#define EGRESS_POOL_UNSPECIFIED "unspecified"
void egress_pool_init_unspecified(struct egress_pool *p);
void egress_pool_release(struct egress_pool *p);
void egress_pool_copy(struct egress_pool *dst, const struct egress_pool *src);
int egress_pool_parse(struct egress_pool *p, const config_setting_t *group, struct buf *errs);
/* The next source name in weighted round-robin order (weights 2:1 give A, A, B). */
const char *egress_pool_next(struct egress_pool *p);

/* ---- shaping ---- */

struct egress_shaping_source {
	char *name;
	char *origin; /* "source:ip-1" */
	struct egress_path path;
};

struct egress_shaping_domain {
	char *domain;    /* lower case */
	int mx_rollup;   /* default 1 */
	char *site_name; /* the entry's site, once known (set by the caller) */
	char *origin;    /* "site:yahoo.com", or "domain:foo.com" when mx_rollup = false */
	char *where;     /* "kumod.conf:42" or "shaping.json:7": where the entry is defined */
	struct egress_path path;
	struct egress_shaping_source *sources;
	size_t nsources;
};

struct egress_shaping {
	struct egress_path deflt; /* shaping.default */
	struct egress_shaping_domain *domains;
	size_t ndomains;
};

void egress_shaping_init(struct egress_shaping *sh);
void egress_shaping_release(struct egress_shaping *sh);
/* Parse the `shaping` group (default, domains). Returns the number of problems. */
int egress_shaping_parse(struct egress_shaping *sh, const config_setting_t *group,
                         struct buf *errs);
/*
 * Load a KumoMTA-style shaping.json (seed 002's structure, strict JSON) on
 * top of sh: "default" merges into sh->deflt, every other member is a
 * domain entry (its name the domain; mx_rollup; "sources": { "ip-1": {
 * ... } }). The keys and checks are those of the libconfig form. Problems
 * are appended to errs as `file:line: "yahoo.com": key: problem`, the line
 * being that of the key in the file. Returns the number of problems.
 */
int egress_shaping_load_json(struct egress_shaping *sh, const char *path, struct buf *errs);
/*
 * Set the site of every domain entry for domain (after its MX lookup).
 * Returns 1 if that changed an entry's site, else 0.
 */
int egress_shaping_set_site(struct egress_shaping *sh, const char *domain, const char *site);
/* The entry for exactly this domain with mx_rollup = false, or NULL. */
const struct egress_shaping_domain *egress_shaping_own_domain(const struct egress_shaping *sh,
                                                              const char *domain);
/*
 * Seed 002: configuring a domain that belongs to another configured site
 * without mx_rollup = false is an error. After set_site, 0 if no two
 * mx_rollup entries share a site; else KUMO_EINVAL and, if err_r is not
 * NULL, *err_r names both entries and where they are defined, one line per
 * conflict (allocated; caller frees).
 */
int egress_shaping_check_sites(const struct egress_shaping *sh, char **err_r);
/*
 * The merged path for (domain, site, source): defaults < default < site
 * entry < domain entry (mx_rollup = false) < source overrides. out is
 * initialised here; release it with egress_path_release(). site and
 * source may be NULL.
 */
void egress_shaping_resolve(const struct egress_shaping *sh, const char *domain, const char *site,
                            const char *source, struct egress_path *out);

/* Append "file:line: setting: problem\n" for setting s to errs (s may be NULL). */
void egress_config_error(struct buf *errs, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
