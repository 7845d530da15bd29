/*
 * buf.h: a growable byte buffer with a size cap. Every protocol reader and
 * formatter in kumo writes through one, so anything a peer can grow is
 * bounded: crossing the cap returns KUMO_ENOSPACE and the buffer is left
 * unchanged, which the caller turns into a protocol error (552, 500 line too
 * long), never a crash.
 *
 * The bytes are data[0..len); data[len] is always '\0' so text can be used
 * as a C string (the terminator is not counted and not part of the cap).
 */
#ifndef KUMO_BUF_H
#define KUMO_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;   /* bytes in use */
	size_t alloc; /* bytes allocated, terminator included */
	size_t max;   /* cap on len; 0 means SIZE_MAX / 2 */
};

/* Allocate an empty buffer capped at max bytes (0: effectively uncapped). */
struct buf *buf_new(size_t max);
/* Free a buffer from buf_new() and clear the caller's pointer; NULL is fine. */
void buf_free(struct buf **bp);
/* Initialise or release a buffer embedded in another struct. */
void buf_init(struct buf *b, size_t max);
void buf_release(struct buf *b);

/* Append n bytes. 0, or KUMO_ENOSPACE (nothing appended) past the cap. */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, int c);
/* Append formatted text; on KUMO_ENOSPACE nothing is appended. */
int buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vappendf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/*
 * Make room for n more bytes and return where they go (or NULL past the
 * cap). Write at most n bytes there, then call buf_commit() with the count.
 */
char *buf_reserve(struct buf *b, size_t n);
void buf_commit(struct buf *b, size_t n);

/* Remove the first n bytes (all of them if n >= len). */
void buf_drain(struct buf *b, size_t n);
/* Empty the buffer, keeping its allocation. */
void buf_reset(struct buf *b);
/* Change the cap; fails with KUMO_ENOSPACE if len is already above it. */
int buf_set_max(struct buf *b, size_t max);
/* Hand the bytes to the caller (NUL-terminated, caller frees) and empty b. */
char *buf_steal(struct buf *b, size_t *lenp);

#endif
