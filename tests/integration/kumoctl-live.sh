#!/usr/bin/env bash
# kumoctl-live.sh: kumoctl against a real kumod delivering to smtp-sink on
# 127.0.0.1. inject --concurrency: the window of messages being spooled at
# once is honoured (kumod reports the most it had in flight: the window when
# it is > 1, 1 with --concurrency 1) and every injected message reaches the
# sink exactly once; Ctrl-C stops a long injection, the messages spooled
# before it are all delivered once and none after it are made. Then the
# interactive shell under tmux (send-keys, capture-pane) on the live daemon:
# tab completion of live ready and scheduled queue names fetched from kumod,
# history recall and the history file, help, Ctrl-C of an injection from the
# prompt, quit.
. "$(dirname "$0")/lib.sh" # reap_orphans; its work dir is not used
rmdir "$T_WORK" 2>/dev/null
T_WORK=
. "$(dirname "$0")/kumod-common.sh"
K=${KUMOCTL:-$top/kumoctl/kumoctl}
[ -x "$K" ] || { echo "SKIP: $K not built"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }

TM=kumo-kumoctl-live-$$
trap 'rc=$?; tmux -L "$TM" kill-server 2>/dev/null; reap_orphans "$K"; cleanup $rc' EXIT

start_sink sink
KUMOD_PORT=$(free_port)
sock=$work/control.sock
write_conf "$work/kumod.conf" "$KUMOD_PORT" "$SINK_PORT" "" "control = { socket = \"$sock\"; };"
start_kumod "$work/kumod.conf"
export KUMOD_CONTROL=$sock
wait_until 5 test -S "$sock" || { echo "no control socket"; exit 1; }

# kc ARGS...: kumoctl --json with a bound, the result line on stdout
kc() { timeout 60 "$K" -j "$@" 2>"$work/kc.err"; }
# rcpts PREFIX DOMAIN: recipients PREFIX<n>@DOMAIN saved by the sink (duplicates kept)
rcpts() { saved_rcpts sink | grep -E "^$1[0-9]+@($2)\$"; }
# once PREFIX DOMAIN N: the sink holds exactly PREFIX1..PREFIXN@DOMAIN, each once
once() { [ "$(rcpts "$1" "$2" | sort)" = "$(seq -f "$1%.0f@$2" 1 "$3" | sort)" ]; }
# arrived PREFIX DOMAIN N: at least N such messages arrived
arrived() { [ "$(rcpts "$1" "$2" | wc -l)" -ge "$3" ]; }
inj() { jq -r ".result | [.injected, .failed, .concurrency, .max_in_flight] | @tsv" "$1"; }

# --- inject --concurrency: the window, and every message once ---
kc inject --to 'p{n}@a.example.test' --count 400 --size 2000 --concurrency 8 >"$work/p.json"
check_eq "concurrency 8: 400 injected, window 8, 8 in flight at once" "$(inj "$work/p.json")" \
	"$(printf '400\t0\t8\t8')"
kc inject --to 's{n}@c.other.test' --count 40 --concurrency 1 >"$work/s.json"
check_eq "concurrency 1: one at a time" "$(inj "$work/s.json")" "$(printf '40\t0\t1\t1')"
kc inject --to 'd{n}@b.example.test' --count 100 >"$work/d.json"
check_eq "default window 64" "$(inj "$work/d.json")" "$(printf '100\t0\t64\t64')"
kc inject --to 'q{n}@c.other.test' --count 3 --concurrency 50 >"$work/q.json"
check_eq "a window larger than the count" "$(inj "$work/q.json")" "$(printf '3\t0\t50\t3')"
kc inject --to 'x{n}@c.other.test' --count 3 --concurrency 0 >"$work/bad.json"
check_eq "concurrency 0 refused (exit 1)" "$?" 1
check_eq "concurrency 0: the daemon's error" "$(jq -r .error "$work/bad.json")" '"concurrency" must be 1 to 10000'
timeout 20 "$K" inject --to 'h{n}@c.other.test' --count 2 --concurrency 2 >"$work/human.out" 2>&1
check "human output names the window" grep -Eq '^max_in_flight: +2$' "$work/human.out"

check "all 543 delivered" wait_until 60 arrived '[pdsq]' '(a|b).example.test|c.other.test' 543
check "concurrency 8: each of p1..p400 arrived exactly once" once p a.example.test 400
check "concurrency 1: each of s1..s40 arrived exactly once" once s c.other.test 40
check "default: each of d1..d100 arrived exactly once" once d b.example.test 100
check_eq "Reception records: one per message" \
	"$(cat "$work"/logs/*.jsonl | jq -r 'select(.type=="Reception") | .recipient' | grep -cE '^[pdsq][0-9]+@')" 543

# --- Ctrl-C stops a long injection; what was spooled is delivered once ---
received() { kc metrics | jq -r .result | awk '$1 == "kumo_received_total" {print $2}'; }
# received_over N: kumod counted more than N messages received
received_over() { [ "$(received)" -gt "$1" ]; }
base=$(received)
# (not under timeout(1): the SIGINT must reach kumoctl itself; pids bounds it at exit)
"$K" -j inject --to 'z{n}@c.other.test' --count 1000000 --concurrency 4 \
	>"$work/z.json" 2>"$work/z.err" &
