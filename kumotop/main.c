/*
 * main.c: kumotop, a live view of kumod's queues over the control socket.
 * It owns the options, the connection (one `watch` stream; when the daemon
 * goes away the screen says so and kumotop reconnects with a bounded
 * backoff), the requests the keys trigger (inspect-ready-q and
 * resolve-egress-path for the detail pane, suspend-ready-q and its list
 * and cancel for S and R), matched to their replies by id, and the poll()
 * loop over the terminal and the socket: nothing is redrawn unless a
 * snapshot, a reply or a key arrived, so an idle kumotop costs nothing.
 * The batch mode (--batch) prints snapshots as text instead, like top -b.
 */
#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <malloc.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curses.h>
#include <jansson.h>

#include "ctl.h"
#include "duration.h"
#include "kumo.h"

#include "kumotop.h"

#define KT_CONNECT_TIMEOUT 2000
#define KT_BACKOFF_MIN 500
#define KT_BACKOFF_MAX 5000
#define KT_PENDING 32

enum kt_req { KR_INSPECT = 1, KR_RESOLVE, KR_SUSPEND, KR_RLIST, KR_CANCEL };

/* A request in flight: its reply is recognised by id. */
struct kt_pending {
	json_int_t id;
	enum kt_req kind;
	char *name;
};

static struct kt_app app;
static struct kt_pending pending[KT_PENDING];
static json_int_t watch_id = -1;
static int dirty;
static volatile sig_atomic_t got_signal;
/*
 * Replies are read here rather than with ctl_client_read(), so a snapshot
 * line can take kt_snap_parse_fast() instead of a jansson tree. The server
 * sends nothing after the hello until asked, so the client's own reader
 * holds nothing when this one takes over.
 */
static struct ctl_reader rd;
static int rd_live;
/* --batch: snapshots left to print (0: no limit), whether to stop, and the exit code */
static struct {
	int on;
	long left;
	int done;
	int rc;
	char *server;
} batch;

