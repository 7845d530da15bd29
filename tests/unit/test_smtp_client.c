/*
 * test_smtp_client.c: the SMTP client state machine against a tiny
 * scripted SMTP server in the same loop (a conn on an accepted socket on
 * 127.0.0.1). The server answers each verb from a table of canned replies
 * (recipients named temp...@ get 451, bad...@ get 550), can stay silent on
 * one verb to provoke a timeout, records every command line it received
 * and which commands arrived in the same read (to see PIPELINING), and
 * keeps the raw DATA bytes so dot-stuffing is checked on the wire. The
 * checks are exact command sequences, per-recipient replies, the phase of
 * each of the timeouts, STARTTLS with EHLO again, and AUTH PLAIN rules.
 * Every loop run is bounded by a guard timer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <uv.h>

#include "buf.h"
#include "conn.h"
#include "kumo.h"
#include "log.h"
#include "smtp_client.h"
#include "smtp_proto.h"
#include "tls.h"
#include "unit.h"
#include "unit_loop.h"

#define CN "mx.example.test"

static char tmpdir[64];
static char cert_path[128];
static char key_path[128];
static struct tls_ctx *server_ctx;
static struct tls_ctx *client_ctx;

/* ---- the scripted server ---- */

#define EHLO_PLAIN "250-" CN "\r\n250-SIZE 10000000\r\n250 8BITMIME"
#define EHLO_PIPE "250-" CN "\r\n250-PIPELINING\r\n250-SIZE 10000000\r\n250 8BITMIME"
#define EHLO_TLS "250-" CN "\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 SIZE 10000000"
#define EHLO_AFTER_TLS "250-" CN "\r\n250-PIPELINING\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 10000000"

struct srv_cfg {
	const char *banner;
	const char *ehlo;
	const char *ehlo_tls; /* EHLO after the handshake */
	const char *helo;
	const char *starttls;
	const char *auth;
	const char *mail;
	const char *data;
	const char *dot;
	const char *rset;
	const char *silent; /* "BANNER", "EHLO", "STARTTLS", "MAIL", "RCPT", "DATA", "DOT", "RSET": no reply */
	int close_after_first_dot; /* hang up once the first message is in */
};

struct srv {
	struct srv_cfg cfg;
	uv_poll_t lpoll;
	int lfd;
	int port;
	struct conn *c;
	int conn_open;
	int tls_done;
	int in_data;
	int accepted_rcpts;
	int dots;
	int deaf; /* ignore everything from now on */
	struct buf transcript; /* command lines, '\n' after each */
	struct buf reads;      /* "|MAIL RCPT DATA|BODY|..." : verbs per read */
	struct buf body;       /* raw DATA bytes of every message, final dots included */
	size_t body_start;
};

static const char *
or_default(const char *v, const char *def)
{
	return v != NULL ? v : def;
}

static void
srv_reply(struct srv *s, const char *text)
{
	conn_write(s->c, text, strlen(text));
	conn_write(s->c, "\r\n", 2);
}

static int
srv_silent(struct srv *s, const char *verb)
{
	return s->cfg.silent != NULL && strcmp(s->cfg.silent, verb) == 0;
}

/* The verb of a command line, upper-cased, for the reads log. */
static void
verb_of(const char *line, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; i + 1 < outlen && line[i] != '\0' && line[i] != ' ' && line[i] != ':'; i++)
		out[i] = (char)(line[i] >= 'a' && line[i] <= 'z' ? line[i] - 32 : line[i]);
	out[i] = '\0';
}

static void srv_tls_cb(struct conn *c, int status, void *arg);

/* Answer one command line. 1 if the read loop must stop (TLS started, closed). */
static int
srv_command(struct srv *s, const char *line)
{
	char verb[16];

	verb_of(line, verb, sizeof(verb));
	buf_puts(&s->transcript, line);
	buf_putc(&s->transcript, '\n');
	if (s->reads.len > 0 && s->reads.data[s->reads.len - 1] != '|')
		buf_putc(&s->reads, ' ');
	buf_puts(&s->reads, verb);
	if (srv_silent(s, verb))
		return 0;
	if (strcmp(verb, "EHLO") == 0) {
		srv_reply(s, s->tls_done ? or_default(s->cfg.ehlo_tls, EHLO_AFTER_TLS) : or_default(s->cfg.ehlo, EHLO_PLAIN));
	} else if (strcmp(verb, "HELO") == 0) {
		srv_reply(s, or_default(s->cfg.helo, "250 " CN));
	} else if (strcmp(verb, "STARTTLS") == 0) {
		const char *r = or_default(s->cfg.starttls, "220 2.0.0 Ready to start TLS");

		srv_reply(s, r);
		if (srv_silent(s, "HANDSHAKE")) {
			s->deaf = 1;
			return 1;
		}
		if (strncmp(r, "220", 3) == 0 && strchr(r, '\n') == NULL) {
			int rc = conn_starttls(s->c, server_ctx, NULL, srv_tls_cb);

			CU_ASSERT_EQUAL(rc, 0);
			return 1;
		}
	} else if (strcmp(verb, "AUTH") == 0) {
		srv_reply(s, or_default(s->cfg.auth, "235 2.7.0 Authentication successful"));
	} else if (strcmp(verb, "MAIL") == 0) {
		s->accepted_rcpts = 0;
		srv_reply(s, or_default(s->cfg.mail, "250 2.1.0 Sender ok"));
	} else if (strcmp(verb, "RCPT") == 0) {
		if (strstr(line, "<temp") != NULL) {
			srv_reply(s, "451 4.2.0 Try again later");
		} else if (strstr(line, "<bad") != NULL) {
			srv_reply(s, "550 5.1.1 No such user");
		} else {
			s->accepted_rcpts++;
			srv_reply(s, "250 2.1.5 Recipient ok");
		}
	} else if (strcmp(verb, "DATA") == 0) {
		if (s->accepted_rcpts == 0) {
			srv_reply(s, "554 5.5.1 No valid recipients");
		} else {
			const char *r = or_default(s->cfg.data, "354 End data with <CR><LF>.<CR><LF>");

			srv_reply(s, r);
			if (r[0] == '3') {
				s->in_data = 1;
				s->body_start = s->body.len;
			}
		}
	} else if (strcmp(verb, "RSET") == 0) {
		srv_reply(s, or_default(s->cfg.rset, "250 2.0.0 Ok"));
	} else if (strcmp(verb, "QUIT") == 0) {
		srv_reply(s, "221 2.0.0 Bye");
		conn_close(s->c);
		return 1;
	} else {
		srv_reply(s, "500 5.5.2 Unknown command");
	}
	return 0;
}

/* Take DATA bytes until CRLF.CRLF (or "." on the first line); 1 when the end was seen. */
static int
srv_body(struct srv *s, struct buf *in)
{
	size_t i;

	for (i = 0; i < in->len; i++) {
		size_t n;

		buf_putc(&s->body, in->data[i]);
		n = s->body.len - s->body_start;
		if ((n == 3 && memcmp(s->body.data + s->body_start, ".\r\n", 3) == 0) ||
		    (n >= 5 && memcmp(s->body.data + s->body.len - 5, "\r\n.\r\n", 5) == 0)) {
			buf_drain(in, i + 1);
			return 1;
		}
	}
	buf_drain(in, in->len);
	return 0;
}

