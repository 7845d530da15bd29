#!/usr/bin/env bash
# kumod-shaping.sh: the egress path's rate throttles, AUTH PLAIN and the
# egress source's forward proxies, proven from smtp-sink's side (its
# per-second arrivals, saved messages and stats are the verdict):
#   max_message_rate 20/s     every window of k seconds holds <= 20k + 20
#                             arrivals (GCRA, burst = limit), and it is reached
#   max_connection_rate 5/s   the same for the sink's connection arrivals
#   6/min, idle_timeout 1s    the wait is longer than idle_timeout: the rest
#                             go back to the scheduled queue ("throttled",
#                             next_permit_in), no TransientFailure, no attempt
#                             counted, and they arrive once the throttle permits
#   AUTH PLAIN                the sink sees the user over TLS; in clear text
#                             the session fails (TransientFailure naming AUTH)
#                             unless allow_smtp_auth_plain_without_tls
#   ha_proxy_server           a PROXY v2 header naming ha_proxy_source_address
#   socks5_proxy_server       through Debian's dante-server (its external
#                             address 127.0.0.2 is what the sink sees) and
#                             through tests/lab/socks5-server.py with KumoMTA's
#                             BIND convention for socks5_proxy_source_address
. "$(dirname "$0")/kumod-common.sh"
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
[ -x "$SMTP_SOURCE" ] || { echo "SKIP: $SMTP_SOURCE missing (apt-get install postfix)"; exit 77; }
K=${KUMOCTL:-$top/kumoctl/kumoctl}

# --- sinks ---
start_sink rate || exit 1
p_rate=$SINK_PORT
pid_rate=$SINK_PID
start_sink crate || exit 1
p_crate=$SINK_PORT
pid_crate=$SINK_PID
start_sink slow || exit 1
p_slow=$SINK_PORT
echo 'u1:secret-1' >"$work/users"
start_sink auth --auth-users "$work/users" --require-auth || exit 1
p_auth=$SINK_PORT
start_sink hap --proxy-protocol || exit 1
p_hap=$SINK_PORT
start_sink socks || exit 1
p_socks=$SINK_PORT

# --- proxies: dante (standard SOCKS5) and the lab proxy (BIND convention) ---
have_dante=0
if command -v danted >/dev/null; then
	dport=$(free_port)
	cat >"$work/danted.conf" <<EOF
logoutput: $work/danted.log
internal: 127.0.0.1 port = $dport
external: 127.0.0.2
socksmethod: none
clientmethod: none
user.privileged: root
user.unprivileged: nobody
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 127.0.0.0/8 command: connect }
socks block { from: 0.0.0.0/0 to: 0.0.0.0/0 }
EOF
	danted -f "$work/danted.conf" -p "$work/danted.pid" -N 1 >"$work/danted.out" 2>&1 &
	pids+=("$!")
	wait_until 10 port_open "$dport" && have_dante=1
fi
/usr/bin/python3 "$top/tests/lab/socks5-server.py" --port-file "$work/s5.port" --log "$work/s5.log" \
	--lifetime 300 >"$work/s5.out" 2>&1 &
pids+=("$!")
wait_until 10 test -s "$work/s5.port" || echo "# socks5-server.py did not start: $(cat "$work/s5.out")"
s5port=$(head -1 "$work/s5.port" 2>/dev/null)
# The same lab proxy demanding RFC 1929 username/password.
printf 'kumo:s5-secret\n' >"$work/s5users"
printf 's5-secret\n' >"$work/s5pw"
/usr/bin/python3 "$top/tests/lab/socks5-server.py" --port-file "$work/s5a.port" --log "$work/s5a.log" \
	--users "$work/s5users" --lifetime 300 >"$work/s5a.out" 2>&1 &
pids+=("$!")
wait_until 10 test -s "$work/s5a.port" || echo "# socks5-server.py --users did not start: $(cat "$work/s5a.out")"
s5aport=$(head -1 "$work/s5a.port" 2>/dev/null)

KUMOD_PORT=$(free_port)
sock=$work/control.sock
mx() { # DOMAIN: its own MX host (its own site) on 127.0.0.1
	printf '"%s. MX 10 mx.%s.", "mx.%s. A 127.0.0.1",\n' "$1" "$1" "$1"
}
cat >"$work/kumod.conf" <<EOF
listen = ( { address = "127.0.0.1:$KUMOD_PORT"; relay_hosts = [ "127.0.0.0/8" ]; } );
spool_dir = "$work/spool";
log_dir = "$work/logs";
pidfile = "$work/kumod.pid";
hostname = "kumod.test";
shutdown_timeout = 5;
control = { socket = "$sock"; };
dns = { local_data = [ $(for d in rate crate slow auth authclear authclearok hap dante dantedown s5 s5auth s5bad prio rustls; do mx $d.test; done)
                       "unused.test. A 127.0.0.1" ]; };
