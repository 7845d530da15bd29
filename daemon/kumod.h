/*
 * kumod.h: the delivery daemon's private header. One libuv loop in one
 * thread owns every structure declared here; only the spool's batch workers
 * run on libuv's thread pool, and they touch nothing but the file names and
 * byte ranges handed to them.
 *
 * The flow: listener (ESMTP in) -> spool (fsync, then 250) -> queue
 * (scheduled queues with retry and expiry, egress pools) -> route (MX,
 * site_name) -> ready queues keyed by (source, site) -> deliver (SMTP out)
 * -> jlog (one JSON line per event) and back to queue or spool removal.
 */
#ifndef KUMOD_H
#define KUMOD_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <libconfig.h>
#include <uv.h>

#include "buf.h"
#include "egress.h"

#define KUMOD_MAX_RCPTS_PER_TXN 100

/* ---- configuration model (dconfig.c) ---- */

struct kconf_listen {
	char *address; /* as written: "127.0.0.1:2525", "[::1]:2525" */
	struct sockaddr_storage sa;
	struct cidr_list *relay_hosts; /* peers allowed to relay; NULL: loopback only */
	uint64_t max_message_size;    /* SIZE; 0 = unlimited */
	unsigned max_recipients;
	char *hostname; /* banner and EHLO greeting name */
	char *tls_certificate, *tls_private_key;
};

struct kconf_queue {
	char *name; /* "default", a tenant, a domain or a full queue name */
	char *egress_pool;
	double retry_interval;	   /* seconds */
	double max_retry_interval; /* seconds; 0 = no cap */
	double max_age;		   /* seconds */
};

struct kconf {
	char *file;
	struct kconf_listen *listen;
	size_t nlisten;
	char *spool_dir;
	char *log_dir;
	char *control_socket; /* control.socket or the top-level control_socket */
	uid_t *control_uids;  /* control.allowed_users, resolved */
	size_t ncontrol_uids;
	gid_t *control_gids; /* control.allowed_groups, resolved */
	size_t ncontrol_gids;
	unsigned control_max_clients; /* 0: the server's default (16) */
	char *pidfile;
	char *hostname;
	int spool_sync_fs; /* 1: syncfs per batch (default), 0: fdatasync per file */
	/* dns */
	char **dns_local_data;
	size_t ndns_local_data;
	char **dns_forwarders;
	size_t ndns_forwarders;
	char **dns_local_zones;
	size_t ndns_local_zones;
	char *dns_trust_anchor_file;
	/* tls_client and mta_sts groups (tlspolicy.c) */
	char *tls_client_ca_file;	  /* trust anchors for verifying MX hosts; NULL: system store */
	char *mta_sts_ca_file;		  /* trust anchors for policy fetches; NULL: system store */
	char **mta_sts_connect_to;	  /* "HOST:PORT:ADDR:PORT" redirections for labs */
	size_t nmta_sts_connect_to;
	double mta_sts_fetch_timeout; /* seconds */
	double mta_sts_wait;	      /* seconds a connection waits for an uncached policy */
	double mta_sts_recheck;	      /* seconds between checks of a domain's _mta-sts TXT */
	/* egress */
	struct egress_source *sources;
	size_t nsources;
	struct egress_pool *pools;
	size_t npools;
	struct egress_shaping shaping;
	/* queues: [0] is "default" */
	struct kconf_queue *queues;
	size_t nqueues;
	double shutdown_timeout; /* seconds to finish in-flight work on SIGTERM */
};

/*
 * Load and check a configuration file. Every problem is appended to errs
 * as one "file:line: setting: problem" line. Returns the config (NULL when
 * there were errors; then errs is not empty).
 */
struct kconf *kconf_load(const char *file, struct buf *errs);
void kconf_free(struct kconf **cp);
/* The queue rule for a queue's tenant / domain / name (falls back to default). */
const struct kconf_queue *kconf_queue_for(const struct kconf *c, const char *queue_name,
					  const char *tenant, const char *domain);
const struct egress_pool *kconf_pool(const struct kconf *c, const char *name);
const struct egress_source *kconf_source(const struct kconf *c, const char *name);

