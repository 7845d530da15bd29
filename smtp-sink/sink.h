/*
 * sink.h: smtp-sink's private header. smtp-sink is a lab SMTP server: it
 * accepts mail and throws it away (or saves it), provokes the faults a
 * delivery client must survive, and measures what it received. One process,
 * one libuv loop; every socket is polled with uv_poll and read and written
 * by hand so GnuTLS can run on the same fd.
 *
 * The verb table (verbs.c) holds one row per verb with its reply and its
 * faults; options edit the rows. session.c runs one SMTP session, tls.c owns
 * the GnuTLS credentials, stats.c counts and writes the JSON reports,
 * proxy.c parses HAProxy PROXY headers and auth.c holds the AUTH users.
 */
#ifndef SMTP_SINK_H
#define SMTP_SINK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <uv.h>

#include "buf.h"
#include "smtp_proto.h"

/* ---- the verb table ---- */

enum sink_verb {
	SV_CONNECT = 0,
	SV_EHLO,
	SV_HELO,
	SV_STARTTLS,
	SV_AUTH,
	SV_MAIL,
	SV_RCPT,
	SV_DATA,
	SV_DOT,
	SV_BDAT,
	SV_RSET,
	SV_NOOP,
	SV_VRFY,
	SV_QUIT,
	SV_COUNT
};

/* Row flags. */
#define SVF_DISCONNECT 0x01 /* drop the connection instead of replying */
#define SVF_421 0x02        /* reply 421 and drop */

struct sink_row {
	const char *name; /* as given to --delay VERB=... */
	int code;         /* default reply */
	const char *enh;  /* its enhanced status code, or NULL */
	const char *text; /* its text */
	char *reply;      /* --reply: the whole reply line without CRLF, or NULL */
	int reply_code;   /* --reply's code */
	double reply_pct; /* probability in percent (100: always) */
	double delay;     /* --delay, seconds; < 0: never answer */
	double delay_pct; /* probability in percent */
	unsigned flags;   /* SVF_* */
	char *line;       /* the default reply with CRLF, made by sink_verbs_prepare() */
	size_t linelen;
};

extern struct sink_row sink_verbs[SV_COUNT];

/* Format each row's default reply once (with or without enhanced codes). */
void sink_verbs_prepare(int enhanced);
void sink_verbs_free(void);
/* Find a row by name ("RCPT", "DOT" or ".", case-insensitive); -1 if unknown. */
int sink_verb_lookup(const char *name);
/*
 * Option parsers that edit rows. Each returns 0, or -1 with *err_r set to an
 * allocated message naming what was wrong (the caller frees it).
 */
int sink_opt_delay(const char *arg, char **err_r);
int sink_opt_reply(const char *arg, char **err_r);
int sink_opt_flag(const char *arg, unsigned flag, char **err_r);
/* "30s", "2min", "500ms", "1h30m", plain seconds, "forever" (-1). */
int sink_duration_parse(const char *s, double *secs);
/* A percentage "0".."100" (fractions allowed). */
int sink_percent_parse(const char *s, double *pct);

/* Seeded PRNG for the @PERCENT faults: 1 with probability pct/100. */
void sink_rand_seed(uint64_t seed);
int sink_rand_hit(double pct);

/* ---- configuration ---- */

#define EXT_PIPELINING 0x001
#define EXT_SIZE 0x002
#define EXT_8BITMIME 0x004
#define EXT_SMTPUTF8 0x008
#define EXT_ENHANCEDSTATUSCODES 0x010
#define EXT_DSN 0x020
#define EXT_CHUNKING 0x040
#define EXT_STARTTLS 0x080
#define EXT_AUTH 0x100

struct sink_listen {
	char *spec; /* as given */
	int tls;    /* implicit TLS */
	int fd;
	int port; /* after bind */
	uv_poll_t poll;
	int polling;
	int closed;
};

struct sink_config {
	struct sink_listen *listeners;
	int nlisteners;
	char *port_file;
	char *hostname;
	unsigned ext; /* EXT_* advertised */
	int lmtp;
	int max_clients;       /* 0: unlimited */
	size_t line_max;       /* command line cap, CRLF included */
	uint64_t max_msg_size; /* 0: unlimited */
	int max_rcpt;          /* 0: unlimited */
	double idle_timeout;   /* seconds */
	double abort_data;     /* < 0: off */
	double busy_poll;      /* seconds to keep polling after a read; 0: sleep at once */
	double coalesce;       /* seconds to pause before polling again when idle; 0: off */
	uint64_t exit_after;   /* 0: off */
	int counter;           /* -c */
	char *stats_json;
	char *save_dir;
	char *log_json;
	FILE *log_json_fp;
	/* TLS */
	char *cert, *key;
	char *tls_priority;
	int tls_client_cert; /* 0 none, 1 request, 2 require */
	int require_tls;
	/* AUTH */
	char *auth_users;
	int require_auth;
	int proxy;
	int verbose;
};

extern struct sink_config cfg;
extern uv_loop_t *sink_loop;

/* ---- TLS ---- */

/* Load --cert/--key or make a self-signed certificate; log_fatal on failure. */
void sink_tls_init(void);
void sink_tls_deinit(void);
/* A server session on fd with our credentials and priority; 0 or KUMO_ETLS. */
int sink_tls_session(gnutls_session_t *sp, int fd);

/* ---- AUTH ---- */

void sink_auth_load(const char *path);
/* 1 if user:password is listed. */
int sink_auth_check(const char *user, const char *pass);
/* Decode base64 in place; returns the length or -1 when malformed. */
int sink_b64_decode(char *s, size_t len);

/* ---- PROXY protocol ---- */

/*
 * Parse a PROXY v1 or v2 header at the front of data[0..len). Returns the
 * header's length with the claimed source written to src (as "ADDR" or
 * "unknown"), KUMO_EAGAIN when more bytes are needed, KUMO_EPARSE when it is
 * not a valid header.
 */
int sink_proxy_parse(const unsigned char *data, size_t len, char *src, size_t srcsize);

/* ---- stats ---- */

void sink_stats_init(void);
void sink_stats_conn_open(const char *addr);
/* A session's EHLO name became name (prev: the old one or NULL). */
void sink_stats_ehlo(const char *prev, const char *name);
void sink_stats_conn_close(const char *addr, const char *ehlo, uint64_t nmsgs);
void sink_stats_message(const char *addr, const char *ehlo, int nrcpt, uint64_t bytes);
void sink_stats_reply(int code);
void sink_stats_tls(const char *version, const char *suite);
void sink_stats_auth(const char *user);
void sink_stats_proxy(const char *src);
void sink_stats_event(const char *what); /* counted by name: "starttls_injection", ... */
uint64_t sink_stats_messages(void);
int sink_stats_current(void);
/* Write --stats-json (write then rename); 0 or a negative code. */
int sink_stats_write(const char *path);
/* -c: redraw the counter line (final: end it with a newline). */
void sink_stats_counter(int final);
void sink_stats_deinit(void);

/* JSON string escaping into b. */
void sink_json_str(struct buf *b, const char *s);

/* ---- sessions ---- */

/* Take an accepted socket. */
void sink_session_start(int fd, const struct sockaddr *sa, int tls);
/* Close every session (shutdown). */
void sink_session_close_all(void);
/* Free what sessions keep for reuse (after the loop has ended). */
void sink_session_deinit(void);
/* Listeners: stop or resume accepting (max-clients). */
void sink_listeners_pause(int pause);
/* Begin a clean shutdown (SIGTERM, --exit-after). */
void sink_shutdown(void);

#endif
