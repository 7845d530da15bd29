/*
 * smtp_client.h: the SMTP client state machine over a conn, for delivery
 * (kumod) and probing (tls-probe). One smtp_client is one connection to one
 * host: banner, EHLO (HELO after a 5xx EHLO), STARTTLS according to the
 * enable_tls mode, EHLO again, AUTH PLAIN, then any number of transactions
 * (MAIL, RCPT..., DATA, the dot-stuffed body; pipelined when the server
 * offers PIPELINING; RSET before every transaction but the first), QUIT.
 *
 * The caller owns policy: which host, when to reuse or quit, idle timeout,
 * how many recipients per transaction, what a reply means for a message.
 *
 * Lifetime: smtp_client_quit() or smtp_client_close() end the session; the
 * `closed` callback follows, then the memory is released. Both are safe
 * inside any callback of the client. After either, no callback but
 * `closed` fires.
 */
#ifndef KUMO_SMTP_CLIENT_H
#define KUMO_SMTP_CLIENT_H

#include <stddef.h>

#include <sys/socket.h>

#include <uv.h>

#include "dane.h"
#include "smtp_proto.h"
#include "tls.h"

struct smtp_client;
struct conn;

/*
 * Where a session is, for timeouts and errors. The first nine are the
 * seed's nine timeouts, in the seed's order; their _str() is the key name
 * without "_timeout" ("connect", "banner", ..., "data_dot", "rset").
 */
enum smtp_phase {
	SMTP_PHASE_CONNECT = 0,
	SMTP_PHASE_BANNER,
	SMTP_PHASE_STARTTLS, /* the STARTTLS reply and the TLS handshake */
	SMTP_PHASE_EHLO,     /* EHLO/HELO, before and after TLS */
	SMTP_PHASE_MAIL_FROM,
	SMTP_PHASE_RCPT_TO,
	SMTP_PHASE_DATA,     /* the reply to DATA (354) */
	SMTP_PHASE_DATA_DOT, /* the reply to the final "." */
	SMTP_PHASE_RSET,
	SMTP_PHASE_AUTH, /* AUTH PLAIN; bounded by the ehlo timeout */
	SMTP_PHASE_QUIT, /* QUIT; bounded by the rset timeout */
	SMTP_PHASE_IDLE, /* between transactions (no timer: the caller's idle_timeout) */
	SMTP_PHASE_COUNT
};
#define SMTP_TIMEOUT_COUNT (SMTP_PHASE_RSET + 1)
/* "connect", "banner", "starttls", "ehlo", "mail_from", "rcpt_to", "data", "data_dot", "rset", "auth", "quit", "idle". */
const char *smtp_phase_str(enum smtp_phase p);

/* The seed defaults, in seconds, indexed by enum smtp_phase. */
#define SMTP_TIMEOUT_DEFAULTS_S {60, 60, 5, 300, 300, 300, 30, 60, 5}

/* The state machine's states (exposed for logs and tests). */
enum smtp_client_state {
	SMTP_CLIENT_INIT = 0,
	SMTP_CLIENT_CONNECTING,
	SMTP_CLIENT_PROXY, /* connected to a SOCKS5 proxy, opening the tunnel */
	SMTP_CLIENT_BANNER,
	SMTP_CLIENT_EHLO,
	SMTP_CLIENT_HELO,
	SMTP_CLIENT_STARTTLS,
	SMTP_CLIENT_TLS_HANDSHAKE,
	SMTP_CLIENT_EHLO_TLS, /* EHLO again after the handshake */
	SMTP_CLIENT_AUTH,
	SMTP_CLIENT_READY, /* idle, between transactions */
	SMTP_CLIENT_RSET,
	SMTP_CLIENT_MAIL,
	SMTP_CLIENT_RCPT,
	SMTP_CLIENT_DATA,
	SMTP_CLIENT_BODY, /* body and "." sent, waiting for the final reply */
	SMTP_CLIENT_QUIT,
	SMTP_CLIENT_FAILED, /* the error callback ran; only close is left */
	SMTP_CLIENT_CLOSED,
};
/* "banner", "ehlo", "mail", ... */
const char *smtp_client_state_str(enum smtp_client_state s);

/* A forward proxy between the client and the SMTP server (egress sources, seeds 003/004). */
enum smtp_proxy_kind {
	SMTP_PROXY_NONE = 0,
	SMTP_PROXY_HAPROXY, /* connect to the proxy, send a PROXY v2 header, then SMTP */
	SMTP_PROXY_SOCKS5,  /* connect to the proxy, open a SOCKS5 CONNECT tunnel, then SMTP */
};

