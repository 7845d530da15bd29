#!/usr/bin/env bash
# kumotop-live.sh: kumotop under tmux (send-keys, capture-pane) against a
# real kumod delivering to smtp-sink on 127.0.0.1 while mail flows (the sink
# takes 1.5 s per message, so two paths deliver steadily for minutes): the
# live paths with non-zero D, C and Q and a rate; `/` filters; the detail
# pane shows kumod's merged path config; `S` suspends the selected path and
# the sink stops receiving for it while the other path keeps flowing, `R`
# resumes it (verdicts from the sink's saved messages); resize keeps a sane
# layout; a kumod restart shows the disconnected state, then kumotop
# recovers and shows the recovered queues. kumotop-screen.sh covers the
# rest (sorting, colour, help) against tests/lab/ctl-echo's canned data.
. "$(dirname "$0")/lib.sh" # reap_orphans; its work dir is not used
rmdir "$T_WORK" 2>/dev/null
T_WORK=
. "$(dirname "$0")/kumod-common.sh"
KT=${KUMOTOP:-$top/kumotop/kumotop}
K=${KUMOCTL:-$top/kumoctl/kumoctl}
[ -x "$KT" ] && [ -x "$K" ] || { echo "SKIP: kumotop or kumoctl not built"; exit 77; }
command -v tmux >/dev/null || { echo "SKIP: tmux not installed"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }

TM=kumo-kumotop-live-$$
trap 'rc=$?; tmux -L "$TM" kill-server 2>/dev/null; reap_orphans "$KT"; cleanup $rc' EXIT

A='unspecified->mx.example.test' # a.example.test's path
C='unspecified->mx.other.test'   # c.other.test's path
start_sink sink --delay DOT=1500ms
KUMOD_PORT=$(free_port)
sock=$work/control.sock
write_conf "$work/kumod.conf" "$KUMOD_PORT" "$SINK_PORT" "" "control = { socket = \"$sock\"; };"
start_kumod "$work/kumod.conf"
export KUMOD_CONTROL=$sock
wait_until 5 test -S "$sock" || { echo "no control socket"; exit 1; }
kc() { timeout 30 "$K" -j "$@" 2>>"$work/kc.err"; }
# at_sink DOMAIN: messages the sink saved for DOMAIN so far
at_sink() { saved_rcpts sink | grep -c "@$1\$"; }
# grows DOMAIN SECONDS: the sink's count for DOMAIN goes up within SECONDS
grows() { local n0 i; n0=$(at_sink "$1"); for ((i = 0; i < $2 * 10; i++)); do [ "$(at_sink "$1")" -gt "$n0" ] && return 0; sleep 0.1; done; return 1; }

# about 5 messages a second per path (8 connections, 1.5 s each): minutes of flow
kc inject --to 'a{n}@a.example.test' --count 1000 >/dev/null
kc inject --to 'c{n}@c.other.test' --count 1000 >/dev/null
check "mail flows to both sites" wait_until 20 sh -c "[ \$(find '$work/sink.d' -type f | wc -l) -ge 10 ]"

tmux -L "$TM" -f /dev/null new-session -d -x 120 -y 40 \
	"env KUMOD_CONTROL=$sock TERM=screen LANG=C.UTF-8 $KT --interval 1 2>$work/kumotop.err; echo KUMOTOP-ENDED rc=\$?; sleep 30"
. "$top_srcdir/tests/integration/tmux.sh"
widest() { tmux -L "$TM" capture-pane -p | LC_ALL=C.UTF-8 wc -L; }
# a live row: D >= 1, T 0, C >= 1, Q >= 1, a rate, active, TLS disabled (enable_tls)
live_row() { echo "^$1 +[1-9][0-9]* +0 +[1-9][0-9]* +[1-9][0-9]* +[0-9]+\\.[0-9] +active +Disabled\$"; }

check "title names kumod and its pid" wait_screen "^ kumotop - kumod [0-9.]+ pid $KUMOD_PID - " 10
check "path $A live with non-zero counts" wait_screen "$(live_row "$A")" 10
check "path $C live with non-zero counts" wait_screen "$(live_row "$C")" 10
check "a delivery rate above zero" wait_screen "^$A +[0-9]+ +0 +[0-9]+ +[0-9]+ +([1-9][0-9]*\\.[0-9]|0\\.[1-9]) " 10
check "totals count the deliveries" wait_screen '^Totals: received 2000  delivered [1-9][0-9]*  transient 0  bounced 0'
check "scheduled table counts" wait_screen 'Ready queues 2/2   Scheduled queues 0/0'
check "sparklines" wait_screen ' delivered +[0-9.]+/s +[▁▂▃▄▅▆▇█]+'
d1=$(screen | grep -Eo "^$A +[0-9]+" | awk '{print $2}')
sleep 2.5
d2=$(screen | grep -Eo "^$A +[0-9]+" | awk '{print $2}')
check "D grows on screen with the sink's deliveries ($d1 -> $d2)" test "${d2:-0}" -gt "${d1:-0}"
check_eq "layout fits 120 columns" "$(($(widest) <= 120))" 1

