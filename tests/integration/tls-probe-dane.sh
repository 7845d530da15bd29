#!/bin/bash
# tls-probe-dane.sh: `tls-probe dane` / `check` / `probe` against smtp-sink
# instances on 127.0.0.1 whose names come from a DNSSEC-signed zone served
# by nsd (signed at run time; tests/lab/mkzone.sh). Certificates come from
# certtool and TLSA data from danetool (an oracle independent of
# lib/dane.c). Each case is its own domain with its own MX host name:
#   ee        3 1 1 of the leaf                  -> verified
#   badhash   3 1 1 of another key               -> failed
#   bogus     3 1 1 tampered after signing       -> failed (bogus, defer)
#   nodane    no TLSA (secure denial)            -> ok, no DANE
#   ta        2 1 1 of the CA                    -> verified
#   forged    2 1 1 of the CA, chain = attacker leaf + attacker CA + real CA -> failed
#   wrongname 2 1 1 of the CA, name not in the certificate -> failed
#   expee     3 1 1 of an expired leaf           -> verified (no dates under DANE-EE)
#   expta     2 1 1 of the CA, expired leaf      -> failed
#   pkixee    only usages 0 and 1 (PKIX-TA, PKIX-EE) -> no usable TLSA
# The forged chain is served by tests/lab/tls-smtp-server.py (OpenSSL sends a
# chain as given; GnuTLS servers trim it), with the real chain from the same
# server as a control.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$top_srcdir/tests/lab/mkzone.sh"

for tool in nsd ldns-keygen ldns-signzone drill certtool danetool; do
	command -v "$tool" >/dev/null || skip_all "$tool not installed (apt-get install nsd ldnsutils gnutls-bin)"
done
probe=$top_builddir/tls-probe/tls-probe
sink=$top_builddir/smtp-sink/smtp-sink
[ -x "$probe" ] || skip_all "$probe not built"
[ -x "$sink" ] || skip_all "$sink not built"

work=$(mkwork)
cd "$work" || exit 2

hosts="mx-ee mx-badhash mx-bogus mx-nodane mx-ta mx-forged mx-expee mx-expta mx-pkixee"
# --- certificates ---
certtool --generate-privkey --key-type=ecdsa --outfile ca.key 2>/dev/null || exit 2
printf 'cn = "Lab Root CA"\nca\ncert_signing_key\nexpiration_days = 30\n' >ca.tmpl
certtool --generate-self-signed --load-privkey ca.key --template ca.tmpl --outfile ca.pem 2>/dev/null || exit 2
# The attacker's root carries the real CA's name, so the attacker's
# intermediate names the real CA as its issuer and a server sends the forged
# chain in full (GnuTLS trims a chain after a self-signed certificate).
certtool --generate-privkey --key-type=ecdsa --outfile evilroot.key 2>/dev/null || exit 2
certtool --generate-self-signed --load-privkey evilroot.key --template ca.tmpl --outfile evilroot.pem 2>/dev/null || exit 2
printf 'cn = "Evil Intermediate CA"\nca\ncert_signing_key\nexpiration_days = 30\n' >evilca.tmpl
{
	echo 'cn = "mx-ee.example.test"'
	for h in $hosts; do echo "dns_name = \"$h.example.test\""; done
	echo 'tls_www_server'
	echo 'signing_key'
	echo 'expiration_days = 30'
} >leaf.tmpl
sed -e '/expiration_days/d' leaf.tmpl >expired.tmpl
printf 'activation_date = "2020-01-01 00:00:00"\nexpiration_date = "2020-02-01 00:00:00"\n' >>expired.tmpl
mkleaf() { # NAME CAKEY CAPEM TEMPLATE
	certtool --generate-privkey --key-type=ecdsa --outfile "$1.key" 2>/dev/null &&
		certtool --generate-certificate --load-privkey "$1.key" --load-ca-certificate "$3" \
			--load-ca-privkey "$2" --template "$4" --outfile "$1.pem" 2>/dev/null
}
mkleaf leaf ca.key ca.pem leaf.tmpl || exit 2
mkleaf evilca evilroot.key evilroot.pem evilca.tmpl || exit 2
mkleaf evil evilca.key evilca.pem leaf.tmpl || exit 2
mkleaf old ca.key ca.pem expired.tmpl || exit 2
mkleaf other ca.key ca.pem leaf.tmpl || exit 2
cat leaf.pem ca.pem >good-chain.pem
cat evil.pem evilca.pem ca.pem >forged-chain.pem
cat old.pem ca.pem >expired-chain.pem
check "certtool made an expired leaf" bash -c "certtool -i --infile old.pem | grep -q 'Not After: .*2020'"

