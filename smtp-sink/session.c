/*
 * session.c: one SMTP (or LMTP) session of smtp-sink, from the accepted
 * socket to its close. The socket is polled with uv_poll and read and
 * written by hand, with GnuTLS running on the same fd after STARTTLS or on
 * an implicit-TLS listener.
 *
 * Input: one 64 KB read per readiness event into a per-session buffer;
 * every complete command in it is answered before anything is written, and
 * the writes of all sessions happen once, at the end of the loop turn (a
 * uv_check handle), in the order the sessions were served, so the replies
 * of a pipelined group leave in one write. After those writes --coalesce
 * pauses briefly when several sessions are open and none has input yet, so
 * that one wake-up serves many of them; --busy-poll instead keeps the loop
 * polling for a moment after a read (see smtp-sink(1) for why wake-ups
 * matter on VMs). Message
 * data goes through the streaming dot decoder and is only kept when
 * --save-dir asks for it. Faults come from the verb table (verbs.c): a
 * reply is first appended to the output, then a delay moves it (and all
 * later replies) to `pending` until the delay timer fires.
 *
 * A session owns three libuv handles; it is freed only when all three close
 * callbacks have run, never inside one of its own I/O callbacks. Up to
 * POOL_MAX freed sessions keep their buffers for the next connections.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <uv.h>

#include "kumo.h"
#include "log.h"
#include "sink.h"

#define READ_CHUNK 65536
#define OUT_HIGH 65536            /* stop processing input while this much output waits */
#define LINGER_MS 100             /* after QUIT, how long the client gets to close first */
#define COALESCE_PER_SESSION 5e-6 /* --coalesce: seconds of pause per open session */
#define POOL_MAX 64    /* closed sessions kept, with their buffers, for the next accept */
#define OUT_KEEP 16384 /* a pooled session keeps an output buffer up to this size */

enum st {
	ST_PROXY,     /* waiting for the PROXY header */
	ST_HANDSHAKE, /* TLS handshake in progress */
	ST_CMD,
	ST_DATA,
	ST_BDAT,
	ST_AUTH_PLAIN,
	ST_AUTH_LOGIN_USER,
	ST_AUTH_LOGIN_PASS,
	ST_STALLED, /* --abort-data: no more input is read */
	ST_LINGER,  /* QUIT answered: wait for the client's FIN */
};

struct session {
	uint64_t id; /* session id in log lines */
	int fd;
	uv_poll_t poll;
	uv_timer_t idle;
	uv_timer_t delay;
	int handles; /* open handles; freed when 0 */
	int events;  /* current poll mask */
	int closing;
	int close_after_flush;
	int linger;         /* after QUIT: let the client close first */
	int idle_armed;     /* the idle timer runs for --timeout (not stopped, not lingering) */
	uint64_t idle_last; /* loop time (ms) of the last input, for the lazy idle timer */
	int dead;           /* counted out of the stats */
	struct session *prev, *next;
	struct session *flush_next; /* on the end-of-turn write list */
	int flush_queued;

	char addr[INET6_ADDRSTRLEN];
	char proxy_src[INET6_ADDRSTRLEN + 8];
	char *ehlo;
	int implicit_tls;

	/* input */
	char *ibuf;
	size_t isize, ipos, ilen;
	int skip_line; /* discarding the rest of an overlong line */
	int eof;

	/* output */
	struct buf out;
	struct buf pending; /* replies held back by a delay */
	int paused;         /* a delay is running */
	int pending_close;

	/* TLS */
	gnutls_session_t tls;
	int tls_up;
	int tls_start_after_flush;
	size_t tls_wpending; /* length of a gnutls_record_send to resume */
	char *pre;           /* raw bytes read before the handshake (after PROXY) */
	size_t pre_len, pre_off;

	/* SMTP */
	enum st st;
	int greeted;
	int banner_refused; /* a 5xx banner: only QUIT is accepted */
	int in_mail;
	int nrcpt;
	int auth_ok;
	char *auth_user;
	struct smtp_dot_dec dec;
	uint64_t msg_bytes; /* BDAT: octets so far */
	uint64_t bdat_left;
	uint64_t bdat_size;
	int bdat_last;
	int bdat_bad; /* reply to give after the chunk: 0 fine, else a code */
	uint64_t nmsgs;
	struct buf msg; /* --save-dir only */
	struct buf env; /* --save-dir / --log-json: "MAIL FROM" NUL rcpt NUL ... */
	int msg_over;   /* --save-dir buffer overflowed */
	double t_mail;  /* --log-json: when MAIL was accepted */
};

static struct session *sessions;
static struct session *pool; /* closed sessions for reuse, linked by next */
static int npool;
static int shutting_down;
static struct session *flush_list; /* sessions with replies to write this loop turn, */
static struct session **flush_tail = &flush_list; /* in the order they were served */
static uv_check_t flush_check;
static int flush_check_init;

static void session_close(struct session *s);
static void session_done(struct session *s);
static void process_input(struct session *s);
static void flush(struct session *s);
static void update_poll(struct session *s);
static void on_poll(uv_poll_t *h, int status, int events);
static void on_delay(uv_timer_t *t);
static void on_idle(uv_timer_t *t);
static void idle_restart(struct session *s);

static double
wall_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* ---- replies ---- */

