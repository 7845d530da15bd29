/*
 * control.c: the control server (see control.h). It owns the listening
 * socket, one session per client connection, the streams open on each
 * session, and the table of commands the daemon registered. It does not
 * include kumod.h: the daemon's state reaches handlers only as daemon_arg.
 *
 * Life cycle rules (libuv's): handles are embedded in their owner and freed
 * only in close callbacks. A session is never closed from inside a handler
 * or a stream call: it is marked doomed and a server-wide idle handle (the
 * reaper) closes it on the next loop turn, so a daemon holding a stream
 * pointer never sees it vanish in the middle of its own call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "buf.h"
#include "ctl.h"
#include "kumo.h"
#include "log.h"

#include "control.h"

#define CONTROL_DEFAULT_CLIENTS 16
#define CONTROL_DEFAULT_OUTPUT (64u * 1024 * 1024)
#define CONTROL_BACKLOG 64

struct control_stream {
	struct control_session *s;
	json_int_t id;
	control_cancel_cb cancel;
	void *arg;
	struct control_stream *next;
};

struct control_session {
	uv_pipe_t pipe; /* first: the close callback gets the session from the handle */
	struct control_server *srv;
	struct control_session *prev, *next;
	unsigned long sid;
	struct ctl_reader rd;
	struct buf out;  /* replies queued while a write is in flight */
	struct buf wbuf; /* the bytes of the write in flight */
	uv_write_t wreq;
	struct control_stream *streams;
	uid_t uid;
	gid_t gid;
	pid_t pid;
	unsigned counted : 1; /* holds a slot under max_clients */
	unsigned writing : 1;
	unsigned closing : 1;     /* uv_close called */
	unsigned doomed : 1;      /* to be closed by the reaper */
	unsigned close_after : 1; /* close once the output is written (refusals, EOF) */
};

struct control_server {
	uv_loop_t *loop;
	uv_pipe_t listener;
	uv_idle_t reaper;
	char *path;
	struct control_opts opts; /* arrays below are our copies */
	uid_t *uids;
	gid_t *gids;
	char *server_name;
	const struct control_cmd *table;
	void *daemon_arg;
	struct control_session *sessions;
	unsigned nsessions; /* counted sessions */
	unsigned alive;     /* sessions allocated and not yet freed */
	unsigned handles;   /* listener and reaper not yet closed */
	unsigned long next_sid;
	int stopping;
};

static void session_close_now(struct control_session *s);

static void
server_maybe_free(struct control_server *srv)
{
	if (!srv->stopping || srv->handles > 0 || srv->alive > 0)
		return;
	free(srv->uids);
	free(srv->gids);
	free(srv->server_name);
	free(srv->path);
	free(srv);
}

/* ---- output ---- */

static void on_write(uv_write_t *req, int status);
static void on_reap(uv_idle_t *idle);

static void
session_doom(struct control_session *s)
{
	if (s->doomed || s->closing)
		return;
	s->doomed = 1;
	uv_read_stop((uv_stream_t *)&s->pipe);
	if (!s->srv->stopping)
		uv_idle_start(&s->srv->reaper, on_reap);
}

static void
session_flush(struct control_session *s)
{
	uv_buf_t b;
	struct buf tmp;
	int rc;

	if (s->writing || s->closing || s->out.len == 0)
		return;
	tmp = s->wbuf;
	s->wbuf = s->out;
	s->out = tmp;
	b = uv_buf_init(s->wbuf.data, (unsigned)s->wbuf.len);
	s->wreq.data = s;
	rc = uv_write(&s->wreq, (uv_stream_t *)&s->pipe, &b, 1, on_write);
	if (rc < 0) {
		log_info("control: session %lu: write: %s", s->sid, uv_strerror(rc));
		buf_reset(&s->wbuf);
		session_doom(s);
		return;
	}
	s->writing = 1;
}

