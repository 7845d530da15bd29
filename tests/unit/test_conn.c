/*
 * test_conn.c: conn against real sockets on 127.0.0.1. A libuv uv_tcp
 * server in the same loop speaks a tiny greeting/ping/pong exchange; other
 * cases cover refusal, the connect timeout (a listener whose accept queue
 * is full drops the SYN), the phase timer against a server that never
 * speaks, binding a source address (127.0.0.2, seen by the server), a
 * 4 MB write with on_drain, EOF after data, closing inside callbacks, and
 * the server side (conn_accept). Every loop run is bounded by a guard.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <uv.h>

#include "buf.h"
#include "conn.h"
#include "kumo.h"
#include "unit.h"
#include "unit_loop.h"



/* ---- a uv_tcp server: greets, answers "ping" with "pong", counts bytes ---- */

struct tcpsrv {
	uv_tcp_t listener;
	uv_tcp_t client;
	int port;
	int accepted;
	int client_open;
	const char *greeting; /* NULL: never speak */
	size_t received;
	char peer_ip[64];
	int eof;
	struct buf got;
};

static void
tcpsrv_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	static char space[65536];

	(void)h;
	(void)suggested;
	b->base = space;
	b->len = sizeof(space);
}

static void
tcpsrv_write_done(uv_write_t *w, int status)
{
	(void)status;
	free(w);
}

static void
tcpsrv_send(struct tcpsrv *s, const char *text)
{
	uv_write_t *w = xmalloc(sizeof(*w));
	uv_buf_t b = uv_buf_init((char *)(uintptr_t)text, (unsigned)strlen(text));

	uv_write(w, (uv_stream_t *)&s->client, &b, 1, tcpsrv_write_done);
}

static void
tcpsrv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct tcpsrv *s = st->data;

	if (n < 0) {
		s->eof = 1;
		uv_read_stop(st);
		return;
	}
	s->received += (size_t)n;
	if (s->got.len < 4096)
		buf_append(&s->got, b->base, (size_t)n < 4096 ? (size_t)n : 4096);
	if (strstr(s->got.data ? s->got.data : "", "ping\r\n") != NULL && strstr(s->got.data, "pong") == NULL) {
		buf_puts(&s->got, "[pong]");
		tcpsrv_send(s, "pong\r\n");
	}
}

static void
tcpsrv_conn(uv_stream_t *l, int status)
{
	struct tcpsrv *s = l->data;
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (status < 0 || s->accepted)
		return;
	uv_tcp_init(&unit_loop, &s->client);
	s->client.data = s;
	if (uv_accept(l, (uv_stream_t *)&s->client) != 0)
		return;
	s->accepted = 1;
	s->client_open = 1;
	if (uv_tcp_getpeername(&s->client, (struct sockaddr *)&ss, &len) == 0)
		uv_ip4_name((struct sockaddr_in *)&ss, s->peer_ip, sizeof(s->peer_ip));
	uv_read_start((uv_stream_t *)&s->client, tcpsrv_alloc, tcpsrv_read);
	if (s->greeting != NULL)
		tcpsrv_send(s, s->greeting);
}

