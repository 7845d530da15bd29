# sink-common.sh: sourced by the sink-*.sh integration scripts (not a test
# itself). Starts smtp-sink on 127.0.0.1 with a port file, talks to it with a
# scripted send/expect client, and reads its --stats-json. Builds on lib.sh
# (pass/fail counters, bounded waits, cleanup traps, `N passed, N failed`).
set -u
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

if [ -x "$PWD/smtp-sink/smtp-sink" ]; then
	SINK=${SINK:-$PWD/smtp-sink/smtp-sink}
else
	SINK=${SINK:-$top_builddir/smtp-sink/smtp-sink}
fi
[ -x "$SINK" ] || skip_all "$SINK not built"
PY=/usr/bin/python3 # directly: a pyenv shim costs ~1 s per start here
[ -x "$PY" ] || PY=$(command -v python3) || skip_all "python3 missing"
# Set T_WORK here, not in a subshell, so lib.sh's cleanup sees it; our own
# prefix keeps other suites' sweeps of kumo-test.* away from it.
T_WORK=$(mktemp -d "${TMPDIR:-/tmp}/smtp-sink-test.XXXXXX")
work=$T_WORK

# start_sink NAME [options]: sets SINK_PID, SINK_PORT (first listener),
# SINK_STATS (its --stats-json file); output in $work/NAME.out.
start_sink() {
	local name=$1
	shift
	rm -f "$work/$name.port" "$work/$name.json"
	start_bg "$name" "$SINK" --port-file "$work/$name.port" --stats-json "$work/$name.json" \
		--hostname sink.test "$@"
	SINK_PID=$LAST_PID
	SINK_STATS=$work/$name.json
	if ! wait_file "$work/$name.port" 10; then
		cat "$work/$name.out"
		return 1
	fi
	SINK_PORT=$(head -1 "$work/$name.port")
}

# stop_sink: SIGTERM the current sink (it writes its stats and exits 0).
stop_sink() {
	stop_pid "$SINK_PID" TERM
}

# stats EXPR: evaluate a Python expression over the stats JSON as `d`,
# after asking the running sink for a fresh copy (SIGUSR1) if it is alive.
stats() {
	if kill -0 "$SINK_PID" 2>/dev/null; then
		local before=""
		[ -f "$SINK_STATS" ] && before=$(stat -c %Y.%s "$SINK_STATS" 2>/dev/null)
		rm -f "$SINK_STATS"
		kill -USR1 "$SINK_PID"
		wait_file "$SINK_STATS" 5 >/dev/null 2>&1 || true
	fi
	timeout 10 "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
		"$SINK_STATS" "$1" 2>&1
}

# chat [-p PORT] [-6] STEP...: a scripted SMTP client. Each STEP is
# "N|TEXT": send TEXT (\r \n \t escapes, "" sends nothing), then read until
# N complete replies have arrived. "eof" waits for the server to close.
# "sleep:SECS" pauses. Prints each reply line as "[seconds] line", "<EOF>"
# when the server closed, "<TIMEOUT>" after $CHAT_TIMEOUT (8) s without the
# expected reply.
chat() {
	local port=$SINK_PORT host=127.0.0.1
	while [ $# -gt 0 ]; do
		case $1 in
		-p) port=$2; shift 2 ;;
		-6) host=::1; shift ;;
		*) break ;;
		esac
	done
	CHAT_TIMEOUT=${CHAT_TIMEOUT:-8} timeout 30 "$PY" - "$host" "$port" "$@" <<'EOF'
import os, socket, sys, time
host, port, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(float(os.environ["CHAT_TIMEOUT"]))
t0 = time.time()
s.connect((host, port))
buf = b""
eof = False
def out(x):
    sys.stdout.write(x + "\n"); sys.stdout.flush()
def read_replies(n):
    global buf, eof
    got = 0
    while got < n:
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode("latin-1")
            out("[%.2f] %s" % (time.time() - t0, line))
            if len(line) < 4 or line[3] != "-":
                got += 1
                if got >= n:
                    return True
        if eof:
            return False
        try:
            d = s.recv(65536)
        except socket.timeout:
            out("<TIMEOUT>"); return False
        except OSError:
            d = b""
        if not d:
            eof = True; out("<EOF>")
        buf += d
    return True
# Read the banner first: step "0|" skips nothing, so scripts start with "1|".
for st in steps:
    if st == "eof":
        while not eof:
            try:
                d = s.recv(65536)
            except socket.timeout:
                out("<TIMEOUT>"); break
            except OSError:
                d = b""
            if not d:
                eof = True; out("<EOF>")
            else:
                buf += d
                for line in d.decode("latin-1").splitlines():
                    out("[%.2f] %s" % (time.time() - t0, line))
        continue
    if st.startswith("sleep:"):
        time.sleep(float(st[6:])); continue
    n, _, text = st.partition("|")
    data = text.encode("latin-1").decode("unicode_escape").encode("latin-1")
    if data:
        try:
            s.sendall(data)
        except OSError:
            out("<SENDFAIL>")
    if not read_replies(int(n)):
        break
s.close()
EOF
}

# has LINE-REGEX TEXT: does TEXT contain a line matching the regex?
has() {
	grep -Eq -- "$1" <<<"$2"
}

# hasnt LINE-REGEX TEXT: no line of TEXT matches.
hasnt() {
	! grep -Eq -- "$1" <<<"$2"
}
