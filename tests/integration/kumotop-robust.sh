#!/bin/bash
# kumotop-robust.sh: kumotop against a hostile stand-in control server (a
# python script on a Unix socket) whose watch snapshots have wrong member
# types, missing members, huge numbers and control characters in names; and
# against servers that refuse the watch, speak another protocol version or
# send a line that is not JSON. kumotop must print sane text (no control
# bytes from the peer reach the terminal), never crash, and exit 0/1/2 as
# documented. The screen mode is run on the same data under tmux.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/integration/lib.sh"

KT=$top_builddir/kumotop/kumotop
[ -x "$KT" ] || skip_all "kumotop not built"
command -v python3 >/dev/null || skip_all "python3 not installed"

mkwork >/dev/null # not in a subshell: lib.sh must see T_WORK to clean it up
work=$T_WORK

cat >"$work/fake.py" <<'EOF'
# fake.py SOCKET MODE: one kumo-control hello, then answers the watch per MODE.
import json, os, socket, sys, time
path, mode = sys.argv[1], sys.argv[2]
weird = [
    # plain ASCII: kumotop's fast path takes it (unknown members of every kind skipped)
    {"time": 1700000000, "extra": {"a": [1, True, None, {"b": "c"}], "e": -1.5e-3},
     "uptime": 90061, "totals": {"received": 5, "future": "x"}, "rates": {"received": 2},
     "ready": [{"name": "fast->mx.fast.test", "delivered": 12.7, "rate": 3, "status": "active",
                "future": [1, [2, {}]], "tls": "required"}], "scheduled": []},
    {"totals": "x", "rates": [1], "ready": {"a": 1}, "scheduled": 5},
    [1, 2],
    "a string",
    None,
    {"time": "now", "uptime": -7, "totals": {"received": 1.5e300, "memory": -1},
     "rates": {"received": "fast", "delivered": 1e308},
     "ready": [1, None, [], {"name": 5, "delivered": "10", "rate": "x"},
               {"name": "evil\u001b[2J\u0007name\n", "status": "throttled", "next_permit_in": 1e300,
                "delivered": -5, "queued": 9223372036854775807, "tls": "\u0001x",
                "consecutive_failures": -9223372036854775807},
               {"name": "x" * 5000, "status": "delayed", "consecutive_failures": 1},
               {"name": "ok->mx.ok.test", "status": "active", "delivered": 42, "rate": 1.25}],
     "scheduled": [None, {"name": "s\u001b]0;pwned\u0007", "next_due_in": -3, "queued": "9"},
                   {"name": "ok.test", "queued": 3, "next_due_in": 999999999999, "status": "bouncing"}]},
]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path + ".tmp")
os.rename(path + ".tmp", path)
srv.listen(8)
while True:
    c, _ = srv.accept()
    f = c.makefile("rwb", buffering=0)
    def send(o):
        f.write(json.dumps(o).encode() + b"\n")
    try:
        if mode == "proto2":
            send({"hello": "kumo-control", "protocol": 2, "server": "future"})
            c.close(); continue
        send({"hello": "kumo-control", "protocol": 1, "server": "fake\u001b[31m 1", "pid": "x"})
        req = json.loads(f.readline())
        rid = req.get("id")
        if mode == "refuse":
            send({"id": rid, "ok": False, "error": "unknown command \"watch\""})
        elif mode == "badline":
            send({"id": rid, "stream": weird[0]})
            f.write(b"this is not json\n")
        else:
            for k in range(200):
                for w in weird:
                    send({"id": rid, "stream": w})
                time.sleep(0.5)
    except (BrokenPipeError, ConnectionResetError, ValueError):
        pass
    c.close()
EOF

# fake MODE: start the fake server on a fresh socket; sets $sock
fake() {
	sock=$work/$1.sock
	start_bg "fake-$1" python3 "$work/fake.py" "$sock" "$1"
	wait_for 10 test -S "$sock" || fail "fake server $1 did not start"
}

# run NAME CMD...: stdout to $work/NAME.out, stderr to $work/NAME.err, status in $rc
run() {
	local name=$1
	shift
	"$@" >"$work/$name.out" 2>"$work/$name.err"
	rc=$?
}

