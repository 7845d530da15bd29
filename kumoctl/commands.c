/*
 * commands.c: kumoctl's one command table and everything read from it:
 * word splitting, argument validation into the request's args, `help`,
 * the man page's command section, and the human (columnar) output of
 * results and stream items. The wire names and result shapes are those of
 * doc/control-protocol.md.
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "buf.h"
#include "duration.h"
#include "kumo.h"

#include "kumoctl.h"

/* clang-format off */
#define SELECTOR_OPTS \
	{"--domain", "domain", KC_STR, KC_COMP_DOMAIN, 0, "recipient domain"}, \
	{"--tenant", "tenant", KC_STR, KC_COMP_NONE, 0, "tenant name"}, \
	{"--campaign", "campaign", KC_STR, KC_COMP_NONE, 0, "campaign name"}
#define RULE_OPTS \
	{"--duration", "duration", KC_DURATION, KC_COMP_NONE, 0, \
	 "how long the rule lasts (e.g. 2h; default 5m)"}, \
	{"--reason", "reason", KC_STR, KC_COMP_NONE, 1, "why, recorded with each affected message"}
#define SELECTORS "--domain,--tenant,--campaign"

/* The table: every command kumoctl knows, in the order help and the man page list them. */
const struct kc_cmd kc_commands[] = {
	{.name = "queue-summary", .wire = "queue-summary",
	 .help = "ready and scheduled queues with their counts",
	 .detail = "Ready queues (egress paths) with site, source, D delivered, T transient "
		   "failures, C connections, Q queued and status; then scheduled queues with "
		   "their counts.",
	 .opts = {{"--by-volume", "by_volume", KC_FLAG, KC_COMP_NONE, 0, "largest queues first"},
		  {"--limit", "limit", KC_INT, KC_COMP_NONE, 0, "at most N rows of each table"},
		  {"--domain", "domain", KC_STR, KC_COMP_DOMAIN, 0, "only queues for this domain"}}},
	{.name = "inspect-sched-q", .wire = "inspect-sched-q",
	 .help = "one scheduled queue: counts, retry state, rules that apply",
	 .pos = {{"NAME", "name", KC_STR, KC_COMP_SCHED, 1, "scheduled queue name"}}},
	{.name = "inspect-ready-q", .wire = "inspect-ready-q",
	 .help = "one ready queue: path config, connections, throttle state, consecutive "
		 "failures, next due",
	 .pos = {{"NAME", "name", KC_STR, KC_COMP_READY, 1, "ready queue name (source->site)"}}},
	{.name = "inspect-message", .wire = "inspect-message",
	 .help = "one spooled message: envelope, queue, attempts, next due",
	 .pos = {{"ID", "id", KC_STR, KC_COMP_NONE, 1, "spool id"}}},
	{.name = "suspend", .wire = "suspend",
	 .help = "hold scheduled queues by domain, tenant or campaign",
	 .detail = "Matching messages wait; each deferral records the reason in its "
		   "TransientFailure record.",
	 .opts = {SELECTOR_OPTS, RULE_OPTS}, .one_of = SELECTORS},
	{.name = "suspend-list", .wire = "suspend-list", .help = "the suspensions in force"},
	{.name = "suspend-cancel", .wire = "suspend-cancel", .help = "lift a suspension",
	 .pos = {{"ID", "id", KC_INT, KC_COMP_NONE, 1, "suspension id from suspend-list"}}},
	{.name = "suspend-ready-q", .wire = "suspend-ready-q",
	 .help = "stop one egress path (ready queue) from connecting",
	 .pos = {{"NAME", "name", KC_STR, KC_COMP_READY, 1, "ready queue name (source->site)"}},
	 .opts = {RULE_OPTS}},
	{.name = "suspend-ready-q-list", .wire = "suspend-ready-q-list",
	 .help = "the ready-queue suspensions in force"},
	{.name = "suspend-ready-q-cancel", .wire = "suspend-ready-q-cancel",
	 .help = "lift a ready-queue suspension",
	 .pos = {{"ID", "id", KC_INT, KC_COMP_NONE, 1, "suspension id from suspend-ready-q-list"}}},
	{.name = "bounce", .wire = "bounce",
	 .help = "bounce queued messages by domain, tenant or campaign",
	 .detail = "Matching queued messages get AdminBounce records, and so do new arrivals "
		   "while the rule lasts.",
	 .opts = {SELECTOR_OPTS, RULE_OPTS}, .one_of = SELECTORS},
	{.name = "bounce-list", .wire = "bounce-list", .help = "the bounce rules in force"},
	{.name = "bounce-cancel", .wire = "bounce-cancel", .help = "remove a bounce rule",
	 .pos = {{"ID", "id", KC_INT, KC_COMP_NONE, 1, "rule id from bounce-list"}}},
	{.name = "resolve-egress-path", .wire = "resolve-egress-path",
	 .help = "the merged egress path config and where each value came from",
	 .detail = "Each value's origin is one of: built-in, default, site, domain, source.",
	 .pos = {{"DOMAIN", "domain", KC_STR, KC_COMP_DOMAIN, 1, "recipient domain"},
		 {"SOURCE", "source", KC_STR, KC_COMP_SOURCE, 0, "egress source name"}}},
	{.name = "reload", .wire = "reload", .help = "re-read the configuration",
	 .timeout_ms = 120000},
	{.name = "trace-smtp-client", .wire = "trace-smtp-client",
	 .help = "stream live SMTP client transcripts (Ctrl-C stops)",
	 .opts = {{"--site", "site", KC_STR, KC_COMP_SITE, 0, "only sessions to this site"},
		  {"--source", "source", KC_STR, KC_COMP_SOURCE, 0, "only sessions from this source"}},
	 .stream = 1, .timeout_ms = -1},
	{.name = "set-log-filter", .wire = "set-log-filter",
	 .help = "change the log level and trace subsystems",
	 .detail = "FILTER is a level (debug, info, notice, warn, error), optionally followed by "
		   ",trace=NAME+NAME (smtp_server, smtp_client, dns, tls, queue, spool, control, "
		   "all).",
	 .pos = {{"FILTER", "filter", KC_STR, KC_COMP_NONE, 1, "e.g. info,trace=smtp_client+dns"}}},
	{.name = "metrics", .wire = "metrics",
	 .help = "counters in Prometheus text exposition format"},
	{.name = "inject", .wire = "inject",
	 .help = "inject messages through the reception path (spooled before acknowledged)",
	 .detail = "Either --file (one RFC 5322 message, sent --count times) or generated "
		   "messages of --size bytes. In --to, {n} is replaced by the message number. "
		   "kumod makes and spools the messages as it goes, --concurrency at a time; each "
		   "is queued for delivery once it is on disk. The result counts them and says how "
		   "many were in flight at most. Ctrl-C stops the injection: messages already "
		   "spooled stay queued.",
	 .opts = {{"--file", "file", KC_FILE, KC_COMP_FILE, 0, "message file"},
		  {"--from", "from", KC_STR, KC_COMP_NONE, 0, "envelope sender"},
		  {"--to", "to", KC_STR, KC_COMP_NONE, 1,
		   "recipient pattern, e.g. user{n}@example.test"},
		  {"--count", "count", KC_INT, KC_COMP_NONE, 0, "messages (default 1)"},
		  {"--size", "size", KC_INT, KC_COMP_NONE, 0, "bytes per generated message"},
		  {"--concurrency", "concurrency", KC_INT, KC_COMP_NONE, 0,
		   "messages being spooled at once (1 to 10000; default 64)"}},
	 .cancellable = 1, .timeout_ms = -1},
	{.name = "watch", .wire = "watch",
	 .help = "stream snapshots of totals, rates and queues (Ctrl-C stops)",
	 .opts = {{"--interval", "interval", KC_DURATION, KC_COMP_NONE, 0,
		   "between snapshots (default 1s)"},
		  {"--count", "count", KC_INT, KC_COMP_NONE, 0, "stop after N snapshots"}},
	 .stream = 1, .timeout_ms = -1},
	{.name = "help", .help = "list the commands, or describe one",
	 .pos = {{"COMMAND", "command", KC_STR, KC_COMP_COMMAND, 0, "a command name"}}},
	{.name = "quit", .help = "leave the shell (also exit, or end of input)"},
	{.name = NULL},
};
/* clang-format on */