static void
srv_read(struct conn *c, struct buf *in, void *arg)
{
	struct srv *s = arg;
	char *nl;

	(void)c;
	if (s->deaf) {
		buf_drain(in, in->len);
		return;
	}
	buf_putc(&s->reads, '|');
	while (in->len > 0) {
		if (s->in_data) {
			if (s->reads.data[s->reads.len - 1] == '|')
				buf_puts(&s->reads, "BODY");
			if (!srv_body(s, in))
				return;
			s->in_data = 0;
			s->dots++;
			if (s->cfg.close_after_first_dot) {
				conn_close(s->c);
				return;
			}
			if (!srv_silent(s, "DOT"))
				srv_reply(s, or_default(s->cfg.dot, "250 2.0.0 Ok: queued as 12345"));
			continue;
		}
		nl = memchr(in->data, '\n', in->len);
		if (nl == NULL)
			return;
		{
			size_t len = (size_t)(nl - in->data);
			char line[1024];

			if (len > 0 && in->data[len - 1] == '\r')
				len--;
			if (len >= sizeof(line))
				len = sizeof(line) - 1;
			memcpy(line, in->data, len);
			line[len] = '\0';
			buf_drain(in, (size_t)(nl - in->data) + 1);
			if (srv_command(s, line))
				return;
		}
	}
}

static void
srv_tls_cb(struct conn *c, int status, void *arg)
{
	struct srv *s = arg;

	(void)c;
	if (status == 0)
		s->tls_done = 1;
}

static void
srv_error(struct conn *c, int err, void *arg)
{
	(void)err;
	(void)arg;
	conn_close(c);
}

static void
srv_close(struct conn *c, void *arg)
{
	struct srv *s = arg;

	(void)c;
	s->c = NULL;
	s->conn_open = 0;
}

static void
srv_accept_cb(uv_poll_t *h, int status, int events)
{
	static const struct conn_cbs cbs = {.on_read = srv_read, .on_error = srv_error, .on_close = srv_close};
	struct srv *s = h->data;
	int fd;

	(void)events;
	if (status < 0)
		return;
	fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (s->conn_open) {
		close(fd);
		return;
	}
	s->c = conn_new(&unit_loop, &cbs, s);
	s->conn_open = 1;
	conn_accept(s->c, fd);
	if (!srv_silent(s, "BANNER"))
		srv_reply(s, or_default(s->cfg.banner, "220 " CN " ESMTP test"));
}