static void
on_signal(int sig)
{
	got_signal = sig;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Set the bottom line's message. */
static void set_msg(int error, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_msg(int error, const char *fmt, ...)
{
	va_list ap;
	char buf[512];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	free(app.msg);
	app.msg = xstrdup(buf);
	app.msg_error = error;
	dirty = 1;
}

static void
pending_clear(void)
{
	size_t i;

	for (i = 0; i < KT_PENDING; i++) {
		free(pending[i].name);
		memset(&pending[i], 0, sizeof(pending[i]));
	}
}

static int
pending_has(enum kt_req kind)
{
	size_t i;

	for (i = 0; i < KT_PENDING; i++) {
		if (pending[i].kind == kind)
			return 1;
	}
	return 0;
}

static void disconnect(const char *why);

/* Send cmd with args (stolen) and remember what the reply is for. */
static void
request(const char *cmd, json_t *args, enum kt_req kind, const char *name)
{
	json_int_t id;
	char *err = NULL;
	size_t i;

	if (app.c == NULL) {
		json_decref(args);
		set_msg(1, "%s: not connected to the daemon", cmd);
		return;
	}
	for (i = 0; i < KT_PENDING && pending[i].kind != 0; i++)
		;
	if (i == KT_PENDING) {
		json_decref(args);
		set_msg(1, "%s: too many requests waiting for the daemon", cmd);
		return;
	}
	if (ctl_client_send(app.c, cmd, args, &id, &err) < 0) {
		json_decref(args);
		disconnect(err);
		free(err);
		return;
	}
	json_decref(args);
	pending[i].id = id;
	pending[i].kind = kind;
	pending[i].name = xstrdup(name);
}

static void
disconnect(const char *why)
{
	if (batch.on && !batch.done) {
		fprintf(stderr, "kumotop: %s\n", why);
		batch.done = 1;
		batch.rc = KT_EXIT_USAGE;
	}
	ctl_client_close(&app.c);
	if (rd_live)
		ctl_reader_release(&rd);
	rd_live = 0;
	pending_clear();
	watch_id = -1;
	free(app.down);
	app.down = xstrdup(why);
	app.retry_at = now_ms() + app.backoff_ms;
	dirty = 1;
}

static struct kt_ready *
find_ready(const char *name)
{
	size_t i;

	for (i = 0; name != NULL && i < app.snap.n_rq; i++) {
		if (strcmp(app.snap.rq[i].name, name) == 0)
			return &app.snap.rq[i];
	}
	return NULL;
}

/*
 * Ask for the detail pane's data. resolve-egress-path only once per
 * opening, after inspect-ready-q answered: shaping is looked up by the
 * domain whose MX set named the site, which inspect gives ("domain").
 */
static void
detail_request(int opening)
{
	if (!app.detail || app.c == NULL || pending_has(KR_INSPECT))
		return;
	if (app.detail_table == KT_READY) {
		request("inspect-ready-q", json_pack("{s:s}", "name", app.detail_name), KR_INSPECT,
		        app.detail_name);
		if (opening)
			app.detail_resolve_wanted = 1;
	} else {
		request("inspect-sched-q", json_pack("{s:s}", "name", app.detail_name), KR_INSPECT,
		        app.detail_name);
	}
}

static int
try_connect(void)
{
	json_t *hello, *args;
	const char *server;
	char *err = NULL;

	if (ctl_client_connect(app.socket, KT_CONNECT_TIMEOUT, &app.c, &err) < 0) {
		free(app.down);
		app.down = err;
		app.retry_at = now_ms() + app.backoff_ms;
		app.backoff_ms =
		    app.backoff_ms * 2 > KT_BACKOFF_MAX ? KT_BACKOFF_MAX : app.backoff_ms * 2;
		dirty = 1;
		return -1;
	}
	hello = ctl_client_hello(app.c);
	server = json_string_value(json_object_get(hello, "server"));
	free(app.server);
	app.server = xasprintf("%s pid %lld", server != NULL ? server : "?",
	                       (long long)json_integer_value(json_object_get(hello, "pid")));
	for (char *p = app.server; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
	args = json_pack("{s:i}", "interval", app.interval);
	if (ctl_client_send(app.c, "watch", args, &watch_id, &err) < 0) {
		json_decref(args);
		disconnect(err);
		free(err);
		return -1;
	}
	json_decref(args);
	ctl_reader_init(&rd, CTL_REPLY_MAX);
	rd_live = 1;
	free(app.down);
	app.down = NULL;
	app.backoff_ms = KT_BACKOFF_MIN;
	app.last_data = now_ms();
	detail_request(1);
	dirty = 1;
	return 0;
}

/* Rebuild the shown rows after new data, a new sort or filter, or a table switch. */
static void
rebuild_view(void)
{
	size_t i;

	free(app.view);
	if (app.table == KT_READY)
		app.view = kt_ready_view(&app.snap, app.filter, app.sort[0], &app.n_view);
	else
		app.view = kt_sched_view(&app.snap, app.filter, app.sort[1], &app.n_view);
	/* keep the selection on the same queue when it is still shown */
	if (app.sel_name != NULL) {
		for (i = 0; i < app.n_view; i++) {
			const char *n = app.table == KT_READY ? app.snap.rq[app.view[i]].name
			                                      : app.snap.sq[app.view[i]].name;

			if (strcmp(n, app.sel_name) == 0) {
				app.sel = i;
				return;
			}
		}
	}
	if (app.sel >= app.n_view)
		app.sel = app.n_view > 0 ? app.n_view - 1 : 0;
}

static const char *
selected_name(void)
{
	if (app.sel >= app.n_view)
		return NULL;
	return app.table == KT_READY ? app.snap.rq[app.view[app.sel]].name
	                             : app.snap.sq[app.view[app.sel]].name;
}

static void
remember_selection(void)
{
	const char *n = selected_name();

	free(app.sel_name);
	app.sel_name = n != NULL ? xstrdup(n) : NULL;
}

/* A new snapshot (taken over from *fresh): print it (--batch) or show it. */
static void
on_snapshot(struct kt_snap *fresh)
{
	struct kt_snap *s = &app.snap;
	double v[KT_H_N];
	size_t k;

	if (batch.on) {
		kt_print_batch(stdout, batch.server, fresh, app.filter);
		kt_snap_clear(fresh);
		if (ferror(stdout) || (batch.left > 0 && --batch.left == 0)) {
			/* done, or the reader went away (kumotop -b | head): stop quietly */
			batch.done = 1;
		}
		return;
	}
	kt_snap_clear(s);
	*s = *fresh;
	app.have_snap = 1;
	v[KT_H_RECEIVED] = s->r_received;
	v[KT_H_DELIVERED] = s->r_delivered;
	v[KT_H_TRANSIENT] = s->r_transient;
	v[KT_H_BOUNCED] = s->r_bounced;
	for (k = 0; k < KT_H_N; k++) {
		if (app.hist_n == KT_HIST)
			memmove(app.hist[k], app.hist[k] + 1, (KT_HIST - 1) * sizeof(double));
		app.hist[k][app.hist_n == KT_HIST ? KT_HIST - 1 : app.hist_n] = v[k];
	}
	if (app.hist_n < KT_HIST)
		app.hist_n++;
	rebuild_view();
	detail_request(0);
	dirty = 1;
}

/*
 * The detail pane's resolve-egress-path, from inspect-ready-q's answer: its
 * domain (a server without that member: the site, as the best guess) and
 * the path's source.
 */
static void
resolve_request(json_t *inspect)
{
	struct kt_ready *r = find_ready(app.detail_name);
	const char *domain = json_string_value(json_object_get(inspect, "domain"));
	const char *source = json_string_value(json_object_get(inspect, "source"));

	app.detail_resolve_wanted = 0;
	if ((domain == NULL || *domain == '\0') && r != NULL && r->site[0] != '\0')
		domain = r->site;
	if (domain == NULL || *domain == '\0')
		return;
	if ((source == NULL || *source == '\0') && r != NULL && r->source[0] != '\0')
		source = r->source;
	request("resolve-egress-path",
	        source != NULL && *source != '\0'
	            ? json_pack("{s:s,s:s}", "domain", domain, "source", source)
	            : json_pack("{s:s}", "domain", domain),
	        KR_RESOLVE, app.detail_name);
}

static void
on_reply(struct kt_pending *p, struct ctl_msg *m)
{
	json_t *rule;
	size_t i;
	int n = 0;

	dirty = 1;
	switch (p->kind) {
	case KR_INSPECT:
	case KR_RESOLVE:
		if (!app.detail || app.detail_name == NULL || strcmp(p->name, app.detail_name) != 0)
			break;
		if (m->kind == CTL_MSG_ERROR) {
			free(app.detail_err);
			app.detail_err = xasprintf(
			    "%s: %s", p->kind == KR_INSPECT ? "inspect" : "resolve-egress-path",
			    m->error);
		} else if (p->kind == KR_INSPECT) {
			json_decref(app.detail_inspect);
			app.detail_inspect = json_incref(m->value);
			if (app.detail_resolve_wanted && app.detail_table == KT_READY)
				resolve_request(m->value);
		} else {
			json_decref(app.detail_resolve);
			app.detail_resolve = json_incref(m->value);
		}
		break;
	case KR_SUSPEND:
		if (m->kind == CTL_MSG_ERROR)
			set_msg(1, "suspend-ready-q %s: %s", p->name, m->error);
		else
			set_msg(0, "suspended %s (rule %lld)", p->name,
			        (long long)json_integer_value(json_object_get(m->value, "id")));
		break;
	case KR_RLIST:
		if (m->kind == CTL_MSG_ERROR) {
			set_msg(1, "suspend-ready-q-list: %s", m->error);
			break;
		}
		json_array_foreach(json_object_get(m->value, "suspensions"), i, rule)
		{
			const char *name = json_string_value(json_object_get(rule, "name"));

			if (name != NULL && strcmp(name, p->name) == 0) {
				request("suspend-ready-q-cancel",
				        json_pack("{s:I}", "id",
				                  json_integer_value(json_object_get(rule, "id"))),
				        KR_CANCEL, p->name);
				n++;
			}
		}
		if (n == 0)
			set_msg(1, "%s has no suspension to cancel", p->name);
		break;
	case KR_CANCEL:
		if (m->kind == CTL_MSG_ERROR)
			set_msg(1, "suspend-ready-q-cancel %s: %s", p->name, m->error);
		else
			set_msg(
			    0, "resumed %s (rule %lld cancelled)", p->name,
			    (long long)json_integer_value(json_object_get(m->value, "cancelled")));
		break;
	}
}

static void
on_message(struct ctl_msg *m)
{
	size_t i;

	app.last_data = now_ms();
	if (m->id == watch_id && watch_id >= 0) {
		if (m->kind == CTL_MSG_STREAM) {
			struct kt_snap fresh;

			kt_snap_parse(m->value, &fresh);
			on_snapshot(&fresh);
		} else if (m->kind == CTL_MSG_ERROR) {
			char *why = xasprintf("watch: %s", m->error);

			if (batch.on && !batch.done) {
				/* the daemon refused: exit 1, not the transport's 2 */
				fprintf(stderr, "kumotop: %s\n", why);
				batch.done = 1;
				batch.rc = KT_EXIT_FAILED;
			}
			disconnect(why);
			free(why);
		} else if (m->kind == CTL_MSG_END) {
			if (batch.on)
				batch.done = 1;
			disconnect("the daemon ended the watch stream");
		}
		return;
	}
	if (m->id < 0 && m->kind == CTL_MSG_ERROR) {
		disconnect(m->error);
		return;
	}
	for (i = 0; i < KT_PENDING; i++) {
		if (pending[i].kind != 0 && pending[i].id == m->id) {
			struct kt_pending p = pending[i];

			memset(&pending[i], 0, sizeof(pending[i]));
			on_reply(&p, m);
			free(p.name);
			return;
		}
	}
}

/* One reply line: a snapshot by the fast path when it can, else through jansson. */
static void
on_line(char *line, size_t len)
{
	struct kt_snap fresh;
	struct ctl_msg m;
	char *err = NULL;

	app.last_data = now_ms();
	if (watch_id >= 0 && kt_snap_parse_fast(line, len, (long long)watch_id, &fresh)) {
		on_snapshot(&fresh);
		return;
	}
	if (ctl_msg_parse(line, len, &m, &err) < 0) {
		char *why = xasprintf("%s: bad reply line: %s", app.socket, err);

		disconnect(why);
		free(why);
		free(err);
		return;
	}
	on_message(&m);
	ctl_msg_clear(&m);
}

/* Handle every complete line the socket has, without waiting. */
static void
drain(void)
{
	long k;

	for (k = 0; k < 1000000 && app.c != NULL && !batch.done; k++) {
		char *line, *space;
		size_t len;
		ssize_t n;
		int rc = ctl_reader_next(&rd, &line, &len);

		if (rc == KUMO_ETOOLONG) {
			char *why = xasprintf("%s: a reply line is longer than %d bytes",
			                      app.socket, CTL_REPLY_MAX);

			disconnect(why);
			free(why);
			return;
		}
		if (rc == 1) {
			if (len > 0)
				on_line(line, len);
			continue;
		}
		if ((space = ctl_reader_space(&rd, &len)) == NULL) {
			disconnect("reply buffer full");
			return;
		}
		n = recv(ctl_client_fd(app.c), space, len, 0);
		if (n > 0) {
			ctl_reader_commit(&rd, (size_t)n);
			continue;
		}
		if (n == 0) {
			disconnect("the daemon closed the connection");
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			char *why = xasprintf("%s: %s", app.socket, strerror(errno));

			disconnect(why);
			free(why);
		}
		return;
	}
}

static void
detail_close(void)
{
	app.detail = 0;
	free(app.detail_name);
	app.detail_name = NULL;
	json_decref(app.detail_inspect);
	json_decref(app.detail_resolve);
	app.detail_inspect = app.detail_resolve = NULL;
	app.detail_resolve_wanted = 0;
	free(app.detail_err);
	app.detail_err = NULL;
}

static void
detail_open(void)
{
	const char *n = selected_name();

	detail_close();
	if (n == NULL)
		return;
	app.detail = 1;
	app.detail_table = app.table;
	app.detail_name = xstrdup(n);
	detail_request(1);
}

static void
move_sel(long delta)
{
	long s = (long)app.sel + delta;

	if (app.n_view == 0)
		return;
	if (s < 0)
		s = 0;
	if (s >= (long)app.n_view)
		s = (long)app.n_view - 1;
	app.sel = (size_t)s;
	remember_selection();
}

static void
confirm_done(int yes)
{
	char reason[128];
	struct passwd *pw = getpwuid(getuid());

	app.mode = KT_NORMAL;
	if (!yes) {
		set_msg(0, "cancelled");
	} else if (app.confirm == 'S') {
		snprintf(reason, sizeof(reason), "suspended from kumotop by %s",
		         pw != NULL ? pw->pw_name : "?");
		request("suspend-ready-q",
		        json_pack("{s:s,s:i,s:s}", "name", app.confirm_name, "duration",
		                  app.suspend_secs, "reason", reason),
		        KR_SUSPEND, app.confirm_name);
		if (app.c != NULL)
			set_msg(0, "suspending %s...", app.confirm_name);
	} else {
		request("suspend-ready-q-list", NULL, KR_RLIST, app.confirm_name);
		if (app.c != NULL)
			set_msg(0, "resuming %s...", app.confirm_name);
	}
	free(app.confirm_name);
	app.confirm_name = NULL;
}

/* One key. Returns 1 to quit. */
static int
on_key(int ch)
{
	size_t len;
	const char *n;

	dirty = 1;
	if (ch == KEY_RESIZE)
		return 0;
	switch (app.mode) {
	case KT_HELP:
		app.mode = KT_NORMAL;
		return 0;
	case KT_CONFIRM:
		confirm_done(ch == 'y' || ch == 'Y');
		return 0;
	case KT_FILTER:
		len = strlen(app.filter);
		if (ch == 27) {
			app.filter[0] = '\0';
			app.mode = KT_NORMAL;
		} else if (ch == '\r' || ch == '\n' || ch == KEY_ENTER) {
			app.mode = KT_NORMAL;
		} else if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
			if (len > 0)
				app.filter[len - 1] = '\0';
		} else if (ch == 21) { /* ^U */
			app.filter[0] = '\0';
		} else if (ch >= 0x20 && ch < 0x7f && len + 1 < sizeof(app.filter)) {
			app.filter[len] = (char)ch;
			app.filter[len + 1] = '\0';
		}
		rebuild_view();
		return 0;
	case KT_NORMAL:
		break;
	}
	free(app.msg);
	app.msg = NULL;
	switch (ch) {
	case 'q':
	case 'Q':
		return 1;
	case KEY_UP:
	case 'k':
		move_sel(-1);
		break;
	case KEY_DOWN:
	case 'j':
		move_sel(1);
		break;
	case KEY_PPAGE:
		move_sel(-(long)(app.rows_visible > 1 ? app.rows_visible - 1 : 1));
		break;
	case KEY_NPAGE:
	case ' ':
		move_sel(app.rows_visible > 1 ? app.rows_visible - 1 : 1);
		break;
	case KEY_HOME:
	case 'g':
		move_sel(-(long)app.n_view);
		break;
	case KEY_END:
	case 'G':
		move_sel((long)app.n_view);
		break;
	case 's':
		if (app.table == KT_READY)
			app.sort[0] = (app.sort[0] + 1) % KT_RS_N;
		else
			app.sort[1] = (app.sort[1] + 1) % KT_SS_N;
		rebuild_view();
		break;
	case '/':
		app.mode = KT_FILTER;
		break;
	case '\t':
		app.table = app.table == KT_READY ? KT_SCHED : KT_READY;
		app.sel = app.top = 0;
		free(app.sel_name);
		app.sel_name = NULL;
		rebuild_view();
		break;
	case '\r':
	case '\n':
	case KEY_ENTER:
		n = selected_name();
		if (app.detail && n != NULL && app.detail_name != NULL &&
		    strcmp(n, app.detail_name) == 0 && app.detail_table == app.table)
			detail_close();
		else
			detail_open();
		break;
	case 27:
		detail_close();
		break;
	case 'S':
	case 'R':
		if (app.table != KT_READY) {
			set_msg(1, "%c works on ready queues (paths): Tab switches tables", ch);
			break;
		}
		if ((n = selected_name()) == NULL) {
			set_msg(1, "no path selected");
			break;
		}
		app.mode = KT_CONFIRM;
		app.confirm = ch;
		free(app.confirm_name);
		app.confirm_name = xstrdup(n);
		break;
	case '?':
	case 'h':
		app.mode = KT_HELP;
		break;
	default:
		dirty = 0;
		break;
	}
	return 0;
}

static int
run_interactive(void)
{
	int quit = 0;

	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "kumotop: standard input and output must be a terminal "
		                "(--batch prints text snapshots)\n");
		return KT_EXIT_USAGE;
	}
	app.backoff_ms = KT_BACKOFF_MIN;
	if (try_connect() < 0) {
		fprintf(stderr, "kumotop: %s\n", app.down);
		return KT_EXIT_USAGE;
	}
	kt_view_open(&app);
	dirty = 1;
	while (!quit && !got_signal) {
		struct pollfd pfd[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
		                        {.fd = -1, .events = POLLIN}};
		long long now = now_ms(), stall;
		int timeout, n, ch;

		if (dirty) {
			kt_view_draw(&app);
			dirty = 0;
		}
		if (app.c == NULL) {
			timeout = app.retry_at > now ? (int)(app.retry_at - now) : 0;
		} else {
			/* a watch that went silent counts as a lost daemon */
			stall = app.last_data + 3000LL * app.interval + 10000 - now;
			timeout = stall > 0 ? (int)stall : 0;
			pfd[1].fd = ctl_client_fd(app.c);
		}
		n = poll(pfd, 2, timeout);
		if (n < 0 && errno != EINTR) {
			kt_view_close();
			fprintf(stderr, "kumotop: poll: %s\n", strerror(errno));
			return KT_EXIT_USAGE;
		}
		if (app.c != NULL && n > 0 && pfd[1].revents != 0)
			drain();
		/* EINTR may be SIGWINCH: ncurses then has a KEY_RESIZE for us */
		if (n < 0 || (n > 0 && pfd[0].revents != 0)) {
			while (!quit && (ch = getch()) != ERR)
				quit = on_key(ch);
			if (pfd[0].revents & (POLLHUP | POLLERR | POLLNVAL))
				quit = 1;
		}
		now = now_ms();
		if (app.c != NULL && now - app.last_data > 3000LL * app.interval + 10000)
			disconnect("no snapshot from the daemon for too long");
		if (app.c == NULL && now >= app.retry_at)
			try_connect();
	}
	kt_view_close();
	ctl_client_close(&app.c);
	return KT_EXIT_OK;
}

