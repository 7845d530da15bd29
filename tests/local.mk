# tests/: CUnit suites (one per lib module), integration scripts, fuzz harnesses.

# --- unit suites: tests/unit/test_<module>.c, each its own program ---
unit_tests += \
	tests/unit/test_egress \
	tests/unit/test_dane \
	tests/unit/test_buf \
	tests/unit/test_log \
	tests/unit/test_duration \
	tests/unit/test_throttle \
	tests/unit/test_cidr \
	tests/unit/test_smtp_proto \
	tests/unit/test_conn \
	tests/unit/test_tls \
	tests/unit/test_smtp_client \
	tests/unit/test_dns \
	tests/unit/test_cfg \
	tests/unit/test_mtasts
check_PROGRAMS += $(unit_tests)
TESTS += $(unit_tests)

UNIT_CFLAGS = $(AM_CFLAGS) $(CUNIT_CFLAGS) $(LIBCONFIG_CFLAGS) $(LIBUV_CFLAGS)
UNIT_LDADD = tests/unit/libunit.a $(KUMO_LIBS) $(CUNIT_LIBS)
check_LIBRARIES = tests/unit/libunit.a
tests_unit_libunit_a_SOURCES = tests/unit/unit.c tests/unit/unit.h tests/unit/unit_loop.h
tests_unit_libunit_a_CFLAGS = $(UNIT_CFLAGS)

tests_unit_test_buf_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_buf_LDADD = $(UNIT_LDADD)
tests_unit_test_log_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_log_LDADD = $(UNIT_LDADD)
tests_unit_test_duration_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_duration_LDADD = $(UNIT_LDADD)
tests_unit_test_throttle_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_throttle_LDADD = $(UNIT_LDADD)
tests_unit_test_cidr_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_cidr_LDADD = $(UNIT_LDADD)
tests_unit_test_smtp_proto_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_smtp_proto_LDADD = $(UNIT_LDADD)
tests_unit_test_conn_CFLAGS = $(UNIT_CFLAGS) $(GNUTLS_CFLAGS)
tests_unit_test_conn_LDADD = $(UNIT_LDADD)
tests_unit_test_tls_CFLAGS = $(UNIT_CFLAGS) $(GNUTLS_CFLAGS)
tests_unit_test_tls_LDADD = $(UNIT_LDADD)
tests_unit_test_smtp_client_CFLAGS = $(UNIT_CFLAGS) $(GNUTLS_CFLAGS)
tests_unit_test_smtp_client_LDADD = $(UNIT_LDADD)
tests_unit_test_egress_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_egress_LDADD = $(UNIT_LDADD)
tests_unit_test_cfg_CFLAGS = $(UNIT_CFLAGS)
tests_unit_test_cfg_LDADD = $(UNIT_LDADD)
tests_unit_test_mtasts_CFLAGS = $(UNIT_CFLAGS) $(LIBCURL_CFLAGS) $(LIBUV_CFLAGS) -DKUMO_TOP_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_mtasts_LDADD = $(UNIT_LDADD)
EXTRA_DIST += tests/lab/mtasts-server.py
tests_unit_test_dns_CFLAGS = $(UNIT_CFLAGS) $(UNBOUND_CFLAGS)
tests_unit_test_dns_LDADD = $(UNIT_LDADD)
tests_unit_test_dane_CFLAGS = $(UNIT_CFLAGS) $(GNUTLS_CFLAGS)
tests_unit_test_dane_LDADD = $(UNIT_LDADD)

# --- fuzz harnesses: `make fuzz` builds them with clang + libFuzzer ---
FUZZ_SRCS = lib/kumo.c lib/buf.c lib/smtp_proto.c
FUZZ_FLAGS = -include $(top_builddir)/config.h -g -O1 -fsanitize=fuzzer,address,undefined -I$(top_srcdir)/lib $(LIBUV_CFLAGS)
fuzz_targets = tests/fuzz/fuzz_reply tests/fuzz/fuzz_command tests/fuzz/fuzz_data
EXTRA_DIST += tests/fuzz/fuzz_reply.c tests/fuzz/fuzz_command.c tests/fuzz/fuzz_data.c tests/fuzz/README.md

