/*
 * throttle.h: rate strings ("10/s", "50/min", "1,000/hr", "1_000/h",
 * "10_000/d") and the Generic Cell Rate Algorithm that enforces them
 * (max_message_rate, max_connection_rate).
 *
 * Rate grammar: COUNT "/" [N] PERIOD, spaces allowed around the parts.
 * COUNT is a positive integer whose digits may be grouped by single ","
 * or "_" separators ("1,000", "10_000"; not ",1", "1,,0" or "1_"). PERIOD
 * (case-insensitive) is s sec secs second seconds, m min mins minute
 * minutes, h hr hrs hour hours, d day days, w week weeks; an optional
 * positive multiplier in front of it ("100/5min") scales the period.
 *
 * GCRA: the emission interval is T = period/limit and the tolerance is
 * T*(burst-1), so a fresh state admits `burst` requests at once and then one
 * every T. All arithmetic is exact in integer microseconds: T need not be a
 * whole number of microseconds, the fractional part is carried in the state,
 * so nothing drifts over any length of time. The clock is injected (now_us),
 * which keeps the algorithm testable and lets the caller pick the clock.
 */
#ifndef KUMO_THROTTLE_H
#define KUMO_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

struct throttle_spec {
	uint64_t limit;     /* requests per period, >= 1 */
	uint64_t period_us; /* the period in microseconds, >= 1 */
	uint64_t burst;     /* requests admitted at once from rest; 0 means limit */
};

/*
 * A throttle's state: the theoretical arrival time, tat_us + tat_frac/limit
 * microseconds. A zeroed struct is a fresh (fully rested) throttle. Only
 * throttle_check() changes it.
 */
struct throttle_state {
	uint64_t tat_us;
	uint64_t tat_frac; /* < spec->limit */
};

/* Enough room for throttle_spec_format() of any spec, terminator included. */
#define THROTTLE_FORMAT_MAX 64

/*
 * Parse a rate string into *spec (burst = limit). 0 on success;
 * KUMO_EPARSE or KUMO_ERANGE with *err_r set to an allocated message naming
 * the input and the problem, e.g. "5/fortnight": unknown period "fortnight".
 * The caller frees *err_r; err_r may be NULL. *spec is untouched on error.
 */
int throttle_parse(const char *s, struct throttle_spec *spec, char **err_r);

/*
 * Write spec in the form throttle_parse() reads: "10/s", "50/min",
 * "1000/h", "10000/d", "100/5min", then " (burst N)" if burst differs from
 * limit. Periods that are not whole seconds print as "/Nus" (display only).
 * Returns the full length like snprintf(3); out is terminated if outlen > 0.
 */
size_t throttle_spec_format(const struct throttle_spec *spec, char *out, size_t outlen);

/*
 * One GCRA decision at time now_us. Returns 1 if admitted (state updated),
 * 0 if denied (state unchanged) with *wait_us (if not NULL) set to the
 * exact delay after which the same call would be admitted: at now_us +
 * *wait_us it is, at now_us + *wait_us - 1 it is not. KUMO_EINVAL if spec
 * has a zero limit or period. A clock that goes backwards only delays
 * admission; it never admits more.
 */
int throttle_check(struct throttle_state *st, const struct throttle_spec *spec, uint64_t now_us,
                   uint64_t *wait_us);

/* Reset a state to fresh (fully rested). */
void throttle_reset(struct throttle_state *st);

#endif