/* ---- messages ---- */

/* Message bytes shared by the per-domain copies of one reception. */
struct blob {
	unsigned refs;
	size_t len;
	char *data; /* NUL-terminated */
};
struct blob *blob_new(const char *data, size_t len);
/* A blob owning data (from malloc, NUL-terminated at len). */
struct blob *blob_take(char *data, size_t len);
struct blob *blob_ref(struct blob *b);
void blob_unref(struct blob **bp);

struct sched_queue;
struct ready_queue;

enum msg_where {
	MSG_NEW = 0,   /* being spooled */
	MSG_SCHEDULED, /* in the scheduled heap */
	MSG_ROUTING,   /* waiting for DNS */
	MSG_READY,     /* in a ready queue */
	MSG_INFLIGHT,  /* on a connection */
	MSG_DONE,      /* final; waiting for spool removal */
};

struct msg {
	char id[40];
	char *sender;
	char **rcpts; /* recipients still to deliver */
	size_t nrcpts;
	char *domain; /* lower case */
	char *tenant;
	char *campaign;
	char *queue; /* scheduled queue name */
	char *peer;  /* who handed it to us */
	struct blob *data;
	double created;	 /* wall clock, seconds */
	uint64_t due_ms; /* loop time */
	unsigned attempts;
	double due_wall; /* wall clock of the next attempt after a transient failure; 0: now */
	enum msg_where where;
	size_t heap_idx;
	struct sched_queue *sq;
	struct ready_queue *rq;
	struct msg *next, *prev; /* ready queue / routing lists */
	int spooled;		 /* a spool file exists */
	char *last_error;	 /* the last TransientFailure: "451 4.7.1 text"; NULL: none */
};

struct msg *msg_new(void);
void msg_free(struct msg **mp);

/* ---- shaping.c ---- */

struct dns_options;
/* The resolver options of c's dns group (arrays borrowed from c; kumod's own resolver too). */
void shaping_dns_options(const struct kconf *c, struct dns_options *o);
/*
 * Resolve the MX of every mx_rollup entry of sh whose site is not known,
 * on a private loop, waiting at most timeout_ms, and set the sites learnt.
 * Lookups that fail are described in warnings ("where: shaping: ...\n").
 * Returns 0, or a negative code if no resolver could be made.
 */
int shaping_learn_sites(const struct kconf *c, struct egress_shaping *sh, unsigned timeout_ms,
			struct buf *warnings);
/* Give to's entries the sites from's entries for the same domains already know. */
void shaping_copy_sites(struct egress_shaping *to, const struct egress_shaping *from);

/* ---- spool.c ---- */

typedef void (*spool_done_cb)(struct msg *m, int status, void *arg);

struct spool;
/* Open (create) the spool directory. NULL and *err_r (caller frees) on failure. */
struct spool *spool_open(uv_loop_t *loop, const char *dir, int sync_fs, char **err_r);
/* Queue m's file to be written and synced; cb runs on the loop once it is durable. */
void spool_store(struct spool *sp, struct msg *m, spool_done_cb cb, void *arg);
/* Rewrite m's file (its recipient list changed), atomically. */
void spool_rewrite(struct spool *sp, struct msg *m);
/*
 * Save m's attempts and due_wall in its file, in place (no sync: losing it
 * only means an earlier retry after a crash). 0 or a negative code.
 */
int spool_touch(struct spool *sp, struct msg *m);
/* Remove m's file (final disposition); m may be freed right after. */
void spool_remove(struct spool *sp, struct msg *m);
/* Load every spooled message; cb takes ownership. Returns the count or a negative code. */
typedef void (*spool_recover_cb)(struct msg *m, void *arg);
int spool_recover(struct spool *sp, spool_recover_cb cb, void *arg);
/* Pending + in-flight batch items (0 when everything is on disk). */
size_t spool_busy(const struct spool *sp);
void spool_close(struct spool **spp);
/* Serialize m's envelope header (the spool file's first part). */
void spool_format_header(const struct msg *m, struct buf *out);
/* Parse a spool file's bytes into a new msg; NULL if malformed or truncated. */
struct msg *spool_parse(const char *bytes, size_t len);

