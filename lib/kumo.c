/*
 * kumo.c: the shared error table and the abort-on-exhaustion allocators.
 * Running out of memory is not something a mail daemon can recover from in
 * the middle of a protocol step, so we stop loudly instead of limping.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "buf.h"
#include "kumo.h"

static const struct {
	int code;
	const char *text;
} kumo_errors[] = {
	{KUMO_OK, "success"},
	{KUMO_ENOSPACE, "size limit exceeded"},
	{KUMO_EPARSE, "malformed input"},
	{KUMO_ETOOLONG, "line too long"},
	{KUMO_ERANGE, "value out of range"},
	{KUMO_EAGAIN, "more input needed"},
	{KUMO_ENOTFOUND, "not found"},
	{KUMO_EINVAL, "invalid argument"},
	{KUMO_EIO, "input/output error"},
	{KUMO_ETLS, "TLS failure"},
	{KUMO_ETIMEDOUT, "timed out"},
	{KUMO_EPROTO, "protocol error"},
};

const char *
kumo_strerror(int code)
{
	size_t i;

	for (i = 0; i < KUMO_NELEM(kumo_errors); i++)
		if (kumo_errors[i].code == code)
			return kumo_errors[i].text;
	/* libuv knows its own codes and negative errno values. */
	if (code < 0 && code > -4096)
		return uv_strerror(code);
	return "unknown error";
}

static void
oom(size_t n)
{
	fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		oom(n);
	return p;
}

void *
xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (p == NULL)
		oom(nmemb * size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		oom(n);
	return q;
}

void *
xreallocarray(void *p, size_t nmemb, size_t size)
{
	if (size != 0 && nmemb > SIZE_MAX / size) {
		fprintf(stderr, "fatal: allocation of %zu x %zu bytes overflows\n", nmemb, size);
		abort();
	}
	return xrealloc(p, nmemb * size);
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		oom(0);
	return s;
}

char *
kumo_quote(const char *s, size_t n)
{
	struct buf b;
	size_t i;

	buf_init(&b, 0);
	buf_putc(&b, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			buf_putc(&b, c);
		else
			buf_appendf(&b, "\\x%02x", c);
	}
	buf_putc(&b, '"');
	return buf_steal(&b, NULL);
}

int
kumo_input_error(char **err_r, int code, const char *input, const char *what, const char *tok,
		 size_t toklen)
{
	char *qin, *qtok = NULL;

	if (err_r == NULL)
		return code;
	qin = kumo_quote(input, strlen(input));
	if (tok != NULL) {
		qtok = kumo_quote(tok, toklen);
		*err_r = xasprintf("%s: %s %s", qin, what, qtok);
	} else {
		*err_r = xasprintf("%s: %s", qin, what);
	}
	free(qin);
	free(qtok);
	return code;
}