/* Append one reply line to the output (or to pending while a delay runs). */
static void say(struct session *s, int code, const char *enh, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
say(struct session *s, int code, const char *enh, const char *fmt, ...)
{
	struct buf *b = s->paused ? &s->pending : &s->out;
	va_list ap;

	if (enh != NULL && (cfg.ext & EXT_ENHANCEDSTATUSCODES))
		buf_appendf(b, "%d %s ", code, enh);
	else
		buf_appendf(b, "%d ", code);
	va_start(ap, fmt);
	buf_vappendf(b, fmt, ap);
	va_end(ap);
	buf_append(b, "\r\n", 2);
	sink_stats_reply(code);
}

/* Start a delay of secs (< 0: forever): what was appended since mark, and later replies, wait in
 * pending. */
static void
start_delay(struct session *s, double secs, size_t mark)
{
	if (!s->paused) {
		if (s->out.len > mark) {
			buf_append(&s->pending, s->out.data + mark, s->out.len - mark);
			s->out.len = mark;
			s->out.data[mark] = '\0';
		}
		s->paused = 1;
	}
	uv_timer_stop(&s->idle);
	s->idle_armed = 0;
	uv_timer_stop(&s->delay);
	if (secs >= 0)
		uv_timer_start(&s->delay, on_delay, (uint64_t)(secs * 1000 + 0.5), 0);
}

/* Apply a verb's --delay to the reply appended since mark. */
static void
apply_delay(struct session *s, int v, size_t mark)
{
	struct sink_row *r = &sink_verbs[v];

	if (r->delay != 0 && sink_rand_hit(r->delay_pct)) {
		if (s->close_after_flush) {
			s->close_after_flush = 0;
			s->pending_close = 1;
		}
		start_delay(s, r->delay, mark);
	}
}

/*
 * Decide a verb's fate before its reply. Returns -1 when the session is
 * being dropped (--disconnect, --421), the override's code when --reply
 * fires (*ovr set to its text), or the row's default code.
 */
static int
pick(struct session *s, int v, const char **ovr, size_t *mark)
{
	struct sink_row *r = &sink_verbs[v];

	*ovr = NULL;
	*mark = s->out.len;
	if (r->flags & (SVF_DISCONNECT | SVF_421)) {
		if (r->flags & SVF_421)
			say(s, 421, "4.3.0", "%s Service not available, closing connection",
			    cfg.hostname);
		s->close_after_flush = 1;
		if (r->delay != 0 && sink_rand_hit(r->delay_pct)) {
			s->pending_close = 1;
			s->close_after_flush = 0;
			start_delay(s, r->delay, *mark);
		}
		return -1;
	}
	if (r->reply != NULL && sink_rand_hit(r->reply_pct)) {
		*ovr = r->reply;
		return r->reply_code;
	}
	return r->code;
}

/* Send a verb's reply: the override if pick() chose one, else the default. */
static void answer(struct session *s, int v, const char *ovr, size_t mark, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
answer(struct session *s, int v, const char *ovr, size_t mark, const char *fmt, ...)
{
	struct sink_row *r = &sink_verbs[v];
	struct buf *b = s->paused ? &s->pending : &s->out;

	if (ovr != NULL) {
		buf_puts(b, ovr);
		buf_append(b, "\r\n", 2);
		sink_stats_reply(r->reply_code);
		if (r->reply_code == 421)
			s->close_after_flush = 1;
	} else if (fmt != NULL) {
		va_list ap;

		if (r->enh != NULL && (cfg.ext & EXT_ENHANCEDSTATUSCODES))
			buf_appendf(b, "%d %s ", r->code, r->enh);
		else
			buf_appendf(b, "%d ", r->code);
		va_start(ap, fmt);
		buf_vappendf(b, fmt, ap);
		va_end(ap);
		buf_append(b, "\r\n", 2);
		sink_stats_reply(r->code);
	} else {
		buf_append(b, r->line, r->linelen);
		sink_stats_reply(r->code);
	}
	apply_delay(s, v, mark);
}

/* A delay ended: release the held replies and carry on with the input. */
static void
on_delay(uv_timer_t *t)
{
	struct session *s = t->data;

	if (s->closing)
		return;
	s->paused = 0;
	if (s->pending.len > 0)
		buf_append(&s->out, s->pending.data, s->pending.len);
	buf_reset(&s->pending);
	if (s->pending_close) {
		s->close_after_flush = 1;
		s->pending_close = 0;
	}
	if (s->st == ST_STALLED)
		s->close_after_flush = 1;
	if (!s->close_after_flush)
		idle_restart(s);
	process_input(s);
	flush(s);
}

static void
on_idle(uv_timer_t *t)
{
	struct session *s = t->data;
	uint64_t limit = (uint64_t)(cfg.idle_timeout * 1000), quiet;

	if (s->closing || s->paused)
		return;
	if (s->st == ST_LINGER) {
		session_close(s);
		return;
	}
	s->idle_armed = 0;
	quiet = uv_now(sink_loop) - s->idle_last;
	if (quiet < limit) {
		/* Input came since the timer was set: sleep for the rest of the period. */
		uv_timer_start(&s->idle, on_idle, limit - quiet, 0);
		s->idle_armed = 1;
		return;
	}
	sink_stats_event("idle_timeout");
	if (s->st == ST_HANDSHAKE || s->st == ST_PROXY) {
		/* No SMTP reply fits: clear text would corrupt a handshake, and no banner went out yet. */
		session_close(s);
		return;
	}
	say(s, 421, "4.4.2", "%s Error: timeout exceeded", cfg.hostname);
	s->close_after_flush = 1;
	flush(s);
}

/*
 * Input arrived: the idle period starts again. The timer is not moved on
 * every read (a heap removal and insertion each time); it keeps its
 * deadline and on_idle() sleeps again for what is left.
 */
static void
idle_restart(struct session *s)
{
	if (cfg.idle_timeout <= 0 || s->paused)
		return;
	s->idle_last = uv_now(sink_loop);
	if (!s->idle_armed) {
		uv_timer_start(&s->idle, on_idle, (uint64_t)(cfg.idle_timeout * 1000), 0);
		s->idle_armed = 1;
	}
}

/* ---- transaction bookkeeping ---- */

static void
reset_transaction(struct session *s)
{
	s->in_mail = 0;
	s->nrcpt = 0;
	s->msg_bytes = 0;
	s->bdat_bad = 0;
	s->msg_over = 0;
	if (cfg.save_dir != NULL)
		buf_reset(&s->msg);
	buf_reset(&s->env);
}

static void
save_message(struct session *s)
{
	static uint64_t seq;
	char *path, *tmp;
	FILE *fp;
	const char *p, *end;

	seq++;
	path = xasprintf("%s/%lld.%d.%llu.eml", cfg.save_dir, (long long)time(NULL), (int)getpid(),
	                 (unsigned long long)seq);
	tmp = xasprintf("%s.tmp", path);
	fp = fopen(tmp, "w");
	if (fp == NULL) {
		log_warn("--save-dir: %s: %s", tmp, strerror(errno));
		goto out;
	}
	fprintf(fp, "X-Sink-Client: %s\n", s->addr);
	if (s->proxy_src[0] != '\0')
		fprintf(fp, "X-Sink-Proxy-Source: %s\n", s->proxy_src);
	fprintf(fp, "X-Sink-Helo: %s\n", s->ehlo != NULL ? s->ehlo : "");
	if (s->tls_up)
		fprintf(fp, "X-Sink-TLS: %s %s\n",
		        gnutls_protocol_get_name(gnutls_protocol_get_version(s->tls)),
		        gnutls_ciphersuite_get(s->tls));
	if (s->auth_user != NULL)
		fprintf(fp, "X-Sink-Auth: %s\n", s->auth_user);
	p = s->env.len > 0 ? s->env.data : "";
	end = p + s->env.len;
	for (int first = 1; p < end; first = 0) {
		const char *params = p + strlen(p) + 1;

		fprintf(fp, "X-Sink-%s: <%s>%s%s\n", first ? "Mail-From" : "Rcpt-To", p,
		        *params != '\0' ? " " : "", params);
		p = params + strlen(params) + 1;
	}
	if (s->msg_over)
		fprintf(fp, "X-Sink-Truncated: yes\n");
	if (s->msg.len > 0)
		fwrite(s->msg.data, 1, s->msg.len, fp);
	if (fclose(fp) != 0 || rename(tmp, path) != 0)
		log_warn("--save-dir: %s: %s", path, strerror(errno));
out:
	free(tmp);
	free(path);
}

static void
log_transaction(struct session *s, int code, uint64_t bytes)
{
	struct buf b;
	const char *p, *end;
	int first = 1;

	buf_init(&b, 0);
	buf_appendf(&b, "{\"start\":%.6f,\"end\":%.6f,\"client\":", s->t_mail, wall_now());
	sink_json_str(&b, s->addr);
	buf_puts(&b, ",\"ehlo\":");
	sink_json_str(&b, s->ehlo != NULL ? s->ehlo : "");
	p = s->env.len > 0 ? s->env.data : "";
	end = p + s->env.len;
	buf_puts(&b, ",\"mail_from\":");
	sink_json_str(&b, p < end ? p : "");
	if (p < end)
		p += strlen(p) + 1, p += strlen(p) + 1; /* address, then its parameters */
	buf_puts(&b, ",\"rcpt_to\":[");
	for (; p < end; p += strlen(p) + 1, p += strlen(p) + 1) {
		if (!first)
			buf_putc(&b, ',');
		first = 0;
		sink_json_str(&b, p);
	}
	buf_appendf(&b, "],\"bytes\":%llu,\"code\":%d", (unsigned long long)bytes, code);
	if (s->tls_up) {
		buf_puts(&b, ",\"tls\":");
		sink_json_str(&b, gnutls_protocol_get_name(gnutls_protocol_get_version(s->tls)));
	}
	if (s->auth_user != NULL) {
		buf_puts(&b, ",\"auth\":");
		sink_json_str(&b, s->auth_user);
	}
	if (s->proxy_src[0] != '\0') {
		buf_puts(&b, ",\"proxy_source\":");
		sink_json_str(&b, s->proxy_src);
	}
	buf_puts(&b, "}\n");
	fwrite(b.data, 1, b.len, cfg.log_json_fp);
	fflush(cfg.log_json_fp);
	buf_release(&b);
}

/* The end of a message (final "." or BDAT LAST): answer for it. */
static void
end_of_message(struct session *s, uint64_t bytes, int oversize)
{
	const char *ovr;
	size_t mark;
	int code, n = cfg.lmtp ? s->nrcpt : 1;

	for (int i = 0; i < n; i++) {
		if (oversize) {
			code = 552;
			say(s, 552, "5.3.4", "Error: message too large");
		} else {
			code = pick(s, SV_DOT, &ovr, &mark);
			if (code < 0)
				return;
			answer(s, SV_DOT, ovr, mark, NULL);
		}
		if (i > 0)
			continue;
		if (code / 100 == 2) {
			s->nmsgs++;
			sink_stats_message(s->addr, s->ehlo, s->nrcpt, bytes);
			if (cfg.save_dir != NULL)
				save_message(s);
		}
		if (cfg.log_json_fp != NULL)
			log_transaction(s, code, bytes);
	}
	reset_transaction(s);
	if (cfg.exit_after > 0 && sink_stats_messages() >= cfg.exit_after)
		sink_shutdown();
}

/* ---- commands ---- */

static void
send_ehlo(struct session *s, const char *ovr, size_t mark)
{
	struct buf *b = s->paused ? &s->pending : &s->out;

	if (ovr != NULL) {
		answer(s, SV_EHLO, ovr, mark, NULL);
		return;
	}
	buf_appendf(b, "250-%s\r\n", cfg.hostname);
	if (cfg.ext & EXT_PIPELINING)
		buf_puts(b, "250-PIPELINING\r\n");
	if (cfg.ext & EXT_SIZE) {
		if (cfg.max_msg_size > 0)
			buf_appendf(b, "250-SIZE %llu\r\n", (unsigned long long)cfg.max_msg_size);
		else
			buf_puts(b, "250-SIZE\r\n");
	}
	if (cfg.ext & EXT_8BITMIME)
		buf_puts(b, "250-8BITMIME\r\n");
	if (cfg.ext & EXT_SMTPUTF8)
		buf_puts(b, "250-SMTPUTF8\r\n");
	if ((cfg.ext & EXT_STARTTLS) && !s->tls_up)
		buf_puts(b, "250-STARTTLS\r\n");
	if ((cfg.ext & EXT_AUTH) && cfg.auth_users != NULL)
		buf_puts(b, "250-AUTH PLAIN LOGIN\r\n");
	if (cfg.ext & EXT_ENHANCEDSTATUSCODES)
		buf_puts(b, "250-ENHANCEDSTATUSCODES\r\n");
	if (cfg.ext & EXT_DSN)
		buf_puts(b, "250-DSN\r\n");
	if (cfg.ext & EXT_CHUNKING)
		buf_puts(b, "250-CHUNKING\r\n");
	buf_puts(b, "250 HELP\r\n");
	sink_stats_reply(250);
	apply_delay(s, SV_EHLO, mark);
}

static void
set_ehlo(struct session *s, const char *name)
{
	sink_stats_ehlo(s->ehlo, name);
	free(s->ehlo);
	s->ehlo = xstrdup(name);
}

/* Finish AUTH: check the credentials and answer. */
static void
auth_finish(struct session *s, const char *user, const char *pass)
{
	const char *ovr;
	size_t mark;
	int code;

	s->st = ST_CMD;
	if (!sink_auth_check(user, pass)) {
		say(s, 535, "5.7.8", "Error: authentication failed");
		sink_stats_event("auth_failed");
		return;
	}
	code = pick(s, SV_AUTH, &ovr, &mark);
	if (code < 0)
		return;
	if (code / 100 == 2) {
		s->auth_ok = 1;
		free(s->auth_user);
		s->auth_user = xstrdup(user);
		sink_stats_auth(user);
	}
	answer(s, SV_AUTH, ovr, mark, NULL);
}

/* AUTH PLAIN's response: authzid NUL authcid NUL passwd, base64. */
static void
auth_plain(struct session *s, char *arg, size_t len)
{
	int n = sink_b64_decode(arg, len);
	char *user, *pass, *z;

	if (n < 0) {
		s->st = ST_CMD;
		say(s, 501, "5.5.2", "Error: invalid base64 data");
		return;
	}
	z = memchr(arg, '\0', (size_t)n);
	if (z == NULL || (user = z + 1) >= arg + n ||
	    (z = memchr(user, '\0', (size_t)(arg + n - user))) == NULL) {
		s->st = ST_CMD;
		say(s, 535, "5.7.8", "Error: authentication failed");
		return;
	}
	pass = z + 1;
	arg[n] = '\0';
	auth_finish(s, user, pass);
}

static void
auth_line(struct session *s, char *line, size_t len)
{
	int n;

	if (len == 1 && line[0] == '*') {
		s->st = ST_CMD;
		say(s, 501, "5.7.0", "Authentication aborted");
		return;
	}
	if (s->st == ST_AUTH_PLAIN) {
		auth_plain(s, line, len);
		return;
	}
	n = sink_b64_decode(line, len);
	if (n < 0) {
		s->st = ST_CMD;
		say(s, 501, "5.5.2", "Error: invalid base64 data");
		return;
	}
	line[n] = '\0';
	if (s->st == ST_AUTH_LOGIN_USER) {
		free(s->auth_user);
		s->auth_user = xstrdup(line);
		s->st = ST_AUTH_LOGIN_PASS;
		buf_puts(s->paused ? &s->pending : &s->out, "334 UGFzc3dvcmQ6\r\n");
		sink_stats_reply(334);
		return;
	}
	{
		char *user = s->auth_user;

		s->auth_user = NULL;
		auth_finish(s, user != NULL ? user : "", line);
		free(user);
	}
}

static void
cmd_auth(struct session *s, char *arg)
{
	char *ir = strchr(arg, ' ');

	if (!(cfg.ext & EXT_AUTH) || cfg.auth_users == NULL) {
		say(s, 502, "5.5.1", "Error: authentication not enabled");
		return;
	}
	if (s->auth_ok) {
		say(s, 503, "5.5.1", "Error: already authenticated");
		return;
	}
	if (s->in_mail) {
		say(s, 503, "5.5.1", "Error: MAIL transaction in progress");
		return;
	}
	if (ir != NULL)
		*ir++ = '\0';
	if (strcasecmp(arg, "PLAIN") == 0) {
		s->st = ST_AUTH_PLAIN;
		if (ir != NULL && strcmp(ir, "=") != 0) {
			auth_plain(s, ir, strlen(ir));
			return;
		}
		if (ir != NULL) {
			auth_plain(s, ir, 0);
			return;
		}
		buf_puts(s->paused ? &s->pending : &s->out, "334 \r\n");
		sink_stats_reply(334);
	} else if (strcasecmp(arg, "LOGIN") == 0) {
		s->st = ST_AUTH_LOGIN_USER;
		if (ir != NULL) {
			auth_line(s, ir, strlen(ir));
			return;
		}
		buf_puts(s->paused ? &s->pending : &s->out, "334 VXNlcm5hbWU6\r\n");
		sink_stats_reply(334);
	} else {
		say(s, 504, "5.5.4", "Error: unsupported authentication mechanism");
	}
}

/* Record a MAIL or RCPT for --save-dir/--log-json: "path" NUL "parameters" NUL. */
static void
env_add(struct session *s, const struct smtp_cmd *cmd)
{
	if (cfg.save_dir == NULL && cfg.log_json_fp == NULL)
		return;
	buf_append(&s->env, cmd->path, strlen(cmd->path) + 1);
	for (int i = 0; i < cmd->nparams; i++) {
		if (i > 0)
			buf_putc(&s->env, ' ');
		buf_puts(&s->env, cmd->params[i].key);
		if (cmd->params[i].value != NULL) {
			buf_putc(&s->env, '=');
			buf_puts(&s->env, cmd->params[i].value);
		}
	}
	buf_putc(&s->env, '\0');
}

/* Answer one command line (without its terminator). */
static void
command(struct session *s, char *line, size_t len)
{
	struct smtp_cmd cmd;
	const char *ovr;
	size_t mark;
	int code, rc;

	if (s->st != ST_CMD) {
		auth_line(s, line, len);
		return;
	}
	rc = smtp_cmd_parse(line, len, &cmd);
	if (rc == KUMO_ETOOLONG) {
		say(s, 500, "5.5.0", "Error: line too long");
		return;
	}
	if (s->banner_refused && cmd.verb != SMTP_VERB_QUIT) {
		say(s, 503, "5.5.1", "Error: no SMTP service here, send QUIT");
		return;
	}
	switch (cmd.verb) {
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO:
	case SMTP_VERB_LHLO: {
		int v = cmd.verb == SMTP_VERB_HELO ? SV_HELO : SV_EHLO;

		if (cfg.lmtp != (cmd.verb == SMTP_VERB_LHLO)) {
			say(s, 500, "5.5.1", "Error: %s",
			    cfg.lmtp ? "LMTP requires LHLO" : "command not recognized");
			return;
		}
		if (rc != 0 || cmd.arg[0] == '\0') {
			say(s, 501, "5.5.4", "Syntax: %s hostname", smtp_verb_str(cmd.verb));
			return;
		}
		code = pick(s, v, &ovr, &mark);
		if (code < 0)
			return;
		if (code / 100 == 2) {
			reset_transaction(s);
			s->greeted = 1;
			set_ehlo(s, cmd.arg);
		}
		if (v == SV_HELO)
			answer(s, v, ovr, mark, "%s", cfg.hostname);
		else
			send_ehlo(s, ovr, mark);
		return;
	}
	case SMTP_VERB_MAIL: {
		const struct smtp_param *p;

		if (!s->greeted) {
			say(s, 503, "5.5.1", "Error: send %s first",
			    cfg.lmtp ? "LHLO" : "HELO/EHLO");
			return;
		}
		if (s->in_mail) {
			say(s, 503, "5.5.1", "Error: nested MAIL command");
			return;
		}
		if (cfg.require_tls && !s->tls_up) {
			say(s, 530, "5.7.0", "Must issue a STARTTLS command first");
			return;
		}
		if (cfg.require_auth && !s->auth_ok) {
			say(s, 530, "5.7.0", "Authentication required");
			return;
		}
		if (rc != 0) {
			say(s, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
			return;
		}
		p = smtp_cmd_param(&cmd, "SIZE");
		if (p != NULL && p->value != NULL && cfg.max_msg_size > 0 &&
		    strtoull(p->value, NULL, 10) > cfg.max_msg_size) {
			say(s, 552, "5.3.4", "Error: message size exceeds fixed limit");
			return;
		}
		code = pick(s, SV_MAIL, &ovr, &mark);
		if (code < 0)
			return;
		if (code / 100 == 2) {
			reset_transaction(s);
			s->in_mail = 1;
			env_add(s, &cmd);
			if (cfg.log_json_fp != NULL)
				s->t_mail = wall_now();
		}
		answer(s, SV_MAIL, ovr, mark, NULL);
		return;
	}
	case SMTP_VERB_RCPT:
		if (!s->in_mail) {
			say(s, 503, "5.5.1", "Error: need MAIL command");
			return;
		}
		if (rc != 0) {
			say(s, 501, "5.5.4", "Syntax: RCPT TO:<address>");
			return;
		}
		if (cfg.max_rcpt > 0 && s->nrcpt >= cfg.max_rcpt) {
			say(s, 452, "4.5.3", "Error: too many recipients");
			return;
		}
		code = pick(s, SV_RCPT, &ovr, &mark);
		if (code < 0)
			return;
		if (code / 100 == 2) {
			s->nrcpt++;
			env_add(s, &cmd);
		}
		answer(s, SV_RCPT, ovr, mark, NULL);
		return;
	case SMTP_VERB_DATA:
		if (!s->in_mail) {
			say(s, 503, "5.5.1", "Error: need MAIL command");
			return;
		}
		if (s->nrcpt == 0) {
			say(s, 554, "5.5.1", "Error: no valid recipients");
			return;
		}
		code = pick(s, SV_DATA, &ovr, &mark);
		if (code < 0)
			return;
		if (code == 354) {
			s->st = ST_DATA;
			smtp_dot_dec_init(&s->dec);
		}
		answer(s, SV_DATA, ovr, mark, NULL);
		if (code == 354 && cfg.abort_data >= 0) {
			/* Like Postfix -A: stop reading, then 550 and drop. */
			s->st = ST_STALLED;
			start_delay(s, cfg.abort_data, s->out.len);
			say(s, 550, "5.3.0", "Error: DATA aborted");
			s->pending_close = 1;
		}
		return;
	case SMTP_VERB_BDAT:
		if (!(cfg.ext & EXT_CHUNKING)) {
			say(s, 500, "5.5.2", "Error: command not recognized");
			return;
		}
		if (rc != 0) {
			/* Without a size we cannot find the next command: give up on the session.
			 */
			say(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
			s->close_after_flush = 1;
			return;
		}
		s->bdat_bad = !s->in_mail ? 503 : s->nrcpt == 0 ? 554 : 0;
		s->bdat_left = s->bdat_size = cmd.chunk_size;
		s->bdat_last = cmd.last_chunk;
		s->st = ST_BDAT;
		return;
	case SMTP_VERB_RSET:
		code = pick(s, SV_RSET, &ovr, &mark);
		if (code < 0)
			return;
		reset_transaction(s);
		answer(s, SV_RSET, ovr, mark, NULL);
		return;
	case SMTP_VERB_NOOP:
		code = pick(s, SV_NOOP, &ovr, &mark);
		if (code >= 0)
			answer(s, SV_NOOP, ovr, mark, NULL);
		return;
	case SMTP_VERB_VRFY:
		code = pick(s, SV_VRFY, &ovr, &mark);
		if (code >= 0)
			answer(s, SV_VRFY, ovr, mark, NULL);
		return;
	case SMTP_VERB_EXPN:
		say(s, 502, "5.5.1", "Error: EXPN not implemented");
		return;
	case SMTP_VERB_HELP:
		say(s, 214, "2.0.0", "smtp-sink: see smtp-sink(1)");
		return;
	case SMTP_VERB_QUIT:
		code = pick(s, SV_QUIT, &ovr, &mark);
		if (code < 0)
			return;
		s->close_after_flush = 1;
		s->linger = 1;
		answer(s, SV_QUIT, ovr, mark, NULL);
		return;
	case SMTP_VERB_STARTTLS:
		if (!(cfg.ext & EXT_STARTTLS)) {
			say(s, 502, "5.5.1", "Error: command not implemented");
			return;
		}
		if (s->tls_up) {
			say(s, 503, "5.5.1", "Error: TLS already active");
			return;
		}
		if (cmd.arg[0] != '\0') {
			say(s, 501, "5.5.4", "Syntax: STARTTLS");
			return;
		}
		if (s->ipos < s->ilen) {
			/* LAB.md: bytes after STARTTLS in the same read are an injection attempt.
			 */
			say(s, 554, "5.5.1", "Error: command pipelined after STARTTLS");
			sink_stats_event("starttls_pipelined");
			s->close_after_flush = 1;
			return;
		}
		code = pick(s, SV_STARTTLS, &ovr, &mark);
		if (code < 0)
			return;
		if (code / 100 == 2)
			s->tls_start_after_flush = 1;
		answer(s, SV_STARTTLS, ovr, mark, NULL);
		return;
	case SMTP_VERB_AUTH: {
		/* cmd.arg points into line (ours to modify) unless it is the empty constant. */
		static char empty[1];
		size_t off = (size_t)(cmd.arg - (const char *)line);

		empty[0] = '\0';
		cmd_auth(s, cmd.arg >= (const char *)line && off <= len ? line + off : empty);
		return;
	}
	default:
		say(s, 500, "5.5.2", "Error: command not recognized");
		return;
	}
}

/* The chunk of a BDAT was read: answer it. */
static void
bdat_done(struct session *s, uint64_t size)
{
	const char *ovr;
	size_t mark;
	int code;

	s->st = ST_CMD;
	if (s->bdat_bad) {
		if (s->bdat_bad == 503)
			say(s, 503, "5.5.1", "Error: need MAIL command");
		else
			say(s, 554, "5.5.1", "Error: no valid recipients");
		return;
	}
	s->msg_bytes += size;
	code = pick(s, SV_BDAT, &ovr, &mark);
	if (code < 0)
		return;
	if (ovr != NULL) {
		answer(s, SV_BDAT, ovr, mark, NULL);
		if (code / 100 != 2)
			reset_transaction(s);
		return;
	}
	if (s->bdat_last) {
		/* The BDAT row's delay (if any) is applied by answer() for DOT, not here. */
		end_of_message(s, s->msg_bytes,
		               cfg.max_msg_size > 0 && s->msg_bytes > cfg.max_msg_size);
		return;
	}
	answer(s, SV_BDAT, NULL, mark, "%llu octets received", (unsigned long long)size);
}

/* ---- input ---- */

static void
banner(struct session *s)
{
	const char *ovr;
	size_t mark;
	int code = pick(s, SV_CONNECT, &ovr, &mark);

	s->st = ST_CMD;
	if (code < 0)
		return;
	if (code / 100 == 4)
		s->close_after_flush = 1;
	else if (code / 100 == 5)
		s->banner_refused = 1;
	answer(s, SV_CONNECT, ovr, mark, "%s %s", cfg.hostname,
	       cfg.lmtp ? "LMTP smtp-sink" : "ESMTP smtp-sink");
}

static void tls_begin(struct session *s);

/* Answer everything complete in the input buffer; stop at a delay or a close. */
static void
process_input(struct session *s)
{
	while (!s->closing && !s->paused && !s->close_after_flush && !s->tls_start_after_flush &&
	       s->out.len < OUT_HIGH) {
		char *p = s->ibuf + s->ipos;
		size_t avail = s->ilen - s->ipos, n, linelen;
		int rc;

		if (s->st == ST_DATA) {
			struct buf *out = cfg.save_dir != NULL ? &s->msg : NULL;

			if (avail == 0)
				break;
			rc = smtp_dot_decode(&s->dec, p, avail, out, &n);
			s->ipos += n;
			if (rc != 1)
				break;
			s->st = ST_CMD;
			s->msg_over = s->dec.overflow;
			end_of_message(s, s->dec.octets,
			               cfg.max_msg_size > 0 && s->dec.octets > cfg.max_msg_size);
			continue;
		}
		if (s->st == ST_BDAT) {
			n = avail < s->bdat_left ? avail : (size_t)s->bdat_left;
			if (cfg.save_dir != NULL && !s->bdat_bad && buf_append(&s->msg, p, n) != 0)
				s->msg_over = 1;
			s->ipos += n;
			s->bdat_left -= n;
			if (s->bdat_left > 0)
				break;
			bdat_done(s, s->bdat_size);
			continue;
		}
		if (s->st == ST_PROXY || s->st == ST_HANDSHAKE || s->st == ST_STALLED ||
		    s->st == ST_LINGER)
			break;
		if (avail == 0)
			break;
		if (s->skip_line) {
			char *lf = memchr(p, '\n', avail);

			if (lf == NULL) {
				s->ipos = s->ilen;
				break;
			}
			s->ipos += (size_t)(lf - p) + 1;
			s->skip_line = 0;
			continue;
		}
		rc = smtp_line_next(p, avail, cfg.line_max, &linelen, &n);
		if (rc == KUMO_EAGAIN)
			break;
		if (rc == KUMO_ETOOLONG) {
			say(s, 500, "5.5.0", "Error: line too long");
			sink_stats_event("line_too_long");
			s->skip_line = 1;
			continue;
		}
		if (rc != 0) {
			s->close_after_flush = 1;
			break;
		}
		s->ipos += n;
		command(s, p, linelen);
	}
	if (s->ipos == s->ilen) {
		s->ipos = s->ilen = 0;
	} else if (s->ipos > 0 && s->ilen - s->ipos < s->isize / 2) {
		memmove(s->ibuf, s->ibuf + s->ipos, s->ilen - s->ipos);
		s->ilen -= s->ipos;
		s->ipos = 0;
	}
}

/* ---- TLS transport on our fd (serves bytes read before the handshake first) ---- */

static ssize_t
tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	struct session *s = ptr;
	ssize_t n;

	if (s->pre_off < s->pre_len) {
		size_t k = s->pre_len - s->pre_off;

		if (k > len)
			k = len;
		memcpy(data, s->pre + s->pre_off, k);
		s->pre_off += k;
		return (ssize_t)k;
	}
	n = recv(s->fd, data, len, 0);
	if (n < 0)
		gnutls_transport_set_errno(s->tls, errno == EWOULDBLOCK ? EAGAIN : errno);
	return n;
}

static ssize_t
tls_push(gnutls_transport_ptr_t ptr, const void *data, size_t len)
{
	struct session *s = ptr;
	ssize_t n = send(s->fd, data, len, MSG_NOSIGNAL);

	if (n < 0)
		gnutls_transport_set_errno(s->tls, errno == EWOULDBLOCK ? EAGAIN : errno);
	return n;
}

static int
tls_pull_timeout(gnutls_transport_ptr_t ptr, unsigned int ms)
{
	struct session *s = ptr;
	struct pollfd pfd = {.fd = s->fd, .events = POLLIN};

	if (s->pre_off < s->pre_len)
		return 1;
	(void)ms; /* never block the loop */
	return poll(&pfd, 1, 0);
}

static void
tls_handshake(struct session *s)
{
	int rc = gnutls_handshake(s->tls);

	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
		update_poll(s);
		return;
	}
	if (rc < 0) {
		log_debug("session %llu: client=%s TLS handshake failed: %s",
		          (unsigned long long)s->id, s->addr, gnutls_strerror(rc));
		sink_stats_event("tls_handshake_failed");
		session_close(s);
		return;
	}
	s->tls_up = 1;
	free(s->pre);
	s->pre = NULL;
	s->pre_len = s->pre_off = 0;
	sink_stats_tls(gnutls_protocol_get_name(gnutls_protocol_get_version(s->tls)),
	               gnutls_ciphersuite_get(s->tls));
	if (gnutls_certificate_get_peers(s->tls, &(unsigned){0}) != NULL)
		sink_stats_event("tls_client_certificate");
	/* RFC 3207: forget everything learnt before TLS. */
	reset_transaction(s);
	s->greeted = 0;
	s->auth_ok = 0;
	free(s->auth_user);
	s->auth_user = NULL;
	s->st = ST_CMD;
	if (s->implicit_tls)
		banner(s);
	process_input(s);
	flush(s);
}

static void
tls_begin(struct session *s)
{
	if (sink_tls_session(&s->tls, s->fd) != 0) {
		session_close(s);
		return;
	}
	gnutls_transport_set_ptr(s->tls, s);
	gnutls_transport_set_pull_function(s->tls, tls_pull);
	gnutls_transport_set_push_function(s->tls, tls_push);
	gnutls_transport_set_pull_timeout_function(s->tls, tls_pull_timeout);
	s->st = ST_HANDSHAKE;
	tls_handshake(s);
}

/* ---- output ---- */

static void
flush(struct session *s)
{
	if (s->closing)
		return;
	while (s->out.len > 0) {
		ssize_t n;

		if (s->tls_up) {
			if (s->tls_wpending > 0)
				n = gnutls_record_send(s->tls, NULL, 0);
			else
				n = gnutls_record_send(s->tls, s->out.data, s->out.len);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
				if (s->tls_wpending == 0)
					s->tls_wpending = s->out.len < 16384 ? s->out.len : 16384;
				break;
			}
			s->tls_wpending = 0;
			if (n < 0) {
				session_close(s);
				return;
			}
		} else {
			n = send(s->fd, s->out.data, s->out.len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
					break;
				session_close(s);
				return;
			}
		}
		buf_drain(&s->out, (size_t)n);
	}
	if (s->out.len == 0) {
		if (s->close_after_flush && s->linger) {
			/*
			 * Wait for the client's FIN so that TIME-WAIT stays on its side:
			 * a server that closes first keeps the 4-tuple in TIME-WAIT and
			 * a fast client reusing its port then waits a SYN retransmit.
			 */
			s->close_after_flush = 0;
			s->st = ST_LINGER;
			if (s->tls_up)
				gnutls_bye(s->tls, GNUTLS_SHUT_WR); /* close_notify; no wait */
			session_done(s);
			uv_timer_start(&s->idle, on_idle, LINGER_MS, 0);
			s->idle_armed = 0;
		} else if (s->close_after_flush) {
			session_close(s);
			return;
		}
		if (s->tls_start_after_flush) {
			s->tls_start_after_flush = 0;
			tls_begin(s);
			return;
		}
	}
	update_poll(s);
}

static void
update_poll(struct session *s)
{
	int ev = 0;

	if (s->closing)
		return;
	if (s->st == ST_HANDSHAKE) {
		ev = gnutls_record_get_direction(s->tls) ? UV_WRITABLE : UV_READABLE;
	} else {
		if (s->out.len > 0)
			ev |= UV_WRITABLE;
		else if (!s->close_after_flush && s->st != ST_STALLED && s->ilen < s->isize)
			ev |= UV_READABLE;
	}
	if (ev == s->events)
		return;
	s->events = ev;
	if (ev == 0)
		uv_poll_stop(&s->poll);
	else
		uv_poll_start(&s->poll, ev, on_poll);
}

/* Read what is there (one chunk); 0, or -1 when the session closed. */
static int
read_some(struct session *s)
{
	size_t room;
	ssize_t n;

	if (s->ipos > 0 && s->ipos == s->ilen)
		s->ipos = s->ilen = 0;
	room = s->isize - s->ilen;
	if (room == 0)
		return 0;
	if (s->tls_up) {
		for (;;) {
			n = gnutls_record_recv(s->tls, s->ibuf + s->ilen, room);
			if (n > 0) {
				s->ilen += (size_t)n;
				room -= (size_t)n;
				if (room > 0 && gnutls_record_check_pending(s->tls) > 0)
					continue;
				break;
			}
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				break;
			if (n < 0 && !gnutls_error_is_fatal((int)n))
				continue;
			s->eof = 1;
			break;
		}
	} else {
		n = recv(s->fd, s->ibuf + s->ilen, room, 0);
		if (n > 0)
			s->ilen += (size_t)n;
		else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			s->eof = 1;
	}
	if (s->eof) {
		session_close(s);
		return -1;
	}
	return 0;
}

static void
proxy_input(struct session *s)
{
	int rc =
	    sink_proxy_parse((unsigned char *)s->ibuf, s->ilen, s->proxy_src, sizeof(s->proxy_src));

	if (rc == KUMO_EAGAIN)
		return;
	if (rc < 0) {
		sink_stats_event("proxy_bad_header");
		session_close(s);
		return;
	}
	sink_stats_proxy(s->proxy_src);
	s->ipos = (size_t)rc;
	if (s->implicit_tls) {
		s->pre_len = s->ilen - s->ipos;
		s->pre = xmalloc(s->pre_len + 1);
		memcpy(s->pre, s->ibuf + s->ipos, s->pre_len);
		s->ipos = s->ilen = 0;
		tls_begin(s);
		return;
	}
	banner(s);
	process_input(s);
	flush(s);
}

static uv_idle_t spin;
static int spin_init, spinning;
static uint64_t spin_last;

/*
 * --coalesce: the replies of this turn are out. With several sessions open
 * and no input waiting, pause briefly instead of sleeping in the poller at
 * once. A sleeping poller is woken by the first client write, a cross-CPU
 * wake-up that the writing client pays for (expensive on VMs), and then by
 * the next write, and the next: one wake-up per command. After a pause, one
 * wake-up picks up the commands of many sessions. The pause is at most
 * cfg.coalesce and COALESCE_PER_SESSION per open session, so that a client
 * with few connections, which would sit idle waiting for us, is not held
 * up; it is skipped when input is already waiting (the sink is the
 * bottleneck then and has no reason to sleep).
 */
static void
coalesce_pause(void)
{
	struct pollfd pfd;
	struct timespec ts;
	int n = sink_stats_current();
	double secs;

	if (cfg.coalesce <= 0 || shutting_down || spinning || n < 2)
		return;
	pfd.fd = uv_backend_fd(sink_loop);
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (poll(&pfd, 1, 0) != 0)
		return;
	secs = n * COALESCE_PER_SESSION;
	if (secs > cfg.coalesce)
		secs = cfg.coalesce;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)(secs * 1e9);
	nanosleep(&ts, NULL);
}

