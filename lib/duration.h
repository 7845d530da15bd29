/*
 * duration.h: operator-written durations ("60", "60s", "2min", "5 mins",
 * "1h 30m", "1h30m", "3 days", "2 weeks") to whole seconds, and back to a
 * compact form ("1h30m") for tools. Every timeout, ttl and retry interval in
 * the configuration goes through here.
 *
 * Grammar: one or more terms "NUMBER [space] UNIT", optionally separated by
 * spaces; a bare NUMBER (no unit) means seconds and must stand alone. Units
 * (case-insensitive): s sec secs second seconds, m min mins minute minutes,
 * h hr hrs hour hours, d day days, w week weeks. Terms add up ("1h 1h" is
 * two hours). Sub-second units (ms, us, ns) are refused with a clear error:
 * nothing in kumo times finer than a second from configuration.
 */
#ifndef KUMO_DURATION_H
#define KUMO_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* The largest duration accepted: it fits a signed 64-bit time value. */
#define DURATION_MAX ((uint64_t)INT64_MAX)

/* Enough room for duration_format() of any value, terminator included. */
#define DURATION_FORMAT_MAX 32

/*
 * Parse s into *secs. 0 on success; KUMO_EPARSE (bad syntax or unit) or
 * KUMO_ERANGE (above DURATION_MAX) with *err_r set to an allocated message
 * naming the input and the bad token, e.g.
 * "5 fortnights": unknown unit "fortnights". The caller frees *err_r.
 * err_r may be NULL. *secs is untouched on error.
 */
int duration_parse(const char *s, uint64_t *secs, char **err_r);

/*
 * Write secs in the compact form duration_parse() accepts: "0s", "45s",
 * "1h30m", "1w2d3h4m5s". Returns the length of the full text like
 * snprintf(3); out is always terminated when outlen > 0.
 */
size_t duration_format(uint64_t secs, char *out, size_t outlen);

#endif
