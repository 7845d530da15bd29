/*
 * test_ctl.c: the control protocol (lib/ctl.c) and the control server
 * (daemon/control.c): framing and its cap, request and reply validation,
 * and real round trips over a Unix socket with the server on a libuv loop
 * in a second thread and the blocking client in this one.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "ctl.h"
#include "kumo.h"
#include "unit.h"

#include "../../daemon/control.h"

/* ---- framing ---- */

static void
test_reader_lines(void)
{
	struct ctl_reader r;
	char *line;
	size_t len;
	static const char in[] = "{\"a\":1}\r\n\n{\"b\"";

	ctl_reader_init(&r, 64);
	UNIT_EXPECT_INT("fed", ctl_reader_feed(&r, in, sizeof(in) - 1), sizeof(in) - 1);
	UNIT_EXPECT_INT("first", ctl_reader_next(&r, &line, &len), 1);
	UNIT_EXPECT_STR("CR stripped", line, "{\"a\":1}");
	UNIT_EXPECT_INT("empty line", ctl_reader_next(&r, &line, &len), 1);
	UNIT_EXPECT_INT("empty len", len, 0);
	UNIT_EXPECT_INT("partial", ctl_reader_next(&r, &line, &len), 0);
	ctl_reader_feed(&r, ":2}\n", 4);
	UNIT_EXPECT_INT("joined", ctl_reader_next(&r, &line, &len), 1);
	UNIT_EXPECT_STR("joined text", line, "{\"b\":2}");
	UNIT_EXPECT_INT("drained", ctl_reader_next(&r, &line, &len), 0);
	UNIT_EXPECT_INT("nothing left", r.in.len, 0);
	ctl_reader_release(&r);
}

static void
test_reader_cap(void)
{
	struct ctl_reader r;
	char big[100], *line;
	size_t len, i, took;
	int rc, toolong = 0;

	memset(big, 'x', sizeof(big));
	ctl_reader_init(&r, 16);
	/* Exactly 16 bytes fits. */
	ctl_reader_feed(&r, big, 16);
	ctl_reader_feed(&r, "\n", 1);
	UNIT_EXPECT_INT("16 bytes fit", ctl_reader_next(&r, &line, &len), 1);
	UNIT_EXPECT_INT("16 len", len, 16);
	/* 100 bytes in small pieces: one error, then the next line is clean. */
	for (i = 0; i < sizeof(big); i += took) {
		took = ctl_reader_feed(&r, big + i, sizeof(big) - i > 7 ? 7 : sizeof(big) - i);
		while ((rc = ctl_reader_next(&r, &line, &len)) != 0) {
			if (rc == KUMO_ETOOLONG)
				toolong++;
		}
		CU_ASSERT_TRUE_FATAL(took > 0);
	}
	CU_ASSERT_TRUE(r.in.len <= 17);
	ctl_reader_feed(&r, "tail\nok\n", 8);
	while ((rc = ctl_reader_next(&r, &line, &len)) == KUMO_ETOOLONG)
		toolong++;
	UNIT_EXPECT_INT("one overlong report", toolong, 1);
	UNIT_EXPECT_INT("next line", rc, 1);
	UNIT_EXPECT_STR("after the overlong line", line, "ok");
	/* 17 bytes and the newline in one piece: still too long. */
	ctl_reader_feed(&r, big, 17);
	ctl_reader_feed(&r, "\n", 1);
	UNIT_EXPECT_INT("17 with newline", ctl_reader_next(&r, &line, &len), KUMO_ETOOLONG);
	UNIT_EXPECT_INT("then empty", ctl_reader_next(&r, &line, &len), 0);
	ctl_reader_release(&r);
}

/* ---- codecs ---- */