/*
 * Write every session's replies once, after the loop has polled and every
 * readable session has answered what it read (libuv's check phase, before
 * the close callbacks, so no listed session has been freed). Writing at the
 * end of the turn lets a client with many connections find several replies
 * per wake-up instead of being woken once per reply.
 */
static void
on_flush_check(uv_check_t *h)
{
	(void)h;
	while (flush_list != NULL) {
		struct session *s = flush_list;

		flush_list = s->flush_next;
		if (flush_list == NULL)
			flush_tail = &flush_list;
		s->flush_next = NULL;
		s->flush_queued = 0;
		flush(s);
	}
	uv_check_stop(&flush_check);
	coalesce_pause();
}

/* --busy-poll: keep polling without sleeping for a while after each read. */
static void
on_spin(uv_idle_t *h)
{
	(void)h;
	if (uv_hrtime() - spin_last > (uint64_t)(cfg.busy_poll * 1e9)) {
		uv_idle_stop(&spin);
		spinning = 0;
	}
}

static void
spin_kick(void)
{
	if (cfg.busy_poll <= 0 || shutting_down)
		return;
	spin_last = uv_hrtime();
	if (!spin_init) {
		uv_idle_init(sink_loop, &spin);
		spin_init = 1;
	}
	if (!spinning) {
		uv_idle_start(&spin, on_spin);
		spinning = 1;
	}
}

