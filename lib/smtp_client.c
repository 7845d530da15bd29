/*
 * smtp_client.c: the SMTP client state machine over a conn.
 *
 * Two functions carry the protocol: enter_state() decides what to send on
 * entering a state (and arms that phase's timeout); on_reply() decides,
 * from the reply to the command outstanding in the current state, where to
 * go next. With PIPELINING the whole transaction ([RSET] MAIL RCPT... DATA)
 * goes out in one write when it starts, and the states are then walked
 * only to match the replies in order; without it each state sends its own
 * command. Everything else is bookkeeping: the transaction's replies, the
 * session facts, and the error report.
 *
 * Owns: its conn, copies of its parameters, a reference on the tls_ctx.
 * Freed from the conn's close callback (libuv rules).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include <uv.h>

#include "buf.h"
#include "conn.h"
#include "dane.h"
#include "kumo.h"
#include "log.h"
#include "proxy.h"
#include "smtp_client.h"
#include "smtp_proto.h"
#include "tls.h"

#define BANNER_MAX 512

struct smtp_client {
	uv_loop_t *loop;
	struct conn *conn;
	struct smtp_client_cbs cbs;
	void *arg;

	/* parameters (strings owned) */
	char *ehlo_domain;
	enum tls_mode tls_mode;
	struct tls_ctx *tls_ctx;
	char *tls_server_name;
	struct sockaddr_storage source;
	int has_source;
	char *auth_username;
	char *auth_password;
	int allow_auth_plain_without_tls;
	unsigned timeout_ms[SMTP_TIMEOUT_COUNT];
	enum smtp_proxy_kind proxy;
	struct sockaddr_storage proxy_server, proxy_source;
	int has_proxy_source;
	char *proxy_username, *proxy_password; /* SOCKS5 RFC 1929 */
	struct socks5_client socks;
	char *id;
	size_t max_reply_bytes;
	/* DANE: records with their data copied into dane_data; dane_chk runs in the handshake */
	struct dane_tlsa *dane;
	size_t ndane;
	unsigned char *dane_data;
	char *dane_domain;
	const char *dane_names[2];
	struct dane_check dane_chk;
	char *tls_policy;

	/* session */
	enum smtp_client_state state;
	char *peer_name;
	char peer_str[64];
	struct sockaddr_storage peer;
	struct smtp_caps caps;
	char banner[BANNER_MAX];
	int tls;
	int authenticated;
	int ready_sent;
	int quitting;
	int closing;
	unsigned ntxn;
	unsigned ndelivered;
	struct smtp_reply reply; /* the reply being handled */
	char *err_text;

	/* the transaction in progress */
	const struct smtp_txn *txn;
	size_t txn_nrcpt; /* a copy: the caller may free txn inside the error callback */
	int pipelined;	 /* this transaction's commands went out in one batch */
	int batch_sent;
	int need_rset;	 /* a transaction ran on this connection before */
	size_t rcpt_idx; /* the RCPT whose reply is awaited next */
	size_t naccepted;
	int mail_ok;
	int dot_sent;
	int abort_dot; /* the "." went out only to end a DATA nobody should get */
	struct smtp_reply r_mail, r_data, r_final;
	struct smtp_reply *r_rcpt;
};

static void enter_state(struct smtp_client *c, enum smtp_client_state s);
static void client_tls_cb(struct conn *conn, int status, void *arg);

static const char *const phase_names[SMTP_PHASE_COUNT] = {
	[SMTP_PHASE_CONNECT] = "connect",     [SMTP_PHASE_BANNER] = "banner",
	[SMTP_PHASE_STARTTLS] = "starttls",   [SMTP_PHASE_EHLO] = "ehlo",
	[SMTP_PHASE_MAIL_FROM] = "mail_from", [SMTP_PHASE_RCPT_TO] = "rcpt_to",
	[SMTP_PHASE_DATA] = "data",	      [SMTP_PHASE_DATA_DOT] = "data_dot",
	[SMTP_PHASE_RSET] = "rset",	      [SMTP_PHASE_AUTH] = "auth",
	[SMTP_PHASE_QUIT] = "quit",	      [SMTP_PHASE_IDLE] = "idle",
};

const char *
smtp_phase_str(enum smtp_phase p)
{
	if ((unsigned)p >= SMTP_PHASE_COUNT)
		return "?";
	return phase_names[p];
}

static const char *const state_names[] = {
	[SMTP_CLIENT_INIT] = "init",
	[SMTP_CLIENT_CONNECTING] = "connecting",
	[SMTP_CLIENT_PROXY] = "proxy",
	[SMTP_CLIENT_BANNER] = "banner",
	[SMTP_CLIENT_EHLO] = "ehlo",
	[SMTP_CLIENT_HELO] = "helo",
	[SMTP_CLIENT_STARTTLS] = "starttls",
	[SMTP_CLIENT_TLS_HANDSHAKE] = "tls_handshake",
	[SMTP_CLIENT_EHLO_TLS] = "ehlo_tls",
	[SMTP_CLIENT_AUTH] = "auth",
	[SMTP_CLIENT_READY] = "ready",
	[SMTP_CLIENT_RSET] = "rset",
	[SMTP_CLIENT_MAIL] = "mail",
	[SMTP_CLIENT_RCPT] = "rcpt",
	[SMTP_CLIENT_DATA] = "data",
	[SMTP_CLIENT_BODY] = "body",
	[SMTP_CLIENT_QUIT] = "quit",
	[SMTP_CLIENT_FAILED] = "failed",
	[SMTP_CLIENT_CLOSED] = "closed",
};

const char *
smtp_client_state_str(enum smtp_client_state s)
{
	if ((unsigned)s >= KUMO_NELEM(state_names) || state_names[s] == NULL)
		return "?";
	return state_names[s];
}

