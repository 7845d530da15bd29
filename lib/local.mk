# lib/: libkumo.a, everything two programs share.
noinst_LIBRARIES += lib/libkumo.a
lib_libkumo_a_CFLAGS = $(AM_CFLAGS) $(GNUTLS_CFLAGS) $(UNBOUND_CFLAGS) $(LIBCONFIG_CFLAGS) \
	$(LIBUV_CFLAGS) $(JANSSON_CFLAGS) $(LIBCURL_CFLAGS)
lib_libkumo_a_SOURCES = \
	lib/kumo.c lib/kumo.h \
	lib/buf.c lib/buf.h \
	lib/log.c lib/log.h \
	lib/duration.c lib/duration.h \
	lib/throttle.c lib/throttle.h \
	lib/cidr.c lib/cidr.h \
	lib/smtp_proto.c lib/smtp_proto.h \
	lib/conn.c lib/conn.h \
	lib/tls.c lib/tls.h \
	lib/smtp_client.c lib/smtp_client.h \
	lib/dns.c lib/dns.h \
	lib/cfg.c lib/cfg.h \
	lib/egress.c lib/egress.h \
	lib/mtasts.c lib/mtasts.h \
	lib/ctl.c lib/ctl.h \
	lib/dane.c lib/dane.h \
	lib/proxy.c lib/proxy.h

# What a program linking libkumo.a needs.
KUMO_LIBS = lib/libkumo.a $(GNUTLS_DANE_LIBS) $(GNUTLS_LIBS) $(UNBOUND_LIBS) $(LIBCONFIG_LIBS) \
	$(LIBUV_LIBS) $(JANSSON_LIBS) $(LIBCURL_LIBS)
