#!/usr/bin/env bash
# kumod-egress-tls.sh: the five enable_tls modes of the egress path against
# three kinds of destination, one sink per (kind, mode) so each sink's stats
# speak for one path only:
#   t  STARTTLS with a certificate for the MX host name, signed by a lab CA
#   s  STARTTLS with smtp-sink's self-signed certificate
#   w  STARTTLS with that lab-CA certificate, but the MX host name is not in it
#   n  no STARTTLS (--disable STARTTLS)
# The verdict is the sink's: what it saved, and whether in TLS (X-Sink-TLS)
# or in clear; that a refused path saved nothing, that every one of its
# connections asked for STARTTLS (no clear-text fallback on the same host,
# across retries), and kumod's TransientFailure naming why.
#
# kumod trusts the lab CA through tls_client.ca_file (kumod.conf(5)).
. "$(dirname "$0")/kumod-common.sh"
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }
command -v openssl >/dev/null || { echo "SKIP: openssl missing"; exit 77; }
PY=/usr/bin/python3
pass() { passed=$((passed + 1)); echo "ok - $*"; }
fail() { failed=$((failed + 1)); echo "not ok - $*"; }

modes="Opportunistic OpportunisticInsecure Required RequiredInsecure Disabled"
short() {
	case $1 in
	Opportunistic) echo opp ;; OpportunisticInsecure) echo oppins ;; Required) echo req ;;
	RequiredInsecure) echo reqins ;; Disabled) echo dis ;;
	esac
}

# --- a lab CA and a server certificate naming every "t" MX host ---
san=
for m in $modes; do san="${san:+$san,}DNS:mx.t-$(short "$m").test"; done
(
	cd "$work" || exit 1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
		-days 2 -subj /CN=kumo-egress-lab-ca -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr \
			-subj /CN=mx.t-opp.test &&
		printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n' \
			"$san" >srv.ext &&
		openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 \
			-extfile srv.ext
) >"$work/openssl.out" 2>&1 || { echo "# making the lab certificates failed:"; cat "$work/openssl.out"; exit 1; }
check "the lab certificate verifies against the lab CA" \
	sh -c "openssl verify -CAfile '$work/ca.pem' '$work/srv.pem' >/dev/null 2>&1"

kinds="t w s n"

declare -A port spid
for k in $kinds; do
	for m in $modes; do
		n=$k-$(short "$m")
		case $k in
		t | w) start_sink "$n" --cert "$work/srv.pem" --key "$work/srv.key" || exit 1 ;;
		s) start_sink "$n" || exit 1 ;;
		n) start_sink "$n" --disable STARTTLS || exit 1 ;;
		esac
		port[$n]=$SINK_PORT
		spid[$n]=$SINK_PID
	done
done

KUMOD_PORT=$(free_port)
{
	echo "listen = ( { address = \"127.0.0.1:$KUMOD_PORT\"; relay_hosts = [ \"127.0.0.0/8\" ]; } );"
	echo "spool_dir = \"$work/spool\"; log_dir = \"$work/logs\"; hostname = \"kumod.test\"; shutdown_timeout = 2;"
	echo "tls_client = { ca_file = \"$work/ca.pem\"; };"
	printf 'dns = { local_data = [ '
	for k in $kinds; do for m in $modes; do
		n=$k-$(short "$m")
		printf '"%s.test. MX 10 mx.%s.test.", "mx.%s.test. A 127.0.0.1",\n' "$n" "$n" "$n"
	done; done
	echo '"unused.test. A 127.0.0.1" ]; };'
	echo 'queues = { default = { retry_interval = "2s"; max_retry_interval = "2s"; max_age = "10min"; }; };'
	echo 'shaping = {'
	echo '  default = { prohibited_hosts = [ ]; enable_mta_sts = false; connection_limit = 2; };'
	echo '  domains = ('
	sep=
	for k in $kinds; do for m in $modes; do
		n=$k-$(short "$m")
		printf '%s    { domain = "%s.test"; smtp_port = %s; enable_tls = "%s"; }\n' "$sep" "$n" "${port[$n]}" "$m"
		sep=,
	done; done
	echo '  );'
	echo '};'
} >"$work/kumod.conf"
check "check-config accepts the config" "$KUMOD" --check-config "$work/kumod.conf"
start_kumod "$work/kumod.conf" || exit 1

doms=$(for k in $kinds; do for m in $modes; do echo "$k-$(short "$m").test"; done; done)
# Two messages per path, injected in one go.
# shellcheck disable=SC2086
"$PY" "$here/kumod-inject.py" "$KUMOD_PORT" $((2 * $(wc -w <<<"$doms"))) 2 "$work/acked" $doms
check_eq "all injected" "$(wc -l <"$work/acked")" $((2 * $(wc -w <<<"$doms")))

