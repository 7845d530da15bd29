#!/usr/bin/env bash
# examples/lab-demo.sh: the lab demo (./quickstart.sh with no argument runs
# it). Starts smtp-sink and kumod on 127.0.0.1 with examples/lab.conf, injects
# a few thousand messages for three domains on two sites with `kumoctl
# inject` over kumod's control socket (the messages enter the same path as
# SMTP reception: spooled before they count), shows progress, then prints a
# summary from the sink's statistics, kumod's JSON logs and `kumoctl
# queue-summary`. Everything it starts is stopped and its work directory
# removed; the whole run is bounded (about two minutes at most).
#
#   examples/lab-demo.sh [MESSAGES]      default 3000 (a third per domain)
set -u
cd "$(dirname "$0")/.."
top=$PWD
N=${1:-3000}
KUMOD=$top/daemon/kumod
SINK=$top/smtp-sink/smtp-sink
KUMOCTL=${KUMOCTL:-$top/kumoctl/kumoctl}
LIMIT=120

say() { printf '==> %s\n' "$*"; }
die() { printf 'lab-demo: %s\n' "$*" >&2; exit 2; }
[ -x "$KUMOD" ] || die "daemon/kumod is not built (run ./quickstart.sh build)"
[ -x "$SINK" ] || die "smtp-sink/smtp-sink is not built (run ./quickstart.sh build)"
[ -x "$KUMOCTL" ] || die "kumoctl/kumoctl is not built (run ./quickstart.sh build)"
command -v jq >/dev/null || die "jq is missing (apt-get install jq)"
case $N in '' | *[!0-9]*) die "MESSAGES must be a number, not \"$N\"" ;; esac
[ "$N" -ge 3 ] || die "MESSAGES must be at least 3 (one per domain)"

