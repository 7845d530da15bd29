/*
 * ctl.c: the control protocol's framing, message codecs and blocking client
 * (see ctl.h and doc/control-protocol.md). Everything that parses bytes from
 * a peer here is total: bad input becomes an error code with a message,
 * never a crash or an unbounded allocation.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "buf.h"
#include "ctl.h"
#include "kumo.h"

#define CTL_READ_CHUNK (64 * 1024)

void
ctl_reader_init(struct ctl_reader *r, size_t max_line)
{
	/* +1 so a line of exactly max_line bytes fits with its newline. */
	buf_init(&r->in, max_line + 1);
	r->max_line = max_line;
	r->consumed = 0;
	r->discarding = 0;
}

void
ctl_reader_release(struct ctl_reader *r)
{
	buf_release(&r->in);
	r->consumed = 0;
	r->discarding = 0;
}

static void
reader_drain_consumed(struct ctl_reader *r)
{
	if (r->consumed > 0) {
		buf_drain(&r->in, r->consumed);
		r->consumed = 0;
	}
}

char *
ctl_reader_space(struct ctl_reader *r, size_t *n_r)
{
	size_t room;
	char *p;

	reader_drain_consumed(r);
	room = r->max_line + 1 - r->in.len;
	if (r->in.len > r->max_line || room == 0) {
		*n_r = 0;
		return NULL;
	}
	if (room > CTL_READ_CHUNK)
		room = CTL_READ_CHUNK;
	p = buf_reserve(&r->in, room);
	*n_r = p != NULL ? room : 0;
	return p;
}

void
ctl_reader_commit(struct ctl_reader *r, size_t n)
{
	size_t old = r->in.len;
	char *nl;

	buf_commit(&r->in, n);
	if (!r->discarding)
		return;
	/* Only the new bytes can be there: the buffer was emptied when discarding began. */
	nl = memchr(r->in.data + old, '\n', r->in.len - old);
	if (nl == NULL) {
		buf_reset(&r->in);
		return;
	}
	buf_drain(&r->in, (size_t)(nl - r->in.data) + 1);
	r->discarding = 0;
}

size_t
ctl_reader_feed(struct ctl_reader *r, const void *p, size_t n)
{
	size_t room;
	char *dst = ctl_reader_space(r, &room);

	if (dst == NULL)
		return 0;
	if (room > n)
		room = n;
	memcpy(dst, p, room);
	ctl_reader_commit(r, room);
	return room;
}

int
ctl_reader_next(struct ctl_reader *r, char **line_r, size_t *len_r)
{
	char *nl;
	size_t len;

	reader_drain_consumed(r);
	if (r->discarding)
		return 0;
	nl = r->in.len > 0 ? memchr(r->in.data, '\n', r->in.len) : NULL;
	if (nl == NULL) {
		if (r->in.len > r->max_line) {
			buf_reset(&r->in);
			r->discarding = 1;
			return KUMO_ETOOLONG;
		}
		return 0;
	}
	len = (size_t)(nl - r->in.data);
	r->consumed = len + 1;
	if (len > r->max_line) {
		/* Complete but too long (it arrived in one read with its newline). */
		return KUMO_ETOOLONG;
	}
	if (len > 0 && r->in.data[len - 1] == '\r')
		len--;
	r->in.data[len] = '\0';
	*line_r = r->in.data;
	*len_r = len;
	return 1;
}

/* Parse one JSON object from a line; NULL with *err_r on failure. */
static json_t *
parse_object(const char *line, size_t len, char **err_r)
{
	json_error_t jerr;
	json_t *root;

	if (memchr(line, '\0', len) != NULL) {
		*err_r = xstrdup("NUL byte in line");
		return NULL;
	}
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		*err_r = xasprintf("invalid JSON at column %d: %s", jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		*err_r = xstrdup("a message must be a JSON object");
		return NULL;
	}
	return root;
}

