#!/usr/bin/env bash
# kumod-tlspolicy.sh: kumod's enable_mta_sts and enable_dane (seed 001) on
# 127.0.0.1. The names come from a DNSSEC-signed zone served by nsd (signed
# at run time, tests/lab/mkzone.sh), MTA-STS policies from
# tests/lab/mtasts-server.py (reached through mta_sts.connect_to), TLSA data
# from danetool, certificates from certtool. Two smtp-sinks: "good" presents
# a lab-CA certificate naming every MX host, "bad" a self-signed one. One
# domain per case, each with its own MX host (hence its own ready queue):
#   enf      MTA-STS enforce, MX matches           -> delivered, Required, verified
#   nomatch  enforce, MX outside the policy        -> deferred (MTA-STS), nothing at the sink
#   enfbad   enforce, MX matches, bad certificate  -> deferred, nothing at the sink
#   testing  testing, bad certificate              -> delivered (OpportunisticInsecure)
#   none     mode none                             -> the configured enable_tls (Opportunistic)
#   fail     TXT record, but the policy fetch gets a 404 -> as if no policy (RFC 8461 3.3)
#   nonebad  mode none, bad certificate            -> deferred: Opportunistic verifies
#   ee       DANE-EE 3 1 1 of the leaf             -> delivered, "dane": "verified"
#   eebad    DANE-EE of the self-signed cert       -> delivered: DANE replaces PKIX
#   badhash  DANE-EE of another key                -> deferred, nothing at the sink
#   bogus    TLSA tampered after signing           -> deferred (bogus), nothing at the sink
#   nodane   no TLSA (secure denial)               -> delivered without DANE (PKIX)
#   ta       DANE-TA 2 1 1 of the lab CA           -> delivered, "dane": "verified"
#   both     DANE-EE + enforce that excludes the MX -> delivered by DANE (MTA-STS ignored)
# The sinks' saved messages are the verdict; kumod's JSON log must agree.
. "$(dirname "$0")/kumod-common.sh"
for tool in nsd ldns-keygen ldns-signzone drill certtool danetool jq; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
PY=/usr/bin/python3
[ -x "$PY" ] || { echo "SKIP: $PY missing"; exit 77; }
top_srcdir=${top_srcdir:-$top}

. "$top_srcdir/tests/lab/mkzone.sh"
abort() { echo "not ok - $*"; failed=$((failed + 1)); finish; }

cd "$work" || exit 2
sts_domains="enf nomatch enfbad testing none nonebad both fail"
dane_hosts="ee eebad badhash bogus nodane ta both"
all="enf nomatch enfbad testing none nonebad fail ee eebad badhash bogus nodane ta both"

# --- certificates ---
certtool --generate-privkey --key-type=ecdsa --outfile ca.key 2>/dev/null || abort "certtool"
printf 'cn = "TLS policy Lab CA"\nca\ncert_signing_key\nexpiration_days = 30\n' >ca.tmpl
certtool --generate-self-signed --load-privkey ca.key --template ca.tmpl --outfile ca.pem 2>/dev/null ||
	abort "certtool CA"
{
	echo 'cn = "mx-enf.example.test"'
	for d in $all; do echo "dns_name = \"mx-$d.example.test\""; done
	for d in $sts_domains; do echo "dns_name = \"mta-sts.$d.example.test\""; done
	echo 'tls_www_server'
	echo 'signing_key'
	echo 'expiration_days = 30'
} >leaf.tmpl
mkleaf() { # NAME
	certtool --generate-privkey --key-type=ecdsa --outfile "$1.key" 2>/dev/null &&
		certtool --generate-certificate --load-privkey "$1.key" --load-ca-certificate ca.pem \
			--load-ca-privkey ca.key --template leaf.tmpl --outfile "$1.pem" 2>/dev/null
}
mkleaf leaf || abort "certtool leaf"
mkleaf other || abort "certtool other"
cat leaf.pem ca.pem >chain.pem
# The bad sink's certificate: self-signed, so PKIX fails; DANE-EE can still name it.
printf 'cn = "mx-bad.example.test"\ndns_name = "mx-testing.example.test"\ntls_www_server\nsigning_key\nexpiration_days = 30\n' >bad.tmpl
certtool --generate-privkey --key-type=ecdsa --outfile bad.key 2>/dev/null &&
	certtool --generate-self-signed --load-privkey bad.key --template bad.tmpl --outfile bad.pem 2>/dev/null ||
	abort "certtool bad"

