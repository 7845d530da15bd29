/*
 * conn.h: one non-blocking TCP connection on a libuv loop, with an optional
 * GnuTLS session on the same socket. conn owns the socket (a uv_poll_t on a
 * socket it creates, so it can bind() a source address before connect()
 * and hand the fd to GnuTLS), a read buffer, a write queue, one per-phase
 * timer and the STARTTLS upgrade. Protocol logic lives in the callers
 * (smtp_client.c, the daemon's listener, smtp-sink).
 *
 * Lifetime follows the libuv rules: conn_close() may be called anywhere,
 * including inside a conn callback; the memory is released later, after
 * on_close returns. After conn_close() no callback but on_close fires.
 *
 * Error codes: libuv codes (UV_ECONNREFUSED, UV_EOF, ...) pass through;
 * KUMO_ETIMEDOUT when the phase timer fires, KUMO_ETLS for a failed
 * handshake or TLS record error, KUMO_EPROTO for STARTTLS injection,
 * KUMO_ENOSPACE when the read buffer's cap is crossed.
 */
#ifndef KUMO_CONN_H
#define KUMO_CONN_H

#include <stddef.h>

#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <uv.h>

#include "buf.h"
#include "tls.h"

struct conn;

/* Default cap of the read buffer (conn_set_read_max changes it). */
#define CONN_READ_MAX_DEFAULT (1024 * 1024)

/* The callbacks; arg is the pointer given to conn_new(). Any may be NULL. */
struct conn_cbs {
	/* conn_connect() finished: status 0, or UV_E* / KUMO_ETIMEDOUT. */
	void (*on_connect)(struct conn *c, int status, void *arg);
	/*
	 * New bytes were appended to in (all unconsumed bytes so far; plain
	 * text after TLS decryption). Consume what you parsed with
	 * buf_drain(in, n); what is left stays for the next call.
	 */
	void (*on_read)(struct conn *c, struct buf *in, void *arg);
	/*
	 * The connection failed outside connect/handshake: UV_EOF (peer
	 * closed), an I/O error, KUMO_ETIMEDOUT (the phase timer),
	 * KUMO_ETLS, KUMO_ENOSPACE. Reading has stopped; close the conn.
	 */
	void (*on_error)(struct conn *c, int err, void *arg);
	/* The write queue became empty (everything handed to the kernel). */
	void (*on_drain)(struct conn *c, void *arg);
	/* The conn is closed; its memory is released when this returns. */
	void (*on_close)(struct conn *c, void *arg);
};

/* A STARTTLS handshake finished: status 0, KUMO_ETLS, KUMO_ETIMEDOUT or a UV_E* code. */
typedef void (*conn_tls_cb)(struct conn *c, int status, void *arg);

/* A new, unconnected conn on loop. cbs is copied. Never NULL. */
struct conn *conn_new(uv_loop_t *loop, const struct conn_cbs *cbs, void *arg);

/*
 * Start connecting to peer (AF_INET or AF_INET6), after binding source if
 * it is not NULL (its port is usually 0). timeout_ms bounds the connect
 * (0: no bound). Returns 0 and later calls on_connect exactly once; or a
 * negative code at once (bad family, bind failure such as
 * UV_EADDRNOTAVAIL) with no callback. Reading starts by itself once
 * connected.
 */
int conn_connect(struct conn *c, const struct sockaddr *peer, const struct sockaddr *source,
		 unsigned timeout_ms);

/*
 * Adopt an already connected socket (server side: from accept()). The conn
 * owns fd from now on, even on failure. Made non-blocking; reading starts.
 * 0 or a negative code.
 */
int conn_accept(struct conn *c, int fd);

/*
 * (Re)arm the phase timer: in ms from now, on_error(KUMO_ETIMEDOUT) fires
 * (or the pending on_connect / TLS callback gets KUMO_ETIMEDOUT). 0 stops
 * it. Each call replaces the previous deadline.
 */
void conn_set_timeout(struct conn *c, unsigned ms);

