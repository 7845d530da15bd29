# lib.sh: shared helpers for the integration scripts (sourced, not run).
# Every wait is bounded; every process started is recorded and killed at exit.
#
#   . "$top_srcdir/tests/integration/lib.sh"
#   work=$(mkwork)                      # the script's temp dir ($T_WORK), removed at exit
#   start_bg NAME cmd args...           # run in background, pid recorded
#   wait_file FILE [SECONDS]            # wait for a port file (written then renamed)
#   check "what" test-command...        # counts a pass or a failure
#   finish                              # prints "N passed, N failed", exits 0/1

: "${top_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
export top_srcdir top_builddir

T_PASS=0
T_FAIL=0
T_PIDS=()

# The work dir is made when lib.sh is sourced, so $(mkwork) in a subshell
# still names the one directory the exit trap removes.
T_WORK=$(mktemp -d "${TMPDIR:-/tmp}/kumo-test.XXXXXX")
mkwork() {
	echo "$T_WORK"
}

t_cleanup() {
	local rc=${1:-$?} p
	for p in "${T_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	for p in "${T_PIDS[@]}"; do
		# bounded: 5 s, then SIGKILL
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	T_PIDS=()
	if [ -n "$T_WORK" ] && [ -z "${KEEP_WORK:-}" ]; then rm -rf "$T_WORK"; fi
	exit "$rc"
}
trap 't_cleanup' EXIT
trap 't_cleanup 130' INT
trap 't_cleanup 143' TERM

# start_bg NAME CMD...: run CMD in the background with output in $T_WORK/NAME.out;
# the pid is in $LAST_PID.
start_bg() {
	local name=$1
	shift
	"$@" >"${T_WORK:-/tmp}/$name.out" 2>&1 &
	LAST_PID=$!
	T_PIDS+=("$LAST_PID")
}

# stop_pid PID [SIGNAL]: signal a recorded process and wait (bounded) for it.
stop_pid() {
	local p=$1 sig=${2:-TERM}
	kill "-$sig" "$p" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	return 0
}

# wait_file FILE [SECONDS]: wait until FILE exists and is not empty.
wait_file() {
	local f=$1 limit=${2:-10} i
	for ((i = 0; i < limit * 20; i++)); do
		[ -s "$f" ] && return 0
		sleep 0.05
	done
	echo "timed out after ${limit}s waiting for $f" >&2
	return 1
}

# wait_for SECONDS CMD...: poll CMD until it succeeds, bounded.
wait_for() {
	local limit=$1 i
	shift
	for ((i = 0; i < limit * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

pass() {
	T_PASS=$((T_PASS + 1))
	echo "ok - $*"
}

fail() {
	T_FAIL=$((T_FAIL + 1))
	echo "FAIL - $*"
}

# check "what" CMD...: run CMD; pass if it succeeds.
check() {
	local what=$1
	shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}

# check_eq "what" GOT WANT
check_eq() {
	if [ "$2" = "$3" ]; then pass "$1"; else fail "$1: got '$2', want '$3'"; fi
}

# skip_all "reason": the script cannot run here (exit 77 = automake SKIP).
skip_all() {
	echo "SKIP: $*"
	trap - EXIT
	[ -n "$T_WORK" ] && rm -rf "$T_WORK"
	exit 77
}

finish() {
	echo "$T_PASS passed, $T_FAIL failed"
	[ "$T_FAIL" -eq 0 ] && [ "$T_PASS" -gt 0 ]
	t_cleanup $?
}

# reap_orphans BIN [SECONDS]: wait (bounded) for orphaned processes running
# BIN (parent pid 1, e.g. a kumotop whose tmux server was killed) to exit,
# then SIGKILL the rest. Under LeakSanitizer a process that exits on SIGHUP
# has been seen to hang in the at-exit leak check, spinning a core forever.
reap_orphans() {
	local bin i pid left
	bin=$(readlink -f "$1") || return 0
	for ((i = 0; i <= ${2:-3} * 10; i++)); do
		left=
		for pid in $(pgrep -f -- "$bin" 2>/dev/null); do
			[ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$bin" ] || continue
			[ "$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null)" = 1 ] || continue
			left="$left $pid"
		done
		[ -z "$left" ] && return 0
		sleep 0.1
	done
	echo "reaping orphaned $bin:$left" >&2
	kill -KILL $left 2>/dev/null
	return 0
}
