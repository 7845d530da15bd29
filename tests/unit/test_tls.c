/*
 * test_tls.c: the enable_tls mode names, priority-string checks, context
 * building, and real handshakes on 127.0.0.1 between two conns in one
 * loop (a GnuTLS server on an accepted socket, a client on a connected
 * one) with a self-signed certificate made at test time: verification
 * fails for the verifying modes, is skipped for the insecure ones, passes
 * when the certificate is the trust anchor and the name matches, and the
 * pinned versions refuse TLS 1.1. Also the STARTTLS injection defense.
 * Every loop run is bounded by a guard timer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <uv.h>

#include "buf.h"
#include "conn.h"
#include "kumo.h"
#include "tls.h"
#include "unit.h"
#include "unit_loop.h"

#define CN "mx.example.test"

static char tmpdir[64];
static char cert_path[128];
static char key_path[128];

/* ---- a listening socket on 127.0.0.1:0 that hands accepted fds over ---- */

struct listener {
	uv_poll_t poll;
	int fd;
	int port;
	void (*on_accept)(int fd, void *arg);
	void *arg;
};

static void
listener_cb(uv_poll_t *h, int status, int events)
{
	struct listener *l = h->data;
	int fd;

	(void)events;
	if (status < 0)
		return;
	fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0)
		l->on_accept(fd, l->arg);
}

static int
listener_open(struct listener *l, void (*on_accept)(int, void *), void *arg)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(l->fd, 16) < 0 ||
	    getsockname(l->fd, (struct sockaddr *)&sin, &len) < 0)
		return -errno;
	l->port = ntohs(sin.sin_port);
	l->on_accept = on_accept;
	l->arg = arg;
	uv_poll_init_socket(&unit_loop, &l->poll, l->fd);
	l->poll.data = l;
	uv_poll_start(&l->poll, UV_READABLE, listener_cb);
	return 0;
}

static void
listener_closed(uv_handle_t *h)
{
	struct listener *l = h->data;

	close(l->fd);
	l->fd = -1;
}

static void
listener_close(struct listener *l)
{
	uv_close((uv_handle_t *)&l->poll, listener_closed);
}

static struct sockaddr_in
loopback(int port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sin;
}

/* ---- modes and priorities ---- */

static void
test_mode_parse(void)
{
	static const struct {
		const char *in;
		int ret;
		enum tls_mode mode;
	} rows[] = {
		{"Disabled", 0, TLS_DISABLED},
		{"Opportunistic", 0, TLS_OPPORTUNISTIC},
		{"OpportunisticInsecure", 0, TLS_OPPORTUNISTIC_INSECURE},
		{"Required", 0, TLS_REQUIRED},
		{"RequiredInsecure", 0, TLS_REQUIRED_INSECURE},
		{"opportunistic", 0, TLS_OPPORTUNISTIC},
		{"REQUIREDINSECURE", 0, TLS_REQUIRED_INSECURE},
		{"opportunisticinsecure", 0, TLS_OPPORTUNISTIC_INSECURE},
		{"disabled", 0, TLS_DISABLED},
		{"", KUMO_EPARSE, TLS_DISABLED},
		{"Opportunistic ", KUMO_EPARSE, TLS_DISABLED},
		{"Opportunistic-Insecure", KUMO_EPARSE, TLS_DISABLED},
		{"Yes", KUMO_EPARSE, TLS_DISABLED},
		{"Require", KUMO_EPARSE, TLS_DISABLED},
		{"RequiredInsecureX", KUMO_EPARSE, TLS_DISABLED},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		enum tls_mode m = (enum tls_mode)99;
		int r = tls_mode_parse(rows[i].in, &m);

		UNIT_EXPECT_INT(rows[i].in, r, rows[i].ret);
		if (rows[i].ret == 0)
			UNIT_EXPECT_INT(rows[i].in, m, rows[i].mode);
		else
			UNIT_EXPECT_INT(rows[i].in, m, 99); /* untouched on failure */
	}
	{
		enum tls_mode m = TLS_REQUIRED;

		UNIT_EXPECT_INT("NULL", tls_mode_parse(NULL, &m), KUMO_EPARSE);
	}
}