static void
schedule_flush(struct session *s)
{
	if (s->flush_queued || s->closing)
		return;
	if (!flush_check_init) {
		uv_check_init(sink_loop, &flush_check);
		flush_check_init = 1;
	}
	if (flush_list == NULL)
		uv_check_start(&flush_check, on_flush_check);
	s->flush_queued = 1;
	s->flush_next = NULL;
	*flush_tail = s;
	flush_tail = &s->flush_next;
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct session *s = h->data;

	if (s->closing)
		return;
	if (status < 0) {
		session_close(s);
		return;
	}
	if (s->st == ST_HANDSHAKE) {
		tls_handshake(s);
		return;
	}
	if (events & UV_WRITABLE) {
		flush(s);
		if (s->closing)
			return;
		if (s->out.len > 0)
			return;
	}
	if (events & UV_READABLE) {
		if (read_some(s) < 0)
			return;
		if (s->st == ST_LINGER) {
			s->ipos = s->ilen = 0;
			return;
		}
		idle_restart(s);
		spin_kick();
		if (s->st == ST_PROXY) {
			proxy_input(s);
			return;
		}
	}
	process_input(s);
	schedule_flush(s);
}

/* ---- life cycle ---- */

static void
on_handle_closed(uv_handle_t *h)
{
	struct session *s = h->data;

	if (--s->handles > 0)
		return;
	if (s->tls != NULL)
		gnutls_deinit(s->tls);
	close(s->fd);
	free(s->pre);
	free(s->ehlo);
	free(s->auth_user);
	buf_release(&s->pending);
	buf_release(&s->msg);
	buf_release(&s->env);
	if (npool < POOL_MAX && !shutting_down) {
		/* Keep it: the next accept gets it without malloc and page faults. */
		if (s->out.alloc > OUT_KEEP)
			buf_release(&s->out);
		else
			buf_reset(&s->out);
		s->next = pool;
		pool = s;
		npool++;
		return;
	}
	free(s->ibuf);
	buf_release(&s->out);
	free(s);
}

