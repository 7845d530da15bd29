# kumod-common.sh: sourced by the kumod-*.sh integration scripts. Starts
# real processes on 127.0.0.1 (smtp-sink, kumod), with bounded waits, and
# cleans up whatever it started. Each script calls check() per assertion
# and ends with finish, which prints "N passed, N failed".
set -u

here=$(cd "$(dirname "$0")" && pwd)
if [ -x "$PWD/daemon/kumod" ]; then top=$PWD; else top=$(cd "$here/../.." && pwd); fi
KUMOD=${KUMOD:-$top/daemon/kumod}
SINK=${SINK:-$top/smtp-sink/smtp-sink}
SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
work=$(mktemp -d /tmp/kumod-test.XXXXXX)
passed=0
failed=0
pids=()

for bin in "$KUMOD" "$SINK"; do
	[ -x "$bin" ] || { echo "SKIP: $bin not built"; exit 77; }
done

check() {
	local what=$1
	shift
	if "$@"; then
		passed=$((passed + 1))
		echo "ok - $what"
	else
		failed=$((failed + 1))
		echo "not ok - $what"
	fi
}

# check_eq WHAT GOT WANT
check_eq() {
	if [ "$2" = "$3" ]; then
		passed=$((passed + 1))
		echo "ok - $1 ($2)"
	else
		failed=$((failed + 1))
		echo "not ok - $1: got '$2', want '$3'"
	fi
}

cleanup() {
	local rc=${1:-0} p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	done
	if [ "${KEEP:-0}" = 1 ] || [ "$failed" -gt 0 ]; then
		echo "# work directory kept: $work"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap 'cleanup $?' EXIT
trap 'cleanup 130' INT
trap 'cleanup 143' TERM

finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" -eq 0 ]
	exit $?
}

# wait_until SECONDS COMMAND...: poll every 0.1 s; status 1 on timeout.
wait_until() {
	local limit=$(($1 * 10)) i=0
	shift
	while ! "$@" 2>/dev/null; do
		i=$((i + 1))
		[ $i -ge $limit ] && return 1
		sleep 0.1
	done
	return 0
}

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The helpers tests/lab/mkzone.sh expects (lib.sh has them for the other
# suites), on this file's process list.
start_bg() { # NAME CMD...: run in the background, output in $work/NAME.out; sets LAST_PID
	local name=$1
	shift
	"$@" >"$work/$name.out" 2>&1 &
	LAST_PID=$!
	pids+=("$LAST_PID")
}
stop_pid() {
	kill "$1" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$1" 2>/dev/null
	return 0
}
quiet() { "$@" >/dev/null 2>&1; }
wait_for() { # SECONDS CMD...
	local limit=$1
	shift
	wait_until "$limit" quiet "$@"
}

# start_sink NAME [smtp-sink options]: sets SINK_PORT and SINK_PID; saves to $work/NAME.d
start_sink() {
	local name=$1
	shift
	rm -f "$work/$name.port"
	mkdir -p "$work/$name.d"
	"$SINK" --listen 127.0.0.1:0 --port-file "$work/$name.port" --save-dir "$work/$name.d" \
		--stats-json "$work/$name.json" --hostname "$name.test" "$@" >"$work/$name.out" 2>&1 &
	SINK_PID=$!
	pids+=("$SINK_PID")
	wait_until 10 test -s "$work/$name.port" || { echo "smtp-sink did not start"; cat "$work/$name.out"; return 1; }
	SINK_PORT=$(head -1 "$work/$name.port")
}

# sink_stats NAME: ask the sink to write its stats now (SIGUSR1) and wait for them.
sink_stats() {
	local pid=$2
	rm -f "$work/$1.json"
	kill -USR1 "$pid"
	wait_until 5 test -s "$work/$1.json"
}

# saved_rcpts NAME: the recipients of every message the sink saved, one per line.
saved_rcpts() {
	find "$work/$1.d" -type f -print0 | xargs -0 -r grep -h '^X-Sink-Rcpt-To:' |
		sed -e 's/^X-Sink-Rcpt-To: *//' -e 's/^<\([^>]*\)>.*$/\1/' -e 's/[[:space:]]*$//'
}

# write_conf FILE KUMOD_PORT SINK_PORT [extra shaping.default keys] [extra top-level text]
write_conf() {
	cat >"$1" <<EOF
listen = ( { address = "127.0.0.1:$2"; relay_hosts = [ "127.0.0.0/8" ]; max_message_size = 1000000; } );
spool_dir = "$work/spool";
log_dir = "$work/logs";
pidfile = "$work/kumod.pid";
hostname = "kumod.test";
shutdown_timeout = 5;
dns = { local_data = [ "a.example.test. MX 10 mx.example.test.",
                       "b.example.test. MX 10 mx.example.test.",
                       "c.other.test. MX 10 mx.other.test.",
                       "mx.example.test. A 127.0.0.1",
                       "mx.other.test. A 127.0.0.1" ]; };
shaping = {
  default = { smtp_port = $3; prohibited_hosts = [ ]; enable_tls = "Disabled";
              connection_limit = 8; ${4:-} };
};
${5:-}
EOF
}

# start_kumod CONF: sets KUMOD_PID, waits until its listener accepts.
start_kumod() {
	"$KUMOD" -f -c "$1" ${KUMOD_ARGS:-} >>"$work/kumod.out" 2>&1 &
	KUMOD_PID=$!
	pids+=("$KUMOD_PID")
	wait_until 10 port_open "$KUMOD_PORT" || { echo "kumod did not start"; cat "$work/kumod.out"; return 1; }
}

spool_empty() { [ -z "$(ls -A "$work/spool")" ]; }

# jlog_count TYPE: records of that type in kumod's logs.
jlog_count() {
	cat "$work"/logs/*.jsonl 2>/dev/null | jq -r .type | grep -cx "$1"
}
