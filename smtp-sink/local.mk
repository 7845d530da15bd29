# smtp-sink: the lab SMTP server (issue 3).
bin_PROGRAMS += smtp-sink/smtp-sink
smtp_sink_smtp_sink_SOURCES = \
	smtp-sink/sink.h \
	smtp-sink/main.c \
	smtp-sink/verbs.c \
	smtp-sink/session.c \
	smtp-sink/tls.c \
	smtp-sink/auth.c \
	smtp-sink/proxy.c \
	smtp-sink/stats.c
smtp_sink_smtp_sink_CFLAGS = $(AM_CFLAGS) $(GNUTLS_CFLAGS) $(LIBUV_CFLAGS)
smtp_sink_smtp_sink_LDADD = $(KUMO_LIBS)
