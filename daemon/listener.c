/*
 * listener.c: ESMTP reception. One listening socket per `listen` entry and
 * one session per client; commands are framed and parsed by lib/smtp_proto,
 * replies to a pipelined batch leave in one write. Relaying is allowed for
 * peers in relay_hosts only (others get 550 5.7.1 at RCPT). At the end of
 * DATA the message is split by recipient domain (one spool file and one
 * scheduled-queue entry per domain, at most 100 recipients each), every
 * copy is handed to the spool, and the 250 goes out only once the spool's
 * sync covering all copies has completed; meanwhile the session reads no
 * further input, which keeps pipelined replies in order and pushes back on
 * a client faster than the disk.
 *
 * Sessions run on lib/conn (non-blocking socket, write batching per loop
 * turn, the idle timer, and STARTTLS with its injection defense) when the
 * listener has tls_certificate and tls_private_key.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "buf.h"
#include "cidr.h"
#include "conn.h"
#include "kumo.h"
#include "log.h"
#include "smtp_proto.h"
#include "tls.h"

#include "kumod.h"

#define SESSION_IN_MAX (256 * 1024)
#define SESSION_IDLE_MS (300 * 1000)
#define SESSION_MAX_ERRORS 20

struct listener {
	uv_poll_t poll; /* on the listening socket */
	int fd;
	struct kconf_listen *conf;
	struct tls_ctx *tls; /* STARTTLS credentials, or NULL */
	int open;
};

enum sess_state { S_CMD, S_DATA, S_SPOOLING, S_STARTTLS, S_QUIT };

struct session {
	struct conn *c;
	int closed; /* conn's on_close ran */
	int closing;
	int tls;
	struct listener *l;
	const struct kconf_listen *conf;
	char peer[64];
	char helo[256];
	int relay_ok;
	int greeted;
	int errors;
	enum sess_state state;
	/* the transaction */
	char *sender;
	int have_mail;
	char **rcpts;
	size_t nrcpts;
	struct smtp_dot_dec dec;
	struct buf data;
	/* copies being spooled */
	struct msg **copies;
	size_t ncopies, stored;
	int store_failed;
	char last_id[40];
	struct session *next, *prev; /* every session, for shutdown */
};

static struct listener *listeners;
static size_t nlisteners;
static size_t nsessions;
static struct session *sessions;
static uint64_t id_last;

static void process(struct session *s);
static void session_close(struct session *s);

/* A fresh message id: microseconds since the epoch, made unique, in hex. */
static void
new_id(char *out, size_t outlen)
{
	struct timespec ts;
	uint64_t us;

	clock_gettime(CLOCK_REALTIME, &ts);
	us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	if (us <= id_last)
		us = id_last + 1;
	id_last = us;
	snprintf(out, outlen, "%016llx", (unsigned long long)us);
}

static double
wall_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
reply(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void
reply(struct session *s, const char *fmt, ...)
{
	va_list ap;
	struct buf *out;

	if (s->closing)
		return;
	out = conn_wbuf(s->c);
	va_start(ap, fmt);
	buf_vappendf(out, fmt, ap);
	va_end(ap);
	buf_puts(out, "\r\n");
}

static void
flush(struct session *s)
{
	if (!s->closing && conn_pending(s->c) > 0)
		conn_flush(s->c);
}

static void
txn_reset(struct session *s)
{
	size_t i;

	free(s->sender);
	s->sender = NULL;
	s->have_mail = 0;
	for (i = 0; i < s->nrcpts; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpts = 0;
	buf_release(&s->data);
}

static void
session_free(struct session *s)
{
	txn_reset(s);
	free(s->copies);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	free(s);
	nsessions--;
}

static void
on_close(struct conn *c, void *arg)
{
	struct session *s = arg;

	(void)c;
	s->closed = 1;
	s->c = NULL;
	if (s->state != S_SPOOLING)
		session_free(s);
}

static void
session_close(struct session *s)
{
	if (s->closing)
		return;
	s->closing = 1;
	conn_close(s->c);
}

static void
on_error(struct conn *c, int err, void *arg)
{
	struct session *s = arg;

	(void)c;
	if (err == KUMO_ETIMEDOUT && s->state != S_SPOOLING) {
		reply(s, "421 4.4.2 %s Error: timeout exceeded", s->conf->hostname);
		flush(s);
	} else if (err == KUMO_ENOSPACE) {
		reply(s, "500 5.5.0 Error: input buffer full");
		flush(s);
	}
	session_close(s);
}

static int
peer_relay_ok(const struct kconf_listen *conf, const struct sockaddr *sa)
{
	if (conf->relay_hosts != NULL)
		return cidr_list_match(conf->relay_hosts, sa);
	/* No relay_hosts: loopback only. */
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return 0;
}

static void
addr_str(const struct sockaddr *sa, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)sa, host, sizeof(host));
	else if (sa->sa_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)sa, host, sizeof(host));
	snprintf(out, outlen, "%s", host);
}