void
smtp_client_params_init(struct smtp_client_params *p)
{
	static const unsigned defaults_s[SMTP_TIMEOUT_COUNT] = SMTP_TIMEOUT_DEFAULTS_S;
	size_t i;

	memset(p, 0, sizeof(*p));
	p->tls_mode = TLS_MODE_DEFAULT;
	for (i = 0; i < SMTP_TIMEOUT_COUNT; i++)
		p->timeout_ms[i] = defaults_s[i] * 1000u;
}

/* Which timeout and error phase a state belongs to. */
static enum smtp_phase
state_phase(enum smtp_client_state s)
{
	switch (s) {
	case SMTP_CLIENT_INIT:
	case SMTP_CLIENT_CONNECTING:
	case SMTP_CLIENT_PROXY:
		return SMTP_PHASE_CONNECT;
	case SMTP_CLIENT_BANNER:
		return SMTP_PHASE_BANNER;
	case SMTP_CLIENT_EHLO:
	case SMTP_CLIENT_HELO:
	case SMTP_CLIENT_EHLO_TLS:
		return SMTP_PHASE_EHLO;
	case SMTP_CLIENT_STARTTLS:
	case SMTP_CLIENT_TLS_HANDSHAKE:
		return SMTP_PHASE_STARTTLS;
	case SMTP_CLIENT_AUTH:
		return SMTP_PHASE_AUTH;
	case SMTP_CLIENT_RSET:
		return SMTP_PHASE_RSET;
	case SMTP_CLIENT_MAIL:
		return SMTP_PHASE_MAIL_FROM;
	case SMTP_CLIENT_RCPT:
		return SMTP_PHASE_RCPT_TO;
	case SMTP_CLIENT_DATA:
		return SMTP_PHASE_DATA;
	case SMTP_CLIENT_BODY:
		return SMTP_PHASE_DATA_DOT;
	case SMTP_CLIENT_QUIT:
		return SMTP_PHASE_QUIT;
	default:
		return SMTP_PHASE_IDLE;
	}
}

static unsigned
phase_timeout(const struct smtp_client *c, enum smtp_phase p)
{
	if (p < SMTP_TIMEOUT_COUNT)
		return c->timeout_ms[p];
	if (p == SMTP_PHASE_AUTH)
		return c->timeout_ms[SMTP_PHASE_EHLO];
	if (p == SMTP_PHASE_QUIT)
		return c->timeout_ms[SMTP_PHASE_RSET];
	return 0;
}

static void
reply_copy(struct smtp_reply *dst, const struct smtp_reply *src)
{
	dst->code = src->code;
	memcpy(dst->enhanced, src->enhanced, sizeof(dst->enhanced));
	dst->nlines = src->nlines;
	buf_reset(&dst->text);
	(void)buf_append(&dst->text, src->text.data ? src->text.data : "", src->text.len);
}

/* The first line of a reply's text, for one-line log messages. */
static void
reply_line(const struct smtp_reply *r, char *out, size_t outlen)
{
	const char *t = r->text.data ? r->text.data : "";
	size_t n = strcspn(t, "\n");

	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, t, n);
	out[n] = '\0';
}

/* Release the transaction's replies and forget it. */
static void
txn_clear(struct smtp_client *c)
{
	size_t i;

	if (c->r_rcpt != NULL) {
		for (i = 0; i < c->txn_nrcpt; i++)
			smtp_reply_release(&c->r_rcpt[i]);
	}
	free(c->r_rcpt);
	c->r_rcpt = NULL;
	smtp_reply_release(&c->r_mail);
	smtp_reply_release(&c->r_data);
	smtp_reply_release(&c->r_final);
	c->txn = NULL;
}

/*
 * The session failed: report it once (unless quitting or closing), with
 * the transaction in progress, if any. The client only waits to be closed.
 */