sources = (
  { name = "hap"; ha_proxy_server = "127.0.0.1:$p_hap"; ha_proxy_source_address = "192.0.2.7"; },
  { name = "dante"; socks5_proxy_server = "127.0.0.1:${dport:-9}"; socks5_proxy_source_address = "0.0.0.0"; },
  { name = "s5"; socks5_proxy_server = "127.0.0.1:${s5port:-9}"; socks5_proxy_source_address = "127.0.0.3"; },
  { name = "s5auth"; socks5_proxy_server = "127.0.0.1:${s5aport:-9}"; socks5_proxy_source_address = "0.0.0.0";
    socks5_proxy_username = "kumo"; socks5_proxy_password = { key_file = "$work/s5pw"; }; },
  { name = "s5bad"; socks5_proxy_server = "127.0.0.1:${s5aport:-9}"; socks5_proxy_source_address = "0.0.0.0";
    socks5_proxy_username = "kumo"; socks5_proxy_password = { key_data = "wrong"; }; }
);
pools = (
  { name = "hap"; entries = ( { name = "hap"; } ); },
  { name = "dante"; entries = ( { name = "dante"; } ); },
  { name = "s5"; entries = ( { name = "s5"; } ); },
  { name = "s5auth"; entries = ( { name = "s5auth"; } ); },
  { name = "s5bad"; entries = ( { name = "s5bad"; } ); }
);
queues = {
  default = { retry_interval = "2s"; max_age = "10min"; };
  domains = (
    { domain = "hap.test"; egress_pool = "hap"; retry_interval = "2s"; },
    { domain = "dante.test"; egress_pool = "dante"; retry_interval = "2s"; },
    { domain = "dantedown.test"; egress_pool = "dante"; retry_interval = "1min"; },
    { domain = "s5.test"; egress_pool = "s5"; retry_interval = "2s"; },
    { domain = "s5auth.test"; egress_pool = "s5auth"; retry_interval = "2s"; },
    { domain = "s5bad.test"; egress_pool = "s5bad"; retry_interval = "1min"; }
  );
};
shaping = {
  default = { prohibited_hosts = [ ]; enable_tls = "Disabled"; connection_limit = 4; };
  domains = (
    { domain = "rate.test"; smtp_port = $p_rate; max_message_rate = "20/s"; },
    { domain = "crate.test"; smtp_port = $p_crate; max_connection_rate = "5/s";
      max_deliveries_per_connection = 1; },
    { domain = "slow.test"; smtp_port = $p_slow; max_message_rate = "6/min"; idle_timeout = 1; },
    { domain = "auth.test"; smtp_port = $p_auth; enable_tls = "OpportunisticInsecure";
      smtp_auth_plain_username = "u1"; smtp_auth_plain_password = { key_data = "secret-1"; }; },
    { domain = "authclear.test"; smtp_port = $p_auth;
      smtp_auth_plain_username = "u1"; smtp_auth_plain_password = { key_data = "secret-1"; }; },
    { domain = "authclearok.test"; smtp_port = $p_auth; allow_smtp_auth_plain_without_tls = true;
      smtp_auth_plain_username = "u1"; smtp_auth_plain_password = { key_file = "$work/pw"; }; },
    { domain = "hap.test"; smtp_port = 2500; },
    { domain = "prio.test"; smtp_port = $p_socks; enable_tls = "OpportunisticInsecure";
      tls_priority = "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM"; },
    { domain = "rustls.test"; smtp_port = $p_socks; enable_tls = "OpportunisticInsecure";
      rustls_cipher_suites = [ "TLS13_CHACHA20_POLY1305_SHA256" ]; },
    { domain = "dante.test"; smtp_port = $p_socks; },
    { domain = "dantedown.test"; smtp_port = $(free_port); },
    { domain = "s5.test"; smtp_port = $p_socks; },
    { domain = "s5auth.test"; smtp_port = $p_socks; },
    { domain = "s5bad.test"; smtp_port = $p_socks; }
  );
};
EOF
printf 'secret-1\n' >"$work/pw"
check "check-config accepts the config" "$KUMOD" --check-config "$work/kumod.conf"
start_kumod "$work/kumod.conf" || { finish; }

