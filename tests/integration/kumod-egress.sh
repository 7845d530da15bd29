#!/usr/bin/env bash
# kumod-egress.sh: egress path and egress source keys proven from outside
# (smtp-sink's stats and saved messages are the verdict; kumod's JSON log
# only says why something was not delivered):
#   config       bad egress values not covered by kumod-config.sh are errors
#                with file:line
#   connection_limit 3, two sources (127.0.0.1, 127.0.0.2): the sink's peak
#                concurrency per client address is 3 for each, under load;
#                also with connections turning over every 2 messages
#   max_deliveries_per_connection 5: the sink's messages-per-connection
#                histogram has nothing above 5 and reaches 5
#   ehlo_domain  path's > source's > hostname, in the sink's X-Sink-Helo
#   source_address 127.0.0.2, in the sink's X-Sink-Client
#   remote_port  (source) wins over smtp_port (path)
#   prohibited_hosts  550 5.4.4 Bounce, the sink sees no connection, also when
#                only the second MX host is prohibited, and by default for a
#                loopback MX (the seed's default list)
#   skip_hosts   the skipped (better) MX host gets no connection, the next one
#                delivers; all skipped: 550 5.4.4
#   suspended    nothing reaches the sink; the messages stay spooled; set by
#                a reload, it stops a busy path (only the message in flight
#                may finish); lifted by a reload, everything arrives once
#   consecutive_connection_failures_before_delay 2, against a closed port:
#                with 20 messages in the ready queue at once (recovered from
#                the spool at start), the first two failures delay one message
#                each, the third delays all the others with 451 4.4.1 "No
#                answer from any hosts listed in MX"; later delivered
#   max_ready 5: of 20 messages reaching the ready queue at once, 5 go and the
#                rest go back to the scheduled queue for up to a minute; all
#                arrive exactly once, without a counted attempt
. "$(dirname "$0")/kumod-common.sh"
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
PY=/usr/bin/python3
pass() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { failed=$((failed + 1)); echo "not ok - $*"; }
jl() { cat "$work"/"${1:-logs}"/*.jsonl 2>/dev/null; }
saved() { find "$work/$1.d" -type f 2>/dev/null | wc -l; }
# rcpt_domains NAME: the recipient domains of the messages that sink saved, sorted, unique
rcpt_domains() { saved_rcpts "$1" | sed 's/.*@//' | sort -u | tr '\n' ' '; }
# hdr NAME DOMAIN HEADER: that header of the sink's saved messages for DOMAIN (unique values)
hdr() {
	find "$work/$1.d" -type f -print0 2>/dev/null | xargs -0 -r grep -l "^X-Sink-Rcpt-To: <[^>]*@$2>" |
		xargs -r grep -h "^$3: " | sed "s/^$3: //" | sort -u | tr '\n' ' '
}
# st NAME JQ: JQ over a fresh copy of sink NAME's stats (its pid in spid[NAME])
declare -A spid sport
st() {
	sink_stats "$1" "${spid[$1]}" >/dev/null 2>&1
	jq -r "$2" "$work/$1.json"
}
sink() { # NAME [options]: start_sink, remembering pid and port
	start_sink "$@" || exit 1
	spid[$1]=$SINK_PID
	sport[$1]=$SINK_PORT
}
inject() { # PORT N DOMAIN...
	local p=$1 n=$2
	shift 2
	"$PY" "$here/kumod-inject.py" "$p" "$n" 2 "$work/acked" "$@"
}

# ---------------------------------------------------------------- config
cat >"$work/bad.conf" <<'CONF'
listen = ( { address = "127.0.0.1:2525"; } );
sources = ( { name = "s1"; remote_port = 0; ttl = "5 fortnights"; colour = "red"; },
            { name = "s2"; ehlo_domain = ""; remote_port = 70000; } );
shaping = {
  default = { max_deliveries_per_connection = -5; max_ready = 0;
              consecutive_connection_failures_before_delay = -1; smtp_port = 70000; };
  domains = (
    { domain = "a.test"; connect_timeout = 0; data_timeout = "3 fortnights"; rset_timeout = -2;
      max_connection_rate = "5/fortnight"; enable_tls = 7; suspended = "yes";
      prohibited_hosts = [ "300.1.1.1" ]; skip_hosts = [ "127.0.0.1/40" ];
      sources = ( { name = "s1"; connection_limit = -3; idle_timeout = "soon"; bogus_key = 1; } ); },
    { domain = "b.test"; enable_tls = "Sometimes"; ehlo_domain = 5; }
  );
};
CONF
"$KUMOD" --check-config "$work/bad.conf" >"$work/bad.out" 2>&1
check_eq "check-config exit status for bad egress values" "$?" 2
f=$work/bad.conf
for want in \
	"$f:2: sources.[0].remote_port: want a port number 1..65535" \
	"$f:2: sources.[0].ttl: \"5 fortnights\": unknown unit \"fortnights\"" \
	"$f:2: sources.[0].colour: unknown key" \
	"$f:3: sources.[1].ehlo_domain: want a non-empty string" \
	"$f:3: sources.[1].remote_port: want a port number 1..65535" \
	"$f:5: shaping.default.max_deliveries_per_connection: -5 is out of range" \
	"$f:5: shaping.default.max_ready: 0 is out of range" \
	"$f:6: shaping.default.consecutive_connection_failures_before_delay: -1 is out of range" \
	"$f:6: shaping.default.smtp_port: 70000 is out of range" \
	"$f:8: shaping.domains.[0].connect_timeout: 0: must be at least 1s" \
	"$f:8: shaping.domains.[0].data_timeout: \"3 fortnights\": unknown unit \"fortnights\"" \
	"$f:8: shaping.domains.[0].rset_timeout: -2: a duration cannot be negative" \
	"$f:9: shaping.domains.[0].max_connection_rate: \"5/fortnight\": unknown period \"fortnight\"" \
	"$f:9: shaping.domains.[0].enable_tls: not a string: unknown mode" \
	"$f:9: shaping.domains.[0].suspended: want true or false" \
	"$f:10: shaping.domains.[0].prohibited_hosts.[0]: \"300.1.1.1\"" \
	"$f:10: shaping.domains.[0].skip_hosts.[0]: \"127.0.0.1/40\": prefix length 40 is above 32" \
	"$f:11: shaping.domains.[0].sources.[0].connection_limit: -3 is out of range" \
	"$f:11: shaping.domains.[0].sources.[0].idle_timeout: \"soon\"" \
	"$f:11: shaping.domains.[0].sources.[0].bogus_key: unknown key" \
	"$f:12: shaping.domains.[1].enable_tls: \"Sometimes\": unknown mode" \
	"$f:12: shaping.domains.[1].ehlo_domain: want a non-empty string"; do
	check "reports: $want" grep -qF -- "$want" "$work/bad.out"
done

# ---------------------------------------------------------------- sinks
sink limit --delay DOT=200ms
sink limturn --delay DOT=50ms
sink resusp --delay DOT=1s --log-json "$work/resusp.log"
sink mdpc --delay DOT=20ms
sink ehlo
sink rport # remote_port of the source: gets the message
sink sport # smtp_port of the path: must get nothing
sink proh
sink mr --log-json "$work/mr.log"
# skip_hosts: one port, two addresses; 127.0.0.3 is the better MX host.
p_skip=$(free_port)
mkdir -p "$work/skip3.d" "$work/skip1.d"
for a in 3 1; do
	"$SINK" --listen "127.0.0.$a:$p_skip" --port-file "$work/skip$a.port" --save-dir "$work/skip$a.d" \
		--stats-json "$work/skip$a.json" --hostname "skip$a.test" >"$work/skip$a.out" 2>&1 &
	spid[skip$a]=$!
	pids+=("$!")
	wait_until 10 test -s "$work/skip$a.port" || { echo "# sink on 127.0.0.$a:$p_skip did not start"; cat "$work/skip$a.out"; exit 1; }
done
# cf.test's MX is 127.0.0.4, an address no other test uses: nothing listens
# on 127.0.0.4:p_closed until the end. The susp sink (cf.test's port while
# suspended, and loop.test's) listens on 127.0.0.4 and 127.0.0.1.
p_closed=$(free_port)
p_susp=$(free_port)
mkdir -p "$work/susp.d"
"$SINK" --listen "127.0.0.4:$p_susp" --listen "127.0.0.1:$p_susp" --port-file "$work/susp.port" \
	--save-dir "$work/susp.d" --stats-json "$work/susp.json" --hostname susp.test >"$work/susp.out" 2>&1 &
spid[susp]=$!
sport[susp]=$p_susp
pids+=("$!")
wait_until 10 test -s "$work/susp.port" || { echo "# the susp sink did not start"; cat "$work/susp.out"; exit 1; }

# ---------------------------------------------------------------- kumod #1
K1=$(free_port)
mx() { # DOMAIN ADDR [PREF]: an MX host of its own for DOMAIN
	printf '"%s. MX %s mx%s.%s.", "mx%s.%s. A %s",\n' "$1" "${3:-10}" "${3:-}" "$1" "${3:-}" "$1" "$2"
}
cat >"$work/k1.conf" <<EOF
listen = ( { address = "127.0.0.1:$K1"; relay_hosts = [ "127.0.0.0/8" ]; } );
spool_dir = "$work/spool"; log_dir = "$work/logs"; hostname = "kumod.test"; shutdown_timeout = 2;
dns = { local_data = [ $(mx limit.test 127.0.0.1) $(mx limturn.test 127.0.0.1) $(mx resusp.test 127.0.0.1) $(mx mdpc.test 127.0.0.1)
  $(mx ehlo-path.test 127.0.0.1) $(mx ehlo-src.test 127.0.0.1) $(mx ehlo-host.test 127.0.0.1)
  $(mx remport.test 127.0.0.1) $(mx proh.test 127.0.0.1)
  $(mx proh2.test 127.0.0.1 10) $(mx proh2.test 127.0.0.9 20)
  $(mx skip.test 127.0.0.3 10) $(mx skip.test 127.0.0.1 20)
  $(mx noskip.test 127.0.0.3 10) $(mx noskip.test 127.0.0.1 20)
  $(mx skipall.test 127.0.0.3)
  "unused.test. A 127.0.0.1" ]; };
sources = (
  { name = "l1"; source_address = "127.0.0.1"; },
  { name = "l2"; source_address = "127.0.0.2"; },
  { name = "e"; source_address = "127.0.0.2"; ehlo_domain = "source.ehlo.test"; },
  { name = "rp"; remote_port = ${sport[rport]}; }
);
pools = (
  { name = "two"; entries = ( { name = "l1"; weight = 1; }, { name = "l2"; weight = 1; } ); },
  { name = "e"; entries = ( { name = "e"; } ); },
  { name = "rp"; entries = ( { name = "rp"; } ); }
);
queues = {
  default = { retry_interval = "2s"; max_retry_interval = "2s"; max_age = "10min"; };
  domains = (
    { domain = "limit.test"; egress_pool = "two"; },
    { domain = "ehlo-path.test"; egress_pool = "e"; },
    { domain = "ehlo-src.test"; egress_pool = "e"; },
    { domain = "remport.test"; egress_pool = "rp"; }
  );
};
shaping = {
  default = { prohibited_hosts = [ ]; enable_tls = "Disabled"; enable_mta_sts = false;
              connection_limit = 8; };
  domains = (
    { domain = "limit.test"; smtp_port = ${sport[limit]}; connection_limit = 3; },
    { domain = "limturn.test"; smtp_port = ${sport[limturn]}; connection_limit = 3;
      max_deliveries_per_connection = 2; },
    { domain = "mdpc.test"; smtp_port = ${sport[mdpc]}; max_deliveries_per_connection = 5;
      connection_limit = 2; idle_timeout = 2; },
    { domain = "ehlo-path.test"; smtp_port = ${sport[ehlo]}; ehlo_domain = "path.ehlo.test"; },
    { domain = "ehlo-src.test"; smtp_port = ${sport[ehlo]}; },
    { domain = "ehlo-host.test"; smtp_port = ${sport[ehlo]}; },
    { domain = "remport.test"; smtp_port = ${sport[sport]}; },
    { domain = "proh.test"; smtp_port = ${sport[proh]}; prohibited_hosts = [ "127.0.0.0/8" ]; },
    { domain = "proh2.test"; smtp_port = ${sport[proh]}; prohibited_hosts = [ "127.0.0.9/32" ]; },
    { domain = "skip.test"; smtp_port = $p_skip; skip_hosts = [ "127.0.0.3" ]; },
    { domain = "noskip.test"; smtp_port = $p_skip; },
    { domain = "skipall.test"; smtp_port = $p_skip; skip_hosts = [ "127.0.0.0/24" ]; },
    { domain = "resusp.test"; smtp_port = ${sport[resusp]}; connection_limit = 1; suspended = false; }
  );
};
EOF

# ---------------------------------------------------------------- kumod #2
# Phase 1: cf.test and mr.test suspended (their messages wait in the spool),
# loop.test on the seed's default prohibited_hosts. Phase 2 (a restart)
# unsuspends them: the recovered messages reach the ready queue at once.
K2=$(free_port)
k2conf() { # PHASE
	local cf mr
	if [ "$1" = 1 ]; then
		cf="smtp_port = ${sport[susp]}; suspended = true;"
		mr="smtp_port = ${sport[mr]}; suspended = true;"
	else
		cf="smtp_port = $p_closed; connection_limit = 1; consecutive_connection_failures_before_delay = 2;"
		mr="smtp_port = ${sport[mr]}; connection_limit = 1; max_ready = 5;"
	fi
	cat <<EOF
listen = ( { address = "127.0.0.1:$K2"; relay_hosts = [ "127.0.0.0/8" ]; } );
spool_dir = "$work/spool2"; log_dir = "$work/logs2"; hostname = "kumod2.test"; shutdown_timeout = 2;
dns = { local_data = [ $(mx cf.test 127.0.0.4) $(mx mr.test 127.0.0.1) $(mx loop.test 127.0.0.1)
  "unused.test. A 127.0.0.1" ]; };
queues = { default = { retry_interval = "3s"; max_retry_interval = "3s"; max_age = "10min"; }; };
shaping = {
  default = { enable_tls = "Disabled"; enable_mta_sts = false; connection_limit = 4; };
  domains = (
    { domain = "cf.test"; prohibited_hosts = [ ]; $cf },
    { domain = "mr.test"; prohibited_hosts = [ ]; $mr },
    { domain = "loop.test"; smtp_port = ${sport[susp]}; }
  );
};
EOF
}
k2conf 1 >"$work/k2a.conf"
k2conf 2 >"$work/k2b.conf"
for c in k1 k2a k2b; do
	check "check-config accepts $c.conf" "$KUMOD" --check-config "$work/$c.conf"
done
KUMOD_PORT=$K1
start_kumod "$work/k1.conf" || exit 1
K1_PID=$KUMOD_PID
KUMOD_PORT=$K2
start_kumod "$work/k2a.conf" || exit 1
K2_PID=$KUMOD_PID

# ---------------------------------------------------------------- load
: >"$work/acked"
inject "$K2" 20 cf.test &
j1=$!
inject "$K2" 20 mr.test &
j2=$!
inject "$K1" 120 limit.test &
j3=$!
inject "$K1" 23 mdpc.test &
j4=$!
inject "$K1" 90 limturn.test &
j5=$!
wait $j1 $j2 $j3 $j4 $j5
inject "$K2" 1 loop.test
inject "$K1" 3 ehlo-path.test ehlo-src.test ehlo-host.test
inject "$K1" 2 remport.test
inject "$K1" 6 proh.test proh2.test skip.test noskip.test skipall.test skip.test
check_eq "every message acknowledged" "$(wc -l <"$work/acked")" $((20 + 20 + 120 + 23 + 90 + 1 + 3 + 2 + 6))

# ---------------------------------------------------------------- suspended (kumod #2, phase 1)
lb() { [ "$(jl logs2 | jq -r 'select(.type=="Bounce") | .recipient' | grep -c '@loop.test$')" -ge 1 ]; }
check "loop.test (default prohibited_hosts, loopback MX) bounces" wait_until 10 lb
check_eq "its code is 550 5.4.4" \
	"$(jl logs2 | jq -r 'select(.type=="Bounce" and (.recipient | endswith("@loop.test"))) | "\(.response.code) \(.response.enhanced_code)"')" "550 5.4.4"
sleep 3 # suspended paths must stay quiet a while
check_eq "suspended: the live sink of cf.test saw no connection" "$(st susp .connections.total)" 0
check_eq "suspended: the sink of mr.test saw no connection" "$(st mr .connections.total)" 0
check_eq "suspended: the 40 messages stay spooled" "$(ls "$work/spool2" | wc -l)" 40
check_eq "suspended: no TransientFailure, no Bounce for them" \
	"$(jl logs2 | jq -r 'select(.type!="Reception" and (.recipient | test("@(cf|mr)\\.test$"))) | .type' | wc -l)" 0
kill -TERM "$K2_PID"
wait_until 10 sh -c "! kill -0 $K2_PID"
wait "$K2_PID"
check_eq "kumod #2 stops cleanly" "$?" 0
KUMOD_PORT=$K2
start_kumod "$work/k2b.conf" || exit 1
K2_PID=$KUMOD_PID
t_k2b=$(date +%s.%N)

# ---------------------------------------------------------------- consecutive failures (kumod #2, phase 2)
cf_recs() { # the first 20 TransientFailure records of cf.test, in log order: "code enh text"
	jl logs2 | jq -r 'select(.type=="TransientFailure" and (.recipient | endswith("@cf.test"))) | "\(.response.code) \(.response.enhanced_code) \(.response.content)"' | head -20
}
cf20() { [ "$(cf_recs | wc -l)" -ge 20 ]; }
check "consecutive failures: all 20 cf.test messages delayed within 10 s" wait_until 10 cf20
cf_recs >"$work/cf.txt"
check_eq "the first two failures delay one message each with the connect error" \
	"$(head -2 "$work/cf.txt" | grep -c '^451 4\.4\.1 connect: .*refused')" 2
check_eq "the third (counter 3 > 2) delays the 18 others: 451 4.4.1 No answer from any hosts listed in MX" \
	"$(tail -n +3 "$work/cf.txt" | grep -cx '451 4\.4\.1 No answer from any hosts listed in MX')" 18
spread=$(jl logs2 | jq -r 'select(.type=="TransientFailure" and (.recipient | endswith("@cf.test")) and (.response.content | startswith("No answer"))) | .timestamp' | head -18 |
	jq -s 'if length == 18 then (max - min) * 1000 | round else "missing" end')
check "the 18 were delayed together (within 500 ms: $spread ms)" test "$spread" -lt 500 2>/dev/null
check_eq "each cf.test message was delayed once" \
	"$(jl logs2 | jq -r 'select(.type=="TransientFailure" and (.recipient | endswith("@cf.test"))) | .recipient' | head -20 | sort -u | wc -l)" 20

# ---------------------------------------------------------------- connection_limit (kumod #1)
lim() { [ "$(saved limit)" -ge 120 ]; }
check "connection_limit: 120 messages delivered within 40 s" wait_until 40 lim
check_eq "connection_limit: peak concurrency from 127.0.0.1 is the limit 3" \
	"$(st limit '.by_client["127.0.0.1"].peak_concurrent')" 3
check_eq "connection_limit: peak concurrency from 127.0.0.2 is the limit 3" \
	"$(st limit '.by_client["127.0.0.2"].peak_concurrent')" 3
check "connection_limit: overall peak <= 6 ($(st limit .connections.peak_concurrent))" \
	test "$(st limit .connections.peak_concurrent)" -le 6
check_eq "connection_limit: each message once" "$(saved_rcpts limit | sort -u | wc -l) $(saved limit)" "120 120"
# The same with connections turning over (2 messages each): a new one may
# open only once an old one is gone.
lt() { [ "$(saved limturn)" -ge 90 ]; }
check "connection_limit with turnover: 90 messages delivered within 40 s" wait_until 40 lt
check "connection_limit with turnover: $(st limturn .connections.total) connections (>= 45)" \
	test "$(st limturn .connections.total)" -ge 45
check_eq "connection_limit with turnover: peak concurrency from 127.0.0.1 is the limit 3" \
	"$(st limturn '.by_client["127.0.0.1"].peak_concurrent')" 3

# ---------------------------------------------------------------- max_deliveries_per_connection
md() { [ "$(saved mdpc)" -ge 23 ] && [ "$(st mdpc .connections.current)" = 0 ]; }
check "max_deliveries_per_connection: 23 delivered, every session closed (idle_timeout 2 s)" wait_until 30 md
h=$(st mdpc '.messages_per_connection | to_entries | map("\(.key):\(.value)") | join(" ")')
echo "# messages per connection at the sink: $h"
check_eq "max_deliveries_per_connection: no session carried more than 5" \
	"$(st mdpc '[.messages_per_connection | keys[] | tonumber | select(. > 5)] | length')" 0
check "max_deliveries_per_connection: at least 3 sessions carried exactly 5" \
	test "$(st mdpc '.messages_per_connection["5"] // 0')" -ge 3
check_eq "max_deliveries_per_connection: the histogram accounts for all 23" \
	"$(st mdpc '[.messages_per_connection | to_entries[] | (.key | tonumber) * .value] | add')" 23

# ---------------------------------------------------------------- EHLO, source_address, remote_port
eh() { [ "$(saved ehlo)" -ge 3 ]; }
check "ehlo: the three messages arrive" wait_until 15 eh
check_eq "ehlo_domain of the path wins over the source's" "$(hdr ehlo ehlo-path.test X-Sink-Helo)" "path.ehlo.test "
check_eq "ehlo_domain of the source wins over the hostname" "$(hdr ehlo ehlo-src.test X-Sink-Helo)" "source.ehlo.test "
check_eq "no ehlo_domain anywhere: the hostname" "$(hdr ehlo ehlo-host.test X-Sink-Helo)" "kumod.test "
check_eq "source_address 127.0.0.2 is the client the sink sees" \
	"$(hdr ehlo ehlo-path.test X-Sink-Client)$(hdr ehlo ehlo-src.test X-Sink-Client)" "127.0.0.2 127.0.0.2 "
check_eq "no source_address: 127.0.0.1" "$(hdr ehlo ehlo-host.test X-Sink-Client)" "127.0.0.1 "
check_eq "the sink counts both client addresses" "$(st ehlo '.by_client | keys | join(" ")')" "127.0.0.1 127.0.0.2"
rp() { [ "$(saved rport)" -ge 2 ]; }
check "remote_port: both messages reach the source's remote_port" wait_until 15 rp
check_eq "remote_port: the path's smtp_port saw no connection" "$(st sport .connections.total)" 0

# ---------------------------------------------------------------- prohibited_hosts, skip_hosts
bnc() { # DOMAIN: its Bounce records "code enh"
	jl | jq -r --arg d "$1" 'select(.type=="Bounce" and (.recipient | endswith("@" + $d))) | "\(.response.code) \(.response.enhanced_code)"' | sort -u
}
pb() { [ -n "$(bnc proh.test)" ] && [ -n "$(bnc proh2.test)" ] && [ -n "$(bnc skipall.test)" ]; }
check "prohibited/skip-all domains bounce within 10 s" wait_until 10 pb
check_eq "prohibited_hosts: 550 5.4.4" "$(bnc proh.test)" "550 5.4.4"
check_eq "prohibited_hosts on the second MX host only: 550 5.4.4" "$(bnc proh2.test)" "550 5.4.4"
check_eq "prohibited_hosts: the sink saw no connection" "$(st proh .connections.total)" 0
check_eq "skip_hosts removing every host: 550 5.4.4" "$(bnc skipall.test)" "550 5.4.4"
sk() { [ "$(saved skip1)" -ge 2 ] && [ "$(saved skip3)" -ge 1 ]; }
check "skip_hosts: skip.test x2 and noskip.test arrive" wait_until 15 sk
check_eq "skip_hosts: skip.test went to the second MX host (127.0.0.1)" "$(rcpt_domains skip1)" "skip.test "
check_eq "without skip_hosts the first MX host (127.0.0.3) takes noskip.test (the control)" \
	"$(rcpt_domains skip3)" "noskip.test "
check_eq "skip_hosts: the skipped address saw one connection (noskip.test's)" "$(st skip3 .connections.total)" 1

# ---------------------------------------------------------------- suspended by a reload (kumod #1)
# Ten messages queue behind a sink that takes 1 s per message; once the
# first has arrived, a reload sets suspended = true: the path must stop (the
# message in flight may finish). A second reload lifts it: all ten arrive.
reloads() { grep -c "reload: .*k1.conf loaded" "$work/kumod.out"; }
reload_k1() { # true|false
	local n0
	n0=$(reloads)
	sed -i "/domain = \"resusp.test\"/s/suspended = [a-z]*;/suspended = $1;/" "$work/k1.conf"
	kill -HUP "$K1_PID"
	rl() { [ "$(reloads)" -gt "$n0" ]; }
	wait_until 5 rl || fail "kumod #1 did not log the reload"
}
: >"$work/acked.rs"
"$PY" "$here/kumod-inject.py" "$K1" 10 1 "$work/acked.rs" resusp.test
check_eq "suspended by reload: 10 messages acknowledged" "$(wc -l <"$work/acked.rs")" 10
rs1() { [ "$(saved resusp)" -ge 1 ]; }
check "suspended by reload: the first message arrives" wait_until 15 rs1
reload_k1 true
rs_before=$(saved resusp)
sleep 5
rs_after=$(saved resusp)
check "suspended by reload: at most the message in flight arrives in the 5 s after the reload (got $((rs_after - rs_before)))" \
	test $((rs_after - rs_before)) -le 1
reload_k1 false
t_unsusp=$(date +%s)

# ---------------------------------------------------------------- consecutive failures: then delivered
mkdir -p "$work/cfsink.d"
"$SINK" --listen "127.0.0.4:$p_closed" --port-file "$work/cfsink.port" --save-dir "$work/cfsink.d" \
	--hostname cfsink.test >"$work/cfsink.out" 2>&1 &
pids+=("$!")
wait_until 10 test -s "$work/cfsink.port" || fail "a sink on the closed port starts"
cfd() { [ "$(saved_rcpts cfsink | grep -c '@cf.test$')" -ge 20 ]; }
check "the cf.test messages arrive once the port answers (retry 3 s)" wait_until 20 cfd
check_eq "cf.test: each exactly once" "$(saved_rcpts cfsink | grep '@cf.test$' | sort -u | wc -l) $(saved cfsink)" "20 20"

# ---------------------------------------------------------------- max_ready (kumod #2, phase 2)
mrd() { [ "$(saved mr)" -ge 20 ]; }
check "max_ready: all 20 arrive within 75 s of the restart" wait_until "$((75 - $(printf '%.0f' "$(echo "$(date +%s.%N) - $t_k2b" | bc)")))" mrd
sleep 0.5
check_eq "max_ready: each exactly once" "$(saved_rcpts mr | sort -u | wc -l) $(saved mr)" "20 20"
# The sink's transaction log: 5 at once, the rest spread over up to a minute
# (an overflowed message waits at least 1 s).
arr=$(jq -s '[.[] | select(.code == 250) | .end] | sort | . as $e |
	"\([$e[] | select(. < $e[0] + 0.5)] | length) \(($e[-1] - $e[0]) | floor)"' -r "$work/mr.log")
echo "# mr sink: $(cut -d' ' -f1 <<<"$arr") arrivals within 0.5 s of the first, last one $(cut -d' ' -f2 <<<"$arr") s after it"
check "max_ready: at most 5 arrive within 0.5 s of the first" test "$(cut -d' ' -f1 <<<"$arr")" -le 5
check "max_ready: the others come back later (last arrival >= 3 s after the first)" \
	test "$(cut -d' ' -f2 <<<"$arr")" -ge 3
check "max_ready: ... and within the seed's minute (last arrival <= 65 s after the first)" \
	test "$(cut -d' ' -f2 <<<"$arr")" -le 65
check_eq "max_ready: no attempt was counted for the overflow (num_attempts 1, no TransientFailure)" \
	"$(jl logs2 | jq -r 'select(.recipient | endswith("@mr.test")) | select(.type!="Reception") | "\(.type) \(.num_attempts)"' | sort | uniq -c | awk '{print $1, $2, $3}')" \
	"20 Delivery 1"
rsd() { [ "$(saved resusp)" -ge 10 ]; }
check "suspended lifted by a reload: all 10 arrive within 70 s" wait_until "$((70 - $(date +%s) + t_unsusp))" rsd
check_eq "suspended by reload: each exactly once" "$(saved_rcpts resusp | sort -u | wc -l) $(saved resusp)" "10 10"
check "kumod #2 spool empty" wait_until 10 sh -c "[ -z \"\$(ls -A '$work/spool2')\" ]"
check "kumod #1 spool empty" wait_until 10 spool_empty
finish