/* A zeroed session with its input buffer, from the pool when there is one. */
static struct session *
session_alloc(void)
{
	struct session *s = pool;
	struct buf out;
	char *ibuf;
	size_t isize;

	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->isize = READ_CHUNK > 2 * cfg.line_max ? READ_CHUNK : 2 * cfg.line_max;
		s->ibuf = xmalloc(s->isize + 1);
		buf_init(&s->out, 0);
		return s;
	}
	pool = s->next;
	npool--;
	ibuf = s->ibuf;
	isize = s->isize;
	out = s->out;
	memset(s, 0, sizeof(*s));
	s->ibuf = ibuf;
	s->isize = isize;
	s->out = out;
	return s;
}

/*
 * The session is over for the client: count it out and make room under
 * --max-clients. Called when QUIT is answered (the socket lingers a little
 * longer, see flush) or at close, whichever comes first.
 */
static void
session_done(struct session *s)
{
	if (s->dead)
		return;
	s->dead = 1;
	log_debug("session %llu: done client=%s ehlo=%s messages=%llu", (unsigned long long)s->id,
	          s->addr, s->ehlo != NULL ? s->ehlo : "-", (unsigned long long)s->nmsgs);
	sink_stats_conn_close(s->addr, s->ehlo, s->nmsgs);
	if (cfg.counter)
		sink_stats_counter(0);
	if (!shutting_down && (cfg.max_clients == 0 || sink_stats_current() < cfg.max_clients))
		sink_listeners_pause(0);
}

