/*
 * view.c: kumotop's screen. It draws the title, the header lines, the rate
 * sparklines, one of the two queue tables with the selection, the detail
 * pane of the selected queue, the help overlay and the bottom line, all
 * from struct kt_app. Colour when the terminal has it and the user did
 * not say --no-color or NO_COLOR; otherwise bold, reverse and underline
 * carry the same meaning. It never reads keys and never talks to the
 * daemon: main.c does.
 */
#include <inttypes.h>
#include <langinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curses.h>
#include <jansson.h>

#include "kumo.h"

#include "kumotop.h"

enum { P_TITLE = 1, P_ACTIVE, P_SUSPENDED, P_BAD, P_THROTTLED, P_SPARK, P_HEAD };

static int use_color;
static int utf8;

void
kt_view_open(struct kt_app *app)
{
	const char *cs = nl_langinfo(CODESET);

	utf8 = cs != NULL && strcmp(cs, "UTF-8") == 0;
	initscr();
	cbreak();
	noecho();
	nonl();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	set_escdelay(25);
	curs_set(0);
	use_color = app->color && has_colors();
	if (use_color) {
		start_color();
		use_default_colors();
		init_pair(P_TITLE, COLOR_BLACK, COLOR_CYAN);
		init_pair(P_ACTIVE, COLOR_GREEN, -1);
		init_pair(P_SUSPENDED, COLOR_YELLOW, -1);
		init_pair(P_BAD, COLOR_RED, -1);
		init_pair(P_THROTTLED, COLOR_MAGENTA, -1);
		init_pair(P_SPARK, COLOR_CYAN, -1);
		init_pair(P_HEAD, COLOR_BLACK, COLOR_WHITE);
	}
}

void
kt_view_close(void)
{
	endwin();
}

/* An attribute for a role, with the monochrome stand-in. */
static attr_t
role(int pair)
{
	if (use_color)
		return COLOR_PAIR(pair) | (pair == P_BAD || pair == P_SUSPENDED ? A_BOLD : 0);
	switch (pair) {
	case P_TITLE:
	case P_HEAD:
		return A_REVERSE;
	case P_SUSPENDED:
		return A_BOLD;
	case P_BAD:
		return A_BOLD | A_UNDERLINE;
	default:
		return A_NORMAL;
	}
}

static attr_t
status_attr(const char *status)
{
	if (strcmp(status, "active") == 0)
		return role(P_ACTIVE);
	if (strcmp(status, "suspended") == 0 || strcmp(status, "bouncing") == 0)
		return role(P_SUSPENDED);
	if (strcmp(status, "delayed") == 0)
		return role(P_BAD);
	if (strcmp(status, "throttled") == 0)
		return role(P_THROTTLED);
	return A_NORMAL;
}

/* Write s at (y, x), cut at the screen's right edge. */
static void
put(int y, int x, const char *s, attr_t a)
{
	int w = COLS - x;

	if (y < 0 || y >= LINES || w <= 0)
		return;
	attrset(a);
	mvaddnstr(y, x, s, w);
	attrset(A_NORMAL);
}

/* A whole line in one attribute, padded to the full width. */
static void
put_bar(int y, const char *s, attr_t a)
{
	if (y < 0 || y >= LINES)
		return;
	attrset(a);
	mvhline(y, 0, ' ', COLS);
	mvaddnstr(y, 0, s, COLS);
	attrset(A_NORMAL);
}