int
ctl_request_parse(const char *line, size_t len, struct ctl_request *req, char **err_r)
{
	json_t *root, *id, *cmd, *args;

	memset(req, 0, sizeof(*req));
	req->id = -1;
	if ((root = parse_object(line, len, err_r)) == NULL)
		return KUMO_EPARSE;
	id = json_object_get(root, "id");
	if (id == NULL || !json_is_integer(id) || json_integer_value(id) < 0) {
		*err_r = xstrdup("\"id\" must be a non-negative integer");
		goto fail;
	}
	req->id = json_integer_value(id);
	req->has_id = 1;
	cmd = json_object_get(root, "cmd");
	if (cmd == NULL || !json_is_string(cmd) || json_string_length(cmd) == 0) {
		*err_r = xstrdup("\"cmd\" must be a non-empty string");
		goto fail;
	}
	if (strlen(json_string_value(cmd)) != json_string_length(cmd)) {
		*err_r = xstrdup("\"cmd\" holds a NUL character");
		goto fail;
	}
	args = json_object_get(root, "args");
	if (args == NULL || json_is_null(args)) {
		args = json_object();
		json_object_set_new(root, "args", args);
	} else if (!json_is_object(args)) {
		*err_r = xstrdup("\"args\" must be an object");
		goto fail;
	}
	req->root = root;
	req->cmd = json_string_value(cmd);
	req->args = args;
	return 0;
fail:
	json_decref(root);
	return KUMO_EPARSE;
}

void
ctl_request_clear(struct ctl_request *req)
{
	json_decref(req->root);
	memset(req, 0, sizeof(*req));
	req->id = -1;
}

const char *
ctl_msg_kind_str(enum ctl_msg_kind kind)
{
	switch (kind) {
	case CTL_MSG_HELLO:
		return "hello";
	case CTL_MSG_RESULT:
		return "result";
	case CTL_MSG_ERROR:
		return "error";
	case CTL_MSG_STREAM:
		return "stream";
	case CTL_MSG_END:
		return "end";
	}
	return "unknown";
}

int
ctl_msg_parse(const char *line, size_t len, struct ctl_msg *m, char **err_r)
{
	json_t *root, *id, *ok, *v;

	memset(m, 0, sizeof(*m));
	m->id = -1;
	if ((root = parse_object(line, len, err_r)) == NULL)
		return KUMO_EPARSE;
	if ((v = json_object_get(root, "hello")) != NULL) {
		json_t *proto = json_object_get(root, "protocol");

		if (!json_is_string(v) || strcmp(json_string_value(v), CTL_HELLO_MAGIC) != 0 ||
		    !json_is_integer(proto)) {
			*err_r = xstrdup("not a kumo control hello");
			goto fail;
		}
		m->kind = CTL_MSG_HELLO;
		m->value = root;
		goto done;
	}
	id = json_object_get(root, "id");
	if (id != NULL && json_is_integer(id) && json_integer_value(id) >= 0)
		m->id = json_integer_value(id);
	else if (id != NULL && !json_is_null(id)) {
		*err_r = xstrdup("\"id\" must be an integer or null");
		goto fail;
	}
	if ((v = json_object_get(root, "stream")) != NULL) {
		m->kind = CTL_MSG_STREAM;
		m->value = v;
		goto done;
	}
	ok = json_object_get(root, "ok");
	if (!json_is_boolean(ok)) {
		*err_r = xstrdup("reply without \"ok\" or \"stream\"");
		goto fail;
	}
	if (json_is_false(ok)) {
		v = json_object_get(root, "error");
		m->kind = CTL_MSG_ERROR;
		m->error = json_is_string(v) ? json_string_value(v) : "(no error text)";
		goto done;
	}
	if (json_is_true(json_object_get(root, "end"))) {
		m->kind = CTL_MSG_END;
		goto done;
	}
	m->kind = CTL_MSG_RESULT;
	m->value = json_object_get(root, "result");
	if (m->value == NULL) {
		m->value = json_null();
		json_object_set_new(root, "result", m->value);
	}
done:
	m->root = root;
	m->line = xstrndup(line, len);
	m->len = len;
	return 0;
fail:
	json_decref(root);
	return KUMO_EPARSE;
}