/* The domain of an address ("" when there is no '@'), lower-cased into out. */
static int
rcpt_domain(const char *addr, char *out, size_t outlen)
{
	const char *at = strrchr(addr, '@');
	size_t i, n;

	if (at == NULL || at[1] == '\0')
		return -1;
	n = strlen(at + 1);
	if (n + 1 > outlen)
		return -1;
	for (i = 0; i <= n; i++)
		out[i] = (char)tolower((unsigned char)at[1 + i]);
	return 0;
}

/* A header's value from the header section of data (first occurrence), or NULL. */
static char *
header_value(const char *data, size_t len, const char *name)
{
	size_t off = 0, nlen = strlen(name);

	while (off < len) {
		const char *line = data + off, *nl = memchr(line, '\n', len - off);
		size_t ll = nl != NULL ? (size_t)(nl - line) : len - off;

		if (ll == 0 || (ll == 1 && line[0] == '\r'))
			break; /* end of the header section */
		if (ll > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			size_t vl = ll - nlen - 1;
			char *r;
			size_t i, j = 0;

			while (vl > 0 && (*v == ' ' || *v == '\t'))
				v++, vl--;
			while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			if (vl == 0 || vl > 200)
				return NULL;
			r = xmalloc(vl + 1);
			/* Queue names are built from it: keep it to a safe alphabet. */
			for (i = 0; i < vl; i++) {
				unsigned char c = (unsigned char)v[i];

				if (isalnum(c) || c == '-' || c == '_' || c == '.')
					r[j++] = (char)c;
			}
			r[j] = '\0';
			if (j == 0) {
				free(r);
				return NULL;
			}
			return r;
		}
		off += ll + 1;
	}
	return NULL;
}

static void
spooled(struct msg *m, int status, void *arg)
{
	struct session *s = arg;
	size_t i;

	if (status == 0)
		m->spooled = 1; /* its file exists: remove it if the message is not acknowledged */
	else
		s->store_failed = 1;
	if (++s->stored < s->ncopies)
		return;
	/* Every copy of this message is on disk (or failed). */
	if (s->store_failed || s->closing) {
		for (i = 0; i < s->ncopies; i++) {
			if (s->copies[i]->spooled)
				spool_remove(kd.spool, s->copies[i]);
			msg_free(&s->copies[i]);
		}
		if (!s->closing)
			reply(s, "451 4.3.0 Error: queue file write error");
	} else {
		for (i = 0; i < s->ncopies; i++) {
			struct jlog_rec r = {.kind = JLOG_RECEPTION, .m = s->copies[i],
					     .peer_address = s->peer, .code = 250,
					     .enhanced = "2.0.0"};

			jlog_write(&r);
			kd.received++;
			queue_insert(s->copies[i], 0);
			s->copies[i] = NULL;
		}
		reply(s, "250 2.0.0 Ok: queued as %s", s->last_id);
	}
	s->ncopies = s->stored = 0;
	s->store_failed = 0;
	s->state = S_CMD;
	if (s->closing) {
		if (s->closed)
			session_free(s);
		return;
	}
	conn_read_start(s->c);
	process(s);
}