/* One sparkline of w cells from the newest samples of h, scaled to their maximum. */
static void
sparkline(struct kt_app *app, int y, int x, int w, int which, const char *label)
{
	static const char *const blocks[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
	static const char ascii[] = "._-~=+*#";
	size_t n = app->hist_n < (size_t)w ? app->hist_n : (size_t)w, i;
	double max = 0.0, now = app->hist_n > 0 ? app->hist[which][app->hist_n - 1] : 0.0;
	char text[64];
	int lw = 22;

	if (w <= 0 || y >= LINES)
		return;
	snprintf(text, sizeof(text), "%-10s%8.1f/s ", label, now);
	put(y, x, text, A_NORMAL);
	x += lw;
	for (i = app->hist_n - n; i < app->hist_n; i++) {
		if (app->hist[which][i] > max)
			max = app->hist[which][i];
	}
	attrset(role(P_SPARK));
	move(y, x);
	for (i = app->hist_n - n; i < app->hist_n && x < COLS; i++, x++) {
		double v = app->hist[which][i];
		int lvl = max > 0.0 && v > 0.0 ? (int)(v / max * 7.999) : -1;

		if (lvl < 0)
			addch(' ');
		else if (utf8)
			addstr(blocks[lvl]);
		else
			addch((chtype)(unsigned char)ascii[lvl]);
	}
	attrset(A_NORMAL);
}

/* Scalar JSON as text: strings bare, others encoded; control bytes as '?'. */
static char *
scalar_text(json_t *v)
{
	char *s, *p;

	if (json_is_string(v))
		s = xstrdup(json_string_value(v));
	else if ((s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT)) == NULL)
		s = xstrdup("?");
	for (p = s; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
	return s;
}

/* Lines of the detail pane, appended to lines[] (at most max); returns the count. */
static size_t
detail_lines(struct kt_app *app, char **lines, size_t max)
{
	json_t *in = app->detail_inspect, *cfg, *v, *item;
	const char *key;
	size_t n = 0, i;
	char *t;

#define ADD(...)                                                                                   \
	do {                                                                                       \
		if (n < max)                                                                       \
			lines[n++] = xasprintf(__VA_ARGS__);                                       \
	} while (0)

	if (app->detail_err != NULL)
		ADD("  %s", app->detail_err);
	if (in == NULL && app->detail_err == NULL && app->detail_resolve == NULL) {
		ADD("  (asking the daemon...)");
		return n;
	}
	/* below, a NULL in (inspect failed) reads as an empty object */
	/* The scalar members in one wrapped run: unknown members show too. */
	{
		char row[1024] = "  ";
		size_t len = 2;

		json_object_foreach(in, key, v)
		{
			char cell[256];

			if (json_is_object(v) || json_is_array(v))
				continue;
			t = scalar_text(v);
			snprintf(cell, sizeof(cell), "%s: %s   ", key, t);
			free(t);
			if (len + strlen(cell) > (size_t)COLS - 1 && len > 2) {
				ADD("%s", row);
				len = 2;
				row[2] = '\0';
			}
			if (len + strlen(cell) < sizeof(row)) {
				memcpy(row + len, cell, strlen(cell) + 1);
				len += strlen(cell);
			}
		}
		if (len > 2)
			ADD("%s", row);
	}
	if (json_is_object(v = json_object_get(in, "throttle"))) {
		char row[512] = "  throttle:";
		size_t len = strlen(row);

		json_object_foreach(v, key, item)
		{
			char cell[160];

			t = scalar_text(item);
			snprintf(cell, sizeof(cell), " %s=%s", key, t);
			free(t);
			if (len + strlen(cell) < sizeof(row)) {
				memcpy(row + len, cell, strlen(cell) + 1);
				len += strlen(cell);
			}
		}
		ADD("%s", row);
	}
	/* The merged path config: resolve-egress-path's origins when it answered. */
	if (json_is_array(json_object_get(app->detail_resolve, "config"))) {
		t = scalar_text(json_object_get(app->detail_resolve, "site"));
		ADD("  merged egress path config (site %s):", t);
		free(t);
		json_array_foreach(json_object_get(app->detail_resolve, "config"), i, item)
		{
			char *k = scalar_text(json_object_get(item, "key"));
			char *val = scalar_text(json_object_get(item, "value"));
			char *o = scalar_text(json_object_get(item, "origin"));

			ADD("    %-34s %-20s [%s]", k, val, o);
			free(k);
			free(val);
			free(o);
		}
		/* keys the inspect config has beyond resolve's list */
		json_object_foreach(json_object_get(in, "config"), key, v)
		{
			int seen = 0;

			json_array_foreach(json_object_get(app->detail_resolve, "config"), i, item)
			{
				if (strcmp(key,
				           json_string_value(json_object_get(item, "key")) != NULL
				               ? json_string_value(json_object_get(item, "key"))
				               : "") == 0)
					seen = 1;
			}
			if (!seen) {
				t = scalar_text(v);
				ADD("    %-34s %-20s [inspect]", key, t);
				free(t);
			}
		}
	} else if (json_is_object(cfg = json_object_get(in, "config"))) {
		ADD("  egress path config:");
		json_object_foreach(cfg, key, v)
		{
			t = scalar_text(v);
			ADD("    %-34s %s", key, t);
			free(t);
		}
	}
	/* Connection states: kumod's "connection_states" (an older server: "connections" as an array). */
	v = json_object_get(in, "connection_states");
	if (!json_is_array(v))
		v = json_object_get(in, "connections");
	if (json_is_array(v)) {
		ADD("  connections (%zu):", json_array_size(v));
		json_array_foreach(v, i, item)
		{
			char row[512] = "   ";
			size_t len = 3;
			json_t *m;

			if (!json_is_object(item))
				continue;
			json_object_foreach(item, key, m)
			{
				char cell[160];

				t = scalar_text(m);
				snprintf(cell, sizeof(cell), " %s=%s", key, t);
				free(t);
				if (len + strlen(cell) < sizeof(row)) {
					memcpy(row + len, cell, strlen(cell) + 1);
					len += strlen(cell);
				}
			}
			ADD("%s", row);
		}
	}
	/* Rules of a scheduled queue. */
	if (json_is_array(v = json_object_get(in, "rules"))) {
		ADD("  rules (%zu):", json_array_size(v));
		json_array_foreach(v, i, item)
		{
			t = scalar_text(item);
			ADD("    %s", t);
			free(t);
		}
	}
#undef ADD
	return n;
}

static void
draw_detail(struct kt_app *app, int y0, int h)
{
	char *lines[256], title[512];
	size_t n, i;

	snprintf(title, sizeof(title), " %s %s   (Enter or Esc closes)",
	         app->detail_table == KT_READY ? "Path" : "Scheduled queue", app->detail_name);
	put_bar(y0, title, role(P_HEAD));
	n = detail_lines(app, lines, KUMO_NELEM(lines));
	for (i = 0; i < n; i++) {
		if ((int)i < h - 1)
			put(y0 + 1 + (int)i, 0, lines[i], A_NORMAL);
		free(lines[i]);
	}
}

static void
draw_help(void)
{
	static const char *const text[] = {
	    "kumotop keys",
	    "",
	    "  Up/Down, j/k      move the selection",
	    "  PgUp/PgDn         move a page",
	    "  Home/End, g/G     first / last row",
	    "  Tab               ready queues <-> scheduled queues",
	    "  s                 cycle the sort column",
	    "  /                 filter by substring (Enter keeps, Esc clears)",
	    "  Enter             detail pane of the selected queue",
	    "  S                 suspend the selected path (asks first)",
	    "  R                 resume the selected path (asks first)",
	    "  ?                 this help",
	    "  q                 quit",
	    "",
	    "  any key closes this help",
	};
	int w = 72, h = (int)KUMO_NELEM(text) + 2, y0 = (LINES - h) / 2, x0 = (COLS - w) / 2, i;

	if (y0 < 0)
		y0 = 0;
	if (x0 < 0)
		x0 = 0;
	for (i = 0; i < h && y0 + i < LINES; i++) {
		attrset(A_REVERSE);
		mvhline(y0 + i, x0, ' ', w < COLS ? w : COLS);
		if (i > 0 && i - 1 < (int)KUMO_NELEM(text))
			mvaddnstr(y0 + i, x0 + 2, text[i - 1], COLS - x0 - 2);
		attrset(A_NORMAL);
	}
}

void
kt_view_draw(struct kt_app *app)
{
	struct kt_snap *s = &app->snap;
	char line[1024], up[32];
	int y = 0, rows, detail_h = 0, name_w, i;

	erase();
	if (LINES < 8 || COLS < 40) {
		put(0, 0, "kumotop: terminal too small (need 40x8)", A_BOLD);
		refresh();
		return;
	}
	/* title */
	kt_fmt_duration(up, sizeof(up), s->uptime);
	snprintf(line, sizeof(line), " kumotop - %s - %s - up %s",
	         app->server != NULL ? app->server : "?", app->socket, app->have_snap ? up : "?");
	put_bar(y, line, role(P_TITLE));
	if (app->down != NULL) {
		put(y, COLS - 14 > 0 ? COLS - 14 : 0, " DISCONNECTED ", role(P_BAD) | A_REVERSE);
	} else {
		struct tm tm;
		time_t t = (time_t)s->time;

		if (app->have_snap && (int)strlen(line) + 11 < COLS &&
		    localtime_r(&t, &tm) != NULL) {
			strftime(up, sizeof(up), " %H:%M:%S ", &tm);
			put(y, COLS - 11 > 0 ? COLS - 11 : 0, up, role(P_TITLE));
		}
	}
	y++;
	if (app->down != NULL) {
		snprintf(line, sizeof(line),
		         "daemon unreachable: %s - reconnecting (every %ds at most)%s", app->down,
		         (app->backoff_ms + 999) / 1000,
		         app->have_snap ? "; figures below are stale" : "");
		put(y++, 0, line, role(P_BAD));
	}
	kt_fmt_totals(line, sizeof(line), s);
	put(y++, 0, line, A_NORMAL);
	kt_fmt_gauges(line, sizeof(line), s);
	put(y++, 0, line, A_NORMAL);
	/* sparklines: two per line, when the screen has room */
	if (LINES >= 20) {
		int half = COLS / 2, sw = half - 22 - 2;

		sparkline(app, y, 0, sw, KT_H_RECEIVED, "received");
		sparkline(app, y++, half, sw, KT_H_DELIVERED, "delivered");
		sparkline(app, y, 0, sw, KT_H_TRANSIENT, "transient");
		sparkline(app, y++, half, sw, KT_H_BOUNCED, "bounced");
	} else {
		kt_fmt_rates(line, sizeof(line), s);
		put(y++, 0, line, A_NORMAL);
	}
	/* tabs */
	y++;
	{
		char a[96], b[96];
		size_t nr = app->table == KT_READY ? app->n_view : s->n_rq;
		size_t ns = app->table == KT_SCHED ? app->n_view : s->n_sq;

		snprintf(a, sizeof(a), " Ready queues %zu/%zu ", nr, s->n_rq);
		snprintf(b, sizeof(b), " Scheduled queues %zu/%zu ", ns, s->n_sq);
		put(y, 0, a, app->table == KT_READY ? A_REVERSE | A_BOLD : A_NORMAL);
		put(y, (int)strlen(a) + 1, b,
		    app->table == KT_SCHED ? A_REVERSE | A_BOLD : A_NORMAL);
		snprintf(line, sizeof(line), "sort: %s   filter: %s%s%s",
		         app->table == KT_READY ? kt_rsort_str(app->sort[0])
		                                : kt_ssort_str(app->sort[1]),
		         app->filter[0] != '\0' ? "\"" : "",
		         app->filter[0] != '\0' ? app->filter : "-",
		         app->filter[0] != '\0' ? "\"" : "");
		put(y++, (int)(strlen(a) + strlen(b)) + 4, line, A_NORMAL);
	}
	/* the table, then the detail pane below it */
	rows = LINES - y - 2; /* header line and bottom line */
	if (app->detail) {
		detail_h = rows / 2 > 16 ? 16 : rows / 2;
		rows -= detail_h;
	}
	if (rows < 1)
		rows = 1;
	app->rows_visible = rows;
	if (app->sel >= app->top + (size_t)rows)
		app->top = app->sel - (size_t)rows + 1;
	if (app->sel < app->top)
		app->top = app->sel;
	{
		size_t longest = 0, len;

		for (i = 0; i < rows && app->top + (size_t)i < app->n_view; i++) {
			size_t k = app->view[app->top + (size_t)i];

			len = strlen(app->table == KT_READY ? s->rq[k].name : s->sq[k].name);
			if (len > longest)
				longest = len;
		}
		name_w = kt_ready_name_width(COLS, longest);
	}
	if (app->table == KT_READY)
		kt_fmt_ready_header(line, sizeof(line), name_w, COLS);
	else
		kt_fmt_sched_header(line, sizeof(line), name_w);
	put_bar(y++, line, role(P_HEAD));
	for (i = 0; i < rows && app->top + (size_t)i < app->n_view; i++) {
		size_t k = app->view[app->top + (size_t)i];
		int selected = app->top + (size_t)i == app->sel;
		attr_t a;

		if (app->table == KT_READY) {
			kt_fmt_ready_row(line, sizeof(line), name_w, COLS, &s->rq[k]);
			a = status_attr(s->rq[k].status);
		} else {
			kt_fmt_sched_row(line, sizeof(line), name_w, &s->sq[k]);
			a = status_attr(s->sq[k].status);
		}
		if (selected)
			put_bar(y + i, line, A_REVERSE);
		else
			put(y + i, 0, line, a);
	}
	if (app->n_view == 0)
		put(y, 2,
		    app->have_snap
		        ? (app->filter[0] != '\0' ? "(no queue matches the filter)" : "(no queues)")
		        : "(waiting for the first snapshot)",
		    A_DIM);
	if (app->detail)
		draw_detail(app, y + rows, detail_h);
	/* the bottom line */
	switch (app->mode) {
	case KT_FILTER:
		snprintf(line, sizeof(line), "Filter: %s_   (Enter keeps, Esc clears)",
		         app->filter);
		put_bar(LINES - 1, line, A_BOLD);
		break;
	case KT_CONFIRM:
		if (app->confirm == 'S') {
			kt_fmt_duration(up, sizeof(up), app->suspend_secs);
			snprintf(line, sizeof(line), "Suspend path %s for %s? [y/N]",
			         app->confirm_name, up);
		} else {
			snprintf(line, sizeof(line),
			         "Resume path %s (cancel its suspensions)? [y/N]",
			         app->confirm_name);
		}
		put_bar(LINES - 1, line, role(P_SUSPENDED) | A_REVERSE);
		break;
	default:
		if (app->msg != NULL)
			put_bar(LINES - 1, app->msg, app->msg_error ? role(P_BAD) : A_BOLD);
		else
			put_bar(
			    LINES - 1,
			    "q quit  ? help  Tab table  s sort  / filter  Enter detail  S suspend  "
			    "R resume",
			    A_DIM);
		break;
	}
	if (app->mode == KT_HELP)
		draw_help();
	refresh();
}
