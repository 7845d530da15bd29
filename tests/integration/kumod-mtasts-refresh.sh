#!/usr/bin/env bash
# kumod-mtasts-refresh.sh: kumod's MTA-STS cache over time (RFC 8461 3.3,
# 5.1) on 127.0.0.1, with smtp-sink's saved messages as the verdict. nsd
# serves an unsigned zone whose _mta-sts TXT records have a 1 s TTL,
# tests/lab/mtasts-server.py the policies, and kumod checks the TXT records
# again every second (mta_sts.recheck_interval = 1):
#   idchg   enforce, MX listed; then the id changes and the new policy no
#           longer lists the MX -> the server sees a second fetch, and once
#           the new policy is in force a message is deferred, nothing more
#           at the sink;
#   refail  enforce, MX listed; then the id changes but the fetch gets a
#           404 -> the cached enforce policy stays: kumod says so and keeps
#           delivering under mta-sts:enforce.
# The message that discovers a new id may still go under the old policy
# (RFC 8461 5.1: the cached policy is used while the new one is fetched).
. "$(dirname "$0")/kumod-common.sh"
for tool in nsd drill certtool jq; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
PY=/usr/bin/python3
[ -x "$PY" ] || { echo "SKIP: $PY missing"; exit 77; }
top_srcdir=${top_srcdir:-$top}
. "$top_srcdir/tests/lab/mkzone.sh"
abort() { echo "not ok - $*"; failed=$((failed + 1)); finish; }
cd "$work" || exit 2
doms="idchg refail"

# --- certificates: a lab CA, one leaf for the MX hosts and the policy hosts ---
certtool --generate-privkey --key-type=ecdsa --outfile ca.key 2>/dev/null || abort "certtool"
printf 'cn = "STS refresh Lab CA"\nca\ncert_signing_key\nexpiration_days = 30\n' >ca.tmpl
certtool --generate-self-signed --load-privkey ca.key --template ca.tmpl --outfile ca.pem 2>/dev/null ||
	abort "certtool CA"
{
	echo 'cn = "mx-idchg.example.test"'
	for d in $doms; do echo "dns_name = \"mx-$d.example.test\""; echo "dns_name = \"mta-sts.$d.example.test\""; done
	printf 'tls_www_server\nsigning_key\nexpiration_days = 30\n'
} >leaf.tmpl
certtool --generate-privkey --key-type=ecdsa --outfile leaf.key 2>/dev/null &&
	certtool --generate-certificate --load-privkey leaf.key --load-ca-certificate ca.pem \
		--load-ca-privkey ca.key --template leaf.tmpl --outfile leaf.pem 2>/dev/null || abort "certtool leaf"
cat leaf.pem ca.pem >chain.pem
start_sink good --cert chain.pem --key leaf.key || abort "sink"

# --- the zone (unsigned: MTA-STS needs no DNSSEC); ID is the TXT records' id ---
zone() { # ID
	cat <<'EOF'
$ORIGIN example.test.
$TTL 300
@	IN SOA ns.example.test. hostmaster.example.test. 1 3600 900 604800 1
@	IN NS ns.example.test.
ns	IN A 127.0.0.1
EOF
	for d in $doms; do
		echo "$d	IN MX 10 mx-$d.example.test."
		echo "mx-$d	IN A 127.0.0.1"
		echo "_mta-sts.$d	1	IN TXT \"v=STSv1; id=$1\""
	done
}
zone one >example.test.zone
lab_start_nsd "$work" example.test "$work/example.test.zone" || abort "nsd did not start"

mkdir policies
policy() { # DOMAIN MODE MX
	printf 'version: STSv1\r\nmode: %s\r\nmx: %s\r\nmax_age: 86400\r\n' "$2" "$3" \
		>"policies/mta-sts.$1.example.test.txt"
}
policy idchg enforce mx-idchg.example.test
policy refail enforce mx-refail.example.test
start_bg sts "$PY" "$top_srcdir/tests/lab/mtasts-server.py" --cert chain.pem --key leaf.key \
	--dir "$work/policies" --portfile "$work/sts.port" --lifetime 300 --verbose
wait_until 10 test -s "$work/sts.port" || abort "mtasts-server did not start: $(cat "$work/sts.out")"
P_STS=$(head -1 sts.port)
fetches() { grep -c "^mtasts-server: host mta-sts.$1.example.test path " "$work/sts.out"; }

KUMOD_PORT=$(free_port)
connect_to=
for d in $doms; do connect_to="$connect_to${connect_to:+, }\"mta-sts.$d.example.test:443:127.0.0.1:$P_STS\""; done
cat >"$work/kumod.conf" <<EOF
listen = ( { address = "127.0.0.1:$KUMOD_PORT"; relay_hosts = [ "127.0.0.0/8" ]; } );
spool_dir = "$work/spool";
log_dir = "$work/logs";
hostname = "kumod.test";
shutdown_timeout = 5;
dns = { forwarders = [ "127.0.0.1@$LAB_DNS_PORT" ]; };
tls_client = { ca_file = "$work/ca.pem"; };
mta_sts = { ca_file = "$work/ca.pem"; wait = "10s"; fetch_timeout = "5s"; recheck_interval = 1;
            connect_to = [ $connect_to ]; };