static void
test_request_parse(void)
{
	static const struct {
		const char *line;
		int ok, has_id;
		const char *cmd;
	} rows[] = {
	    {"{\"id\":1,\"cmd\":\"echo\",\"args\":{\"a\":1}}", 1, 1, "echo"},
	    {"{\"id\":7,\"cmd\":\"metrics\"}", 1, 1, "metrics"},
	    {"{\"id\":7,\"cmd\":\"metrics\",\"args\":null}", 1, 1, "metrics"},
	    {"{\"cmd\":\"echo\"}", 0, 0, NULL},
	    {"{\"id\":\"1\",\"cmd\":\"echo\"}", 0, 0, NULL},
	    {"{\"id\":-3,\"cmd\":\"echo\"}", 0, 0, NULL},
	    {"{\"id\":2}", 0, 1, NULL},
	    {"{\"id\":2,\"cmd\":5}", 0, 1, NULL},
	    {"{\"id\":2,\"cmd\":\"\"}", 0, 1, NULL},
	    {"{\"id\":2,\"cmd\":\"a\\u0000b\"}", 0, 0, NULL}, /* jansson refuses \u0000 outright */
	    {"{\"id\":2,\"cmd\":\"echo\",\"args\":[1]}", 0, 1, NULL},
	    {"{\"id\":2,\"id\":3,\"cmd\":\"echo\"}", 0, 0, NULL},
	    {"[1,2]", 0, 0, NULL},
	    {"not json", 0, 0, NULL},
	    {"{\"id\":1,\"cmd\":\"echo\"} trailing", 0, 0, NULL},
	    {"{\"id\":1,\"cmd\":\"\xff\xfe\"}", 0, 0, NULL},
	    {"", 0, 0, NULL},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		struct ctl_request req;
		char *err = NULL, what[64];
		int rc = ctl_request_parse(rows[i].line, strlen(rows[i].line), &req, &err);

		snprintf(what, sizeof(what), "row %zu ok", i);
		UNIT_EXPECT_INT(what, rc == 0, rows[i].ok);
		snprintf(what, sizeof(what), "row %zu has_id", i);
		UNIT_EXPECT_INT(what, req.has_id, rows[i].has_id);
		if (rc == 0) {
			UNIT_EXPECT_STR("cmd", req.cmd, rows[i].cmd);
			CU_ASSERT_TRUE(json_is_object(req.args));
			CU_ASSERT_PTR_NULL(err);
		} else {
			CU_ASSERT_PTR_NOT_NULL(err);
		}
		free(err);
		ctl_request_clear(&req);
	}
	/* A NUL inside the line is refused, not truncated. */
	{
		struct ctl_request req;
		char *err = NULL;
		static const char nul[] = "{\"id\":1,\"cmd\":\"x\"}\0junk";

		UNIT_EXPECT_INT("NUL", ctl_request_parse(nul, sizeof(nul) - 1, &req, &err),
		                KUMO_EPARSE);
		free(err);
	}
}