static void
session_maybe_finish(struct control_session *s)
{
	if (s->close_after && !s->writing && s->out.len == 0 && s->streams == NULL)
		session_doom(s);
}

static void
on_write(uv_write_t *req, int status)
{
	struct control_session *s = req->data;

	s->writing = 0;
	buf_reset(&s->wbuf);
	if (s->closing) /* UV_ECANCELED from uv_close: the close callback frees */
		return;
	if (status < 0) {
		log_info("control: session %lu: write: %s", s->sid, uv_strerror(status));
		session_doom(s);
		return;
	}
	session_flush(s);
	session_maybe_finish(s);
}

/* Queue one encoded line (taken and freed). A peer that does not read is dropped at the cap. */
static void
session_queue(struct control_session *s, char *line, size_t len)
{
	if (s->closing || s->doomed) {
		free(line);
		return;
	}
	if (s->out.len + s->wbuf.len + len > s->srv->opts.max_output) {
		log_warn("control: session %lu (pid %ld): more than %zu bytes of replies unread: "
		         "dropped",
		         s->sid, (long)s->pid, s->srv->opts.max_output);
		free(line);
		session_doom(s);
		return;
	}
	if (buf_append(&s->out, line, len) <
	    0) /* out is uncapped: only the check above limits it */
		log_panic("control: output buffer refused %zu bytes", len);
	free(line);
	session_flush(s);
}

static void
send_error(struct control_session *s, json_int_t id, const char *error)
{
	size_t len;
	char *line = ctl_encode_error(id, error, &len);

	session_queue(s, line, len);
}

static void
send_result(struct control_session *s, json_int_t id, json_t *result)
{
	size_t len;
	char *line = ctl_encode_result(id, result, &len);

	session_queue(s, line, len);
}

/* ---- streams ---- */

struct control_stream *
control_stream_open(struct control_session *s, json_int_t id, control_cancel_cb cancel, void *arg)
{
	struct control_stream *st = xcalloc(1, sizeof(*st));

	st->s = s;
	st->id = id;
	st->cancel = cancel;
	st->arg = arg;
	st->next = s->streams;
	s->streams = st;
	return st;
}

static void
stream_unlink(struct control_stream *st)
{
	struct control_stream **pp;

	for (pp = &st->s->streams; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == st) {
			*pp = st->next;
			break;
		}
	}
}

void
control_stream_send(struct control_stream *st, json_t *item)
{
	size_t len;
	char *line = ctl_encode_stream(st->id, item, &len);

	json_decref(item);
	session_queue(st->s, line, len);
}

void
control_stream_send_text(struct control_stream *st, const char *item, size_t len)
{
	char head[64];
	int n = snprintf(head, sizeof(head), "{\"id\":%lld,\"stream\":", (long long)st->id);
	char *line = xmalloc((size_t)n + len + 3);

	memcpy(line, head, (size_t)n);
	memcpy(line + n, item, len);
	memcpy(line + (size_t)n + len, "}\n", 3);
	session_queue(st->s, line, (size_t)n + len + 2);
}

size_t
control_stream_pending(const struct control_stream *st)
{
	return st->s->out.len + st->s->wbuf.len;
}

void
control_stream_end(struct control_stream *st, const char *error)
{
	struct control_session *s = st->s;
	size_t len;
	char *line =
	    error != NULL ? ctl_encode_error(st->id, error, &len) : ctl_encode_end(st->id, &len);

	stream_unlink(st);
	free(st);
	session_queue(s, line, len);
	session_maybe_finish(s);
}

void
control_stream_finish(struct control_stream *st, json_t *result)
{
	struct control_session *s = st->s;
	size_t len;
	char *line = ctl_encode_result(st->id, result, &len);

	json_decref(result);
	stream_unlink(st);
	free(st);
	session_queue(s, line, len);
	session_maybe_finish(s);
}

/* ---- sessions ---- */

uid_t
control_session_uid(const struct control_session *s)
{
	return s->uid;
}

