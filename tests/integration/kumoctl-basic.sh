#!/bin/bash
# kumoctl-basic.sh: kumoctl against a real control server over a Unix socket
# (tests/lab/ctl-echo: daemon/control.c with canned answers): the modes
# (-c, argv, -f, stdin), --json, help, client-side validation, exit codes,
# streams, the client cap, peer credentials, and the man page matching the
# command table.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

K=$top_builddir/kumoctl/kumoctl
ECHO=$top_builddir/tests/lab/ctl-echo
[ -x "$K" ] && [ -x "$ECHO" ] || skip_all "kumoctl or tests/lab/ctl-echo not built"

mkwork >/dev/null # not in a subshell: lib.sh must see T_WORK to clean it up
work=$T_WORK
chmod 755 "$work"
sock=$work/control.sock
export KUMOD_CONTROL=$sock
start_bg echo "$ECHO" "$sock" 3 0666
wait_for 10 test -S "$sock" || { fail "ctl-echo did not start"; finish; }

# run NAME CMD...: stdout to $work/NAME.out, stderr to $work/NAME.err, status in $rc
run() {
	local name=$1
	shift
	"$@" >"$work/$name.out" 2>"$work/$name.err"
	rc=$?
}

# --- one command: -c and argv ---
run qs "$K" -c 'queue-summary'
check_eq "queue-summary exit" "$rc" 0
check "ready table header" grep -Eq '^  NAME +SOURCE +SITE +DELIVERED +TRANSIENT +CONNECTIONS +QUEUED +STATUS$' "$work/qs.out"
check "ready row columns" grep -Eq '^  ip-1->mx.example.test +ip-1 +mx.example.test +120 +3 +2 +5 +active$' "$work/qs.out"
check "scheduled durations" grep -Eq '^  foo.test +foo.test +30 +20m +suspended$' "$work/qs.out"

run qsv "$K" queue-summary --by-volume --limit 1
check_eq "argv command exit" "$rc" 0
check_eq "by-volume, limit 1" "$(grep -c -- '->' "$work/qsv.out")" 1
check "largest first" grep -q 'ip-2->mx.example.test' "$work/qsv.out"

# --- --json: the daemon's lines unchanged ---
run js "$K" --json -c 'queue-summary --domain foo'
check_eq "json exit" "$rc" 0
check_eq "json one line" "$(wc -l <"$work/js.out")" 1
check "json line" python3 -c '
import json,sys
d=json.loads(open(sys.argv[1]).read())
assert d["id"]==1 and d["ok"] is True
assert [r["name"] for r in d["result"]["ready"]]==["ip-1->mx.foo.test"], d
' "$work/js.out"

# --- validation before anything is sent (exit 2) ---
run bad1 "$K" -c 'suspend --domain x.test --duration 2fortnights --reason r'
check_eq "bad duration exit" "$rc" 2
check "bad duration message" grep -q 'suspend: --duration: "2fortnights": unknown unit' "$work/bad1.err"
run bad2 "$K" -c 'suspend --domain a --tenant b --reason r'
check_eq "two selectors exit" "$rc" 2
check "two selectors message" grep -q 'give exactly one of --domain/--tenant/--campaign' "$work/bad2.err"
run bad3 "$K" -c 'suspend --domian x --reason r'
check "option near miss" grep -q 'unknown option --domian (did you mean --domain?)' "$work/bad3.err"
run bad4 "$K" -c 'queue-sumary'
check_eq "unknown command exit" "$rc" 2
check "command near miss" grep -q 'unknown command "queue-sumary" (did you mean queue-summary?)' "$work/bad4.err"
run bad5 "$K" -c 'suspend-cancel one'
check "integer check" grep -q 'suspend-cancel: ID: "one" is not a non-negative integer' "$work/bad5.err"
run bad6 "$K" -c 'inspect-ready-q'
check "missing positional shows usage" grep -q '^usage: inspect-ready-q NAME' "$work/bad6.err"
run bad7 "$K" -c 'suspend --domain "unterminated --reason r'
check "unterminated quote" grep -q 'unterminated double quote' "$work/bad7.err"

