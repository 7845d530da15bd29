#!/bin/bash
# dns-dnssec.sh: lib/dns against a DNSSEC-signed zone served by nsd on
# 127.0.0.1. Signs example.test at run time (signatures expire, so nothing
# signed is kept), tampers one record after signing, then runs the DNSSEC
# case of tests/unit/test_dns with the forwarder and trust anchors in its
# environment: signed answers must come back secure, the tampered one and
# everything under a wrong trust anchor bogus.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"

for tool in nsd ldns-keygen ldns-signzone drill; do
	command -v "$tool" >/dev/null || skip_all "$tool not installed (apt-get install nsd ldnsutils)"
done
test_dns=$top_builddir/tests/unit/test_dns
[ -x "$test_dns" ] || skip_all "$test_dns not built (make check builds it)"

work=$(mkwork)
cd "$work" || exit 2

cat >example.test.zone <<'EOF'
$ORIGIN example.test.
$TTL 300
@	IN SOA ns.example.test. hostmaster.example.test. 1 3600 900 604800 300
@	IN NS ns.example.test.
@	IN MX 10 mx.example.test.
@	IN TXT "v=spf1 -all"
ns	IN A 127.0.0.1
mx	IN A 127.0.0.1
mx	IN AAAA ::1
_25._tcp.mx	IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
nomx	IN A 127.0.0.2
bad	IN A 127.0.0.9
EOF

ksk=$(ldns-keygen -a ECDSAP256SHA256 -k example.test) || exit 2
zsk=$(ldns-keygen -a ECDSAP256SHA256 example.test) || exit 2
other=$(ldns-keygen -a ECDSAP256SHA256 -k example.test) || exit 2
ldns-signzone -i "$(date -u -d '-1 hour' +%Y%m%d%H%M%S)" -e "$(date -u -d '+30 days' +%Y%m%d%H%M%S)" \
	-f example.test.signed example.test.zone "$ksk" "$zsk" || exit 2
check "the trust anchor is a DS record" grep -q "IN[[:space:]]*DS" "$ksk.ds"
# Tamper with one signed record, keeping its RRSIG: a bogus answer.
sed -i 's/\(^bad\.example\.test\.[[:space:]].*[[:space:]]A[[:space:]]*\)127\.0\.0\.9$/\1127.0.0.10/' example.test.signed
check "tampered record in place" grep -q "127\.0\.0\.10$" example.test.signed

# NSD needs its port free on UDP and TCP: try a few random ones.
port=
for _ in 1 2 3 4 5; do
	p=$((20000 + RANDOM % 40000))
	cat >nsd.conf <<EOF
server:
	ip-address: 127.0.0.1@$p
	username: ""
	chroot: ""
	database: ""
	zonesdir: "$work"
	pidfile: "$work/nsd.pid"
	logfile: "$work/nsd.log"
	xfrdfile: "$work/xfrd.state"
	zonelistfile: "$work/zone.list"
	verbosity: 1
remote-control:
	control-enable: no
zone:
	name: example.test
	zonefile: "$work/example.test.signed"
EOF
	start_bg nsd nsd -d -c "$work/nsd.conf"
	nsd_pid=$LAST_PID
	# drill over TCP: its UDP mode hangs ~15 s on a dead port.
	if wait_for 5 drill -t -p "$p" example.test SOA @127.0.0.1; then
		port=$p
		break
	fi
	stop_pid "$nsd_pid"
done
[ -n "$port" ] || { fail "nsd did not start: $(tail -3 "$work/nsd.out" 2>/dev/null)"; finish; }
pass "nsd serves example.test on 127.0.0.1@$port"

out=$(KUMO_DNS_DNSSEC_FWD="127.0.0.1@$port" KUMO_DNS_DNSSEC_TA="$work/$ksk.ds" \
	KUMO_DNS_DNSSEC_BADTA="$work/$other.ds" timeout 120 "$test_dns" 2>&1)
rc=$?
echo "$out" | sed -n '/DNSSEC/,/Run Summary/p'
check "test_dns with the signed zone exits 0" [ "$rc" -eq 0 ]
check "the DNSSEC case ran (not skipped)" grep -q "signed MX: ok secure=1" <<<"$out"
check "the tampered record is bogus" grep -q "tampered A: bogus" <<<"$out"
check "a wrong trust anchor gives bogus" grep -q "MX, wrong anchor: bogus" <<<"$out"
finish