fake weird
run weird timeout 20 "$KT" -s "$sock" --batch -n 6
check_eq "weird snapshots: exit 0" "$rc" 0
check_eq "weird snapshots: six printed" "$(grep -c '^kumotop - fake' "$work/weird.out")" 6
check "fast path: unknown members skipped" grep -Eq '^fast->mx.fast.test +12 +0 +0 +0 +3.0 active +required$' "$work/weird.out"
check "fast path: header" grep -q '^kumotop - fake?\[31m 1 - 2023-11-14 22:13:20 UTC - up 1d1h$' "$work/weird.out"
check "no escape or bell bytes from the peer" bash -c "! grep -q \$'[\\x01-\\x08\\x0b-\\x1f\\x7f]' '$work/weird.out'"
check "control bytes shown as ?" grep -q '^evil?\[2J?name? ' "$work/weird.out"
check "server name sanitised" grep -q '^kumotop - fake?\[31m 1 - ' "$work/weird.out"
check "good row among bad ones" grep -Eq '^ok->mx.ok.test +42 +0 +0 +0 +1.2 active' "$work/weird.out"
check "numbers given as strings read as 0" grep -Eq '^ +0 +0 +0 +0 +0.0$' "$work/weird.out"
check "long names cut to 120 with ~" grep -Eq '^x{119}~ ' "$work/weird.out"
check "huge next_permit_in capped" grep -Eq ' throttled >999d ' "$work/weird.out"
check "huge rate capped" grep -Eq '^Rates/s: received 0.0  delivered 1000000000000.0  transient' "$work/weird.out"
check "scheduled bouncing row" grep -Eq '^ok.test +3 +>999d bouncing$' "$work/weird.out"
check "no sanitizer report" bash -c "! grep -q 'runtime error\\|AddressSanitizer\\|LeakSanitizer' '$work/weird.err'"

fake refuse
run refuse "$KT" -s "$sock" --batch -n 1
check_eq "watch refused: exit 1" "$rc" 1
check "watch refused: message" grep -q '^kumotop: watch: unknown command "watch"$' "$work/refuse.err"

fake proto2
run proto2 "$KT" -s "$sock" --batch -n 1
check_eq "other protocol: exit 2" "$rc" 2
check "other protocol: message" grep -q 'speaks control protocol 2, this client 1' "$work/proto2.err"

fake badline
run badline "$KT" -s "$sock" --batch -n 3
check_eq "non-JSON line: exit 2" "$rc" 2
check "non-JSON line: message" grep -q 'bad reply line' "$work/badline.err"
check "non-JSON line: the good snapshot before it printed" grep -q '^kumotop - fake' "$work/badline.out"

# The screen on the same data: kumotop keeps drawing and quits cleanly.
if command -v tmux >/dev/null; then
	sock=$work/weird.sock
	TM=kumo-kumotop-robust-$$
	trap 'rc=$?; tmux -L "$TM" kill-server 2>/dev/null; reap_orphans "$KT"; t_cleanup $rc' EXIT
	tmux -L "$TM" -f /dev/null new-session -d -x 100 -y 30 \
		"$KT -s $sock 2>$work/screen.err; echo KUMOTOP-ENDED rc=\$?; sleep 30"
	screen() { tmux -L "$TM" capture-pane -p; }
	check "screen: good row drawn" wait_for 10 bash -c "tmux -L '$TM' capture-pane -p | grep -q '^ok->mx.ok.test'"
	tmux -L "$TM" send-keys G Enter s s Tab Enter '?' x
	sleep 1.5
	tmux -L "$TM" send-keys Tab / e v i l Enter Enter
	sleep 1.5
	check "screen: filter on a sanitised name" bash -c "tmux -L '$TM' capture-pane -p | grep -q 'Ready queues 1/'"
	tmux -L "$TM" send-keys q
	check "screen: quits with 0" wait_for 10 bash -c "tmux -L '$TM' capture-pane -p | grep -q '^KUMOTOP-ENDED rc=0'"
	check "screen: no sanitizer report" bash -c "! grep -q 'runtime error\\|AddressSanitizer\\|LeakSanitizer' '$work/screen.err'"
	tmux -L "$TM" kill-server 2>/dev/null
	reap_orphans "$KT"
fi

finish
