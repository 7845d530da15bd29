#!/bin/bash
# tls-probe-basic.sh: `tls-probe probe`, `ciphers` and `list-ciphers`
# against smtp-sink on 127.0.0.1 (STARTTLS and implicit TLS, self-signed and
# CA-issued certificates, STARTTLS disabled, a restricted --tls-priority),
# with openssl s_client and gnutls-cli as oracles, plus the usage exit codes.
. "${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"

probe=$top_builddir/tls-probe/tls-probe
sink=$top_builddir/smtp-sink/smtp-sink
[ -x "$probe" ] || skip_all "$probe not built"
[ -x "$sink" ] || skip_all "$sink not built"
command -v certtool >/dev/null || skip_all "certtool not installed (apt-get install gnutls-bin)"

work=$(mkwork)
cd "$work" || exit 2

# A CA and a leaf for mx.example.test (the probe connects to 127.0.0.1 and
# checks the name given with the host only when it is a name).
certtool --generate-privkey --key-type=ecdsa --outfile ca.key 2>/dev/null || exit 2
printf 'cn = "Basic Lab CA"\nca\ncert_signing_key\nexpiration_days = 30\n' >ca.tmpl
certtool --generate-self-signed --load-privkey ca.key --template ca.tmpl --outfile ca.pem 2>/dev/null || exit 2
certtool --generate-privkey --key-type=ecdsa --outfile leaf.key 2>/dev/null || exit 2
printf 'cn = "mx.example.test"\ndns_name = "mx.example.test"\nip_address = "127.0.0.1"\ntls_www_server\nsigning_key\nexpiration_days = 30\n' >leaf.tmpl
certtool --generate-certificate --load-privkey leaf.key --load-ca-certificate ca.pem --load-ca-privkey ca.key \
	--template leaf.tmpl --outfile leaf.pem 2>/dev/null || exit 2
cat leaf.pem ca.pem >chain.pem

start_sink() { # NAME args...
	local name=$1
	shift
	start_bg "$name" "$sink" --port-file "$work/$name.port" --hostname mx.example.test "$@"
	wait_file "$work/$name.port" 10 || { fail "$name did not start: $(cat "$work/$name.out")"; finish; }
}
start_sink self --listen 127.0.0.1:0 --listen-tls 127.0.0.1:0
p_self=$(sed -n 1p self.port)
p_self_tls=$(sed -n 2p self.port)
start_sink ca --listen 127.0.0.1:0 --cert chain.pem --key leaf.key
p_ca=$(sed -n 1p ca.port)
start_sink plain --listen 127.0.0.1:0 --disable STARTTLS
p_plain=$(sed -n 1p plain.port)
restricted="NONE:+VERS-TLS1.2:+VERS-TLS1.0:+AES-128-CBC:+AES-256-GCM:+3DES-CBC:+SHA1:+AEAD:+ECDHE-ECDSA:+SIGN-ALL:+GROUP-ALL:+COMP-NULL:+CTYPE-X509"
start_sink restricted --listen 127.0.0.1:0 --cert chain.pem --key leaf.key --tls-priority "$restricted"
p_restricted=$(sed -n 1p restricted.port)
start_sink srvorder --listen 127.0.0.1:0 --tls-priority "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"
p_srvorder=$(sed -n 1p srvorder.port)

run() {
	out=$(timeout 60 "$probe" "$@" --timeout 10 2>&1)
	rc=$?
}
expect() { # what want_rc pattern
	if [ "$rc" -eq "$2" ] && grep -q -- "$3" <<<"$out"; then
		pass "$1"
	else
		fail "$1 (rc $rc, want $2; pattern '$3')"
		echo "$out" | sed 's/^/    /' | head -60
	fi
}

# --- probe ---
run probe "127.0.0.1:$p_self"
expect "self-signed: PKIX fails, exit 1" 1 "issuer is unknown"
expect "banner reported" 1 "banner: 220 mx.example.test"
expect "STARTTLS in the first EHLO" 1 "  - STARTTLS"
expect "chain subject" 1 "subject: CN=mx.example.test"
expect "SANs listed" 1 "  - mx.example.test"
if grep -A20 "ehlo_after_tls" <<<"$out" | grep -q STARTTLS; then
	fail "EHLO after TLS must not offer STARTTLS"
