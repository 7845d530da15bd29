# daemon/: kumod, the delivery daemon.
sbin_PROGRAMS += daemon/kumod
daemon_kumod_SOURCES = \
	daemon/kumod.h \
	daemon/main.c \
	daemon/dconfig.c \
	daemon/listener.c \
	daemon/spool.c \
	daemon/queue.c \
	daemon/shaping.c \
	daemon/jlog.c \
	daemon/tlspolicy.c \
	daemon/control.h \
	daemon/control.c \
	daemon/ctlcmds.c
daemon_kumod_CFLAGS = $(AM_CFLAGS) $(GNUTLS_CFLAGS) $(UNBOUND_CFLAGS) $(LIBCONFIG_CFLAGS) \
	$(LIBUV_CFLAGS) $(JANSSON_CFLAGS)
daemon_kumod_LDADD = $(KUMO_LIBS) -lm
# The lab configuration and demo (./quickstart.sh) and the relay benchmark.
EXTRA_DIST += examples/lab.conf examples/lab-demo.sh examples/shaping.json bench/relay-vs-postfix.sh