void
ctl_msg_clear(struct ctl_msg *m)
{
	json_decref(m->root);
	free(m->line);
	memset(m, 0, sizeof(*m));
	m->id = -1;
}

/* Serialise obj (stolen) as one line with its newline. */
static char *
encode_line(json_t *obj, size_t *len_r)
{
	char *s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
	size_t n;
	char *line;

	json_decref(obj);
	if (s == NULL) /* only on allocation failure inside jansson */
		abort();
	n = strlen(s);
	line = xmalloc(n + 2);
	memcpy(line, s, n);
	line[n] = '\n';
	line[n + 1] = '\0';
	free(s);
	if (len_r != NULL)
		*len_r = n + 1;
	return line;
}

static json_t *
id_value(json_int_t id)
{
	return id < 0 ? json_null() : json_integer(id);
}

char *
ctl_encode_hello(const char *server, size_t *len_r)
{
	return encode_line(json_pack("{s:s, s:i, s:s, s:I}", "hello", CTL_HELLO_MAGIC, "protocol",
	                             CTL_PROTOCOL, "server", server != NULL ? server : PACKAGE_NAME,
	                             "pid", (json_int_t)getpid()),
	                   len_r);
}

char *
ctl_encode_request(json_int_t id, const char *cmd, json_t *args, size_t *len_r)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", id_value(id));
	json_object_set_new(o, "cmd", json_string(cmd));
	json_object_set_new(o, "args", args != NULL ? json_incref(args) : json_object());
	return encode_line(o, len_r);
}

char *
ctl_encode_result(json_int_t id, json_t *result, size_t *len_r)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", id_value(id));
	json_object_set_new(o, "ok", json_true());
	json_object_set_new(o, "result", result != NULL ? json_incref(result) : json_null());
	return encode_line(o, len_r);
}

char *
ctl_encode_error(json_int_t id, const char *error, size_t *len_r)
{
	json_t *o = json_object();
	json_t *e = json_string(error);

	/* json_string() refuses invalid UTF-8: say so rather than lose the reply. */
	if (e == NULL)
		e = json_string("(error text was not valid UTF-8)");
	json_object_set_new(o, "id", id_value(id));
	json_object_set_new(o, "ok", json_false());
	json_object_set_new(o, "error", e);
	return encode_line(o, len_r);
}

char *
ctl_encode_stream(json_int_t id, json_t *item, size_t *len_r)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", id_value(id));
	json_object_set_new(o, "stream", item != NULL ? json_incref(item) : json_null());
	return encode_line(o, len_r);
}

char *
ctl_encode_end(json_int_t id, size_t *len_r)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", id_value(id));
	json_object_set_new(o, "ok", json_true());
	json_object_set_new(o, "end", json_true());
	return encode_line(o, len_r);
}

/* ---- blocking client ---- */

struct ctl_client {
	int fd;
	json_int_t next_id;
	struct ctl_reader rd;
	json_t *hello;
	char *path;
};

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for fd to be ready for events until deadline (-1: forever). 0, KUMO_ETIMEDOUT or -errno. */
static int
wait_fd(int fd, short events, long long deadline)
{
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = events};
		int timeout = -1, n;

		if (deadline >= 0) {
			long long left = deadline - now_ms();

			if (left <= 0)
				return KUMO_ETIMEDOUT;
			timeout = left > 1000000 ? 1000000 : (int)left;
		}
		n = poll(&pfd, 1, timeout);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static char *
