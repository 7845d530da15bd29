# sink-load.sh: Postfix smtp-source drives smtp-sink with thousands of
# messages, with and without pipelining; the stats file must agree with what
# the client sent (messages, recipients, bytes, connections, peak
# concurrency, messages per connection).
. "$(cd "$(dirname "$0")" && pwd)/sink-common.sh"

SRC=${SMTP_SOURCE:-/usr/sbin/smtp-source}
[ -x "$SRC" ] || skip_all "$SRC missing (apt-get install postfix)"

# 3000 messages, one per connection, 20 at a time, pipelined.
start_sink load1 --listen 127.0.0.1:0 -c || exit 1
timeout 60 "$SRC" -M client.test -s 20 -m 3000 -l 2048 "127.0.0.1:$SINK_PORT"
check_eq "smtp-source exit status" "$?" 0
check_eq "stats: messages" "$(stats 'd["messages"]')" 3000
check_eq "stats: connections" "$(stats 'd["connections"]["total"]')" 3000
peak=$(stats 'd["connections"]["peak_concurrent"]')
check "stats: peak concurrency within the client's 20 ($peak)" test "$peak" -ge 2 -a "$peak" -le 20
check_eq "stats: messages per connection" "$(stats 'd["messages_per_connection"]')" "{'1': 3000}"
check_eq "stats: per EHLO name" "$(stats 'd["by_ehlo"]["client.test"]["messages"]')" 3000
check "stats: bytes at least the payload" test "$(stats 'd["bytes"]')" -ge $((3000 * 2048))
check_eq "stats: per-second arrivals add up" "$(stats 'sum(d["per_second"]["messages"])')" 3000
check_eq "stats: 221 per connection" "$(stats 'd["replies"]["221"]')" 3000
stop_sink
check "-c: counter line printed" grep -q 'messages 3000' "$work/load1.out"

# Without PIPELINING, 5 connections that each send many messages, 3 recipients each.
start_sink load2 --listen 127.0.0.1:0 --disable PIPELINING || exit 1
timeout 60 "$SRC" -M client.test -d -s 5 -m 2000 -r 3 -l 512 "127.0.0.1:$SINK_PORT"
check_eq "smtp-source -d exit status" "$?" 0
check_eq "no pipelining: messages" "$(stats 'd["messages"]')" 2000
check_eq "no pipelining: recipients" "$(stats 'd["recipients"]')" 6000
check_eq "no pipelining: 5 connections" "$(stats 'd["connections"]["total"]')" 5
check_eq "messages-per-connection histogram sums to the messages" \
	"$(stats 'sum(int(k) * v for k, v in d["messages_per_connection"].items())')" 2000
check_eq "histogram counts the 5 connections" "$(stats 'sum(d["messages_per_connection"].values())')" 5
stop_sink

# --max-clients 4 against 16 parallel sessions: the cap holds, nothing is lost.
start_sink cap --listen 127.0.0.1:0 --max-clients 4 || exit 1
timeout 60 "$SRC" -M client.test -s 16 -m 400 -l 1024 "127.0.0.1:$SINK_PORT"
check_eq "capped: smtp-source exit status" "$?" 0
check_eq "capped: messages" "$(stats 'd["messages"]')" 400
check_eq "capped: peak concurrency is the cap" "$(stats 'd["connections"]["peak_concurrent"]')" 4
check_eq "capped: per client peak too" "$(stats 'd["by_client"]["127.0.0.1"]["peak_concurrent"]')" 4
stop_sink

# 100 KB messages, and LMTP.
start_sink big --listen 127.0.0.1:0 || exit 1
timeout 60 "$SRC" -M client.test -s 10 -m 300 -l 102400 "127.0.0.1:$SINK_PORT"
check_eq "100 KB messages: all received" "$(stats 'd["messages"]')" 300
check "100 KB messages: bytes" test "$(stats 'd["bytes"]')" -ge $((300 * 102400))
kill -TERM "$SINK_PID"
wait_for 10 bash -c "! kill -0 $SINK_PID 2>/dev/null"
check "SIGTERM: the sink exits" bash -c "! kill -0 $SINK_PID 2>/dev/null"
wait "$SINK_PID"
check_eq "SIGTERM: clean exit status" "$?" 0
check_eq "SIGTERM: stats written at exit" "$(stats 'd["messages"]')" 300

start_sink lmtp --listen 127.0.0.1:0 --lmtp || exit 1
timeout 60 "$SRC" -M client.test -L -s 4 -m 200 -r 2 "127.0.0.1:$SINK_PORT"
check_eq "LMTP: smtp-source -L exit status" "$?" 0
check_eq "LMTP: messages" "$(stats 'd["messages"]')" 200
check_eq "LMTP: 250s = 200 x (LHLO, MAIL, 2 RCPT, 2 per-recipient final replies)" "$(stats 'd["replies"]["250"]')" 1200
stop_sink

finish