static void
test_mode_str(void)
{
	static const struct {
		enum tls_mode mode;
		const char *name;
		int verifies, requires;
	} rows[] = {
		{TLS_DISABLED, "Disabled", 0, 0},
		{TLS_OPPORTUNISTIC, "Opportunistic", 1, 0},
		{TLS_OPPORTUNISTIC_INSECURE, "OpportunisticInsecure", 0, 0},
		{TLS_REQUIRED, "Required", 1, 1},
		{TLS_REQUIRED_INSECURE, "RequiredInsecure", 0, 1},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		enum tls_mode back;

		UNIT_EXPECT_STR("tls_mode_str", tls_mode_str(rows[i].mode), rows[i].name);
		UNIT_EXPECT_INT(rows[i].name, tls_mode_parse(tls_mode_str(rows[i].mode), &back), 0);
		UNIT_EXPECT_INT(rows[i].name, back, rows[i].mode);
		UNIT_EXPECT_INT(rows[i].name, tls_mode_verifies(rows[i].mode), rows[i].verifies);
		UNIT_EXPECT_INT(rows[i].name, tls_mode_requires(rows[i].mode), rows[i].requires);
	}
	UNIT_EXPECT_STR("bad mode", tls_mode_str((enum tls_mode)42), "?");
	UNIT_EXPECT_INT("default", TLS_MODE_DEFAULT, TLS_OPPORTUNISTIC);
}

static void
test_priority(void)
{
	static const struct {
		const char *prio;
		int ret;
		const char *err_has; /* a substring of the error message */
	} rows[] = {
		{TLS_DEFAULT_PRIORITY, 0, NULL},
		{"NORMAL", 0, NULL},
		{"SECURE256:-VERS-ALL:+VERS-TLS1.3", 0, NULL},
		{"NORMAL:+FOO", KUMO_EPARSE, "offset 7 (\"+FOO\")"},
		{"BOGUS", KUMO_EPARSE, "offset 0"},
		{"NORMAL:-VERS-ALL:+VERS-TLS9.9", KUMO_EPARSE, "+VERS-TLS9.9"},
		{"", KUMO_EPARSE, "empty"},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		char *err = NULL;
		int r = tls_priority_check(rows[i].prio, &err);

		UNIT_EXPECT_INT(rows[i].prio, r, rows[i].ret);
		if (rows[i].err_has != NULL) {
			CU_ASSERT_PTR_NOT_NULL(err);
			if (err == NULL || strstr(err, rows[i].err_has) == NULL)
				fprintf(stderr, "  %s: error \"%s\" lacks \"%s\"\n", rows[i].prio,
					err ? err : "(null)", rows[i].err_has);
			CU_ASSERT_TRUE(err != NULL && strstr(err, rows[i].err_has) != NULL);
		} else {
			CU_ASSERT_PTR_NULL(err);
		}
		free(err);
	}
	/* NULL err_r is allowed. */
	UNIT_EXPECT_INT("no err_r", tls_priority_check("NORMAL:+FOO", NULL), KUMO_EPARSE);
}

