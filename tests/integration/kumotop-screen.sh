#!/bin/bash
# kumotop-screen.sh: kumotop against tests/lab/ctl-echo (daemon/control.c with
# canned watch snapshots whose counters grow) over a real Unix socket: options
# and exit codes, --batch -n 2, and the screen under tmux (120x40): paths with
# non-zero counts, the sparklines, `/` filtering, sorting, Tab, the detail
# pane, S and R with their confirmation (the server reflects the
# suspend-ready-q rule in later snapshots; kumoctl confirms it), help, resize,
# colour and --no-color, the disconnected state when the server dies and the
# recovery when it comes back, and q. The canned data has states a real
# kumod only shows under contrived faults (throttled with time to the next
# permit, delayed after consecutive failures, bouncing); kumotop-live.sh runs
# the screen against a real kumod and smtp-sink while mail flows.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

KT=$top_builddir/kumotop/kumotop
K=$top_builddir/kumoctl/kumoctl
ECHO=$top_builddir/tests/lab/ctl-echo
[ -x "$KT" ] && [ -x "$ECHO" ] || skip_all "kumotop or tests/lab/ctl-echo not built"
command -v tmux >/dev/null || skip_all "tmux not installed"

mkwork >/dev/null # not in a subshell: lib.sh must see T_WORK to clean it up
work=$T_WORK
sock=$work/control.sock
export KUMOD_CONTROL=$sock

# run NAME CMD...: stdout to $work/NAME.out, stderr to $work/NAME.err, status in $rc
run() {
	local name=$1
	shift
	"$@" >"$work/$name.out" 2>"$work/$name.err"
	rc=$?
}

# --- options and exit codes, before any server exists ---
run help "$KT" --help
check_eq "--help exit" "$rc" 0
check "--help names the keys" grep -q 'S suspend, R resume' "$work/help.out"
run nosock "$KT" --batch -n 1
check_eq "no daemon exit" "$rc" 2
check "no daemon message" grep -q "kumotop: no control socket at $sock: is kumod running?" "$work/nosock.err"
run badopt "$KT" --frobnicate
check_eq "unknown option exit" "$rc" 2
run badiv "$KT" --interval 0s --batch
check_eq "interval 0 exit" "$rc" 2
check "interval range message" grep -q -- '--interval: "0s": must be between 1s and 1h00m' "$work/badiv.err"
run badn "$KT" -n 2
check_eq "-n without --batch exit" "$rc" 2
run badn2 "$KT" --batch -n two
check "-n must be a number" grep -q -- '--iterations: "two" is not a positive integer' "$work/badn2.err"
run notty "$KT" </dev/null
check_eq "no terminal exit" "$rc" 2
check "no terminal message" grep -q 'must be a terminal' "$work/notty.err"

start_bg echo "$ECHO" "$sock"
echo_pid=$LAST_PID
wait_for 10 test -S "$sock" || { fail "ctl-echo did not start"; finish; }

# --- batch mode ---
run batch timeout 20 "$KT" --batch -n 2
check_eq "batch exit" "$rc" 0
check_eq "batch: two snapshots" "$(grep -c '^kumotop - ctl-echo' "$work/batch.out")" 2
check "batch ready row" grep -Eq '^ip-1->mx.example.test +[1-9][0-9]* +3 +2 +5 +4.5 active +opportunistic$' "$work/batch.out"
check "batch throttled row" grep -Eq '^ip-1->mx.foo.test +0 +9 +1 +12 +0.0 throttled 2s, 3 fails +disabled$' "$work/batch.out"
check "batch scheduled row" grep -Eq '^foo.test +30 +20m00s suspended$' "$work/batch.out"
check "batch totals" grep -Eq '^Totals: received [0-9]+  delivered [0-9]+  transient [0-9]+  bounced 0  expired 0$' "$work/batch.out"
check_eq "batch: counters grow" "$(grep -Eo '^ip-1->mx.example.test +[0-9]+' "$work/batch.out" | awk '{print $2}' | sort -u | wc -l)" 2
run batchf timeout 20 "$KT" --batch -n 1 --filter foo
check_eq "batch filter: one path" "$(grep -c -- '->' "$work/batchf.out")" 1
check "batch filter: scheduled too" grep -Eq '^foo.test ' "$work/batchf.out"
check "batch filter: others gone" bash -c "! grep -q example.test '$work/batchf.out'"