inject() { # DOMAIN COUNT [SESSIONS]
	"$SMTP_SOURCE" -d -s "${3:-4}" -l 500 -m "$2" -f s@src.test -t "u@$1" -N "127.0.0.1:$KUMOD_PORT"
}
count() { find "$work/$1.d" -type f | wc -l; }
jl() { cat "$work"/logs/*.jsonl 2>/dev/null; }
# windows_ok NAME KEY RATE BURST: every window of k consecutive one-second
# buckets of the sink's per-second KEY arrivals holds <= RATE*k + BURST.
windows_ok() {
	jq -e --argjson r "$3" --argjson b "$4" --arg key "$2" '
	  .per_second[$key] as $a | [range(0; $a|length)] as $idx |
	  [ $idx[] as $i | $idx[] | select(. >= $i) as $j |
	    ($a[$i:$j+1] | add) - ($r * ($j - $i + 1) + $b) ] | max <= 0' "$work/$1.json" >/dev/null
}
busy_seconds() { # NAME KEY: seconds from the first to the last non-empty bucket, inclusive
	jq --arg key "$2" '.per_second[$key] | to_entries | map(select(.value > 0) | .key) |
	  if length == 0 then 0 else (max - min + 1) end' "$work/$1.json"
}

# --- max_message_rate 20/s: 100 messages, burst 20, so >= 4 s ---
inject rate.test 100 &
inj1=$!
# --- max_connection_rate 5/s, one message per connection: 30 messages, >= 5 s ---
inject crate.test 30 &
inj2=$!
# --- 6/min with idle_timeout 1s: 6 at once, then the 7th after ~10 s ---
inject slow.test 8 2 &
inj3=$!
wait $inj1 $inj2 $inj3
t0=$(date +%s)

check "rate.test: all 100 arrive within 60 s" wait_until 60 sh -c "[ \$(find '$work/rate.d' -type f | wc -l) -ge 100 ]"
sink_stats rate "$pid_rate"
check "max_message_rate 20/s: every k-second window <= 20k + 20 messages" windows_ok rate messages 20 20
b=$(busy_seconds rate messages)
check "max_message_rate 20/s: reached (100 messages took 4..8 s of arrivals, saw $b)" \
	test "$b" -ge 4 -a "$b" -le 8
check_eq "rate.test: exactly 100 messages" "$(count rate)" 100

check "crate.test: all 30 arrive within 60 s" wait_until 60 sh -c "[ \$(find '$work/crate.d' -type f | wc -l) -ge 30 ]"
sink_stats crate "$pid_crate"
check "max_connection_rate 5/s: every k-second window <= 5k + 5 connections" windows_ok crate connections 5 5
b=$(busy_seconds crate connections)
check "max_connection_rate 5/s: reached (30 connections took 5..9 s, saw $b)" test "$b" -ge 5 -a "$b" -le 9
check_eq "crate.test: one message per connection" \
	"$(jq -c '.messages_per_connection' "$work/crate.json")" '{"1":30}'

# slow.test: six arrive at once; the other two wait in the scheduled queue.
check "slow.test: the burst of 6 arrives" wait_until 15 sh -c "[ \$(find '$work/slow.d' -type f | wc -l) -ge 6 ]"
if [ -x "$K" ]; then
	qs=$(timeout 10 "$K" --socket "$sock" -j queue-summary 2>/dev/null | tail -1)
	check_eq "slow.test's path is throttled" \
		"$(jq -r '.result.ready[] | select(.site == "mx.slow.test") | .status' <<<"$qs")" throttled
	np=$(jq -r '.result.ready[] | select(.site == "mx.slow.test") | .queued' <<<"$qs")
	check_eq "no message waits in the throttled ready queue (all back in the scheduled queue)" "$np" 0
	w=$(timeout 10 "$K" --socket "$sock" -j inspect-ready-q "unspecified->mx.slow.test" 2>"$work/kc.err" | tail -1)
	echo "# $w" | head -c 400; echo
	npi=$(jq -r '.result.throttle.next_permit_in // empty' <<<"$w")
	check "inspect-ready-q: next_permit_in between 1 and 10 s (got '$npi')" test -n "$npi" -a "${npi:-0}" -ge 1 -a "${npi:-99}" -le 10
fi
check_eq "slow.test: still 6 while throttled" "$(count slow)" 6
check "slow.test: the 7th arrives once the throttle permits (within 20 s)" \
	wait_until 20 sh -c "[ \$(find '$work/slow.d' -type f | wc -l) -ge 7 ]"
check "slow.test: and the 8th (within 20 s more)" \
	wait_until 20 sh -c "[ \$(find '$work/slow.d' -type f | wc -l) -ge 8 ]"
check_eq "no TransientFailure for a throttled message" \
	"$(jl | jq -r 'select(.type == "TransientFailure" and (.recipient | endswith("slow.test"))) | .id' | wc -l)" 0
slowlogged() { [ "$(jl | jq -r 'select(.type == "Delivery" and (.recipient | endswith("slow.test"))) | .id' | wc -l)" -ge 8 ]; }
wait_until 5 slowlogged
check_eq "a throttle's wait counts no attempt: every slow.test Delivery says num_attempts 1" \
	"$(jl | jq -r 'select(.type == "Delivery" and (.recipient | endswith("slow.test"))) | .num_attempts' | sort -u | tr '\n' ' ')" "1 "

# --- AUTH PLAIN ---
inject auth.test 3 1
inject authclear.test 2 1
t_authclear=$(date +%s)
inject authclearok.test 2 1
check "auth.test: 3 arrive" wait_until 30 sh -c "[ \$(grep -El 'X-Sink-Rcpt-To: <[0-9]*u@auth.test>' '$work'/auth.d/* 2>/dev/null | wc -l) -ge 3 ]"
check "auth.test: the sink saw user u1 over TLS" \
	sh -c "grep -El 'X-Sink-Rcpt-To: <[0-9]*u@auth.test>' '$work'/auth.d/* | xargs grep -l '^X-Sink-Auth: u1' | xargs grep -l '^X-Sink-TLS: TLS1' | wc -l | grep -qx 3"
check "authclearok.test: 2 arrive, AUTH in clear text allowed (key_file password)" \
	wait_until 30 sh -c "[ \$(grep -El 'X-Sink-Rcpt-To: <[0-9]*u@authclearok.test>' '$work'/auth.d/* 2>/dev/null | xargs -r grep -L '^X-Sink-TLS' | xargs -r grep -l '^X-Sink-Auth: u1' | wc -l) -ge 2 ]"
check "authclear.test: AUTH refused in clear text (TransientFailure naming auth)" \
	wait_until 20 sh -c "cat '$work'/logs/*.jsonl | jq -r 'select(.type == \"TransientFailure\" and (.recipient | endswith(\"@authclear.test\"))) | .response.content // .response // empty' | grep -qi 'auth'"
check_eq "authclear.test: nothing reached the sink" \
	"$(grep -El 'X-Sink-Rcpt-To: <[0-9]*u@authclear.test>' "$work"/auth.d/* 2>/dev/null | wc -l)" 0

# --- HAProxy PROXY v2 ---
inject hap.test 3 1
check "hap.test: 3 arrive through the PROXY header" wait_until 30 sh -c "[ \$(find '$work/hap.d' -type f | wc -l) -ge 3 ]"
check_eq "the sink saw ha_proxy_source_address as the source" \
	"$(grep -h '^X-Sink-Proxy-Source:' "$work"/hap.d/* | sed 's/^X-Sink-Proxy-Source: *//; s/:[0-9]*$//' | sort -u)" "192.0.2.7"

# --- SOCKS5 ---
if [ "$have_dante" = 1 ]; then
	inject dante.test 3 1
	check "dante.test: 3 arrive through dante" wait_until 30 sh -c "[ \$(grep -El 'X-Sink-Rcpt-To: <[0-9]*u@dante.test>' '$work'/socks.d/* 2>/dev/null | wc -l) -ge 3 ]"
	check_eq "dante.test: the sink saw dante's external address" \
		"$(grep -El 'X-Sink-Rcpt-To: <[0-9]*u@dante.test>' "$work"/socks.d/* | xargs grep -h '^X-Sink-Client:' | sed 's/^X-Sink-Client: *//; s/:[0-9]*$//' | sort -u)" 127.0.0.2
	# A closed port behind the proxy: dante answers "connection refused" (REP 5).
	inject dantedown.test 1 1
	check "dantedown.test: the proxy's refusal is a TransientFailure naming SOCKS5" \
		wait_until 20 sh -c "cat '$work'/logs/*.jsonl | jq -r 'select(.type == \"TransientFailure\" and (.recipient | endswith(\"@dantedown.test\"))) | .response.content' | grep -q 'SOCKS5.*refused'"
else
	echo "# dante-server (danted) not installed or did not start: its checks skipped"
	failed=$((failed + 1))
	echo "not ok - dante-server available (apt-get install dante-server)"
fi
if [ -n "$s5port" ]; then
	inject s5.test 3 1
	check "s5.test: 3 arrive through the lab proxy" wait_until 30 sh -c "[ \$(grep -El 'X-Sink-Rcpt-To: <[0-9]*u@s5.test>' '$work'/socks.d/* 2>/dev/null | wc -l) -ge 3 ]"
	check_eq "s5.test: the proxy connected from socks5_proxy_source_address" \
		"$(grep -El 'X-Sink-Rcpt-To: <[0-9]*u@s5.test>' "$work"/socks.d/* | xargs grep -h '^X-Sink-Client:' | sed 's/^X-Sink-Client: *//; s/:[0-9]*$//' | sort -u)" 127.0.0.3
	check "s5.test: the lab proxy logged BIND 127.0.0.3 then CONNECT" \
		sh -c "grep -q 'BIND 127.0.0.3' '$work/s5.log' && grep -q 'CONNECT 127.0.0.1:$p_socks' '$work/s5.log'"
fi
if [ -n "$s5aport" ]; then
	inject s5auth.test 2 1
	inject s5bad.test 1 1
	check "s5auth.test: 2 arrive through the proxy that demands a password" wait_until 30 sh -c "[ \$(grep -El 'X-Sink-Rcpt-To: <[0-9]*u@s5auth.test>' '$work'/socks.d/* 2>/dev/null | wc -l) -ge 2 ]"
	check "s5auth.test: the proxy logged the RFC 1929 user (key_file password) ok" grep -q 'AUTH kumo ok' "$work/s5a.log"
	check "s5bad.test: a wrong password is a TransientFailure naming SOCKS5 authentication" \
		wait_until 20 sh -c "cat '$work'/logs/*.jsonl | jq -r 'select(.type == \"TransientFailure\" and (.recipient | endswith(\"@s5bad.test\"))) | .response.content' | grep -qi 'SOCKS5.*auth'"
	check "s5bad.test: nothing reached the sink" sh -c "! grep -qEl 'X-Sink-Rcpt-To: <[0-9]*u@s5bad.test>' '$work'/socks.d/* 2>/dev/null"
else
	failed=$((failed + 1))
	echo "not ok - socks5-server.py --users started"
fi

# Let 20 s pass since the injection: at retry_interval 2s without backoff that is ~10 tries.
left=$((t_authclear + 20 - $(date +%s)))
[ "$left" -gt 0 ] && sleep "$left"
n=$(jl | jq -r 'select(.type == "TransientFailure" and .recipient == "1u@authclear.test") | .id' | wc -l)
check "authclear.test: failed sessions count attempts, so retries back off (<= 6 in $(( $(date +%s) - t_authclear )) s, saw $n)" test "$n" -le 6
# --- TLS cipher controls: the sink's view of the negotiated version and suite ---
inject prio.test 1 1
inject rustls.test 1 1
tls_of() { grep -El "X-Sink-Rcpt-To: <[0-9]*u@$1>" "$work"/socks.d/* 2>/dev/null | xargs -r grep -h '^X-Sink-TLS:' | sed 's/^X-Sink-TLS: *//'; }
check "prio.test and rustls.test arrive" wait_until 20 sh -c "[ \$(grep -El 'X-Sink-Rcpt-To: <[0-9]*u@(prio|rustls).test>' '$work'/socks.d/* | wc -l) -ge 2 ]"
check_eq "tls_priority (TLS 1.2, AES-128-GCM only): the sink saw" "$(tls_of prio.test | awk '{print $1}')" "TLS1.2"
check "tls_priority: the suite is an AES-128-GCM one ($(tls_of prio.test))" sh -c "tls=\"$(tls_of prio.test)\"; case \$tls in *AES_128_GCM*) exit 0;; *) exit 1;; esac"
check_eq "rustls_cipher_suites TLS13_CHACHA20_POLY1305_SHA256: the sink saw" "$(tls_of rustls.test)" "TLS1.3 TLS_CHACHA20_POLY1305_SHA256"

check "spool empties (only authclear.test's 2, dantedown.test's 1 and s5bad.test's 1 remain)" \
	wait_until 10 sh -c "[ \$(ls -A '$work/spool' | wc -l) -le 4 ]"
finish
