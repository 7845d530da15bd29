/*
 * control.h: kumod's control server, generic over its commands. It listens
 * on a Unix stream socket on a libuv loop, checks each peer's credentials
 * (SO_PEERCRED), caps concurrent clients, frames JSON-lines requests with
 * lib/ctl and dispatches them to a table of {name, handler}. It knows
 * nothing about queues: the daemon registers its commands by table and
 * passes its own context as daemon_arg. doc/control-protocol.md describes
 * the wire protocol.
 *
 * The process must ignore SIGPIPE (libuv writes with write(2)): a client
 * that goes away mid-reply is then an EPIPE on its session, nothing more.
 *
 * Built-in commands (always present, a table entry of the same name wins):
 *   commands  the sorted list of command names (for completion)
 *   cancel    {"id":N}: end the open stream N of this connection
 */
#ifndef KUMO_CONTROL_H
#define KUMO_CONTROL_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>
#include <uv.h>

struct control_server;
struct control_session;
struct control_stream;

/* A handler returns one of these, or a negative code with *err_r set. */
enum {
	CONTROL_DONE = 0,  /* *result_r holds the result (stolen; NULL sends null) */
	CONTROL_LATER = 1, /* the handler opened a control_stream and replies through it */
};

/*
 * One command. args is the request's "args" object (borrowed, never NULL).
 * On failure return a negative code and set *err_r to an allocated message
 * for the client ("unknown queue \"x\""); the server frees it.
 */
typedef int (*control_cmd_cb)(struct control_session *s, json_int_t id, json_t *args,
                              void *daemon_arg, json_t **result_r, char **err_r);

struct control_cmd {
	const char *name;
	control_cmd_cb handler;
	const char *help; /* one line, returned by "commands" */
};

struct control_opts {
	unsigned max_clients; /* concurrent sessions; 0: 16 */
	size_t max_request;   /* request line cap; 0: CTL_REQUEST_MAX */
	size_t max_output;    /* queued reply bytes per session before it is dropped; 0: 64 MiB */
	unsigned mode;        /* socket file mode; 0: 0660 */
	const uid_t *allowed_uids; /* besides root and the daemon's own uid */
	size_t n_allowed_uids;
	const gid_t *allowed_gids; /* the peer's primary gid (SO_PEERCRED carries no others) */
	size_t n_allowed_gids;
	const char *server_name; /* in the hello; NULL: "kumod " VERSION */
};

/*
 * Listen on path (a stale socket file there is replaced; a live one is an
 * error) and serve table, which must outlive the server and end with a
 * {NULL} row. 0 with *srv_r, or a negative code with *err_r (allocated).
 */
int control_server_start(uv_loop_t *loop, const char *path, const struct control_opts *opts,
                         const struct control_cmd *table, void *daemon_arg,
                         struct control_server **srv_r, char **err_r);
/*
 * Close every session (cancelling open streams), the listener, and remove
 * the socket file. The memory goes in close callbacks: run the loop after.
 * NULL is fine; the caller's pointer is cleared.
 */
void control_server_stop(struct control_server **srvp);
/* Sessions now open (tests and the daemon's metrics). */
unsigned control_server_sessions(const struct control_server *srv);

/* The peer of a session, from SO_PEERCRED. */
uid_t control_session_uid(const struct control_session *s);
pid_t control_session_pid(const struct control_session *s);
/* Close a session from a handler (deferred: safe inside callbacks). */
void control_session_close(struct control_session *s);

/*
 * Streams and deferred replies. A handler that cannot answer at once (watch,
 * trace, a reload that takes time) opens a stream for its request id and
 * returns CONTROL_LATER. If the session goes away first, cancel(arg) is
 * called and the stream is freed: the daemon must forget its pointer then.
 */
typedef void (*control_cancel_cb)(void *arg);

struct control_stream *control_stream_open(struct control_session *s, json_int_t id,
                                           control_cancel_cb cancel, void *arg);
/* Send one {"id":N,"stream":item} line; item is stolen. */
void control_stream_send(struct control_stream *st, json_t *item);
/*
 * The same with the item already encoded: len bytes of one JSON value (no
 * newline), borrowed. For big items built as text (watch snapshots of
 * thousands of queues), where building json_t objects costs more than
 * the rest of the work.
 */
void control_stream_send_text(struct control_stream *st, const char *item, size_t len);
/* Bytes queued on the stream's session and not yet written: skip a snapshot if high. */
size_t control_stream_pending(const struct control_stream *st);
/* Send the terminator ({"ok":true,"end":true}, or error when non-NULL) and free st. */
void control_stream_end(struct control_stream *st, const char *error);
/* Send a one-shot {"ok":true,"result":result} (stolen) for a deferred reply and free st. */
void control_stream_finish(struct control_stream *st, json_t *result);

#endif