static void
srv_start(struct srv *s, const struct srv_cfg *cfg)
{
	struct sockaddr_in sin = unit_addr4("127.0.0.1", 0);
	socklen_t len = sizeof(sin);

	memset(s, 0, sizeof(*s));
	if (cfg != NULL)
		s->cfg = *cfg;
	buf_init(&s->transcript, 0);
	buf_init(&s->reads, 0);
	buf_init(&s->body, 0);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	CU_ASSERT_EQUAL_FATAL(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	CU_ASSERT_EQUAL_FATAL(listen(s->lfd, 8), 0);
	getsockname(s->lfd, (struct sockaddr *)&sin, &len);
	s->port = ntohs(sin.sin_port);
	uv_poll_init_socket(&unit_loop, &s->lpoll, s->lfd);
	s->lpoll.data = s;
	uv_poll_start(&s->lpoll, UV_READABLE, srv_accept_cb);
}

static void
srv_lclosed(uv_handle_t *h)
{
	struct srv *s = h->data;

	close(s->lfd);
}

static void
srv_stop(struct srv *s)
{
	if (s->c != NULL)
		conn_close(s->c);
	uv_close((uv_handle_t *)&s->lpoll, srv_lclosed);
}

static void
srv_free(struct srv *s)
{
	buf_release(&s->transcript);
	buf_release(&s->reads);
	buf_release(&s->body);
}

/* ---- the client under test ---- */

#define MAXTXN 4
#define MAXRCPT 8

struct txn_rec {
	int done;
	int mail, data, final;
	int rcpt[MAXRCPT];
	int outcome[MAXRCPT]; /* smtp_txn_rcpt_reply() codes */
	char outcome_enh[MAXRCPT][16];
	size_t naccepted;
	int delivered;
};

struct run {
	struct smtp_client *c;
	struct smtp_txn txns[MAXTXN];
	int ntxn;
	int next;
	int ready;
	int errored;
	int closed;
	struct smtp_client_error err;
	char err_text[512];
	int err_reply_code;
	int err_txn; /* index of e->txn, -1 if NULL */
	struct txn_rec rec[MAXTXN];
	/* facts captured before the close */
	struct tls_info tls;
	int is_tls;
	int authenticated;
	unsigned caps_flags;
	unsigned delivered, transactions;
	char banner[128];
	int send_ret;
	int send_failed;
	enum smtp_client_state state_at_ready;
	char dane[32]; /* the DANE verdict, "" without DANE */
};

static void
capture_facts(struct run *r, struct smtp_client *c)
{
	r->is_tls = smtp_client_is_tls(c);
	smtp_client_tls_info(c, &r->tls);
	r->authenticated = smtp_client_authenticated(c);
	r->caps_flags = smtp_client_caps(c)->flags;
	r->delivered = smtp_client_delivered(c);
	r->transactions = smtp_client_transactions(c);
	snprintf(r->banner, sizeof(r->banner), "%s", smtp_client_banner(c));
	snprintf(r->dane, sizeof(r->dane), "%s",
		 smtp_client_dane_result(c) ? dane_verdict_str(smtp_client_dane_result(c)->verdict) : "");
}

static void
send_next(struct run *r, struct smtp_client *c)
{
	while (r->next < r->ntxn) {
		r->send_ret = smtp_client_send(c, &r->txns[r->next]);
		r->next++;
		if (r->send_ret == 0) {
			/* Not idle any more: a second send must be refused. */
			UNIT_EXPECT_INT("send while busy", smtp_client_send(c, &r->txns[0]), KUMO_EINVAL);
			return;
		}
		r->send_failed++;
	}
	capture_facts(r, c);
	smtp_client_quit(c);
}

static void
run_ready(struct smtp_client *c, void *arg)
{
	struct run *r = arg;

	r->ready = 1;
	r->state_at_ready = smtp_client_state(c);
	send_next(r, c);
}

static void
run_txn_done(struct smtp_client *c, const struct smtp_txn *txn, const struct smtp_txn_result *res, void *arg)
{
	struct run *r = arg;
	struct txn_rec *rec = &r->rec[txn - r->txns];
	size_t i;

	rec->done = 1;
	rec->mail = res->mail->code;
	rec->data = res->data->code;
	rec->final = res->final->code;
	rec->naccepted = res->naccepted;
	rec->delivered = res->delivered;
	for (i = 0; i < txn->nrecipients && i < MAXRCPT; i++) {
		const struct smtp_reply *o = smtp_txn_rcpt_reply(res, i);

		rec->rcpt[i] = res->rcpt[i].code;
		rec->outcome[i] = o->code;
		snprintf(rec->outcome_enh[i], sizeof(rec->outcome_enh[i]), "%s", o->enhanced);
	}
	send_next(r, c);
}

static void
run_error(struct smtp_client *c, const struct smtp_client_error *e, void *arg)
{
	struct run *r = arg;

	r->errored++;
	r->err = *e;
	snprintf(r->err_text, sizeof(r->err_text), "%s", e->text);
	r->err_reply_code = e->reply ? e->reply->code : 0;
	r->err_txn = e->txn ? (int)(e->txn - r->txns) : -1;
	capture_facts(r, c);
	smtp_client_close(c);
}

static void
run_closed(struct smtp_client *c, void *arg)
{
	struct run *r = arg;

	(void)c;
	r->closed = 1;
}

static const struct smtp_client_cbs run_cbs = {
	.ready = run_ready,
	.txn_done = run_txn_done,
	.error = run_error,
	.closed = run_closed,
};

static const char *const rcpt1[] = {"rcpt@example.test"};
static const char *const rcpt3[] = {"one@example.test", "two@example.test", "three@example.test"};
static const char *const rcpt_mixed[] = {"ok@example.test", "temp@example.test", "bad@example.test"};
static const char *const rcpt_allbad[] = {"bad1@example.test", "temp2@example.test"};
static const char msg[] = "Subject: test\r\n\r\nhello\r\n";

static void
txn_set(struct smtp_txn *t, const char *const *rcpts, size_t n, const char *data)
{
	t->sender = "sender@example.org";
	t->recipients = rcpts;
	t->nrecipients = n;
	t->data = data;
	t->len = strlen(data);
}

/* Client parameters for tests: short timeouts so a silent server is quick. */
static void
test_params(struct smtp_client_params *p)
{
	size_t i;

	smtp_client_params_init(p);
	p->ehlo_domain = "client.example.org";
	for (i = 0; i < SMTP_TIMEOUT_COUNT; i++)
		p->timeout_ms[i] = 2000;
}

/* Run one session against s; the client connects to s's port. */
static void
run_session(struct run *r, struct srv *s, const struct smtp_client_params *p, const char *peer_name)
{
	struct sockaddr_in sin = unit_addr4("127.0.0.1", s->port);
	int rc;

	r->err_txn = -2;
	r->c = smtp_client_new(&unit_loop, p, &run_cbs, r);
	rc = smtp_client_connect(r->c, (struct sockaddr *)&sin, peer_name);
	UNIT_EXPECT_INT("connect", rc, 0);
	UNIT_EXPECT_INT("connect twice", smtp_client_connect(r->c, (struct sockaddr *)&sin, peer_name), KUMO_EINVAL);
	if (rc != 0) {
		smtp_client_close(r->c);
	}
	CU_ASSERT_TRUE(unit_run_until(&r->closed));
	if (!r->closed)
		smtp_client_close(r->c);
}

/* Start, run, stop: the usual shape of a test. */
static void
session(struct run *r, struct srv *s, const struct srv_cfg *cfg, const struct smtp_client_params *p,
	const char *peer_name)
{
	unit_loop_begin();
	srv_start(s, cfg);
	run_session(r, s, p, peer_name);
	srv_stop(s);
	unit_loop_end();
	UNIT_EXPECT_INT("closed", r->closed, 1);
}

#define EXPECT_TRANSCRIPT(s, want)                                                                 \
	UNIT_EXPECT_STR("transcript", (s)->transcript.data ? (s)->transcript.data : "", (want))

static void
test_plain_no_pipelining(void)
{
	struct smtp_client_params p;
	struct srv s;
	struct run r;

	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	txn_set(&r.txns[1], rcpt3, 2, msg);
	r.ntxn = 2;
	test_params(&p);
	session(&r, &s, NULL, &p, CN);
	EXPECT_TRANSCRIPT(&s, "EHLO client.example.org\n"
			      "MAIL FROM:<sender@example.org> SIZE=24\n"
			      "RCPT TO:<rcpt@example.test>\n"
			      "DATA\n"
			      "RSET\n"
			      "MAIL FROM:<sender@example.org> SIZE=24\n"
			      "RCPT TO:<one@example.test>\n"
			      "RCPT TO:<two@example.test>\n"
			      "DATA\n"
			      "QUIT\n");
	/* Without PIPELINING every command waits for the previous reply. */
	UNIT_EXPECT_STR("reads", s.reads.data,
			"|EHLO|MAIL|RCPT|DATA|BODY|RSET|MAIL|RCPT|RCPT|DATA|BODY|QUIT");
	UNIT_EXPECT_INT("errors", r.errored, 0);
	UNIT_EXPECT_INT("txn 0 final", r.rec[0].final, 250);
	UNIT_EXPECT_INT("txn 0 delivered", r.rec[0].delivered, 1);
	UNIT_EXPECT_INT("txn 1 accepted", r.rec[1].naccepted, 2);
	UNIT_EXPECT_INT("txn 1 delivered", r.rec[1].delivered, 1);
	UNIT_EXPECT_INT("delivered on this connection", r.delivered, 2);
	UNIT_EXPECT_INT("transactions", r.transactions, 2);
	UNIT_EXPECT_INT("state at ready", r.state_at_ready, SMTP_CLIENT_READY);
	UNIT_EXPECT_INT("not TLS (not advertised, Opportunistic)", r.is_tls, 0);
	UNIT_EXPECT_STR("banner", r.banner, CN " ESMTP test");
	CU_ASSERT_TRUE((r.caps_flags & SMTP_CAP_SIZE) != 0);
	CU_ASSERT_TRUE((r.caps_flags & SMTP_CAP_PIPELINING) == 0);
	UNIT_EXPECT_INT("bodies", s.dots, 2);
	srv_free(&s);
}

static void
test_pipelining(void)
{
	struct smtp_client_params p;
	struct srv_cfg cfg = {.ehlo = EHLO_PIPE};
	struct srv s;
	struct run r;

	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt3, 3, msg);
	txn_set(&r.txns[1], rcpt3, 3, msg);
	txn_set(&r.txns[2], rcpt1, 1, msg);
	r.ntxn = 3;
	test_params(&p);
	session(&r, &s, &cfg, &p, CN);
	EXPECT_TRANSCRIPT(&s, "EHLO client.example.org\n"
			      "MAIL FROM:<sender@example.org> SIZE=24\n"
			      "RCPT TO:<one@example.test>\n"
			      "RCPT TO:<two@example.test>\n"
			      "RCPT TO:<three@example.test>\n"
			      "DATA\n"
			      "RSET\n"
			      "MAIL FROM:<sender@example.org> SIZE=24\n"
			      "RCPT TO:<one@example.test>\n"
			      "RCPT TO:<two@example.test>\n"
			      "RCPT TO:<three@example.test>\n"
			      "DATA\n"
			      "RSET\n"
			      "MAIL FROM:<sender@example.org> SIZE=24\n"
			      "RCPT TO:<rcpt@example.test>\n"
			      "DATA\n"
			      "QUIT\n");
	/* The whole transaction arrived in one read each time. */
	UNIT_EXPECT_STR("reads", s.reads.data,
			"|EHLO|MAIL RCPT RCPT RCPT DATA|BODY|RSET MAIL RCPT RCPT RCPT DATA|BODY"
			"|RSET MAIL RCPT DATA|BODY|QUIT");
	UNIT_EXPECT_INT("errors", r.errored, 0);
	UNIT_EXPECT_INT("delivered", r.delivered, 3);
	UNIT_EXPECT_INT("txn 1 accepted", r.rec[1].naccepted, 3);
	UNIT_EXPECT_INT("txn 2 final", r.rec[2].final, 250);
	srv_free(&s);
}