static void
finish_data(struct session *s)
{
	char domain[256];
	char *tenant, *campaign;
	struct blob *blob;
	char **done;
	size_t i, j, len;
	char *data;
	double now = wall_now();

	if (s->dec.overflow) {
		reply(s, "552 5.3.4 Error: message too large");
		txn_reset(s);
		return;
	}
	tenant = header_value(s->data.data, s->data.len, "X-Tenant");
	campaign = header_value(s->data.data, s->data.len, "X-Campaign");
	data = buf_steal(&s->data, &len);
	blob = blob_take(data, len);
	done = xcalloc(s->nrcpts, sizeof(char *));
	s->copies = xreallocarray(s->copies, s->nrcpts, sizeof(struct msg *));
	s->ncopies = s->stored = 0;
	s->store_failed = 0;
	/* One copy per recipient domain, at most 100 recipients each. */
	for (i = 0; i < s->nrcpts; i++) {
		struct msg *m;

		if (done[i] != NULL)
			continue;
		if (rcpt_domain(s->rcpts[i], domain, sizeof(domain)) != 0)
			continue; /* refused at RCPT; cannot happen */
		m = msg_new();
		new_id(m->id, sizeof(m->id));
		m->sender = xstrdup(s->sender);
		m->domain = xstrdup(domain);
		m->tenant = tenant != NULL ? xstrdup(tenant) : NULL;
		m->campaign = campaign != NULL ? xstrdup(campaign) : NULL;
		m->queue = queue_name(campaign, tenant, domain);
		m->peer = xstrdup(s->peer);
		m->data = blob_ref(blob);
		m->created = now;
		for (j = i; j < s->nrcpts && m->nrcpts < KUMOD_MAX_RCPTS_PER_TXN; j++) {
			char d2[256];

			if (done[j] != NULL || rcpt_domain(s->rcpts[j], d2, sizeof(d2)) != 0 ||
			    strcmp(d2, domain) != 0)
				continue;
			m->rcpts = xreallocarray(m->rcpts, m->nrcpts + 1, sizeof(char *));
			m->rcpts[m->nrcpts++] = s->rcpts[j];
			done[j] = s->rcpts[j];
			s->rcpts[j] = NULL;
		}
		s->copies[s->ncopies++] = m;
		snprintf(s->last_id, sizeof(s->last_id), "%s", m->id);
	}
	free(done);
	blob_unref(&blob);
	free(tenant);
	free(campaign);
	txn_reset(s);
	if (s->ncopies == 0) {
		reply(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	s->state = S_SPOOLING;
	conn_read_stop(s->c);
	for (i = 0; i < s->ncopies; i++)
		spool_store(kd.spool, s->copies[i], spooled, s);
}

static void
do_ehlo(struct session *s, const struct smtp_cmd *cmd, int ehlo)
{
	txn_reset(s);
	snprintf(s->helo, sizeof(s->helo), "%s", cmd->arg);
	s->greeted = 1;
	if (!ehlo) {
		reply(s, "250 %s", s->conf->hostname);
		return;
	}
	reply(s, "250-%s", s->conf->hostname);
	reply(s, "250-PIPELINING");
	if (s->conf->max_message_size > 0)
		reply(s, "250-SIZE %llu", (unsigned long long)s->conf->max_message_size);
	else
		reply(s, "250-SIZE");
	reply(s, "250-ENHANCEDSTATUSCODES");
	if (s->l->tls != NULL && !s->tls)
		reply(s, "250-STARTTLS");
	reply(s, "250 8BITMIME");
}

static void
do_command(struct session *s, char *line, size_t len)
{
	struct smtp_cmd cmd;
	int r = smtp_cmd_parse(line, len, &cmd);

	if (r == KUMO_ETOOLONG) {
		reply(s, "500 5.5.0 Error: line too long");
		s->errors++;
		return;
	}
	if (r != 0) {
		reply(s, "501 5.5.4 Syntax error");
		s->errors++;
		return;
	}
	switch (cmd.verb) {
	case SMTP_VERB_EHLO:
	case SMTP_VERB_HELO:
		do_ehlo(s, &cmd, cmd.verb == SMTP_VERB_EHLO);
		break;
	case SMTP_VERB_MAIL: {
		const struct smtp_param *sz = smtp_cmd_param(&cmd, "SIZE");

		if (!s->greeted) {
			reply(s, "503 5.5.1 Error: send HELO/EHLO first");
			s->errors++;
		} else if (s->have_mail) {
			reply(s, "503 5.5.1 Error: nested MAIL command");
			s->errors++;
		} else if (sz != NULL && sz->value != NULL && s->conf->max_message_size > 0 &&
			   strtoull(sz->value, NULL, 10) > s->conf->max_message_size) {
			reply(s, "552 5.3.4 Error: message size exceeds fixed limit");
		} else {
			s->sender = xstrdup(cmd.path);
			s->have_mail = 1;
			reply(s, "250 2.1.0 Ok");
		}
		break;
	}
	case SMTP_VERB_RCPT: {
		char domain[256];

		if (!s->have_mail) {
			reply(s, "503 5.5.1 Error: need MAIL command");
			s->errors++;
		} else if (rcpt_domain(cmd.path, domain, sizeof(domain)) != 0) {
			reply(s, "501 5.1.3 Bad recipient address syntax");
			s->errors++;
		} else if (!s->relay_ok) {
			reply(s, "550 5.7.1 <%s>: Relay access denied", cmd.path);
			s->errors++;
		} else if (s->nrcpts >= s->conf->max_recipients) {
			reply(s, "452 4.5.3 Error: too many recipients");
		} else {
			s->rcpts = xreallocarray(s->rcpts, s->nrcpts + 1, sizeof(char *));
			s->rcpts[s->nrcpts++] = xstrdup(cmd.path);
			reply(s, "250 2.1.5 Ok");
		}
		break;
	}
	case SMTP_VERB_DATA:
		if (!s->have_mail) {
			reply(s, "503 5.5.1 Error: need MAIL command");
			s->errors++;
		} else if (s->nrcpts == 0) {
			reply(s, "554 5.5.1 Error: no valid recipients");
		} else {
			char stamp[64];
			time_t now = time(NULL);
			struct tm tm;

			char *received;
			size_t rlen;

			reply(s, "354 End data with <CR><LF>.<CR><LF>");
			gmtime_r(&now, &tm);
			strftime(stamp, sizeof(stamp), "%a, %d %b %Y %H:%M:%S +0000", &tm);
			received = xasprintf("Received: from %s ([%s])\r\n\tby %s (kumod) with %s;\r\n\t%s\r\n",
					     s->helo, s->peer, s->conf->hostname,
					     s->tls ? "ESMTPS" : "ESMTP", stamp);
			rlen = strlen(received);
			/* max_message_size limits what the client sends; our own Received line is extra. */
			buf_init(&s->data, s->conf->max_message_size > 0 ? s->conf->max_message_size + rlen : 0);
			buf_append(&s->data, received, rlen);
			free(received);
			smtp_dot_dec_init(&s->dec);
			s->state = S_DATA;
		}
		break;
	case SMTP_VERB_RSET:
		txn_reset(s);
		reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_VERB_NOOP:
		reply(s, "250 2.0.0 Ok");
		break;
	case SMTP_VERB_QUIT:
		reply(s, "221 2.0.0 Bye");
		s->state = S_QUIT;
		break;
	case SMTP_VERB_VRFY:
		reply(s, "252 2.0.0 Cannot VRFY user");
		break;
	case SMTP_VERB_STARTTLS:
		if (s->l->tls == NULL || s->tls)
			reply(s, "454 4.7.0 TLS not available");
		else {
			reply(s, "220 2.0.0 Ready to start TLS");
			s->state = S_STARTTLS;
		}
		break;
	case SMTP_VERB_HELP:
		reply(s, "214 2.0.0 https://www.rfc-editor.org/rfc/rfc5321");
		break;
	default:
		reply(s, "502 5.5.2 Error: command not recognized");
		s->errors++;
		break;
	}
}

static void
tls_done(struct conn *c, int status, void *arg)
{
	struct session *s = arg;

	(void)c;
	if (status != 0) {
		log_info("%s: STARTTLS failed: %s", s->peer, kumo_strerror(status));
		session_close(s);
		return;
	}
	/* RFC 3207: forget everything learnt before the handshake. */
	s->tls = 1;
	s->greeted = 0;
	s->helo[0] = '\0';
	txn_reset(s);
	s->state = S_CMD;
}

/* Handle every complete command (or data) in the conn's read buffer. */
static void
process(struct session *s)
{
	struct buf *in;
	size_t off = 0;

	if (s->closing)
		return;
	in = conn_rbuf(s->c);
	while (!s->closing && (s->state == S_CMD || s->state == S_DATA)) {
		size_t linelen, consumed;
		int r;

		if (off >= in->len)
			break;
		if (s->state == S_DATA) {
			r = smtp_dot_decode(&s->dec, in->data + off, in->len - off, &s->data, &consumed);
			off += consumed;
			if (r == 1) {
				s->state = S_CMD;
				finish_data(s);
			}
			continue;
		}
		r = smtp_line_next(in->data + off, in->len - off, SMTP_LINE_MAX, &linelen, &consumed);
		if (r == KUMO_EAGAIN)
			break;
		if (r == KUMO_ETOOLONG) {
			reply(s, "500 5.5.0 Error: line too long");
			s->state = S_QUIT;
			break;
		}
		/* smtp_cmd_parse writes at line[len]: the CR or LF is there. */
		do_command(s, in->data + off, linelen);
		off += consumed;
		if (s->errors >= SESSION_MAX_ERRORS) {
			reply(s, "421 4.7.0 Error: too many errors");
			s->state = S_QUIT;
		}
	}
	buf_drain(in, off);
	if (s->state == S_STARTTLS) {
		/* The 220 goes out in clear first; bytes already after STARTTLS are an injection. */
		if (conn_starttls(s->c, s->l->tls, NULL, tls_done) != 0) {
			log_info("%s: STARTTLS refused: %s", s->peer,
				 in->len > 0 ? "clear-text bytes after STARTTLS" : "cannot start TLS");
			session_close(s);
		}
		return;
	}
	flush(s);
	if (s->state == S_QUIT)
		session_close(s);
}

static void
on_read(struct conn *c, struct buf *in, void *arg)
{
	struct session *s = arg;

	(void)c;
	(void)in;
	conn_set_timeout(s->c, SESSION_IDLE_MS);
	if (s->state == S_SPOOLING || s->state == S_STARTTLS)
		return; /* kept in the buffer until the sync (or handshake) completes */
	process(s);
}

static void
new_session(struct listener *l, int fd)
{
	static const struct conn_cbs cbs = {.on_read = on_read, .on_error = on_error, .on_close = on_close};
	struct session *s = xcalloc(1, sizeof(*s));
	int r;

	s->next = sessions;
	if (sessions != NULL)
		sessions->prev = s;
	sessions = s;
	nsessions++;
	s->l = l;
	s->conf = l->conf;
	s->c = conn_new(kd.loop, &cbs, s);
	r = conn_accept(s->c, fd);
	if (r != 0) {
		session_close(s);
		return;
	}
	conn_set_read_max(s->c, SESSION_IN_MAX);
	addr_str(conn_peer(s->c), s->peer, sizeof(s->peer));
	s->relay_ok = peer_relay_ok(s->conf, conn_peer(s->c));
	conn_set_timeout(s->c, SESSION_IDLE_MS);
	if (kd.stopping) {
		reply(s, "421 4.3.2 %s Service shutting down", s->conf->hostname);
		flush(s);
		session_close(s);
		return;
	}
	reply(s, "220 %s ESMTP kumod", s->conf->hostname);
	flush(s);
}

static void
on_acceptable(uv_poll_t *h, int status, int events)
{
	struct listener *l = h->data;
	int i;

	(void)events;
	if (status < 0)
		return;
	/* A bounded batch per wake-up so one busy listener cannot starve the loop. */
	for (i = 0; i < 64; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept on %s: %s", l->conf->address, strerror(errno));
			return;
		}
		new_session(l, fd);
	}
}

static int
open_listener(struct listener *l, char **err_r)
{
	const struct sockaddr *sa = (const struct sockaddr *)&l->conf->sa;
	socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	int one = 1, r;

	l->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0)
		goto fail;
	(void)setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		(void)setsockopt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(l->fd, sa, len) != 0 || listen(l->fd, 511) != 0)
		goto fail;
	r = uv_poll_init_socket(kd.loop, &l->poll, l->fd);
	if (r != 0) {
		*err_r = xasprintf("listen %s: %s", l->conf->address, uv_strerror(r));
		return r;
	}
	l->poll.data = l;
	l->open = 1;
	uv_poll_start(&l->poll, UV_READABLE, on_acceptable);
	return 0;
