#!/bin/bash
# kumotop-load.sh: what a live kumotop costs with 10,000 ready queues.
# tests/lab/ctl-echo serves watch snapshots with READY generated ready
# queues (CTL_ECHO_READY) plus its three canned ones; kumotop watches at a
# 1 s interval, first on a tmux screen (120x40), then in --batch mode
# writing to /dev/null. For each phase the CPU of kumotop and of the server
# (building and sending one snapshot per second: its "snapshot work") is
# read from /proc/PID/stat (utime+stime) over DUR seconds and printed as a
# percentage of one core. Target: under 5 % each.
#
# The server is the stand-in until kumod's own watch handler exists; then
# this script should start kumod (with that many small test domains queued
# towards a smtp-sink that defers them) in ctl-echo's place and measure it.
#
# Pinning: the server on CPU 0, kumotop on CPU 1 (taskset), as in
# shared/BENCH.md. Environment: READY (10000), DUR (30), INTERVAL (1),
# KUMOTOP, CTL_ECHO, OUT (also write the table to this file).
# Exit 2 when a tool is missing, 1 when a target was missed or a run failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
READY=${READY:-10000}
DUR=${DUR:-30}
INTERVAL=${INTERVAL:-1}
KUMOTOP=${KUMOTOP:-$top/kumotop/kumotop}
CTL_ECHO=${CTL_ECHO:-$top/tests/lab/ctl-echo}
HZ=$(getconf CLK_TCK)
NCPU=$(nproc)

for t in "$KUMOTOP" "$CTL_ECHO"; do
	[ -x "$t" ] || { echo "kumotop-load: $t missing (make && make check builds it)" >&2; exit 2; }
done
command -v tmux >/dev/null || { echo "kumotop-load: tmux missing" >&2; exit 2; }
PIN0="" PIN1=""
if command -v taskset >/dev/null && [ "$NCPU" -ge 2 ]; then
	PIN0="taskset -c 0" PIN1="taskset -c 1"
fi

work=$(mktemp -d /tmp/kumotop-bench.XXXXXX)
sock=$work/control.sock
TM=kumotop-bench-$$
pids=()
cleanup() {
	tmux -L "$TM" kill-server 2>/dev/null
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT

# ticks PID: utime+stime of PID in clock ticks
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# pct T0 T1: ticks over DUR seconds as a percentage of one core
pct() { awk -v a="$1" -v b="$2" -v hz="$HZ" -v d="$DUR" 'BEGIN {printf "%.2f", (b - a) / hz / d * 100}'; }
# over PCT: 1 when PCT is at or above the 5 % target
over() { awk -v p="$1" 'BEGIN {print (p >= 5.0) ? 1 : 0}'; }

CTL_ECHO_READY=$READY $PIN0 "$CTL_ECHO" "$sock" >"$work/echo.out" 2>&1 &
echo_pid=$!
pids+=("$echo_pid")
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { echo "kumotop-load: ctl-echo did not start" >&2; exit 1; }
want=$((READY + 3))
rc=0
rows=()

# --- phase 1: the screen ---
tmux -L "$TM" -f /dev/null new-session -d -x 120 -y 40 \
	"exec $PIN1 $KUMOTOP -s $sock --interval $INTERVAL"
kt_pid=$(tmux -L "$TM" display-message -p '#{pane_pid}')
ok=0
for _ in $(seq 300); do
	if tmux -L "$TM" capture-pane -p | grep -q "Ready queues $want/$want"; then ok=1; break; fi
	sleep 0.1
done
[ "$ok" = 1 ] || { echo "kumotop-load: the screen never showed $want ready queues" >&2; tmux -L "$TM" capture-pane -p >&2; exit 1; }
sleep 2 # let start-up settle
k0=$(ticks "$kt_pid") e0=$(ticks "$echo_pid")
before=$(tmux -L "$TM" capture-pane -p | grep -Eo '^Totals: received [0-9]+')
sleep "$DUR"
k1=$(ticks "$kt_pid") e1=$(ticks "$echo_pid")
after=$(tmux -L "$TM" capture-pane -p | grep -Eo '^Totals: received [0-9]+')
[ "$before" != "$after" ] || { echo "kumotop-load: the screen did not update ($before)" >&2; rc=1; }
kp=$(pct "$k0" "$k1") ep=$(pct "$e0" "$e1")
rows+=("screen 120x40|$kp|$ep")
[ "$(over "$kp")" = 0 ] && [ "$(over "$ep")" = 0 ] || rc=1
tmux -L "$TM" kill-server 2>/dev/null

# --- phase 2: --batch to /dev/null (every row printed each second) ---
$PIN1 "$KUMOTOP" -s "$sock" --batch --interval "$INTERVAL" >"$work/batch.out" 2>"$work/batch.err" &
b_pid=$!
pids+=("$b_pid")
for _ in $(seq 300); do [ "$(grep -c '^kumotop - ' "$work/batch.out")" -ge 2 ] && break; sleep 0.1; done
k0=$(ticks "$b_pid") e0=$(ticks "$echo_pid") n0=$(grep -c '^kumotop - ' "$work/batch.out")
sleep "$DUR"
k1=$(ticks "$b_pid") e1=$(ticks "$echo_pid") n1=$(grep -c '^kumotop - ' "$work/batch.out")
kill "$b_pid" 2>/dev/null
[ "$n1" -gt "$n0" ] || { echo "kumotop-load: --batch printed nothing new" >&2; rc=1; }
kp=$(pct "$k0" "$k1") ep=$(pct "$e0" "$e1")
rows+=("batch ($((n1 - n0)) snapshots)|$kp|$ep")
[ "$(over "$kp")" = 0 ] && [ "$(over "$ep")" = 0 ] || rc=1

{
	echo "kumotop-load: $want ready queues, interval ${INTERVAL}s, ${DUR}s per phase, $NCPU CPUs"
	printf '%-28s %14s %18s\n' "phase" "kumotop %CPU" "server %CPU"
	for r in "${rows[@]}"; do
		IFS='|' read -r name a b <<<"$r"
		printf '%-28s %14s %18s\n' "$name" "$a" "$b"
	done
	echo "target: under 5.00 % of one core each; server = tests/lab/ctl-echo (stand-in for kumod)"
	[ "$rc" = 0 ] && echo "result: ok" || echo "result: a target was missed or a run failed"
} | tee "${OUT:-/dev/null}"
exit "$rc"