connect_error(const char *path, int e)
{
	switch (e) {
	case ENOENT:
		return xasprintf(
		    "no control socket at %s: is kumod running? (--socket PATH or KUMOD_CONTROL "
		    "name another)",
		    path);
	case ECONNREFUSED:
		return xasprintf("connection refused at %s: kumod is not running (stale socket?)",
		                 path);
	case EACCES:
	case EPERM:
		return xasprintf(
		    "permission denied on %s: run as the daemon's user, root, or an allowed "
		    "group",
		    path);
	case ENOTSOCK:
		return xasprintf("%s is not a socket", path);
	default:
		return xasprintf("cannot connect to %s: %s", path, strerror(e));
	}
}

int
ctl_client_connect(const char *path, int timeout_ms, struct ctl_client **c_r, char **err_r)
{
	struct sockaddr_un sun;
	struct ctl_client *c;
	struct ctl_msg m;
	long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms, left;
	int fd, rc, e;
	socklen_t elen = sizeof(e);

	*c_r = NULL;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		*err_r = xasprintf("socket path too long (%zu bytes, at most %zu): %s",
		                   strlen(path), sizeof(sun.sun_path) - 1, path);
		return KUMO_EINVAL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		*err_r = xasprintf("socket: %s", strerror(errno));
		return -errno;
	}
	/* EAGAIN on a Unix socket means the listen backlog is full: try again shortly. */
	while ((rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun))) < 0 && errno == EAGAIN &&
	       (deadline < 0 || now_ms() < deadline))
		poll(NULL, 0, 20);
	if (rc < 0) {
		if (errno != EINPROGRESS) {
			e = errno;
			*err_r = connect_error(path, e);
			close(fd);
			return -e;
		}
		if ((rc = wait_fd(fd, POLLOUT, deadline)) < 0) {
			*err_r = xasprintf("timed out connecting to %s", path);
			close(fd);
			return rc;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) == 0 && e != 0) {
			*err_r = connect_error(path, e);
			close(fd);
			return -e;
		}
	}
	c = xcalloc(1, sizeof(*c));
	c->fd = fd;
	c->next_id = 1;
	c->path = xstrdup(path);
	ctl_reader_init(&c->rd, CTL_REPLY_MAX);
	left = deadline < 0 ? -1 : deadline - now_ms();
	rc = ctl_client_read(c, left < 0 && deadline >= 0 ? 0 : (int)left, &m, err_r);
	if (rc < 0) {
		if (rc == KUMO_ETIMEDOUT) {
			free(*err_r);
			*err_r = xasprintf("%s: no hello from the daemon within %d ms", path,
			                   timeout_ms);
		}
		ctl_client_close(&c);
		return rc;
	}
	if (m.kind == CTL_MSG_ERROR) {
		/* Refused before the hello: peer check or client cap. */
		*err_r = xasprintf("%s: the daemon refused the connection: %s", path, m.error);
		ctl_msg_clear(&m);
		ctl_client_close(&c);
		return KUMO_EPROTO;
	}
	if (m.kind != CTL_MSG_HELLO) {
		*err_r = xasprintf("%s: expected a hello, got a %s line", path,
		                   ctl_msg_kind_str(m.kind));
		ctl_msg_clear(&m);
		ctl_client_close(&c);
		return KUMO_EPROTO;
	}
	if (json_integer_value(json_object_get(m.root, "protocol")) != CTL_PROTOCOL) {
		*err_r =
		    xasprintf("%s: the daemon speaks control protocol %lld, this client %d", path,
		              (long long)json_integer_value(json_object_get(m.root, "protocol")),
		              CTL_PROTOCOL);
		ctl_msg_clear(&m);
		ctl_client_close(&c);
		return KUMO_EPROTO;
	}
	c->hello = json_incref(m.root);
	ctl_msg_clear(&m);
	*c_r = c;
	return 0;
}

void
ctl_client_close(struct ctl_client **cp)
{
	struct ctl_client *c = *cp;

	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	ctl_reader_release(&c->rd);
	json_decref(c->hello);
	free(c->path);
	free(c);
	*cp = NULL;
}

json_t *
ctl_client_hello(struct ctl_client *c)
{
	return c->hello;
}

