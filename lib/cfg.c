/*
 * cfg.c: libconfig loading and typed getters that report FILE:LINE:
 * PATH: PROBLEM (see cfg.h). The struct cfg embeds the libconfig
 * config_t as its first member, so a setting's ->config pointer leads back
 * to our name for the file when libconfig has none (loads from memory).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libconfig.h>

#include "buf.h"
#include "cidr.h"
#include "cfg.h"
#include "duration.h"
#include "kumo.h"
#include "throttle.h"

struct cfg {
	config_t cfg; /* first: settings point at it, we cast back */
	char *name;
	char *include_dir;
};

static struct cfg *
config_alloc(const char *name)
{
	struct cfg *c = xcalloc(1, sizeof(*c));

	config_init(&c->cfg);
	c->name = xstrdup(name);
	return c;
}

void
cfg_free(struct cfg **cp)
{
	if (cp == NULL || *cp == NULL)
		return;
	config_destroy(&(*cp)->cfg);
	free((*cp)->name);
	free((*cp)->include_dir);
	free(*cp);
	*cp = NULL;
}

/* Turn a failed config_read*() into "FILE:LINE: TEXT" and free c. */
static struct cfg *
config_load_failed(struct cfg *c, char **err_r)
{
	const char *file = config_error_file(&c->cfg);
	const char *text = config_error_text(&c->cfg);

	if (err_r != NULL)
		*err_r = xasprintf("%s:%d: %s", file ? file : c->name, config_error_line(&c->cfg),
		                   text ? text : "syntax error");
	cfg_free(&c);
	return NULL;
}

