/*
 * conn.c: one non-blocking TCP connection on a libuv loop, plain or TLS.
 *
 * The socket is ours (socket/bind/connect or an accepted fd) and watched by
 * a uv_poll_t, so GnuTLS can run directly on it (gnutls_transport_set_int)
 * and a source address can be bound before connecting. Three handles are
 * embedded: the poll, the phase timer, and an idle "kick" that runs work
 * deferred to the next loop turn (starting a handshake, reporting a write
 * error found inside conn_flush, reading TLS bytes GnuTLS already holds) so
 * that no user callback ever runs inside a call the user made.
 *
 * GnuTLS nonblocking rules followed here: after GNUTLS_E_AGAIN the poll
 * direction comes from gnutls_record_get_direction(); a send is retried
 * with the same bytes and length; decrypted bytes GnuTLS still buffers
 * (gnutls_record_check_pending) are read before waiting on the socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <uv.h>

#include "buf.h"
#include "conn.h"
#include "kumo.h"
#include "log.h"
#include "tls.h"

/* How much one read or one TLS record write moves at most. */
#define CONN_READ_CHUNK 65536
#define CONN_READ_ROUND (256 * 1024)
#define CONN_TLS_CHUNK 16384

enum conn_state {
	CONN_NEW = 0,
	CONN_CONNECTING,
	CONN_OPEN,
	CONN_HANDSHAKE,
	CONN_FAILED,
	CONN_CLOSING,
};

struct conn {
	uv_loop_t *loop;
	uv_poll_t poll;
	uv_timer_t timer;
	uv_idle_t kick;
	int fd;
	int poll_init;
	int handles; /* handles still open while closing */
	enum conn_state state;
	struct conn_cbs cbs;
	void *arg;

	struct buf rbuf;
	struct buf wbuf;
	size_t woff; /* wbuf.data[0..woff) was already sent */
	int reading;
	unsigned events; /* what the poll watches now */

	/* deferred work for the kick handle */
	int kick_handshake;
	int kick_read;
	int eof_pending; /* EOF seen while the owner had paused reading */
	int kick_err;
	int kick_drain;

	gnutls_session_t tls;
	int tls_up;
	int tls_verify;
	conn_tls_cb tls_cb;
	size_t plain_left;	 /* queued clear-text bytes still to send before the handshake */
	size_t tls_send_len;	 /* a record send that returned AGAIN: retry this length */
	int tls_read_wants_write; /* a recv returned AGAIN wanting to write */
	char *err_text;

	struct sockaddr_storage peer;
	struct sockaddr_storage local;
};

static void conn_poll_cb(uv_poll_t *h, int status, int events);
static void conn_timer_cb(uv_timer_t *h);
static void conn_kick_cb(uv_idle_t *h);
static void conn_handle_closed(uv_handle_t *h);
static void do_read(struct conn *c);
static int do_flush(struct conn *c);
static void do_handshake(struct conn *c);

struct conn *
conn_new(uv_loop_t *loop, const struct conn_cbs *cbs, void *arg)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->loop = loop;
	c->fd = -1;
	if (cbs != NULL)
		c->cbs = *cbs;
	c->arg = arg;
	c->reading = 1;
	buf_init(&c->rbuf, CONN_READ_MAX_DEFAULT);
	buf_init(&c->wbuf, 0);
	uv_timer_init(loop, &c->timer);
	uv_idle_init(loop, &c->kick);
	c->timer.data = c;
	c->kick.data = c;
	c->poll.data = c;
	return c;
}

static socklen_t
sa_len(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return sizeof(struct sockaddr_in);
	if (sa->sa_family == AF_INET6)
		return sizeof(struct sockaddr_in6);
	return 0;
}

static void
set_err_text(struct conn *c, const char *text)
{
	free(c->err_text);
	c->err_text = xstrdup(text);
}

const char *
conn_error_text(const struct conn *c)
{
	return c->err_text ? c->err_text : "";
}