static void
fail_session(struct smtp_client *c, int err, const struct smtp_reply *reply, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
fail_session(struct smtp_client *c, int err, const struct smtp_reply *reply, const char *fmt, ...)
{
	struct smtp_client_error e;
	struct buf text;
	va_list ap;

	if (c->state == SMTP_CLIENT_FAILED || c->closing)
		return;
	buf_init(&text, 4096);
	va_start(ap, fmt);
	(void)buf_vappendf(&text, fmt, ap);
	va_end(ap);
	free(c->err_text);
	c->err_text = buf_steal(&text, NULL);
	buf_release(&text);
	if (c->err_text == NULL)
		c->err_text = xstrdup(kumo_strerror(err));

	memset(&e, 0, sizeof(e));
	e.err = err;
	e.phase = state_phase(c->state);
	e.reply = reply;
	e.text = c->err_text;
	e.txn = c->txn;
	e.dot_sent = c->txn != NULL && c->dot_sent;
	log_trace(LOG_TRACE_SMTP_CLIENT, "%s failed state=%s phase=%s err=%s: %s", c->id,
		  smtp_client_state_str(c->state), smtp_phase_str(e.phase), kumo_strerror(err), c->err_text);
	c->state = SMTP_CLIENT_FAILED;
	conn_set_timeout(c->conn, 0);
	if (c->quitting) {
		smtp_client_close(c);
		return;
	}
	c->cbs.error(c, &e, c->arg);
	/* The error callback may have closed us; the transaction is over either way. */
	if (c->r_rcpt != NULL || c->txn != NULL)
		txn_clear(c);
}

/* Queue one command line (CRLF added), tracing it. */
static void
send_cmd(struct smtp_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
send_cmd(struct smtp_client *c, const char *fmt, ...)
{
	struct buf *w = conn_wbuf(c->conn);
	size_t start = w->len;
	va_list ap;

	va_start(ap, fmt);
	(void)buf_vappendf(w, fmt, ap);
	va_end(ap);
	if (log_trace_on(LOG_TRACE_SMTP_CLIENT))
		log_trace(LOG_TRACE_SMTP_CLIENT, "%s > %.*s", c->id,
			  strncmp(w->data + start, "AUTH ", 5) == 0 ? 10 : (int)(w->len - start), w->data + start);
	(void)buf_append(w, "\r\n", 2);
	(void)conn_write(c->conn, NULL, 0); /* schedules the batch for the next loop turn */
}

/*
 * Any octet >= 0x80 (BODY=8BITMIME)? Eight bytes at a time: on a 100 KB
 * message the byte loop was the largest user-space cost of a relay.
 */
static int
has_8bit(const char *p, size_t n)
{
	size_t i = 0;

	for (; i + 32 <= n; i += 32) {
		uint64_t w[4];

		memcpy(w, p + i, sizeof(w));
		if (((w[0] | w[1] | w[2] | w[3]) & UINT64_C(0x8080808080808080)) != 0)
			return 1;
	}
	for (; i < n; i++)
		if ((unsigned char)p[i] >= 0x80)
			return 1;
	return 0;
}

static void
send_mail(struct smtp_client *c)
{
	const struct smtp_txn *t = c->txn;
	struct buf params;

	buf_init(&params, 256);
	if (c->caps.flags & SMTP_CAP_SIZE)
		(void)buf_appendf(&params, " SIZE=%zu", t->len);
	if ((c->caps.flags & SMTP_CAP_8BITMIME) && has_8bit(t->data, t->len))
		(void)buf_puts(&params, " BODY=8BITMIME");
	send_cmd(c, "MAIL FROM:<%s>%s", t->sender, params.data ? params.data : "");
	buf_release(&params);
}

static void
send_rcpt(struct smtp_client *c, size_t i)
{
	send_cmd(c, "RCPT TO:<%s>", c->txn->recipients[i]);
}

/* MAIL, every RCPT and DATA in one write (RFC 2920). */
static void
send_batch(struct smtp_client *c)
{
	size_t i;

	send_mail(c);
	for (i = 0; i < c->txn->nrecipients; i++)
		send_rcpt(c, i);
	send_cmd(c, "DATA");
	c->batch_sent = 1;
}

static void
b64_encode(struct buf *out, const unsigned char *p, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		(void)buf_putc(out, tab[v >> 18 & 63]);
		(void)buf_putc(out, tab[v >> 12 & 63]);
		(void)buf_putc(out, tab[v >> 6 & 63]);
		(void)buf_putc(out, tab[v & 63]);
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;

		(void)buf_putc(out, tab[v >> 18 & 63]);
		(void)buf_putc(out, tab[v >> 12 & 63]);
		(void)buf_puts(out, "==");
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

		(void)buf_putc(out, tab[v >> 18 & 63]);
		(void)buf_putc(out, tab[v >> 12 & 63]);
		(void)buf_putc(out, tab[v >> 6 & 63]);
		(void)buf_putc(out, '=');
	}
}

static void
send_auth(struct smtp_client *c)
{
	struct buf raw, enc;

	buf_init(&raw, 0);
	buf_init(&enc, 0);
	/* RFC 4616: authzid NUL authcid NUL passwd, with an empty authzid. */
	(void)buf_putc(&raw, '\0');
	(void)buf_puts(&raw, c->auth_username);
	(void)buf_putc(&raw, '\0');
	(void)buf_puts(&raw, c->auth_password ? c->auth_password : "");
	b64_encode(&enc, (const unsigned char *)raw.data, raw.len);
	send_cmd(c, "AUTH PLAIN %s", enc.data ? enc.data : "=");
	memset(raw.data, 0, raw.len);
	buf_release(&raw);
	buf_release(&enc);
}

/* The body, dot-stuffed, and the final "."; sent at once. */
static void
send_body(struct smtp_client *c)
{
	struct buf *w = conn_wbuf(c->conn);
	struct smtp_dot_enc enc;

	smtp_dot_enc_init(&enc);
	if (!c->abort_dot)
		(void)smtp_dot_encode(&enc, w, c->txn->data, c->txn->len);
	(void)smtp_dot_encode_end(&enc, w);
	log_trace(LOG_TRACE_SMTP_CLIENT, "%s > (%zu bytes of message) .", c->id, c->abort_dot ? 0 : c->txn->len);
	c->dot_sent = 1;
	(void)conn_flush(c->conn);
}

/* Where a session goes after EHLO/HELO (pre-TLS) or after EHLO over TLS. */
static enum smtp_client_state
after_ehlo(struct smtp_client *c)
{
	if (!c->tls && (c->tls_mode != TLS_DISABLED || c->ndane > 0)) {
		if (c->caps.flags & SMTP_CAP_STARTTLS)
			return SMTP_CLIENT_STARTTLS;
		if (c->ndane > 0) {
			fail_session(c, KUMO_ETLS, NULL, "STARTTLS not advertised (DANE: TLSA records published)");
			return SMTP_CLIENT_FAILED;
		}
		if (tls_mode_requires(c->tls_mode)) {
			fail_session(c, KUMO_ETLS, NULL, "STARTTLS not advertised (enable_tls=%s)",
				     tls_mode_str(c->tls_mode));
			return SMTP_CLIENT_FAILED;
		}
	}
	if (c->auth_username != NULL) {
		if (!c->tls && !c->allow_auth_plain_without_tls) {
			fail_session(c, KUMO_EPROTO, NULL,
				     "AUTH PLAIN refused without TLS (allow_smtp_auth_plain_without_tls is false)");
			return SMTP_CLIENT_FAILED;
		}
		if (!(c->caps.flags & SMTP_CAP_AUTH) || !(c->caps.auth & SMTP_AUTH_PLAIN)) {
			fail_session(c, KUMO_EPROTO, NULL, "AUTH PLAIN not advertised");
			return SMTP_CLIENT_FAILED;
		}
		return SMTP_CLIENT_AUTH;
	}
	return SMTP_CLIENT_READY;
}

/* The transaction is over with replies: report it, then idle. */
static void
finish_txn(struct smtp_client *c)
{
	const struct smtp_txn *txn = c->txn;
	struct smtp_reply mail = c->r_mail, data = c->r_data, final = c->r_final;
	struct smtp_reply *rcpt = c->r_rcpt;
	struct smtp_txn_result r;
	size_t i, n = txn->nrecipients;

	/* Move the replies out, so the callback can start the next transaction. */
	smtp_reply_init(&c->r_mail);
	smtp_reply_init(&c->r_data);
	smtp_reply_init(&c->r_final);
	c->r_rcpt = NULL;
	c->txn = NULL;

	memset(&r, 0, sizeof(r));
	r.mail = &mail;
	r.rcpt = rcpt;
	r.data = &data;
	r.final = &final;
	r.naccepted = c->naccepted;
	r.delivered = !c->abort_dot && c->naccepted > 0 && final.code >= 200 && final.code < 300;
	if (r.delivered)
		c->ndelivered++;
	log_trace(LOG_TRACE_SMTP_CLIENT, "%s transaction done: %zu/%zu accepted, final %d, delivered=%d",
		  c->id, r.naccepted, n, final.code, r.delivered);
	c->need_rset = 1;
	c->state = SMTP_CLIENT_READY;
	conn_set_timeout(c->conn, 0);
	if (c->cbs.txn_done != NULL)
		c->cbs.txn_done(c, txn, &r, c->arg);
	smtp_reply_release(&mail);
	smtp_reply_release(&data);
	smtp_reply_release(&final);
	for (i = 0; i < n; i++)
		smtp_reply_release(&rcpt[i]);
	free(rcpt);
}

/*
 * Put the DANE check on the session conn_starttls() just made: the server's
 * certificate cannot have arrived yet (the handshake runs from the loop).
 */
static void
dane_install(struct smtp_client *c)
{
	size_t n = 0;

	if (c->peer_name != NULL)
		c->dane_names[n++] = c->peer_name;
	if (c->dane_domain != NULL)
		c->dane_names[n++] = c->dane_domain;
	c->dane_chk.recs = c->dane;
	c->dane_chk.n = c->ndane;
	c->dane_chk.names = c->dane_names;
	c->dane_chk.n_names = n;
	dane_session_install(conn_tls_session(c->conn), &c->dane_chk);
}

/* Set the state, send what it calls for and arm its timeout. */
static void proxy_start(struct smtp_client *c);
static int proxy_read(struct smtp_client *c, struct buf *in);

static void
enter_state(struct smtp_client *c, enum smtp_client_state s)
{
	struct tls_peer peer;
	int r;

	if (s == SMTP_CLIENT_FAILED || c->state == SMTP_CLIENT_FAILED || c->closing)
		return;
	log_trace(LOG_TRACE_SMTP_CLIENT, "%s state %s -> %s", c->id, smtp_client_state_str(c->state),
		  smtp_client_state_str(s));
	c->state = s;
	conn_set_timeout(c->conn, phase_timeout(c, state_phase(s)));
	switch (s) {
	case SMTP_CLIENT_BANNER:
		break;
	case SMTP_CLIENT_EHLO:
	case SMTP_CLIENT_EHLO_TLS:
		send_cmd(c, "EHLO %s", c->ehlo_domain);
		break;
	case SMTP_CLIENT_HELO:
		send_cmd(c, "HELO %s", c->ehlo_domain);
		break;
	case SMTP_CLIENT_STARTTLS:
		if (c->tls_ctx == NULL) {
			fail_session(c, KUMO_ETLS, NULL, "STARTTLS advertised but no TLS context configured");
			return;
		}
		send_cmd(c, "STARTTLS");
		break;
	case SMTP_CLIENT_TLS_HANDSHAKE:
		memset(&peer, 0, sizeof(peer));
		peer.server_name = c->tls_server_name ? c->tls_server_name : c->peer_name;
		/* DANE replaces PKIX for this host (RFC 7672 3.1.1). */
		peer.verify = tls_mode_verifies(c->tls_mode) && c->ndane == 0;
		r = conn_starttls(c->conn, c->tls_ctx, &peer, client_tls_cb);
		if (r < 0)
			fail_session(c, r, NULL, "STARTTLS: %s", conn_error_text(c->conn));
		else if (c->ndane > 0)
			dane_install(c);
		break;
	case SMTP_CLIENT_AUTH:
		send_auth(c);
		break;
	case SMTP_CLIENT_READY:
		if (!c->ready_sent) {
			c->ready_sent = 1;
			c->cbs.ready(c, c->arg);
		}
		break;
	case SMTP_CLIENT_RSET:
		send_cmd(c, "RSET");
		if (c->pipelined)
			send_batch(c);
		break;
	case SMTP_CLIENT_MAIL:
		if (c->pipelined) {
			if (!c->batch_sent)
				send_batch(c);
		} else {
			send_mail(c);
		}
		break;
	case SMTP_CLIENT_RCPT:
		if (!c->pipelined)
			send_rcpt(c, c->rcpt_idx);
		break;
	case SMTP_CLIENT_DATA:
		if (!c->pipelined)
			send_cmd(c, "DATA");
		break;
	case SMTP_CLIENT_BODY:
		send_body(c);
		break;
	case SMTP_CLIENT_QUIT:
		send_cmd(c, "QUIT");
		break;
	default:
		break;
	}
}

/* Decide where the reply to the current state's command leads. */
static void
on_reply(struct smtp_client *c, const struct smtp_reply *r)
{
	int cls = r->code / 100;
	char line[256];

	reply_line(r, line, sizeof(line));
	switch (c->state) {
	case SMTP_CLIENT_BANNER:
		snprintf(c->banner, sizeof(c->banner), "%s", line);
		if (cls != 2) {
			fail_session(c, KUMO_EPROTO, r, "banner: %d %s", r->code, line);
			return;
		}
		enter_state(c, SMTP_CLIENT_EHLO);
		return;
	case SMTP_CLIENT_EHLO:
		if (cls == 2) {
			smtp_caps_parse(r, &c->caps);
			enter_state(c, after_ehlo(c));
		} else if (cls == 5) {
			enter_state(c, SMTP_CLIENT_HELO);
		} else {
			fail_session(c, KUMO_EPROTO, r, "EHLO: %d %s", r->code, line);
		}
		return;
	case SMTP_CLIENT_HELO:
		if (cls != 2) {
			fail_session(c, KUMO_EPROTO, r, "HELO: %d %s", r->code, line);
			return;
		}
		memset(&c->caps, 0, sizeof(c->caps));
		enter_state(c, after_ehlo(c));
		return;
	case SMTP_CLIENT_STARTTLS:
		if (r->code != 220) {
			fail_session(c, KUMO_ETLS, r, "STARTTLS: %d %s", r->code, line);
			return;
		}
		enter_state(c, SMTP_CLIENT_TLS_HANDSHAKE);
		return;
	case SMTP_CLIENT_EHLO_TLS:
		if (cls != 2) {
			fail_session(c, KUMO_EPROTO, r, "EHLO after STARTTLS: %d %s", r->code, line);
			return;
		}
		smtp_caps_parse(r, &c->caps);
		enter_state(c, after_ehlo(c));
		return;
	case SMTP_CLIENT_AUTH:
		if (cls != 2) {
			fail_session(c, KUMO_EPROTO, r, "AUTH PLAIN: %d %s", r->code, line);
			return;
		}
		c->authenticated = 1;
		enter_state(c, SMTP_CLIENT_READY);
		return;
	case SMTP_CLIENT_RSET:
		if (cls != 2) {
			fail_session(c, KUMO_EPROTO, r, "RSET: %d %s", r->code, line);
			return;
		}
		enter_state(c, SMTP_CLIENT_MAIL);
		return;
	case SMTP_CLIENT_MAIL:
		reply_copy(&c->r_mail, r);
		c->mail_ok = cls == 2;
		if (!c->mail_ok && !c->pipelined) {
			finish_txn(c);
			return;
		}
		c->rcpt_idx = 0;
		enter_state(c, SMTP_CLIENT_RCPT);
		return;
	case SMTP_CLIENT_RCPT:
		reply_copy(&c->r_rcpt[c->rcpt_idx], r);
		if (cls == 2 && c->mail_ok)
			c->naccepted++;
		if (++c->rcpt_idx < c->txn->nrecipients) {
			enter_state(c, SMTP_CLIENT_RCPT);
			return;
		}
		if (!c->pipelined && c->naccepted == 0) {
			finish_txn(c);
			return;
		}
		enter_state(c, SMTP_CLIENT_DATA);
		return;
	case SMTP_CLIENT_DATA:
		reply_copy(&c->r_data, r);
		if (cls != 3) {
			finish_txn(c);
			return;
		}
		/* A 354 with nothing accepted (pipelining): end the DATA empty. */
		c->abort_dot = c->naccepted == 0;
		enter_state(c, SMTP_CLIENT_BODY);
		return;
	case SMTP_CLIENT_BODY:
		reply_copy(&c->r_final, r);
		finish_txn(c);
		return;
	case SMTP_CLIENT_QUIT:
		smtp_client_close(c);
		return;
	default:
		fail_session(c, KUMO_EPROTO, r, "unexpected reply in state %s: %d %s",
			     smtp_client_state_str(c->state), r->code, line);
		return;
	}
}

static void
client_on_read(struct conn *conn, struct buf *in, void *arg)
{
	struct smtp_client *c = arg;
	size_t consumed;
	int r;

	(void)conn;
	while (in->len > 0 && !c->closing && c->state != SMTP_CLIENT_FAILED) {
		if (c->state == SMTP_CLIENT_PROXY) {
			if (proxy_read(c, in) != 0)
				return;
			continue;
		}
		r = smtp_reply_parse(in->data, in->len, &c->reply, &consumed);
		if (r == KUMO_EAGAIN)
			return;
		if (r < 0) {
			fail_session(c, KUMO_EPROTO, NULL, "malformed reply in state %s: %s",
				     smtp_client_state_str(c->state), kumo_strerror(r));
			return;
		}
		buf_drain(in, consumed);
		if (log_trace_on(LOG_TRACE_SMTP_CLIENT))
			log_trace(LOG_TRACE_SMTP_CLIENT, "%s < %d %s%s%s", c->id, c->reply.code,
				  c->reply.enhanced, c->reply.enhanced[0] ? " " : "",
				  c->reply.text.data ? c->reply.text.data : "");
		on_reply(c, &c->reply);
	}
}

static void
client_on_connect(struct conn *conn, int status, void *arg)
{
	struct smtp_client *c = arg;

	if (status < 0) {
		fail_session(c, status, NULL, "connect to %s: %s", c->peer_str,
			     status == KUMO_ETIMEDOUT ? "timed out" : kumo_strerror(status));
		return;
	}
	log_trace(LOG_TRACE_SMTP_CLIENT, "%s connected to %s (%s)", c->id, c->peer_str,
		  c->peer_name ? c->peer_name : "");
	(void)conn;
	if (c->proxy != SMTP_PROXY_NONE) {
		proxy_start(c);
		return;
	}
	enter_state(c, SMTP_CLIENT_BANNER);
}

static void
client_on_tls(struct smtp_client *c, int status)
{
	if (c->ndane > 0 && c->dane_chk.checked && c->dane_chk.result.verdict == DANE_FAILED) {
		fail_session(c, KUMO_ETLS, NULL, "TLS handshake with %s: DANE: the TLSA records do not "
			     "authenticate the server: %s", c->peer_str, c->dane_chk.result.reason);
		return;
	}
	if (status == 0 && c->ndane > 0 && !c->dane_chk.checked) {
		/* Never reached in practice: a full handshake always shows a certificate. */
		fail_session(c, KUMO_ETLS, NULL, "TLS handshake with %s: the DANE check did not run",
			     c->peer_str);
		return;
	}
	if (status == KUMO_ETIMEDOUT) {
		fail_session(c, status, NULL, "timeout during the TLS handshake with %s (starttls_timeout %ums)",
			     c->peer_str, phase_timeout(c, SMTP_PHASE_STARTTLS));
		return;
	}
	if (status < 0) {
		fail_session(c, status, NULL, "TLS handshake with %s: %s", c->peer_str, conn_error_text(c->conn));
		return;
	}
	c->tls = 1;
	/* RFC 3207: forget everything learnt before TLS. */
	memset(&c->caps, 0, sizeof(c->caps));
	if (log_trace_on(LOG_TRACE_SMTP_CLIENT)) {
		struct tls_info info;

		conn_tls_info(c->conn, &info);
		log_trace(LOG_TRACE_SMTP_CLIENT, "%s TLS %s %s verified=%d", c->id, info.version, info.cipher,
			  info.verified);
	}
	enter_state(c, SMTP_CLIENT_EHLO_TLS);
}

static void
client_on_error(struct conn *conn, int err, void *arg)
{
	struct smtp_client *c = arg;
	enum smtp_phase ph = state_phase(c->state);

	(void)conn;
	if (c->state == SMTP_CLIENT_QUIT) {
		smtp_client_close(c);
		return;
	}
	if (c->state == SMTP_CLIENT_TLS_HANDSHAKE) {
		client_on_tls(c, err);
		return;
	}
	if (err == KUMO_ETIMEDOUT)
		fail_session(c, err, NULL, "timeout waiting for the %s reply (%s_timeout %ums)",
			     smtp_phase_str(ph), smtp_phase_str(ph), phase_timeout(c, ph));
	else if (err == KUMO_ENOSPACE)
		fail_session(c, KUMO_EPROTO, NULL, "reply too long in state %s", smtp_client_state_str(c->state));
	else
		fail_session(c, err, NULL, "connection %s in state %s: %s",
			     err == UV_EOF ? "closed by peer" : "failed", smtp_client_state_str(c->state),
			     err == UV_EOF ? "EOF" : conn_error_text(c->conn));
}

/*
 * The body and "." have left for the kernel: data_dot counts from here, so
 * a large message on a slow link is not cut short while still uploading.
 */
static void
client_on_drain(struct conn *conn, void *arg)
{
	struct smtp_client *c = arg;

	if (c->state == SMTP_CLIENT_BODY && !c->closing)
		conn_set_timeout(conn, phase_timeout(c, SMTP_PHASE_DATA_DOT));
}

/* The conn's handshake callback: the client pointer is the conn's arg. */
static void
client_tls_cb(struct conn *conn, int status, void *arg)
{
	(void)conn;
	client_on_tls(arg, status);
}

static void
client_on_close(struct conn *conn, void *arg)
{
	struct smtp_client *c = arg;

	(void)conn;
	c->state = SMTP_CLIENT_CLOSED;
	if (c->cbs.closed != NULL)
		c->cbs.closed(c, c->arg);
	txn_clear(c);
	smtp_reply_release(&c->reply);
	tls_ctx_unref(&c->tls_ctx);
	free(c->ehlo_domain);
	free(c->tls_server_name);
	if (c->auth_password != NULL)
		memset(c->auth_password, 0, strlen(c->auth_password));
	free(c->auth_username);
	free(c->auth_password);
	if (c->proxy_password != NULL)
		memset(c->proxy_password, 0, strlen(c->proxy_password));
	free(c->proxy_username);
	free(c->proxy_password);
	free(c->id);
	free(c->peer_name);
	free(c->err_text);
	free(c->dane);
	free(c->dane_data);
	free(c->dane_domain);
	free(c->tls_policy);
	free(c);
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

/* 0.0.0.0 or :: (a SOCKS5 source that lets the proxy choose). */
static int
addr_unspecified(const struct sockaddr *sa)
{
	static const unsigned char zero[16];

	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr == 0;
	if (sa->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, zero, 16) == 0;
	return 1;
}

/* The IP literal of sa (no port) into out. */
static void
addr_ip(const struct sockaddr *sa, char *out, size_t outlen)
{
	out[0] = '\0';
	if (sa->sa_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)(const void *)sa, out, outlen);
	else if (sa->sa_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)(const void *)sa, out, outlen);
}