struct cfg *
cfg_load(const char *path, char **err_r)
{
	struct cfg *c;
	struct stat st;
	const char *slash;
	FILE *fp;

	/* libconfig says only "file I/O error": find out why ourselves. */
	fp = fopen(path, "r");
	if (fp == NULL) {
		if (err_r != NULL)
			*err_r = xasprintf("%s: cannot read: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(fp);
		if (err_r != NULL)
			*err_r = xasprintf("%s: cannot read: %s", path, strerror(EISDIR));
		return NULL;
	}
	fclose(fp);
	c = config_alloc(path);
	/* @include paths are relative to the main file, not to our working directory. */
	slash = strrchr(path, '/');
	if (slash != NULL) {
		c->include_dir =
		    slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
		config_set_include_dir(&c->cfg, c->include_dir);
	}
	if (config_read_file(&c->cfg, path) != CONFIG_TRUE) {
		if (config_error_type(&c->cfg) == CONFIG_ERR_FILE_IO) {
			if (err_r != NULL)
				*err_r = xasprintf("%s: cannot read", path);
			cfg_free(&c);
			return NULL;
		}
		return config_load_failed(c, err_r);
	}
	return c;
}

struct cfg *
cfg_load_string(const char *text, const char *name, char **err_r)
{
	struct cfg *c = config_alloc(name ? name : "<string>");

	if (config_read_string(&c->cfg, text) != CONFIG_TRUE)
		return config_load_failed(c, err_r);
	return c;
}

config_setting_t *
cfg_root(const struct cfg *c)
{
	return config_root_setting(&c->cfg);
}

const char *
cfg_name(const struct cfg *c)
{
	return c->name;
}

static void
config_path_append(struct buf *b, const config_setting_t *s)
{
	if (s == NULL || config_setting_is_root(s))
		return;
	config_path_append(b, config_setting_parent(s));
	if (b->len > 0)
		buf_putc(b, '.');
	if (config_setting_name(s) != NULL)
		buf_puts(b, config_setting_name(s));
	else
		buf_appendf(b, "[%d]", config_setting_index(s));
}

char *
cfg_setting_path(const config_setting_t *s)
{
	struct buf b;

	buf_init(&b, 0);
	config_path_append(&b, s);
	return buf_steal(&b, NULL);
}

/* The file a setting came from: libconfig's record, else the name we were given. */
static const char *
config_setting_file(const config_setting_t *s)
{
	const char *file = config_setting_source_file(s);

	if (file == NULL && s->config != NULL)
		file = ((const struct cfg *)(const void *)s->config)->name;
	return file ? file : "<config>";
}

/* "FILE:LINE: PATH: TEXT" with the line of at and the path of owner. */
static char *
config_vmsg(const config_setting_t *at, const config_setting_t *owner, const char *fmt, va_list ap)
{
	struct buf b;
	char *path = cfg_setting_path(owner);

	buf_init(&b, 0);
	buf_puts(&b, config_setting_file(at));
	if (config_setting_source_line(at) > 0)
		buf_appendf(&b, ":%u", (unsigned)config_setting_source_line(at));
	buf_puts(&b, ": ");
	if (path[0] != '\0')
		buf_appendf(&b, "%s: ", path);
	buf_vappendf(&b, fmt, ap);
	free(path);
	return buf_steal(&b, NULL);
}

char *
cfg_errorf(const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = config_vmsg(s, s, fmt, ap);
	va_end(ap);
	return msg;
}

/* Set *err_r (if wanted) to a message about s; returns code. */
static int config_fail(char **err_r, int code, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
config_fail(char **err_r, int code, const config_setting_t *s, const char *fmt, ...)
{
	va_list ap;

	if (err_r == NULL)
		return code;
	va_start(ap, fmt);
	*err_r = config_vmsg(s, s, fmt, ap);
	va_end(ap);
	return code;
}

/* Wrap a module's message (duration, throttle, cidr) with where it came from; frees msg. */
static int
config_fail_with(char **err_r, int code, const config_setting_t *s, char *msg)
{
	code = config_fail(err_r, code, s, "%s", msg ? msg : kumo_strerror(code));
	free(msg);
	return code;
}

static const char *
config_type_name(const config_setting_t *s)
{
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	default:
		return "nothing";
	}
}

static int
config_wrong_type(char **err_r, const config_setting_t *s, const char *want)
{
	return config_fail(err_r, KUMO_EPARSE, s, "expected %s, got %s", want, config_type_name(s));
}

/* The member `name` of grp, or NULL if grp is NULL, not a group or has no such member. */
static config_setting_t *
config_member(const config_setting_t *grp, const char *name)
{
	if (grp == NULL || name == NULL || !config_setting_is_group(grp))
		return NULL;
	return config_setting_get_member(grp, name);
}

static int
config_is_int(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_INT ||
	       config_setting_type(s) == CONFIG_TYPE_INT64;
}

int
cfg_get_string(const config_setting_t *grp, const char *name, const char **out, char **err_r)
{
	config_setting_t *s = config_member(grp, name);

	if (s == NULL)
		return 1;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return config_wrong_type(err_r, s, "a string");
	*out = config_setting_get_string(s);
	return 0;
}

int
cfg_get_int(const config_setting_t *grp, const char *name, int64_t min, int64_t max,
               int64_t *out, char **err_r)
{
	config_setting_t *s = config_member(grp, name);
	long long v;

	if (s == NULL)
		return 1;
	if (!config_is_int(s))
		return config_wrong_type(err_r, s, "an integer");
	v = config_setting_get_int64(s);
	if (v < min)
		return config_fail(err_r, KUMO_ERANGE, s, "%lld is too small (the minimum is %lld)",
		                   v, (long long)min);
	if (v > max)
		return config_fail(err_r, KUMO_ERANGE, s, "%lld is too large (the maximum is %lld)",
		                   v, (long long)max);
	*out = v;
	return 0;
}

int
cfg_get_bool(const config_setting_t *grp, const char *name, int *out, char **err_r)
{
	config_setting_t *s = config_member(grp, name);

	if (s == NULL)
		return 1;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return config_wrong_type(err_r, s, "a boolean (true or false)");
	*out = config_setting_get_bool(s) ? 1 : 0;
	return 0;
}

int
cfg_get_duration(const config_setting_t *grp, const char *name, uint64_t *secs, char **err_r)
{
	config_setting_t *s = config_member(grp, name);
	char *msg = NULL;
	uint64_t v;
	int rc;

	if (s == NULL)
		return 1;
	if (config_is_int(s)) {
		long long n = config_setting_get_int64(s);

		if (n < 0)
			return config_fail(err_r, KUMO_ERANGE, s,
			                   "%lld: negative durations are not allowed", n);
		*secs = (uint64_t)n;
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return config_wrong_type(err_r, s,
		                         "a duration (seconds, or a string like \"5min\")");
	rc = duration_parse(config_setting_get_string(s), &v, err_r ? &msg : NULL);
	if (rc != 0)
		return config_fail_with(err_r, rc, s, msg);
	*secs = v;
	return 0;
}

int
cfg_get_rate(const config_setting_t *grp, const char *name, struct throttle_spec *out,
                char **err_r)
{
	config_setting_t *s = config_member(grp, name);
	struct throttle_spec spec;
	char *msg = NULL;
	int rc;

	if (s == NULL)
		return 1;
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return config_wrong_type(err_r, s, "a rate string like \"100/min\"");
	rc = throttle_parse(config_setting_get_string(s), &spec, err_r ? &msg : NULL);
	if (rc != 0)
		return config_fail_with(err_r, rc, s, msg);
	*out = spec;
	return 0;
}

int
cfg_get_cidr_list(const config_setting_t *grp, const char *name, struct cidr_list **out,
                     char **err_r)
{
	config_setting_t *s = config_member(grp, name);
	struct cidr_list *l;
	char *msg = NULL;
	int i, n, rc;

	if (s == NULL)
		return 1;
	l = cidr_list_new();
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		rc = cidr_list_add(l, config_setting_get_string(s), err_r ? &msg : NULL);
		if (rc != 0)
			goto fail_at;
	} else if (config_setting_is_array(s) || config_setting_is_list(s)) {
		n = config_setting_length(s);
		for (i = 0; i < n; i++) {
			config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

			if (config_setting_type(e) != CONFIG_TYPE_STRING) {
				rc = config_wrong_type(err_r, e, "an address or network string");
				goto fail;
			}
			rc = cidr_list_add(l, config_setting_get_string(e), err_r ? &msg : NULL);
			if (rc != 0) {
				s = e;
				goto fail_at;
			}
		}
	} else {
		rc = config_wrong_type(err_r, s, "an array of address or network strings");
		goto fail;
	}
	cidr_list_free(out);
	*out = l;
	return 0;
fail_at:
	rc = config_fail_with(err_r, rc, s, msg);
fail:
	cidr_list_free(&l);
	return rc;
}

int
cfg_get_strings(const config_setting_t *grp, const char *name, const char ***out, size_t *np,
                   char **err_r)
{
	config_setting_t *s = config_member(grp, name);
	const char **v;
	int i, n;

	if (s == NULL)
		return 1;
	if (!config_setting_is_array(s) && !config_setting_is_list(s))
		return config_wrong_type(err_r, s, "an array of strings");
	n = config_setting_length(s);
	for (i = 0; i < n; i++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return config_wrong_type(err_r, e, "a string");
	}
	v = xcalloc((size_t)n + 1, sizeof(*v));
	for (i = 0; i < n; i++)
		v[i] = config_setting_get_string(config_setting_get_elem(s, (unsigned)i));
	*out = v;
	if (np != NULL)
		*np = (size_t)n;
	return 0;
}

int
cfg_get_group(const config_setting_t *grp, const char *name, config_setting_t **out,
                 char **err_r)
{
	config_setting_t *s = config_member(grp, name);

	if (s == NULL)
		return 1;
	if (!config_setting_is_group(s))
		return config_wrong_type(err_r, s, "a group");
	*out = s;
	return 0;
}

int
cfg_get_list(const config_setting_t *grp, const char *name, config_setting_t **out, char **err_r)
{
	config_setting_t *s = config_member(grp, name);

	if (s == NULL)
		return 1;
	if (!config_setting_is_list(s) && !config_setting_is_array(s))
		return config_wrong_type(err_r, s, "a list");
	*out = s;
	return 0;
}

/* Levenshtein distance, or a big number for names too long to bother with. */
static size_t
config_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t row[65];

	if (la > 64 || lb > 64)
		return SIZE_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);

			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* "FILE:LINE: PATH: TEXT" with the line of at and the path of owner. */
