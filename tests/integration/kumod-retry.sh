#!/usr/bin/env bash
# kumod-retry.sh: per-recipient dispositions seen from both sides.
#  - the sink answers 451 to RCPT for a while, then accepts: every message is
#    retried (TransientFailure records) and then delivered exactly once;
#  - 550 at RCPT gives Bounce records and nothing delivered;
#  - a short max_age against a sink that keeps answering 451 gives
#    Expiration records (551 5.4.7), and the spool ends empty each time;
#  - an unroutable MX (NXDOMAIN) bounces, a null MX bounces 556 5.1.10.
. "$(dirname "$0")/kumod-common.sh"
N=${N:-200}
KUMOD_PORT=$(free_port)
cnt() { cat "$work"/logs/*.jsonl 2>/dev/null | jq -r "$1" | grep -cx "$2"; }

# --- 451 for a while, then accept ---
start_sink sink --reply 'RCPT=451 4.7.1 Greylisted, try later'
port=$SINK_PORT
write_conf "$work/kumod.conf" "$KUMOD_PORT" "$port" "" \
	'queues = { default = { retry_interval = 1; max_retry_interval = 2; }; };'
start_kumod "$work/kumod.conf"
: >"$work/acked"
/usr/bin/python3 "$here/kumod-inject.py" "$KUMOD_PORT" "$N" 4 "$work/acked" a.example.test c.other.test
check_eq "all injected" "$(wc -l <"$work/acked")" "$N"
tf() { [ "$(cnt .type TransientFailure)" -ge "$N" ]; }
check "every message gets a TransientFailure (451)" wait_until 20 tf
check_eq "TransientFailure code" "$(cat "$work"/logs/*.jsonl | jq -r 'select(.type=="TransientFailure") | "\(.response.code) \(.response.enhanced_code)"' | sort -u)" "451 4.7.1"
check_eq "nothing delivered during the 451s" "$(find "$work/sink.d" -type f | wc -l)" 0
kill "$SINK_PID"
wait "$SINK_PID" 2>/dev/null
"$SINK" --listen "127.0.0.1:$port" --save-dir "$work/sink.d" --hostname sink2.test >"$work/sink2.out" 2>&1 &
pids+=("$!")
all() { [ "$(find "$work/sink.d" -type f | wc -l)" -ge "$N" ]; }
check "then every message is delivered (30 s)" wait_until 30 all
sleep 0.5
check_eq "delivered exactly once" "$(saved_rcpts sink | sort -u | wc -l) $(saved_rcpts sink | wc -l)" "$N $N"
check_eq "acknowledged == delivered" "$(sort "$work/acked" | md5sum)" "$(saved_rcpts sink | sort | md5sum)"
check "Delivery records say attempt >= 2" test "$(cat "$work"/logs/*.jsonl | jq -r 'select(.type=="Delivery") | .num_attempts' | sort -n | head -1)" -ge 2
check "spool empty" wait_until 10 spool_empty
kill "$KUMOD_PID"
wait "$KUMOD_PID" 2>/dev/null

# --- 550 bounces ---
rm -rf "$work/logs" "$work/sink.d"
start_sink sink --reply 'RCPT=550 5.1.1 No such user'
write_conf "$work/kumod.conf" "$KUMOD_PORT" "$SINK_PORT"
start_kumod "$work/kumod.conf"
/usr/bin/python3 "$here/kumod-inject.py" "$KUMOD_PORT" 20 2 "$work/acked2" a.example.test
bounced() { [ "$(cnt .type Bounce)" -ge 20 ]; }
check "550 gives 20 Bounce records" wait_until 10 bounced
check_eq "Bounce code" "$(cat "$work"/logs/*.jsonl | jq -r 'select(.type=="Bounce") | "\(.response.code) \(.response.enhanced_code) \(.response.content)"' | sort -u)" "550 5.1.1 No such user"
check_eq "nothing delivered" "$(find "$work/sink.d" -type f | wc -l)" 0
check "spool empty after bounces" wait_until 10 spool_empty
kill "$KUMOD_PID"
wait "$KUMOD_PID" 2>/dev/null

# --- expiration: 451 forever, max_age 3 s ---
rm -rf "$work/logs"
start_sink sink --reply 'RCPT=451 4.3.0 Not now'
write_conf "$work/kumod.conf" "$KUMOD_PORT" "$SINK_PORT" "" \
	'queues = { default = { retry_interval = 1; max_age = 3; }; };'
start_kumod "$work/kumod.conf"
/usr/bin/python3 "$here/kumod-inject.py" "$KUMOD_PORT" 10 2 "$work/acked3" a.example.test
expired() { [ "$(cnt .type Expiration)" -ge 10 ]; }
check "max_age 3 s gives 10 Expiration records (15 s)" wait_until 15 expired
check_eq "Expiration code" "$(cat "$work"/logs/*.jsonl | jq -r 'select(.type=="Expiration") | "\(.response.code) \(.response.enhanced_code)"' | sort -u)" "551 5.4.7"
check "spool empty after expiry" wait_until 10 spool_empty
kill "$KUMOD_PID"
wait "$KUMOD_PID" 2>/dev/null

# --- DNS dispositions: NXDOMAIN and null MX bounce ---
rm -rf "$work/logs"
write_conf "$work/kumod.conf" "$KUMOD_PORT" "$SINK_PORT"
sed -i 's/"mx.other.test. A 127.0.0.1" \]/"mx.other.test. A 127.0.0.1", "nullmx.test. MX 0 ." ]; local_zones = [ "nosuch.test. static" ]/' "$work/kumod.conf"
start_kumod "$work/kumod.conf"
/usr/bin/python3 "$here/kumod-inject.py" "$KUMOD_PORT" 2 1 "$work/acked4" nullmx.test nosuch.test
dnsb() { [ "$(cnt .type Bounce)" -ge 2 ]; }
check "null MX and NXDOMAIN bounce" wait_until 10 dnsb
check_eq "null MX code" "$(cat "$work"/logs/*.jsonl | jq -r 'select(.type=="Bounce" and (.recipient|endswith("nullmx.test"))) | "\(.response.code) \(.response.enhanced_code)"')" "556 5.1.10"
check_eq "NXDOMAIN code" "$(cat "$work"/logs/*.jsonl | jq -r 'select(.type=="Bounce" and (.recipient|endswith("nosuch.test"))) | .response.code')" "550"
kill "$KUMOD_PID"
wait "$KUMOD_PID" 2>/dev/null

# --- connection failures: the next MX host is tried; all hosts down is transient ---
# Nothing listens on 127.0.0.3 at the sink's port: connecting there is refused.
rm -rf "$work/logs" "$work/sink.d"
mkdir -p "$work/sink.d"
kill "$SINK_PID" 2>/dev/null
start_sink sink
write_conf "$work/kumod.conf" "$KUMOD_PORT" "$SINK_PORT" "" \
	'queues = { default = { retry_interval = 60; }; };'
sed -i 's/"mx.other.test. A 127.0.0.1" \]/"mx.other.test. A 127.0.0.1", "failover.test. MX 10 dead.failover.test.", "failover.test. MX 20 live.failover.test.", "dead.failover.test. A 127.0.0.3", "live.failover.test. A 127.0.0.1", "down.test. MX 10 dead.failover.test." ]/' "$work/kumod.conf"
start_kumod "$work/kumod.conf"
/usr/bin/python3 "$here/kumod-inject.py" "$KUMOD_PORT" 4 1 "$work/acked5" failover.test down.test
fo() { saved_rcpts sink | grep -q '@failover.test$'; }
check "the second MX host delivers when the first refuses" wait_until 10 fo
check_eq "failover.test messages delivered" "$(saved_rcpts sink | grep -c '@failover.test$')" 2
# The sink saves a message before kumod has read its 250 and logged the Delivery.
fologged() { [ "$(cnt .type Delivery)" -ge 2 ]; }
check "both failover.test deliveries are logged" wait_until 10 fologged
check_eq "their peer is the live host" \
	"$(cat "$work"/logs/*.jsonl | jq -r 'select(.type=="Delivery") | .peer_address' | sort -u)" "127.0.0.1:$SINK_PORT"
down() { [ "$(cnt .type TransientFailure)" -ge 2 ]; }
check "every host down: TransientFailure for down.test" wait_until 10 down
check_eq "TransientFailure code for an unreachable site" \
	"$(cat "$work"/logs/*.jsonl | jq -r 'select(.type=="TransientFailure") | "\(.response.code) \(.response.enhanced_code) \(.recipient | split("@")[1])"' | sort -u)" \
	"451 4.4.1 down.test"
check "the failure text names the connect phase" \
	sh -c "cat '$work'/logs/*.jsonl | jq -r 'select(.type==\"TransientFailure\") | .response.content' | grep -q '^connect: '"
check_eq "down.test stays spooled for its retry" "$(ls "$work/spool" | wc -l)" 2
check "the spool files record one attempt and a due time ~60 s ahead" sh -c "
	now=\$(date +%s)
	for f in '$work'/spool/*; do
		grep -qx 'attempts 0000000001' \"\$f\" || exit 1
		due=\$(sed -n 's/^due 0*\\([0-9]*\\)\\..*/\\1/p' \"\$f\")
		[ \"\$due\" -gt \$((now + 40)) ] && [ \"\$due\" -le \$((now + 70)) ] || exit 1
	done"
# A restart keeps the backoff: nothing is retried before the recorded due time.
kill "$KUMOD_PID"
wait "$KUMOD_PID" 2>/dev/null
rm -rf "$work/logs"
start_kumod "$work/kumod.conf"
sleep 3
check_eq "after a restart down.test is not retried at once" "$(cnt .type TransientFailure)" 0
check_eq "... and stays spooled" "$(ls "$work/spool" | wc -l)" 2
finish