static void
session_close(struct session *s)
{
	if (s->closing)
		return;
	s->closing = 1;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	session_done(s);
	/* uv_close() stops the poll (one epoll_ctl); stopping it first would cost another. */
	uv_close((uv_handle_t *)&s->poll, on_handle_closed);
	uv_close((uv_handle_t *)&s->idle, on_handle_closed);
	uv_close((uv_handle_t *)&s->delay, on_handle_closed);
}

void
sink_session_start(int fd, const struct sockaddr *sa, int tls)
{
	static uint64_t next_id;
	struct session *s = session_alloc();

	s->id = ++next_id;
	s->fd = fd;
	s->implicit_tls = tls;
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)(const void *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr))
			inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], s->addr, sizeof(s->addr));
		else
			inet_ntop(AF_INET6, &a6->sin6_addr, s->addr, sizeof(s->addr));
	} else if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		          s->addr, sizeof(s->addr));
	} else {
		memcpy(s->addr, "unknown", 8);
	}
	buf_init(&s->pending, 0);
	buf_init(&s->msg, cfg.max_msg_size > 0 ? cfg.max_msg_size : 0);
	buf_init(&s->env, 1 << 20);
	uv_poll_init_socket(sink_loop, &s->poll, fd);
	uv_timer_init(sink_loop, &s->idle);
	uv_timer_init(sink_loop, &s->delay);
	s->poll.data = s->idle.data = s->delay.data = s;
	s->handles = 3;
	s->next = sessions;
	if (sessions != NULL)
		sessions->prev = s;
	sessions = s;
	sink_stats_conn_open(s->addr);
	log_debug("session %llu: connect client=%s%s", (unsigned long long)s->id, s->addr,
	          tls ? " tls=implicit" : "");
	idle_restart(s);

	if (cfg.proxy) {
		s->st = ST_PROXY;
		update_poll(s);
		return;
	}
	if (tls) {
		tls_begin(s);
		return;
	}
	banner(s);
	flush(s);
}

void
sink_session_close_all(void)
{
	shutting_down = 1;
	while (sessions != NULL)
		session_close(sessions);
	flush_list = NULL;
	flush_tail = &flush_list;
	if (spin_init)
		uv_close((uv_handle_t *)&spin, NULL);
	if (flush_check_init)
		uv_close((uv_handle_t *)&flush_check, NULL);
}

void
sink_session_deinit(void)
{
	while (pool != NULL) {
		struct session *s = pool;

		pool = s->next;
		free(s->ibuf);
		buf_release(&s->out);
		free(s);
	}
	npool = 0;
}