static char *config_msg_at(const config_setting_t *at, const config_setting_t *owner,
                           const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static char *
config_msg_at(const config_setting_t *at, const config_setting_t *owner, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = config_vmsg(at, owner, fmt, ap);
	va_end(ap);
	return msg;
}

/* A message about an unknown member m of grp, at m's line, with the closest known name. */
static char *
config_unknown_msg(const config_setting_t *grp, const config_setting_t *m,
                   const char *const known[])
{
	const char *name = config_setting_name(m), *best = NULL;
	size_t d, bestd = SIZE_MAX, limit = strlen(name) >= 6 ? 2 : 1, i;

	for (i = 0; known[i] != NULL; i++) {
		d = config_distance(name, known[i]);
		if (d < bestd) {
			bestd = d;
			best = known[i];
		}
	}
	if (best != NULL && bestd <= limit)
		return config_msg_at(m, grp, "unknown setting \"%s\" (did you mean \"%s\"?)", name,
		                     best);
	return config_msg_at(m, grp, "unknown setting \"%s\"", name);
}

int
cfg_check_keys(const config_setting_t *grp, const char *const known[], char **err_r)
{
	int i, n;
	size_t k;

	if (grp == NULL)
		return 0;
	if (!config_setting_is_group(grp))
		return config_wrong_type(err_r, grp, "a group");
	n = config_setting_length(grp);
	for (i = 0; i < n; i++) {
		config_setting_t *m = config_setting_get_elem(grp, (unsigned)i);
		const char *name = config_setting_name(m);

		for (k = 0; known[k] != NULL; k++)
			if (strcmp(known[k], name) == 0)
				break;
		if (known[k] != NULL)
			continue;
		if (err_r != NULL)
			*err_r = config_unknown_msg(grp, m, known);
		return KUMO_ENOTFOUND;
	}
	return 0;
}