# --- the screen ---
TM=kumo-kumotop-$$
trap 'rc=$?; tmux -L "$TM" kill-server 2>/dev/null; reap_orphans "$KT"; t_cleanup $rc' EXIT
tmux -L "$TM" -f /dev/null new-session -d -x 120 -y 40 \
	"env KUMOD_CONTROL=$sock TERM=screen LANG=C.UTF-8 $KT --interval 1; echo KUMOTOP-ENDED rc=\$?; sleep 30"

. "$top_srcdir/tests/integration/tmux.sh"

check "title names the server" wait_screen '^ kumotop - ctl-echo [0-9.]+ pid [0-9]+ - '
check "path with non-zero counts" wait_screen '^ip-1->mx.example.test +[1-9][0-9]* +3 +2 +5 +4.5 active +opportunistic'
check "throttled with time to next permit" wait_screen '^ip-1->mx.foo.test .* throttled 2s, 3 fails +disabled'
check "suspended path" wait_screen '^ip-2->mx.example.test .* suspended +required'
check "totals line" wait_screen '^Totals: received [1-9]'
check "gauges line" wait_screen '^Now: connections 3  queued 91 \(scheduled 34, ready 57\)  memory 50.0M'
check "sparklines" wait_screen '^received +[0-9.]+/s +[▁▂▃▄▅▆▇█]+'
check "table tabs" wait_screen 'Ready queues 3/3   Scheduled queues 3/3 +sort: PATH'
d1=$(screen | grep -Eo '^ip-1->mx.example.test +[0-9]+' | awk '{print $2}')
sleep 2.2
d2=$(screen | grep -Eo '^ip-1->mx.example.test +[0-9]+' | awk '{print $2}')
check "screen updates with new snapshots ($d1 -> $d2)" test "${d2:-0}" -gt "${d1:-0}"

# no line wider than the terminal, table header in place
# widest() : the display width of the widest pane line (sparklines are multibyte)
widest() { tmux -L "$TM" capture-pane -p | LC_ALL=C.UTF-8 wc -L; }
check_eq "layout fits 120 columns" "$(( $(widest) <= 120 ))" 1

# --- sort: s cycles PATH -> D; D puts the most delivered first ---
keys s
check "sort column shown" wait_screen 'sort: D '
check "sorted by D" bash -c "tmux -L '$TM' capture-pane -p | grep -A1 '^PATH ' | tail -1 | grep -q '^ip-1->mx.example.test'"
keys s s s
check "sort by Q" wait_screen 'sort: Q '
check "sorted by Q" bash -c "tmux -L '$TM' capture-pane -p | grep -A1 '^PATH ' | tail -1 | grep -q '^ip-2->mx.example.test'"
keys s s s
check "sort cycles back to PATH" wait_screen 'sort: PATH '

# --- filter ---
keys / f o o
check "filter prompt" wait_screen '^Filter: foo_'
check "filter applies while typing" wait_screen 'Ready queues 1/3'
keys Enter
check "filter kept" wait_screen 'filter: "foo"'
check "filtered row shown" wait_screen '^ip-1->mx.foo.test '
check "other rows hidden" gone_screen '^ip-2->mx.example.test '
keys / Escape
check "Esc clears the filter" wait_screen 'Ready queues 3/3'
check "rows back" wait_screen '^ip-2->mx.example.test '
keys / f o o Enter

# --- suspend and resume the selected path ---
keys S
check "suspend asks first" wait_screen '^Suspend path ip-1->mx.foo.test for 1h00m\? \[y/N\]'
keys n
check "n cancels" wait_screen '^cancelled'
check "nothing suspended after n" bash -c "'$K' -c suspend-ready-q-list | grep -c 'mx.foo.test' | grep -qx 0"
keys S
wait_screen '^Suspend path' >/dev/null
keys y
check "suspend acknowledged" wait_screen '^suspended ip-1->mx.foo.test \(rule [0-9]+\)'
check "next snapshot shows it suspended" wait_screen '^ip-1->mx.foo.test .* suspended +disabled' 5
if [ -x "$K" ]; then
	run srl "$K" -c suspend-ready-q-list
	check "kumoctl sees the rule" grep -q 'ip-1->mx.foo.test' "$work/srl.out"
	check "rule has a reason naming kumotop" grep -q 'suspended from kumotop by' "$work/srl.out"
fi
keys R
check "resume asks first" wait_screen '^Resume path ip-1->mx.foo.test \(cancel its suspensions\)\? \[y/N\]'
keys y
check "resume acknowledged" wait_screen '^resumed ip-1->mx.foo.test \(rule [0-9]+ cancelled\)'
check "next snapshot shows it throttled again" wait_screen '^ip-1->mx.foo.test .* throttled 2s' 5
keys R y
check "resume without a rule says so" wait_screen '^ip-1->mx.foo.test has no suspension to cancel'