queues = { default = { retry_interval = "10min"; }; };
shaping = { default = { smtp_port = $SINK_PORT; prohibited_hosts = [ ]; enable_tls = "Opportunistic";
                        idle_timeout = 1; }; };
EOF
check "check-config accepts mta_sts.recheck_interval" "$KUMOD" --check-config "$work/kumod.conf"
start_kumod "$work/kumod.conf" || abort "kumod did not start"

jl() { cat "$work"/logs/*.jsonl 2>/dev/null; }
rec() { jl | jq -c --arg t "$1" --arg r "$2" 'select(.type == $t and .recipient == $r)'; }
at_sink() { saved_rcpts good | grep -c "^$1\$"; }
send() { "$PY" "$here/kumod-inject.py" "$KUMOD_PORT" 1 1 "$work/injected" "$1"; }

# --- round one: both policies enforce and list the MX ---
send idchg.example.test
send refail.example.test
one() { [ "$(at_sink r0@idchg.example.test)" -eq 1 ] && [ "$(at_sink r0@refail.example.test)" -eq 1 ]; }
check "round one: both delivered under their enforce policies" wait_until 20 one
first() { [ -n "$(rec Delivery r0@refail.example.test)" ] && [ -n "$(rec Delivery r0@idchg.example.test)" ]; }
wait_until 5 first
check_eq "round one: idchg's Delivery says mta-sts:enforce" \
	"$(rec Delivery r0@idchg.example.test | jq -r .tls_policy)" mta-sts:enforce
f_idchg=$(fetches idchg)
f_refail=$(fetches refail)
check "round one: one fetch per domain (idchg $f_idchg, refail $f_refail)" test "$f_idchg" -ge 1 -a "$f_refail" -ge 1

# --- the change: new ids; idchg's new policy leaves the MX out, refail's is gone (404) ---
zone two >example.test.zone
policy idchg enforce other.example.test
rm "policies/mta-sts.refail.example.test.txt"
lab_restart_nsd "$work" example.test || abort "nsd did not restart"
check "the zone now says id=two" sh -c "drill -p $LAB_DNS_PORT _mta-sts.idchg.example.test TXT @127.0.0.1 | grep -q 'id=two'"
sleep 2.5 # the TXT TTL (1 s) and recheck_interval (1 s) pass; idle connections close (1 s)

# --- round two: a message each finds the new ids. RFC 8461 5.1 lets a sender
# keep using its unexpired cached policy while it fetches the new one, which
# kumod does, so these two may still go out under the old policies ---
: >"$work/injected"
"$PY" "$here/kumod-inject.py" "$KUMOD_PORT" 2 1 "$work/injected" idchg.example.test refail.example.test
check_eq "round two: both accepted" "$(wc -l <"$work/injected")" 2
refetched() { [ "$(fetches idchg)" -gt "$f_idchg" ] && [ "$(fetches refail)" -gt "$f_refail" ]; }
check "the new ids fetch both policies again (idchg $(fetches idchg), refail $(fetches refail) requests)" wait_until 20 refetched
check "refail: kumod says it kept the cached policy" \
	wait_until 10 grep -q 'MTA-STS policy fetch for refail.example.test failed: .*(the cached policy stays)' "$work/kumod.out"
settled2() { [ -n "$(rec Delivery r0@idchg.example.test | sed -n 2p)$(rec TransientFailure r0@idchg.example.test)" ] &&
	[ -n "$(rec Delivery r1@refail.example.test)" ]; }
wait_until 20 settled2
n_idchg=$(saved_rcpts good | grep -c '@idchg.example.test$')
sleep 2 # the ready queues' hosts (kept at most recheck_interval) pick up the new policies

# --- round three: the new policies are in force ---
: >"$work/injected"
"$PY" "$here/kumod-inject.py" "$KUMOD_PORT" 2 1 "$work/injected" idchg.example.test refail.example.test
# kumod-inject.py numbers recipients r0, r1 again: round three's are told apart by count.
three() { [ "$(rec Delivery r1@refail.example.test | wc -l)" -ge 2 ] &&
	[ -n "$(rec TransientFailure r0@idchg.example.test)" ]; }
check "round three settles (a deferral for idchg, a delivery for refail)" wait_until 30 three
check "idchg: its new policy leaves the MX out: deferred ($(rec TransientFailure r0@idchg.example.test | tail -1 | jq -r .response.content | head -c 160))" \
	sh -c "rec_out='$(rec TransientFailure r0@idchg.example.test | tail -1 | jq -r .response.content)'; case \$rec_out in *MTA-STS*) exit 0;; *) exit 1;; esac"
sleep 1
check_eq "idchg: nothing more at the sink" "$(saved_rcpts good | grep -c '@idchg.example.test$')" "$n_idchg"
check_eq "refail: delivered again under the cached enforce policy after the failed refresh" \
	"$(rec Delivery r1@refail.example.test | tail -1 | jq -r .tls_policy)" mta-sts:enforce
check_eq "refail: both refail messages of rounds two and three at the sink" \
	"$(saved_rcpts good | grep -c '^r1@refail.example.test$')" 2
finish
