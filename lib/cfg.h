/*
 * cfg.h: loading kumo's libconfig files, with typed getters that turn
 * every problem into one line an operator can act on:
 *
 *     kumod.conf:42: shaping.default.max_message_rate: "5/fortnight": unknown period "fortnight"
 *
 * that is FILE:LINE: SETTING.PATH: PROBLEM, where the path names list and
 * array elements by index ("shaping.domains.[2].max_message_rate") and the
 * line is the setting's own (inside an @include, the included file's).
 *
 * Getters take the enclosing group and a member name and return 0 when the
 * setting is there and valid (*out set), 1 when it is absent (*out untouched:
 * the caller keeps its default; a NULL group counts as absent), or a negative
 * KUMO_E* code with *err_r set (allocated, the caller frees; err_r may be
 * NULL). A value of the wrong type is an error naming the expected type; no
 * getter converts between types. Unknown settings are errors too, through
 * cfg_check_keys(): a typo in a mail configuration must not be ignored.
 *
 * libconfig 1.5 facts that shape this module:
 * - An integer literal beyond 32 bits without an "L" suffix is silently
 *   truncated by the parser (10000000000 reads as 1410065408); write "L"
 *   for big numbers. Durations and rates are strings and are not affected.
 * - @include paths are resolved relative to the main file's directory
 *   (libconfig's include_dir); absolute @include paths therefore fail.
 * - Duplicate setting names in a group are a load (syntax) error.
 */
#ifndef KUMO_CFG_H
#define KUMO_CFG_H

#include <stddef.h>
#include <stdint.h>

#include <libconfig.h>

struct cidr_list;
struct throttle_spec;

struct cfg;

/*
 * Load a configuration file. NULL on failure with *err_r set, e.g.
 * "kumod.conf:12: syntax error" or "kumod.conf: cannot read: No such file
 * or directory". Free the result with cfg_free().
 */
struct cfg *cfg_load(const char *path, char **err_r);
/* Load from memory; name stands for the file name in messages ("<string>" if NULL). */
struct cfg *cfg_load_string(const char *text, const char *name, char **err_r);
/* Free a configuration and clear the caller's pointer; NULL is fine. */
void cfg_free(struct cfg **cp);
/* The root group. Settings (and strings from getters) live until cfg_free(). */
config_setting_t *cfg_root(const struct cfg *c);
/* The file name given to cfg_load() (or the name given to cfg_load_string()). */
const char *cfg_name(const struct cfg *c);

/*
 * The path of a setting from the root: "spool_dir", "sources.[0]",
 * "shaping.domains.[2].max_message_rate"; "" for the root. Allocated; the
 * caller frees.
 */
char *cfg_setting_path(const config_setting_t *s);

/*
 * An allocated message "FILE:LINE: PATH: TEXT" about setting s (the line and
 * path parts are left out where they do not apply, e.g. for the root), for
 * callers that check meaning beyond types ("unknown egress pool").
 */
char *cfg_errorf(const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A string; *out points into the configuration. */
int cfg_get_string(const config_setting_t *grp, const char *name, const char **out,
                      char **err_r);
/* An integer within [min, max] (KUMO_ERANGE outside). */
int cfg_get_int(const config_setting_t *grp, const char *name, int64_t min, int64_t max,
                   int64_t *out, char **err_r);
/* A boolean (true/false); *out is 0 or 1. */
int cfg_get_bool(const config_setting_t *grp, const char *name, int *out, char **err_r);
/* A duration: a non-negative integer (seconds) or a string for duration_parse(). */
int cfg_get_duration(const config_setting_t *grp, const char *name, uint64_t *secs,
                        char **err_r);
/* A rate string for throttle_parse() ("100/min"). */
int cfg_get_rate(const config_setting_t *grp, const char *name, struct throttle_spec *out,
                    char **err_r);
/*
 * An array or list of address/prefix strings (a single string is a list of
 * one). On success *out is replaced by a new list (any list it held is
 * freed): the caller frees it with cidr_list_free(). An empty array gives an
 * empty list.
 */
int cfg_get_cidr_list(const config_setting_t *grp, const char *name, struct cidr_list **out,
                         char **err_r);
/*
 * An array or list of strings. *out becomes an allocated NULL-terminated
 * array of pointers into the configuration (the caller frees the array
 * only) and *n (if not NULL) its length.
 */
int cfg_get_strings(const config_setting_t *grp, const char *name, const char ***out, size_t *n,
                       char **err_r);
/* A group ({ ... }). */
int cfg_get_group(const config_setting_t *grp, const char *name, config_setting_t **out,
                     char **err_r);
/* A list or array (( ... ) or [ ... ]); iterate with config_setting_get_elem(). */
int cfg_get_list(const config_setting_t *grp, const char *name, config_setting_t **out,
                    char **err_r);

/*
 * Check that every member of grp is named in known (NULL-terminated). 0 if
 * so; KUMO_ENOTFOUND with *err_r naming the first unknown setting at its
 * own line, with a suggestion when one known name is close:
 * kumod.conf:7: sources.[0]: unknown setting "sorce_address" (did you mean "source_address"?)
 * KUMO_EPARSE if grp is not a group. A NULL grp is fine (0).
 */
int cfg_check_keys(const config_setting_t *grp, const char *const known[], char **err_r);

#endif