const struct kc_cmd *
kc_find(const char *name)
{
	const struct kc_cmd *c;

	if (strcmp(name, "exit") == 0)
		name = "quit";
	for (c = kc_commands; c->name != NULL; c++) {
		if (strcmp(c->name, name) == 0)
			return c;
	}
	return NULL;
}

const char *
kc_comp_str(enum kc_comp c)
{
	switch (c) {
	case KC_COMP_SCHED:
		return "sched";
	case KC_COMP_READY:
		return "ready";
	case KC_COMP_SITE:
		return "site";
	case KC_COMP_SOURCE:
		return "source";
	case KC_COMP_DOMAIN:
		return "domain";
	default:
		return NULL;
	}
}

/* Levenshtein distance, capped at the lengths we compare (names are short). */
static size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t row[64], prev, tmp;

	if (la >= 64 || lb >= 64)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t best = prev + (a[i - 1] != b[j - 1]);

			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			tmp = row[j];
			row[j] = best;
			prev = tmp;
		}
	}
	return row[lb];
}

const char *
kc_suggest(const char *s, const char *const *names, size_t n)
{
	const char *best = NULL;
	size_t i, bestd = 3;

	for (i = 0; i < n; i++) {
		size_t d;

		/* A unique prefix counts as a near miss too. */
		if (strlen(s) >= 3 && strncmp(names[i], s, strlen(s)) == 0)
			return names[i];
		d = edit_distance(s, names[i]);
		if (d < bestd) {
			bestd = d;
			best = names[i];
		}
	}
	return best;
}