zpid=$!
pids+=("$zpid")
check "the long injection runs" wait_until 20 received_over $((base + 200))
kill -INT "$zpid"
wait_until 10 sh -c "! kill -0 $zpid"
wait "$zpid"
check_eq "Ctrl-C: kumoctl exits 1" "$?" 1
check "Ctrl-C: says the injection was cancelled" grep -q 'inject: cancelled (messages already spooled stay queued)' "$work/z.err"
check_eq "Ctrl-C: --json shows the terminator kumod sent in place of a result" \
	"$(jq -sc 'map(if .end then "end" elif .result then "result" else "?" end)' "$work/z.json")" '["end"]'
r1=$(received)
sleep 1.5
r2=$(received)
nz=$((r1 - base))
check_eq "no message made after the cancel" "$r2" "$r1"
check "some but not all of the million were spooled ($nz)" test "$nz" -gt 0 -a "$nz" -lt 1000000
check "every spooled one arrives" wait_until 60 arrived z c.other.test "$nz"
check "exactly once: z1..z$nz" once z c.other.test "$nz"
check "spool empty" wait_until 10 spool_empty

# --- the interactive shell under tmux, on the live daemon ---
if command -v tmux >/dev/null; then
	# live names: a scheduled queue (suspended domain) and the two ready queues
	kc suspend --domain b.example.test --duration 1h --reason "shell test" >/dev/null
	kc inject --to 'hold{n}@b.example.test' --count 3 >/dev/null
	tmux -L "$TM" -f /dev/null new-session -d -x 160 -y 50 \
		"env HOME=$work KUMOD_CONTROL=$sock TERM=xterm INPUTRC=/dev/null $K; echo SHELL-ENDED; sleep 30"
	TMUX_CAPTURE="-p -J -S -300"
	. "$top_srcdir/tests/integration/tmux.sh"

	check "shell: prompt names the socket" wait_screen "^kumoctl $sock> \$"
	keys 'queue-summary' Enter
	check "shell: live ready queues listed" wait_screen '^  unspecified->mx.other.test +unspecified +mx.other.test +[1-9][0-9]* '
	check "shell: the held scheduled queue listed" wait_screen '^  b.example.test +b.example.test +3 +.* suspended$'

	# A ready queue: "unspec" + Tab stops at the common prefix of the two paths,
	# a double Tab lists both, "o" + Tab completes one.
	clear_screen
	keys 'inspect-ready-q unspec' Tab
	check "shell: common prefix of live paths" wait_screen "> inspect-ready-q unspecified->mx.\$"
	keys Tab Tab
	check "shell: both live paths offered" wait_screen 'unspecified->mx.example.test +unspecified->mx.other.test'
	keys o Tab
	check "shell: live ready queue completed" wait_screen "> inspect-ready-q unspecified->mx.other.test \$"
	keys Enter
	check "shell: kumod's answer for it" wait_screen '^name: +unspecified->mx.other.test$'
	check "shell: its live delivered count" wait_screen '^delivered: +[1-9][0-9]*$'

	# A scheduled queue, live from kumod
	clear_screen
	keys 'inspect-sched-q b.ex' Tab
	check "shell: live scheduled queue completed" wait_screen "> inspect-sched-q b.example.test \$"
	keys Enter
	check "shell: the held messages" wait_screen '^queued: +3$'
	check "shell: the rule's reason" wait_screen 'shell test'

	# help
	clear_screen
	keys 'help' Enter
	check "shell: help lists the commands" wait_screen '^  inject +inject messages through the reception path'
	keys 'help inject' Enter
	check "shell: help inject shows --concurrency" wait_screen '^  --concurrency +messages being spooled at once'

	# history: Up twice recalls the command before last; the file keeps them
	clear_screen
	keys C-p C-p
	check "shell: history recall" wait_screen "> help *\$"
	keys C-u
	check "shell: history file written" grep -qx 'inspect-sched-q b.example.test' "$work/.kumoctl_history"

	# Ctrl-C stops an injection and keeps the shell
	clear_screen
	ybase=$(received)
	keys "inject --to 'y{n}@c.other.test' --count 1000000 --concurrency 2" Enter
	check "shell: the injection runs" wait_until 20 received_over $((ybase + 100))
	keys C-c
	check "shell: Ctrl-C cancels the injection" wait_screen 'inject: cancelled' 10
	keys 'suspend-list' Enter
	check "shell: prompt back after Ctrl-C" wait_screen 'shell test'
	sleep 1
	ny=$(($(received) - ybase))
	check "shell: every message spooled before Ctrl-C arrives ($ny)" wait_until 60 arrived y c.other.test "$ny"
	check "shell: exactly once: y1..y$ny" once y c.other.test "$ny"

	keys 'quit' Enter
	check "shell: quit leaves" wait_screen '^SHELL-ENDED$'
	tmux -L "$TM" kill-server 2>/dev/null
	reap_orphans "$K"
else
	echo "# tmux not installed: the shell part is skipped"
fi

check "kumod still running" kill -0 "$KUMOD_PID"
kill -TERM "$KUMOD_PID"
check "kumod exits within 10 s of SIGTERM" wait_until 10 sh -c "! kill -0 $KUMOD_PID"
finish