static uint16_t
addr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
	return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
}

/* Connected to the proxy: send the PROXY header, or start the SOCKS5 handshake. */
static void
proxy_start(struct smtp_client *c)
{
	char ip[64], src[64], proxy_str[64];
	int r;

	conn_addr_str((const struct sockaddr *)&c->proxy_server, proxy_str, sizeof(proxy_str));
	if (c->proxy == SMTP_PROXY_HAPROXY) {
		r = proxy_v2_header(conn_wbuf(c->conn), (const struct sockaddr *)&c->proxy_source,
				    (const struct sockaddr *)&c->peer);
		if (r == 0)
			r = conn_write(c->conn, NULL, 0);
		if (r != 0) {
			fail_session(c, r, NULL, "PROXY header to %s: %s", proxy_str, kumo_strerror(r));
			return;
		}
		log_trace(LOG_TRACE_SMTP_CLIENT, "%s sent a PROXY v2 header to %s for %s", c->id, proxy_str,
			  c->peer_str);
		enter_state(c, SMTP_CLIENT_BANNER);
		return;
	}
	addr_ip((const struct sockaddr *)&c->peer, ip, sizeof(ip));
	r = socks5_init(&c->socks, ip, addr_port((const struct sockaddr *)&c->peer), c->proxy_username,
			c->proxy_password);
	if (r == 0 && c->has_proxy_source) {
		addr_ip((const struct sockaddr *)&c->proxy_source, src, sizeof(src));
		r = socks5_set_source(&c->socks, src);
	}
	if (r == 0)
		r = socks5_start(&c->socks, conn_wbuf(c->conn));
	if (r == 0)
		r = conn_write(c->conn, NULL, 0);
	if (r != 0) {
		fail_session(c, r, NULL, "SOCKS5 proxy %s: %s", proxy_str, socks5_error_str(r));
		return;
	}
	log_trace(LOG_TRACE_SMTP_CLIENT, "%s SOCKS5 via %s to %s%s%s", c->id, proxy_str, c->peer_str,
		  c->has_proxy_source ? " from " : "", c->has_proxy_source ? src : "");
	enter_state(c, SMTP_CLIENT_PROXY);
}