/* Mixed recipients, with and without pipelining: the replies map to the right recipients. */
static void
check_mixed(int pipelining)
{
	struct smtp_client_params p;
	struct srv_cfg cfg = {.ehlo = pipelining ? EHLO_PIPE : EHLO_PLAIN};
	struct srv s;
	struct run r;

	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt_mixed, 3, msg);
	txn_set(&r.txns[1], rcpt_allbad, 2, msg);
	txn_set(&r.txns[2], rcpt1, 1, msg);
	r.ntxn = 3;
	test_params(&p);
	session(&r, &s, &cfg, &p, CN);
	UNIT_EXPECT_INT("errors", r.errored, 0);
	UNIT_EXPECT_INT("rcpt 0", r.rec[0].rcpt[0], 250);
	UNIT_EXPECT_INT("rcpt 1", r.rec[0].rcpt[1], 451);
	UNIT_EXPECT_INT("rcpt 2", r.rec[0].rcpt[2], 550);
	UNIT_EXPECT_INT("accepted", r.rec[0].naccepted, 1);
	UNIT_EXPECT_INT("final", r.rec[0].final, 250);
	UNIT_EXPECT_INT("outcome 0", r.rec[0].outcome[0], 250);
	UNIT_EXPECT_INT("outcome 1", r.rec[0].outcome[1], 451);
	UNIT_EXPECT_INT("outcome 2", r.rec[0].outcome[2], 550);
	UNIT_EXPECT_STR("enhanced 1", r.rec[0].outcome_enh[1], "4.2.0");
	UNIT_EXPECT_STR("enhanced 2", r.rec[0].outcome_enh[2], "5.1.1");
	UNIT_EXPECT_INT("delivered 0", r.rec[0].delivered, 1);
	/* Nobody accepted: no DATA without pipelining; a refused DATA with it. */
	UNIT_EXPECT_INT("all bad: accepted", r.rec[1].naccepted, 0);
	UNIT_EXPECT_INT("all bad: delivered", r.rec[1].delivered, 0);
	UNIT_EXPECT_INT("all bad: data", r.rec[1].data, pipelining ? 554 : 0);
	UNIT_EXPECT_INT("all bad: final", r.rec[1].final, 0);
	UNIT_EXPECT_INT("all bad: outcome 0", r.rec[1].outcome[0], 550);
	UNIT_EXPECT_INT("all bad: outcome 1", r.rec[1].outcome[1], 451);
	UNIT_EXPECT_INT("third delivered after RSET", r.rec[2].delivered, 1);
	UNIT_EXPECT_INT("delivered", r.delivered, 2);
	UNIT_EXPECT_INT("bodies", s.dots, 2);
	{
		const char *want = pipelining ? "|RSET MAIL RCPT RCPT DATA|RSET MAIL RCPT DATA|BODY"
					      : "|RSET|MAIL|RCPT|RCPT|RSET|MAIL|RCPT|DATA|BODY";

		if (strstr(s.reads.data, want) == NULL)
			fprintf(stderr, "  reads %s lack %s\n", s.reads.data, want);
		CU_ASSERT_TRUE(strstr(s.reads.data, want) != NULL);
	}
	srv_free(&s);
}

static void
test_rcpt_replies(void)
{
	check_mixed(0);
	check_mixed(1);
}

static void
test_mail_refused(void)
{
	struct smtp_client_params p;
	struct srv_cfg cfg = {.mail = "550 5.7.1 Sender rejected"};
	struct srv s;
	struct run r;

	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt3, 2, msg);
	r.ntxn = 1;
	test_params(&p);
	session(&r, &s, &cfg, &p, CN);
	EXPECT_TRANSCRIPT(&s, "EHLO client.example.org\nMAIL FROM:<sender@example.org> SIZE=24\nQUIT\n");
	UNIT_EXPECT_INT("mail", r.rec[0].mail, 550);
	UNIT_EXPECT_INT("rcpt not reached", r.rec[0].rcpt[0], 0);
	UNIT_EXPECT_INT("outcome 0", r.rec[0].outcome[0], 550);
	UNIT_EXPECT_INT("outcome 1", r.rec[0].outcome[1], 550);
	UNIT_EXPECT_STR("enhanced", r.rec[0].outcome_enh[1], "5.7.1");
	UNIT_EXPECT_INT("delivered", r.rec[0].delivered, 0);
	srv_free(&s);

	/* 4xx on the final dot: not delivered, the outcome is the 451. */
	memset(&r, 0, sizeof(r));
	cfg.mail = NULL;
	cfg.dot = "451 4.3.0 Queue full";
	txn_set(&r.txns[0], rcpt3, 2, msg);
	r.ntxn = 1;
	session(&r, &s, &cfg, &p, CN);
	UNIT_EXPECT_INT("final", r.rec[0].final, 451);
	UNIT_EXPECT_INT("outcome", r.rec[0].outcome[1], 451);
	UNIT_EXPECT_INT("delivered", r.rec[0].delivered, 0);
	UNIT_EXPECT_INT("delivered count", r.delivered, 0);
	srv_free(&s);
}

static void
test_dot_stuffing(void)
{
	static const struct {
		const char *in, *wire;
	} rows[] = {
		{"Subject: x\r\n\r\n.leading dot\r\n..two\r\nend", "Subject: x\r\n\r\n..leading dot\r\n...two\r\nend\r\n.\r\n"},
		{".first\r\n.\r\nlast\r\n", "..first\r\n..\r\nlast\r\n.\r\n"},
		{"", ".\r\n"},
		{"no dots here\r\n", "no dots here\r\n.\r\n"},
		{"a\r\n.\r\n", "a\r\n..\r\n.\r\n"},
	};
	struct smtp_client_params p;
	size_t i;

	test_params(&p);
	for (i = 0; i < KUMO_NELEM(rows); i++) {
		struct srv s;
		struct run r;

		memset(&r, 0, sizeof(r));
		txn_set(&r.txns[0], rcpt1, 1, rows[i].in);
		r.ntxn = 1;
		session(&r, &s, NULL, &p, CN);
		UNIT_EXPECT_STR("wire", s.body.data ? s.body.data : "", rows[i].wire);
		UNIT_EXPECT_INT("delivered", r.rec[0].delivered, 1);
		srv_free(&s);
	}
}

static void
test_mail_params(void)
{
	static const char eight[] = "Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\r\n";
	struct smtp_client_params p;
	struct srv s;
	struct run r;

	/* 8-bit content and 8BITMIME offered: BODY=8BITMIME, and SIZE. */
	test_params(&p);
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, eight);
	r.ntxn = 1;
	session(&r, &s, NULL, &p, CN);
	EXPECT_TRANSCRIPT(&s, "EHLO client.example.org\nMAIL FROM:<sender@example.org> SIZE=26 BODY=8BITMIME\n"
			      "RCPT TO:<rcpt@example.test>\nDATA\nQUIT\n");
	srv_free(&s);

	/*
	 * Long bodies (the scan goes a word at a time): one 8-bit octet at each
	 * position of a 100-byte message, in the middle of a word or in the
	 * tail, gives BODY=8BITMIME; the 7-bit body does not.
	 */
	{
		char body[101], want[160];
		size_t pos;

		for (pos = 0; pos <= 100; pos += 7) {
			memset(body, 'a', 100);
			memcpy(body + 96, "\r\n\r\n", 4);
			memcpy(body, "S: x\r\n\r\n", 8);
			body[100] = '\0';
			if (pos < 90 && pos >= 8)
				body[pos] = (char)0xe9;
			memset(&r, 0, sizeof(r));
			txn_set(&r.txns[0], rcpt1, 1, body);
			r.ntxn = 1;
			session(&r, &s, NULL, &p, CN);
			snprintf(want, sizeof(want), "MAIL FROM:<sender@example.org> SIZE=100%s\n",
			         pos < 90 && pos >= 8 ? " BODY=8BITMIME" : "");
			if (s.transcript.data == NULL || strstr(s.transcript.data, want) == NULL)
				fprintf(stderr, "  8-bit octet at %zu: want \"%s\" in \"%s\"\n", pos, want,
				        s.transcript.data ? s.transcript.data : "");
			CU_ASSERT_TRUE(s.transcript.data != NULL && strstr(s.transcript.data, want) != NULL);
			srv_free(&s);
		}
	}

	/* The null sender. */
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.txns[0].sender = "";
	r.ntxn = 1;
	session(&r, &s, NULL, &p, CN);
	CU_ASSERT_TRUE(strstr(s.transcript.data, "MAIL FROM:<> SIZE=24\n") != NULL);
	UNIT_EXPECT_INT("delivered", r.delivered, 1);
	srv_free(&s);
}