static void
test_ctx_errors(void)
{
	struct tls_ctx_config cfg;
	struct tls_ctx *ctx = NULL;
	char *err = NULL;
	int r;

	memset(&cfg, 0, sizeof(cfg));
	r = tls_ctx_new_server(&cfg, &ctx, &err);
	UNIT_EXPECT_INT("server without cert", r, KUMO_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(err);
	free(err);
	err = NULL;

	cfg.ca_file = "/nonexistent/ca.pem";
	r = tls_ctx_new_client(&cfg, &ctx, &err);
	CU_ASSERT_TRUE(r < 0);
	CU_ASSERT_TRUE(err != NULL && strstr(err, "/nonexistent/ca.pem") != NULL);
	free(err);
	err = NULL;

	cfg.ca_file = NULL;
	cfg.priority = "NORMAL:+FOO";
	r = tls_ctx_new_client(&cfg, &ctx, &err);
	UNIT_EXPECT_INT("bad priority", r, KUMO_EPARSE);
	CU_ASSERT_TRUE(err != NULL && strstr(err, "offset 7") != NULL);
	free(err);
	err = NULL;

	/* The system trust store loads; references count. */
	cfg.priority = NULL;
	r = tls_ctx_new_client(&cfg, &ctx, &err);
	UNIT_EXPECT_INT("system trust", r, 0);
	if (r == 0) {
		struct tls_ctx *again = tls_ctx_ref(ctx);

		CU_ASSERT_PTR_EQUAL(again, ctx);
		CU_ASSERT_FALSE(tls_ctx_is_server(ctx));
		tls_ctx_unref(&again);
		CU_ASSERT_PTR_NULL(again);
		tls_ctx_unref(&ctx);
		CU_ASSERT_PTR_NULL(ctx);
	}
	free(err);
	tls_ctx_unref(&ctx); /* NULL is fine */

	/* A server context from the generated pair. */
	cfg.cert_file = cert_path;
	cfg.key_file = key_path;
	err = NULL;
	r = tls_ctx_new_server(&cfg, &ctx, &err);
	UNIT_EXPECT_INT("server ctx", r, 0);
	if (err)
		fprintf(stderr, "  %s\n", err);
	free(err);
	if (r == 0) {
		CU_ASSERT_TRUE(tls_ctx_is_server(ctx));
		tls_ctx_unref(&ctx);
	}
	/* A key that does not exist. */
	cfg.key_file = "/nonexistent/key.pem";
	err = NULL;
	r = tls_ctx_new_server(&cfg, &ctx, &err);
	CU_ASSERT_TRUE(r < 0);
	CU_ASSERT_TRUE(err != NULL && strstr(err, "/nonexistent/key.pem") != NULL);
	free(err);
}

/* ---- handshakes between two conns ---- */

struct hs {
	struct tls_ctx *sctx, *cctx;
	struct tls_peer peer;
	struct conn *cli, *srv;
	int cli_status, srv_status;
	int cli_hs_done, srv_hs_done;
	int done;
	struct buf cli_got, srv_got;
	struct tls_info cli_info;
	char cli_err[300];
	int closed;
	/* injection test */
	const char *srv_plain_greeting; /* if set, the server writes this and does no TLS */
	int inject_ret;
	int early; /* the client writes during the handshake */
	char srv_text[64]; /* what the server received, kept after the run */
};

static void
hs_cli_tls(struct conn *c, int status, void *arg)
{
	struct hs *h = arg;

	h->cli_status = status;
	h->cli_hs_done = 1;
	conn_tls_info(c, &h->cli_info);
	snprintf(h->cli_err, sizeof(h->cli_err), "%s", conn_error_text(c));
	if (status == 0)
		conn_write(c, "ping\n", 5);
	else
		h->done = 1;
}

static void
hs_srv_tls(struct conn *c, int status, void *arg)
{
	struct hs *h = arg;

	(void)c;
	h->srv_status = status;
	h->srv_hs_done = 1;
}

static void
hs_cli_connect(struct conn *c, int status, void *arg)
{
	struct hs *h = arg;
	int r;

	if (status < 0) {
		h->cli_status = status;
		h->done = 1;
		return;
	}
	if (h->srv_plain_greeting != NULL)
		return; /* wait for the greeting first */
	r = conn_starttls(c, h->cctx, &h->peer, hs_cli_tls);
	if (r < 0) {
		h->cli_status = r;
		h->done = 1;
	}
	/* Written during the handshake: must travel encrypted, after it. */
	if (h->early)
		conn_write(c, "early\n", 6);
}

static void
hs_cli_read(struct conn *c, struct buf *in, void *arg)
{
	struct hs *h = arg;

	if (h->srv_plain_greeting != NULL && !h->cli_hs_done) {
		/* Consume exactly the 220 line, as an SMTP client would, then upgrade. */
		char *nl = memchr(in->data, '\n', in->len);

		if (nl == NULL)
			return;
		buf_drain(in, (size_t)(nl - in->data) + 1);
		h->inject_ret = conn_starttls(c, h->cctx, &h->peer, hs_cli_tls);
		h->cli_hs_done = 1;
		h->done = 1;
		return;
	}
	buf_append(&h->cli_got, in->data, in->len);
	buf_drain(in, in->len);
	if (strstr(h->cli_got.data, "pong\n") != NULL)
		h->done = 1;
}

static void
hs_srv_read(struct conn *c, struct buf *in, void *arg)
{
	struct hs *h = arg;

	buf_append(&h->srv_got, in->data, in->len);
	buf_drain(in, in->len);
	if (strstr(h->srv_got.data, "ping\n") != NULL)
		conn_write(c, "pong\n", 5);
}

static void
hs_error(struct conn *c, int err, void *arg)
{
	(void)c;
	(void)err;
	(void)arg;
}

static void
hs_cli_close(struct conn *c, void *arg)
{
	struct hs *h = arg;

	(void)c;
	h->cli = NULL;
	h->closed++;
}

static void
hs_srv_close(struct conn *c, void *arg)
{
	struct hs *h = arg;

	(void)c;
	h->srv = NULL;
	h->closed++;
}

static void
hs_accept(int fd, void *arg)
{
	static const struct conn_cbs cbs = {
		.on_read = hs_srv_read,
		.on_error = hs_error,
		.on_close = hs_srv_close,
	};
	struct hs *h = arg;

	if (h->srv != NULL) {
		close(fd);
		return;
	}
	h->srv = conn_new(&unit_loop, &cbs, h);
	CU_ASSERT_EQUAL(conn_accept(h->srv, fd), 0);
	conn_set_timeout(h->srv, 3000);
	if (h->srv_plain_greeting != NULL) {
		conn_write(h->srv, h->srv_plain_greeting, strlen(h->srv_plain_greeting));
		return;
	}
	CU_ASSERT_EQUAL(conn_starttls(h->srv, h->sctx, NULL, hs_srv_tls), 0);
}

/*
 * One client/server exchange: server priority sprio, client CA file ca
 * (NULL: system store), peer name and verify flag. Fills h.
 */
static void
run_handshake(struct hs *h, const char *sprio, const char *ca, const char *name, int verify)
{
	static const struct conn_cbs ccbs = {
		.on_connect = hs_cli_connect,
		.on_read = hs_cli_read,
		.on_error = hs_error,
		.on_close = hs_cli_close,
	};
	struct tls_ctx_config scfg = {sprio, NULL, cert_path, key_path};
	struct tls_ctx_config ccfg = {NULL, ca, NULL, NULL};
	struct listener l;
	struct sockaddr_in sin;
	char *err = NULL;
	int r;

	buf_init(&h->cli_got, 4096);
	buf_init(&h->srv_got, 4096);
	unit_loop_begin();
	r = tls_ctx_new_server(&scfg, &h->sctx, &err);
	UNIT_EXPECT_INT("server ctx", r, 0);
	if (err != NULL)
		fprintf(stderr, "  %s\n", err);
	free(err);
	err = NULL;
	r = tls_ctx_new_client(&ccfg, &h->cctx, &err);
	UNIT_EXPECT_INT("client ctx", r, 0);
	if (err != NULL)
		fprintf(stderr, "  %s\n", err);
	free(err);
	h->peer.server_name = name;
	h->peer.verify = verify;
	CU_ASSERT_EQUAL_FATAL(listener_open(&l, hs_accept, h), 0);
	sin = loopback(l.port);
	h->cli = conn_new(&unit_loop, &ccbs, h);
	conn_set_timeout(h->cli, 3000);
	r = conn_connect(h->cli, (struct sockaddr *)&sin, NULL, 2000);
	UNIT_EXPECT_INT("connect", r, 0);
	CU_ASSERT_TRUE(unit_run_until(&h->done));
	if (h->cli != NULL)
		conn_close(h->cli);
	if (h->srv != NULL)
		conn_close(h->srv);
	listener_close(&l);
	unit_loop_end();
	UNIT_EXPECT_INT("both conns closed", h->closed, 2);
	tls_ctx_unref(&h->sctx);
	tls_ctx_unref(&h->cctx);
	snprintf(h->srv_text, sizeof(h->srv_text), "%s", h->srv_got.data ? h->srv_got.data : "");
	buf_release(&h->cli_got);
	buf_release(&h->srv_got);
}

static void
test_handshake_insecure(void)
{
	struct hs h;

	/* OpportunisticInsecure: the self-signed certificate is not checked. */
	memset(&h, 0, sizeof(h));
	h.cli_status = h.srv_status = 1;
	h.early = 1;
	run_handshake(&h, NULL, NULL, CN, tls_mode_verifies(TLS_OPPORTUNISTIC_INSECURE));
	UNIT_EXPECT_STR("server got", h.srv_text, "early\nping\n");
	UNIT_EXPECT_INT("client handshake", h.cli_status, 0);
	UNIT_EXPECT_INT("server handshake", h.srv_status, 0);
	UNIT_EXPECT_STR("version", h.cli_info.version, "TLS1.3");
	CU_ASSERT_TRUE(strncmp(h.cli_info.cipher, "TLS_", 4) == 0);
	UNIT_EXPECT_INT("verified", h.cli_info.verified, 0);
	CU_ASSERT_TRUE(strstr(h.cli_info.peer_dn, CN) != NULL);
	CU_ASSERT_TRUE(strstr(h.cli_info.desc, "TLS1.3") != NULL);
}

static void
test_handshake_verify_fails(void)
{
	struct hs h;

	/* Opportunistic: the same certificate against the system store must fail. */
	memset(&h, 0, sizeof(h));
	h.cli_status = h.srv_status = 1;
	run_handshake(&h, NULL, NULL, CN, tls_mode_verifies(TLS_OPPORTUNISTIC));
	UNIT_EXPECT_INT("client handshake", h.cli_status, KUMO_ETLS);
	CU_ASSERT_TRUE(h.cli_info.verify_status != 0);
	CU_ASSERT_TRUE(strstr(h.cli_err, "certificate verification failed") != NULL);
	if (strstr(h.cli_err, "certificate verification failed") == NULL)
		fprintf(stderr, "  error text: %s\n", h.cli_err);
	UNIT_EXPECT_STR("no version after failure", h.cli_info.version, "");
	UNIT_EXPECT_INT("verified", h.cli_info.verified, 0);
	CU_ASSERT_TRUE(h.srv_status != 0);
	/* Nothing of ours reached the server. */
	UNIT_EXPECT_STR("server got", h.srv_text, "");
}

static void
test_handshake_verified(void)
{
	struct hs h;

	/* The certificate as trust anchor and the right name: verified. */
	memset(&h, 0, sizeof(h));
	h.cli_status = 1;
	run_handshake(&h, NULL, cert_path, CN, 1);
	UNIT_EXPECT_INT("client handshake", h.cli_status, 0);
	UNIT_EXPECT_INT("verified", h.cli_info.verified, 1);
	if (h.cli_status != 0)
		fprintf(stderr, "  error text: %s\n", h.cli_err);

	/* Same anchor, wrong name: fails on the name. */
	memset(&h, 0, sizeof(h));
	h.cli_status = 1;
	run_handshake(&h, NULL, cert_path, "other.example.test", 1);
	UNIT_EXPECT_INT("client handshake (wrong name)", h.cli_status, KUMO_ETLS);
	CU_ASSERT_TRUE((h.cli_info.verify_status & GNUTLS_CERT_UNEXPECTED_OWNER) != 0);

	/* Verification without a name is refused up front. */
	memset(&h, 0, sizeof(h));
	h.cli_status = 1;
	run_handshake(&h, NULL, cert_path, NULL, 1);
	UNIT_EXPECT_INT("verify without a name", h.cli_status, KUMO_ETLS);
}

static void
test_versions_pinned(void)
{
	struct hs h;

	/* A TLS 1.2-only server still works... */
	memset(&h, 0, sizeof(h));
	h.cli_status = 1;
	run_handshake(&h, "NORMAL:-VERS-ALL:+VERS-TLS1.2", NULL, CN, 0);
	UNIT_EXPECT_INT("TLS1.2 handshake", h.cli_status, 0);
	UNIT_EXPECT_STR("version", h.cli_info.version, "TLS1.2");
	CU_ASSERT_TRUE(h.cli_info.cipher[0] != '\0');

	/* ...a TLS 1.1-only server does not. */
	memset(&h, 0, sizeof(h));
	h.cli_status = 1;
	run_handshake(&h, "NORMAL:-VERS-ALL:+VERS-TLS1.1:%VERIFY_ALLOW_SIGN_WITH_SHA1", NULL, CN, 0);
	CU_ASSERT_TRUE(h.cli_status != 0);
}

static void
test_starttls_injection(void)
{
	struct hs h;

	/* Bytes after the 220 in the same read: the upgrade must refuse. */
	memset(&h, 0, sizeof(h));
	h.srv_plain_greeting = "220 go ahead\r\nMAIL FROM:<evil@example.test>\r\n";
	h.inject_ret = 1;
	run_handshake(&h, NULL, NULL, CN, 0);
	UNIT_EXPECT_INT("starttls after injected bytes", h.inject_ret, KUMO_EPROTO);

	/* A clean 220 alone: the upgrade starts. */
	memset(&h, 0, sizeof(h));
	h.srv_plain_greeting = "220 go ahead\r\n";
	h.inject_ret = 1;
	run_handshake(&h, NULL, NULL, CN, 0);
	UNIT_EXPECT_INT("starttls after a clean 220", h.inject_ret, 0);
}

static void
test_session_new_errors(void)
{
	struct tls_ctx_config ccfg = {NULL, cert_path, NULL, NULL};
	struct tls_peer peer = {NULL, 1};
	struct tls_ctx *ctx = NULL;
	gnutls_session_t s = NULL;
	struct tls_info info;
	char *err = NULL;

	CU_ASSERT_EQUAL_FATAL(tls_ctx_new_client(&ccfg, &ctx, NULL), 0);
	UNIT_EXPECT_INT("verify without name", tls_session_new(ctx, &peer, &s, &err), KUMO_ETLS);
	CU_ASSERT_TRUE(err != NULL && strstr(err, "host name") != NULL);
	free(err);
	peer.server_name = "127.0.0.1"; /* an address: no SNI, but a name check is possible */
	UNIT_EXPECT_INT("address name", tls_session_new(ctx, &peer, &s, NULL), 0);
	tls_session_info(s, &info);
	UNIT_EXPECT_STR("no peer before handshake", info.peer_dn, "");
	gnutls_deinit(s);
	tls_session_info(NULL, &info);
	UNIT_EXPECT_STR("NULL session", info.version, "");
	tls_ctx_unref(&ctx);
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{"mode parse", test_mode_parse},
		{"mode str", test_mode_str},
		{"priority check", test_priority},
		{"context errors", test_ctx_errors},
		{"session errors", test_session_new_errors},
		{"handshake insecure", test_handshake_insecure},
		{"handshake verify fails", test_handshake_verify_fails},
		{"handshake verified", test_handshake_verified},
		{"versions pinned", test_versions_pinned},
		{"starttls injection", test_starttls_injection},
		{NULL, NULL},
	};
	char *err = NULL;
	int rc;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kumo-test-tls-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", tmpdir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", tmpdir);
	if (tls_make_self_signed(CN, cert_path, key_path, &err) < 0) {
		fprintf(stderr, "self-signed: %s\n", err);
		return 2;
	}
	rc = unit_run("tls", tests);
	unlink(cert_path);
	unlink(key_path);
	rmdir(tmpdir);
	return rc;
}
