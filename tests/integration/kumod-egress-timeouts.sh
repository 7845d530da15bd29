#!/usr/bin/env bash
# kumod-egress-timeouts.sh: each of the egress path's nine timeouts, proven
# from outside. Every phase gets its own domain, its own sink and a 1 s
# timeout; the sink holds the matching reply (--delay VERB=forever):
#   connect    a loopback listener with listen(0) and one connection already
#              in its accept queue: the kernel drops further SYNs, so the TCP
#              handshake never completes (nothing routable is needed)
#   banner     CONNECT   starttls  STARTTLS (OpportunisticInsecure)
#   ehlo       EHLO      mail_from MAIL      rcpt_to  RCPT
#   data       DATA      data_dot  DOT       rset     RSET (2nd message on a
#                                                      reused connection)
# mail_from, rcpt_to and data are tried with and without PIPELINING. The
# timeouts are written as integers and as duration strings ("1s"), alternately.
# kumod's JSON log must hold a TransientFailure naming the phase for that
# message within a few seconds (the seed defaults are 5 s to 300 s, so a
# default in use would miss the bound); then the sink is restarted on the same
# port without the delay and the message must arrive there exactly once.
. "$(dirname "$0")/kumod-common.sh"
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
PY=/usr/bin/python3
pass() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { failed=$((failed + 1)); echo "not ok - $*"; }

# phase:sink-verb:sink-options (the domain is t-<name>.test)
cases="connect:-:
banner:CONNECT:
starttls:STARTTLS:
ehlo:EHLO:
mail_from:MAIL:
rcpt_to:RCPT:
data:DATA:
data_dot:DOT:
rset:RSET:
mail_from-np:MAIL:--disable PIPELINING
rcpt_to-np:RCPT:--disable PIPELINING
data-np:DATA:--disable PIPELINING"
names=$(cut -d: -f1 <<<"$cases")

# sink_at NAME PORT [options]: a sink on a fixed port (so it can be restarted
# there); saves to $work/NAME.d. Sets SINK_PID.
sink_at() {
	local name=$1 port=$2
	shift 2
	mkdir -p "$work/$name.d"
	rm -f "$work/$name.port"
	"$SINK" --listen "127.0.0.1:$port" --port-file "$work/$name.port" --save-dir "$work/$name.d" \
		--stats-json "$work/$name.json" --hostname "$name.test" "$@" >"$work/$name.out" 2>&1 &
	SINK_PID=$!
	pids+=("$SINK_PID")
	wait_until 10 test -s "$work/$name.port" || { echo "# sink $name did not start:"; cat "$work/$name.out"; return 1; }
}

# The connect peer: listen(0), fill the accept queue with one connection
# that is never accepted; every later SYN is dropped by the kernel.
blackhole() { # PORTFILE
	"$PY" - "$1" <<'EOF' &
import os, socket, sys, time
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", 0))
l.listen(0)
port = l.getsockname()[1]
held = []
for _ in range(8):
    c = socket.socket()
    c.settimeout(0.5)
    try:
        c.connect(("127.0.0.1", port))
        held.append(c)
    except OSError:
        c.close()
        break
# Prove it: a fresh connect must not complete within a second.
p = socket.socket()
p.settimeout(1)
try:
    p.connect(("127.0.0.1", port))
    sys.exit("the backlog did not fill")
except socket.timeout:
    pass
p.close()
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d\n" % port)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
EOF
	BH_PID=$!
	pids+=("$BH_PID")
}

declare -A port sinkpid
blackhole "$work/bh.port"
wait_until 10 test -s "$work/bh.port" || {
	echo "# the full-backlog listener did not start (is /proc/sys/net/ipv4/tcp_abort_on_overflow 1?)"
	exit 1
}
port[connect]=$(head -1 "$work/bh.port")
while IFS=: read -r name verb opts; do
	[ "$name" = connect ] && continue
	port[$name]=$(free_port)
	# shellcheck disable=SC2086
	sink_at "$name-1" "${port[$name]}" --delay "$verb=forever" $opts || exit 1
	sinkpid[$name]=$SINK_PID
done <<<"$cases"

KUMOD_PORT=$(free_port)
{
	echo "listen = ( { address = \"127.0.0.1:$KUMOD_PORT\"; relay_hosts = [ \"127.0.0.0/8\" ]; } );"
	echo "spool_dir = \"$work/spool\"; log_dir = \"$work/logs\"; hostname = \"kumod.test\"; shutdown_timeout = 2;"
	printf 'dns = { local_data = [ '
	for n in $names; do printf '"t-%s.test. MX 10 mx.t-%s.test.", "mx.t-%s.test. A 127.0.0.1",\n' "$n" "$n" "$n"; done
	echo '"unused.test. A 127.0.0.1" ]; };'
	echo 'queues = { default = { retry_interval = "2s"; max_retry_interval = "2s"; max_age = "10min"; }; };'
	echo 'shaping = {'
	echo '  default = { prohibited_hosts = [ ]; enable_tls = "Disabled"; enable_mta_sts = false; connection_limit = 2; };'
	echo '  domains = ('
	sep=
	form=1 # integer seconds and duration strings, alternately
	for n in $names; do
		t=${n%-np}
		extra=
		[ "$t" = starttls ] && extra='enable_tls = "OpportunisticInsecure";'
		# one connection: the 2nd message must wait for it (and its RSET)
		[ "$t" = rset ] && extra='connection_limit = 1;'
		printf '%s    { domain = "t-%s.test"; smtp_port = %s; %s_timeout = %s; %s }\n' "$sep" "$n" "${port[$n]}" "$t" "$form" "$extra"
		sep=,
		if [ "$form" = 1 ]; then form='"1s"'; else form=1; fi
	done
	echo '  );'
	echo '};'
} >"$work/kumod.conf"
check "check-config accepts the config" "$KUMOD" --check-config "$work/kumod.conf"
start_kumod "$work/kumod.conf" || finish

