/*
 * main.c: kumoctl, the admin shell of kumod's control socket. It owns the
 * modes (interactive readline shell, -c, -f, a command in argv, commands on
 * a non-terminal stdin), the connection (made lazily, remade after the
 * daemon goes away), history, tab completion (commands and options from
 * the table, live names from the daemon's "complete" command), streams
 * stopped by Ctrl-C, and the exit codes.
 */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <readline/history.h>
#include <readline/readline.h>

#include "ctl.h"
#include "duration.h"
#include "kumo.h"

#include "kumoctl.h"

#define KC_QUIT (-1)
#define KC_CONNECT_TIMEOUT 5000
#define KC_DEFAULT_TIMEOUT 60000

struct kc {
	const char *socket;
	struct ctl_client *c;
	int json;
	int keep_going;
	int interactive;
	int timeout_ms;
	const char *where; /* "FILE:LINE" prefix for script errors, or NULL */
};

static struct kc kc;
static volatile sig_atomic_t interrupted;

static void
on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Print an error line; in scripts it names the file and line. */
static void say_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say_error(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("kumoctl: ", stderr);
	if (kc.where != NULL)
		fprintf(stderr, "%s: ", kc.where);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int
kc_connect(int quiet)
{
	char *err = NULL;

	if (kc.c != NULL)
		return 0;
	if (ctl_client_connect(kc.socket, KC_CONNECT_TIMEOUT, &kc.c, &err) < 0) {
		if (!quiet)
			say_error("%s", err);
		free(err);
		return KC_EXIT_USAGE;
	}
	return 0;
}

static void
kc_disconnect(void)
{
	ctl_client_close(&kc.c);
}

static int run_stream_loop(const struct kc_cmd *cmd, json_t *args);

/*
 * Read a stream until its terminator, or a long one-shot reply (inject)
 * until its result; Ctrl-C (or a stream's --count) sends "cancel".
 */
static int
run_stream(const struct kc_cmd *cmd, json_t *args)
{
	struct sigaction sa, old;
	int rc;

	/* Ctrl-C stops the stream, not kumoctl: the handler lives only while it runs. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, &old);
	interrupted = 0;
	rc = run_stream_loop(cmd, args);
	sigaction(SIGINT, &old, NULL);
	/* The terminal echoed ^C without a newline: keep the next prompt on its own line. */
	if (interrupted && isatty(STDERR_FILENO))
		fputc('\n', stderr);
	interrupted = 0;
	return rc;
}

static int
run_stream_loop(const struct kc_cmd *cmd, json_t *args)
{
	json_int_t id, cancel_id = -1;
	/* --count of a stream is items to show; inject's count is messages, not items. */
	json_int_t want = cmd->stream ? json_integer_value(json_object_get(args, "count")) : 0;
	unsigned long items = 0;
	char *err = NULL;
	int rc = KC_EXIT_OK, cancelling = 0, waited = 0;

	if (ctl_client_send(kc.c, cmd->wire, args, &id, &err) < 0)
		goto transport;
	for (;;) {
		struct ctl_msg m;
		int r;

		if ((interrupted || (want > 0 && (json_int_t)items >= want)) && !cancelling) {
			json_t *cargs = json_pack("{s:I}", "id", id);

			cancelling = 1;
			r = ctl_client_send(kc.c, "cancel", cargs, &cancel_id, &err);
			json_decref(cargs);
			if (r < 0)
				goto transport;
		}
		r = ctl_client_read(kc.c, 250, &m, &err);
		if (r == KUMO_ETIMEDOUT) {
			free(err);
			err = NULL;
			/* Cancelled but no terminator after 5 s: give up on this connection. */
			if (cancelling && ++waited > 20) {
				kc_disconnect();
				return rc;
			}
			continue;
		}
		if (r < 0)
			goto transport;
		if (m.id == cancel_id && cancel_id >= 0) {
			/* the cancel's own reply: the stream's terminator came before it */
			ctl_msg_clear(&m);
			break;
		}
		if (m.id != id && m.id >= 0) {
			ctl_msg_clear(&m);
			continue;
		}
		if (kc.json && !(cancelling && m.kind == CTL_MSG_STREAM && want > 0 &&
		                 (json_int_t)items >= want)) {
			fwrite(m.line, 1, m.len, stdout);
			putchar('\n');
			fflush(stdout);
		}
		if (m.kind == CTL_MSG_STREAM) {
			if (!kc.json && !(want > 0 && (json_int_t)items >= want))
				kc_print_item(cmd, m.value, items);
			items++;
		} else if (m.kind == CTL_MSG_ERROR) {
			if (!kc.json)
				say_error("%s: %s", cmd->name, m.error);
			rc = KC_EXIT_FAILED;
			ctl_msg_clear(&m);
			if (!cancelling)
				break;
			continue;
		} else if (m.kind == CTL_MSG_RESULT) {
			if (!kc.json)
				kc_print_result(cmd, m.value);
			ctl_msg_clear(&m);
			if (!cancelling)
				break;
			continue;
		} else if (m.kind == CTL_MSG_END) {
			ctl_msg_clear(&m);
			if (!cmd->stream) {
				/* a one-shot cancelled before its result */
				say_error("%s: cancelled%s", cmd->name,
				          strcmp(cmd->name, "inject") == 0
				              ? " (messages already spooled stay queued)"
				              : "");
				rc = KC_EXIT_FAILED;
			}
			if (!cancelling)
				break;
			continue;
		}
		ctl_msg_clear(&m);
	}
	return rc;
transport:
	say_error("%s", err);
	free(err);
	kc_disconnect();
	return KC_EXIT_USAGE;
}

static void comp_reset(void);
static void comp_fetch(enum kc_comp kind, const char *prefix);
static char **comp_names;
static size_t comp_n;

/*
 * After the daemon refused a command: if its first positional names a
 * queue, site, source or domain, the nearest live name (allocated), or NULL.
 */
static char *
suggest_name(const struct kc_cmd *cmd, int argc, char **argv)
{
	const char *given = NULL, *near;
	char *out = NULL;
	int k;

	if (cmd->pos[0].name == NULL || kc_comp_str(cmd->pos[0].comp) == NULL)
		return NULL;
	for (k = 0; k < argc; k++) {
		if (strncmp(argv[k], "--", 2) != 0) {
			given = argv[k];
			break;
		}
		if (strchr(argv[k], '=') == NULL)
			k++; /* every option of these commands takes a value */
	}
	if (given == NULL)
		return NULL;
	comp_reset();
	comp_fetch(cmd->pos[0].comp, "");
	near = kc_suggest(given, (const char *const *)comp_names, comp_n);
	if (near != NULL && strcmp(near, given) != 0)
		out = xstrdup(near);
	comp_reset();
	return out;
}

/* Run one command given as words. An exit code, or KC_QUIT. */
static int
run_words(int argc, char **argv)
{
	const struct kc_cmd *cmd;
	json_t *args = NULL;
	struct ctl_msg m;
	char *err = NULL;
	int rc, timeout;

	if (argc == 0)
		return KC_EXIT_OK;
	if ((cmd = kc_find(argv[0])) == NULL) {
		const char *near = kc_suggest_command(argv[0]);

		if (near != NULL)
			say_error("unknown command \"%s\" (did you mean %s?)", argv[0], near);
		else
			say_error("unknown command \"%s\" (help lists them)", argv[0]);
		return KC_EXIT_USAGE;
	}
	if (kc_build_args(cmd, argc - 1, argv + 1, &args, &err) < 0) {
		say_error("%s", err);
		free(err);
		return KC_EXIT_USAGE;
	}
	if (cmd->wire == NULL) {
		if (strcmp(cmd->name, "quit") == 0) {
			json_decref(args);
			return KC_QUIT;
		}
		/* help */
		{
			json_t *name = json_object_get(args, "command");
			const struct kc_cmd *about = NULL;

			if (name != NULL && (about = kc_find(json_string_value(name))) == NULL) {
				const char *near = kc_suggest_command(json_string_value(name));

				say_error("help: no command \"%s\"%s%s%s", json_string_value(name),
				          near ? " (did you mean " : "", near ? near : "",
				          near ? "?)" : "");
				json_decref(args);
				return KC_EXIT_USAGE;
			}
			kc_print_help(about);
		}
		json_decref(args);
		return KC_EXIT_OK;
	}
	if ((rc = kc_connect(0)) != 0) {
		json_decref(args);
		return rc;
	}
	if (cmd->stream || cmd->cancellable) {
		rc = run_stream(cmd, args);
		json_decref(args);
		return rc;
	}
	timeout = cmd->timeout_ms != 0 ? cmd->timeout_ms : kc.timeout_ms;
	rc = ctl_client_call(kc.c, cmd->wire, args, timeout, &m, &err);
	json_decref(args);
	if (rc < 0) {
		say_error("%s: %s", cmd->name, err);
		free(err);
		kc_disconnect();
		return KC_EXIT_USAGE;
	}
	if (kc.json) {
		fwrite(m.line, 1, m.len, stdout);
		putchar('\n');
	} else if (rc == 0) {
		kc_print_result(cmd, m.value);
	} else {
		char *near = suggest_name(cmd, argc - 1, argv + 1);

		if (near != NULL)
			say_error("%s: %s (did you mean %s?)", cmd->name, m.error, near);
		else
			say_error("%s: %s", cmd->name, m.error);
		free(near);
	}
	fflush(stdout);
	ctl_msg_clear(&m);
	return rc == 0 ? KC_EXIT_OK : KC_EXIT_FAILED;
}

static int
run_line(const char *line)
{
	char **argv, *err = NULL;
	int argc, rc;

	if (kc_split(line, &argv, &argc, &err) < 0) {
		say_error("%s", err);
		free(err);
		return KC_EXIT_USAGE;
	}
	rc = run_words(argc, argv);
	kc_free_words(argv);
	return rc;
}

/* Commands from a file or a non-terminal stdin: stop at the first failure unless --keep-going. */
static int
run_script(FILE *in, const char *name)
{
	char *line = NULL, where[512];
	size_t cap = 0;
	unsigned long lineno = 0;
	int worst = KC_EXIT_OK, rc;

	while (getline(&line, &cap, in) >= 0) {
		lineno++;
		snprintf(where, sizeof(where), "%s:%lu", name, lineno);
		kc.where = where;
		rc = run_line(line);
		if (rc == KC_QUIT)
			break;
		if (rc > worst)
			worst = rc;
		if (rc != KC_EXIT_OK && !kc.keep_going)
			break;
	}
	kc.where = NULL;
	free(line);
	return worst;
}

/* ---- interactive shell ---- */

static void
comp_reset(void)
{
	size_t i;

	for (i = 0; i < comp_n; i++)
		free(comp_names[i]);
	free(comp_names);
	comp_names = NULL;
	comp_n = 0;
}

static void
comp_add(const char *s)
{
	comp_names = xreallocarray(comp_names, comp_n + 1, sizeof(*comp_names));
	comp_names[comp_n++] = xstrdup(s);
}

static char *
comp_generator(const char *text, int state)
{
	static size_t i;
	size_t len = strlen(text);

	if (state == 0)
		i = 0;
	while (i < comp_n) {
		const char *s = comp_names[i++];

		if (strncmp(s, text, len) == 0)
			return xstrdup(s);
	}
	return NULL;
}

/* Ask the daemon for names of one kind ("complete" command); silent on any failure. */
static void
comp_fetch(enum kc_comp kind, const char *prefix)
{
	json_t *args, *names, *v;
	struct ctl_msg m;
	char *err = NULL;
	size_t i;

	if (kc_comp_str(kind) == NULL || kc_connect(1) != 0)
		return;
	args = json_pack("{s:s, s:s}", "kind", kc_comp_str(kind), "prefix", prefix);
	if (ctl_client_call(kc.c, "complete", args, 2000, &m, &err) < 0) {
		free(err);
		kc_disconnect();
		json_decref(args);
		return;
	}
	json_decref(args);
	names = json_object_get(m.value, "names");
	json_array_foreach(names, i, v)
	{
		if (json_is_string(v))
			comp_add(json_string_value(v));
	}
	ctl_msg_clear(&m);
}

static const struct kc_arg *
opt_named(const struct kc_cmd *cmd, const char *w)
{
	size_t i;

	for (i = 0; i < KC_MAX_OPTS && cmd->opts[i].name != NULL; i++) {
		if (strcmp(cmd->opts[i].name, w) == 0)
			return &cmd->opts[i];
	}
	return NULL;
}

static char **
kc_complete(const char *text, int start, int end)
{
	const struct kc_cmd *cmd, *c;
	const struct kc_arg *prev;
	char *head, **argv = NULL, *err = NULL;
	int argc = 0, k, npos = 0;
	size_t i;
	enum kc_comp comp = KC_COMP_NONE;
	char **matches;

	(void)end;
	rl_attempted_completion_over = 1;
	comp_reset();
	head = xstrndup(rl_line_buffer, (size_t)start);
	if (kc_split(head, &argv, &argc, &err) < 0) {
		free(err);
		free(head);
		return NULL;
	}
	free(head);
	if (argc == 0) {
		comp = KC_COMP_COMMAND;
	} else if ((cmd = kc_find(argv[0])) != NULL) {
		prev = argc > 1 ? opt_named(cmd, argv[argc - 1]) : NULL;
		if (prev != NULL && prev->kind != KC_FLAG) {
			comp = prev->comp;
		} else if (text[0] == '-') {
			for (i = 0; i < KC_MAX_OPTS && cmd->opts[i].name != NULL; i++)
				comp_add(cmd->opts[i].name);
		} else {
			for (k = 1; k < argc; k++) {
				const struct kc_arg *o = opt_named(cmd, argv[k]);

				if (o != NULL) {
					if (o->kind != KC_FLAG)
						k++;
				} else {
					npos++;
				}
			}
			if (npos < KC_MAX_POS && cmd->pos[npos].name != NULL)
				comp = cmd->pos[npos].comp;
			else
				for (i = 0; i < KC_MAX_OPTS && cmd->opts[i].name != NULL; i++)
					comp_add(cmd->opts[i].name);
		}
	}
	kc_free_words(argv);
	if (comp == KC_COMP_COMMAND) {
		for (c = kc_commands; c->name != NULL; c++)
			comp_add(c->name);
	} else if (comp == KC_COMP_FILE) {
		rl_attempted_completion_over = 0; /* readline's own filename completion */
		return NULL;
	} else if (comp != KC_COMP_NONE) {
		comp_fetch(comp, text);
	}
	matches = rl_completion_matches(text, comp_generator);
	return matches;
}

static char *
history_path(void)
{
	const char *home = getenv("HOME");

	if (getenv("KUMOCTL_HISTORY") != NULL)
		return xstrdup(getenv("KUMOCTL_HISTORY"));
	return home != NULL && *home != '\0' ? xasprintf("%s/.kumoctl_history", home) : NULL;
}

/* Ctrl-C at the prompt: drop the line being typed and start a fresh one, like a shell. */
static int
on_readline_signal(void)
{
	if (interrupted) {
		interrupted = 0;
		rl_replace_line("", 0);
		rl_crlf();
		rl_on_new_line();
		rl_redisplay();
	}
	return 0;
}

static int
run_interactive(void)
{
	char *hist = history_path(), *prompt, *line;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, NULL);
	rl_signal_event_hook = on_readline_signal;

	rl_readline_name = "kumoctl";
	rl_attempted_completion_function = kc_complete;
	/* '>' and '-' are inside ready-queue names (source->site): not word breaks. */
	rl_completer_word_break_characters = " \t\n\"'";
	using_history();
	stifle_history(1000);
	if (hist != NULL)
		read_history(hist);
	if (kc_connect(0) != 0)
		fprintf(stderr, "kumoctl: not connected; commands will try again\n");
	prompt = xasprintf("kumoctl %s> ", kc.socket);
	while ((line = readline(prompt)) != NULL) {
		int rc;

		size_t n = strlen(line);

		/* Completion leaves a space after the last word: keep history tidy. */
		while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = '\0';
		if (*line != '\0') {
			HIST_ENTRY *last = history_length > 0
			                       ? history_get(history_base + history_length - 1)
			                       : NULL;

			if (last == NULL || strcmp(last->line, line) != 0)
				add_history(line);
			if (hist != NULL)
				write_history(hist);
		}
		rc = run_line(line);
		free(line);
		interrupted = 0;
		if (rc == KC_QUIT)
			break;
	}
	if (line == NULL)
		putchar('\n');
	free(prompt);
	free(hist);
	comp_reset();
	return KC_EXIT_OK;
}