const char *
kc_suggest_command(const char *s)
{
	const char *names[64];
	size_t n = 0;
	const struct kc_cmd *c;

	for (c = kc_commands; c->name != NULL && n < KUMO_NELEM(names); c++)
		names[n++] = c->name;
	return kc_suggest(s, names, n);
}

int
kc_split(const char *line, char ***argv_r, int *argc_r, char **err_r)
{
	struct buf w;
	char **argv = NULL;
	int argc = 0, in_word = 0;
	const char *p = line;

	buf_init(&w, 0);
	for (;;) {
		char c = *p;

		if (c == '\0' ||
		    ((c == ' ' || c == '\t' || c == '\n' || c == '\r') && in_word >= 0)) {
			if (in_word) {
				argv = xreallocarray(argv, (size_t)argc + 2, sizeof(*argv));
				argv[argc++] = buf_steal(&w, NULL);
				in_word = 0;
			}
			if (c == '\0')
				break;
			p++;
			continue;
		}
		if (c == '#' && !in_word)
			break;
		in_word = 1;
		if (c == '\'' || c == '"') {
			const char *q = p + 1;

			while (*q != '\0' && *q != c) {
				if (c == '"' && *q == '\\' && (q[1] == '"' || q[1] == '\\'))
					q++;
				buf_putc(&w, *q++);
			}
			if (*q == '\0') {
				*err_r = xasprintf("unterminated %s quote",
				                   c == '"' ? "double" : "single");
				buf_release(&w);
				argv = xreallocarray(argv, (size_t)argc + 1, sizeof(*argv));
				argv[argc] = NULL;
				kc_free_words(argv);
				return -1;
			}
			p = q + 1;
			continue;
		}
		if (c == '\\' && p[1] != '\0')
			p++;
		buf_putc(&w, *p++);
	}
	buf_release(&w);
	argv = xreallocarray(argv, (size_t)argc + 1, sizeof(*argv));
	argv[argc] = NULL;
	*argv_r = argv;
	*argc_r = argc;
	return 0;
}