inject() { # N DOMAIN...
	local n=$1
	shift
	"$PY" "$here/kumod-inject.py" "$KUMOD_PORT" "$n" 1 "$work/acked" "$@"
}
jl() { cat "$work"/logs/*.jsonl 2>/dev/null; }
# tf_text NAME: the first TransientFailure text for t-NAME.test
tf_text() {
	jl | jq -r --arg d "t-$1.test" 'select(.type=="TransientFailure" and (.recipient | endswith("@" + $d))) | "\(.response.code) \(.response.enhanced_code) \(.response.content)"' | head -1
}
has_tf() { [ -n "$(tf_text "$1")" ]; }
saved() { find "$work/$1.d" -type f 2>/dev/null | wc -l; }

# rset needs a connection that already carried a message: send the first
# one now and let it arrive (the RSET delay does not touch it).
: >"$work/acked"
inject 1 t-rset.test
check "rset: the first message arrives on a fresh connection" wait_until 15 sh -c "[ \$(find '$work/rset-1.d' -type f | wc -l) -ge 1 ]"
# One message per phase (the rset one reuses the idle connection).
doms=$(for n in $names; do echo "t-$n.test"; done)
# shellcheck disable=SC2086
inject "$(wc -w <<<"$names")" $doms
check_eq "all injected (1 + one per phase)" "$(wc -l <"$work/acked")" "$(($(wc -w <<<"$names") + 1))"

t0=$(date +%s)
for n in $names; do
	t=${n%-np}
	if wait_until 12 has_tf "$n"; then
		txt=$(tf_text "$n")
		case $txt in
		4[0-9][0-9]\ 4.*\ "$t: "*) pass "$n: TransientFailure names the $t phase: $txt" ;;
		*) fail "$n: TransientFailure should start with '$t: ': got '$txt'" ;;
		esac
		case $txt in
		*[Tt]imeout* | *timed\ out*) pass "$n: it is a timeout" ;;
		*) fail "$n: the text does not say timeout: '$txt'" ;;
		esac
		# The first failure comes about 1 s after the message was received:
		# the 1 s timeout, not an instant refusal nor a seed default.
		lag=$(jl | jq -r --arg d "t-$n.test" 'select(.type=="TransientFailure" and (.recipient | endswith("@" + $d))) | (.timestamp - .created) * 100 | round / 100' | head -1)
		check "$n: the failure came 0.9 to 8 s after reception (${lag} s)" \
			awk -v x="$lag" 'BEGIN { exit !(x >= 0.9 && x < 8) }'
	else
		fail "$n: no TransientFailure within 12 s of injection (a 1 s $t timeout)"
		jl | jq -c --arg d "t-$n.test" 'select(.recipient | endswith("@" + $d))' | head -3 | sed 's/^/# /'
	fi
done
echo "# all phases checked $(($(date +%s) - t0)) s after injection"
rset1=$(head -1 "$work/acked")
rset2=$(tail -n +2 "$work/acked" | grep '@t-rset\.test$')
check_eq "rset: the first message was delivered once, before the RSET" "$(saved_rcpts rset-1 | grep -cx "$rset1")" 1
for n in $names; do
	case $n in
	data_dot) ;; # the data went out before the dot's reply was held: the sink may have saved it
	rset) ;;
	*) check_eq "$n: nothing was accepted while the reply was held" "$(saved "$n-1")" 0 ;;
	esac
done

# --- the delay is gone: the same port answers at once ---
kill "$BH_PID" 2>/dev/null
wait "$BH_PID" 2>/dev/null
for n in $names; do
	[ "$n" = connect ] || { kill "${sinkpid[$n]}" 2>/dev/null; wait "${sinkpid[$n]}" 2>/dev/null; }
done
while IFS=: read -r name verb opts; do
	# shellcheck disable=SC2086
	sink_at "$name-2" "${port[$name]}" $opts || fail "restart the $name sink"
done <<<"$cases"
for n in $names; do
	[ "$n" = rset ] && continue
	if wait_until 20 sh -c "[ \$(find '$work/$n-2.d' -type f | wc -l) -ge 1 ]"; then
		pass "$n: delivered once the delay is gone"
	else
		fail "$n: not delivered within 20 s of the sink's restart"
	fi
done
# The RSET delay holds only a reused connection: the retry of the second
# message opens a fresh one (no RSET), so it may arrive before the restart.
r2() { { saved_rcpts rset-1; saved_rcpts rset-2; } | grep -qx "$rset2"; }
check "rset: the second message is delivered (on a fresh connection or after the restart)" wait_until 20 r2
sleep 1
for n in $names; do
	[ "$n" = rset ] && continue
	check_eq "$n: exactly one copy at the restarted sink" "$(saved "$n-2")" 1
done
check_eq "rset: the second message exactly once" "$({ saved_rcpts rset-1; saved_rcpts rset-2; } | grep -cx "$rset2")" 1
check "spool empty" wait_until 10 spool_empty
check_eq "Delivery records for the phase messages" \
	"$(jl | jq -r 'select(.type=="Delivery") | .recipient' | sort -u | wc -l)" "$(($(wc -w <<<"$names") + 1))"
finish
