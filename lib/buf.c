/*
 * buf.c: the capped growable byte buffer (see buf.h). Growth doubles, so
 * appending n bytes one at a time costs O(n); the cap is checked before any
 * allocation so a hostile peer cannot make us allocate past it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kumo.h"

#define BUF_UNCAPPED (SIZE_MAX / 2)
#define BUF_MIN_ALLOC 64

static size_t
buf_cap(const struct buf *b)
{
	return b->max ? b->max : BUF_UNCAPPED;
}

void
buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->max = max;
}

void
buf_release(struct buf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	buf_init(b, b->max);
}

struct buf *
buf_new(size_t max)
{
	struct buf *b = xmalloc(sizeof(*b));

	buf_init(b, max);
	return b;
}

void
buf_free(struct buf **bp)
{
	if (bp == NULL || *bp == NULL)
		return;
	buf_release(*bp);
	free(*bp);
	*bp = NULL;
}

/* Ensure room for n more bytes plus the terminator; KUMO_ENOSPACE past the cap. */
static int
buf_grow(struct buf *b, size_t n)
{
	size_t need, nalloc;

	if (n > buf_cap(b) - b->len)
		return KUMO_ENOSPACE;
	need = b->len + n + 1;
	if (need <= b->alloc)
		return 0;
	nalloc = b->alloc ? b->alloc : BUF_MIN_ALLOC;
	while (nalloc < need)
		nalloc = nalloc > SIZE_MAX / 2 ? need : nalloc * 2;
	b->data = xrealloc(b->data, nalloc);
	b->alloc = nalloc;
	return 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	int r;

	if ((r = buf_grow(b, n)) != 0)
		return r;
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_putc(struct buf *b, int c)
{
	unsigned char ch = (unsigned char)c;

	return buf_append(b, &ch, 1);
}

int
buf_vappendf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n, r;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return KUMO_EINVAL;
	if ((r = buf_grow(b, (size_t)n)) != 0)
		return r;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int
buf_appendf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vappendf(b, fmt, ap);
	va_end(ap);
	return r;
}

char *
buf_reserve(struct buf *b, size_t n)
{
	if (buf_grow(b, n) != 0)
		return NULL;
	return b->data + b->len;
}

void
buf_commit(struct buf *b, size_t n)
{
	/* Committing more than was reserved is a caller bug, not peer input. */
	if (b->len + n + 1 > b->alloc)
		abort();
	b->len += n;
	b->data[b->len] = '\0';
}

void
buf_drain(struct buf *b, size_t n)
{
	if (n >= b->len) {
		buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

int
buf_set_max(struct buf *b, size_t max)
{
	if (max != 0 && b->len > max)
		return KUMO_ENOSPACE;
	b->max = max;
	return 0;
}

char *
buf_steal(struct buf *b, size_t *lenp)
{
	char *p = b->data;

	if (p == NULL)
		p = xstrdup("");
	if (lenp != NULL)
		*lenp = b->len;
	buf_init(b, b->max);
	return p;
}