/* Session settings. Initialise with smtp_client_params_init(); everything is copied by smtp_client_new(). */
struct smtp_client_params {
	const char *ehlo_domain;	 /* required */
	enum tls_mode tls_mode;		 /* default TLS_MODE_DEFAULT (Opportunistic) */
	struct tls_ctx *tls_ctx;	 /* a client ctx (a reference is taken); NULL: STARTTLS impossible */
	const char *tls_server_name;	 /* SNI + certificate name; NULL: the peer_name given to connect */
	const struct sockaddr *source_address; /* bind before connect; NULL: any (copied) */
	const char *auth_username;	 /* non-NULL: AUTH PLAIN is required for this session */
	const char *auth_password;
	int allow_auth_plain_without_tls; /* default 0: AUTH over clear text fails the session */
	unsigned timeout_ms[SMTP_TIMEOUT_COUNT]; /* indexed by enum smtp_phase; 0 = no timeout */
	/*
	 * Forward proxy: the TCP connection goes to proxy_server (source_address,
	 * if set, is bound for it); the peer given to smtp_client_connect() is
	 * where the proxy connects on. proxy_source: HAProxy, the source address
	 * the PROXY header names (required); SOCKS5, the address the proxy should
	 * connect from (KumoMTA's BIND-then-CONNECT convention, lib/proxy.h), or
	 * NULL / an unspecified address (0.0.0.0, ::) to let the proxy choose.
	 */
	enum smtp_proxy_kind proxy;
	const struct sockaddr *proxy_server;
	const struct sockaddr *proxy_source;
	/* SOCKS5: RFC 1929 username/password (both or neither; copied); NULL: no auth offered */
	const char *proxy_username;
	const char *proxy_password;
	const char *session_id;		 /* for trace lines; NULL: "c<number>" generated */
	size_t max_reply_bytes;		 /* cap on buffered input; 0: CONN_READ_MAX_DEFAULT */
	/*
	 * DANE (RFC 7672). With dane_count > 0 the session needs STARTTLS
	 * whatever tls_mode says, PKIX is not used, and the server's chain must
	 * match one of these TLSA records inside the handshake (lib/dane.h), so
	 * nothing is sent to an unauthenticated server; a failure is KUMO_ETLS in
	 * SMTP_PHASE_STARTTLS. Pass usable records only (dane_tlsa_usable()).
	 * The records and their data are copied. dane_domain (copied, may be
	 * NULL) is the next-hop domain, DANE-TA's second reference name after
	 * the peer_name given to smtp_client_connect().
	 */
	const struct dane_tlsa *dane_tlsa;
	size_t dane_count;
	const char *dane_domain;
	/* For logs only: what chose tls_mode ("mta-sts:enforce", "dane", ...); copied. */
	const char *tls_policy;
};

/* Seed defaults: Opportunistic, the nine timeouts of SMTP_TIMEOUT_DEFAULTS_S (in ms), no AUTH. */
void smtp_client_params_init(struct smtp_client_params *p);

/*
 * One transaction. Everything must stay valid until txn_done or error
 * reports the transaction over (the client does not copy the message).
 */
struct smtp_txn {
	const char *sender;	       /* reverse-path without <>; "" for the null sender */
	const char *const *recipients; /* forward-paths without <> */
	size_t nrecipients;	       /* >= 1; the caller limits it (e.g. 100) */
	const char *data;	       /* the message, CRLF line ends, NOT dot-stuffed */
	size_t len;
};

/*
 * The replies of one transaction; valid only during the txn_done callback.
 * A reply with code 0 was never received (that step was not reached).
 */
struct smtp_txn_result {
	const struct smtp_reply *mail;
	const struct smtp_reply *rcpt; /* array of txn->nrecipients */
	const struct smtp_reply *data; /* reply to DATA */
	const struct smtp_reply *final; /* reply to the final "." */
	size_t naccepted;		/* recipients whose RCPT got 2xx */
	int delivered;			/* the final reply was 2xx */
};

/*
 * The reply that decides recipient i's fate: the MAIL reply if MAIL failed,
 * its RCPT reply if that failed, the DATA reply if DATA failed, else the
 * final reply. Never NULL for i < nrecipients.
 */
const struct smtp_reply *smtp_txn_rcpt_reply(const struct smtp_txn_result *r, size_t i);