work=$(mktemp -d /tmp/kumo-lab.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# 1. The sink: the lab's "internet".
say "starting smtp-sink on 127.0.0.1 (stats: $work/sink.json)"
"$SINK" --listen 127.0.0.1:0 --port-file "$work/sink.port" --stats-json "$work/sink.json" \
	--hostname mx.lab.test >"$work/sink.out" 2>&1 &
sink_pid=$!
pids+=("$sink_pid")
for _ in $(seq 100); do [ -s "$work/sink.port" ] && break; sleep 0.1; done
[ -s "$work/sink.port" ] || die "smtp-sink did not start: $(cat "$work/sink.out")"
sink_port=$(head -1 "$work/sink.port")

# 2. kumod with examples/lab.conf, ports and directories made private to this run.
kumod_port=$(free_port)
sed -e "s|127.0.0.1:2525|127.0.0.1:$kumod_port|" -e "s|smtp_port = 2526|smtp_port = $sink_port|" \
	-e "s|/tmp/kumo-lab|$work|g" examples/lab.conf >"$work/kumod.conf"
"$KUMOD" --check-config "$work/kumod.conf" >/dev/null || die "lab.conf does not check"
say "starting kumod on 127.0.0.1:$kumod_port (delivering to the sink on port $sink_port)"
"$KUMOD" -f -c "$work/kumod.conf" >"$work/kumod.out" 2>&1 &
kumod_pid=$!
pids+=("$kumod_pid")
for _ in $(seq 100); do port_open "$kumod_port" && break; sleep 0.1; done
port_open "$kumod_port" || die "kumod did not start: $(cat "$work/kumod.out")"
ctl=$work/control.sock
for _ in $(seq 50); do [ -S "$ctl" ] && break; sleep 0.1; done
[ -S "$ctl" ] || die "kumod's control socket $ctl did not appear"

# 3. Injection through the control socket: three domains (alpha.test and
# beta.test share a site), one `kumoctl inject` each, running side by side.
domains=(alpha.test beta.test gamma.test)
per=$((N / 3))
conc=16
say "injecting $((per * 3)) messages of 2 KB for ${domains[*]} with kumoctl inject" \
	"(3 requests, $conc spooled at once each)"
echo "    $(basename "$KUMOCTL") -s $ctl inject --to 'user{n}@alpha.test' --from demo@lab.test" \
	"--count $per --size 2048 --concurrency $conc"
t0=$(date +%s.%N)
inj=()
for d in "${domains[@]}"; do
	"$KUMOCTL" -s "$ctl" --json inject --to "user{n}@$d" --from demo@lab.test --count "$per" \
		--size 2048 --concurrency "$conc" >"$work/inject-$d.json" 2>"$work/inject-$d.err" &
	inj+=($!)
	pids+=($!)
done

count() { cat "$work"/logs/*.jsonl 2>/dev/null | grep -c "\"type\":\"$1\""; }
# progress from kumod's live counters (its JSON logs are written in batches)
counters() {
	timeout 5 "$KUMOCTL" -s "$ctl" metrics 2>/dev/null |
		awk '$1 == "kumo_received_total" {r = $2} $1 == "kumo_delivered_total" {d = $2}
			END {print r + 0, d + 0}'
}
total=$((per * 3))
deadline=$(($(date +%s) + LIMIT))
tty=0
[ -t 1 ] && tty=1
tick=0
while :; do
	read -r r d < <(counters)
	if [ $tty = 1 ]; then
		printf '\r    received %6d / %d   delivered %6d   ' "$r" "$total" "$d"
	elif [ $((tick % 4)) = 0 ] || [ "$d" -ge "$total" ]; then
		printf '    received %6d / %d   delivered %6d\n' "$r" "$total" "$d"
	fi
	tick=$((tick + 1))
	[ "$d" -ge "$total" ] && break
	if [ "$(date +%s)" -ge $deadline ]; then
		printf '\n'
		say "time limit ($LIMIT s) reached; summarising what was done"
		break
	fi
	sleep 0.5
done
t1=$(date +%s.%N)
[ $tty = 1 ] && printf '\n'
# the injections are over once every message was received; bounded all the same
for p in "${inj[@]}"; do
	for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -INT "$p" 2>/dev/null # kumoctl cancels its injection on SIGINT
done
wait "${inj[@]}" 2>/dev/null

# 4. kumoctl's view, stop kumod (its connections quit), then the summary: the
# sink's view first (the verdict), then kumod's logs.
left=$(ls "$work/spool" | wc -l)
say "kumoctl -s $ctl queue-summary"
timeout 10 "$KUMOCTL" -s "$ctl" queue-summary | sed 's/^/  /'
kill -TERM "$kumod_pid"
for _ in $(seq 100); do kill -0 "$kumod_pid" 2>/dev/null || break; sleep 0.1; done
kill -USR1 "$sink_pid"
for _ in $(seq 50); do [ -s "$work/sink.json" ] && break; sleep 0.1; done
sleep 0.3
secs=$(echo "$t1 - $t0" | bc)
say "summary ($(printf '%.1f' "$secs") s from first injection to last delivery)"
if [ -s "$work/sink.json" ]; then
	jq -r '"  sink: \(.messages) messages, \(.recipients) recipients, \(.bytes) bytes over \(.connections.total) connections (peak \(.connections.peak_concurrent) at once)",
		"  sink: closed connections by messages carried: \([.messages_per_connection | to_entries[] | "\(.value) with \(.key)"] | join(", "))",
		"  sink: EHLO names: \([.by_ehlo | to_entries[] | "\(.key)=\(.value.messages)"] | join(" "))",
		"  sink: client addresses (egress sources): \([.by_client | to_entries[] | "\(.key)=\(.value.messages)"] | join(" "))",
		"  sink: TLS: \([.tls.versions | to_entries[] | "\(.key)=\(.value)"] | join(" "))"' \
		"$work/sink.json"
fi
for d in "${domains[@]}"; do
	if [ -s "$work/inject-$d.json" ] && jq -e .result "$work/inject-$d.json" >/dev/null 2>&1; then
		jq -r --arg d "$d" '.result | "  kumoctl inject \($d): \(.injected) spooled, \(.failed) failed in \(.seconds * 10 | round / 10) s, up to \(.max_in_flight) in flight"' \
			"$work/inject-$d.json"
	else
		echo "  kumoctl inject $d: $(cat "$work/inject-$d.err" "$work/inject-$d.json" 2>/dev/null | head -3)"
	fi
done
echo "  kumod: rate $(echo "scale=0; $(count Delivery) / $secs" | bc) deliveries/s"
cat "$work"/logs/*.jsonl | jq -r '.type' | sort | uniq -c | sed 's/^/  kumod log: /'
cat "$work"/logs/*.jsonl | jq -r 'select(.type=="Delivery") | "\(.egress_source)->\(.site)"' |
	sort | uniq -c | sed 's/^/  ready queue: /'
cat "$work"/logs/*.jsonl | jq -r 'select(.type=="Delivery") | .queue' | sort | uniq -c |
	sed 's/^/  scheduled queue: /'
echo "  one Delivery record:"
cat "$work"/logs/*.jsonl | jq -c 'select(.type=="Delivery")' | head -1 | sed 's/^/    /'
echo "  spool files left: $left"
grep -h "shutdown complete" "$work/kumod.out" | sed 's/^.*notice: /  kumod: /'
[ "$(count Delivery)" -ge "$total" ] && [ "$left" -eq 0 ]