jl() { cat "$work"/logs/*.jsonl 2>/dev/null; }
saved() { find "$work/$1.d" -type f 2>/dev/null | wc -l; }
saved_tls() { find "$work/$1.d" -type f -print0 2>/dev/null | xargs -0 -r grep -l '^X-Sink-TLS: TLS1\.[23] ' | wc -l; }
tfs() { jl | jq -r --arg d "$1.test" 'select(.type=="TransientFailure" and (.recipient | endswith("@" + $d))) | .response.content'; }
# expect NAME tls|clear|fail
expect() {
	local n=$1 want=$2
	case $want in
	tls | clear)
		if ! wait_until 15 sh -c "[ \$(find '$work/$n.d' -type f | wc -l) -ge 2 ]"; then
			fail "$n: both messages delivered within 15 s (saved $(saved "$n"); kumod said: $(tfs "$n" | head -1))"
			return
		fi
		if [ "$want" = tls ]; then
			check_eq "$n: both delivered over TLS" "$(saved "$n") $(saved_tls "$n")" "2 2"
		else
			check_eq "$n: both delivered in clear text" "$(saved "$n") $(saved_tls "$n")" "2 0"
		fi
		;;
	fail)
		# Two deliveries and at least one retry each (retry_interval 2 s).
		enough_tf() { [ "$(tfs "$n" | wc -l)" -ge 4 ]; }
		check "$n: refused: TransientFailures for both messages and their retries" wait_until 15 enough_tf
		check_eq "$n: nothing reached the sink" "$(saved "$n")" 0
		;;
	esac
}

# The matrix (seed 001's definitions of the modes).
expect t-opp tls
expect t-oppins tls
expect t-req tls
expect t-reqins tls
expect t-dis clear
expect w-opp fail
expect w-oppins tls
expect w-req fail
expect w-reqins tls
expect w-dis clear
expect s-opp fail
expect s-oppins tls
expect s-req fail
expect s-reqins tls
expect s-dis clear
expect n-opp clear
expect n-oppins clear
expect n-req fail
expect n-reqins fail
expect n-dis clear

# The sink's view of the refusals and of Disabled. Stop kumod first, so no
# connection is half-way through its dialogue when the stats are read.
kill -TERM "$KUMOD_PID"
check "kumod exits within 10 s of SIGTERM" wait_until 10 sh -c "! kill -0 $KUMOD_PID"
for n in "${!spid[@]}"; do sink_stats "$n" "${spid[$n]}" || fail "stats of sink $n"; done
# stat NAME JQ: evaluate JQ over that sink's stats.
stat() { jq -r "$2" "$work/$1.json"; }
refused="s-opp s-req w-opp w-req"
for n in $refused; do
	c=$(stat "$n" .connections.total)
	check "$n: the sink saw more than one connection (retries) ($c)" test "$c" -ge 2
	# A 220 for the banner and one for STARTTLS on every connection: no
	# connection went on in clear text after the certificate was refused.
	check_eq "$n: every connection asked for STARTTLS (220 replies = 2 x connections)" \
		"$(stat "$n" '.replies["220"] // 0')" $((2 * c))
	check_eq "$n: no MAIL was answered (250s are EHLO only)" \
		"$(stat "$n" '.replies["250"] // 0')" "$c"
	check_eq "$n: no TLS handshake completed at the sink" "$(stat "$n" '.tls.versions | length')" 0
	# kumod aborts each handshake with an alert (and reads what is pending
	# before closing, so no RST destroys it): the sink counts every one.
	check_eq "$n: every handshake failed with kumod's alert at the sink" \
		"$(stat "$n" '.events.tls_handshake_failed // 0')" "$c"
	check "$n: kumod names the certificate ($(tfs "$n" | head -1))" \
		sh -c "cat '$work'/logs/*.jsonl | jq -r 'select(.type==\"TransientFailure\" and (.recipient | endswith(\"@$n.test\"))) | .response.content' | grep -qi 'certificate\|verif'"
done
for n in n-req n-reqins; do
	check "$n: kumod says STARTTLS was not offered ($(tfs "$n" | head -1))" \
		sh -c "cat '$work'/logs/*.jsonl | jq -r 'select(.type==\"TransientFailure\" and (.recipient | endswith(\"@$n.test\"))) | .response.content' | grep -qi 'STARTTLS not advertised'"
	check_eq "$n: no MAIL was answered" "$(stat "$n" '[.replies["250"] // 0, .connections.total] | .[0] == .[1]')" true
done
for k in $kinds; do
	[ "$k" = n ] && continue
	c=$(stat "$k-dis" .connections.total)
	check_eq "$k-dis: Disabled never sent STARTTLS (220 replies = connections)" \
		"$(stat "$k-dis" '.replies["220"] // 0')" "$c"
	check_eq "$k-dis: no TLS handshake at the sink" "$(stat "$k-dis" '.tls.versions | length')" 0
done
check "the spool holds only the refused paths' messages" \
	test "$(find "$work/spool" -type f | wc -l)" -eq $((2 * $(wc -w <<<"$refused n-req n-reqins")))
finish