tlsa() { # HOST CERT [--ca]
	danetool --tlsa-rr --port 25 --host "$1.example.test" --load-certificate "$2" $3 2>/dev/null
}
# --- the zone ---
{
	cat <<'EOF'
$ORIGIN example.test.
$TTL 300
@	IN SOA ns.example.test. hostmaster.example.test. 1 3600 900 604800 300
@	IN NS ns.example.test.
ns	IN A 127.0.0.1
EOF
	for h in $hosts mx-wrongname; do
		d=${h#mx-}
		echo "$d	IN MX 10 $h.example.test."
		echo "$h	IN A 127.0.0.1"
	done
	# Two MX hosts: one passes DANE, one fails it.
	echo "multi	IN MX 10 mx-ee.example.test."
	echo "multi	IN MX 20 mx-wrongname.example.test."
	tlsa mx-ee leaf.pem
	tlsa mx-badhash other.pem
	tlsa mx-bogus leaf.pem
	tlsa mx-ta ca.pem --ca
	tlsa mx-forged ca.pem --ca
	tlsa mx-wrongname ca.pem --ca
	tlsa mx-expee old.pem
	tlsa mx-expta ca.pem --ca
	# Only PKIX usages (0 and 1): RFC 7672 says SMTP ignores them.
	tlsa mx-pkixee leaf.pem | sed 's/( 03 /( 01 /'
	tlsa mx-pkixee ca.pem --ca | sed 's/( 02 /( 00 /'
} >example.test.zone
check "danetool wrote 10 TLSA records" [ "$(grep -c "IN TLSA" example.test.zone)" -eq 10 ]
lab_sign_zone example.test example.test.zone example.test.signed || { fail "signing"; finish; }
# Tamper with mx-bogus's TLSA after signing: change its digest's first hex
# digit (0 becomes 1, anything else 0, so the data always differs; a fixed
# replacement digit left the record intact one run in sixteen).
grep -q '^_25\._tcp\.mx-bogus\.example\.test\..*TLSA' example.test.signed || fail "no bogus TLSA line"
pfx='\(TLSA[[:space:]]*3[[:space:]]*1[[:space:]]*1[[:space:]]*\)'
lab_tamper example.test.signed "/^_25\\._tcp\\.mx-bogus\\.example\\.test\\..*TLSA/{s/${pfx}0/\\11/;t;s/${pfx}[0-9a-fA-F]/\\10/}" ||
	{ fail "tampering with mx-bogus's TLSA"; finish; }
lab_start_nsd "$work" example.test "$work/example.test.signed" || { fail "nsd did not start"; finish; }
pass "nsd serves the signed zone on 127.0.0.1@$LAB_DNS_PORT"

# --- smtp-sinks: good chain, forged chain, expired chain ---
# Not in $(...): start_bg must record the pid in this shell for the cleanup.
start_sink() { # NAME CHAIN KEY; sets SINK_PORT
	start_bg "$1" "$sink" --listen 127.0.0.1:0 --port-file "$work/$1.port" --hostname mx.example.test \
		--cert "$2" --key "$3"
	wait_file "$work/$1.port" 10 || { fail "$1 did not start: $(cat "$work/$1.out")"; finish; }
	SINK_PORT=$(head -1 "$work/$1.port")
}
start_sink sink-good good-chain.pem leaf.key
p_good=$SINK_PORT
# GnuTLS trims the forged chain, so an OpenSSL-based server presents it (implicit TLS).
start_bg forged-server /usr/bin/python3 "$top_srcdir/tests/lab/tls-smtp-server.py" --chain forged-chain.pem \
	--key evil.key --portfile "$work/forged.port" --lifetime 120
wait_file "$work/forged.port" 10 || { fail "tls-smtp-server did not start: $(cat "$work/forged-server.out")"; finish; }
p_forged=$(head -1 "$work/forged.port")
# The same server with the real chain: a control for the forged case.
start_bg good-server /usr/bin/python3 "$top_srcdir/tests/lab/tls-smtp-server.py" --chain good-chain.pem \
	--key leaf.key --portfile "$work/good.port" --lifetime 120
wait_file "$work/good.port" 10 || { fail "tls-smtp-server did not start"; finish; }
p_pygood=$(head -1 "$work/good.port")
start_sink sink-old expired-chain.pem old.key
p_old=$SINK_PORT

dns=(--dns-forwarder "127.0.0.1@$LAB_DNS_PORT" --trust-anchor "$LAB_KSK.ds" --timeout 10)
run() { # PORT args... ; sets out, rc
	local port=$1
	shift
	out=$(timeout 60 "$probe" "$@" --port "$port" "${dns[@]}" 2>&1)
	rc=$?
}
expect() { # what want_rc grep-pattern
	if [ "$rc" -eq "$2" ] && grep -q -- "$3" <<<"$out"; then
		pass "$1"
	else
		fail "$1 (rc $rc, want $2; pattern '$3')"
		echo "$out" | sed 's/^/    /' | head -60
	fi
}

run "$p_good" dane ee.example.test
expect "DANE-EE 3 1 1 good: verified" 0 "verdict: verified"
run "$p_good" dane --json ee.example.test
expect "JSON: the MX lookup was secure" 0 '"mx_dns":{"status":"ok","secure":true'
check "JSON lines parse" /usr/bin/python3 -c 'import json,sys; [json.loads(l) for l in sys.stdin if l.strip()]' <<<"$out"
run "$p_good" dane badhash.example.test
expect "DANE-EE wrong hash: failed" 1 "DANE-EE: the leaf's public key does not match"
run "$p_good" dane bogus.example.test
expect "tampered TLSA: bogus, defer" 1 "bogus TLSA: no delivery"
run "$p_good" dane nodane.example.test
expect "no TLSA: secure denial, no DANE" 0 "no TLSA (secure denial)"
run "$p_good" dane ta.example.test
expect "DANE-TA 2 1 1 good: verified" 0 "matched chain\[1\] as trust anchor"
run "$p_forged" dane --implicit-tls forged.example.test
expect "DANE-TA forged chain (evil leaf, evil CA, real CA): failed" 1 "matched chain\[2\]; chain below it does not verify"
run "$p_pygood" dane --implicit-tls forged.example.test
expect "control: the real chain from the same server verifies (implicit TLS)" 0 "matched chain\[1\] as trust anchor"
run "$p_good" dane wrongname.example.test
expect "DANE-TA wrong name: failed" 1 "certificate does not match mx-wrongname.example.test"
run "$p_old" dane expee.example.test
expect "DANE-EE expired leaf: verified" 0 "verdict: verified"
run "$p_old" dane expta.example.test
expect "DANE-TA expired leaf: failed" 1 "expired"
run "$p_good" dane pkixee.example.test
expect "usages 0/1 only: no usable TLSA" 0 "verdict: no-usable-tlsa"
run "$p_good" dane mx-ee.example.test
expect "dane MXHOST (no MX: the host itself)" 0 "verdict: verified"

# probe by name: PKIX with the lab CA and the host name.
run "$p_good" probe --cafile ca.pem mx-ta.example.test
expect "probe by name: PKIX ok with --cafile" 0 "verdict: ok"
run "$p_good" probe --cafile ca.pem wrongname.example.test
expect "probe: the name is not in the certificate" 1 "verdict: failed"
run "$p_forged" probe --implicit-tls --cafile ca.pem mx-ta.example.test
expect "probe: forged chain fails PKIX" 1 "NOT trusted"
run "$p_good" check ee.example.test
expect "check: one host verified by DANE" 0 "hosts_ok: 1"
run "$p_good" check bogus.example.test
expect "check: bogus TLSA fails the domain" 1 "verdict: failed"

run "$p_good" check multi.example.test
expect "check, two MX hosts: one verdict each" 1 "hosts: 2"
expect "check, two MX hosts: only one passes" 1 "hosts_ok: 1"
run "$p_good" check --json multi.example.test
check "check --json: two check-host lines and a summary" /usr/bin/python3 -c '
import json, sys
objs = [json.loads(l) for l in sys.stdin if l.strip()]
hosts = {o["host"]: o["verdict"] for o in objs if o["type"] == "check-host"}
summary = [o for o in objs if o["type"] == "check"]
assert hosts == {"mx-ee.example.test": "ok", "mx-wrongname.example.test": "failed"}, hosts
assert len(summary) == 1 and summary[0]["verdict"] == "failed", summary
' <<<"$out"

# A wrong trust anchor makes everything bogus.
other=$(ldns-keygen -a ECDSAP256SHA256 -k example.test)
out=$(timeout 60 "$probe" dane ee.example.test --port "$p_good" --dns-forwarder "127.0.0.1@$LAB_DNS_PORT" \
	--trust-anchor "$work/$other.ds" 2>&1)
rc=$?
expect "wrong trust anchor: failed" 1 "verdict: failed"

# Without validation nothing is secure: DANE does not apply, so even the tampered
# TLSA is not used (RFC 7672 2.2.1) and the host passes on opportunistic TLS.
out=$(timeout 60 "$probe" dane bogus.example.test --port "$p_good" --dns-forwarder "127.0.0.1@$LAB_DNS_PORT" \
	--trust-anchor none 2>&1)
rc=$?
expect "no validation: TLSA not used" 0 "MX lookup not secure: TLSA not used"

# Oracle: openssl s_client sees the same suite (posttls-finger would need the lab
# zone in the system resolver, so it is not used here).
if command -v openssl >/dev/null; then
	ossl=$(timeout 20 openssl s_client -starttls smtp -connect "127.0.0.1:$p_good" -brief </dev/null 2>&1)
	suite=$(sed -n 's/^Ciphersuite: //p' <<<"$ossl")
	run "$p_good" probe --insecure 127.0.0.1
	if [ -n "$suite" ] && grep -q "cipher_suite: $suite" <<<"$out"; then
		pass "openssl s_client agrees on the suite ($suite)"
	else
		fail "openssl suite '$suite' not in probe output"
	fi
fi
finish