# --- the sinks (their ports name the TLSA records: _PORT._tcp.HOST) ---
start_sink good --cert chain.pem --key leaf.key || abort "good sink"
P_GOOD=$SINK_PORT
PID_GOOD=$SINK_PID
start_sink bad --cert bad.pem --key bad.key || abort "bad sink"
P_BAD=$SINK_PORT
PID_BAD=$SINK_PID

# --- the zone ---
tlsa() { # HOST PORT CERT [--ca]
	danetool --tlsa-rr --port "$2" --host "mx-$1.example.test" --load-certificate "$3" ${4:-} 2>/dev/null
}
{
	cat <<'EOF'
$ORIGIN example.test.
$TTL 300
@	IN SOA ns.example.test. hostmaster.example.test. 1 3600 900 604800 300
@	IN NS ns.example.test.
ns	IN A 127.0.0.1
EOF
	for d in $all; do
		echo "$d	IN MX 10 mx-$d.example.test."
		echo "mx-$d	IN A 127.0.0.1"
	done
	for d in $sts_domains; do echo "_mta-sts.$d	IN TXT \"v=STSv1; id=20261122T1\""; done
	tlsa ee "$P_GOOD" leaf.pem
	tlsa eebad "$P_BAD" bad.pem
	tlsa badhash "$P_GOOD" other.pem
	tlsa bogus "$P_GOOD" leaf.pem
	tlsa ta "$P_GOOD" ca.pem --ca
	tlsa both "$P_GOOD" leaf.pem
} >example.test.zone
check_eq "danetool wrote 6 TLSA records" "$(grep -c 'IN TLSA' example.test.zone)" 6
lab_sign_zone example.test example.test.zone example.test.signed || abort "signing the zone"
# Tamper with mx-bogus's TLSA after signing: change the digest's first hex digit.
"$PY" - example.test.signed "_$P_GOOD._tcp.mx-bogus.example.test." <<'EOF' || abort "tampering"
import re, sys
path, owner = sys.argv[1], sys.argv[2]
lines = open(path).read().split("\n")
for i, l in enumerate(lines):
    f = l.split()
    if len(f) >= 8 and f[0] == owner and f[3] == "TLSA":
        d = f[7]
        f[7] = ("0" if d[0] != "0" else "1") + d[1:]
        lines[i] = "\t".join(f)
        break
else:
    sys.exit(1)
open(path, "w").write("\n".join(lines))
EOF
lab_start_nsd "$work" example.test "$work/example.test.signed" || abort "nsd did not start"
echo "# nsd on 127.0.0.1@$LAB_DNS_PORT, sinks good=$P_GOOD bad=$P_BAD"
check "the tampered TLSA answers bogus to a validating resolver" \
	sh -c "! drill -k '$LAB_KSK.ds' -S -p $LAB_DNS_PORT _$P_GOOD._tcp.mx-bogus.example.test TLSA @127.0.0.1 2>&1 | grep -q 'Chase successful'"

# --- MTA-STS policies ---
mkdir policies
policy() { # DOMAIN MODE MX...
	local d=$1 mode=$2
	shift 2
	{
		printf 'version: STSv1\r\nmode: %s\r\n' "$mode"
		for m in "$@"; do printf 'mx: %s\r\n' "$m"; done
		printf 'max_age: 86400\r\n'
	} >"policies/mta-sts.$d.example.test.txt"
}
policy enf enforce mx-enf.example.test
policy nomatch enforce other.example.test
policy enfbad enforce mx-enfbad.example.test
policy testing testing other.example.test
policy none none mx-none.example.test
policy nonebad none mx-nonebad.example.test
policy both enforce other.example.test
start_bg sts "$PY" "$top_srcdir/tests/lab/mtasts-server.py" --cert chain.pem --key leaf.key \
	--dir "$work/policies" --portfile "$work/sts.port" --lifetime 300
wait_until 10 test -s "$work/sts.port" || abort "mtasts-server did not start: $(cat "$work/sts.out")"
P_STS=$(head -1 sts.port)

# --- kumod ---
KUMOD_PORT=$(free_port)
connect_to=
for d in $sts_domains; do
	connect_to="$connect_to${connect_to:+, }\"mta-sts.$d.example.test:443:127.0.0.1:$P_STS\""
done
bad_paths=
for d in enfbad testing nonebad eebad; do
	bad_paths="$bad_paths${bad_paths:+, }{ domain = \"$d.example.test\"; smtp_port = $P_BAD; }"
