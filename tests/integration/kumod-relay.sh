#!/usr/bin/env bash
# kumod-relay.sh: 10,000 messages injected by Postfix's smtp-source for three
# domains on two sites are each delivered exactly once (the sink's saved
# messages are the verdict), the JSON logs agree, the spool ends empty, and
# SIGTERM stops kumod cleanly within its bound.
. "$(dirname "$0")/kumod-common.sh"
[ -x "$SMTP_SOURCE" ] || { echo "SKIP: $SMTP_SOURCE missing (apt-get install postfix)"; exit 77; }
N=${N:-10000}
per=$((N / 4))

start_sink sink
KUMOD_PORT=$(free_port)
write_conf "$work/kumod.conf" "$KUMOD_PORT" "$SINK_PORT"
check "check-config accepts the test config" "$KUMOD" --check-config "$work/kumod.conf"
start_kumod "$work/kumod.conf"

# a.example.test and b.example.test share mx.example.test (one site); c.other.test is another.
t0=$(date +%s.%N)
"$SMTP_SOURCE" -d -s 6 -l 1000 -m $per -f s@src.test -t u@a.example.test -N 127.0.0.1:$KUMOD_PORT &
i1=$!
"$SMTP_SOURCE" -d -s 6 -l 1000 -m $per -f s@src.test -t u@b.example.test -N 127.0.0.1:$KUMOD_PORT &
i2=$!
"$SMTP_SOURCE" -d -s 8 -l 1000 -m $((N - 2 * per)) -f s@src.test -t u@c.other.test -N 127.0.0.1:$KUMOD_PORT &
i3=$!
wait $i1 $i2 $i3
t1=$(date +%s.%N)
have() { [ "$(find "$work/sink.d" -type f | wc -l)" -ge "$N" ]; }
check "all $N messages reach the sink within 120 s" wait_until 120 have
t2=$(date +%s.%N)
echo "# injected in $(echo "$t1 - $t0" | bc) s, delivered in $(echo "$t2 - $t0" | bc) s"
sleep 0.5
saved_rcpts sink | sort >"$work/rcpts"
check_eq "messages saved by the sink" "$(wc -l <"$work/rcpts")" "$N"
check_eq "distinct recipients (exactly once)" "$(sort -u "$work/rcpts" | wc -l)" "$N"
check_eq "duplicates" "$(uniq -d "$work/rcpts" | wc -l)" 0
check_eq "a.example.test" "$(grep -c '@a.example.test$' "$work/rcpts")" "$per"
check_eq "c.other.test" "$(grep -c '@c.other.test$' "$work/rcpts")" "$((N - 2 * per))"
all_logged() { [ "$(jlog_count Delivery)" = "$N" ]; }
wait_until 5 all_logged
check_eq "Reception records" "$(jlog_count Reception)" "$N"
check_eq "Delivery records" "$(jlog_count Delivery)" "$N"
check_eq "sites in Delivery records" \
	"$(cat "$work"/logs/*.jsonl | jq -r 'select(.type=="Delivery") | .site' | sort -u | tr '\n' ' ')" \
	"mx.example.test mx.other.test "
check_eq "ready queue source" \
	"$(cat "$work"/logs/*.jsonl | jq -r 'select(.type=="Delivery") | .egress_source' | sort -u)" "unspecified"
check_eq "Delivery fields" \
	"$(cat "$work"/logs/*.jsonl | jq -r 'select(.type=="Delivery") | [.response.code, .response.enhanced_code, (.size > 1000), .num_attempts, .queue] | @tsv' | sort -u | head -1)" \
	"$(printf '250\t2.0.0\ttrue\t1\ta.example.test')"
check "spool is empty" wait_until 10 spool_empty
sink_stats sink "$SINK_PID"
check "connections were reused (fewer than 100 for $N messages)" \
	test "$(jq .connections.total "$work/sink.json")" -lt 100
check "peak concurrent connections within 2 x connection_limit 8" \
	test "$(jq .connections.peak_concurrent "$work/sink.json")" -le 16
kill -TERM "$KUMOD_PID"
check "kumod exits within 10 s of SIGTERM" wait_until 10 sh -c "! kill -0 $KUMOD_PID"
wait "$KUMOD_PID"
check_eq "kumod exit status" "$?" 0
check "pidfile removed" test ! -e "$work/kumod.pid"
finish