pid_t
control_session_pid(const struct control_session *s)
{
	return s->pid;
}

void
control_session_close(struct control_session *s)
{
	session_doom(s);
}

unsigned
control_server_sessions(const struct control_server *srv)
{
	return srv->nsessions;
}

static void
on_session_closed(uv_handle_t *h)
{
	struct control_session *s = (struct control_session *)h;
	struct control_server *srv = s->srv;

	ctl_reader_release(&s->rd);
	buf_release(&s->out);
	buf_release(&s->wbuf);
	free(s);
	srv->alive--;
	server_maybe_free(srv);
}

/* Unlink, cancel open streams and start closing the handle. */
static void
session_close_now(struct control_session *s)
{
	struct control_server *srv = s->srv;

	if (s->closing)
		return;
	s->closing = 1;
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	if (s->counted)
		srv->nsessions--;
	while (s->streams != NULL) {
		struct control_stream *st = s->streams;

		s->streams = st->next;
		if (st->cancel != NULL)
			st->cancel(st->arg);
		free(st);
	}
	log_trace(LOG_TRACE_CONTROL, "control: session %lu closed", s->sid);
	uv_close((uv_handle_t *)&s->pipe, on_session_closed);
}

static void
on_reap(uv_idle_t *idle)
{
	struct control_server *srv = idle->data;
	struct control_session *s, *next;

	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->doomed)
			session_close_now(s);
	}
	uv_idle_stop(idle);
}

/* ---- commands ---- */

static const struct control_cmd *
find_cmd(const struct control_cmd *table, const char *name)
{
	for (; table != NULL && table->name != NULL; table++) {
		if (strcmp(table->name, name) == 0)
			return table;
	}
	return NULL;
}

static int builtin_commands(struct control_session *, json_int_t, json_t *, void *, json_t **,
                            char **);
static int builtin_cancel(struct control_session *, json_int_t, json_t *, void *, json_t **,
                          char **);

static const struct control_cmd builtins[] = {
    {"commands", builtin_commands, "list the commands this server knows"},
    {"cancel", builtin_cancel, "end an open stream of this connection: {\"id\":N}"},
    {NULL, NULL, NULL},
};