static void
test_timeouts(void)
{
	static const struct {
		const char *silent;
		enum smtp_phase phase;
		int ntxn;
		int err_txn;
		int dot_sent;
	} rows[] = {
		{"BANNER", SMTP_PHASE_BANNER, 1, -1, 0},
		{"EHLO", SMTP_PHASE_EHLO, 1, -1, 0},
		{"STARTTLS", SMTP_PHASE_STARTTLS, 1, -1, 0},
		{"HANDSHAKE", SMTP_PHASE_STARTTLS, 1, -1, 0}, /* 220, then no TLS server */
		{"MAIL", SMTP_PHASE_MAIL_FROM, 1, 0, 0},
		{"RCPT", SMTP_PHASE_RCPT_TO, 1, 0, 0},
		{"DATA", SMTP_PHASE_DATA, 1, 0, 0},
		{"DOT", SMTP_PHASE_DATA_DOT, 1, 0, 1},
		{"RSET", SMTP_PHASE_RSET, 2, 1, 0},
	};
	size_t i, j;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		struct smtp_client_params p;
		struct srv_cfg cfg = {.silent = rows[i].silent};
		struct srv s;
		struct run r;
		uint64_t t0;
		char want[64];

		test_params(&p);
		/* Only the phase under test is short, so it is the one that must fire. */
		for (j = 0; j < SMTP_TIMEOUT_COUNT; j++)
			p.timeout_ms[j] = j == (size_t)rows[i].phase ? 150 : 3000;
		p.tls_mode = TLS_OPPORTUNISTIC_INSECURE;
		p.tls_ctx = client_ctx;
		if (rows[i].phase == SMTP_PHASE_STARTTLS)
			cfg.ehlo = EHLO_TLS;
		memset(&r, 0, sizeof(r));
		txn_set(&r.txns[0], rcpt1, 1, msg);
		txn_set(&r.txns[1], rcpt1, 1, msg);
		r.ntxn = rows[i].ntxn;
		unit_loop_begin();
		t0 = uv_now(&unit_loop);
		srv_start(&s, &cfg);
		run_session(&r, &s, &p, CN);
		srv_stop(&s);
		UNIT_EXPECT_INT(rows[i].silent, r.errored, 1);
		UNIT_EXPECT_INT(rows[i].silent, r.err.err, KUMO_ETIMEDOUT);
		UNIT_EXPECT_INT(rows[i].silent, r.err.phase, rows[i].phase);
		UNIT_EXPECT_INT(rows[i].silent, r.err_txn, rows[i].err_txn);
		UNIT_EXPECT_INT(rows[i].silent, r.err.dot_sent, rows[i].dot_sent);
		snprintf(want, sizeof(want), "%s_timeout", smtp_phase_str(rows[i].phase));
		if (strstr(r.err_text, want) == NULL)
			fprintf(stderr, "  %s: text \"%s\" lacks \"%s\"\n", rows[i].silent, r.err_text, want);
		CU_ASSERT_TRUE(strstr(r.err_text, want) != NULL);
		CU_ASSERT_TRUE(uv_now(&unit_loop) - t0 < 2500);
		unit_loop_end();
		srv_free(&s);
	}
}