void
kc_free_words(char **argv)
{
	char **p;

	if (argv == NULL)
		return;
	for (p = argv; *p != NULL; p++)
		free(*p);
	free(argv);
}

/* Validate one value and store it in args under a->key. 0, or -1 with *err_r. */
static int
put_value(const struct kc_cmd *cmd, const struct kc_arg *a, const char *v, json_t *args,
          char **err_r)
{
	char *end, *derr = NULL;
	long long n;
	uint64_t secs;
	json_t *j;

	switch (a->kind) {
	case KC_INT:
		n = strtoll(v, &end, 10);
		if (*v == '\0' || *end != '\0' || n < 0 || n == LLONG_MAX ||
		    !isdigit((unsigned char)*v)) {
			*err_r = xasprintf("%s: %s: \"%s\" is not a non-negative integer",
			                   cmd->name, a->name, v);
			return -1;
		}
		json_object_set_new(args, a->key, json_integer(n));
		return 0;
	case KC_DURATION:
		if (duration_parse(v, &secs, &derr) < 0) {
			*err_r = xasprintf("%s: %s: %s", cmd->name, a->name, derr);
			free(derr);
			return -1;
		}
		json_object_set_new(args, a->key, json_integer((json_int_t)secs));
		return 0;
	case KC_FILE:
		if (access(v, R_OK) < 0) {
			*err_r = xasprintf("%s: %s: cannot read %s", cmd->name, a->name, v);
			return -1;
		}
		if (v[0] != '/') {
			char cwd[4096];

			if (getcwd(cwd, sizeof(cwd)) == NULL) {
				*err_r =
				    xasprintf("%s: %s: cannot resolve %s", cmd->name, a->name, v);
				return -1;
			}
			end = xasprintf("%s/%s", cwd, v);
			json_object_set_new(args, a->key, json_string(end));
			free(end);
			return 0;
		}
		/* fall through */
	case KC_STR:
		if ((j = json_string(v)) == NULL) {
			*err_r = xasprintf("%s: %s: not valid UTF-8", cmd->name, a->name);
			return -1;
		}
		json_object_set_new(args, a->key, j);
		return 0;
	case KC_FLAG:
		json_object_set_new(args, a->key, json_true());
		return 0;
	}
	return -1;
}

static const struct kc_arg *
find_opt(const struct kc_cmd *cmd, const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < KC_MAX_OPTS && cmd->opts[i].name != NULL; i++) {
		if (strlen(cmd->opts[i].name) == len && strncmp(cmd->opts[i].name, name, len) == 0)
			return &cmd->opts[i];
	}
	return NULL;
}