else
	pass "EHLO after TLS (no STARTTLS any more)"
fi
run probe --insecure "127.0.0.1:$p_self"
expect "self-signed with --insecure: exit 0" 0 "verdict: ok (insecure"
run probe --port "$p_self" --insecure 127.0.0.1:1
expect "--port overrides HOST:PORT" 0 "port: $p_self"
run probe --insecure --implicit-tls "127.0.0.1:$p_self_tls"
expect "implicit TLS" 0 "version: TLS1.3"
run probe --cafile ca.pem "127.0.0.1:$p_ca"
expect "CA-issued, IP SAN, --cafile: PKIX ok" 0 "verdict: ok"
run probe --cafile ca.pem --json "127.0.0.1:$p_ca"
check "probe --json is one valid JSON object" /usr/bin/python3 -c '
import json, sys
lines = [l for l in sys.stdin if l.strip()]
assert len(lines) == 1, lines
o = json.loads(lines[0])
assert o["type"] == "probe" and o["pkix"]["verdict"] == "ok", o
assert o["tls"]["version"] in ("TLS1.3", "TLS1.2"), o
assert len(o["chain"]) == 2 and o["chain"][1]["subject"] == "CN=Basic Lab CA", o["chain"]
' <<<"$out"
run probe --insecure "127.0.0.1:$p_plain"
expect "no STARTTLS: exit 1" 1 "STARTTLS not offered"
run probe --insecure --priority "NORMAL:-VERS-ALL:+VERS-TLS1.2" "127.0.0.1:$p_self"
expect "--priority pins TLS 1.2" 0 "version: TLS1.2"
# A closed port: find one by binding and closing.
dead=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
run probe "127.0.0.1:$dead"
expect "connection refused: exit 1" 1 "connect: "

# Hostile peers: a scripted server (one connection each).
cat >fake.py <<'PYEOF'
import socket, sys, os
mode, portfile = sys.argv[1], sys.argv[2]
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1); s.settimeout(20)
open(portfile + ".tmp", "w").write("%d\n" % s.getsockname()[1]); os.rename(portfile + ".tmp", portfile)
c, _ = s.accept(); c.settimeout(10)
if mode == "ctrl":
    c.sendall(b"220 evil\x1b[31m\xff ESMTP\r\n")
    c.recv(1000)
    c.sendall(b"250-fake\r\n250 X-\x07BELL\r\n")
elif mode == "garbage":
    c.sendall(b"\x00\xffhello there\r\n" + b"A" * 5000 + b"\r\n")
else:
    c.sendall(b"220 fake ESMTP\r\n")
    c.recv(1000)
    c.sendall(b"250-fake\r\n250 STARTTLS\r\n")
    c.recv(1000)
    c.sendall(b"220 go ahead\r\n250 injected\r\n")
try:
    c.recv(1000)
except OSError:
    pass
c.close()
PYEOF
for mode in garbage inject ctrl; do
	start_bg "fake-$mode" /usr/bin/python3 fake.py "$mode" "$work/fake-$mode.port"
	wait_file "$work/fake-$mode.port" 10 || fail "fake $mode server did not start"
	run probe --insecure "127.0.0.1:$(head -1 "fake-$mode.port")"
	case $mode in
	garbage) expect "garbage banner: exit 1, no crash" 1 "error: banner: malformed" ;;
	inject) expect "STARTTLS injection detected: exit 1" 1 "error: TLS handshake: .*STARTTLS injection" ;;
	ctrl)
		expect "control bytes from the peer are escaped" 1 'banner: 220 evil\\x1b\[31m\\xff ESMTP'
		if grep -q $'\x1b' <<<"$out"; then fail "a raw ESC reached the output"; else pass "no raw ESC in the output"; fi
		;;
	esac
done