static void
test_connect_failures(void)
{
	struct sockaddr_in sin = unit_addr4("127.0.0.1", 0);
	socklen_t len = sizeof(sin);
	struct smtp_client_params p;
	int lfd, dummy;
	struct run r;

	/* Refused. */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	bind(lfd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(lfd, (struct sockaddr *)&sin, &len);
	close(lfd);
	test_params(&p);
	memset(&r, 0, sizeof(r));
	unit_loop_begin();
	r.c = smtp_client_new(&unit_loop, &p, &run_cbs, &r);
	UNIT_EXPECT_INT("connect", smtp_client_connect(r.c, (struct sockaddr *)&sin, CN), 0);
	CU_ASSERT_TRUE(unit_run_until(&r.closed));
	unit_loop_end();
	UNIT_EXPECT_INT("refused", r.err.err, UV_ECONNREFUSED);
	UNIT_EXPECT_INT("phase", r.err.phase, SMTP_PHASE_CONNECT);
	CU_ASSERT_TRUE(strstr(r.err_text, "refused") != NULL);

	/* Timeout: a listener with a full accept queue drops our SYN. */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	sin = unit_addr4("127.0.0.1", 0);
	bind(lfd, (struct sockaddr *)&sin, sizeof(sin));
	listen(lfd, 0);
	len = sizeof(sin);
	getsockname(lfd, (struct sockaddr *)&sin, &len);
	dummy = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_EQUAL(connect(dummy, (struct sockaddr *)&sin, sizeof(sin)), 0);
	p.timeout_ms[SMTP_PHASE_CONNECT] = 200;
	memset(&r, 0, sizeof(r));
	unit_loop_begin();
	r.c = smtp_client_new(&unit_loop, &p, &run_cbs, &r);
	UNIT_EXPECT_INT("connect", smtp_client_connect(r.c, (struct sockaddr *)&sin, CN), 0);
	CU_ASSERT_TRUE(unit_run_until(&r.closed));
	unit_loop_end();
	UNIT_EXPECT_INT("timeout", r.err.err, KUMO_ETIMEDOUT);
	UNIT_EXPECT_INT("phase", r.err.phase, SMTP_PHASE_CONNECT);
	close(dummy);
	close(lfd);

	/* A source address that cannot be bound: refused at once, no callback. */
	{
		struct sockaddr_in src = unit_addr4("127.0.0.1", 0);
		struct sockaddr_in peer;
		int busy = socket(AF_INET, SOCK_STREAM, 0);

		bind(busy, (struct sockaddr *)&src, sizeof(src));
		listen(busy, 1);
		len = sizeof(src);
		getsockname(busy, (struct sockaddr *)&src, &len);
		peer = src;
		p.source_address = (struct sockaddr *)&src;
		memset(&r, 0, sizeof(r));
		unit_loop_begin();
		r.c = smtp_client_new(&unit_loop, &p, &run_cbs, &r);
		UNIT_EXPECT_INT("bind", smtp_client_connect(r.c, (struct sockaddr *)&peer, CN), UV_EADDRINUSE);
		smtp_client_close(r.c);
		CU_ASSERT_TRUE(unit_run_until(&r.closed));
		unit_loop_end();
		UNIT_EXPECT_INT("no error callback", r.errored, 0);
		close(busy);
	}
}

static void
test_source_address(void)
{
	struct sockaddr_in src = unit_addr4("127.0.0.2", 0);
	struct smtp_client_params p;
	struct srv s;
	struct run r;

	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	test_params(&p);
	p.source_address = (struct sockaddr *)&src;
	unit_loop_begin();
	srv_start(&s, NULL);
	run_session(&r, &s, &p, CN);
	srv_stop(&s);
	unit_loop_end();
	UNIT_EXPECT_INT("delivered", r.delivered, 1);
	srv_free(&s);
}

static void
test_banner_and_helo(void)
{
	struct smtp_client_params p;
	struct srv_cfg cfg = {.banner = "554 5.3.2 Go away"};
	struct srv s;
	struct run r;

	test_params(&p);
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	session(&r, &s, &cfg, &p, CN);
	UNIT_EXPECT_INT("banner error", r.errored, 1);
	UNIT_EXPECT_INT("phase", r.err.phase, SMTP_PHASE_BANNER);
	UNIT_EXPECT_INT("reply", r.err_reply_code, 554);
	UNIT_EXPECT_INT("err", r.err.err, KUMO_EPROTO);
	UNIT_EXPECT_INT("ready never called", r.ready, 0);
	EXPECT_TRANSCRIPT(&s, "");
	srv_free(&s);

	/* EHLO refused with 5xx: HELO, then plain SMTP without SIZE. */
	memset(&r, 0, sizeof(r));
	memset(&cfg, 0, sizeof(cfg));
	cfg.ehlo = "502 5.5.1 EHLO not implemented";
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	session(&r, &s, &cfg, &p, CN);
	EXPECT_TRANSCRIPT(&s, "EHLO client.example.org\nHELO client.example.org\n"
			      "MAIL FROM:<sender@example.org>\nRCPT TO:<rcpt@example.test>\nDATA\nQUIT\n");
	UNIT_EXPECT_INT("delivered", r.delivered, 1);
	UNIT_EXPECT_INT("no caps", r.caps_flags, 0);
	srv_free(&s);

	/* EHLO 4xx: the host fails. */
	memset(&r, 0, sizeof(r));
	cfg.ehlo = "421 4.3.2 Shutting down";
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	session(&r, &s, &cfg, &p, CN);
	UNIT_EXPECT_INT("ehlo error", r.errored, 1);
	UNIT_EXPECT_INT("phase", r.err.phase, SMTP_PHASE_EHLO);
	UNIT_EXPECT_INT("reply", r.err_reply_code, 421);
	srv_free(&s);

	/* Garbage instead of a banner. */
	memset(&r, 0, sizeof(r));
	memset(&cfg, 0, sizeof(cfg));
	cfg.banner = "hello there";
	session(&r, &s, &cfg, &p, CN);
	UNIT_EXPECT_INT("garbage", r.err.err, KUMO_EPROTO);
	UNIT_EXPECT_INT("phase", r.err.phase, SMTP_PHASE_BANNER);
	srv_free(&s);
}

static void
test_peer_closes(void)
{
	struct smtp_client_params p;
	struct srv_cfg cfg = {.close_after_first_dot = 1};
	struct srv s;
	struct run r;

	/* The server hangs up after the dot, before replying: the outcome is unknown. */
	test_params(&p);
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	session(&r, &s, &cfg, &p, CN);
	UNIT_EXPECT_INT("error", r.errored, 1);
	UNIT_EXPECT_INT("err", r.err.err, UV_EOF);
	UNIT_EXPECT_INT("phase", r.err.phase, SMTP_PHASE_DATA_DOT);
	UNIT_EXPECT_INT("txn", r.err_txn, 0);
	UNIT_EXPECT_INT("dot sent", r.err.dot_sent, 1);
	UNIT_EXPECT_INT("not delivered", r.delivered, 0);
	srv_free(&s);
}

static void
test_starttls(void)
{
	struct smtp_client_params p;
	struct srv_cfg cfg = {.ehlo = EHLO_TLS};
	struct tls_ctx_config ccfg = {NULL, NULL, NULL, NULL};
	struct tls_ctx *sys = NULL, *anchored = NULL;
	struct srv s;
	struct run r;

	CU_ASSERT_EQUAL_FATAL(tls_ctx_new_client(&ccfg, &sys, NULL), 0);
	ccfg.ca_file = cert_path;
	CU_ASSERT_EQUAL_FATAL(tls_ctx_new_client(&ccfg, &anchored, NULL), 0);

	/* OpportunisticInsecure: STARTTLS, EHLO again, caps from after TLS. */
	test_params(&p);
	p.tls_mode = TLS_OPPORTUNISTIC_INSECURE;
	p.tls_ctx = sys;
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	session(&r, &s, &cfg, &p, CN);
	EXPECT_TRANSCRIPT(&s, "EHLO client.example.org\nSTARTTLS\nEHLO client.example.org\n"
			      "MAIL FROM:<sender@example.org> SIZE=24\nRCPT TO:<rcpt@example.test>\nDATA\nQUIT\n");
	UNIT_EXPECT_INT("errors", r.errored, 0);
	UNIT_EXPECT_INT("tls", r.is_tls, 1);
	UNIT_EXPECT_STR("version", r.tls.version, "TLS1.3");
	UNIT_EXPECT_INT("not verified", r.tls.verified, 0);
	CU_ASSERT_TRUE((r.caps_flags & SMTP_CAP_STARTTLS) == 0);
	CU_ASSERT_TRUE((r.caps_flags & SMTP_CAP_AUTH) != 0);
	UNIT_EXPECT_INT("delivered", r.delivered, 1);
	srv_free(&s);

	/* Opportunistic with a self-signed certificate: the host fails, no clear-text fallback. */
	p.tls_mode = TLS_OPPORTUNISTIC;
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	session(&r, &s, &cfg, &p, CN);
	EXPECT_TRANSCRIPT(&s, "EHLO client.example.org\nSTARTTLS\n");
	UNIT_EXPECT_INT("error", r.errored, 1);
	UNIT_EXPECT_INT("err", r.err.err, KUMO_ETLS);
	UNIT_EXPECT_INT("phase", r.err.phase, SMTP_PHASE_STARTTLS);
	CU_ASSERT_TRUE(strstr(r.err_text, "certificate verification failed") != NULL);
	if (strstr(r.err_text, "certificate verification failed") == NULL)
		fprintf(stderr, "  text: %s\n", r.err_text);
	srv_free(&s);

	/* Required with the certificate as trust anchor: verified. */
	p.tls_mode = TLS_REQUIRED;
	p.tls_ctx = anchored;
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	session(&r, &s, &cfg, &p, CN);
	UNIT_EXPECT_INT("errors", r.errored, 0);
	UNIT_EXPECT_INT("verified", r.tls.verified, 1);
	UNIT_EXPECT_INT("delivered", r.delivered, 1);
	srv_free(&s);

	/* Required, but the name does not match the certificate. */
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	session(&r, &s, &cfg, &p, "other.example.test");
	UNIT_EXPECT_INT("wrong name", r.err.err, KUMO_ETLS);
	srv_free(&s);

	/* Required against a server without STARTTLS: fails after EHLO. */
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	p.tls_mode = TLS_REQUIRED_INSECURE;
	session(&r, &s, NULL, &p, CN);
	EXPECT_TRANSCRIPT(&s, "EHLO client.example.org\n");
	UNIT_EXPECT_INT("err", r.err.err, KUMO_ETLS);
	UNIT_EXPECT_INT("phase", r.err.phase, SMTP_PHASE_EHLO);
	CU_ASSERT_TRUE(strstr(r.err_text, "STARTTLS not advertised") != NULL);
	srv_free(&s);

	/* Disabled: STARTTLS advertised but never used. */
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	p.tls_mode = TLS_DISABLED;
	session(&r, &s, &cfg, &p, CN);
	CU_ASSERT_TRUE(strstr(s.transcript.data, "STARTTLS") == NULL);
	UNIT_EXPECT_INT("delivered in clear", r.delivered, 1);
	UNIT_EXPECT_INT("tls", r.is_tls, 0);
	srv_free(&s);

	/* Injection: bytes after the 220 in the same read. */
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	p.tls_mode = TLS_OPPORTUNISTIC_INSECURE;
	cfg.starttls = "220 2.0.0 Go ahead\r\n250 injected";
	session(&r, &s, &cfg, &p, CN);
	UNIT_EXPECT_INT("injection", r.err.err, KUMO_EPROTO);
	UNIT_EXPECT_INT("phase", r.err.phase, SMTP_PHASE_STARTTLS);
	CU_ASSERT_TRUE(strstr(r.err_text, "injection") != NULL);
	srv_free(&s);

	/* STARTTLS refused with 454 under Opportunistic: the host fails. */
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	cfg.starttls = "454 4.7.0 TLS not available";
	session(&r, &s, &cfg, &p, CN);
	UNIT_EXPECT_INT("454", r.err_reply_code, 454);
	UNIT_EXPECT_INT("phase", r.err.phase, SMTP_PHASE_STARTTLS);
	srv_free(&s);

	tls_ctx_unref(&sys);
	tls_ctx_unref(&anchored);
}

static void
trace_sink(enum log_level level, const char *line, void *arg)
{
	struct buf *b = arg;

	(void)level;
	buf_puts(b, line);
	buf_putc(b, '\n');
}

static void
test_auth(void)
{
	struct smtp_client_params p;
	struct srv_cfg cfg = {.ehlo = "250-" CN "\r\n250 AUTH PLAIN LOGIN"};
	struct tls_ctx *sys = NULL;
	struct srv s;
	struct run r;

	CU_ASSERT_EQUAL_FATAL(tls_ctx_new_client(NULL, &sys, NULL), 0);
	test_params(&p);
	p.auth_username = "scott";
	p.auth_password = "tiger";

	/* No TLS available: AUTH PLAIN is refused before anything is sent. */
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	session(&r, &s, &cfg, &p, CN);
	EXPECT_TRANSCRIPT(&s, "EHLO client.example.org\n");
	UNIT_EXPECT_INT("err", r.err.err, KUMO_EPROTO);
	CU_ASSERT_TRUE(strstr(r.err_text, "AUTH PLAIN refused without TLS") != NULL);
	UNIT_EXPECT_INT("ready never called", r.ready, 0);
	srv_free(&s);

	/* Allowed in clear text: the RFC 4616 message, base64; traced without the secret. */
	p.allow_auth_plain_without_tls = 1;
	p.session_id = "sess-auth";
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	{
		struct buf trace;

		buf_init(&trace, 0);
		log_set_sink(trace_sink, &trace);
		log_set_trace(LOG_TRACE_SMTP_CLIENT);
		session(&r, &s, &cfg, &p, CN);
		log_set_trace(0);
		log_set_sink(NULL, NULL);
		CU_ASSERT_TRUE(trace.data != NULL && strstr(trace.data, "sess-auth > AUTH PLAIN") != NULL);
		CU_ASSERT_TRUE(trace.data != NULL && strstr(trace.data, "sess-auth > MAIL FROM:<sender@example.org>") != NULL);
		CU_ASSERT_TRUE(trace.data != NULL && strstr(trace.data, "sess-auth < 235") != NULL);
		CU_ASSERT_TRUE(trace.data == NULL || strstr(trace.data, "AHNjb3R0AHRpZ2Vy") == NULL);
		buf_release(&trace);
	}
	p.session_id = NULL;
	EXPECT_TRANSCRIPT(&s, "EHLO client.example.org\nAUTH PLAIN AHNjb3R0AHRpZ2Vy\n"
			      "MAIL FROM:<sender@example.org>\nRCPT TO:<rcpt@example.test>\nDATA\nQUIT\n");
	UNIT_EXPECT_INT("authenticated", r.authenticated, 1);
	UNIT_EXPECT_INT("delivered", r.delivered, 1);
	srv_free(&s);

	/* Over TLS: AUTH after the second EHLO. */
	p.allow_auth_plain_without_tls = 0;
	p.tls_mode = TLS_OPPORTUNISTIC_INSECURE;
	p.tls_ctx = sys;
	cfg.ehlo = EHLO_TLS;
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	session(&r, &s, &cfg, &p, CN);
	EXPECT_TRANSCRIPT(&s, "EHLO client.example.org\nSTARTTLS\nEHLO client.example.org\n"
			      "AUTH PLAIN AHNjb3R0AHRpZ2Vy\nMAIL FROM:<sender@example.org> SIZE=24\n"
			      "RCPT TO:<rcpt@example.test>\nDATA\nQUIT\n");
	UNIT_EXPECT_INT("authenticated", r.authenticated, 1);
	UNIT_EXPECT_INT("tls", r.is_tls, 1);
	srv_free(&s);

	/* Refused credentials. */
	cfg.auth = "535 5.7.8 Authentication credentials invalid";
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	session(&r, &s, &cfg, &p, CN);
	UNIT_EXPECT_INT("reply", r.err_reply_code, 535);
	UNIT_EXPECT_INT("phase", r.err.phase, SMTP_PHASE_AUTH);
	UNIT_EXPECT_INT("authenticated", r.authenticated, 0);
	srv_free(&s);

	/* Not advertised after TLS. */
	cfg.auth = NULL;
	cfg.ehlo_tls = "250-" CN "\r\n250 PIPELINING";
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	session(&r, &s, &cfg, &p, CN);
	CU_ASSERT_TRUE(strstr(r.err_text, "AUTH PLAIN not advertised") != NULL);
	srv_free(&s);
	tls_ctx_unref(&sys);
}

/* Random EHLO replies (reply-like bytes): every session must end cleanly, never crash. */
static void
test_garbage_replies(void)
{
	static const char alphabet[] = "0123456789 -\r\n\r\n250-250 354 STARTTLS PIPELINING AUTH=PLAIN SIZE 1.2.3\x80\x00";
	struct smtp_client_params p;
	unsigned seed = 12345;
	int i, ended = 0;

	test_params(&p);
	p.timeout_ms[SMTP_PHASE_EHLO] = 60;
	p.timeout_ms[SMTP_PHASE_MAIL_FROM] = 60;
	p.tls_mode = TLS_OPPORTUNISTIC_INSECURE;
	p.tls_ctx = client_ctx;
	for (i = 0; i < 30; i++) {
		char reply[400];
		size_t n, j;
		struct srv_cfg cfg;
		struct srv s;
		struct run r;

		seed = seed * 1103515245u + 12345u;
		n = 1 + (seed >> 16) % (sizeof(reply) - 2);
		for (j = 0; j < n; j++) {
			seed = seed * 1103515245u + 12345u;
			reply[j] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
			if (reply[j] == '\0')
				reply[j] = 'x'; /* the server sends C strings */
		}
		reply[n] = '\0';
		memset(&cfg, 0, sizeof(cfg));
		cfg.ehlo = reply;
		cfg.starttls = "454 4.7.0 no TLS here";
		memset(&r, 0, sizeof(r));
		txn_set(&r.txns[0], rcpt1, 1, msg);
		r.ntxn = 1;
		session(&r, &s, &cfg, &p, CN);
		ended += r.closed && (r.errored == 1 || r.delivered == 1);
		srv_free(&s);
	}
	UNIT_EXPECT_INT("sessions that ended cleanly", ended, 30);
}

static void
test_bad_txn(void)
{
	static const char *const crlf[] = {"a@b.test\r\nRSET"};
	static const char *const ok[] = {"a@b.test"};
	struct smtp_client_params p;
	struct smtp_client *c;
	struct smtp_txn t;
	struct run r;

	test_params(&p);
	memset(&r, 0, sizeof(r));
	unit_loop_begin();
	c = smtp_client_new(&unit_loop, &p, &run_cbs, &r);
	txn_set(&t, ok, 1, msg);
	UNIT_EXPECT_INT("not connected", smtp_client_send(c, &t), KUMO_EINVAL);
	UNIT_EXPECT_INT("state", smtp_client_state(c), SMTP_CLIENT_INIT);
	CU_ASSERT_PTR_NOT_NULL(smtp_client_conn(c));
	CU_ASSERT_TRUE(strncmp(smtp_client_id(c), "c", 1) == 0);
	smtp_client_close(c);
	smtp_client_close(c);
	CU_ASSERT_TRUE(unit_run_until(&r.closed));
	unit_loop_end();

	/* CRLF inside an address is refused (it would inject a command). */
	{
		struct srv s;

		memset(&r, 0, sizeof(r));
		txn_set(&r.txns[0], crlf, 1, msg);
		txn_set(&r.txns[1], ok, 1, msg);
		r.ntxn = 2;
		session(&r, &s, NULL, &p, CN);
		UNIT_EXPECT_INT("bad address refused", r.send_failed, 1);
		UNIT_EXPECT_INT("the good one went through", r.delivered, 1);
		EXPECT_TRANSCRIPT(&s, "EHLO client.example.org\nMAIL FROM:<sender@example.org> SIZE=24\n"
				      "RCPT TO:<a@b.test>\nDATA\nQUIT\n");
		srv_free(&s);
	}
}

static void
test_strings(void)
{
	static const char *const phases[] = {"connect", "banner", "starttls", "ehlo", "mail_from", "rcpt_to",
					     "data", "data_dot", "rset", "auth", "quit", "idle"};
	static const unsigned defaults_s[SMTP_TIMEOUT_COUNT] = {60, 60, 5, 300, 300, 300, 30, 60, 5};
	struct smtp_client_params p;
	size_t i;

	for (i = 0; i < KUMO_NELEM(phases); i++)
		UNIT_EXPECT_STR("phase", smtp_phase_str((enum smtp_phase)i), phases[i]);
	UNIT_EXPECT_STR("bad phase", smtp_phase_str(SMTP_PHASE_COUNT), "?");
	UNIT_EXPECT_STR("state", smtp_client_state_str(SMTP_CLIENT_EHLO_TLS), "ehlo_tls");
	UNIT_EXPECT_STR("state", smtp_client_state_str(SMTP_CLIENT_BODY), "body");
	UNIT_EXPECT_STR("bad state", smtp_client_state_str((enum smtp_client_state)99), "?");
	for (i = 0; i <= SMTP_CLIENT_CLOSED; i++)
		CU_ASSERT_TRUE(strcmp(smtp_client_state_str((enum smtp_client_state)i), "?") != 0);
	smtp_client_params_init(&p);
	UNIT_EXPECT_INT("default mode", p.tls_mode, TLS_OPPORTUNISTIC);
	UNIT_EXPECT_INT("no auth in clear", p.allow_auth_plain_without_tls, 0);
	for (i = 0; i < SMTP_TIMEOUT_COUNT; i++)
		UNIT_EXPECT_INT(phases[i], p.timeout_ms[i], defaults_s[i] * 1000);
}

/* SHA-256 of the server certificate's SubjectPublicKeyInfo: the data of a 3 1 1 record. */
static void
spki_sha256(unsigned char out[32])
{
	gnutls_datum_t pem = {NULL, 0}, der = {NULL, 0};
	gnutls_x509_crt_t crt = NULL;
	gnutls_pubkey_t pk = NULL;

	memset(out, 0, 32);
	if (gnutls_load_file(cert_path, &pem) < 0 || gnutls_x509_crt_init(&crt) < 0 ||
	    gnutls_x509_crt_import(crt, &pem, GNUTLS_X509_FMT_PEM) < 0 || gnutls_pubkey_init(&pk) < 0 ||
	    gnutls_pubkey_import_x509(pk, crt, 0) < 0 ||
	    gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_DER, &der) < 0 ||
	    gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, out) < 0)
		CU_FAIL("cannot hash the test certificate's public key");
	gnutls_free(der.data);
	gnutls_free(pem.data);
	gnutls_pubkey_deinit(pk);
	gnutls_x509_crt_deinit(crt);
}