int
kc_build_args(const struct kc_cmd *cmd, int argc, char **argv, json_t **args_r, char **err_r)
{
	json_t *args = json_object();
	size_t npos = 0, i;
	int k;

	*args_r = NULL;
	for (k = 0; k < argc; k++) {
		const char *w = argv[k];

		if (w[0] == '-' && w[1] == '-' && w[2] != '\0') {
			const char *eq = strchr(w, '=');
			size_t nlen = eq != NULL ? (size_t)(eq - w) : strlen(w);
			const struct kc_arg *a = find_opt(cmd, w, nlen);
			const char *v;

			if (a == NULL) {
				const char *names[KC_MAX_OPTS], *near;
				char *bare = xstrndup(w, nlen);
				size_t n = 0;

				for (i = 0; i < KC_MAX_OPTS && cmd->opts[i].name != NULL; i++)
					names[n++] = cmd->opts[i].name;
				near = kc_suggest(bare, names, n);
				*err_r =
				    near != NULL
				        ? xasprintf("%s: unknown option %s (did you mean %s?)",
				                    cmd->name, bare, near)
				        : xasprintf("%s: unknown option %s (help %s lists them)",
				                    cmd->name, bare, cmd->name);
				free(bare);
				goto fail;
			}
			if (a->kind == KC_FLAG) {
				if (eq != NULL) {
					*err_r =
					    xasprintf("%s: %s takes no value", cmd->name, a->name);
					goto fail;
				}
				v = "";
			} else if (eq != NULL) {
				v = eq + 1;
			} else if (k + 1 < argc) {
				v = argv[++k];
			} else {
				*err_r = xasprintf("%s: %s needs a value", cmd->name, a->name);
				goto fail;
			}
			if (json_object_get(args, a->key) != NULL) {
				*err_r = xasprintf("%s: %s given twice", cmd->name, a->name);
				goto fail;
			}
			if (put_value(cmd, a, v, args, err_r) < 0)
				goto fail;
			continue;
		}
		if (npos >= KC_MAX_POS || cmd->pos[npos].name == NULL) {
			char *u = kc_usage(cmd);

			*err_r =
			    xasprintf("%s: unexpected argument \"%s\"\nusage: %s", cmd->name, w, u);
			free(u);
			goto fail;
		}
		if (put_value(cmd, &cmd->pos[npos], w, args, err_r) < 0)
			goto fail;
		npos++;
	}
	for (i = 0; i < KC_MAX_POS && cmd->pos[i].name != NULL; i++) {
		if (cmd->pos[i].required && json_object_get(args, cmd->pos[i].key) == NULL) {
			char *u = kc_usage(cmd);

			*err_r =
			    xasprintf("%s: missing %s\nusage: %s", cmd->name, cmd->pos[i].name, u);
			free(u);
			goto fail;
		}
	}
	for (i = 0; i < KC_MAX_OPTS && cmd->opts[i].name != NULL; i++) {
		if (cmd->opts[i].required && json_object_get(args, cmd->opts[i].key) == NULL) {
			*err_r = xasprintf("%s: %s is required", cmd->name, cmd->opts[i].name);
			goto fail;
		}
	}
	if (cmd->one_of != NULL) {
		char *list = xstrdup(cmd->one_of), *save = NULL, *name;
		int given = 0;

		for (name = strtok_r(list, ",", &save); name != NULL;
		     name = strtok_r(NULL, ",", &save)) {
			const struct kc_arg *a = find_opt(cmd, name, strlen(name));

			if (a != NULL && json_object_get(args, a->key) != NULL)
				given++;
		}
		free(list);
		if (given != 1) {
			char *list2 = xstrdup(cmd->one_of), *p2;

			for (p2 = list2; *p2 != '\0'; p2++)
				if (*p2 == ',')
					*p2 = '/';
			*err_r = xasprintf("%s: give exactly one of %s", cmd->name, list2);
			free(list2);
			goto fail;
		}
	}
	*args_r = args;
	return 0;
fail:
	json_decref(args);
	return -1;
}

/* The words of one argument in a synopsis: "--limit N", "[SOURCE]", "--by-volume". */
static void
synopsis_arg(struct buf *b, const struct kc_arg *a, int positional)
{
	const char *meta = a->kind == KC_INT        ? "N"
	                   : a->kind == KC_DURATION ? "DURATION"
	                   : a->kind == KC_FILE     ? "FILE"
	                                            : "TEXT";
	char up[32];
	size_t i;

	if (!positional) {
		/* Name the value after the option: --domain DOMAIN, --limit N. */
		if (a->kind == KC_STR) {
			for (i = 0; a->name[i + 2] != '\0' && i + 1 < sizeof(up); i++)
				up[i] = (char)toupper((unsigned char)a->name[i + 2]);
			up[i] = '\0';
			meta = up;
		}
	}
	buf_puts(b, " ");
	if (!a->required)
		buf_puts(b, "[");
	if (positional)
		buf_puts(b, a->name);
	else if (a->kind == KC_FLAG)
		buf_puts(b, a->name);
	else
		buf_appendf(b, "%s %s", a->name, meta);
	if (!a->required)
		buf_puts(b, "]");
}

