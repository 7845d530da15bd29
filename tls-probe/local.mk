# tls-probe: look at a mail server's TLS, DANE and MTA-STS (issue 8).
bin_PROGRAMS += tls-probe/tls-probe
tls_probe_tls_probe_SOURCES = tls-probe/main.c
tls_probe_tls_probe_CFLAGS = $(AM_CFLAGS) $(GNUTLS_CFLAGS) $(UNBOUND_CFLAGS) $(LIBUV_CFLAGS) \
	$(JANSSON_CFLAGS) $(LIBCURL_CFLAGS)
tls_probe_tls_probe_LDADD = $(KUMO_LIBS)