static void
test_msg_codecs(void)
{
	static const struct {
		const char *line;
		int ok;
		enum ctl_msg_kind kind;
		json_int_t id;
	} rows[] = {
	    {"{\"hello\":\"kumo-control\",\"protocol\":1}", 1, CTL_MSG_HELLO, -1},
	    {"{\"hello\":\"other\",\"protocol\":1}", 0, 0, 0},
	    {"{\"id\":3,\"ok\":true,\"result\":{\"x\":1}}", 1, CTL_MSG_RESULT, 3},
	    {"{\"id\":3,\"ok\":true}", 1, CTL_MSG_RESULT, 3},
	    {"{\"id\":4,\"ok\":false,\"error\":\"no\"}", 1, CTL_MSG_ERROR, 4},
	    {"{\"id\":null,\"ok\":false,\"error\":\"no\"}", 1, CTL_MSG_ERROR, -1},
	    {"{\"id\":5,\"stream\":[1]}", 1, CTL_MSG_STREAM, 5},
	    {"{\"id\":5,\"ok\":true,\"end\":true}", 1, CTL_MSG_END, 5},
	    {"{\"id\":5}", 0, 0, 0},
	    {"{\"id\":\"5\",\"ok\":true}", 0, 0, 0},
	    {"{\"id\":5,\"ok\":1}", 0, 0, 0},
	    {"5", 0, 0, 0},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		struct ctl_msg m;
		char *err = NULL, what[64];
		int rc = ctl_msg_parse(rows[i].line, strlen(rows[i].line), &m, &err);

		snprintf(what, sizeof(what), "row %zu ok", i);
		UNIT_EXPECT_INT(what, rc == 0, rows[i].ok);
		if (rc == 0) {
			snprintf(what, sizeof(what), "row %zu kind", i);
			UNIT_EXPECT_INT(what, m.kind, rows[i].kind);
			snprintf(what, sizeof(what), "row %zu id", i);
			UNIT_EXPECT_INT(what, m.id, rows[i].id);
			UNIT_EXPECT_STR("raw line kept", m.line, rows[i].line);
		}
		free(err);
		ctl_msg_clear(&m);
	}

	/* Every encoder's line parses back as its kind. */
	{
		json_t *v = json_pack("{s:s}", "k", "v\n\"quoted\"");
		size_t len;
		char *lines[5], *err = NULL;
		const enum ctl_msg_kind kinds[5] = {CTL_MSG_HELLO, CTL_MSG_RESULT, CTL_MSG_ERROR,
		                                    CTL_MSG_STREAM, CTL_MSG_END};

		lines[0] = ctl_encode_hello("test 1", &len);
		lines[1] = ctl_encode_result(9, v, &len);
		lines[2] = ctl_encode_error(-1, "bad \xff utf8", &len);
		lines[3] = ctl_encode_stream(9, v, &len);
		lines[4] = ctl_encode_end(9, &len);
		for (i = 0; i < 5; i++) {
			struct ctl_msg m;
			size_t n = strlen(lines[i]);

			CU_ASSERT_EQUAL(lines[i][n - 1], '\n');
			CU_ASSERT_PTR_NULL(memchr(lines[i], '\n', n - 1));
			UNIT_EXPECT_INT("encoded parses", ctl_msg_parse(lines[i], n - 1, &m, &err),
			                0);
			UNIT_EXPECT_INT("kind", m.kind, kinds[i]);
			if (i == 1)
				UNIT_EXPECT_STR("result value",
				                json_string_value(json_object_get(m.value, "k")),
				                "v\n\"quoted\"");
			ctl_msg_clear(&m);
			free(lines[i]);
		}
		json_decref(v);
	}
}

/* ---- a demo server on a loop thread ---- */

struct ticker {
	uv_timer_t timer;
	struct control_stream *st;
	int left, n;
	int deferred; /* finish with one result instead of streaming */
};

static int g_cancelled; /* read by the test thread only after the loop thread ended */

static void
ticker_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
ticker_cancel(void *arg)
{
	struct ticker *t = arg;

	g_cancelled++;
	t->st = NULL;
	uv_timer_stop(&t->timer);
	uv_close((uv_handle_t *)&t->timer, ticker_closed);
}

static void
ticker_tick(uv_timer_t *timer)
{
	struct ticker *t = timer->data;

	if (t->deferred) {
		control_stream_finish(t->st, json_pack("{s:s}", "later", "done"));
	} else if (t->left > 0) {
		control_stream_send(t->st, json_pack("{s:i}", "n", t->n++));
		if (--t->left > 0)
			return;
		control_stream_end(t->st, NULL);
	} else {
		control_stream_end(t->st, NULL);
	}
	uv_timer_stop(timer);
	uv_close((uv_handle_t *)timer, ticker_closed);
}

static int
demo_echo(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **result_r,
          char **err_r)
{
	(void)s, (void)id, (void)arg, (void)err_r;
	*result_r = json_incref(args);
	return CONTROL_DONE;
}

static int
demo_fail(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **result_r,
          char **err_r)
{
	(void)s, (void)id, (void)args, (void)arg, (void)result_r;
	*err_r = xstrdup("demo failure");
	return KUMO_EINVAL;
}

