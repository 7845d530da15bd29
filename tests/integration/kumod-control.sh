#!/usr/bin/env bash
# kumod-control.sh: kumod's control socket for real: kumod delivering to
# smtp-sink on 127.0.0.1, driven by kumoctl. Suspending a domain holds its
# messages (TransientFailure records carry the reason) until the suspension
# is cancelled; a bounce rule gives AdminBounce records to queued messages
# and to new arrivals; suspend-ready-q stops one path while another flows;
# inspect-*, resolve-egress-path, metrics, watch, complete, set-log-filter
# and reload answer in doc/control-protocol.md's shapes; malformed requests
# get errors and never disturb the daemon; SIGTERM removes the socket.
. "$(dirname "$0")/kumod-common.sh"
K=${KUMOCTL:-$top/kumoctl/kumoctl}
[ -x "$K" ] || { echo "SKIP: $K not built"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }

start_sink sink
KUMOD_PORT=$(free_port)
sock=$work/control.sock
write_conf "$work/kumod.conf" "$KUMOD_PORT" "$SINK_PORT" "" \
	"control = { socket = \"$sock\"; max_clients = 4; };"
check "check-config accepts the control group" "$KUMOD" --check-config "$work/kumod.conf"
start_kumod "$work/kumod.conf"
export KUMOD_CONTROL=$sock
check "control socket exists" wait_until 5 test -S "$sock"
check_eq "socket mode" "$(stat -c %a "$sock")" 660