static int
cmp_names(const void *a, const void *b)
{
	const struct control_cmd *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

static int
builtin_commands(struct control_session *s, json_int_t id, json_t *args, void *daemon_arg,
                 json_t **result_r, char **err_r)
{
	const struct control_cmd *t, **all;
	size_t n = 0, i;
	json_t *arr = json_array();

	(void)id, (void)args, (void)daemon_arg, (void)err_r;
	for (t = s->srv->table; t != NULL && t->name != NULL; t++)
		n++;
	all = xcalloc(n + KUMO_NELEM(builtins), sizeof(*all));
	n = 0;
	for (t = s->srv->table; t != NULL && t->name != NULL; t++)
		all[n++] = t;
	for (t = builtins; t->name != NULL; t++) {
		if (find_cmd(s->srv->table, t->name) == NULL)
			all[n++] = t;
	}
	qsort(all, n, sizeof(*all), cmp_names);
	for (i = 0; i < n; i++)
		json_array_append_new(arr, json_pack("{s:s, s:s}", "name", all[i]->name, "help",
		                                     all[i]->help != NULL ? all[i]->help : ""));
	free(all);
	*result_r = json_pack("{s:o}", "commands", arr);
	return CONTROL_DONE;
}

static int
builtin_cancel(struct control_session *s, json_int_t id, json_t *args, void *daemon_arg,
               json_t **result_r, char **err_r)
{
	json_t *target = json_object_get(args, "id");
	struct control_stream *st;

	(void)id, (void)daemon_arg;
	if (!json_is_integer(target)) {
		*err_r = xstrdup("cancel: \"id\" must be the integer id of an open stream");
		return KUMO_EINVAL;
	}
	for (st = s->streams; st != NULL; st = st->next) {
		if (st->id == json_integer_value(target))
			break;
	}
	if (st == NULL) {
		*err_r = xasprintf("cancel: no open stream %lld on this connection",
		                   (long long)json_integer_value(target));
		return KUMO_ENOTFOUND;
	}
	if (st->cancel != NULL)
		st->cancel(st->arg);
	st->cancel = NULL;
	control_stream_end(st, NULL);
	*result_r = json_pack("{s:I}", "cancelled", json_integer_value(target));
	return CONTROL_DONE;
}

static void
dispatch_line(struct control_session *s, const char *line, size_t len)
{
	struct control_server *srv = s->srv;
	struct ctl_request req;
	const struct control_cmd *cmd;
	json_t *result = NULL;
	char *err = NULL;
	int rc;

	if (len == 0)
		return;
	if (ctl_request_parse(line, len, &req, &err) < 0) {
		log_trace(LOG_TRACE_CONTROL, "control: session %lu: bad request: %s", s->sid, err);
		send_error(s, req.has_id ? req.id : -1, err);
		free(err);
		return;
	}
	cmd = find_cmd(srv->table, req.cmd);
	if (cmd == NULL)
		cmd = find_cmd(builtins, req.cmd);
	if (cmd == NULL || cmd->handler == NULL) {
		char *msg = xasprintf("unknown command \"%s\" (\"commands\" lists them)", req.cmd);

		send_error(s, req.id, msg);
		free(msg);
		ctl_request_clear(&req);
		return;
	}
	log_trace(LOG_TRACE_CONTROL, "control: session %lu: id=%lld cmd=%s", s->sid,
	          (long long)req.id, req.cmd);
	rc = cmd->handler(s, req.id, req.args, srv->daemon_arg, &result, &err);
	if (rc == CONTROL_DONE) {
		send_result(s, req.id, result);
		json_decref(result);
	} else if (rc < 0) {
		send_error(s, req.id, err != NULL ? err : kumo_strerror(rc));
		json_decref(result);
	} else if (rc != CONTROL_LATER) {
		log_panic("control: handler %s returned %d", cmd->name, rc);
	}
	free(err);
	ctl_request_clear(&req);
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct control_session *s = (struct control_session *)h;
	size_t n;
	char *p = ctl_reader_space(&s->rd, &n);

	(void)suggested;
	*b = uv_buf_init(p, (unsigned)n);
}

static void
on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
	struct control_session *s = (struct control_session *)stream;
	char *line;
	size_t len;
	int rc;

	(void)b;
	if (nread == 0 || s->doomed || s->closing)
		return;
	if (nread < 0) {
		if (nread != UV_EOF)
			log_info("control: session %lu: read: %s", s->sid, uv_strerror((int)nread));
		/* Half-closed: finish the replies already asked for, then close. */
		uv_read_stop(stream);
		s->close_after = 1;
		if (nread != UV_EOF)
			session_doom(s);
		else
			session_maybe_finish(s);
		return;
	}
	ctl_reader_commit(&s->rd, (size_t)nread);
	while (!s->doomed && !s->closing && (rc = ctl_reader_next(&s->rd, &line, &len)) != 0) {
		if (rc == KUMO_ETOOLONG) {
			char *msg = xasprintf("request line longer than %zu bytes: ignored",
			                      s->rd.max_line);

			log_info("control: session %lu: %s", s->sid, msg);
			send_error(s, -1, msg);
			free(msg);
			continue;
		}
		dispatch_line(s, line, len);
	}
}

/* May this peer use the socket? Root, our own uids and the configured ones and groups. */
static int
peer_allowed(const struct control_server *srv, uid_t uid, gid_t gid)
{
	size_t i;

	if (uid == 0 || uid == getuid() || uid == geteuid())
		return 1;
	for (i = 0; i < srv->opts.n_allowed_uids; i++) {
		if (srv->uids[i] == uid)
			return 1;
	}
	for (i = 0; i < srv->opts.n_allowed_gids; i++) {
		if (srv->gids[i] == gid)
			return 1;
	}
	return 0;
}