static int
demo_ticks(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **result_r,
           char **err_r)
{
	uv_loop_t *loop = arg;
	struct ticker *t = xcalloc(1, sizeof(*t));

	(void)result_r, (void)err_r;
	t->left = (int)json_integer_value(json_object_get(args, "count"));
	t->deferred = json_is_true(json_object_get(args, "deferred"));
	t->st = control_stream_open(s, id, ticker_cancel, t);
	uv_timer_init(loop, &t->timer);
	t->timer.data = t;
	uv_timer_start(&t->timer, ticker_tick, 5, 5);
	return CONTROL_LATER;
}

/* Send count items at once, then the terminator: more than a slow reader's cap. */
static int
demo_flood(struct control_session *s, json_int_t id, json_t *args, void *arg, json_t **result_r,
	   char **err_r)
{
	json_int_t i, n = json_integer_value(json_object_get(args, "count"));
	struct control_stream *st = control_stream_open(s, id, NULL, NULL);

	(void)arg, (void)result_r, (void)err_r;
	for (i = 0; i < n; i++)
		control_stream_send(st, json_pack("{s:I,s:s}", "n", i,
						  "pad", "................................................"));
	control_stream_end(st, NULL);
	return CONTROL_LATER;
}

static const struct control_cmd demo_table[] = {
	{"flood", demo_flood, "stream count items at once"},
    {"echo", demo_echo, "return the args"},
    {"fail", demo_fail, "always fail"},
    {"ticks", demo_ticks, "stream {\"n\":i} count times"},
    {NULL, NULL, NULL},
};

struct harness {
	uv_loop_t loop;
	uv_async_t stop;
	struct control_server *srv;
	pthread_t thread;
	char dir[64];
	char path[100];
};

static void
on_stop(uv_async_t *a)
{
	struct harness *h = a->data;

	control_server_stop(&h->srv);
	uv_close((uv_handle_t *)a, NULL);
}

static void *
loop_thread(void *arg)
{
	struct harness *h = arg;

	uv_run(&h->loop, UV_RUN_DEFAULT);
	return NULL;
}

static int
harness_start(struct harness *h, const struct control_opts *opts)
{
	char *err = NULL;
	int rc;

	memset(h, 0, sizeof(*h));
	snprintf(h->dir, sizeof(h->dir), "/tmp/kumo-ctl.XXXXXX");
	if (mkdtemp(h->dir) == NULL)
		return -errno;
	chmod(h->dir, 0755);
	snprintf(h->path, sizeof(h->path), "%s/control.sock", h->dir);
	uv_loop_init(&h->loop);
	rc = control_server_start(&h->loop, h->path, opts, demo_table, &h->loop, &h->srv, &err);
	if (rc < 0) {
		fprintf(stderr, "  control_server_start: %s\n", err);
		free(err);
		return rc;
	}
	uv_async_init(&h->loop, &h->stop, on_stop);
	h->stop.data = h;
	g_cancelled = 0;
	return 0;
}

static void
harness_run(struct harness *h)
{
	pthread_create(&h->thread, NULL, loop_thread, h);
}

static void
harness_stop(struct harness *h)
{
	struct stat st;

	uv_async_send(&h->stop);
	pthread_join(h->thread, NULL);
	CU_ASSERT_EQUAL(uv_loop_close(&h->loop), 0);
	UNIT_EXPECT_INT("socket removed", stat(h->path, &st), -1);
	rmdir(h->dir);
}

/* A raw connection that writes arbitrary bytes: returns the fd after the hello line. */
static int
raw_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 5};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	char c;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (read(fd, &c, 1) == 1 && c != '\n')
		;
	return fd;
}

/* Read one line (bounded) from a raw connection into out. */
static void
raw_line(int fd, char *out, size_t size)
{
	size_t n = 0;
	char c;

	while (n + 1 < size && read(fd, &c, 1) == 1 && c != '\n')
		out[n++] = c;
	out[n] = '\0';
}