/* ---- jlog.c: JSON-lines records ---- */

struct smtp_client;

enum jlog_kind {
	JLOG_RECEPTION,
	JLOG_DELIVERY,
	JLOG_TRANSIENT,
	JLOG_BOUNCE,
	JLOG_EXPIRATION,
	JLOG_ADMIN_BOUNCE, /* removed by an operator's bounce rule */
};

struct jlog_rec {
	enum jlog_kind kind;
	const struct msg *m;
	const char *recipient; /* NULL: all of m's recipients */
	const char *site;
	const char *source;
	const char *peer_address;
	int code;
	const char *enhanced;
	const char *text;
	const char *tls_version;
	const char *tls_cipher;
	/* The session that delivered (its TLS policy and DANE verdict are logged); may be NULL. */
	const struct smtp_client *client;
};

int jlog_open(const char *dir, char **err_r);
void jlog_write(const struct jlog_rec *r);
void jlog_flush(void);
void jlog_close(void);
const char *jlog_kind_str(enum jlog_kind k);

/* ---- the daemon (main.c) ---- */

struct control_server;
struct control_cmd;

struct kumod {
	uv_loop_t *loop;
	struct kconf *conf;
	struct spool *spool;
	struct control_server *control; /* NULL when no control socket is configured */
	int stopping;
	int foreground; /* logging to stderr (else syslog) */
	uint64_t received, delivered, bounced, transient, expired;
};
extern struct kumod kd;
/* Re-read the configuration (SIGHUP, the control socket's reload): 0, or the errors in *err_r. */
int kumod_reload(char **err_r);

/* ---- ctlcmds.c: the control socket's command table ---- */
const struct control_cmd *ctlcmds_table(void);
/* The trace subsystems asked for (-t, set-log-filter), kept apart from what trace streams add. */
void ctlcmds_set_trace(unsigned mask);

/* ---- listener.c ---- */
int listener_start(struct kumod *k, char **err_r);
void listener_stop(void);
/* After the loop has stopped: free the listeners. */
void listener_free(void);
/* New sessions of each listener use the new config's entry with the same address. */
void listener_reconfigure(const struct kconf *c);
size_t listener_sessions(void);

/* ---- tlspolicy.c: enable_mta_sts and enable_dane (seed 001, RFC 8461, RFC 7672) ---- */

struct dns_resolver;
struct egress_path;
struct smtp_client_params;
/* The TLS policy of one MX host, decided before connecting (opaque). */
struct host_tls;

/* One MX host of a ready queue, for tlspolicy_resolve(). */
struct tlspolicy_host {
	const char *name;
	int addr_secure; /* its address records were DNSSEC-validated */
};

/*
 * The answer of tlspolicy_resolve(): tls[i] for hosts[i]. The pointers stay
 * valid until the next answer for the same owner, or tlspolicy_free().
 */
typedef void (*tlspolicy_cb)(void *arg, const struct host_tls *const *tls, size_t n);

/* One resolution: the MX hosts of domain (its MX set, in order) for a path and port. */
struct tlspolicy_query {
	void *owner; /* the caller (a ready queue): one answer in force per owner */
	uv_loop_t *loop;
	const struct kconf *conf;
	struct dns_resolver *res;
	const struct egress_path *path;
	unsigned port; /* the SMTP port: TLSA records are _PORT._tcp.HOST */
	const char *domain;
	const struct tlspolicy_host *hosts;
	size_t n;
};

/*
 * Decide the TLS policy of each host of q: the MTA-STS policy of q->domain
 * (path->enable_mta_sts; fetched and cached; while none is cached a first
 * contact waits at most mta_sts.wait for it) and each host's TLSA records
 * (path->enable_dane; only behind a DNSSEC-secure MX answer). cb runs once,
 * later or from inside this call; everything in q is copied. During
 * shutdown (kd.stopping) and at tlspolicy_free() a resolution still in
 * flight calls cb with tls NULL instead, only so the caller can free arg.
 */
