/*
 * ctl.h: the control protocol shared by kumod's control server and its
 * clients (kumoctl, kumotop): JSON lines over a Unix stream socket.
 * doc/control-protocol.md is the reference; in short:
 *
 *   server, on connect:  {"hello":"kumo-control","protocol":1,"server":"kumod 0.1.0"}
 *   client:              {"id":1,"cmd":"queue-summary","args":{"limit":10}}
 *   server:              {"id":1,"ok":true,"result":{...}}
 *                     or {"id":1,"ok":false,"error":"..."}
 *   streamed replies:    {"id":2,"stream":{...}} lines, then the terminator
 *                        {"id":2,"ok":true,"end":true} (or an error line)
 *
 * This module owns the line framing (a reader with a line-length cap whose
 * overflow is reported once and the rest of the line skipped), encoding and
 * validating each message kind, and a blocking client. The non-blocking
 * server lives in daemon/control.c and uses the same framing and codecs.
 */
#ifndef KUMO_CTL_H
#define KUMO_CTL_H

#include <stddef.h>

#include <jansson.h>

#include "buf.h"

/* Bumped when a change would break an existing client. */
#define CTL_PROTOCOL 1
/* The hello's "hello" member: tells a client it reached a kumo control socket. */
#define CTL_HELLO_MAGIC "kumo-control"
/* Longest request line a server accepts (bytes, newline excluded). */
#define CTL_REQUEST_MAX (64 * 1024)
/* Longest reply line a client accepts (a watch snapshot of many queues is big). */
#define CTL_REPLY_MAX (64 * 1024 * 1024)
/* Where kumod listens unless configured otherwise; KUMOD_CONTROL overrides it in clients. */
#ifndef CTL_DEFAULT_SOCKET
#define CTL_DEFAULT_SOCKET "/run/kumod/control.sock"
#endif

/*
 * Line framing. Read into ctl_reader_space(), tell the reader with
 * ctl_reader_commit(), then call ctl_reader_next() until it returns 0.
 * The reader never holds more than max_line + 1 bytes.
 */
struct ctl_reader {
	struct buf in;
	size_t max_line;
	size_t consumed; /* bytes of the line last returned, drained on the next call */
	int discarding;  /* skipping the rest of an overlong line */
};

void ctl_reader_init(struct ctl_reader *r, size_t max_line);
void ctl_reader_release(struct ctl_reader *r);
/* Room for up to *n_r more bytes (at most 64 KiB); NULL and 0 if next() must run first. */
char *ctl_reader_space(struct ctl_reader *r, size_t *n_r);
void ctl_reader_commit(struct ctl_reader *r, size_t n);
/* Copy in as much of p as fits; returns the count taken (tests and fuzzers use this). */
size_t ctl_reader_feed(struct ctl_reader *r, const void *p, size_t n);
/*
 * The next complete line: 1 with *line_r (NUL-terminated, newline and a
 * trailing CR removed, valid until the next reader call) and *len_r; 0 when
 * more bytes are needed; KUMO_ETOOLONG once per line longer than max_line
 * (its bytes are skipped up to its newline).
 */
int ctl_reader_next(struct ctl_reader *r, char **line_r, size_t *len_r);

/*
 * A parsed request. On success root holds the document, cmd and args point
 * into it (args is an object, empty if the request had none). On failure
 * *err_r says what was wrong and id is set if the line had a usable one
 * (has_id), so the error reply can carry it.
 */
struct ctl_request {
	json_t *root;
	json_int_t id;
	int has_id;
	const char *cmd;
	json_t *args;
};

/* 0, or KUMO_EPARSE with an allocated *err_r. Total over any bytes. */
int ctl_request_parse(const char *line, size_t len, struct ctl_request *req, char **err_r);
void ctl_request_clear(struct ctl_request *req);

/* What a client reads. */
enum ctl_msg_kind {
	CTL_MSG_HELLO = 1,
	CTL_MSG_RESULT, /* ok true, "result" in value (JSON null if absent) */
	CTL_MSG_ERROR,  /* ok false, "error" in error */
	CTL_MSG_STREAM, /* one streamed item in value */
	CTL_MSG_END,    /* the terminator of a stream */
};

struct ctl_msg {
	enum ctl_msg_kind kind;
	json_int_t id; /* -1 when the line had none (hello, connection-level errors) */
	json_t *root;
	json_t *value;     /* borrowed from root */
	const char *error; /* borrowed from root (CTL_MSG_ERROR) */
	char *line;        /* the raw line, newline excluded, for --json output */
	size_t len;
};

/* 0, or KUMO_EPARSE with an allocated *err_r. Total over any bytes. */
int ctl_msg_parse(const char *line, size_t len, struct ctl_msg *m, char **err_r);
void ctl_msg_clear(struct ctl_msg *m);
const char *ctl_msg_kind_str(enum ctl_msg_kind kind);

/*
 * Encoders: each returns an allocated line ending in "\n" (caller frees),
 * *len_r its length. The json_t arguments are borrowed. id < 0 encodes
 * "id":null (for errors about a line that had no usable id).
 */
char *ctl_encode_hello(const char *server, size_t *len_r);
char *ctl_encode_request(json_int_t id, const char *cmd, json_t *args, size_t *len_r);
char *ctl_encode_result(json_int_t id, json_t *result, size_t *len_r);
char *ctl_encode_error(json_int_t id, const char *error, size_t *len_r);
char *ctl_encode_stream(json_int_t id, json_t *item, size_t *len_r);
char *ctl_encode_end(json_int_t id, size_t *len_r);

/*
 * A blocking client (kumoctl, kumotop). ctl_client_connect() connects to a
 * Unix socket path and reads the hello within timeout_ms. Errors say which
 * path and what to do, e.g. "no control socket at /run/kumod/control.sock:
 * is kumod running?".
 */
struct ctl_client;

int ctl_client_connect(const char *path, int timeout_ms, struct ctl_client **c_r, char **err_r);
void ctl_client_close(struct ctl_client **cp);
/* The server's hello document (borrowed). */
json_t *ctl_client_hello(struct ctl_client *c);
/* Send one request; *id_r receives its id. args may be NULL. 0 or negative with *err_r. */
int ctl_client_send(struct ctl_client *c, const char *cmd, json_t *args, json_int_t *id_r,
                    char **err_r);
/*
 * Read the next message within timeout_ms (-1: wait forever). 0 with *m
 * filled (clear it after), KUMO_ETIMEDOUT, KUMO_EIO (connection closed) or
 * KUMO_EPROTO (bad line), with *err_r.
 */
int ctl_client_read(struct ctl_client *c, int timeout_ms, struct ctl_msg *m, char **err_r);
/*
 * One request, one reply: 0 with *m the CTL_MSG_RESULT, 1 with *m the
 * CTL_MSG_ERROR (the daemon refused: *m's error says why), or negative with
 * *err_r (transport trouble). Stream items are not expected here.
 */
int ctl_client_call(struct ctl_client *c, const char *cmd, json_t *args, int timeout_ms,
                    struct ctl_msg *m, char **err_r);
/* The connection's file descriptor (for poll() in kumotop). */
int ctl_client_fd(struct ctl_client *c);

#endif