/* Make the poll watch what the current state needs. */
static void
update_poll(struct conn *c)
{
	unsigned ev = 0;

	if (!c->poll_init || c->state == CONN_CLOSING)
		return;
	switch (c->state) {
	case CONN_CONNECTING:
		ev = UV_WRITABLE;
		break;
	case CONN_HANDSHAKE:
		if (c->plain_left > 0)
			ev = UV_WRITABLE; /* plain bytes (a server's 220) go before the handshake */
		else
			ev = gnutls_record_get_direction(c->tls) ? UV_WRITABLE : UV_READABLE;
		break;
	case CONN_OPEN:
		if (c->reading && !c->eof_pending)
			ev |= UV_READABLE;
		if (c->wbuf.len > c->woff || c->tls_send_len > 0 || c->tls_read_wants_write)
			ev |= UV_WRITABLE;
		break;
	default:
		ev = 0;
		break;
	}
	if (ev == c->events)
		return;
	c->events = ev;
	if (ev == 0)
		uv_poll_stop(&c->poll);
	else
		uv_poll_start(&c->poll, (int)ev, conn_poll_cb);
}

static void
kick(struct conn *c)
{
	if (c->state != CONN_CLOSING)
		uv_idle_start(&c->kick, conn_kick_cb);
}

/* The connection is dead: stop watching and tell the owner once. */
static void
fail(struct conn *c, int err)
{
	if (c->state == CONN_FAILED || c->state == CONN_CLOSING)
		return;
	c->state = CONN_FAILED;
	update_poll(c);
	uv_timer_stop(&c->timer);
	if (c->err_text == NULL)
		set_err_text(c, kumo_strerror(err));
	if (c->cbs.on_error != NULL)
		c->cbs.on_error(c, err, c->arg);
}

