/*
 * log.c: leveled logging. Process-wide state (level, trace mask, sink) is
 * the one kind of global lib/ allows: a setting, not shared data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "kumo.h"
#include "log.h"

static const char *log_ident = "kumo";
static int log_syslog;
static enum log_level log_min = LOG_LEVEL_INFO;
static unsigned log_trace_mask;
static log_sink_cb log_sink;
static void *log_sink_arg;

static const char *const level_names[] = {"debug", "info", "notice", "warn", "error"};

static const struct {
	const char *name;
	unsigned bit;
} trace_names[] = {
	{"smtp_server", LOG_TRACE_SMTP_SERVER}, {"smtp_client", LOG_TRACE_SMTP_CLIENT},
	{"dns", LOG_TRACE_DNS},			{"tls", LOG_TRACE_TLS},
	{"queue", LOG_TRACE_QUEUE},		{"spool", LOG_TRACE_SPOOL},
	{"control", LOG_TRACE_CONTROL},		{"all", ~0u},
};

void
log_init(const char *ident, int use_syslog, enum log_level min)
{
	if (log_syslog)
		closelog();
	log_ident = ident != NULL ? ident : "kumo";
	log_syslog = use_syslog;
	log_min = min;
	if (use_syslog)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_level(enum log_level min)
{
	log_min = min;
}

enum log_level
log_get_level(void)
{
	return log_min;
}

int
log_level_parse(const char *s)
{
	size_t i;

	if (s == NULL)
		return -1;
	if (strcasecmp(s, "warning") == 0)
		return LOG_LEVEL_WARN;
	for (i = 0; i < KUMO_NELEM(level_names); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *
log_level_str(enum log_level level)
{
	if ((unsigned)level >= KUMO_NELEM(level_names))
		return "unknown";
	return level_names[level];
}

void
log_set_trace(unsigned mask)
{
	log_trace_mask = mask;
}

unsigned
log_get_trace(void)
{
	return log_trace_mask;
}

unsigned
log_trace_parse(const char *name)
{
	size_t i;

	for (i = 0; i < KUMO_NELEM(trace_names); i++)
		if (strcasecmp(name, trace_names[i].name) == 0)
			return trace_names[i].bit;
	return 0;
}

void
log_set_sink(log_sink_cb cb, void *arg)
{
	log_sink = cb;
	log_sink_arg = arg;
}

static int
syslog_priority(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_DEBUG:
		return LOG_DEBUG;
	case LOG_LEVEL_INFO:
		return LOG_INFO;
	case LOG_LEVEL_NOTICE:
		return LOG_NOTICE;
	case LOG_LEVEL_WARN:
		return LOG_WARNING;
	case LOG_LEVEL_ERROR:
		break;
	}
	return LOG_ERR;
}

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[2048];
	char stamp[32];
	struct tm tm;
	time_t now;

	if (level < log_min)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (log_sink != NULL) {
		log_sink(level, line, log_sink_arg);
		return;
	}
	if (log_syslog) {
		syslog(syslog_priority(level), "%s", line);
		return;
	}
	now = time(NULL);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	fprintf(stderr, "%s %s[%ld]: %s: %s\n", stamp, log_ident, (long)getpid(),
		log_level_str(level), line);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

#define LOG_FN(name, level)                                                                        \
	void name(const char *fmt, ...)                                                            \
	{                                                                                          \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		log_vmsg(level, fmt, ap);                                                          \
		va_end(ap);                                                                        \
	}
LOG_FN(log_debug, LOG_LEVEL_DEBUG)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_notice, LOG_LEVEL_NOTICE)
LOG_FN(log_warn, LOG_LEVEL_WARN)
LOG_FN(log_error, LOG_LEVEL_ERROR)

void
log_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
	exit(2);
}

void
log_panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LEVEL_ERROR, fmt, ap);
	va_end(ap);
	abort();
}

void
log_trace(unsigned mask, const char *fmt, ...)
{
	va_list ap;

	if ((log_trace_mask & mask) == 0)
		return;
	va_start(ap, fmt);
	/* Traces are asked for explicitly, so they bypass the level filter. */
	if (log_min > LOG_LEVEL_DEBUG) {
		enum log_level saved = log_min;
		log_min = LOG_LEVEL_DEBUG;
		log_vmsg(LOG_LEVEL_DEBUG, fmt, ap);
		log_min = saved;
	} else
		log_vmsg(LOG_LEVEL_DEBUG, fmt, ap);
	va_end(ap);
}
