/*
 * kumo.h: what every module of libkumo shares: the error codes with their
 * one strerror table, and the allocation wrappers that abort on exhaustion.
 * Functions that can fail return 0 or a negative code: a KUMO_E* value below,
 * or a libuv code (UV_E*, also negative) passed through unchanged.
 */
#ifndef KUMO_H
#define KUMO_H

#include <stddef.h>

/* Our codes live below -4000 so they never collide with libuv's (-1..-4095 are errno-ish). */
enum kumo_err {
	KUMO_OK = 0,
	KUMO_ENOSPACE = -5001,	/* a size cap would be crossed */
	KUMO_EPARSE = -5002,	/* malformed input */
	KUMO_ETOOLONG = -5003,	/* a line or field is longer than allowed */
	KUMO_ERANGE = -5004,	/* a value is out of range */
	KUMO_EAGAIN = -5005,	/* not enough input yet: call again with more */
	KUMO_ENOTFOUND = -5006, /* no such entry */
	KUMO_EINVAL = -5007,	/* invalid argument */
	KUMO_EIO = -5008,	/* an I/O error (see errno where it applies) */
	KUMO_ETLS = -5009,	/* a TLS failure */
	KUMO_ETIMEDOUT = -5010, /* a deadline passed */
	KUMO_EPROTO = -5011,	/* the peer broke the protocol */
};

/* Text for a KUMO_E* code, a libuv code or a negative errno; never NULL. */
const char *kumo_strerror(int code);

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
/* Like reallocarray(3): aborts if nmemb * size overflows. */
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* A formatted, allocated string; the caller frees it. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The first n bytes of s in double quotes, non-printables, '"' and '\\' as
 * \xNN, so operator input shows exactly in an error. The caller frees.
 */
char *kumo_quote(const char *s, size_t n);
/*
 * Set *err_r (when err_r is not NULL) to `"INPUT": what "TOKEN"` (the token
 * part only when tok is not NULL) and return code: the one shape of every
 * parse error of operator input (durations, rates, CIDR entries).
 */
int kumo_input_error(char **err_r, int code, const char *input, const char *what, const char *tok,
		     size_t toklen);

#define KUMO_NELEM(a) (sizeof(a) / sizeof((a)[0]))

#endif