# kc ARGS...: kumoctl --json with a bound; the last line (the result) on stdout.
kc() { timeout 20 "$K" -j -t 10s "$@" 2>"$work/kc.err"; }
# raw LINES...: send raw request lines on one connection, print every reply line.
raw() {
	timeout 10 python3 - "$sock" "$@" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rb")
print(f.readline().decode().rstrip())
for line in sys.argv[2:]:
    s.sendall(line.encode() + b"\n")
    print(f.readline().decode().rstrip())
EOF
}
sink_count() { find "$work/sink.d" -type f | wc -l; }
rcpts_for() { saved_rcpts sink | grep -c "@$1\$"; }
jl() { cat "$work"/logs/*.jsonl 2>/dev/null; }

# --- the connection and malformed input ---
out=$(raw '{"id":1,"cmd":"commands"}')
check_eq "hello" "$(echo "$out" | head -1 | jq -r '[.hello, .protocol] | @tsv')" "$(printf 'kumo-control\t1')"
check "commands lists queue-summary" sh -c "echo '$out' | tail -1 | jq -e '.result.commands | map(.name) | index(\"queue-summary\")' >/dev/null"
out=$(raw 'not json' '{"id":2,"cmd":"nope"}' '{"id":3,"cmd":"queue-summary","args":[1]}' \
	'{"id":4,"cmd":"suspend","args":{"domain":5,"reason":"x"}}' \
	'{"id":5,"cmd":"watch","args":{"interval":-1}}' '{"id":6,"cmd":"inject","args":{"to":"no-domain"}}')
check "not JSON: error" sh -c "echo '$out' | sed -n 2p | grep -q '\"ok\":false.*invalid JSON'"
check "unknown command: error" sh -c "echo '$out' | sed -n 3p | grep -q 'unknown command'"
check "args not an object: error" sh -c "echo '$out' | sed -n 4p | grep -q 'must be an object'"
check "bad argument type: error" sh -c "echo '$out' | sed -n 5p | grep -q '\"id\":4,\"ok\":false'"
check "negative interval: error" sh -c "echo '$out' | sed -n 6p | grep -q '\"id\":5,\"ok\":false'"
check "inject to an address without domain: error" sh -c "echo '$out' | sed -n 7p | grep -q '\"id\":6,\"ok\":false'"
big=$(head -c 70000 /dev/zero | tr '\0' a)
out=$(raw "$big" '{"id":7,"cmd":"suspend-list"}')
check "oversized line: error, connection usable" sh -c "echo '$out' | sed -n 2p | grep -q 'longer than' && echo '$out' | sed -n 3p | grep -q '\"id\":7,\"ok\":true'"
# random bytes and random JSON-ish lines: every line is answered, the daemon stays
timeout 30 python3 - "$sock" >"$work/fuzz.out" 2>&1 <<'EOF'
import random, socket, sys
random.seed(6)
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rb")
f.readline()
pieces = [b'{', b'}', b'"id"', b':', b'1', b'-1', b'"cmd"', b'"suspend"', b'"bounce"', b'"args"',
          b'{"domain":', b'"x"', b'null', b'[', b']', b',', b'"\\u0000"', b'\xff', b'1e999',
          b'"inject"', b'"watch"', b'{"interval":0}']
sent = 0
for i in range(300):
    if i % 2:
        line = bytes(random.randrange(1, 256) for _ in range(random.randrange(1, 200)))
    else:
        line = b''.join(random.choice(pieces) for _ in range(random.randrange(1, 12)))
    line = line.replace(b'\n', b' ').replace(b'\r', b' ')
    if not line.strip():
        continue
    s.sendall(line + b'\n')
    sent += 1
s.sendall(b'{"id":999,"cmd":"suspend-list"}\n')
got = 0
while True:
    l = f.readline()
    if not l:
        break
    got += 1
    if l.startswith(b'{"id":999,'):
        break
print(sent, got)
EOF
fuzz_ok() { local a b; read -r a b <"$work/fuzz.out" && [ "$((a + 1))" -eq "$b" ]; }
check "fuzzed lines are each answered" fuzz_ok
# the client cap (4 in this config)
cat >"$work/cap.py" <<'EOF'
import socket, sys
conns = []
for i in range(5):
    c = socket.socket(socket.AF_UNIX)
    c.connect(sys.argv[1])
    conns.append(c)
    print(c.makefile("rb").readline().decode().rstrip())
EOF
timeout 10 python3 "$work/cap.py" "$sock" >"$work/cap.out" 2>&1
check "the fifth client is refused" sh -c "tail -1 '$work/cap.out' | grep -q 'too many control clients'"
check "kumod still running" kill -0 "$KUMOD_PID"
kc queue-summary >"$work/qs0.json"
check_eq "empty queue-summary" "$(jq -c '.result' "$work/qs0.json")" '{"ready":[],"scheduled":[]}'

# --- suspend a domain: its messages wait, with the reason; others flow ---
kc suspend --domain a.example.test --duration 1h --reason "maintenance window" >"$work/susp.json"
check_eq "suspend result" "$(jq -r '.result | [.id, .domain, .reason, (.expires_in > 3500)] | @tsv' "$work/susp.json")" \
	"$(printf '1\ta.example.test\tmaintenance window\ttrue')"
kc inject --to 'u{n}@a.example.test' --from s@src.test --count 5 >"$work/inj1.json"
check_eq "inject 5 (spooled)" "$(jq -r '.result | [.injected, .failed] | @tsv' "$work/inj1.json")" "$(printf '5\t0')"
first=$(jq -r .result.first_id "$work/inj1.json")
kc inject --to 'v{n}@c.other.test' --count 3 --size 5000 >/dev/null
check "the other domain is delivered" wait_until 10 sh -c "[ \$(find '$work/sink.d' -type f | wc -l) -ge 3 ]"
sleep 1
check_eq "nothing for the suspended domain" "$(rcpts_for a.example.test)" 0
check_eq "generated size honoured" "$(find "$work/sink.d" -type f -size +4k | wc -l)" 3
kc queue-summary --domain a.example.test >"$work/qs1.json"
check_eq "scheduled queue shows suspended" \
	"$(jq -r '.result.scheduled[0] | [.name, .queued, .status] | @tsv' "$work/qs1.json")" \
	"$(printf 'a.example.test\t5\tsuspended')"
check_eq "TransientFailure records carry the reason" \
	"$(jl | jq -r 'select(.type=="TransientFailure") | .response.content' | grep -c 'maintenance window')" 5
kc inspect-sched-q a.example.test >"$work/isq.json"
check_eq "inspect-sched-q" "$(jq -r '.result | [.queued, .rules[0].kind, .rules[0].reason] | @tsv' "$work/isq.json")" \
	"$(printf '5\tsuspend\tmaintenance window')"
kc inspect-message "$first" >"$work/im.json"
check_eq "inspect-message" "$(jq -r '.result | [.id, .sender, .recipients[0], .queue] | @tsv' "$work/im.json")" \
	"$(printf '%s\ts@src.test\tu1@a.example.test\ta.example.test' "$first")"
check_eq "inspect-message: last_error is the last TransientFailure" "$(jq -r .result.last_error "$work/im.json")" \
	"451 4.4.5 Scheduled queue suspended by an operator: maintenance window"
kc inspect-message 0000nosuchid >/dev/null
check_eq "inspect-message unknown id fails" "$?" 1
kc suspend-list >"$work/sl.json"
check_eq "suspend-list" "$(jq -r '.result.suspensions | length' "$work/sl.json")" 1
kc suspend-cancel 1 >/dev/null
check "after suspend-cancel everything arrives" wait_until 10 sh -c "[ \$(find '$work/sink.d' -type f | wc -l) -ge 8 ]"
check_eq "a.example.test delivered" "$(rcpts_for a.example.test)" 5
kc suspend-cancel 1 >/dev/null
check_eq "cancelling twice fails" "$?" 1

# --- bounce: queued messages and new arrivals get AdminBounce ---
kc suspend --domain b.example.test --reason hold >/dev/null
kc inject --to 'w{n}@b.example.test' --count 2 >/dev/null
kc bounce --domain b.example.test --reason "spam run" --duration 1h >"$work/b.json"
check_eq "bounce result bounces the 2 queued" "$(jq -r '.result | [.domain, .bounced] | @tsv' "$work/b.json")" \
	"$(printf 'b.example.test\t2')"
kc inject --to 'x{n}@b.example.test' --count 1 >/dev/null
check "new arrival bounced too" wait_until 5 sh -c "[ \$(cat '$work'/logs/*.jsonl | jq -r .type | grep -c AdminBounce) -eq 3 ]"
check_eq "AdminBounce reason" "$(jl | jq -r 'select(.type=="AdminBounce") | .response.content' | sort -u)" \
	"Administrative bounce: spam run"
kc bounce-list >"$work/bl.json"
check_eq "bounce-list" "$(jq -r '.result.bounces[0].domain' "$work/bl.json")" b.example.test
bid=$(jq -r '.result.id' "$work/b.json")
kc bounce-cancel "$bid" >/dev/null
check_eq "bounce-cancel" "$?" 0
check_eq "bounce-list empty" "$(kc bounce-list | jq '.result.bounces | length')" 0
check_eq "nothing for b.example.test at the sink" "$(rcpts_for b.example.test)" 0
kc suspend-list | jq -r '.result.suspensions[].id' | while read -r i; do kc suspend-cancel "$i" >/dev/null; done

# --- suspend by tenant (X-Tenant of an injected file) ---
printf 'X-Tenant: acme\nSubject: tenant test\n\nbody\n' >"$work/tenant.eml"
kc suspend --tenant acme --reason "tenant paused" >"$work/st.json"
kc inject --to 'ten@c.other.test' --file "$work/tenant.eml" >/dev/null
tenant_queued() { kc queue-summary | jq -e '.result.scheduled[] | select(.name=="acme@c.other.test" and .status=="suspended" and .queued==1)' >/dev/null; }
check "tenant queue acme@c.other.test suspended" wait_until 5 tenant_queued
check_eq "nothing for the tenant at the sink" "$(saved_rcpts sink | grep -c '^ten@c.other.test$')" 0
kc suspend-cancel "$(jq -r .result.id "$work/st.json")" >/dev/null
tenant_done() { [ "$(saved_rcpts sink | grep -c '^ten@c.other.test$')" -eq 1 ]; }
check "tenant message delivered after the cancel" wait_until 10 tenant_done

# --- suspend-ready-q: one path stops, the other flows ---
kc suspend-ready-q 'unspecified->mx.example.test' --reason "mx trouble" --duration 1h >"$work/srq.json"
check_eq "suspend-ready-q result" "$(jq -r '.result | [.name, .reason] | @tsv' "$work/srq.json")" \
	"$(printf 'unspecified->mx.example.test\tmx trouble')"
before=$(sink_count)
kc inject --to 'r{n}@a.example.test' --count 3 >/dev/null
kc inject --to 'r{n}@c.other.test' --count 3 >/dev/null
other_flows() { [ "$(saved_rcpts sink | grep -c '^r.@c.other.test$')" -eq 3 ]; }
check "the other path flows" wait_until 10 other_flows
sleep 1
check_eq "the suspended path sent nothing" "$(saved_rcpts sink | grep -c '^r.@a.example.test$')" 0
kc queue-summary >"$work/qs2.json"
check_eq "ready queue status suspended" \
	"$(jq -r '.result.ready[] | select(.name=="unspecified->mx.example.test") | [.status, .queued] | @tsv' "$work/qs2.json")" \
	"$(printf 'suspended\t3')"
kc inspect-ready-q 'unspecified->mx.example.test' >"$work/irq.json"
check_eq "inspect-ready-q" "$(jq -r '.result | [.status, .queued, .config.connection_limit, .config.smtp_port] | @tsv' "$work/irq.json")" \
	"$(printf 'suspended\t3\t8\t%s' "$SINK_PORT")"
kc inspect-ready-q 'ip-9->nowhere' >/dev/null
check_eq "unknown ready queue fails" "$?" 1
check_eq "suspend-ready-q-list" "$(kc suspend-ready-q-list | jq -r '.result.suspensions[0].name')" 'unspecified->mx.example.test'
kc suspend-ready-q-cancel "$(jq -r .result.id "$work/srq.json")" >/dev/null
path_delivered() { [ "$(saved_rcpts sink | grep -c '^r.@a.example.test$')" -eq 3 ]; }
check "after suspend-ready-q-cancel the path delivers" wait_until 10 path_delivered

# --- resolve-egress-path, metrics, watch, complete ---
kc resolve-egress-path a.example.test >"$work/rep.json"
check_eq "resolve: site and a default-layer value" \
	"$(jq -r '.result | [.site, (.config[] | select(.key=="connection_limit") | "\(.value)/\(.origin)")] | @tsv' "$work/rep.json")" \
	"$(printf 'mx.example.test\t8/default')"
check_eq "resolve: a built-in value" "$(jq -r '.result.config[] | select(.key=="max_deliveries_per_connection") | .origin' "$work/rep.json")" built-in
check_eq "resolve: every key once" "$(jq -r '.result.config | map(.key) | (length == (unique | length))' "$work/rep.json")" true
kc resolve-egress-path a.example.test nosuchsource >/dev/null
check_eq "resolve with an unknown source fails" "$?" 1
# The counter moves when a 250 is read; the log line follows within its flush
# interval (and deliveries of the earlier steps may still be finishing): the
# two must agree once both have settled.
metrics_agree() {
	kc metrics >"$work/metrics.json"
	jq -r .result "$work/metrics.json" >"$work/metrics.txt"
	grep -qx "kumo_delivered_total $(jl | jq -r .type | grep -cx Delivery)" "$work/metrics.txt"
}
check "metrics: delivered counter agrees with the Delivery records" wait_until 10 metrics_agree
check "metrics: bounced counter" grep -qx "kumo_bounced_total 3" "$work/metrics.txt"
check "metrics: TYPE lines" grep -qx "# TYPE kumo_received_total counter" "$work/metrics.txt"
check "metrics: a ready queue gauge" grep -qx 'kumo_ready_queue_queued{queue="unspecified->mx.example.test"} 0' "$work/metrics.txt"
timeout 20 "$K" -j watch --interval 1 --count 2 >"$work/watch.json" 2>&1
check_eq "watch: 2 snapshots" "$(grep -c '"stream"' "$work/watch.json")" 2
check_eq "watch: then the terminator" "$(tail -1 "$work/watch.json" | jq -c '[.ok, .end]')" '[true,true]'
check_eq "watch: snapshot members" "$(head -1 "$work/watch.json" | jq -r '.stream | [has("time"), has("uptime"), (.totals | has("received") and has("memory")), has("rates"), (.ready[0] | has("rate") and has("tls") and has("next_permit_in"))] | @tsv')" \
	"$(printf 'true\ttrue\ttrue\ttrue\ttrue')"
out=$(raw '{"id":1,"cmd":"complete","args":{"kind":"ready","prefix":"unspecified->mx.e"}}' \
	'{"id":2,"cmd":"complete","args":{"kind":"bogus"}}')
check_eq "complete ready names" "$(echo "$out" | sed -n 2p | jq -c .result.names)" '["unspecified->mx.example.test"]'
check "complete unknown kind fails" sh -c "echo '$out' | sed -n 3p | grep -q '\"ok\":false'"

# --- set-log-filter, reload ---
check_eq "set-log-filter" "$(kc set-log-filter 'notice,trace=dns+queue' | jq -r .result.filter)" 'notice,trace=dns+queue'
kc set-log-filter 'loud' >/dev/null
check_eq "bad filter fails" "$?" 1
check_eq "reload" "$(kc reload | jq -r .result.reloaded)" true
cp "$work/kumod.conf" "$work/kumod.conf.good"
echo 'bogus_key = 1;' >>"$work/kumod.conf"
kc reload >"$work/reload.json"
check_eq "reload of a broken config fails" "$?" 1
check "the error names the file and line" grep -q 'kumod.conf:[0-9][0-9]*: bogus_key' "$work/reload.json"
cp "$work/kumod.conf.good" "$work/kumod.conf"

# --- trace-smtp-client: live transcripts of one site only ---
timeout 30 "$K" -j trace-smtp-client --site mx.other.test >"$work/trace.json" 2>&1 &
tpid=$!
sleep 0.5
kc inject --to 't{n}@c.other.test' --count 2 >/dev/null
kc inject --to 't{n}@a.example.test' --count 2 >/dev/null
traced() { grep -q '"direction":"recv","line":"250 ' "$work/trace.json" && grep -q '"line":"QUIT"\|"line":"RCPT TO:<t2@c.other.test>' "$work/trace.json"; }
check "trace streams the client transcript" wait_until 10 traced
check "trace: MAIL FROM sent" grep -q '"direction":"send","line":"MAIL FROM:<inject@localhost>' "$work/trace.json"
check "trace: only the asked site" sh -c "! grep -q 'mx.example.test' '$work/trace.json'"
kill "$tpid" 2>/dev/null
wait "$tpid" 2>/dev/null
check "kumod still running after the tracer left" kill -0 "$KUMOD_PID"

# --- inspect-ready-q: live connection states (a sink that takes 4 s to answer the dot) ---
start_sink slow --delay DOT=4s
SLOW_PORT=$SINK_PORT
write_conf "$work/kumod.conf" "$KUMOD_PORT" "$SLOW_PORT" "" \
	"control = { socket = \"$sock\"; max_clients = 4; };"
check_eq "reload: the sink for this step is the slow one" "$(kc reload | jq -r .result.reloaded)" true
kc inject --to 'cs{n}@c.other.test' --count 1 >"$work/cs.json"
csid=$(jq -r .result.first_id "$work/cs.json")
in_body() {
	kc inspect-ready-q 'unspecified->mx.other.test' >"$work/irq2.json"
	jq -e --arg id "$csid" '.result.connection_states | any(.state == "body" and .message == $id)' "$work/irq2.json" >/dev/null
}
check "a connection is in state body with the message in flight" wait_until 5 in_body
check "... naming its host and address ($(jq -c '.result.connection_states[0]' "$work/irq2.json"))" \
	jq -e ".result.connection_states[0].host | test(\"^mx.other.test 127.0.0.1:$SLOW_PORT\$\")" "$work/irq2.json"
check_eq "... and the queue is not waiting" "$(jq -r .result.next_due_in "$work/irq2.json")" 0
cs_done() { [ "$(saved_rcpts slow | grep -c '^cs1@c.other.test$')" -eq 1 ]; }
check "the slow message is delivered" wait_until 10 cs_done
cs_idle() {
	kc inspect-ready-q 'unspecified->mx.other.test' >"$work/irq3.json"
	jq -e '.result.connection_states | any(.state == "idle" and .deliveries >= 1 and .message == null)' "$work/irq3.json" >/dev/null
}
check "then the connection is idle, with its delivery counted" wait_until 5 cs_idle

# --- a user other than root may not use the socket ---
if command -v runuser >/dev/null; then
	chmod 755 "$work"
	runuser -u nobody -- "$K" -c queue-summary >/dev/null 2>&1
	check "nobody is refused" test $? -ne 0
fi
check "kumod still running" kill -0 "$KUMOD_PID"

kill -TERM "$KUMOD_PID"
check "kumod exits within 10 s of SIGTERM" wait_until 10 sh -c "! kill -0 $KUMOD_PID"
wait "$KUMOD_PID"
check_eq "kumod exit status" "$?" 0
check "control socket removed" test ! -e "$sock"
finish