/* --batch: snapshots as text on stdout; count 0 means until interrupted. */
static int
run_batch(long count)
{
	const char *server;

	batch.on = 1;
	batch.left = count;
	app.backoff_ms = KT_BACKOFF_MIN;
	if (try_connect() < 0) {
		/* the watch could not be sent: disconnect() said why */
		if (!batch.done)
			fprintf(stderr, "kumotop: %s\n", app.down);
		return KT_EXIT_USAGE;
	}
	server = json_string_value(json_object_get(ctl_client_hello(app.c), "server"));
	batch.server = xstrdup(server != NULL ? server : "?");
	for (char *p = batch.server; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
	while (!batch.done && !got_signal) {
		struct pollfd pfd = {.fd = ctl_client_fd(app.c), .events = POLLIN};
		long long stall = app.last_data + 3000LL * app.interval + 10000 - now_ms();
		int n = poll(&pfd, 1, stall > 0 ? (int)stall : 0);

		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "kumotop: poll: %s\n", strerror(errno));
			return KT_EXIT_USAGE;
		}
		if (n > 0)
			drain();
		else if (n == 0)
			disconnect("no snapshot from the daemon for too long");
	}
	ctl_client_close(&app.c);
	return batch.rc;
}

static void
usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: kumotop [-b [-n N]] [-s SOCKET] [-d INTERVAL] [--filter TEXT] [--no-color]\n"
	    "  -s, --socket PATH      kumod's control socket (default $KUMOD_CONTROL or %s)\n"
	    "  -d, --interval DUR     seconds between snapshots (default 1s)\n"
	    "  -b, --batch            print text snapshots to stdout instead of a screen\n"
	    "  -n, --iterations N     with --batch: stop after N snapshots\n"
	    "  -f, --filter TEXT      show only queues whose name contains TEXT\n"
	    "      --no-color         monochrome (also when NO_COLOR is set)\n"
	    "      --suspend-for DUR  how long S suspends a path (default 1h)\n"
	    "  -h, --help             this help\n"
	    "  -V, --version          print the version\n"
	    "Keys: arrows/PgUp/PgDn move, s sort, / filter, Tab tables, Enter detail,\n"
	    "      S suspend, R resume, ? help, q quit.\n"
	    "Exit status: 0 ok, 1 the daemon refused the watch, 2 usage or environment error.\n",
	    CTL_DEFAULT_SOCKET);
}