/* SOCKS5 replies: 0 when the tunnel is open (in holds what followed), 1 to wait, -1 failed. */
static int
proxy_read(struct smtp_client *c, struct buf *in)
{
	char proxy_str[64];
	size_t consumed = 0;
	int r;

	r = socks5_feed(&c->socks, in->data, in->len, conn_wbuf(c->conn), &consumed);
	if (r < 0) {
		conn_addr_str((const struct sockaddr *)&c->proxy_server, proxy_str, sizeof(proxy_str));
		fail_session(c, KUMO_EPROTO, NULL, "SOCKS5 proxy %s (%s): %s", proxy_str,
			     socks5_state_str(c->socks.state), socks5_error_str(r));
		return -1;
	}
	if (r == 0) {
		buf_drain(in, in->len);
		conn_write(c->conn, NULL, 0);
		return 1;
	}
	buf_drain(in, consumed);
	log_trace(LOG_TRACE_SMTP_CLIENT, "%s SOCKS5 tunnel to %s open", c->id, c->peer_str);
	enter_state(c, SMTP_CLIENT_BANNER);
	return 0;
}

/* Copy the params' TLSA records, their data in one block. */
static void
dane_copy(struct smtp_client *c, const struct smtp_client_params *p)
{
	size_t i, total = 0, off = 0;

	if (p->dane_count == 0 || p->dane_tlsa == NULL)
		return;
	for (i = 0; i < p->dane_count; i++)
		total += p->dane_tlsa[i].len;
	c->dane = xcalloc(p->dane_count, sizeof(*c->dane));
	c->dane_data = xmalloc(total ? total : 1);
	for (i = 0; i < p->dane_count; i++) {
		c->dane[i] = p->dane_tlsa[i];
		if (p->dane_tlsa[i].len > 0)
			memcpy(c->dane_data + off, p->dane_tlsa[i].data, p->dane_tlsa[i].len);
		c->dane[i].data = c->dane_data + off;
		off += p->dane_tlsa[i].len;
	}
	c->ndane = p->dane_count;
	c->dane_domain = dup_or_null(p->dane_domain);
}