# --- detail pane ---
keys Enter
check "detail pane title" wait_screen '^ Path ip-1->mx.foo.test +\(Enter or Esc closes\)'
check "detail: inspect members" wait_screen 'consecutive_failures: 0'
check "detail: merged config with origins" wait_screen '^ +max_connection_rate +20/min +\[site\]'
check "detail: built-in origin" wait_screen '^ +max_deliveries_per_connection +5 +\[built-in\]'
keys Escape
check "Esc closes the pane" gone_screen '^ Path ip-1->mx.foo.test'
keys / Escape

# --- scheduled table ---
keys Tab
check "Tab: scheduled table" wait_screen '^SCHEDULED +Q +NEXT-DUE STATE'
check "scheduled row" wait_screen '^foo.test +30 +20m00s suspended'
keys S
check "S on scheduled table refused" wait_screen 'S works on ready queues'
keys Tab
check "Tab back" wait_screen '^PATH +D +T +C +Q'

# --- help ---
keys '?'
check "help overlay" wait_screen 'kumotop keys'
keys x
check "any key closes help" gone_screen 'kumotop keys'

# --- resize ---
tmux -L "$TM" resize-window -x 80 -y 24
check "80x24: header" wait_screen '^PATH +D +T +C +Q +RATE/s STATE'
check "80x24: rows" wait_screen '^ip-1->mx.example.test '
check "80x24: bottom line" wait_screen '^q quit'
check_eq "80x24: nothing wider than 80" "$(( $(widest) <= 80 ))" 1
check "80x24: full path names fit" wait_screen '^ip-1->mx.example.test +[0-9]+ +3 +2 +5 +4.5 active$'
check "80x24: TLS column dropped" gone_screen 'opportunistic'

tmux -L "$TM" resize-window -x 50 -y 12
check "50x12: compact header (no sparklines)" wait_screen '^Rates/s: '
check "50x12: a row still shows" wait_screen '^ip-1->'
tmux -L "$TM" resize-window -x 30 -y 6
check "30x6: too small message" wait_screen 'terminal too small'
tmux -L "$TM" resize-window -x 120 -y 40
check "back to 120x40: sparklines" wait_screen '^received +[0-9.]+/s'

# --- colour and monochrome ---
check "colour on by default" bash -c "tmux -L '$TM' capture-pane -p -e | grep -q \$'\\e\\\\[3[0-7]m'"

# --- the daemon goes away and comes back ---
stop_pid "$echo_pid"
check "disconnected state shown" wait_screen 'DISCONNECTED' 10
check "reason shown" wait_screen '^daemon unreachable: .*(closed the connection|no control socket)' 10
start_bg echo2 "$ECHO" "$sock"
echo2_pid=$LAST_PID
wait_for 10 test -S "$sock"
check "reconnected" gone_screen 'DISCONNECTED' 15
check "data after reconnect" wait_screen '^ip-1->mx.example.test +[1-9]'

keys q
check "q quits with status 0" wait_screen '^KUMOTOP-ENDED rc=0' 5
tmux -L "$TM" kill-server 2>/dev/null
reap_orphans "$KT"

stop_pid "$echo2_pid"
check "servers exited cleanly (no sanitizer report)" bash -c "! grep -q 'runtime error\|AddressSanitizer\|LeakSanitizer' '$work/echo.out' '$work/echo2.out'"
start_bg echo3 "$ECHO" "$sock"
wait_for 10 test -S "$sock"

# --- monochrome: --no-color and NO_COLOR (a fresh tmux server each) ---
n=0
for how in "--no-color" "NO_COLOR=1"; do
	n=$((n + 1))
	TM=kumo-kumotop-$$-$n
	if [ "$how" = "--no-color" ]; then cmd="$KT --no-color"; else cmd="env NO_COLOR=1 $KT"; fi
	tmux -L "$TM" -f /dev/null new-session -d -x 120 -y 40 \
		"env KUMOD_CONTROL=$sock TERM=screen $cmd; sleep 30"
	if wait_screen '^ip-1->mx.example.test' 10; then
		check "$how: no colour codes" bash -c "! tmux -L '$TM' capture-pane -p -e | grep -q \$'\\e\\\\[3[0-7]m'"
		check "$how: reverse video instead" bash -c "tmux -L '$TM' capture-pane -p -e | grep -q \$'\\e\\\\[7m'"
	else
		fail "$how: kumotop did not draw"
	fi
	tmux -L "$TM" kill-server 2>/dev/null
	reap_orphans "$KT"
done

finish