# --- the daemon refuses (exit 1) ---
run ref "$K" -c 'inspect-ready-q nope'
check_eq "refused exit" "$rc" 1
check "refusal text" grep -q 'inspect-ready-q: unknown ready queue "nope"' "$work/ref.err"
run near "$K" inspect-ready-q 'ip-2->mx.exampel.test'
check_eq "unknown name exit" "$rc" 1
check "unknown name near miss from live names" grep -q 'unknown ready queue "ip-2->mx.exampel.test" (did you mean ip-2->mx.example.test?)' "$work/near.err"
run refj "$K" -j -c 'inspect-ready-q nope'
check_eq "refused json exit" "$rc" 1
check "refusal json line" grep -q '^{"id":1,"ok":false,"error":"unknown ready queue \\"nope\\""}$' "$work/refj.out"

# --- rules round trip, quoting ---
run s1 "$K" -c "suspend --domain foo.test --duration '1h 30m' --reason \"maintenance window\""
check_eq "suspend exit" "$rc" 0
check "suspend echoes duration" grep -Eq '^expires_in: +1h30m$' "$work/s1.out"
run s2 "$K" -j suspend-list
check "suspend-list has the rule" grep -q '"reason":"maintenance window"' "$work/s2.out"
check "duration sent in seconds" grep -q '"expires_in":5400' "$work/s2.out"

# --- scripts: -f, stdin, comments, stop at first failure, --keep-going ---
cat >"$work/script" <<'SCRIPT'
# a comment line
reload   # trailing comment

set-log-filter info
inspect-message 42
metrics
SCRIPT
run f1 "$K" -f "$work/script"
check_eq "-f stops at the failing line" "$rc" 1
check "-f ran the lines before" grep -q '^reloaded: yes$' "$work/f1.out"
check "-f error names file and line" grep -q "$work/script:5: inspect-message: no message \"42\"" "$work/f1.err"
check "-f did not run past it" bash -c "! grep -q kumo_delivered_total '$work/f1.out'"
run f2 "$K" -k -f "$work/script"
check_eq "--keep-going exit is the worst" "$rc" 1
check "--keep-going ran the rest" grep -q '^kumo_delivered_total 127$' "$work/f2.out"
"$K" <"$work/script" >"$work/stdin.out" 2>"$work/stdin.err"
check_eq "stdin script exit" "$?" 1
check "stdin error names stdin" grep -q '^kumoctl: stdin:5: ' "$work/stdin.err"
check "no prompt on stdin" bash -c "! grep -q 'kumoctl .*> ' '$work/stdin.out'"
printf 'metrics\nquit\nreload\n' | "$K" >"$work/quit.out" 2>&1
check "quit ends a script" bash -c "grep -q kumo_delivered_total '$work/quit.out' && ! grep -q reloaded '$work/quit.out'"

# --- help from the table ---
run h1 "$K" -c help
check_eq "help exit" "$rc" 0
for c in queue-summary inspect-sched-q inspect-ready-q inspect-message suspend suspend-list suspend-cancel \
	suspend-ready-q suspend-ready-q-list suspend-ready-q-cancel bounce bounce-list bounce-cancel \
	resolve-egress-path reload trace-smtp-client set-log-filter metrics inject watch; do
	grep -Eq "^  $c +" "$work/h1.out" || fail "help lists $c"
done
pass "help lists every command"
run h2 "$K" -c 'help suspend'
check "help CMD usage" grep -q '^usage: suspend {--domain DOMAIN | --tenant TENANT | --campaign CAMPAIGN} \[--duration DURATION\] --reason REASON$' "$work/h2.out"

# --- the man page's COMMANDS section is the table's ---
"$K" --man-commands >"$work/man.gen"
check "kumoctl.8 matches --man-commands" python3 -c '
import sys
gen=open(sys.argv[1]).read(); page=open(sys.argv[2]).read()
assert gen in page, "doc/kumoctl.8 is stale: regenerate its COMMANDS section with kumoctl --man-commands"
' "$work/man.gen" "$top_srcdir/doc/kumoctl.8"