struct smtp_client *
smtp_client_new(uv_loop_t *loop, const struct smtp_client_params *p, const struct smtp_client_cbs *cbs,
		void *arg)
{
	static unsigned next_id;
	static const struct conn_cbs ccbs = {
		.on_connect = client_on_connect,
		.on_read = client_on_read,
		.on_error = client_on_error,
		.on_drain = client_on_drain,
		.on_close = client_on_close,
	};
	struct smtp_client *c = xcalloc(1, sizeof(*c));
	size_t len;

	c->loop = loop;
	c->cbs = *cbs;
	c->arg = arg;
	c->ehlo_domain = xstrdup(p->ehlo_domain ? p->ehlo_domain : "localhost");
	c->tls_mode = p->tls_mode;
	c->tls_ctx = p->tls_ctx ? tls_ctx_ref(p->tls_ctx) : NULL;
	c->tls_server_name = dup_or_null(p->tls_server_name);
	if (p->source_address != NULL) {
		len = p->source_address->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							       : sizeof(struct sockaddr_in);
		memcpy(&c->source, p->source_address, len);
		c->has_source = 1;
	}
	c->auth_username = dup_or_null(p->auth_username);
	c->auth_password = dup_or_null(p->auth_password);
	c->allow_auth_plain_without_tls = p->allow_auth_plain_without_tls;
	c->proxy = p->proxy_server != NULL ? p->proxy : SMTP_PROXY_NONE;
	if (c->proxy != SMTP_PROXY_NONE) {
		len = p->proxy_server->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							     : sizeof(struct sockaddr_in);
		memcpy(&c->proxy_server, p->proxy_server, len);
		if (p->proxy_source != NULL && !addr_unspecified(p->proxy_source)) {
			len = p->proxy_source->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
								     : sizeof(struct sockaddr_in);
			memcpy(&c->proxy_source, p->proxy_source, len);
			c->has_proxy_source = 1;
		}
		if (p->proxy_username != NULL && p->proxy_password != NULL) {
			c->proxy_username = xstrdup(p->proxy_username);
			c->proxy_password = xstrdup(p->proxy_password);
		}
	}
	memcpy(c->timeout_ms, p->timeout_ms, sizeof(c->timeout_ms));
	c->id = p->session_id ? xstrdup(p->session_id) : xasprintf("c%u", ++next_id);
	c->max_reply_bytes = p->max_reply_bytes ? p->max_reply_bytes : CONN_READ_MAX_DEFAULT;
	dane_copy(c, p);
	c->tls_policy = dup_or_null(p->tls_policy);
	smtp_reply_init(&c->reply);
	smtp_reply_init(&c->r_mail);
	smtp_reply_init(&c->r_data);
	smtp_reply_init(&c->r_final);
	c->conn = conn_new(loop, &ccbs, c);
	conn_set_read_max(c->conn, c->max_reply_bytes);
	return c;
}