# --- / filters ---
keys / o t h e r
check "filter prompt" wait_screen '^Filter: other_'
check "filter applies while typing" wait_screen 'Ready queues 1/2'
keys Enter
check "filter kept" wait_screen 'filter: "other"'
check "the matching path shown" wait_screen "^$C "
check "the other path hidden" gone_screen "^$A "

# --- the detail pane: kumod's merged config with origins ---
keys Enter
check "detail pane for the path" wait_screen "^ Path $C +\\(Enter or Esc closes\\)"
check "detail: connection_limit from the default layer" wait_screen '^ +connection_limit +8 +\[default\]'
check "detail: resolved for the path's domain and site" wait_screen '^  merged egress path config \(site mx.other.test\):'
check "detail: enable_tls from the default layer" wait_screen '^ +enable_tls +Disabled +\[default\]'
keys Escape
check "Esc closes the pane" gone_screen "^ Path $C"

# --- S suspends the selected path: the sink stops receiving for it ---
check "before: the sink receives for c.other.test" grows c.other.test 10
keys S
check "suspend asks first" wait_screen "^Suspend path $C for 1h00m\\? \\[y/N\\]"
keys y
check "suspend acknowledged" wait_screen "^suspended $C \\(rule [0-9]+\\)"
check "kumod's next snapshot shows it suspended" wait_screen "^$C .* suspended +Disabled" 5
check_eq "kumod holds the rule" "$(kc suspend-ready-q-list | jq -r '.result.suspensions[0].name')" "$C"
sleep 2 # the transactions in flight (0.8 s each) finish; then nothing more may start
c1=$(at_sink c.other.test)
a1=$(at_sink a.example.test)
sleep 4
c2=$(at_sink c.other.test)
a2=$(at_sink a.example.test)
check_eq "the sink received nothing for the suspended path in 4 s" "$c2" "$c1"
check "the other path kept flowing meanwhile ($a1 -> $a2)" test "$a2" -gt "$a1"
check "the suspended path's queue waits (Q > 0, C 0)" wait_screen "^$C +[0-9]+ +0 +0 +[1-9][0-9]* .* suspended" 10
keys R
check "resume asks first" wait_screen "^Resume path $C \\(cancel its suspensions\\)\\? \\[y/N\\]"
keys y
check "resume acknowledged" wait_screen "^resumed $C \\(rule [0-9]+ cancelled\\)"
check "after R the sink receives for it again" grows c.other.test 15
check "and the screen shows it active again" wait_screen "$(live_row "$C")" 10
keys / Escape
check "Esc clears the filter" wait_screen 'Ready queues 2/2'

# --- resize keeps a sane layout ---
tmux -L "$TM" resize-window -x 80 -y 24
check "80x24: table header" wait_screen '^PATH +D +T +C +Q +RATE/s STATE'
check "80x24: full path names, TLS column dropped" wait_screen "^$A +[0-9]+ +0 +[0-9]+ +[0-9]+ +[0-9.]+ +active\$"
check "80x24: bottom line" wait_screen '^q quit'
check_eq "80x24: nothing wider than 80" "$(($(widest) <= 80))" 1
tmux -L "$TM" resize-window -x 50 -y 12
check "50x12: compact header" wait_screen '^Rates/s: '
check "50x12: rows still show (long names cut with ~)" wait_screen '^unspecified~ +[0-9]+ +0 '
check_eq "50x12: nothing wider than 50" "$(($(widest) <= 50))" 1
tmux -L "$TM" resize-window -x 120 -y 40
check "back to 120x40: sparklines" wait_screen '^received +[0-9.]+/s'
check "back to 120x40: TLS column" wait_screen "$(live_row "$A")" 5

# --- kumod restarts: disconnected, then recovered ---
kill -TERM "$KUMOD_PID"
check "kumod stops" wait_until 15 sh -c "! kill -0 $KUMOD_PID"
check "disconnected state shown" wait_screen 'DISCONNECTED' 10
check "reason shown" wait_screen '^daemon unreachable: .*(closed the connection|no control socket|refused)' 10
left=$(find "$work/spool" -type f | wc -l)
check "mail left in the spool for the next start ($left)" test "$left" -gt 0
start_kumod "$work/kumod.conf"
wait_until 10 test -S "$sock"
check "reconnected" gone_screen 'DISCONNECTED' 15
check "the new kumod's pid in the title" wait_screen "^ kumotop - kumod [0-9.]+ pid $KUMOD_PID - " 10
check "recovered mail flows on screen again" wait_screen "^$A +[1-9][0-9]* +0 +[1-9][0-9]* +[0-9]+ +[0-9.]+ +active +Disabled\$" 15
check "and at the sink" grows a.example.test 15

keys q
check "q quits with status 0" wait_screen '^KUMOTOP-ENDED rc=0' 5
check "kumotop wrote no errors" test ! -s "$work/kumotop.err"
tmux -L "$TM" kill-server 2>/dev/null
reap_orphans "$KT"
check "kumod still running" kill -0 "$KUMOD_PID"
finish
