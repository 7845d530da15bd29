#!/bin/bash
# tls-probe-mtasts.sh: `tls-probe mta-sts` and `check` with MTA-STS on
# 127.0.0.1: TXT records from a signed zone served by nsd
# (tests/lab/mkzone.sh), policies from tests/lab/mtasts-server.py reached
# through --connect-to, an smtp-sink with a certificate from the lab CA.
# Cases: enforce with a matching and a non-matching MX, a wildcard pattern,
# testing, no record, two records, a 302, a wrong content type, an
# oversized body, a 404.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
. "$top_srcdir/tests/lab/mkzone.sh"

for tool in nsd ldns-keygen ldns-signzone drill certtool; do
	command -v "$tool" >/dev/null || skip_all "$tool not installed (apt-get install nsd ldnsutils gnutls-bin)"
done
probe=$top_builddir/tls-probe/tls-probe
sink=$top_builddir/smtp-sink/smtp-sink
[ -x "$probe" ] || skip_all "$probe not built"
[ -x "$sink" ] || skip_all "$sink not built"

work=$(mkwork)
cd "$work" || exit 2

domains="enf nomatch wild testing redirect html huge missing two"
certtool --generate-privkey --key-type=ecdsa --outfile ca.key 2>/dev/null || exit 2
printf 'cn = "STS Lab CA"\nca\ncert_signing_key\nexpiration_days = 30\n' >ca.tmpl
certtool --generate-self-signed --load-privkey ca.key --template ca.tmpl --outfile ca.pem 2>/dev/null || exit 2
{
	echo 'cn = "mx.example.test"'
	echo 'dns_name = "mx.example.test"'
	for d in $domains; do echo "dns_name = \"mta-sts.$d.example.test\""; done
	echo 'tls_www_server'
	echo 'signing_key'
	echo 'expiration_days = 30'
} >leaf.tmpl
certtool --generate-privkey --key-type=ecdsa --outfile leaf.key 2>/dev/null || exit 2
certtool --generate-certificate --load-privkey leaf.key --load-ca-certificate ca.pem --load-ca-privkey ca.key \
	--template leaf.tmpl --outfile leaf.pem 2>/dev/null || exit 2
cat leaf.pem ca.pem >chain.pem

# --- zone ---
{
	cat <<'EOF'
$ORIGIN example.test.
$TTL 300
@	IN SOA ns.example.test. hostmaster.example.test. 1 3600 900 604800 300
@	IN NS ns.example.test.
ns	IN A 127.0.0.1
mx	IN A 127.0.0.1
none	IN MX 10 mx.example.test.
EOF
	for d in $domains; do
		echo "$d	IN MX 10 mx.example.test."
		echo "_mta-sts.$d	IN TXT \"v=STSv1; id=20261122\""
	done
	echo "_mta-sts.two	IN TXT \"v=STSv1; id=2\""
} >example.test.zone
lab_sign_zone example.test example.test.zone example.test.signed || { fail "signing"; finish; }
lab_start_nsd "$work" example.test "$work/example.test.signed" || { fail "nsd did not start"; finish; }
pass "nsd serves the zone on 127.0.0.1@$LAB_DNS_PORT"

# --- policies ---
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
policy enf enforce mx.example.test
policy nomatch enforce other.example.test
policy wild enforce '*.example.test'
policy testing testing other.example.test
policy redirect enforce mx.example.test
policy html enforce mx.example.test
policy huge enforce mx.example.test
policy two enforce mx.example.test
start_bg sts /usr/bin/python3 "$top_srcdir/tests/lab/mtasts-server.py" --cert chain.pem --key leaf.key \
	--dir "$work/policies" --portfile "$work/sts.port" --lifetime 120 \
	--mode mta-sts.redirect.example.test=redirect --mode mta-sts.html.example.test=html \
	--mode mta-sts.huge.example.test=huge
wait_file "$work/sts.port" 10 || { fail "mtasts-server did not start: $(cat "$work/sts.out")"; finish; }
sts_port=$(head -1 sts.port)
start_bg sink "$sink" --listen 127.0.0.1:0 --port-file "$work/sink.port" --hostname mx.example.test \
	--cert chain.pem --key leaf.key
wait_file "$work/sink.port" 10 || { fail "smtp-sink did not start"; finish; }
smtp_port=$(head -1 sink.port)

run() { # DOMAIN-LABEL args...
	local d=$1
	shift
	out=$(timeout 60 "$probe" "$@" --port "$smtp_port" --cafile ca.pem --timeout 10 \
		--dns-forwarder "127.0.0.1@$LAB_DNS_PORT" --trust-anchor "$LAB_KSK.ds" \
		--connect-to "mta-sts.$d.example.test:443:127.0.0.1:$sts_port" 2>&1)
	rc=$?
}
expect() { # what want_rc pattern
	if [ "$rc" -eq "$2" ] && grep -q -- "$3" <<<"$out"; then
		pass "$1"
	else
		fail "$1 (rc $rc, want $2; pattern '$3')"
		echo "$out" | sed 's/^/    /' | head -50
	fi
}

run enf mta-sts enf.example.test
expect "enforce, MX matches: exit 0" 0 "verdict: ok"
expect "enforce: the policy id" 0 "id: 20261122"
expect "enforce: MX host allowed, Required" 0 "tls: Required"
run nomatch mta-sts nomatch.example.test
expect "enforce, MX outside the policy: exit 1" 1 "allowed: false"
expect "enforce, MX outside the policy: skip-mx" 1 "tls: skip-mx"
run wild mta-sts wild.example.test
expect "wildcard pattern matches one label" 0 "allowed: true"
run testing mta-sts testing.example.test
expect "testing: OpportunisticInsecure" 1 "tls: OpportunisticInsecure"
run x mta-sts none.example.test
expect "no TXT record: no policy, exit 0" 0 "verdict: no policy"
run two mta-sts two.example.test
expect "two STSv1 records: bad TXT, exit 1" 1 "bad TXT record"
run redirect mta-sts redirect.example.test
expect "a 302 is a failed fetch" 1 "policy fetch failed"
run html mta-sts html.example.test
expect "text/html is refused" 1 "policy fetch failed"
run huge mta-sts huge.example.test
expect "an oversized body is refused" 1 "policy fetch failed"
run missing mta-sts missing.example.test
expect "a 404 is a failed fetch" 1 "policy fetch failed"
run enf mta-sts --json enf.example.test
check "mta-sts --json parses" /usr/bin/python3 -c '
import json, sys
o = json.loads(sys.stdin.readline())
assert o["mta_sts"]["mode"] == "enforce" and o["mx_hosts"][0]["allowed"] is True, o
' <<<"$out"

# --- check: the whole picture per MX host ---
run enf check enf.example.test
expect "check, enforce + PKIX ok: exit 0" 0 "mta_sts: enforce: ok"
run nomatch check nomatch.example.test
expect "check, enforce + MX outside: exit 1" 1 "MX not in the enforced policy"
run testing check testing.example.test
expect "check, testing: reported only, exit 0" 0 "testing: would fail (reported only)"
# The same enforce policy, but the MX certificate does not verify (no --cafile for SMTP
# is not possible since the fetch needs it too: use a sink with a self-signed cert).
start_bg sink2 "$sink" --listen 127.0.0.1:0 --port-file "$work/sink2.port" --hostname mx.example.test
wait_file "$work/sink2.port" 10 || { fail "smtp-sink 2 did not start"; finish; }
smtp_port=$(head -1 sink2.port)
run enf check enf.example.test
expect "check, enforce + self-signed MX: exit 1" 1 "enforce: certificate does not verify"
finish