static void
usage(FILE *out)
{
	fprintf(out,
	        "usage: kumoctl [-jk] [-s SOCKET] [-t TIMEOUT] [-c COMMAND | -f FILE | COMMAND "
	        "[ARGS...]]\n"
	        "  -s, --socket PATH   kumod's control socket (default $KUMOD_CONTROL or %s)\n"
	        "  -c, --command CMD   run one command line\n"
	        "  -f, --file FILE     run commands from FILE ('-' for stdin)\n"
	        "  -j, --json          print the daemon's JSON lines unchanged\n"
	        "  -k, --keep-going    in scripts, carry on after a failing command\n"
	        "  -t, --timeout DUR   reply deadline (default 60s)\n"
	        "      --man-commands  print the man page's COMMANDS section\n"
	        "  -V, --version       print the version\n"
	        "Without a command: a shell on a terminal, else commands from stdin.\n"
	        "Exit status: 0 ok, 1 the daemon refused or a command failed, 2 usage or "
	        "environment error.\n",
	        CTL_DEFAULT_SOCKET);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"socket", required_argument, NULL, 's'}, {"command", required_argument, NULL, 'c'},
	    {"file", required_argument, NULL, 'f'},   {"json", no_argument, NULL, 'j'},
	    {"keep-going", no_argument, NULL, 'k'},   {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
	    {"man-commands", no_argument, NULL, 'M'}, {NULL, 0, NULL, 0},
	};
	const char *command = NULL, *file = NULL;
	uint64_t secs;
	char *err = NULL;
	int ch, rc;

	kc.socket = getenv("KUMOD_CONTROL") != NULL && *getenv("KUMOD_CONTROL") != '\0'
	                ? getenv("KUMOD_CONTROL")
	                : CTL_DEFAULT_SOCKET;
	kc.timeout_ms = KC_DEFAULT_TIMEOUT;
	while ((ch = getopt_long(argc, argv, "+s:c:f:jkt:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			kc.socket = optarg;
			break;
		case 'c':
			command = optarg;
			break;
		case 'f':
			file = optarg;
			break;
		case 'j':
			kc.json = 1;
			break;
		case 'k':
			kc.keep_going = 1;
			break;
		case 't':
			if (duration_parse(optarg, &secs, &err) < 0 || secs == 0 || secs > 86400) {
				fprintf(stderr, "kumoctl: --timeout: %s\n",
				        err != NULL ? err : "between 1s and 1d");
				free(err);
				return KC_EXIT_USAGE;
			}
			kc.timeout_ms = (int)secs * 1000;
			break;
		case 'h':
			usage(stdout);
			printf("\n");
			kc_print_help(NULL);
			return KC_EXIT_OK;
		case 'V':
			printf("kumoctl %s (control protocol %d)\n", PACKAGE_VERSION, CTL_PROTOCOL);
			return KC_EXIT_OK;
		case 'M':
			kc_print_man_commands();
			return KC_EXIT_OK;
		default:
			usage(stderr);
			return KC_EXIT_USAGE;
		}
	}
	if ((command != NULL) + (file != NULL) + (optind < argc) > 1) {
		fprintf(stderr, "kumoctl: give one of -c, -f or a command\n");
		return KC_EXIT_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);

	if (command != NULL) {
		rc = run_line(command);
	} else if (optind < argc) {
		rc = run_words(argc - optind, argv + optind);
	} else if (file != NULL && strcmp(file, "-") != 0) {
		FILE *in = fopen(file, "r");

		if (in == NULL) {
			fprintf(stderr, "kumoctl: %s: %s\n", file, strerror(errno));
			return KC_EXIT_USAGE;
		}
		rc = run_script(in, file);
		fclose(in);
	} else if (file != NULL || !isatty(STDIN_FILENO)) {
		rc = run_script(stdin, "stdin");
	} else {
		/* The shell: Ctrl-C at the prompt is readline's; during a stream it stops the
		 * stream. */
		kc.interactive = 1;
		rc = run_interactive();
	}
	kc_disconnect();
	return rc == KC_QUIT ? KC_EXIT_OK : rc;
}