int
conn_connect(struct conn *c, const struct sockaddr *peer, const struct sockaddr *source,
	     unsigned timeout_ms)
{
	socklen_t len = sa_len(peer);
	int fd, one = 1, r;

	if (c->state != CONN_NEW)
		return KUMO_EINVAL;
	if (len == 0 || (source != NULL && source->sa_family != peer->sa_family))
		return UV_EAFNOSUPPORT;
	fd = socket(peer->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (source != NULL && bind(fd, source, sa_len(source)) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	r = uv_poll_init_socket(c->loop, &c->poll, fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	c->poll_init = 1;
	c->poll.data = c;
	c->fd = fd;
	memcpy(&c->peer, peer, len);
	if (connect(fd, peer, len) < 0 && errno != EINPROGRESS) {
		r = -errno;
		c->state = CONN_FAILED;
		return r;
	}
	c->state = CONN_CONNECTING;
	if (timeout_ms > 0)
		uv_timer_start(&c->timer, conn_timer_cb, timeout_ms, 0);
	update_poll(c);
	return 0;
}

int
conn_accept(struct conn *c, int fd)
{
	socklen_t len;
	int flags, one = 1, r;

	if (c->state != CONN_NEW) {
		close(fd);
		return KUMO_EINVAL;
	}
	c->fd = fd;
	c->state = CONN_FAILED;
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	len = sizeof(c->peer);
	(void)getpeername(fd, (struct sockaddr *)&c->peer, &len);
	len = sizeof(c->local);
	(void)getsockname(fd, (struct sockaddr *)&c->local, &len);
	r = uv_poll_init_socket(c->loop, &c->poll, fd);
	if (r < 0)
		return r;
	c->poll_init = 1;
	c->poll.data = c;
	c->state = CONN_OPEN;
	update_poll(c);
	return 0;
}

void
conn_set_timeout(struct conn *c, unsigned ms)
{
	if (c->state == CONN_CLOSING)
		return;
	if (ms == 0)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, conn_timer_cb, ms, 0);
}

void
conn_set_read_max(struct conn *c, size_t max)
{
	if (max < c->rbuf.len)
		max = c->rbuf.len;
	(void)buf_set_max(&c->rbuf, max);
}

void
conn_read_stop(struct conn *c)
{
	c->reading = 0;
	update_poll(c);
}

void
conn_read_start(struct conn *c)
{
	if (c->reading)
		return;
	c->reading = 1;
	update_poll(c);
	/*
	 * From the loop: hand over what is still buffered (ours, or decrypted
	 * bytes GnuTLS holds that the socket will never announce), then any
	 * EOF that arrived while paused.
	 */
	if (c->rbuf.len > 0 || c->eof_pending || (c->tls_up && gnutls_record_check_pending(c->tls) > 0)) {
		c->kick_read = 1;
		kick(c);
	}
}

struct buf *
conn_rbuf(struct conn *c)
{
	return &c->rbuf;
}

int
conn_write(struct conn *c, const void *p, size_t n)
{
	if (c->state != CONN_OPEN && c->state != CONN_HANDSHAKE && c->state != CONN_CONNECTING)
		return KUMO_EINVAL;
	if (n > 0 && buf_append(&c->wbuf, p, n) < 0)
		return KUMO_ENOSPACE;
	update_poll(c);
	return 0;
}

struct buf *
conn_wbuf(struct conn *c)
{
	return &c->wbuf;
}

size_t
conn_pending(const struct conn *c)
{
	return c->wbuf.len - c->woff;
}

/* Forget sent bytes; keep memmove cost low by compacting only now and then. */
static void
wbuf_consumed(struct conn *c, size_t n)
{
	c->woff += n;
	if (c->woff >= c->wbuf.len) {
		buf_reset(&c->wbuf);
		c->woff = 0;
	} else if (c->woff > 65536 && c->woff > (c->wbuf.len - c->woff)) {
		buf_drain(&c->wbuf, c->woff);
		c->woff = 0;
	}
}

/* Send at most limit queued bytes in clear text, as far as the kernel takes them. 0 or a negative errno. */
static int
flush_plain_n(struct conn *c, size_t *limit)
{
	while (c->wbuf.len > c->woff && *limit > 0) {
		size_t n = c->wbuf.len - c->woff;
		ssize_t r;

		if (n > *limit)
			n = *limit;
		r = send(c->fd, c->wbuf.data + c->woff, n, MSG_NOSIGNAL);
		if (r > 0) {
			wbuf_consumed(c, (size_t)r);
			*limit -= (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return r < 0 ? -errno : UV_EPIPE;
	}
	return 0;
}

static int
flush_plain(struct conn *c)
{
	size_t all = SIZE_MAX;

	return flush_plain_n(c, &all);
}

/* Hand the queue to GnuTLS record by record. 0 or KUMO_ETLS. */
static int
flush_tls(struct conn *c)
{
	while (c->wbuf.len > c->woff) {
		size_t n = c->tls_send_len;
		ssize_t r;

		if (n == 0) {
			n = c->wbuf.len - c->woff;
			if (n > CONN_TLS_CHUNK)
				n = CONN_TLS_CHUNK;
		}
		r = gnutls_record_send(c->tls, c->wbuf.data + c->woff, n);
		if (r > 0) {
			c->tls_send_len = 0;
			wbuf_consumed(c, (size_t)r);
			continue;
		}
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			c->tls_send_len = n; /* GnuTLS wants the same bytes again */
			return 0;
		}
		set_err_text(c, gnutls_strerror((int)r));
		return KUMO_ETLS;
	}
	return 0;
}

/* Flush from the loop: errors go to on_error; on_drain when emptied. */
static int
do_flush(struct conn *c)
{
	size_t before = conn_pending(c);
	int r;

	r = c->tls_up ? flush_tls(c) : flush_plain(c);
	if (r < 0) {
		fail(c, r);
		return r;
	}
	update_poll(c);
	if (before > 0 && conn_pending(c) == 0 && c->cbs.on_drain != NULL && c->state == CONN_OPEN)
		c->cbs.on_drain(c, c->arg);
	return 0;
}

int
conn_flush(struct conn *c)
{
	size_t before;
	int r;

	if (c->state != CONN_OPEN)
		return c->state == CONN_HANDSHAKE || c->state == CONN_CONNECTING ? 0 : KUMO_EINVAL;
	before = conn_pending(c);
	r = c->tls_up ? flush_tls(c) : flush_plain(c);
	if (r < 0) {
		/* Report from the loop, never inside the caller's call. */
		c->kick_err = r;
		kick(c);
		return r;
	}
	update_poll(c);
	if (before > 0 && conn_pending(c) == 0 && c->cbs.on_drain != NULL) {
		c->kick_drain = 1;
		kick(c);
	}
	return 0;
}

/* Read what is there; deliver it; report EOF or errors after the data. */
static void
do_read(struct conn *c)
{
	size_t got = 0;
	int err = 0;

	c->tls_read_wants_write = 0;
	for (;;) {
		size_t room = c->rbuf.max - c->rbuf.len, n;
		char *p;
		ssize_t r;

		if (room == 0) {
			err = KUMO_ENOSPACE;
			break;
		}
		n = room < CONN_READ_CHUNK ? room : CONN_READ_CHUNK;
		p = buf_reserve(&c->rbuf, n);
		if (p == NULL) {
			err = KUMO_ENOSPACE;
			break;
		}
		if (c->tls_up) {
			r = gnutls_record_recv(c->tls, p, n);
			if (r > 0) {
				buf_commit(&c->rbuf, (size_t)r);
				got += (size_t)r;
				if (got >= CONN_READ_ROUND && gnutls_record_check_pending(c->tls) == 0)
					break;
				continue;
			}
			if (r == 0 || r == GNUTLS_E_PREMATURE_TERMINATION) {
				err = UV_EOF;
				break;
			}
			if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
				if (gnutls_record_get_direction(c->tls) == 1)
					c->tls_read_wants_write = 1;
				break;
			}
			if (r == GNUTLS_E_REHANDSHAKE || !gnutls_error_is_fatal((int)r))
				continue; /* refuse renegotiation silently; warnings are not fatal */
			set_err_text(c, gnutls_strerror((int)r));
			err = KUMO_ETLS;
			break;
		}
		r = recv(c->fd, p, n, 0);
		if (r > 0) {
			buf_commit(&c->rbuf, (size_t)r);
			got += (size_t)r;
			if (got >= CONN_READ_ROUND || (size_t)r < n)
				break;
			continue;
		}
		if (r == 0) {
			err = UV_EOF;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			err = -errno;
		break;
	}
	if (err == UV_EOF)
		c->eof_pending = 1;
	update_poll(c);
	if (got > 0 && c->cbs.on_read != NULL)
		c->cbs.on_read(c, &c->rbuf, c->arg);
	if (c->state != CONN_OPEN)
		return;
	/* A paused owner hears of the EOF when it resumes (conn_read_start). */
	if (err == UV_EOF && !c->reading)
		return;
	if (err != 0)
		fail(c, err);
}

int
conn_starttls(struct conn *c, struct tls_ctx *ctx, const struct tls_peer *peer, conn_tls_cb cb)
{
	char *err = NULL;
	int r;

	if (c->state != CONN_OPEN || c->tls != NULL)
		return KUMO_EINVAL;
	if (c->rbuf.len > 0) {
		set_err_text(c, "STARTTLS injection: clear-text bytes followed the STARTTLS exchange");
		return KUMO_EPROTO;
	}
	r = tls_session_new(ctx, peer, &c->tls, &err);
	if (r < 0) {
		set_err_text(c, err ? err : "cannot create a TLS session");
		free(err);
		return r;
	}
	gnutls_transport_set_int(c->tls, c->fd);
	c->tls_verify = !tls_ctx_is_server(ctx) && peer != NULL && peer->verify;
	c->tls_cb = cb;
	c->plain_left = conn_pending(c);
	c->state = CONN_HANDSHAKE;
	c->kick_handshake = 1;
	kick(c);
	return 0;
}

/* The handshake ended (status 0 or an error): report it once. */
static void
handshake_done(struct conn *c, int status)
{
	conn_tls_cb cb = c->tls_cb;

	c->tls_cb = NULL;
	if (status == 0) {
		c->state = CONN_OPEN;
		c->tls_up = 1;
		c->events = (unsigned)-1; /* force a poll update */
		update_poll(c);
		/* Bytes that came with the last handshake flight may never be announced by the socket. */
		c->kick_read = 2;
		kick(c);
	} else {
		c->state = CONN_FAILED;
		update_poll(c);
		uv_timer_stop(&c->timer);
	}
	if (cb != NULL)
		cb(c, status, c->arg);
}

static void
do_handshake(struct conn *c)
{
	int r;

	if (c->plain_left > 0) {
		/* Only what was queued before conn_starttls() goes in clear (a server's 220). */
		r = flush_plain_n(c, &c->plain_left);
		if (r < 0) {
			set_err_text(c, kumo_strerror(r));
			handshake_done(c, r);
			return;
		}
		if (c->plain_left > 0) {
			update_poll(c);
			return;
		}
	}
	for (;;) {
		r = gnutls_handshake(c->tls);
		if (r == 0) {
			handshake_done(c, 0);
			return;
		}
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			c->events = (unsigned)-1;
			update_poll(c);
			return;
		}
		if (!gnutls_error_is_fatal(r))
			continue;
		if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
			struct tls_info info;

			tls_session_info(c->tls, &info);
			if (info.verify_text[0] != '\0') {
				char *t = xasprintf("certificate verification failed: %s", info.verify_text);

				set_err_text(c, t);
				free(t);
			} else {
				set_err_text(c, gnutls_strerror(r));
			}
		} else {
			set_err_text(c, gnutls_strerror(r));
		}
		/*
		 * Tell the peer why (RFC 8446 6.2: bad_certificate, unknown_ca, ...)
		 * rather than just closing. One best-effort try on the non-blocking
		 * socket; the session is over either way.
		 */
		(void)gnutls_alert_send_appropriate(c->tls, r);
		handshake_done(c, KUMO_ETLS);
		return;
	}
}

static void
conn_poll_cb(uv_poll_t *h, int status, int events)
{
	struct conn *c = h->data;

	if (c->state == CONN_CLOSING || c->state == CONN_FAILED)
		return;
	if (status < 0) {
		/* libuv says UV_EBADF for POLLERR; the socket knows the real reason. */
		socklen_t len = sizeof(int);
		int soerr = 0;

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr != 0)
			status = -soerr;
		c->events = 0; /* libuv stopped the watcher */
		set_err_text(c, kumo_strerror(status));
		if (c->state == CONN_CONNECTING) {
			c->state = CONN_FAILED;
			update_poll(c);
			uv_timer_stop(&c->timer);
			if (c->cbs.on_connect != NULL)
				c->cbs.on_connect(c, status, c->arg);
		} else if (c->state == CONN_HANDSHAKE) {
			handshake_done(c, status);
		} else {
			fail(c, status);
		}
		return;
	}
	switch (c->state) {
	case CONN_CONNECTING: {
		socklen_t len = sizeof(int);
		int soerr = 0;

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		uv_timer_stop(&c->timer);
		if (soerr != 0) {
			c->state = CONN_FAILED;
			update_poll(c);
			set_err_text(c, uv_strerror(-soerr));
			if (c->cbs.on_connect != NULL)
				c->cbs.on_connect(c, -soerr, c->arg);
			return;
		}
		len = sizeof(c->local);
		(void)getsockname(c->fd, (struct sockaddr *)&c->local, &len);
		c->state = CONN_OPEN;
		update_poll(c);
		if (c->cbs.on_connect != NULL)
			c->cbs.on_connect(c, 0, c->arg);
		/* Writes queued inside on_connect go out on the next turn. */
		return;
	}
	case CONN_HANDSHAKE:
		do_handshake(c);
		return;
	case CONN_OPEN:
		if ((events & UV_WRITABLE) && (c->wbuf.len > c->woff || c->tls_send_len > 0)) {
			if (do_flush(c) < 0 || c->state != CONN_OPEN)
				return;
		}
		if ((events & UV_READABLE) || c->tls_read_wants_write) {
			if (c->reading)
				do_read(c);
		}
		return;
	default:
		return;
	}
}