void tlspolicy_resolve(const struct tlspolicy_query *q, tlspolicy_cb cb, void *arg);
/* 1 if no delivery may go to this host (MTA-STS enforce mismatch, bogus TLSA). */
int tlspolicy_host_skip(const struct host_tls *t);
/* Why (for logs and the TransientFailure), or what applies: "MTA-STS enforce: ..." */
const char *tlspolicy_host_why(const struct host_tls *t);
/*
 * Apply t (NULL: nothing decided, the path's enable_tls stands) to a
 * session's parameters: tls_mode, the TLS context (tls_client.ca_file with
 * path's priority; untouched without a ca_file), the
 * TLSA records, the next-hop domain and the tls_policy label. p keeps
 * pointers into t and into tlspolicy's context: use it before the next
 * tlspolicy answer (smtp_client_new copies everything).
 */
void tlspolicy_client_params(const struct kconf *conf, const struct egress_path *path,
			     const struct host_tls *t, const char *domain, struct smtp_client_params *p);
/* What tlspolicy_decide() looks at for one MX host. */
struct dns_result;
struct mtasts_policy;
struct tlspolicy_facts {
	const char *host;
	enum tls_mode configured; /* the path's enable_tls */
	int dane;		  /* enable_dane */
	int mx_secure;		  /* the MX answer (or its secure denial) was DNSSEC-validated */
	int addr_secure;	  /* the host's address records were */
	const struct dns_result *tlsa; /* the _PORT._tcp.HOST TLSA answer; NULL: none */
	int mta_sts;		       /* enable_mta_sts */
	const struct mtasts_policy *policy; /* the domain's policy; NULL: none */
	const char *sts_note;		    /* why there is no policy (logs), or NULL */
};
/* The policy of one host (pure: seed 001's rules, RFC 7672 2.2); free with tlspolicy_host_free(). */
struct host_tls *tlspolicy_decide(const struct tlspolicy_facts *f);
void tlspolicy_host_free(struct host_tls **tp);
/* "configured", "mta-sts:enforce", "mta-sts:testing", "mta-sts:none" or "dane". */
const char *tlspolicy_host_label(const struct host_tls *t);
/* Usable TLSA records the host is checked against (0: no DANE). */
size_t tlspolicy_host_ntlsa(const struct host_tls *t);
/* A curl-style connect_to entry "HOST:PORT:ADDR:PORT" (ADDR may be [v6]): 0 or -1. */
int tlspolicy_connect_to_check(const char *s);
/* Parse the tls_client and mta_sts groups of root into c (defaults when absent); problems counted. */
int tlspolicy_parse_config(struct kconf *c, const config_setting_t *root, struct buf *errs);
void tlspolicy_free_config(struct kconf *c);
/* At exit, after the loop has stopped: free the cache, the answers and the contexts. */
void tlspolicy_free(void);

/* ---- queue.c ---- */
/* Start the resolver, timers and TLS client context. 0, or a code with *err_r. */
int queue_start(struct kumod *k, char **err_r);
/* Take a freshly spooled (or recovered) message into its scheduled queue. */
void queue_insert(struct msg *m, int recovered);
/* Queue name for a domain, tenant and campaign ("campaign:tenant@domain"). */
char *queue_name(const char *campaign, const char *tenant, const char *domain);
/* Retry delay in seconds before attempt number `attempts` (jitter 0..1 given). */
double queue_retry_delay(double interval, double max_interval, unsigned attempts, double jitter);
size_t queue_count(void);
/* Connections with a message in flight / open at all. */
size_t queue_inflight(void);
size_t queue_connections(void);
/* SIGTERM: idle connections quit, busy ones after their transaction. */
void queue_shutdown(void);
/* The shutdown bound passed: close every connection now (messages stay spooled). */
void queue_abort(void);
void queue_stop_timers(void);
/* After the loop has stopped: free every queue structure (messages stay spooled). */
void queue_free_all(void);
/* Re-read pools/sources after a reload. */
void queue_reconfigure(void);
/* The site of domain if a fresh MX answer for it is cached, else NULL (borrowed). */
const char *queue_known_site(const char *domain);
/*
 * Look up domain's MX set: cb(site, NULL, arg), or cb(NULL, why, arg) when
 * it has none (NXDOMAIN, null MX, failure). cb always runs, later, on the loop.
 */