int
ctl_client_fd(struct ctl_client *c)
{
	return c->fd;
}

int
ctl_client_send(struct ctl_client *c, const char *cmd, json_t *args, json_int_t *id_r, char **err_r)
{
	size_t len, off = 0;
	json_int_t id = c->next_id++;
	char *line = ctl_encode_request(id, cmd, args, &len);
	int rc = 0;

	while (off < len) {
		ssize_t n = send(c->fd, line + off, len - off, MSG_NOSIGNAL);

		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((rc = wait_fd(c->fd, POLLOUT, now_ms() + 30000)) < 0)
				break;
			continue;
		}
		rc = -errno;
		break;
	}
	free(line);
	if (rc < 0) {
		*err_r = xasprintf("%s: sending %s: %s", c->path, cmd,
		                   rc == KUMO_ETIMEDOUT ? "timed out" : strerror(-rc));
		return rc;
	}
	if (id_r != NULL)
		*id_r = id;
	return 0;
}

int
ctl_client_read(struct ctl_client *c, int timeout_ms, struct ctl_msg *m, char **err_r)
{
	long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;

	memset(m, 0, sizeof(*m));
	for (;;) {
		char *line, *space;
		size_t len;
		ssize_t n;
		int rc = ctl_reader_next(&c->rd, &line, &len);

		if (rc == KUMO_ETOOLONG) {
			*err_r = xasprintf("%s: a reply line is longer than %d bytes", c->path,
			                   CTL_REPLY_MAX);
			return KUMO_EPROTO;
		}
		if (rc == 1) {
			char *perr = NULL;

			if (len == 0)
				continue;
			if (ctl_msg_parse(line, len, m, &perr) < 0) {
				*err_r = xasprintf("%s: bad reply line: %s", c->path, perr);
				free(perr);
				return KUMO_EPROTO;
			}
			return 0;
		}
		space = ctl_reader_space(&c->rd, &len);
		if (space == NULL) {
			*err_r = xasprintf("%s: reply buffer full", c->path);
			return KUMO_EPROTO;
		}
		n = recv(c->fd, space, len, 0);
		if (n > 0) {
			ctl_reader_commit(&c->rd, (size_t)n);
			continue;
		}
		if (n == 0) {
			*err_r = xasprintf("%s: the daemon closed the connection", c->path);
			return KUMO_EIO;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if ((rc = wait_fd(c->fd, POLLIN, deadline)) < 0) {
				*err_r = rc == KUMO_ETIMEDOUT
				             ? xasprintf("%s: no reply within %d ms", c->path,
				                         timeout_ms)
				             : xasprintf("%s: %s", c->path, strerror(-rc));
				return rc == KUMO_ETIMEDOUT ? rc : KUMO_EIO;
			}
			continue;
		}
		*err_r = xasprintf("%s: %s", c->path, strerror(errno));
		return KUMO_EIO;
	}
}

int
ctl_client_call(struct ctl_client *c, const char *cmd, json_t *args, int timeout_ms,
                struct ctl_msg *m, char **err_r)
{
	json_int_t id;
	int rc;

	memset(m, 0, sizeof(*m));
	if ((rc = ctl_client_send(c, cmd, args, &id, err_r)) < 0)
		return rc;
	for (;;) {
		if ((rc = ctl_client_read(c, timeout_ms, m, err_r)) < 0)
			return rc;
		if (m->id == id || (m->id < 0 && m->kind == CTL_MSG_ERROR))
			break;
		/* A reply to something else (a stream left over): skip it. */
		ctl_msg_clear(m);
	}
	if (m->kind == CTL_MSG_ERROR)
		return 1;
	if (m->kind != CTL_MSG_RESULT) {
		*err_r = xasprintf("%s: %s: expected a result, got a %s line", c->path, cmd,
		                   ctl_msg_kind_str(m->kind));
		ctl_msg_clear(m);
		return KUMO_EPROTO;
	}
	return 0;
}