static void
conn_timer_cb(uv_timer_t *h)
{
	struct conn *c = h->data;

	if (c->state == CONN_CONNECTING || c->state == CONN_HANDSHAKE || c->state == CONN_OPEN)
		set_err_text(c, "timed out");
	switch (c->state) {
	case CONN_CONNECTING:
		c->state = CONN_FAILED;
		update_poll(c);
		if (c->cbs.on_connect != NULL)
			c->cbs.on_connect(c, KUMO_ETIMEDOUT, c->arg);
		return;
	case CONN_HANDSHAKE:
		handshake_done(c, KUMO_ETIMEDOUT);
		return;
	case CONN_OPEN:
		fail(c, KUMO_ETIMEDOUT);
		return;
	default:
		return;
	}
}

static void
conn_kick_cb(uv_idle_t *h)
{
	struct conn *c = h->data;

	uv_idle_stop(&c->kick);
	if (c->kick_err != 0) {
		int err = c->kick_err;

		c->kick_err = 0;
		c->kick_read = 0;
		fail(c, err);
		return;
	}
	if (c->kick_drain) {
		c->kick_drain = 0;
		if (c->state == CONN_OPEN && conn_pending(c) == 0 && c->cbs.on_drain != NULL) {
			c->cbs.on_drain(c, c->arg);
			if (c->state != CONN_OPEN && c->state != CONN_HANDSHAKE)
				return;
		}
	}
	if (c->kick_handshake) {
		c->kick_handshake = 0;
		if (c->state == CONN_HANDSHAKE)
			do_handshake(c);
		return;
	}
	if (c->kick_read) {
		int force = c->kick_read == 2;

		c->kick_read = 0;
		if (c->state != CONN_OPEN || !c->reading)
			return;
		if (c->rbuf.len > 0 && c->cbs.on_read != NULL) {
			c->cbs.on_read(c, &c->rbuf, c->arg);
			if (c->state != CONN_OPEN || !c->reading)
				return;
		}
		if (c->eof_pending)
			fail(c, UV_EOF);
		else if (force || (c->tls_up && gnutls_record_check_pending(c->tls) > 0))
			do_read(c);
	}
}