static void
on_connection(uv_stream_t *listener, int status)
{
	struct control_server *srv = listener->data;
	struct control_session *s;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	uv_os_fd_t fd;
	char *line;
	size_t len;
	int rc;

	if (status < 0) {
		log_warn("control: accept: %s", uv_strerror(status));
		return;
	}
	s = xcalloc(1, sizeof(*s));
	s->srv = srv;
	s->sid = ++srv->next_sid;
	s->uid = (uid_t)-1;
	s->gid = (gid_t)-1;
	ctl_reader_init(&s->rd, srv->opts.max_request);
	buf_init(&s->out, 0);
	buf_init(&s->wbuf, 0);
	s->wreq.data = s;
	uv_pipe_init(srv->loop, &s->pipe, 0);
	srv->alive++;
	s->next = srv->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	srv->sessions = s;
	if ((rc = uv_accept(listener, (uv_stream_t *)&s->pipe)) < 0) {
		log_warn("control: accept: %s", uv_strerror(rc));
		session_close_now(s);
		return;
	}
	if (uv_fileno((uv_handle_t *)&s->pipe, &fd) == 0 &&
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
		s->uid = cred.uid;
		s->gid = cred.gid;
		s->pid = cred.pid;
	}
	s->close_after = 0;
	if (!peer_allowed(srv, s->uid, s->gid)) {
		char *msg =
		    xasprintf("permission denied: uid %ld gid %ld may not use this control socket",
		              (long)s->uid, (long)s->gid);

		log_notice("control: refused pid %ld uid %ld gid %ld: not allowed", (long)s->pid,
		           (long)s->uid, (long)s->gid);
		send_error(s, -1, msg);
		free(msg);
		s->close_after = 1;
		session_maybe_finish(s);
		return;
	}
	if (srv->nsessions >= srv->opts.max_clients) {
		char *msg = xasprintf("too many control clients (at most %u): try again later",
		                      srv->opts.max_clients);

		log_notice("control: refused pid %ld: %u clients already", (long)s->pid,
		           srv->nsessions);
		send_error(s, -1, msg);
		free(msg);
		s->close_after = 1;
		session_maybe_finish(s);
		return;
	}
	s->counted = 1;
	srv->nsessions++;
	log_trace(LOG_TRACE_CONTROL, "control: session %lu: pid %ld uid %ld", s->sid, (long)s->pid,
	          (long)s->uid);
	line = ctl_encode_hello(srv->server_name, &len);
	session_queue(s, line, len);
	if ((rc = uv_read_start((uv_stream_t *)&s->pipe, on_alloc, on_read)) < 0) {
		log_warn("control: session %lu: read: %s", s->sid, uv_strerror(rc));
		session_doom(s);
	}
}

/* ---- server ---- */

/* Make path free for a new socket: remove a stale socket, refuse anything else. */
static int
clear_stale(const char *path, const struct sockaddr_un *sun, char **err_r)
{
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		*err_r = xasprintf("control socket %s: %s", path, strerror(errno));
		return -errno;
	}
	if (!S_ISSOCK(st.st_mode)) {
		*err_r = xasprintf("control socket %s: exists and is not a socket", path);
		return KUMO_EINVAL;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err_r = xasprintf("socket: %s", strerror(errno));
		return -errno;
	}
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (rc == 0) {
		*err_r = xasprintf("control socket %s: another server is listening there", path);
		return KUMO_EINVAL;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		*err_r = xasprintf("control socket %s: removing the stale socket: %s", path,
		                   strerror(errno));
		return -errno;
	}
	return 0;
}

int
control_server_start(uv_loop_t *loop, const char *path, const struct control_opts *opts,
                     const struct control_cmd *table, void *daemon_arg,
                     struct control_server **srv_r, char **err_r)
{
	static const struct control_opts defaults;
	struct control_server *srv;
	struct sockaddr_un sun;
	mode_t mode, old_mask;
	int fd, rc, e;

