/*
 * kumoctl.h: kumoctl's private header. One table of commands (commands.c)
 * drives argument parsing, validation, `help`, tab completion and the man
 * page's command section; main.c holds the shell, the modes and the
 * connection.
 */
#ifndef KUMOCTL_H
#define KUMOCTL_H

#include <stddef.h>

#include <jansson.h>

/* Exit codes, documented in kumoctl.8. */
enum {
	KC_EXIT_OK = 0,
	KC_EXIT_FAILED = 1, /* the daemon refused or the command failed */
	KC_EXIT_USAGE = 2,  /* usage or environment error (bad arguments, no daemon) */
};

enum kc_arg_kind {
	KC_STR = 1,
	KC_INT,      /* a non-negative integer */
	KC_DURATION, /* lib/duration text, sent as whole seconds */
	KC_FLAG,     /* an option without a value, sent as true */
	KC_FILE,     /* a path, sent absolute */
};

/* What tab completion offers for a value: "complete" kinds are fetched from the daemon. */
enum kc_comp {
	KC_COMP_NONE = 0,
	KC_COMP_COMMAND,
	KC_COMP_FILE,
	KC_COMP_SCHED, /* scheduled queue names */
	KC_COMP_READY, /* ready queue names (egress paths) */
	KC_COMP_SITE,
	KC_COMP_SOURCE,
	KC_COMP_DOMAIN,
};

struct kc_arg {
	const char *name; /* "--domain" for an option, "DOMAIN" for a positional */
	const char *key;  /* member of the request's args */
	enum kc_arg_kind kind;
	enum kc_comp comp;
	int required;
	const char *help;
};

#define KC_MAX_POS 3
#define KC_MAX_OPTS 8

struct kc_cmd {
	const char *name;
	const char *wire;   /* the daemon's command; NULL for a local one (help, quit) */
	const char *help;   /* one line */
	const char *detail; /* a paragraph for `help CMD` and the man page, or NULL */
	struct kc_arg pos[KC_MAX_POS];
	struct kc_arg opts[KC_MAX_OPTS];
	const char *one_of; /* "--domain,--tenant,--campaign": exactly one required */
	int stream;         /* the reply is a stream (watch, trace) */
	int cancellable;    /* a one-shot reply that may take long: Ctrl-C sends cancel (inject) */
	int timeout_ms;     /* reply deadline; 0: the default, -1: none */
};

extern const struct kc_cmd kc_commands[];

const struct kc_cmd *kc_find(const char *name);
/* The closest command or option name to s within a small edit distance, or NULL. */
const char *kc_suggest(const char *s, const char *const *names, size_t n);
const char *kc_suggest_command(const char *s);
/* Name of a completion kind for the daemon's "complete" command ("sched", "ready", ...). */
const char *kc_comp_str(enum kc_comp c);

/*
 * Split a command line into words: blanks separate, '...' and "..." quote,
 * backslash escapes, '#' at a word start begins a comment. 0 with an
 * allocated NULL-terminated *argv_r (free with kc_free_words), or -1 with
 * *err_r.
 */
int kc_split(const char *line, char ***argv_r, int *argc_r, char **err_r);
void kc_free_words(char **argv);

/*
 * Turn words after the command name into the request's args, validating
 * every value (durations, integers, required and exclusive options). 0
 * with *args_r, or -1 with *err_r (allocated) naming the bad word.
 */
int kc_build_args(const struct kc_cmd *cmd, int argc, char **argv, json_t **args_r, char **err_r);

/* `help` and `help CMD`, and the usage line of a command into an allocated string. */
void kc_print_help(const struct kc_cmd *cmd);
char *kc_usage(const struct kc_cmd *cmd);
/* The man page's COMMANDS section, in troff, from the table. */
void kc_print_man_commands(void);

/* Human output: a result, a stream item (header printed once per stream by the caller's counter).
 */
void kc_print_result(const struct kc_cmd *cmd, json_t *result);
void kc_print_item(const struct kc_cmd *cmd, json_t *item, unsigned long n);

#endif