fuzz: $(fuzz_targets)
tests/fuzz/fuzz_%: $(top_srcdir)/tests/fuzz/fuzz_%.c $(FUZZ_SRCS:%=$(top_srcdir)/%)
	@test -n "$(FUZZ_CC)" || { echo "make fuzz needs clang (apt-get install clang libclang-rt-14-dev)"; exit 2; }
	@mkdir -p tests/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_SRCS:%=$(top_srcdir)/%) $(LIBUV_LIBS)
CLEANFILES += $(fuzz_targets)
.PHONY: fuzz

# --- integration scripts: tests/integration/*.sh, real processes on 127.0.0.1 ---
TEST_EXTENSIONS = .sh
SH_LOG_COMPILER = bash
AM_TESTS_ENVIRONMENT = top_srcdir='$(abs_top_srcdir)' top_builddir='$(abs_top_builddir)'; \
	export top_srcdir top_builddir;
EXTRA_DIST += tests/integration/lib.sh
TESTS += tests/integration/dns-dnssec.sh
EXTRA_DIST += tests/integration/dns-dnssec.sh

# --- smtp-sink: swaks, smtp-source, gnutls-cli, openssl against the sink.
sink_integration = tests/integration/sink-basic.sh tests/integration/sink-faults.sh \
	tests/integration/sink-tls.sh tests/integration/sink-load.sh
TESTS += $(sink_integration)
EXTRA_DIST += $(sink_integration) tests/integration/sink-common.sh

# --- kumod integration scripts (real smtp-sink and kumod on 127.0.0.1) ---
kumod_integration = \
	tests/integration/kumod-config.sh \
	tests/integration/kumod-reception.sh \
	tests/integration/kumod-relay.sh \
	tests/integration/kumod-retry.sh \
	tests/integration/kumod-crash.sh \
	tests/integration/kumod-signals.sh \
	tests/integration/kumod-shaping.sh \
	tests/integration/kumod-shaping-seed.sh \
	tests/integration/kumod-tlspolicy.sh \
	tests/integration/kumod-mtasts-refresh.sh \
	tests/integration/kumod-control.sh \
	tests/integration/kumod-egress.sh \
	tests/integration/kumod-egress-tls.sh \
	tests/integration/kumod-egress-timeouts.sh
TESTS += $(kumod_integration)
EXTRA_DIST += $(kumod_integration) tests/integration/kumod-common.sh tests/integration/kumod-inject.py

# --- daemon/spool.c: durable storage, per-message ordering, in-place retry fields ---
unit_tests += tests/unit/test_spool
tests_unit_test_spool_SOURCES = tests/unit/test_spool.c daemon/spool.c daemon/kumod.h
tests_unit_test_spool_CFLAGS = $(UNIT_CFLAGS) $(GNUTLS_CFLAGS) $(UNBOUND_CFLAGS) -I$(top_srcdir)/daemon
tests_unit_test_spool_LDADD = $(UNIT_LDADD)

# --- daemon/tlspolicy.c: enable_mta_sts / enable_dane decisions and their configuration ---
unit_tests += tests/unit/test_tlspolicy
tests_unit_test_tlspolicy_SOURCES = tests/unit/test_tlspolicy.c daemon/tlspolicy.c daemon/kumod.h
tests_unit_test_tlspolicy_CFLAGS = $(UNIT_CFLAGS) $(GNUTLS_CFLAGS) $(UNBOUND_CFLAGS) -I$(top_srcdir)/daemon
tests_unit_test_tlspolicy_LDADD = $(UNIT_LDADD)