	*srv_r = NULL;
	if (opts == NULL)
		opts = &defaults;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		*err_r = xasprintf("control socket path too long (at most %zu bytes): %s",
		                   sizeof(sun.sun_path) - 1, path);
		return KUMO_EINVAL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((rc = clear_stale(path, &sun, err_r)) < 0)
		return rc;
	mode = opts->mode != 0 ? (mode_t)opts->mode : 0660;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		*err_r = xasprintf("socket: %s", strerror(errno));
		return -errno;
	}
	/* No window in which the socket exists with looser permissions than asked for. */
	old_mask = umask((mode_t)(~mode & 0777));
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	e = errno;
	umask(old_mask);
	if (rc < 0) {
		*err_r = xasprintf("control socket %s: bind: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	if (chmod(path, mode) < 0 || listen(fd, CONTROL_BACKLOG) < 0) {
		e = errno;
		*err_r = xasprintf("control socket %s: %s", path, strerror(e));
		close(fd);
		unlink(path);
		return -e;
	}

	srv = xcalloc(1, sizeof(*srv));
	srv->loop = loop;
	srv->path = xstrdup(path);
	srv->opts = *opts;
	if (srv->opts.max_clients == 0)
		srv->opts.max_clients = CONTROL_DEFAULT_CLIENTS;
	if (srv->opts.max_request == 0)
		srv->opts.max_request = CTL_REQUEST_MAX;
	if (srv->opts.max_output == 0)
		srv->opts.max_output = CONTROL_DEFAULT_OUTPUT;
	if (opts->n_allowed_uids > 0) {
		srv->uids = xreallocarray(NULL, opts->n_allowed_uids, sizeof(uid_t));
		memcpy(srv->uids, opts->allowed_uids, opts->n_allowed_uids * sizeof(uid_t));
	}
	if (opts->n_allowed_gids > 0) {
		srv->gids = xreallocarray(NULL, opts->n_allowed_gids, sizeof(gid_t));
		memcpy(srv->gids, opts->allowed_gids, opts->n_allowed_gids * sizeof(gid_t));
	}
	srv->opts.allowed_uids = srv->uids;
	srv->opts.allowed_gids = srv->gids;
	srv->server_name =
	    xstrdup(opts->server_name != NULL ? opts->server_name : "kumod " PACKAGE_VERSION);
	srv->opts.server_name = srv->server_name;
	srv->table = table;
	srv->daemon_arg = daemon_arg;

	uv_pipe_init(loop, &srv->listener, 0);
	srv->listener.data = srv;
	uv_idle_init(loop, &srv->reaper);
	srv->reaper.data = srv;
	srv->handles = 2;
	if ((rc = uv_pipe_open(&srv->listener, fd)) < 0)
		close(fd);
	if (rc < 0 ||
	    (rc = uv_listen((uv_stream_t *)&srv->listener, CONTROL_BACKLOG, on_connection)) < 0) {
		*err_r = xasprintf("control socket %s: %s", path, uv_strerror(rc));
		control_server_stop(&srv);
		return rc;
	}
	log_info("control: listening on %s (mode %04o, at most %u clients)", path, (unsigned)mode,
	         srv->opts.max_clients);
	*srv_r = srv;
	return 0;
}

static void
on_server_handle_closed(uv_handle_t *h)
{
	struct control_server *srv = h->data;

	srv->handles--;
	server_maybe_free(srv);
}

void
control_server_stop(struct control_server **srvp)
{
	struct control_server *srv = *srvp;

	if (srv == NULL)
		return;
	*srvp = NULL;
	srv->stopping = 1;
	while (srv->sessions != NULL)
		session_close_now(srv->sessions);
	uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
	uv_close((uv_handle_t *)&srv->reaper, on_server_handle_closed);
	unlink(srv->path);
}