int
smtp_client_connect(struct smtp_client *c, const struct sockaddr *peer, const char *peer_name)
{
	size_t len;
	int r;

	if (c->state != SMTP_CLIENT_INIT || c->closing)
		return KUMO_EINVAL;
	if (peer->sa_family != AF_INET && peer->sa_family != AF_INET6)
		return UV_EAFNOSUPPORT;
	len = peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	memcpy(&c->peer, peer, len);
	conn_addr_str(peer, c->peer_str, sizeof(c->peer_str));
	c->peer_name = peer_name ? xstrdup(peer_name) : NULL;
	r = conn_connect(c->conn,
			 c->proxy != SMTP_PROXY_NONE ? (const struct sockaddr *)&c->proxy_server : peer,
			 c->has_source ? (const struct sockaddr *)&c->source : NULL,
			 c->timeout_ms[SMTP_PHASE_CONNECT]);
	if (r < 0)
		return r;
	c->state = SMTP_CLIENT_CONNECTING;
	log_trace(LOG_TRACE_SMTP_CLIENT, "%s connecting to %s (%s) tls=%s", c->id, c->peer_str,
		  peer_name ? peer_name : "", tls_mode_str(c->tls_mode));
	return 0;
}

/* Addresses go on the wire verbatim: refuse anything that could end the command line. */
static int
address_ok(const char *a)
{
	return a != NULL && strpbrk(a, "\r\n<>") == NULL && strlen(a) < SMTP_LINE_MAX - 32;
}