done
cat >"$work/kumod.conf" <<EOF
listen = ( { address = "127.0.0.1:$KUMOD_PORT"; relay_hosts = [ "127.0.0.0/8" ]; } );
spool_dir = "$work/spool";
log_dir = "$work/logs";
pidfile = "$work/kumod.pid";
hostname = "kumod.test";
shutdown_timeout = 5;
dns = { forwarders = [ "127.0.0.1@$LAB_DNS_PORT" ]; trust_anchor_file = "$LAB_KSK.ds"; };
tls_client = { ca_file = "$work/ca.pem"; };
mta_sts = { ca_file = "$work/ca.pem"; wait = "20s"; fetch_timeout = "10s";
            connect_to = [ $connect_to ]; };
queues = { default = { retry_interval = "10min"; }; };
shaping = {
  default = { smtp_port = $P_GOOD; prohibited_hosts = [ ]; enable_tls = "Opportunistic";
              enable_dane = true; };
  domains = ( $bad_paths );
};
EOF
check "check-config accepts the configuration" "$KUMOD" --check-config "$work/kumod.conf"
KUMOD_ARGS="-t queue" start_kumod "$work/kumod.conf" || abort "kumod did not start"

# One message per domain: rN@DOMAIN.example.test.
doms=()
for d in $all; do doms+=("$d.example.test"); done
n=${#doms[@]}
"$PY" "$top_srcdir/tests/integration/kumod-inject.py" "$KUMOD_PORT" "$n" 1 "$work/injected" "${doms[@]}"
check_eq "all $n messages accepted" "$(wc -l <"$work/injected")" "$n"

jl() { cat "$work"/logs/*.jsonl 2>/dev/null; }
# rec TYPE DOMAIN: the records of that type for the domain's recipient.
rec() { jl | jq -c --arg t "$1" --arg d "@$2.example.test" 'select(.type == $t and (.recipient | endswith($d)))'; }
at_sink() { # SINK DOMAIN: messages saved for the domain
	find "$work/$1.d" -type f -print0 | xargs -0 -r grep -l "^X-Sink-Rcpt-To: <r[0-9]*@$2.example.test>" | wc -l
}
delivered="enf testing none fail ee eebad nodane ta both"
deferred="nomatch enfbad nonebad badhash bogus"
settled() {
	local d
	for d in $delivered; do [ -n "$(rec Delivery "$d")" ] || return 1; done
	for d in $deferred; do [ -n "$(rec TransientFailure "$d")" ] || return 1; done
}
check "every case settles (a Delivery or a TransientFailure each) within 90 s" wait_until 90 settled
sleep 0.5

sink_of() { case $1 in enfbad | testing | nonebad | eebad) echo bad ;; *) echo good ;; esac; }
for d in $delivered; do
	check_eq "$d: delivered once at the $(sink_of "$d") sink" "$(at_sink "$(sink_of "$d")" "$d")" 1
done
for d in $deferred; do
	check_eq "$d: nothing at the $(sink_of "$d") sink" "$(at_sink "$(sink_of "$d")" "$d")" 0
	check_eq "$d: no Delivery record" "$(rec Delivery "$d" | wc -l)" 0
done

field() { rec Delivery "$1" | head -1 | jq -r "$2"; }
# fields DOMAIN KEY...: the Delivery record's values, tab-separated, null as "null".
fields() {
	local d=$1
	shift
	rec Delivery "$d" | head -1 | jq -r --args '[$ARGS.positional[] as $k | .[$k] // "null"] | @tsv' "$@"
}
has() { grep -q -- "$1" <<<"$2"; }
tf() { rec TransientFailure "$1" | head -1 | jq -r '.response.content'; }
# MTA-STS
check_eq "enf: tls_policy / tls_mode / mta_sts" "$(fields enf tls_policy tls_mode mta_sts)" \
	"$(printf 'mta-sts:enforce\tRequired\tenforce')"
check "enf: delivered over TLS ($(field enf .tls_version) $(field enf .tls_cipher))" \
	test "$(field enf .tls_version)" != null -a "$(field enf .tls_cipher)" != null
check "enf: the sink saw TLS" grep -q '^X-Sink-TLS: TLS1' $(grep -l '@enf.example.test' "$work"/good.d/*)
check "nomatch: the TransientFailure names MTA-STS and the MX host ($(tf nomatch))" \
	has "MTA-STS enforce: mx-nomatch.example.test is not allowed" "$(tf nomatch)"
check "enfbad: deferred for certificate verification ($(tf enfbad | head -c 160))" \
	has "certificate" "$(tf enfbad)"
check_eq "testing: OpportunisticInsecure despite a bad certificate" \
	"$(fields testing tls_policy tls_mode mta_sts)" \
	"$(printf 'mta-sts:testing\tOpportunisticInsecure\ttesting')"
check "testing: the sink saw TLS" grep -q '^X-Sink-TLS: TLS1' $(grep -l '@testing.example.test' "$work"/bad.d/*)
check_eq "none: the configured enable_tls" "$(fields none tls_policy tls_mode mta_sts)" \
	"$(printf 'mta-sts:none\tOpportunistic\tnone')"
check_eq "fail: no policy after a failed fetch: the configured enable_tls" \
	"$(fields fail tls_policy tls_mode mta_sts)" "$(printf 'configured\tOpportunistic\tnull')"
check "fail: kumod logged the failed fetch" grep -q 'MTA-STS policy fetch for fail.example.test failed' "$work/kumod.out"
check "nonebad: Opportunistic still verifies the certificate ($(tf nonebad | head -c 160))" \
	has "certificate" "$(tf nonebad)"
# DANE
check_eq "ee: dane verified, Required" "$(fields ee tls_policy tls_mode dane)" \
	"$(printf 'dane\tRequired\tverified')"
check "ee: dane_match says which record ($(field ee .dane_match))" \
	has "DANE-EE: matched the leaf's public key" "$(field ee .dane_match)"
check_eq "eebad: DANE-EE authenticates a self-signed certificate" "$(field eebad '.dane')" verified
check "badhash: the TransientFailure names DANE ($(tf badhash | head -c 160))" \
	has "DANE: the TLSA records do not authenticate" "$(tf badhash)"
check "bogus: the TransientFailure names the bogus TLSA ($(tf bogus | head -c 160))" \
	has "DANE: TLSA lookup for _$P_GOOD._tcp.mx-bogus.example.test is bogus" "$(tf bogus)"
check_eq "nodane: no DANE, the configured enable_tls (PKIX with tls_client.ca_file)" \
	"$(fields nodane tls_policy tls_mode dane)" "$(printf 'configured\tOpportunistic\tnull')"
check_eq "ta: DANE-TA verified" "$(fields ta tls_policy dane)" "$(printf 'dane\tverified')"
check "ta: matched the CA in the chain ($(field ta .dane_match))" \
	has 'DANE-TA: matched chain\[1\] as trust anchor' "$(field ta .dane_match)"
check_eq "both: DANE wins over an MTA-STS enforce policy that excludes the MX" \
	"$(fields both tls_policy mta_sts dane)" "$(printf 'dane\tnull\tverified')"

# The sinks' own counts: the refused hosts never got a transaction (DANE and
# PKIX are checked inside the handshake, before MAIL FROM).
sink_stats good "$PID_GOOD"
sink_stats bad "$PID_BAD"
check_eq "good sink: messages (enf none fail ee nodane ta both)" "$(jq .messages "$work/good.json")" 7
check_eq "bad sink: messages (testing eebad)" "$(jq .messages "$work/bad.json")" 2
check "the trace shows each host's policy" grep -q 'TLS policy nomatch.example.test for mx-nomatch.example.test: mta-sts:enforce (skipped)' "$work/kumod.out"

# A bad configuration is refused with file:line.
cat >"$work/bad.conf" <<EOF
listen = ( { address = "127.0.0.1:1"; } );
tls_client = { ca_file = "$work/nonexistent.pem"; };
mta_sts = { connect_to = [ "mta-sts.x.test:443" ]; wait = "2h"; colour = 1; };
EOF
out=$("$KUMOD" --check-config "$work/bad.conf" 2>&1)
check "check-config: a missing ca_file names file:line" grep -q "bad.conf:2: tls_client.ca_file: .*nonexistent.pem" <<<"$out"
check "check-config: a bad connect_to names file:line" grep -q 'bad.conf:3: mta_sts.connect_to.*want HOST:PORT:ADDR:PORT' <<<"$out"
check "check-config: wait out of range" grep -q 'bad.conf:3: mta_sts.wait: 7200 s' <<<"$out"
check "check-config: unknown key" grep -q 'bad.conf:3: mta_sts.colour: unknown key' <<<"$out"
echo "$out" | sed 's/^/# /'

kill -TERM "$KUMOD_PID"
check "kumod exits within 10 s of SIGTERM" wait_until 10 sh -c "! kill -0 $KUMOD_PID"
wait "$KUMOD_PID"
check_eq "kumod exit status" "$?" 0
finish