char *
kc_usage(const struct kc_cmd *cmd)
{
	struct buf b;
	size_t i;

	buf_init(&b, 0);
	buf_puts(&b, cmd->name);
	for (i = 0; i < KC_MAX_POS && cmd->pos[i].name != NULL; i++)
		synopsis_arg(&b, &cmd->pos[i], 1);
	if (cmd->one_of != NULL) {
		char *list = xstrdup(cmd->one_of), *save = NULL, *name;
		int first = 1;

		buf_puts(&b, " {");
		for (name = strtok_r(list, ",", &save); name != NULL;
		     name = strtok_r(NULL, ",", &save)) {
			const struct kc_arg *a = find_opt(cmd, name, strlen(name));
			struct buf one;

			buf_init(&one, 0);
			if (a != NULL)
				synopsis_arg(&one, a, 0);
			/* strip the brackets: inside {...|...} the choice is required */
			buf_appendf(&b, "%s%.*s", first ? "" : " | ",
			            (int)(one.len > 3 ? one.len - 3 : 0),
			            one.len > 3 ? one.data + 2 : "");
			buf_release(&one);
			first = 0;
		}
		buf_puts(&b, "}");
		free(list);
	}
	for (i = 0; i < KC_MAX_OPTS && cmd->opts[i].name != NULL; i++) {
		if (cmd->one_of != NULL && strstr(cmd->one_of, cmd->opts[i].name) != NULL)
			continue;
		synopsis_arg(&b, &cmd->opts[i], 0);
	}
	return buf_steal(&b, NULL);
}

void
kc_print_help(const struct kc_cmd *cmd)
{
	const struct kc_cmd *c;
	size_t i;

	if (cmd == NULL) {
		printf("Commands (help COMMAND for details):\n");
		for (c = kc_commands; c->name != NULL; c++)
			printf("  %-24s %s\n", c->name, c->help);
		return;
	}
	{
		char *u = kc_usage(cmd);

		printf("usage: %s\n  %s\n", u, cmd->help);
		free(u);
	}
	if (cmd->detail != NULL)
		printf("  %s\n", cmd->detail);
	for (i = 0; i < KC_MAX_POS && cmd->pos[i].name != NULL; i++)
		printf("  %-18s %s%s\n", cmd->pos[i].name, cmd->pos[i].help,
		       cmd->pos[i].required ? "" : " (optional)");
	for (i = 0; i < KC_MAX_OPTS && cmd->opts[i].name != NULL; i++)
		printf("  %-18s %s%s\n", cmd->opts[i].name, cmd->opts[i].help,
		       cmd->opts[i].required ? " (required)" : "");
}

/* Text for troff: a leading dot or quote would be a request, backslashes escape. */
static void
man_text(const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", stdout);
	for (; *s != '\0'; s++) {
		if (*s == '\\')
			fputs("\\e", stdout);
		else if (*s == '-')
			fputs("\\-", stdout);
		else
			putchar(*s);
	}
}

void
kc_print_man_commands(void)
{
	const struct kc_cmd *c;
	size_t i;

	printf(".\\\" Generated by kumoctl --man-commands from kumoctl/commands.c: do not edit by "
	       "hand.\n");
	printf(".SH COMMANDS\n");
	for (c = kc_commands; c->name != NULL; c++) {
		char *u = kc_usage(c);

		printf(".TP\n.B ");
		man_text(u);
		printf("\n");
		man_text(c->help);
		printf(".\n");
		free(u);
		if (c->detail != NULL) {
			man_text(c->detail);
			printf("\n");
		}
		for (i = 0; i < KC_MAX_POS && c->pos[i].name != NULL; i++) {
			printf(".br\n\\fI");
			man_text(c->pos[i].name);
			printf("\\fR \\(em ");
			man_text(c->pos[i].help);
			printf("%s\n", c->pos[i].required ? "" : " (optional)");
		}
		for (i = 0; i < KC_MAX_OPTS && c->opts[i].name != NULL; i++) {
			printf(".br\n\\fB");
			man_text(c->opts[i].name);
			printf("\\fR \\(em ");
			man_text(c->opts[i].help);
			printf("%s\n", c->opts[i].required ? " (required)" : "");
		}
	}
}

/* ---- human output ---- */