int
smtp_client_send(struct smtp_client *c, const struct smtp_txn *txn)
{
	size_t i;

	if (c->state != SMTP_CLIENT_READY || c->closing || c->txn != NULL)
		return KUMO_EINVAL;
	if (txn == NULL || txn->nrecipients == 0 || !address_ok(txn->sender) ||
	    (txn->data == NULL && txn->len > 0))
		return KUMO_EINVAL;
	for (i = 0; i < txn->nrecipients; i++)
		if (!address_ok(txn->recipients[i]) || txn->recipients[i][0] == '\0')
			return KUMO_EINVAL;
	c->txn = txn;
	c->txn_nrcpt = txn->nrecipients;
	c->r_rcpt = xcalloc(txn->nrecipients, sizeof(*c->r_rcpt));
	for (i = 0; i < txn->nrecipients; i++)
		smtp_reply_init(&c->r_rcpt[i]);
	c->pipelined = (c->caps.flags & SMTP_CAP_PIPELINING) != 0;
	c->batch_sent = 0;
	c->rcpt_idx = 0;
	c->naccepted = 0;
	c->mail_ok = 0;
	c->dot_sent = 0;
	c->abort_dot = 0;
	c->ntxn++;
	enter_state(c, c->need_rset ? SMTP_CLIENT_RSET : SMTP_CLIENT_MAIL);
	return 0;
}

void
smtp_client_quit(struct smtp_client *c)
{
	if (c->closing || c->quitting)
		return;
	c->quitting = 1;
	if (c->state == SMTP_CLIENT_INIT || c->state == SMTP_CLIENT_CONNECTING ||
	    c->state == SMTP_CLIENT_FAILED || c->state == SMTP_CLIENT_TLS_HANDSHAKE) {
		smtp_client_close(c);
		return;
	}
	enter_state(c, SMTP_CLIENT_QUIT);
}

void
smtp_client_close(struct smtp_client *c)
{
	if (c == NULL || c->closing)
		return;
	c->closing = 1;
	conn_close(c->conn);
}

const struct smtp_reply *
smtp_txn_rcpt_reply(const struct smtp_txn_result *r, size_t i)
{
	if (r->mail->code / 100 != 2)
		return r->mail;
	if (r->rcpt[i].code / 100 != 2)
		return &r->rcpt[i];
	if (r->data->code / 100 != 3)
		return r->data;
	return r->final;
}

enum smtp_client_state
smtp_client_state(const struct smtp_client *c)
{
	return c->state;
}

const char *
smtp_client_id(const struct smtp_client *c)
{
	return c->id;
}

const struct sockaddr *
smtp_client_peer(const struct smtp_client *c)
{
	return (const struct sockaddr *)&c->peer;
}

const char *
smtp_client_peer_name(const struct smtp_client *c)
{
	return c->peer_name ? c->peer_name : "";
}

const char *
smtp_client_peer_str(const struct smtp_client *c)
{
	return c->peer_str;
}

const struct smtp_caps *
smtp_client_caps(const struct smtp_client *c)
{
	return &c->caps;
}

const char *
smtp_client_banner(const struct smtp_client *c)
{
	return c->banner;
}

int
smtp_client_is_tls(const struct smtp_client *c)
{
	return c->tls;
}

void
smtp_client_tls_info(const struct smtp_client *c, struct tls_info *info)
{
	if (!c->tls || c->conn == NULL) {
		memset(info, 0, sizeof(*info));
		return;
	}
	conn_tls_info(c->conn, info);
}

int
smtp_client_authenticated(const struct smtp_client *c)
{
	return c->authenticated;
}

unsigned
smtp_client_delivered(const struct smtp_client *c)
{
	return c->ndelivered;
}

unsigned
smtp_client_transactions(const struct smtp_client *c)
{
	return c->ntxn;
}

struct conn *
smtp_client_conn(const struct smtp_client *c)
{
	return c->conn;
}

const struct dane_result *
smtp_client_dane_result(const struct smtp_client *c)
{
	return c->ndane > 0 && c->dane_chk.checked ? &c->dane_chk.result : NULL;
}

const char *
smtp_client_tls_policy(const struct smtp_client *c)
{
	return c->tls_policy != NULL ? c->tls_policy : "";
}

enum tls_mode
smtp_client_tls_mode(const struct smtp_client *c)
{
	return c->tls_mode;
}