# --- streams: watch --count, trace stopped by SIGINT ---
run w1 "$K" -c 'watch --interval 1s --count 2'
check_eq "watch exit" "$rc" 0
check_eq "watch: header + 2 lines" "$(wc -l <"$work/w1.out")" 3
check "watch header" grep -Eq '^TIME +RECEIVED +DELIVERED +TRANSIENT +BOUNCED +SCHEDULED +READY +CONNECTIONS$' "$work/w1.out"
run w2 "$K" -j watch --count 1
check "watch json snapshot" python3 -c '
import json,sys
lines=[json.loads(l) for l in open(sys.argv[1])]
assert "stream" in lines[0] and lines[0]["id"]==1
s=lines[0]["stream"]
for k in ("time","uptime","totals","rates","ready","scheduled"): assert k in s, k
# the members doc/control-protocol.md promises kumotop
for k in ("received","delivered","transient","bounced","expired","scheduled","ready","connections","memory"):
    assert k in s["totals"], k
for k in ("name","source","site","delivered","transient","connections","queued","rate","status",
          "next_permit_in","consecutive_failures","tls"):
    assert k in s["ready"][0], k
for k in ("name","queued","next_due_in","status"): assert k in s["scheduled"][0], k
assert lines[-1]=={"id":1,"ok":True,"end":True}, lines[-1]
' "$work/w2.out"
"$K" -j trace-smtp-client >"$work/tr.out" 2>&1 &
tpid=$!
sleep 0.5
kill -INT "$tpid"
for _ in $(seq 50); do kill -0 "$tpid" 2>/dev/null || break; sleep 0.1; done
wait "$tpid"
check_eq "trace stopped by Ctrl-C exits 0" "$?" 0
check "trace items" grep -q '"line":"EHLO mta1.example.test"' "$work/tr.out"
check "trace terminator last" bash -c "tail -n 1 '$work/tr.out' | grep -qx '{\"id\":1,\"ok\":true,\"end\":true}'"

# --- the client cap (ctl-echo allows 3) ---
"$K" -c 'watch --interval 1s' >/dev/null 2>&1 &
p1=$!
"$K" -c 'watch --interval 1s' >/dev/null 2>&1 &
p2=$!
"$K" -c 'watch --interval 1s' >/dev/null 2>&1 &
p3=$!
sleep 0.5
run cap "$K" -c metrics
check_eq "over the cap exit" "$rc" 2
check "over the cap message" grep -q 'refused the connection: too many control clients (at most 3)' "$work/cap.err"
kill -INT $p1 $p2 $p3
wait $p1 $p2 $p3
wait_for 5 "$K" -c metrics
check "a slot after they left" bash -c "\"$K\" -c metrics >/dev/null"

# --- environment errors (exit 2) ---
run ns "$K" -s "$work/nope.sock" -c metrics
check_eq "missing socket exit" "$rc" 2
check "missing socket names path" grep -q "no control socket at $work/nope.sock: is kumod running?" "$work/ns.err"
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$work/stale.sock"
run st "$K" -s "$work/stale.sock" -c metrics
check_eq "stale socket exit" "$rc" 2
check "stale socket message" grep -q "connection refused at $work/stale.sock" "$work/st.err"

# --- peer credentials: nobody is refused by SO_PEERCRED (socket mode 0666 here) ---
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
	setpriv --reuid=65534 --regid=65534 --clear-groups "$K" -c metrics >"$work/nobody.out" 2>"$work/nobody.err"
	check_eq "nobody exit" "$?" 2
	check "nobody refused by peer check" grep -q 'permission denied: uid 65534' "$work/nobody.err"
else
	echo "# (not root: peer credential check skipped)"
fi

stop_pid "$LAST_PID"
check "socket removed on stop" test ! -e "$sock"
check "server exited cleanly (no sanitizer report)" bash -c "! grep -Eq 'Sanitizer|runtime error' '$work/echo.out'"
finish
