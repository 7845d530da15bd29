/*
 * proxy.h: the client side of the two forward proxies an egress source can
 * name (seeds 003/004): HAProxy's PROXY protocol (a v2 binary or v1 text
 * header written before SMTP, plus a parser for both forms) and a SOCKS5
 * client handshake (RFC 1928, RFC 1929 username/password).
 *
 * Everything here is a pure byte-level state machine: nothing reads or
 * writes a socket, so conn/smtp_client can drive it on the libuv loop and
 * the tests can feed it canned bytes split anywhere.
 *
 * socks5_proxy_source_address: standard SOCKS5 has no way to choose the
 * proxy's outgoing address. KumoMTA's own proxy (proxy-server) uses a
 * convention we follow: when a source address is set, the client first sends
 * a BIND request naming that address (port 0); the proxy binds a socket to it
 * and answers with one success reply; the CONNECT that follows is made from
 * that socket. (This is not RFC 1928 BIND, which listens and replies twice;
 * a standard server will answer the BIND with an error or a listening
 * address, so only use it against a proxy that follows the convention.)
 */
#ifndef KUMO_PROXY_H
#define KUMO_PROXY_H

#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* ---- HAProxy PROXY protocol ---- */

/* What a PROXY header claimed. */
struct proxy_info {
	int version;                 /* 1 or 2 */
	int local;                   /* v2 LOCAL, v1 UNKNOWN, or a family without addresses */
	struct sockaddr_storage src; /* ss_family AF_UNSPEC when local */
	struct sockaddr_storage dst;
};

/* The v1 text header is at most this long, CRLF included (the spec's limit). */
#define PROXY_V1_MAX 107

/*
 * Append a PROXY v2 header (command PROXY, STREAM, no TLVs) naming src and
 * dst (AF_INET or AF_INET6; a mixed pair is sent as AF_INET6 with the IPv4
 * side v4-mapped). 0, KUMO_EINVAL for another family, KUMO_ENOSPACE.
 */
int proxy_v2_header(struct buf *out, const struct sockaddr *src, const struct sockaddr *dst);
/* The same as a v1 text line: "PROXY TCP4 src dst sport dport\r\n". */
int proxy_v1_header(struct buf *out, const struct sockaddr *src, const struct sockaddr *dst);

/*
 * Parse a v1 or v2 header at the start of data. 0 with *out filled and
 * *consumed the header's length (the bytes after it are the stream's);
 * KUMO_EAGAIN when data is a valid but incomplete prefix; KUMO_EPARSE when it
 * can never become a header. Total: any bytes are safe.
 */
int proxy_header_parse(const char *data, size_t len, struct proxy_info *out, size_t *consumed);

/* ---- SOCKS5 client ---- */

/* SOCKS5 failures (besides KUMO_EPROTO, KUMO_EINVAL, KUMO_ENOSPACE). */
enum socks5_err {
	SOCKS5_EGENERAL = -5201,     /* reply 0x01 */
	SOCKS5_ENOTALLOWED = -5202,  /* reply 0x02 */
	SOCKS5_ENETUNREACH = -5203,  /* reply 0x03 */
	SOCKS5_EHOSTUNREACH = -5204, /* reply 0x04 */
	SOCKS5_ECONNREFUSED = -5205, /* reply 0x05 */
	SOCKS5_ETTLEXPIRED = -5206,  /* reply 0x06 */
	SOCKS5_ECMDUNSUPP = -5207,   /* reply 0x07 */
	SOCKS5_EATYPUNSUPP = -5208,  /* reply 0x08 */
	SOCKS5_EREPLY = -5209,       /* an unassigned reply code */
	SOCKS5_ENOMETHOD = -5220,    /* method 0xFF: none of ours acceptable */
	SOCKS5_EAUTH = -5221,        /* RFC 1929 status != 0 */
};

enum socks5_state {
	SOCKS5_INIT,    /* socks5_start() not called yet */
	SOCKS5_METHOD,  /* greeting sent, waiting for the method choice */
	SOCKS5_AUTH,    /* RFC 1929 request sent */
	SOCKS5_BIND,    /* source-address BIND sent (KumoMTA convention) */
	SOCKS5_CONNECT, /* CONNECT sent */
	SOCKS5_READY,   /* tunnel open */
	SOCKS5_FAILED,
};

/* A SOCKS5 address: ATYP 1 (IPv4), 3 (domain name) or 4 (IPv6), and a port. */
struct socks5_addr {
	int atyp;
	unsigned char ip[16]; /* 4 or 16 bytes used */
	char domain[256];     /* NUL-terminated, atyp 3 */
	uint16_t port;
};

struct socks5_client {
	enum socks5_state state;
	struct socks5_addr target;
	int has_source;
	struct socks5_addr source; /* socks5_proxy_source_address, port 0 */
	int has_auth;
	char user[256], pass[256];
	size_t user_len, pass_len;
	int method;                   /* the method the server chose */
	int reply;                    /* last REP code seen, -1 before any */
	int error;                    /* the error once FAILED */
	struct socks5_addr bind_addr; /* BND of the BIND reply */
	struct socks5_addr bound;     /* BND of the CONNECT reply */
	unsigned char msg[262 + 8];   /* the server message being assembled */
	size_t msg_len;
};

#define SOCKS5_ATYP_IPV4 1
#define SOCKS5_ATYP_DOMAIN 3
#define SOCKS5_ATYP_IPV6 4

/*
 * Set up a handshake to host (an IPv4 or IPv6 literal, IPv6 optionally in
 * brackets, else a domain name of 1..255 bytes) and port; user and pass
 * (both or neither, 1..255 bytes each) enable RFC 1929. 0 or KUMO_EINVAL.
 */
int socks5_init(struct socks5_client *c, const char *host, uint16_t port, const char *user,
                const char *pass);
/* Ask the proxy to connect from this IP literal (KumoMTA's BIND convention). */
int socks5_set_source(struct socks5_client *c, const char *addr);
/* Append the greeting (method offer) to out. 0, KUMO_EINVAL if not INIT, KUMO_ENOSPACE. */
int socks5_start(struct socks5_client *c, struct buf *out);
/*
 * Consume server bytes. May append the next request to out. Returns 0 (all
 * len bytes consumed, need more), 1 (tunnel ready: *consumed stops at the end
 * of the CONNECT reply and any later bytes are the tunnel's), or a negative
 * code (see socks5_error_str); a failed client stays failed.
 */
int socks5_feed(struct socks5_client *c, const char *in, size_t len, struct buf *out,
                size_t *consumed);
/* Text for a socks5_feed()/socks5_init() error (falls back to kumo_strerror). */
const char *socks5_error_str(int err);
const char *socks5_state_str(enum socks5_state s);
/* Format a as "1.2.3.4:25", "[::1]:25" or "name:25" into dst (truncated to size). */
void socks5_addr_format(const struct socks5_addr *a, char *dst, size_t size);

#endif