fail:
	r = -errno;
	*err_r = xasprintf("listen %s: %s", l->conf->address, strerror(errno));
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	return r;
}

int
listener_start(struct kumod *k, char **err_r)
{
	size_t i;
	int r;

	listeners = xcalloc(k->conf->nlisten ? k->conf->nlisten : 1, sizeof(*listeners));
	nlisteners = k->conf->nlisten;
	for (i = 0; i < nlisteners; i++) {
		struct listener *l = &listeners[i];

		l->conf = &k->conf->listen[i];
		l->fd = -1;
		if (l->conf->tls_certificate != NULL) {
			struct tls_ctx_config tc = {.cert_file = l->conf->tls_certificate,
						    .key_file = l->conf->tls_private_key};
			char *err = NULL;

			if (tls_ctx_new_server(&tc, &l->tls, &err) != 0) {
				*err_r = xasprintf("listen %s: TLS: %s", l->conf->address,
						   err != NULL ? err : "cannot load the certificate");
				free(err);
				return KUMO_ETLS;
			}
		}
		if ((r = open_listener(l, err_r)) != 0)
			return r;
		log_info("listening on %s%s", l->conf->address, l->tls != NULL ? " (STARTTLS)" : "");
	}
	return 0;
}

static void
listener_closed(uv_handle_t *h)
{
	struct listener *l = h->data;

	close(l->fd);
	l->fd = -1;
}

