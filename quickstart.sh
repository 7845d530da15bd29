#!/usr/bin/env bash
# quickstart.sh: set up, build and demo (no argument), or set up, build and run
# every test (`check`). Debian 12. Idempotent: a second run skips what is done.
#
#   ./quickstart.sh          install missing packages, build, run the lab demo
#   ./quickstart.sh check    install missing packages, build, make check, then
#                            every suite again in a sanitizer build (_build-san/)
#   ./quickstart.sh build    install missing packages and build only
set -euo pipefail
cd "$(dirname "$0")"
top=$PWD
mode=${1:-demo}
case $mode in
demo | check | build) ;;
-h | --help)
	sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
*)
	echo "quickstart.sh: unknown mode '$mode' (want: check, build or nothing)" >&2
	exit 2
	;;
esac

# Build dependencies, then the real peers the tests and the demo use.
build_pkgs="build-essential autoconf automake libtool pkg-config libgnutls28-dev
 gnutls-bin libunbound-dev libevent-dev libconfig-dev libcunit1-dev libncurses-dev
 libreadline-dev libuv1-dev libjansson-dev libcurl4-gnutls-dev clang libclang-rt-14-dev"
test_pkgs="nsd ldnsutils openssl swaks libnet-ssleay-perl libio-socket-ssl-perl tmux python3 jq
 postfix procps strace util-linux dante-server"

say() { printf '==> %s\n' "$*"; }

install_missing() {
	local missing=() p
	for p in $build_pkgs $test_pkgs; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		say "packages: all present"
		return
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "quickstart.sh: missing packages; run as root, or first:" >&2
		echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}" >&2
		exit 2
	fi
	say "installing: ${missing[*]}"
	# Postfix is only wanted for its tools (smtp-source, smtp-sink, posttls-finger):
	# no main.cf, nothing started.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# Never leave a Postfix master running (the package does not start one
	# without main.cf, but a machine may have been configured by hand).
	if pgrep -x master >/dev/null 2>&1; then postfix stop >/dev/null 2>&1 || true; fi
	# dante-server is only wanted as a SOCKS5 peer the tests start themselves:
	# the packaged service (which fails anyway on its stock config) stays off.
	case " ${missing[*]} " in
	*" dante-server "*)
		if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
			systemctl disable --now danted >/dev/null 2>&1 || true
		fi
		;;
	esac
}

build() {
	if [ ! -x configure ] || [ configure.ac -nt configure ]; then
		say "autoreconf"
		autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
	fi
	if [ ! -f Makefile ] || [ configure -nt config.status ]; then
		say "configure"
		./configure --enable-werror -q
	fi
	say "make"
	make -j"$(nproc)" -s >/dev/null
}

sanitizer_units() {
	# A separate copy of the sources: automake refuses an out-of-tree build
	# of a tree that is also configured in place, and the main build keeps
	# its objects. tar keeps mtimes, so an unchanged file is not rebuilt.
	local dir=$top/_build-san rc=0
	mkdir -p "$dir"
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files -co --exclude-standard -z | tar --null -T - -cf -
	else
		tar --exclude=./_build-san --exclude='*.o' --exclude='*.a' -cf - .
	fi | tar -C "$dir" -xf -
	cd "$dir"
	if [ ! -x configure ] || [ configure.ac -nt configure ]; then
		autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
	fi
	if [ ! -f Makefile ] || [ configure -nt config.status ]; then
		say "configure (sanitizers, in _build-san/)"
		./configure --enable-sanitizers --enable-werror -q
	fi
	say "every suite again under AddressSanitizer + UndefinedBehaviorSanitizer"
	make -j"$(nproc)" -s >/dev/null
	# Unit suites and integration scripts alike: the daemons and tools the
	# scripts start are the sanitized builds, and any report fails the run.
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		make -s check || rc=$?
	cd "$top"
	tests/summary.sh "$dir" || rc=1
	return $rc
}

install_missing
build
case $mode in
build) say "built" ;;
check)
	say "make check"
	rc=0
	make -s check || rc=$?
	tests/summary.sh . || rc=1
	if [ $rc -ne 0 ]; then
		echo "quickstart.sh: make check failed; the failing suites' logs are tests/*/*.log" >&2
		exit 1
	fi
	sanitizer_units || { echo "quickstart.sh: the sanitizer build failed (logs in _build-san/tests/)" >&2; exit 1; }
	say "all checks passed"
	;;
demo)
	if [ -x examples/lab-demo.sh ] && [ -x daemon/kumod ]; then
		exec examples/lab-demo.sh
	fi
	say "build summary"
	for p in daemon/kumod kumoctl/kumoctl kumotop/kumotop tls-probe/tls-probe smtp-sink/smtp-sink; do
		if [ -x "$p" ]; then printf '  %-22s built\n' "$p"; else printf '  %-22s not written yet\n' "$p"; fi
	done
	printf '  %-22s %s\n' lib/libkumo.a "$(du -h lib/libkumo.a | cut -f1)"
	say "run ./quickstart.sh check to build and run every test"
	;;
esac