# Oracles: openssl and gnutls-cli agree on the suite.
run probe --insecure "127.0.0.1:$p_self"
if command -v openssl >/dev/null; then
	suite=$(timeout 20 openssl s_client -starttls smtp -connect "127.0.0.1:$p_self" -brief </dev/null 2>&1 |
		sed -n 's/^Ciphersuite: //p')
	check_eq "openssl s_client agrees on the suite" "$(sed -n 's/^  cipher_suite: //p' <<<"$out")" "$suite"
fi

# --- list-ciphers ---
run list-ciphers
expect "list-ciphers: TLS 1.3 suite by IANA name" 0 "^TLS_AES_128_GCM_SHA256 *0x13,0x01 *TLS1.3 *yes"
expect "list-ciphers: IANA WITH form" 0 "^TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 *0xC0,0x2F"
expect "list-ciphers: 3DES flagged weak" 0 "TLS_RSA_WITH_3DES_EDE_CBC_SHA .*64-bit block cipher"
run list-ciphers --json
check "list-ciphers --json: every line parses, ids unique" /usr/bin/python3 -c '
import json, sys
objs = [json.loads(l) for l in sys.stdin if l.strip()]
ids = [o["id"] for o in objs]
assert len(objs) > 20 and len(set(ids)) == len(ids), len(objs)
' <<<"$out"

# --- ciphers: exactly what the restricted sink allows ---
run ciphers "127.0.0.1:$p_restricted"
expect "ciphers: weak ones make exit 1" 1 "verdict: weak"
got=$(grep '^TLS1' <<<"$out" | grep -v ' order: ' | awk '{print $1, $2}' | sort | tr '\n' ';')
want="TLS1.0 TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA;TLS1.0 TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA;TLS1.2 TLS_ECDHE_ECDSA_WITH_3DES_EDE_CBC_SHA;TLS1.2 TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA;TLS1.2 TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384;"
check_eq "ciphers finds exactly the allowed suites" "$got" "$want"
expect "TLS 1.0 flagged obsolete" 1 "obsolete protocol version"
# Oracle: gnutls-cli can do a TLS 1.0 3DES handshake there too (a real STARTTLS peer).
if command -v gnutls-cli >/dev/null; then
	if timeout 20 gnutls-cli --starttls-proto=smtp --insecure --port "$p_restricted" \
		--priority "NONE:+VERS-TLS1.0:+3DES-CBC:+SHA1:+ECDHE-ECDSA:+SIGN-ALL:+GROUP-ALL:+COMP-NULL:+CTYPE-X509" \
		127.0.0.1 </dev/null 2>&1 | grep -q "3DES-CBC"; then
		pass "gnutls-cli confirms TLS1.0 3DES is accepted"
	else
		fail "gnutls-cli could not confirm TLS1.0 3DES"
	fi
fi
run ciphers "127.0.0.1:$p_self"
expect "default sink: no weak suites, exit 0" 0 "verdict: ok"
expect "default sink: TLS 1.3 accepted" 0 "TLS1.3  TLS_AES_256_GCM_SHA384"
expect "default sink (GnuTLS): the client's order is used" 0 "TLS1.2  order: client"
run ciphers "127.0.0.1:$p_srvorder"
expect "%SERVER_PRECEDENCE: the server's order is seen" 0 "TLS1.2  order: server (prefers"
run ciphers "127.0.0.1:$p_self"
if grep -q "^TLS1.1\|^TLS1.0" <<<"$out"; then fail "default sink must refuse TLS 1.0/1.1"; else pass "default sink refuses TLS 1.0/1.1"; fi

# --- usage errors: exit 2 ---
run
expect "no command: exit 2" 2 "usage:"
run frobnicate
expect "unknown command: exit 2" 2 "unknown command"
run probe
expect "probe without host: exit 2" 2 "usage: tls-probe probe"
run probe --priority "NORMAL:+BOGUS" 127.0.0.1:25
expect "bad priority: exit 2" 2 "priority"
run probe --port 0 127.0.0.1
expect "bad port: exit 2" 2 "not a port"
run probe --cert leaf.pem 127.0.0.1
expect "--cert without --key: exit 2" 2 "go together"
run probe --cafile /nonexistent 127.0.0.1:25
expect "missing CA file: exit 2" 2 "CA file"
run ciphers --help
expect "ciphers --help: exit 0" 0 "one suite at a time"
finish
