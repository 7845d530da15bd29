/*
 * log.h: leveled logging to stderr or syslog, for the daemon and the tools.
 * The JSON delivery-record writer is not here: it belongs to daemon/.
 *
 * log_fatal() is for start-up and command-line tools only: it exits with
 * status 2 (usage or environment error). log_panic() is for broken
 * invariants: it aborts. A daemon never exits because of what a peer sent.
 */
#ifndef KUMO_LOG_H
#define KUMO_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_DEBUG = 0,
	LOG_LEVEL_INFO,
	LOG_LEVEL_NOTICE,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

/* Trace subsystems, flipped at run time (kumoctl trace). */
enum log_trace {
	LOG_TRACE_SMTP_SERVER = 1u << 0,
	LOG_TRACE_SMTP_CLIENT = 1u << 1,
	LOG_TRACE_DNS = 1u << 2,
	LOG_TRACE_TLS = 1u << 3,
	LOG_TRACE_QUEUE = 1u << 4,
	LOG_TRACE_SPOOL = 1u << 5,
	LOG_TRACE_CONTROL = 1u << 6,
};

/* ident prefixes stderr lines and names the syslog identity. */
void log_init(const char *ident, int use_syslog, enum log_level min);
void log_set_level(enum log_level min);
enum log_level log_get_level(void);
/* Parse "debug", "info", "notice", "warn"/"warning", "error"; -1 if unknown. */
int log_level_parse(const char *s);
const char *log_level_str(enum log_level level);
void log_set_trace(unsigned mask);
unsigned log_get_trace(void);
/* A trace name ("smtp_client", "dns", "all", ...) to its bit; 0 if unknown. */
unsigned log_trace_parse(const char *name);
/*
 * Send stderr lines to a caller-supplied sink instead (tests use this);
 * NULL restores stderr.
 */
typedef void (*log_sink_cb)(enum log_level level, const char *line, void *arg);
void log_set_sink(log_sink_cb cb, void *arg);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void log_panic(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Logged at debug level, only when a bit of mask is enabled. */
void log_trace(unsigned mask, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_trace_on(mask) ((log_get_trace() & (mask)) != 0)

#endif