/* A duration option between lo and hi seconds, or exit 2. */
static int
parse_secs(const char *opt, const char *text, uint64_t lo, uint64_t hi)
{
	uint64_t secs;
	char *err = NULL;

	if (duration_parse(text, &secs, &err) < 0 || secs < lo || secs > hi) {
		char a[32], b[32];

		kt_fmt_duration(a, sizeof(a), (int64_t)lo);
		kt_fmt_duration(b, sizeof(b), (int64_t)hi);
		if (err != NULL)
			fprintf(stderr, "kumotop: %s: %s\n", opt, err);
		else
			fprintf(stderr, "kumotop: %s: \"%s\": must be between %s and %s\n", opt,
			        text, a, b);
		free(err);
		exit(KT_EXIT_USAGE);
	}
	return (int)secs;
}

int
main(int argc, char **argv)
{
	enum { OPT_NO_COLOR = 256, OPT_SUSPEND_FOR };
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"interval", required_argument, NULL, 'd'},
	    {"batch", no_argument, NULL, 'b'},
	    {"iterations", required_argument, NULL, 'n'},
	    {"filter", required_argument, NULL, 'f'},
	    {"no-color", no_argument, NULL, OPT_NO_COLOR},
	    {"suspend-for", required_argument, NULL, OPT_SUSPEND_FOR},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct sigaction sa;
	const char *nc = getenv("NO_COLOR");
	int ch, batch_mode = 0, rc;
	long count = 0;
	char *end;

	setlocale(LC_ALL, "");
	/*
	 * A big snapshot is freed and rebuilt every interval: keep the heap
	 * instead of trimming it and faulting the same pages back in.
	 */
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	app.socket = getenv("KUMOD_CONTROL") != NULL && *getenv("KUMOD_CONTROL") != '\0'
	                 ? getenv("KUMOD_CONTROL")
	                 : CTL_DEFAULT_SOCKET;
	app.interval = 1;
	app.suspend_secs = 3600;
	app.color = !(nc != NULL && *nc != '\0');
	while ((ch = getopt_long(argc, argv, "s:d:bn:f:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			app.socket = optarg;
			break;
		case 'd':
			app.interval = parse_secs("--interval", optarg, 1, 3600);
			break;
		case 'b':
			batch_mode = 1;
			break;
		case 'n':
			errno = 0;
			count = strtol(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || count < 1) {
				fprintf(stderr,
				        "kumotop: --iterations: \"%s\" is not a positive integer\n",
				        optarg);
				return KT_EXIT_USAGE;
			}
			break;
		case 'f':
			if (strlen(optarg) >= sizeof(app.filter)) {
				fprintf(stderr, "kumotop: --filter: longer than %zu bytes\n",
				        sizeof(app.filter) - 1);
				return KT_EXIT_USAGE;
			}
			snprintf(app.filter, sizeof(app.filter), "%s", optarg);
			break;
		case OPT_NO_COLOR:
			app.color = 0;
			break;
		case OPT_SUSPEND_FOR:
			app.suspend_secs = parse_secs("--suspend-for", optarg, 1, 30 * 86400);
			break;
		case 'h':
			usage(stdout);
			return KT_EXIT_OK;
		case 'V':
			printf("kumotop %s (control protocol %d)\n", PACKAGE_VERSION, CTL_PROTOCOL);
			return KT_EXIT_OK;
		default:
			usage(stderr);
			return KT_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "kumotop: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return KT_EXIT_USAGE;
	}
	if (count > 0 && !batch_mode) {
		fprintf(stderr, "kumotop: --iterations needs --batch\n");
		return KT_EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal; /* no SA_RESTART: poll() must wake up */
	if (!batch_mode) {
		/* leave the terminal sane: endwin() runs on the way out */
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
	}
	rc = batch_mode ? run_batch(count) : run_interactive();
	pending_clear();
	detail_close();
	kt_snap_clear(&app.snap);
	free(app.view);
	free(app.sel_name);
	free(app.msg);
	free(app.down);
	free(app.server);
	free(app.confirm_name);
	free(batch.server);
	if (rd_live)
		ctl_reader_release(&rd);
	return rc;
}