typedef void (*queue_site_cb)(const char *site, const char *why, void *arg);
void queue_lookup_site(const char *domain, queue_site_cb cb, void *arg);
/* Set the sites of sh's entries from the MX answers queue.c holds (for a reload). */
void queue_known_sites(struct egress_shaping *sh);

/*
 * Operator rules (the control socket's suspend, bounce and suspend-ready-q).
 * A suspend rule makes matching scheduled messages wait (each deferral is a
 * TransientFailure carrying the reason); a bounce rule removes matching
 * messages with AdminBounce records, new arrivals included; a ready-queue
 * suspension stops one egress path from opening connections. Rules expire
 * on their own; ids are unique across kinds.
 */
enum qrule_kind { QRULE_SUSPEND, QRULE_BOUNCE, QRULE_SUSPEND_READY };
enum qrule_sel { QSEL_DOMAIN, QSEL_TENANT, QSEL_CAMPAIGN, QSEL_READY };

struct qrule {
	unsigned id;
	enum qrule_kind kind;
	enum qrule_sel sel;
	char *value; /* the domain, tenant, campaign or ready queue name */
	char *reason;
	uint64_t expires_ms; /* loop time */
	struct qrule *next;
};

/* Add a rule lasting duration seconds; a bounce rule bounces at once (*bounced_r). */
const struct qrule *queue_rule_add(enum qrule_kind kind, enum qrule_sel sel, const char *value,
				   const char *reason, double duration, size_t *bounced_r);
/* Remove rule id of kind: 0, or KUMO_ENOTFOUND. */
int queue_rule_cancel(enum qrule_kind kind, unsigned id);
/* The rules in force (newest first). */
const struct qrule *queue_rules(void);
const char *qsel_str(enum qrule_sel sel);
/* Seconds until t (loop time), never negative. */
double queue_secs_until(uint64_t t_ms);

/* Read-only views of the queues for the control socket. */
struct rq_info {
	const char *name, *source, *site, *domain;
	uint64_t delivered, transient;
	size_t connections, queued;
	unsigned consecutive_failures;
	double next_permit_in; /* seconds until a rate throttle lets the next one go; 0: not throttled */
	const char *status; /* active, suspended, throttled, delayed, idle */
	const struct egress_path *path;
	const char *hosts_error;
	double next_due_in; /* seconds until the queue dispatches again (a throttle or retry wait) */
};
/* One outbound connection of a ready queue, for inspect-ready-q. */
struct conn_info {
	const char *state; /* smtp_client state word, or "idle" between messages */
	char host[300];	   /* "mx.example.test 192.0.2.1:25", or "" before a host is chosen */
	unsigned deliveries; /* transactions on this connection so far */
	const char *msg_id;  /* the message in flight, or NULL */
};
/* The connections of ready queue `name` (allocated; NULL and 0 if none or unknown). */
struct conn_info *queue_ready_conns(const char *name, size_t *n_r);
struct sq_info {
	char *name, *domain, *tenant, *campaign; /* owned by the array */
	size_t queued;
	double next_due_in;
	const char *status; /* active, suspended, bouncing */
};
/* Allocated arrays (free with the matching function); the counts in *n_r. */
struct rq_info *queue_ready_info(size_t *n_r);
struct sq_info *queue_sched_info(size_t *n_r);
void queue_sched_info_free(struct sq_info *a, size_t n);
/* Messages in the scheduled heap (incl. routing) and in ready queues / in flight. */
void queue_gauges(size_t *scheduled_r, size_t *ready_r);
/* The message with spool id `id`, wherever it is; NULL if none. */
const struct msg *queue_find_msg(const char *id);
/* Where a message is, as a word. */
const char *queue_where_str(enum msg_where w);

#endif