# --- control protocol (lib/ctl.c) and the control server (daemon/control.c) ---
unit_tests += tests/unit/test_ctl
tests_unit_test_ctl_SOURCES = tests/unit/test_ctl.c daemon/control.c daemon/control.h
tests_unit_test_ctl_CFLAGS = $(UNIT_CFLAGS) $(JANSSON_CFLAGS)
tests_unit_test_ctl_LDADD = $(UNIT_LDADD) -lpthread
# A stand-in control server (daemon/control.c with canned answers) for kumoctl's scripts.
check_PROGRAMS += tests/lab/ctl-echo
tests_lab_ctl_echo_SOURCES = tests/lab/ctl-echo.c daemon/control.c daemon/control.h
tests_lab_ctl_echo_CFLAGS = $(AM_CFLAGS) $(LIBUV_CFLAGS) $(JANSSON_CFLAGS)
tests_lab_ctl_echo_LDADD = $(KUMO_LIBS)

# --- tls-probe integration scripts (smtp-sink, nsd, python servers on 127.0.0.1) ---
tls_probe_integration = \
	tests/integration/tls-probe-basic.sh \
	tests/integration/tls-probe-dane.sh \
	tests/integration/tls-probe-mtasts.sh
TESTS += $(tls_probe_integration)
EXTRA_DIST += $(tls_probe_integration) tests/lab/mkzone.sh tests/lab/tls-smtp-server.py

# --- kumoctl and kumotop against the stand-in control server (and tmux), and
# against a real kumod delivering to smtp-sink (the *-live scripts) ---
kumoctl_integration = tests/integration/kumoctl-basic.sh tests/integration/kumoctl-shell.sh \
	tests/integration/kumoctl-live.sh
TESTS += $(kumoctl_integration)
EXTRA_DIST += $(kumoctl_integration)
kumotop_integration = tests/integration/kumotop-screen.sh tests/integration/kumotop-robust.sh \
	tests/integration/kumotop-live.sh
TESTS += $(kumotop_integration)
EXTRA_DIST += $(kumotop_integration) bench/kumotop-load.sh tests/integration/tmux.sh

# The control protocol's harness links jansson and lib/ctl.c besides FUZZ_SRCS.
fuzz: tests/fuzz/fuzz_ctl
EXTRA_DIST += tests/fuzz/fuzz_ctl.c
CLEANFILES += tests/fuzz/fuzz_ctl
tests/fuzz/fuzz_ctl: $(top_srcdir)/tests/fuzz/fuzz_ctl.c $(top_srcdir)/lib/ctl.c $(FUZZ_SRCS:%=$(top_srcdir)/%)
	@test -n "$(FUZZ_CC)" || { echo "make fuzz needs clang (apt-get install clang libclang-rt-14-dev)"; exit 2; }
	@mkdir -p tests/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) $(JANSSON_CFLAGS) -o $@ $< $(top_srcdir)/lib/ctl.c $(FUZZ_SRCS:%=$(top_srcdir)/%) $(JANSSON_LIBS) $(LIBUV_LIBS)

# --- lib/proxy.c: PROXY protocol headers and the SOCKS5 client (a lab SOCKS5 server, smtp-sink) ---
unit_tests += tests/unit/test_proxy
tests_unit_test_proxy_CFLAGS = $(UNIT_CFLAGS) -DKUMO_TOP_SRCDIR='"$(abs_top_srcdir)"' \
	-DKUMO_TOP_BUILDDIR='"$(abs_top_builddir)"'
tests_unit_test_proxy_LDADD = $(UNIT_LDADD)
EXTRA_DIST += tests/lab/socks5-server.py tests/fuzz/fuzz_proxy.c
fuzz: tests/fuzz/fuzz_proxy
CLEANFILES += tests/fuzz/fuzz_proxy
tests/fuzz/fuzz_proxy: $(top_srcdir)/tests/fuzz/fuzz_proxy.c $(top_srcdir)/lib/proxy.c $(FUZZ_SRCS:%=$(top_srcdir)/%)
	@test -n "$(FUZZ_CC)" || { echo "make fuzz needs clang (apt-get install clang libclang-rt-14-dev)"; exit 2; }
	@mkdir -p tests/fuzz
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(top_srcdir)/lib/proxy.c $(FUZZ_SRCS:%=$(top_srcdir)/%) $(LIBUV_LIBS)