static void
tcpsrv_start(struct tcpsrv *s, const char *greeting)
{
	struct sockaddr_in sin = unit_addr4("127.0.0.1", 0);
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	memset(s, 0, sizeof(*s));
	buf_init(&s->got, 0);
	s->greeting = greeting;
	uv_tcp_init(&unit_loop, &s->listener);
	s->listener.data = s;
	CU_ASSERT_EQUAL_FATAL(uv_tcp_bind(&s->listener, (struct sockaddr *)&sin, 0), 0);
	CU_ASSERT_EQUAL_FATAL(uv_listen((uv_stream_t *)&s->listener, 8, tcpsrv_conn), 0);
	uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
	s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void
tcpsrv_stop(struct tcpsrv *s)
{
	uv_close((uv_handle_t *)&s->listener, NULL);
	if (s->client_open)
		uv_close((uv_handle_t *)&s->client, NULL);
	s->client_open = 0;
}

/* ---- the client side under test ---- */

struct cli {
	struct conn *c;
	int connected;
	int connect_status;
	int err;
	int got_err;
	int drained;
	int closed;
	struct buf got;
	int done;
	int close_in_read; /* conn_close from inside on_read */
	uint64_t t_start, t_event;
};

static void
cli_connect(struct conn *c, int status, void *arg)
{
	struct cli *k = arg;

	k->connected = 1;
	k->connect_status = status;
	k->t_event = uv_now(&unit_loop);
	if (status < 0)
		k->done = 1;
	(void)c;
}

static void
cli_read(struct conn *c, struct buf *in, void *arg)
{
	struct cli *k = arg;

	buf_append(&k->got, in->data, in->len);
	buf_drain(in, in->len);
	if (strstr(k->got.data, "hello\r\n") != NULL && strstr(k->got.data, "[sent]") == NULL) {
		buf_puts(&k->got, "[sent]");
		CU_ASSERT_EQUAL(conn_write(c, "ping\r\n", 6), 0);
	}
	if (strstr(k->got.data, "pong\r\n") != NULL) {
		k->done = 1;
		if (k->close_in_read)
			conn_close(c);
	}
}

static void
cli_error(struct conn *c, int err, void *arg)
{
	struct cli *k = arg;

	(void)c;
	k->err = err;
	k->got_err++;
	k->t_event = uv_now(&unit_loop);
	k->done = 1;
}

static void
cli_drain(struct conn *c, void *arg)
{
	struct cli *k = arg;

	(void)c;
	k->drained++;
}

static void
cli_close(struct conn *c, void *arg)
{
	struct cli *k = arg;

	(void)c;
	k->closed++;
	k->c = NULL;
}

static const struct conn_cbs cli_cbs = {
	.on_connect = cli_connect,
	.on_read = cli_read,
	.on_error = cli_error,
	.on_drain = cli_drain,
	.on_close = cli_close,
};

static void
cli_init(struct cli *k)
{
	memset(k, 0, sizeof(*k));
	buf_init(&k->got, 0);
	k->c = conn_new(&unit_loop, &cli_cbs, k);
	k->t_start = uv_now(&unit_loop);
}

static void
cli_finish(struct cli *k)
{
	if (k->c != NULL)
		conn_close(k->c);
}

static void
test_exchange(void)
{
	struct tcpsrv s;
	struct cli k;
	struct sockaddr_in sin;
	char str[64];

	unit_loop_begin();
	tcpsrv_start(&s, "hello\r\n");
	cli_init(&k);
	sin = unit_addr4("127.0.0.1", s.port);
	UNIT_EXPECT_INT("connect", conn_connect(k.c, (struct sockaddr *)&sin, NULL, 2000), 0);
	UNIT_EXPECT_INT("second connect", conn_connect(k.c, (struct sockaddr *)&sin, NULL, 2000), KUMO_EINVAL);
	CU_ASSERT_TRUE(unit_run_until(&k.done));
	UNIT_EXPECT_INT("connect status", k.connect_status, 0);
	UNIT_EXPECT_INT("errors", k.got_err, 0);
	CU_ASSERT_TRUE(strstr(k.got.data, "hello\r\n[sent]pong\r\n") != NULL);
	CU_ASSERT_TRUE(strstr(s.got.data, "ping\r\n") != NULL);
	UNIT_EXPECT_INT("drained", k.drained, 1);
	snprintf(str, sizeof(str), "127.0.0.1:%d", s.port);
	{
		char got[64];

		UNIT_EXPECT_STR("peer", conn_addr_str(conn_peer(k.c), got, sizeof(got)), str);
		conn_addr_str(conn_local(k.c), got, sizeof(got));
		CU_ASSERT_TRUE(strncmp(got, "127.0.0.1:", 10) == 0);
	}
	CU_ASSERT_FALSE(conn_is_tls(k.c));
	CU_ASSERT_PTR_NULL(conn_tls_session(k.c));
	CU_ASSERT_TRUE(conn_fd(k.c) >= 0);
	cli_finish(&k);
	CU_ASSERT_TRUE(conn_is_closing(k.c));
	conn_close(k.c); /* twice is fine */
	UNIT_EXPECT_INT("write after close", conn_write(k.c, "x", 1), KUMO_EINVAL);
	tcpsrv_stop(&s);
	unit_loop_end();
	UNIT_EXPECT_INT("closed once", k.closed, 1);
	buf_release(&k.got);
	buf_release(&s.got);
}

static void
test_close_inside_read(void)
{
	struct tcpsrv s;
	struct cli k;
	struct sockaddr_in sin;

	unit_loop_begin();
	tcpsrv_start(&s, "hello\r\n");
	cli_init(&k);
	k.close_in_read = 1;
	sin = unit_addr4("127.0.0.1", s.port);
	UNIT_EXPECT_INT("connect", conn_connect(k.c, (struct sockaddr *)&sin, NULL, 2000), 0);
	CU_ASSERT_TRUE(unit_run_until(&k.closed));
	UNIT_EXPECT_INT("no error after close", k.got_err, 0);
	tcpsrv_stop(&s);
	unit_loop_end();
	UNIT_EXPECT_INT("closed once", k.closed, 1);
	buf_release(&k.got);
	buf_release(&s.got);
}

/* A port with nobody listening: bind one, note it, close it. */
static int
dead_port(void)
{
	struct sockaddr_in sin = unit_addr4("127.0.0.1", 0);
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(fd, (struct sockaddr *)&sin, &len);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static void
test_refused(void)
{
	struct cli k;
	struct sockaddr_in sin;

	unit_loop_begin();
	cli_init(&k);
	sin = unit_addr4("127.0.0.1", dead_port());
	UNIT_EXPECT_INT("connect", conn_connect(k.c, (struct sockaddr *)&sin, NULL, 3000), 0);
	CU_ASSERT_TRUE(unit_run_until(&k.connected));
	UNIT_EXPECT_INT("status", k.connect_status, UV_ECONNREFUSED);
	CU_ASSERT_TRUE(k.t_event - k.t_start < 1000);
	CU_ASSERT_TRUE(strstr(conn_error_text(k.c), "refused") != NULL);
	cli_finish(&k);
	unit_loop_end();
	UNIT_EXPECT_INT("closed", k.closed, 1);
	buf_release(&k.got);
}

static void
test_connect_timeout(void)
{
	struct sockaddr_in sin = unit_addr4("127.0.0.1", 0);
	socklen_t len = sizeof(sin);
	int lfd, dummy, r;
	struct cli k;

	/* A listener that never accepts, its queue filled: further SYNs are dropped. */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_EQUAL_FATAL(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	CU_ASSERT_EQUAL_FATAL(listen(lfd, 0), 0);
	getsockname(lfd, (struct sockaddr *)&sin, &len);
	dummy = socket(AF_INET, SOCK_STREAM, 0);
	r = connect(dummy, (struct sockaddr *)&sin, sizeof(sin));
	CU_ASSERT_EQUAL(r, 0);

	unit_loop_begin();
	cli_init(&k);
	UNIT_EXPECT_INT("connect", conn_connect(k.c, (struct sockaddr *)&sin, NULL, 300), 0);
	CU_ASSERT_TRUE(unit_run_until(&k.connected));
	UNIT_EXPECT_INT("status", k.connect_status, KUMO_ETIMEDOUT);
	CU_ASSERT_TRUE(k.t_event - k.t_start >= 250 && k.t_event - k.t_start < 2000);
	cli_finish(&k);
	unit_loop_end();
	close(dummy);
	close(lfd);
	buf_release(&k.got);
}

static void
test_phase_timeout(void)
{
	struct tcpsrv s;
	struct cli k;
	struct sockaddr_in sin;

	unit_loop_begin();
	tcpsrv_start(&s, NULL); /* never speaks */
	cli_init(&k);
	sin = unit_addr4("127.0.0.1", s.port);
	UNIT_EXPECT_INT("connect", conn_connect(k.c, (struct sockaddr *)&sin, NULL, 2000), 0);
	CU_ASSERT_TRUE(unit_run_until(&k.connected));
	UNIT_EXPECT_INT("connect status", k.connect_status, 0);
	/* A first deadline, replaced by a later one: only the second counts. */
	conn_set_timeout(k.c, 50);
	conn_set_timeout(k.c, 250);
	k.t_start = uv_now(&unit_loop);
	CU_ASSERT_TRUE(unit_run_until(&k.done));
	UNIT_EXPECT_INT("error", k.err, KUMO_ETIMEDOUT);
	UNIT_EXPECT_INT("errors", k.got_err, 1);
	CU_ASSERT_TRUE(k.t_event - k.t_start >= 240 && k.t_event - k.t_start < 2000);
	if (!(k.t_event - k.t_start >= 240))
		fprintf(stderr, "  fired after %llu ms\n", (unsigned long long)(k.t_event - k.t_start));
	cli_finish(&k);
	tcpsrv_stop(&s);
	unit_loop_end();
	buf_release(&k.got);
	buf_release(&s.got);
}

static void
test_timeout_disarmed(void)
{
	struct tcpsrv s;
	struct cli k;
	struct sockaddr_in sin;
	uint64_t until;

	unit_loop_begin();
	tcpsrv_start(&s, NULL);
	cli_init(&k);
	sin = unit_addr4("127.0.0.1", s.port);
	conn_connect(k.c, (struct sockaddr *)&sin, NULL, 2000);
	CU_ASSERT_TRUE(unit_run_until(&k.connected));
	conn_set_timeout(k.c, 100);
	conn_set_timeout(k.c, 0);
	/* 300 ms of loop turns: nothing may fire. */
	uv_update_time(&unit_loop);
	until = uv_now(&unit_loop) + 300;
	while (uv_now(&unit_loop) < until && !k.done) {
		uv_run(&unit_loop, UV_RUN_NOWAIT);
		usleep(10000);
		uv_update_time(&unit_loop);
	}
	UNIT_EXPECT_INT("no timeout when disarmed", k.got_err, 0);
	cli_finish(&k);
	tcpsrv_stop(&s);
	unit_loop_end();
	buf_release(&k.got);
	buf_release(&s.got);
}

static void
test_source_address(void)
{
	struct tcpsrv s;
	struct cli k;
	struct sockaddr_in sin, src;

	unit_loop_begin();
	tcpsrv_start(&s, "hello\r\n");
	cli_init(&k);
	sin = unit_addr4("127.0.0.1", s.port);
	src = unit_addr4("127.0.0.2", 0);
	UNIT_EXPECT_INT("connect", conn_connect(k.c, (struct sockaddr *)&sin, (struct sockaddr *)&src, 2000), 0);
	CU_ASSERT_TRUE(unit_run_until(&k.done));
	UNIT_EXPECT_INT("connect status", k.connect_status, 0);
	UNIT_EXPECT_STR("server saw", s.peer_ip, "127.0.0.2");
	cli_finish(&k);

	/* Binding the listener's own port fails at once, with no callback. */
	buf_release(&k.got);
	cli_init(&k);
	src = unit_addr4("127.0.0.1", s.port);
	UNIT_EXPECT_INT("bind conflict", conn_connect(k.c, (struct sockaddr *)&sin, (struct sockaddr *)&src, 2000),
			UV_EADDRINUSE);
	cli_finish(&k);
	tcpsrv_stop(&s);
	unit_loop_end();
	UNIT_EXPECT_INT("no connect callback", k.connected, 0);
	buf_release(&k.got);
	buf_release(&s.got);
}

static void
test_big_write(void)
{
	const size_t total = 4 * 1024 * 1024;
	struct tcpsrv s;
	struct cli k;
	struct sockaddr_in sin;
	char *block = xmalloc(total);
	int enough = 0;

	memset(block, 'x', total);
	unit_loop_begin();
	tcpsrv_start(&s, NULL);
	cli_init(&k);
	sin = unit_addr4("127.0.0.1", s.port);
	conn_connect(k.c, (struct sockaddr *)&sin, NULL, 2000);
	/* Queued before the connection is up: goes out once connected. */
	UNIT_EXPECT_INT("write", conn_write(k.c, block, total / 2), 0);
	CU_ASSERT_TRUE(unit_run_until(&k.connected));
	memcpy(buf_reserve(conn_wbuf(k.c), total / 2), block, total / 2);
	buf_commit(conn_wbuf(k.c), total / 2);
	UNIT_EXPECT_INT("flush", conn_flush(k.c), 0);
	while (!unit_guard_fired && !(s.received == total && k.drained > 0))
		uv_run(&unit_loop, UV_RUN_ONCE);
	enough = s.received == total;
	UNIT_EXPECT_INT("received", s.received, total);
	CU_ASSERT_TRUE(enough);
	CU_ASSERT_TRUE(k.drained >= 1);
	UNIT_EXPECT_INT("pending", conn_pending(k.c), 0);
	cli_finish(&k);
	tcpsrv_stop(&s);
	unit_loop_end();
	free(block);
	buf_release(&k.got);
	buf_release(&s.got);
}

/* ---- server side: conn_accept, EOF after data ---- */

struct acc {
	struct conn *c;
	struct buf got;
	int err;
	int closed;
};

static void
acc_read(struct conn *c, struct buf *in, void *arg)
{
	struct acc *a = arg;

	(void)c;
	buf_append(&a->got, in->data, in->len);
	buf_drain(in, in->len);
}

static void
acc_error(struct conn *c, int err, void *arg)
{
	struct acc *a = arg;

	a->err = err;
	conn_close(c); /* close inside the callback */
}

static void
acc_close(struct conn *c, void *arg)
{
	struct acc *a = arg;

	(void)c;
	a->closed = 1;
	a->c = NULL;
}

static void
test_accept_eof(void)
{
	static const struct conn_cbs cbs = {.on_read = acc_read, .on_error = acc_error, .on_close = acc_close};
	struct sockaddr_in sin = unit_addr4("127.0.0.1", 0);
	socklen_t len = sizeof(sin);
	int lfd, cfd, afd;
	struct acc a;

	memset(&a, 0, sizeof(a));
	buf_init(&a.got, 0);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	bind(lfd, (struct sockaddr *)&sin, sizeof(sin));
	listen(lfd, 4);
	getsockname(lfd, (struct sockaddr *)&sin, &len);
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_EQUAL_FATAL(connect(cfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	afd = accept(lfd, NULL, NULL);
	CU_ASSERT_TRUE_FATAL(afd >= 0);
	/* The peer sends and closes before we even start. */
	CU_ASSERT_EQUAL(write(cfd, "EHLO x\r\nQUIT\r\n", 14), 14);
	close(cfd);

	unit_loop_begin();
	a.c = conn_new(&unit_loop, &cbs, &a);
	UNIT_EXPECT_INT("accept", conn_accept(a.c, afd), 0);
	{
		char got[64];

		conn_addr_str(conn_peer(a.c), got, sizeof(got));
		CU_ASSERT_TRUE(strncmp(got, "127.0.0.1:", 10) == 0);
	}
	CU_ASSERT_TRUE(unit_run_until(&a.closed));
	UNIT_EXPECT_STR("data before EOF", a.got.data, "EHLO x\r\nQUIT\r\n");
	UNIT_EXPECT_INT("EOF", a.err, UV_EOF);
	unit_loop_end();
	close(lfd);
	buf_release(&a.got);
}

static void
test_read_cap(void)
{
	static const struct conn_cbs cbs = {.on_read = NULL, .on_error = acc_error, .on_close = acc_close};
	struct sockaddr_in sin = unit_addr4("127.0.0.1", 0);
	socklen_t len = sizeof(sin);
	int lfd, cfd, afd;
	char junk[3000];
	struct acc a;

	/* Nobody drains the read buffer: crossing its cap is an error, not growth. */
	memset(&a, 0, sizeof(a));
	memset(junk, 'j', sizeof(junk));
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	bind(lfd, (struct sockaddr *)&sin, sizeof(sin));
	listen(lfd, 4);
	getsockname(lfd, (struct sockaddr *)&sin, &len);
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_EQUAL_FATAL(connect(cfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	afd = accept(lfd, NULL, NULL);
	CU_ASSERT_EQUAL(write(cfd, junk, sizeof(junk)), (ssize_t)sizeof(junk));

	unit_loop_begin();
	a.c = conn_new(&unit_loop, &cbs, &a);
	conn_set_read_max(a.c, 1000);
	UNIT_EXPECT_INT("accept", conn_accept(a.c, afd), 0);
	CU_ASSERT_TRUE(unit_run_until(&a.closed));
	UNIT_EXPECT_INT("cap", a.err, KUMO_ENOSPACE);
	unit_loop_end();
	close(cfd);
	close(lfd);
}

/* ---- pause and resume: buffered bytes come back, then the EOF ---- */

struct pause {
	struct conn *c;
	struct buf log;
	uv_timer_t resume;
	int calls;
	int closed;
};

static void
pause_resume(uv_timer_t *t)
{
	struct pause *p = t->data;

	buf_puts(&p->log, "[resume]");
	conn_read_start(p->c);
}

static void
pause_read(struct conn *c, struct buf *in, void *arg)
{
	struct pause *p = arg;
	char *nl = memchr(in->data, '\n', in->len);

	p->calls++;
	if (nl == NULL)
		return;
	/* Take one line per call, and pause after the first. */
	buf_append(&p->log, in->data, (size_t)(nl - in->data) + 1);
	buf_drain(in, (size_t)(nl - in->data) + 1);
	if (p->calls == 1) {
		conn_read_stop(c);
		uv_timer_start(&p->resume, pause_resume, 100, 0);
	}
}

static void
pause_error(struct conn *c, int err, void *arg)
{
	struct pause *p = arg;

	buf_appendf(&p->log, "[%s]", err == UV_EOF ? "EOF" : kumo_strerror(err));
	conn_close(c);
}

static void
pause_close(struct conn *c, void *arg)
{
	struct pause *p = arg;

	(void)c;
	p->closed = 1;
}

static void
test_pause_resume(void)
{
	static const struct conn_cbs cbs = {.on_read = pause_read, .on_error = pause_error, .on_close = pause_close};
	struct sockaddr_in sin = unit_addr4("127.0.0.1", 0);
	socklen_t len = sizeof(sin);
	int lfd, cfd, afd;
	struct pause p;

	memset(&p, 0, sizeof(p));
	buf_init(&p.log, 0);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	bind(lfd, (struct sockaddr *)&sin, sizeof(sin));
	listen(lfd, 4);
	getsockname(lfd, (struct sockaddr *)&sin, &len);
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_EQUAL_FATAL(connect(cfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	afd = accept(lfd, NULL, NULL);
	CU_ASSERT_EQUAL(write(cfd, "one\r\ntwo\r\n", 10), 10);
	close(cfd);

	unit_loop_begin();
	uv_timer_init(&unit_loop, &p.resume);
	p.resume.data = &p;
	p.c = conn_new(&unit_loop, &cbs, &p);
	UNIT_EXPECT_INT("accept", conn_accept(p.c, afd), 0);
	CU_ASSERT_TRUE(unit_run_until(&p.closed));
	UNIT_EXPECT_STR("order", p.log.data, "one\r\n[resume]two\r\n[EOF]");
	uv_close((uv_handle_t *)&p.resume, NULL);
	unit_loop_end();
	close(lfd);
	buf_release(&p.log);
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{"exchange", test_exchange},
		{"close inside read", test_close_inside_read},
		{"refused", test_refused},
		{"connect timeout", test_connect_timeout},
		{"phase timeout", test_phase_timeout},
		{"timeout disarmed", test_timeout_disarmed},
		{"source address", test_source_address},
		{"big write", test_big_write},
		{"accept and EOF", test_accept_eof},
		{"read cap", test_read_cap},
		{"pause and resume", test_pause_resume},
		{NULL, NULL},
	};

	return unit_run("conn", tests);
}