/* Change the read buffer's cap (crossing it gives on_error(KUMO_ENOSPACE)). */
void conn_set_read_max(struct conn *c, size_t max);
/*
 * Stop / resume delivering on_read (flow control). Reading starts enabled.
 * On resume, bytes still in the read buffer are offered again through
 * on_read (from the loop), and an EOF that came while paused is reported
 * after them.
 */
void conn_read_stop(struct conn *c);
void conn_read_start(struct conn *c);
/* The read buffer (unconsumed bytes); callers may drain it outside on_read too. */
struct buf *conn_rbuf(struct conn *c);

/*
 * Queue n bytes for sending. Nothing is sent before the next loop turn,
 * so several writes in one callback leave in one batch (conn_flush() sends
 * at once). Allowed while connecting or during a handshake (sent once
 * open). 0, or KUMO_EINVAL if the conn is not open.
 */
int conn_write(struct conn *c, const void *p, size_t n);
/*
 * The write queue itself, for formatting straight into it (dot-stuffing a
 * body). Append only; then call conn_write(c, NULL, 0) to send on the next
 * loop turn, or conn_flush() to send now.
 */
struct buf *conn_wbuf(struct conn *c);
/*
 * Try to send the queue now; what the kernel does not take is sent when the
 * socket is writable. Also call after appending through conn_wbuf(). 0 or
 * a negative code (the error is also reported through on_error).
 */
int conn_flush(struct conn *c);
/* Bytes still queued (not yet handed to the kernel / to GnuTLS). */
size_t conn_pending(const struct conn *c);

/*
 * Upgrade to TLS on this socket (client or server side as ctx says; peer is
 * for clients, may be NULL). The STARTTLS injection defense: if the read
 * buffer still holds bytes (anything that followed the 220, or the
 * STARTTLS command), this fails with KUMO_EPROTO at once and no callback.
 * Otherwise returns 0 and cb is called once when the handshake ends; the
 * phase timer (conn_set_timeout) bounds it. On failure the session is kept
 * so conn_tls_info() can say why (verification text); close the conn.
 * On success on_read carries decrypted bytes from then on. Bytes queued
 * before this call are sent in clear first (a server's "220 Ready");
 * bytes written during the handshake are sent encrypted after it.
 */
int conn_starttls(struct conn *c, struct tls_ctx *ctx, const struct tls_peer *peer, conn_tls_cb cb);

/*
 * A one-line reason for the last failure ("connection refused",
 * "certificate verification failed: ...", "STARTTLS injection: ..."); ""
 * if none. Valid until the next failure or the close.
 */
const char *conn_error_text(const struct conn *c);

/* 1 once a TLS handshake has succeeded on this conn. */
int conn_is_tls(const struct conn *c);
/* The gnutls session (NULL before conn_starttls), for DANE and other checks. */
gnutls_session_t conn_tls_session(const struct conn *c);
/* Session facts; info zeroed ("" everywhere) if there is no session. */
void conn_tls_info(const struct conn *c, struct tls_info *info);

/* The peer's / local address (zeroed storage before connect or accept). */
const struct sockaddr *conn_peer(const struct conn *c);
const struct sockaddr *conn_local(const struct conn *c);
/* "127.0.0.1:25" / "[::1]:25" into out (always terminated). Returns out. */
char *conn_addr_str(const struct sockaddr *sa, char *out, size_t outlen);
/* The socket, or -1. */
int conn_fd(const struct conn *c);
uv_loop_t *conn_loop(const struct conn *c);
/* The arg given to conn_new(), and a way to change it. */
void *conn_arg(const struct conn *c);
void conn_set_arg(struct conn *c, void *arg);

/*
 * Close: stop timers and reading, make one best-effort non-blocking attempt
 * to send what is queued, close the socket. on_close follows from the loop;
 * then the memory is released. Safe inside any conn callback; a second
 * call does nothing.
 */
void conn_close(struct conn *c);
/* 1 once conn_close() has been called. */
int conn_is_closing(const struct conn *c);

#endif