int
conn_is_tls(const struct conn *c)
{
	return c->tls_up;
}

gnutls_session_t
conn_tls_session(const struct conn *c)
{
	return c->tls;
}

void
conn_tls_info(const struct conn *c, struct tls_info *info)
{
	tls_session_info(c->tls, info);
	if (!c->tls_up) {
		info->version[0] = '\0';
		info->cipher[0] = '\0';
	}
	info->verified = c->tls_up && c->tls_verify && info->verify_status == 0;
}

const struct sockaddr *
conn_peer(const struct conn *c)
{
	return (const struct sockaddr *)&c->peer;
}

const struct sockaddr *
conn_local(const struct conn *c)
{
	return (const struct sockaddr *)&c->local;
}

char *
conn_addr_str(const struct sockaddr *sa, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN];

	if (outlen == 0)
		return out;
	out[0] = '\0';
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		if (inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host)) != NULL)
			snprintf(out, outlen, "%s:%u", host, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		if (inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host)) != NULL)
			snprintf(out, outlen, "[%s]:%u", host, ntohs(sin6->sin6_port));
	}
	return out;
}

int
conn_fd(const struct conn *c)
{
	return c->fd;
}

uv_loop_t *
conn_loop(const struct conn *c)
{
	return c->loop;
}

void *
conn_arg(const struct conn *c)
{
	return c->arg;
}