static void
test_round_trip(void)
{
	struct harness h;
	struct ctl_client *c = NULL;
	struct ctl_msg m;
	json_t *args;
	char *err = NULL;

	CU_ASSERT_EQUAL_FATAL(harness_start(&h, NULL), 0);
	harness_run(&h);
	UNIT_EXPECT_INT("connect", ctl_client_connect(h.path, 5000, &c, &err), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	UNIT_EXPECT_INT("hello protocol",
	                json_integer_value(json_object_get(ctl_client_hello(c), "protocol")),
	                CTL_PROTOCOL);
	CU_ASSERT_TRUE(strncmp(json_string_value(json_object_get(ctl_client_hello(c), "server")),
	                       "kumod ", 6) == 0);

	args = json_pack("{s:s, s:i}", "domain", "example.test", "limit", 3);
	UNIT_EXPECT_INT("echo", ctl_client_call(c, "echo", args, 5000, &m, &err), 0);
	CU_ASSERT_TRUE(json_equal(m.value, args));
	UNIT_EXPECT_INT("echo id", m.id, 1);
	ctl_msg_clear(&m);
	json_decref(args);

	UNIT_EXPECT_INT("fail refused", ctl_client_call(c, "fail", NULL, 5000, &m, &err), 1);
	UNIT_EXPECT_STR("fail text", m.error, "demo failure");
	UNIT_EXPECT_INT("fail id", m.id, 2);
	ctl_msg_clear(&m);

	UNIT_EXPECT_INT("unknown", ctl_client_call(c, "no-such", NULL, 5000, &m, &err), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(m.error, "unknown command \"no-such\""));
	ctl_msg_clear(&m);

	UNIT_EXPECT_INT("commands", ctl_client_call(c, "commands", NULL, 5000, &m, &err), 0);
	{
		json_t *list = json_object_get(m.value, "commands");

		UNIT_EXPECT_INT("6 commands", json_array_size(list), 6);
		UNIT_EXPECT_STR("sorted first",
		                json_string_value(json_object_get(json_array_get(list, 0), "name")),
		                "cancel");
	}
	ctl_msg_clear(&m);
	ctl_client_close(&c);
	harness_stop(&h);
	free(err);
}

static void
test_bad_input(void)
{
	struct control_opts opts = {.max_request = 1024};
	struct harness h;
	char line[2048], *big;
	int fd;

	CU_ASSERT_EQUAL_FATAL(harness_start(&h, &opts), 0);
	harness_run(&h);
	fd = raw_connect(h.path);
	CU_ASSERT_TRUE_FATAL(fd >= 0);

	/* Not JSON: an error with a null id, and the connection stays usable. */
	CU_ASSERT_EQUAL(write(fd, "{{{ nope\n", 9), 9);
	raw_line(fd, line, sizeof(line));
	CU_ASSERT_PTR_NOT_NULL(strstr(line, "\"id\":null,\"ok\":false,\"error\":\"invalid JSON"));

	/* Valid JSON, wrong shape, with an id: the error carries it. */
	CU_ASSERT_EQUAL(write(fd, "{\"id\":4,\"cmd\":[]}\n", 18), 18);
	raw_line(fd, line, sizeof(line));
	CU_ASSERT_PTR_NOT_NULL(strstr(line, "{\"id\":4,\"ok\":false,\"error\":\"\\\"cmd\\\""));

	/* Binary junk with NULs. */
	CU_ASSERT_EQUAL(write(fd, "\x00\xff\x01\n", 4), 4);
	raw_line(fd, line, sizeof(line));
	CU_ASSERT_PTR_NOT_NULL(strstr(line, "\"ok\":false"));

	/* An overlong line: one error, then the connection still answers. */
	big = xmalloc(5000);
	memset(big, 'a', 5000);
	CU_ASSERT_EQUAL(write(fd, big, 5000), 5000);
	CU_ASSERT_EQUAL(write(fd, "\n", 1), 1);
	raw_line(fd, line, sizeof(line));
	CU_ASSERT_PTR_NOT_NULL(strstr(line, "longer than 1024 bytes"));
	free(big);

	CU_ASSERT_EQUAL(write(fd, "{\"id\":5,\"cmd\":\"echo\",\"args\":{\"x\":true}}\n", 40), 40);
	raw_line(fd, line, sizeof(line));
	UNIT_EXPECT_STR("still answers", line, "{\"id\":5,\"ok\":true,\"result\":{\"x\":true}}");

	/* Pipelined requests in one write come back in order. */
	{
		static const char two[] =
		    "{\"id\":6,\"cmd\":\"echo\"}\n{\"id\":7,\"cmd\":\"fail\"}\n";

		CU_ASSERT_EQUAL(write(fd, two, sizeof(two) - 1), (ssize_t)(sizeof(two) - 1));
		raw_line(fd, line, sizeof(line));
		UNIT_EXPECT_STR("pipelined 1", line, "{\"id\":6,\"ok\":true,\"result\":{}}");
		raw_line(fd, line, sizeof(line));
		UNIT_EXPECT_STR("pipelined 2", line,
		                "{\"id\":7,\"ok\":false,\"error\":\"demo failure\"}");
	}
	close(fd);
	harness_stop(&h);
}

static void
test_streaming(void)
{
	struct harness h;
	struct ctl_client *c = NULL;
	struct ctl_msg m;
	json_t *args;
	json_int_t id;
	char *err = NULL;
	int items = 0, ended = 0, i;

	CU_ASSERT_EQUAL_FATAL(harness_start(&h, NULL), 0);
	harness_run(&h);
	CU_ASSERT_EQUAL_FATAL(ctl_client_connect(h.path, 5000, &c, &err), 0);

	args = json_pack("{s:i}", "count", 4);
	CU_ASSERT_EQUAL(ctl_client_send(c, "ticks", args, &id, &err), 0);
	json_decref(args);
	for (i = 0; i < 10 && !ended; i++) {
		CU_ASSERT_EQUAL_FATAL(ctl_client_read(c, 5000, &m, &err), 0);
		UNIT_EXPECT_INT("stream id", m.id, id);
		if (m.kind == CTL_MSG_STREAM) {
			UNIT_EXPECT_INT("item n", json_integer_value(json_object_get(m.value, "n")),
			                items);
			items++;
		} else {
			UNIT_EXPECT_INT("terminator", m.kind, CTL_MSG_END);
			ended = 1;
		}
		ctl_msg_clear(&m);
	}
	UNIT_EXPECT_INT("items", items, 4);
	CU_ASSERT_TRUE(ended);

	/* A deferred one-shot reply. */
	args = json_pack("{s:b}", "deferred", 1);
	UNIT_EXPECT_INT("deferred", ctl_client_call(c, "ticks", args, 5000, &m, &err), 0);
	UNIT_EXPECT_STR("deferred result", json_string_value(json_object_get(m.value, "later")),
	                "done");
	ctl_msg_clear(&m);
	json_decref(args);

	/* An endless stream, cancelled by the client: items, then the terminator, then the cancel
	 * result. */
	args = json_pack("{s:i}", "count", 1000000);
	CU_ASSERT_EQUAL(ctl_client_send(c, "ticks", args, &id, &err), 0);
	json_decref(args);
	CU_ASSERT_EQUAL_FATAL(ctl_client_read(c, 5000, &m, &err), 0);
	UNIT_EXPECT_INT("endless item", m.kind, CTL_MSG_STREAM);
	ctl_msg_clear(&m);
	args = json_pack("{s:I}", "id", id);
	{
		json_int_t cid;
		int got_end = 0, got_result = 0;

		CU_ASSERT_EQUAL(ctl_client_send(c, "cancel", args, &cid, &err), 0);
		for (i = 0; i < 1000 && !got_result; i++) {
			CU_ASSERT_EQUAL_FATAL(ctl_client_read(c, 5000, &m, &err), 0);
			if (m.id == id && m.kind == CTL_MSG_END)
				got_end = 1;
			if (m.id == cid && m.kind == CTL_MSG_RESULT)
				got_result = 1;
			ctl_msg_clear(&m);
		}
		CU_ASSERT_TRUE(got_end);
		CU_ASSERT_TRUE(got_result);
	}
	json_decref(args);

	/* Another endless stream, left open: closing the client cancels it in the server. */
	args = json_pack("{s:i}", "count", 1000000);
	CU_ASSERT_EQUAL(ctl_client_send(c, "ticks", args, &id, &err), 0);
	json_decref(args);
	CU_ASSERT_EQUAL(ctl_client_read(c, 5000, &m, &err), 0);
	ctl_msg_clear(&m);
	ctl_client_close(&c);
	harness_stop(&h);
	UNIT_EXPECT_INT("cancel callbacks", g_cancelled, 2);
	free(err);
}

/* A client that asks for more than max_output and does not read is dropped, not buffered. */
static void
test_slow_reader(void)
{
	struct control_opts opts = {.max_output = 64 * 1024};
	struct harness h;
	struct ctl_client *c = NULL;
	struct ctl_msg m;
	json_t *args;
	char *err = NULL;
	long items = 0;
	int rc, ended = 0;

	CU_ASSERT_EQUAL_FATAL(harness_start(&h, &opts), 0);
	harness_run(&h);
	CU_ASSERT_EQUAL_FATAL(ctl_client_connect(h.path, 5000, &c, &err), 0);
	args = json_pack("{s:i}", "count", 20000); /* 1.6 MB: more than the socket buffers and the cap */
	CU_ASSERT_EQUAL(ctl_client_send(c, "flood", args, NULL, &err), 0);
	json_decref(args);
	while ((rc = ctl_client_read(c, 30000, &m, &err)) == 0) {
		if (m.kind == CTL_MSG_STREAM)
			items++;
		else if (m.kind == CTL_MSG_END)
			ended = 1;
		ctl_msg_clear(&m);
	}
	UNIT_EXPECT_INT("dropped: connection closed", rc, KUMO_EIO);
	CU_ASSERT_FALSE(ended);
	CU_ASSERT_TRUE(items < 20000);
	free(err);
	ctl_client_close(&c);
	harness_stop(&h);
}

static void
test_client_cap(void)
{
	struct control_opts opts = {.max_clients = 2};
	struct harness h;
	struct ctl_client *a = NULL, *b = NULL, *c = NULL;
	char *err = NULL;
	int i, rc = -1;

	CU_ASSERT_EQUAL_FATAL(harness_start(&h, &opts), 0);
	harness_run(&h);
	CU_ASSERT_EQUAL(ctl_client_connect(h.path, 5000, &a, &err), 0);
	CU_ASSERT_EQUAL(ctl_client_connect(h.path, 5000, &b, &err), 0);
	UNIT_EXPECT_INT("third refused", ctl_client_connect(h.path, 5000, &c, &err), KUMO_EPROTO);
	CU_ASSERT_PTR_NOT_NULL(err != NULL ? strstr(err, "too many control clients (at most 2)")
	                                   : NULL);
	free(err);
	err = NULL;
	ctl_client_close(&a);
	/* The server notices the close on its next loop turn: retry, bounded. */
	for (i = 0; i < 100 && rc != 0; i++) {
		rc = ctl_client_connect(h.path, 5000, &c, &err);
		free(err);
		err = NULL;
		if (rc != 0)
			usleep(20000);
	}
	UNIT_EXPECT_INT("a slot again", rc, 0);
	ctl_client_close(&b);
	ctl_client_close(&c);
	harness_stop(&h);
}

static void
test_connect_errors(void)
{
	struct ctl_client *c = NULL;
	char *err = NULL;
	char dir[] = "/tmp/kumo-ctl.XXXXXX", path[100];
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/missing.sock", dir);
	CU_ASSERT_TRUE(ctl_client_connect(path, 1000, &c, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(err != NULL ? strstr(err, "is kumod running?") : NULL);
	CU_ASSERT_PTR_NOT_NULL(err != NULL ? strstr(err, path) : NULL);
	free(err);
	err = NULL;

	/* A stale socket file: nobody listening. */
	snprintf(path, sizeof(path), "%s/stale.sock", dir);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_EQUAL(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	CU_ASSERT_TRUE(ctl_client_connect(path, 1000, &c, &err) < 0);
	CU_ASSERT_PTR_NOT_NULL(err != NULL ? strstr(err, "connection refused") : NULL);
	free(err);
	err = NULL;

	/* Listening but silent: the hello times out. */
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_EQUAL(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	CU_ASSERT_EQUAL(listen(fd, 4), 0);
	UNIT_EXPECT_INT("silent", ctl_client_connect(path, 200, &c, &err), KUMO_ETIMEDOUT);
	CU_ASSERT_PTR_NOT_NULL(err != NULL ? strstr(err, "no hello") : NULL);
	free(err);
	err = NULL;

	/* The server replaces a stale socket but refuses a live one and a regular file. */
	{
		uv_loop_t loop;
		struct control_server *srv = NULL;
		int rfd;

		uv_loop_init(&loop);
		UNIT_EXPECT_INT(
		    "live socket refused",
		    control_server_start(&loop, path, NULL, demo_table, NULL, &srv, &err) < 0, 1);
		CU_ASSERT_PTR_NOT_NULL(err != NULL ? strstr(err, "another server") : NULL);
		free(err);
		err = NULL;
		close(fd);
		UNIT_EXPECT_INT(
		    "stale replaced",
		    control_server_start(&loop, path, NULL, demo_table, NULL, &srv, &err), 0);
		control_server_stop(&srv);
		uv_run(&loop, UV_RUN_DEFAULT);
		rfd = open(path, O_CREAT | O_WRONLY, 0600);
		close(rfd);
		UNIT_EXPECT_INT(
		    "regular file refused",
		    control_server_start(&loop, path, NULL, demo_table, NULL, &srv, &err) < 0, 1);
		free(err);
		err = NULL;
		unlink(path);
		CU_ASSERT_EQUAL(uv_loop_close(&loop), 0);
	}
	rmdir(dir);
}

/*
 * SO_PEERCRED: a child that became nobody (65534) is refused unless its
 * uid is allowed. Runs the loop in this thread (no other threads exist, so
 * fork is safe); needs root to change uid.
 */
static int
peer_child_result(const uid_t *allowed, size_t nallowed)
{
	struct control_opts opts = {
	    .mode = 0666, .allowed_uids = allowed, .n_allowed_uids = nallowed};
	struct harness h;
	pid_t pid;
	int status = -1, i;

	if (harness_start(&h, &opts) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		struct ctl_client *c = NULL;
		char *err = NULL;
		int rc;

		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(3);
		rc = ctl_client_connect(h.path, 5000, &c, &err);
		if (rc == 0)
			_exit(0);
		_exit(err != NULL && strstr(err, "permission denied: uid 65534") != NULL ? 1 : 2);
	}
	for (i = 0; i < 5000 && waitpid(pid, &status, WNOHANG) == 0; i++) {
		uv_run(&h.loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	if (i == 5000) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	control_server_stop(&h.srv);
	uv_close((uv_handle_t *)&h.stop, NULL);
	uv_run(&h.loop, UV_RUN_DEFAULT);
	uv_loop_close(&h.loop);
	rmdir(h.dir);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
test_peer_cred(void)
{
	static const uid_t nobody = 65534;

	if (geteuid() != 0) {
		fprintf(stderr, "  (peer credential test needs root: skipped)\n");
		return;
	}
	UNIT_EXPECT_INT("nobody refused", peer_child_result(NULL, 0), 1);
	UNIT_EXPECT_INT("nobody allowed by uid", peer_child_result(&nobody, 1), 0);
}

int
main(void)
{
	static const struct unit_test tests[] = {
	    {"reader lines", test_reader_lines},
	    {"reader cap", test_reader_cap},
	    {"request parse", test_request_parse},
	    {"message codecs", test_msg_codecs},
	    {"peer credentials", test_peer_cred},
	    {"round trip", test_round_trip},
	    {"bad input", test_bad_input},
	    {"streaming", test_streaming},
	    {"slow reader", test_slow_reader},
	    {"client cap", test_client_cap},
	    {"connect errors", test_connect_errors},
	    {NULL, NULL},
	};

	/* As in kumod: a peer that vanishes mid-write is an EPIPE, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	return unit_run("ctl", tests);
}