void
listener_stop(void)
{
	struct session *s;
	size_t i;

	for (i = 0; i < nlisteners; i++)
		if (listeners[i].open) {
			listeners[i].open = 0;
			uv_close((uv_handle_t *)&listeners[i].poll, listener_closed);
		}
	/*
	 * Sessions go too. A transaction whose 250 has not been sent is
	 * abandoned (the client still owns that message); one being spooled
	 * finishes its sync first and is then discarded unacknowledged.
	 */
	for (s = sessions; s != NULL; s = s->next)
		if (!s->closing) {
			if (s->state != S_SPOOLING) {
				reply(s, "421 4.3.2 %s Service shutting down", s->conf->hostname);
				flush(s);
			}
			session_close(s);
		}
}

void
listener_reconfigure(const struct kconf *c)
{
	size_t i, j;

	for (i = 0; i < nlisteners; i++)
		for (j = 0; j < c->nlisten; j++)
			if (strcmp(listeners[i].conf->address, c->listen[j].address) == 0)
				listeners[i].conf = &c->listen[j];
}

void
listener_free(void)
{
	size_t i;

	for (i = 0; i < nlisteners; i++)
		tls_ctx_unref(&listeners[i].tls);
	free(listeners);
	listeners = NULL;
	nlisteners = 0;
}

size_t
listener_sessions(void)
{
	return nsessions;
}