void
conn_set_arg(struct conn *c, void *arg)
{
	c->arg = arg;
}

int
conn_is_closing(const struct conn *c)
{
	return c->state == CONN_CLOSING;
}

void
conn_close(struct conn *c)
{
	if (c == NULL || c->state == CONN_CLOSING)
		return;
	if (c->state == CONN_OPEN) {
		/* One best-effort attempt: a final "221" or "QUIT" should not wait for anybody. */
		if (c->tls_up) {
			(void)flush_tls(c);
			(void)gnutls_bye(c->tls, GNUTLS_SHUT_WR);
		} else {
			(void)flush_plain(c);
		}
	}
	c->state = CONN_CLOSING;
	c->handles = 2;
	uv_timer_stop(&c->timer);
	uv_idle_stop(&c->kick);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
	uv_close((uv_handle_t *)&c->kick, conn_handle_closed);
	if (c->poll_init) {
		c->handles++;
		uv_close((uv_handle_t *)&c->poll, conn_handle_closed);
	}
}

/* The last handle closed: now the fd and the memory can go. */
static void
conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;

	if (--c->handles > 0)
		return;
	if (c->fd >= 0) {
		/*
		 * Unread bytes make close() send a RST, which can destroy what we
		 * sent last (a TLS alert, a QUIT) before the peer reads it: read
		 * what is already here (non-blocking, bounded) so a FIN goes out.
		 */
		char sink[4096];
		int i;

		for (i = 0; i < 16 && recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
			;
		close(c->fd);
	}
	c->fd = -1;
	if (c->cbs.on_close != NULL)
		c->cbs.on_close(c, c->arg);
	if (c->tls != NULL)
		gnutls_deinit(c->tls);
	buf_release(&c->rbuf);
	buf_release(&c->wbuf);
	free(c->err_text);
	free(c);
}