static int
ends_with(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

/* One value as table or line text (allocated). Members named *_in or *duration are seconds. */
static char *
cell(const char *key, json_t *v)
{
	char d[DURATION_FORMAT_MAX];

	switch (json_typeof(v)) {
	case JSON_STRING:
		return xstrdup(json_string_value(v));
	case JSON_INTEGER:
		if (key != NULL &&
		    (ends_with(key, "_in") || ends_with(key, "duration") ||
		     strcmp(key, "uptime") == 0) &&
		    json_integer_value(v) >= 0) {
			duration_format((uint64_t)json_integer_value(v), d, sizeof(d));
			return xstrdup(d);
		}
		return xasprintf("%lld", (long long)json_integer_value(v));
	case JSON_REAL:
		return xasprintf("%.2f", json_real_value(v));
	case JSON_TRUE:
		return xstrdup("yes");
	case JSON_FALSE:
		return xstrdup("no");
	case JSON_NULL:
		return xstrdup("-");
	default: {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		return s != NULL ? s : xstrdup("?");
	}
	}
}

static int
is_table(json_t *v)
{
	return json_is_array(v) && json_array_size(v) > 0 && json_is_object(json_array_get(v, 0));
}

/* An array of objects as columns: headers are the members, upper-cased, in first-seen order. */
static void
print_table(json_t *rows, const char *indent)
{
	json_t *cols = json_array(), *row, *v;
	size_t i, j, ncols, *width;
	const char *key;
	int *numeric;

	json_array_foreach(rows, i, row)
	{
		json_object_foreach(row, key, v)
		{
			int seen = 0;

			(void)v;
			for (j = 0; j < json_array_size(cols); j++)
				seen |=
				    strcmp(json_string_value(json_array_get(cols, j)), key) == 0;
			if (!seen)
				json_array_append_new(cols, json_string(key));
		}
	}
	ncols = json_array_size(cols);
	width = xcalloc(ncols + 1, sizeof(*width));
	numeric = xcalloc(ncols + 1, sizeof(*numeric));
	for (j = 0; j < ncols; j++) {
		width[j] = strlen(json_string_value(json_array_get(cols, j)));
		numeric[j] = 1;
	}
	json_array_foreach(rows, i, row)
	{
		for (j = 0; j < ncols; j++) {
			const char *k = json_string_value(json_array_get(cols, j));
			json_t *cv = json_object_get(row, k);
			char *s = cell(k, cv != NULL ? cv : json_null());

			if (strlen(s) > width[j])
				width[j] = strlen(s);
			if (cv != NULL && !json_is_number(cv) && !json_is_null(cv))
				numeric[j] = 0;
			free(s);
		}
	}
	fputs(indent, stdout);
	for (j = 0; j < ncols; j++) {
		const char *k = json_string_value(json_array_get(cols, j));
		size_t c;

		if (numeric[j])
			printf("%*s", (int)(width[j] - strlen(k)), "");
		for (c = 0; k[c] != '\0'; c++)
			putchar(k[c] == '_' ? ' ' : toupper((unsigned char)k[c]));
		if (j + 1 < ncols)
			printf("%*s", (int)(numeric[j] ? 2 : width[j] - strlen(k) + 2), "");
	}
	putchar('\n');
	json_array_foreach(rows, i, row)
	{
		fputs(indent, stdout);
		for (j = 0; j < ncols; j++) {
			const char *k = json_string_value(json_array_get(cols, j));
			json_t *cv = json_object_get(row, k);
			char *s = cell(k, cv != NULL ? cv : json_null());

			if (j + 1 == ncols && !numeric[j])
				printf("%s", s);
			else
				printf(numeric[j] ? "%*s" : "%-*s", (int)width[j], s);
			if (j + 1 < ncols)
				fputs("  ", stdout);
			free(s);
		}
		putchar('\n');
	}
	free(width);
	free(numeric);
	json_decref(cols);
}

static void
print_object(json_t *obj, int depth)
{
	const char *key;
	json_t *v;
	size_t w = 0;
	char indent[32];

	snprintf(indent, sizeof(indent), "%*s", depth * 2, "");
	json_object_foreach(obj, key, v)
	{
		if (!is_table(v) && !json_is_object(v) && strlen(key) > w)
			w = strlen(key);
	}
	json_object_foreach(obj, key, v)
	{
		if (is_table(v)) {
			printf("%s%s:\n", indent, key);
			print_table(v, depth == 0 ? "  " : "    ");
		} else if (json_is_object(v)) {
			printf("%s%s:\n", indent, key);
			print_object(v, depth + 1);
		} else if (json_is_array(v) && json_array_size(v) == 0) {
			printf("%s%-*s  (none)\n", indent, (int)w + 1, key);
		} else {
			char *s = cell(key, v);

			printf("%s%s:%*s %s\n", indent, key, (int)(w - strlen(key)), "", s);
			free(s);
		}
	}
}

void
kc_print_result(const struct kc_cmd *cmd, json_t *result)
{
	(void)cmd;
	if (result == NULL || json_is_null(result))
		return;
	if (json_is_string(result)) {
		const char *s = json_string_value(result);

		fputs(s, stdout);
		if (*s != '\0' && s[strlen(s) - 1] != '\n')
			putchar('\n');
		return;
	}
	if (json_is_object(result)) {
		/* metrics and similar: {"text": "..."} alone prints verbatim */
		if (json_object_size(result) == 1 &&
		    json_is_string(json_object_get(result, "text"))) {
			kc_print_result(cmd, json_object_get(result, "text"));
			return;
		}
		print_object(result, 0);
		return;
	}
	if (is_table(result)) {
		print_table(result, "");
		return;
	}
	{
		char *s = cell(NULL, result);

		printf("%s\n", s);
		free(s);
	}
}

/* One watch snapshot as one line of totals; the header every 20 lines like vmstat. */
static void
print_watch_line(json_t *snap, unsigned long n)
{
	static const char *const keys[] = {"received",  "delivered", "transient",  "bounced",
	                                   "scheduled", "ready",     "connections"};
	json_t *totals = json_object_get(snap, "totals");
	json_t *t = json_object_get(snap, "time");
	char when[16] = "-";
	size_t i;

	if (n % 20 == 0) {
		printf("%-8s", "TIME");
		for (i = 0; i < KUMO_NELEM(keys); i++) {
			char up[16];
			size_t c;

			for (c = 0; keys[i][c] != '\0' && c + 1 < sizeof(up); c++)
				up[c] = (char)toupper((unsigned char)keys[i][c]);
			up[c] = '\0';
			printf(" %11s", up);
		}
		putchar('\n');
	}
	if (json_is_integer(t)) {
		time_t tt = (time_t)json_integer_value(t);
		struct tm tm;

		if (localtime_r(&tt, &tm) != NULL)
			strftime(when, sizeof(when), "%H:%M:%S", &tm);
	}
	printf("%-8s", when);
	for (i = 0; i < KUMO_NELEM(keys); i++) {
		json_t *v = json_object_get(totals, keys[i]);

		if (json_is_integer(v))
			printf(" %11lld", (long long)json_integer_value(v));
		else
			printf(" %11s", "-");
	}
	putchar('\n');
}

void
kc_print_item(const struct kc_cmd *cmd, json_t *item, unsigned long n)
{
	if (strcmp(cmd->name, "watch") == 0 && json_is_object(json_object_get(item, "totals"))) {
		print_watch_line(item, n);
	} else if (json_is_object(item) && json_is_string(json_object_get(item, "line"))) {
		/* trace lines: session, direction, text */
		json_t *sid = json_object_get(item, "session"),
		       *dir = json_object_get(item, "direction");
		char *s = sid != NULL ? cell("session", sid) : xstrdup("-");

		printf("%s %s %s\n", s, json_is_string(dir) ? json_string_value(dir) : "",
		       json_string_value(json_object_get(item, "line")));
		free(s);
	} else {
		kc_print_result(cmd, item);
	}
	fflush(stdout);
}