/* A session-level failure: the host should be considered failed. */
struct smtp_client_error {
	int err;		 /* KUMO_ETIMEDOUT, KUMO_ETLS, KUMO_EPROTO, UV_EOF, UV_ECONNREFUSED, ... */
	enum smtp_phase phase;	 /* where it happened (for timeouts: which timeout) */
	const struct smtp_reply *reply; /* the negative reply that caused it (banner 554, EHLO+HELO 5xx, STARTTLS 454, AUTH 535, RSET), or NULL */
	const char *text;	 /* one line for logs: "timeout waiting for the banner", "certificate verification failed: ..." */
	const struct smtp_txn *txn; /* the transaction in progress (its outcome unknown), or NULL */
	int dot_sent;		 /* 1 if the final "." of txn was sent: it may have been delivered */
};

/* The callbacks; arg is the pointer given to smtp_client_new(). ready and error are required. */
struct smtp_client_cbs {
	/* The session is set up (EHLO, TLS, AUTH done): call smtp_client_send() or quit. Once per session. */
	void (*ready)(struct smtp_client *c, void *arg);
	/*
	 * A transaction ended with replies (it may still have failed: look at
	 * r). The client is idle again: send the next transaction (also from
	 * inside this callback), quit, or close.
	 */
	void (*txn_done)(struct smtp_client *c, const struct smtp_txn *txn,
			 const struct smtp_txn_result *r, void *arg);
	/* The session failed; the client is dead: close it (also from inside this callback). */
	void (*error)(struct smtp_client *c, const struct smtp_client_error *e, void *arg);
	/* Optional: the client is closed and is released when this returns. */
	void (*closed)(struct smtp_client *c, void *arg);
};

/* A new client; params and cbs are copied. Never NULL. */
struct smtp_client *smtp_client_new(uv_loop_t *loop, const struct smtp_client_params *params,
				    const struct smtp_client_cbs *cbs, void *arg);

/*
 * Connect to peer (port included) and run the session up to `ready`.
 * peer_name is the host name (MX) for SNI, the certificate check and logs
 * (may be NULL: then no name check is possible, and verifying modes fail).
 * 0, then exactly one of ready / error later; or a negative code at once
 * (e.g. the source address cannot be bound) with no callback.
 */
int smtp_client_connect(struct smtp_client *c, const struct sockaddr *peer, const char *peer_name);

/*
 * Start a transaction (the client must be idle: after ready or txn_done).
 * 0, then txn_done or error; KUMO_EINVAL if not idle or txn is empty.
 */
int smtp_client_send(struct smtp_client *c, const struct smtp_txn *txn);

/* Send QUIT, wait for its reply (rset timeout), close. Then `closed`. */
void smtp_client_quit(struct smtp_client *c);
/* Close at once without QUIT. Then `closed`. Safe twice and in callbacks. */
void smtp_client_close(struct smtp_client *c);

/* ---- session facts ---- */
enum smtp_client_state smtp_client_state(const struct smtp_client *c);
const char *smtp_client_id(const struct smtp_client *c);
const struct sockaddr *smtp_client_peer(const struct smtp_client *c);
const char *smtp_client_peer_name(const struct smtp_client *c); /* "" if none */
/* The peer as "127.0.0.1:25". */
const char *smtp_client_peer_str(const struct smtp_client *c);
/* The EHLO capabilities in force (after TLS: the post-TLS ones; HELO: none). */
const struct smtp_caps *smtp_client_caps(const struct smtp_client *c);
/* The banner's text (first line); "" before it. */
const char *smtp_client_banner(const struct smtp_client *c);
/* 1 if the session runs over TLS. */
int smtp_client_is_tls(const struct smtp_client *c);
/* TLS facts (version, cipher, verification); zeroed when not TLS. */
void smtp_client_tls_info(const struct smtp_client *c, struct tls_info *info);
/* 1 once AUTH succeeded. */
int smtp_client_authenticated(const struct smtp_client *c);
/* Transactions whose final reply was 2xx, and transactions started, on this connection. */
unsigned smtp_client_delivered(const struct smtp_client *c);
unsigned smtp_client_transactions(const struct smtp_client *c);
/* The underlying conn (NULL before connect), e.g. for DANE checks. */
struct conn *smtp_client_conn(const struct smtp_client *c);
/* The DANE check's outcome once the handshake ran it; NULL without DANE or before. */
const struct dane_result *smtp_client_dane_result(const struct smtp_client *c);
/* The tls_policy label given in the params; "" if none. */
const char *smtp_client_tls_policy(const struct smtp_client *c);
/* The enable_tls mode this session runs with. */
enum tls_mode smtp_client_tls_mode(const struct smtp_client *c);

#endif