/*
 * DANE inside the handshake: a matching 3 1 1 record authenticates a
 * self-signed certificate that PKIX would refuse; a wrong digest stops the
 * session before anything but EHLO and STARTTLS went out; a server without
 * STARTTLS fails whatever tls_mode says.
 */
static void
test_dane(void)
{
	struct smtp_client_params p;
	struct srv_cfg cfg = {.ehlo = EHLO_TLS};
	struct tls_ctx_config ccfg = {NULL, NULL, NULL, NULL};
	struct tls_ctx *sys = NULL;
	unsigned char digest[32], wrong[32];
	struct dane_tlsa rec = {DANE_USAGE_DANE_EE, DANE_SELECTOR_SPKI, DANE_MTYPE_SHA256, digest, 32};
	struct srv s;
	struct run r;

	CU_ASSERT_EQUAL_FATAL(tls_ctx_new_client(&ccfg, &sys, NULL), 0);
	spki_sha256(digest);
	memcpy(wrong, digest, sizeof(wrong));
	wrong[0] ^= 0xff;

	/* A matching record: Required with the system store would fail PKIX, DANE passes. */
	test_params(&p);
	p.tls_mode = TLS_REQUIRED;
	p.tls_ctx = sys;
	p.dane_tlsa = &rec;
	p.dane_count = 1;
	p.dane_domain = "example.test";
	p.tls_policy = "dane";
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	rec.data = digest;
	session(&r, &s, &cfg, &p, CN);
	UNIT_EXPECT_INT("errors", r.errored, 0);
	UNIT_EXPECT_INT("tls", r.is_tls, 1);
	UNIT_EXPECT_STR("dane verdict", r.dane, "verified");
	UNIT_EXPECT_INT("delivered", r.delivered, 1);
	srv_free(&s);

	/* The wrong digest: the handshake fails, nothing after STARTTLS is sent. */
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	rec.data = wrong;
	session(&r, &s, &cfg, &p, CN);
	EXPECT_TRANSCRIPT(&s, "EHLO client.example.org\nSTARTTLS\n");
	UNIT_EXPECT_INT("error", r.errored, 1);
	UNIT_EXPECT_INT("err", r.err.err, KUMO_ETLS);
	UNIT_EXPECT_INT("phase", r.err.phase, SMTP_PHASE_STARTTLS);
	CU_ASSERT_TRUE(strstr(r.err_text, "DANE") != NULL);
	if (strstr(r.err_text, "DANE") == NULL)
		fprintf(stderr, "  text: %s\n", r.err_text);
	UNIT_EXPECT_INT("not delivered", r.delivered, 0);
	srv_free(&s);

	/* DANE with enable_tls Disabled against a server without STARTTLS: still required. */
	memset(&r, 0, sizeof(r));
	txn_set(&r.txns[0], rcpt1, 1, msg);
	r.ntxn = 1;
	rec.data = digest;
	p.tls_mode = TLS_DISABLED;
	session(&r, &s, NULL, &p, CN);
	EXPECT_TRANSCRIPT(&s, "EHLO client.example.org\n");
	UNIT_EXPECT_INT("err", r.err.err, KUMO_ETLS);
	CU_ASSERT_TRUE(strstr(r.err_text, "STARTTLS not advertised (DANE") != NULL);
	srv_free(&s);
	tls_ctx_unref(&sys);
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{"strings and defaults", test_strings},
		{"plain, no pipelining, RSET", test_plain_no_pipelining},
		{"pipelining", test_pipelining},
		{"per-recipient replies", test_rcpt_replies},
		{"MAIL refused, 4xx final", test_mail_refused},
		{"dot-stuffing on the wire", test_dot_stuffing},
		{"MAIL parameters", test_mail_params},
		{"timeouts by phase", test_timeouts},
		{"connect failures", test_connect_failures},
		{"source address", test_source_address},
		{"banner and HELO", test_banner_and_helo},
		{"peer closes after dot", test_peer_closes},
		{"STARTTLS", test_starttls},
		{"DANE in the handshake", test_dane},
		{"AUTH PLAIN", test_auth},
		{"bad transactions", test_bad_txn},
		{"garbage replies", test_garbage_replies},
		{NULL, NULL},
	};
	struct tls_ctx_config scfg = {NULL, NULL, NULL, NULL};
	char *err = NULL;
	int rc;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kumo-test-smtpc-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", tmpdir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", tmpdir);
	if (tls_make_self_signed(CN, cert_path, key_path, &err) < 0) {
		fprintf(stderr, "self-signed: %s\n", err);
		return 2;
	}
	scfg.cert_file = cert_path;
	scfg.key_file = key_path;
	if (tls_ctx_new_client(NULL, &client_ctx, &err) < 0) {
		fprintf(stderr, "client ctx: %s\n", err);
		return 2;
	}
	if (tls_ctx_new_server(&scfg, &server_ctx, &err) < 0) {
		fprintf(stderr, "server ctx: %s\n", err);
		return 2;
	}
	rc = unit_run("smtp_client", tests);
	tls_ctx_unref(&server_ctx);
	tls_ctx_unref(&client_ctx);
	unlink(cert_path);
	unlink(key_path);
	rmdir(tmpdir);
	return rc;
}
