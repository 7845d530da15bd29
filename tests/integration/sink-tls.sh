# sink-tls.sh: smtp-sink's STARTTLS, implicit TLS, TLS policy and AUTH,
# against swaks, gnutls-cli --starttls-proto=smtp and openssl s_client.
. "$(cd "$(dirname "$0")" && pwd)/sink-common.sh"

for tool in gnutls-cli openssl certtool; do
	command -v "$tool" >/dev/null || skip_all "$tool missing (gnutls-bin, openssl)"
done
printf 'alice:s3cret\n# a comment\nbob:hunter2\n' >"$work/users"

# feed LINES...: print the lines with CRLF, slowly enough for a TLS client to relay them
feed() {
	sleep 0.5
	for l in "$@"; do printf '%s\r\n' "$l"; sleep 0.3; done
	sleep 0.5
}

start_sink tls --listen 127.0.0.1:0 --listen-tls 127.0.0.1:0 --auth-users "$work/users" || exit 1
TLS_PORT=$(sed -n 2p "$work/tls.port")

if command -v swaks >/dev/null && perl -MNet::SSLeay -e1 2>/dev/null; then
	out=$(timeout 20 swaks --server 127.0.0.1 --port "$SINK_PORT" -tls --to a@b.test \
		-a PLAIN -au alice -ap s3cret 2>&1)
	check "swaks STARTTLS + AUTH PLAIN: 235" has '^<~ +235 2.7.0' "$out"
	check "swaks STARTTLS + AUTH PLAIN: message queued" has '^<~ +250 2.0.0 Ok: queued' "$out"
	check "EHLO after STARTTLS no longer offers STARTTLS" hasnt '^<~ *250-STARTTLS' "$out"
	out=$(timeout 20 swaks --server 127.0.0.1 --port "$SINK_PORT" --to a@b.test -a LOGIN -au bob -ap hunter2 2>&1)
	check "swaks AUTH LOGIN: 235" has '^<- +235 2.7.0' "$out"
	out=$(timeout 20 swaks --server 127.0.0.1 --port "$SINK_PORT" --to a@b.test -a PLAIN -au alice -ap wrong 2>&1)
	check "wrong password: 535 5.7.8" has '^<\*\* +535 5.7.8' "$out"
else
	# Not a failure: gnutls-cli and openssl below cover STARTTLS, the chat covers AUTH.
	echo "skip - swaks STARTTLS/AUTH: needs swaks and libnet-ssleay-perl"
fi

out=$(feed "EHLO gnutls.test" "QUIT" | timeout 20 gnutls-cli --insecure --starttls-proto=smtp \
	--port "$SINK_PORT" 127.0.0.1 2>&1)
check "gnutls-cli --starttls-proto=smtp: handshake" has 'Handshake was completed' "$out"
check "gnutls-cli: TLS 1.3 by default" has 'Description: \(TLS1\.3' "$out"
check "gnutls-cli: EHLO over TLS answered" has '^250-sink.test' "$out"
check "gnutls-cli: QUIT over TLS answered" has '^221 2.0.0' "$out"
tls_end=$out

out=$(feed "EHLO openssl.test" "QUIT" | timeout 20 openssl s_client -starttls smtp \
	-connect "127.0.0.1:$SINK_PORT" -crlf 2>&1)
check "openssl s_client -starttls smtp: TLSv1.3 session" has 'New, TLSv1.3' "$out"
check "openssl s_client: EHLO over TLS answered" has '^250-sink.test' "$out"
check "openssl s_client: certificate is the self-signed one for --hostname" has 'CN ?= ?sink.test' "$out"

out=$(feed "EHLO implicit.test" "QUIT" | timeout 20 openssl s_client -connect "127.0.0.1:$TLS_PORT" \
	-crlf 2>&1)
check "implicit-TLS listener: banner inside TLS" has '^220 sink.test ESMTP' "$out"
check "implicit-TLS listener: EHLO answered" has '^250-sink.test' "$out"

# Debian's NORMAL allows TLS 1.1: our default pins 1.2+, --tls-priority can reopen it.
old="NORMAL:-VERS-ALL:+VERS-TLS1.1"
out=$(feed "QUIT" | timeout 20 gnutls-cli --insecure --priority "$old" --starttls-proto=smtp \
	--port "$SINK_PORT" 127.0.0.1 2>&1)
check "default priority refuses a TLS 1.1-only client" hasnt 'Handshake was completed' "$out"

out=$(chat "1|" "1|EHLO x\r\n" "1|STARTTLS\r\nEHLO injected\r\n" eof)
check "data pipelined after STARTTLS: 554 and close" has '554 5.5.1 Error: command pipelined after STARTTLS' "$out"
check "data pipelined after STARTTLS: no 220" hasnt '220 2.0.0' "$out"

check_eq "stats: TLS versions" "$(stats 'd["tls"]["versions"].get("TLS1.3", 0) >= 4')" True
check "stats: a TLS 1.3 suite recorded" has 'TLS_AES' "$(stats 'd["tls"]["suites"]')"
check_eq "stats: AUTH users" "$(stats 'sorted(d["auth_users"].items())')" "[('alice', 1), ('bob', 1)]"
check_eq "stats: injection counted" "$(stats 'd["events"].get("starttls_pipelined")')" 1
stop_sink

# --- --tls-priority reopening TLS 1.1, --cert/--key, client certificates ---
certtool --generate-privkey --key-type ecdsa --outfile "$work/key.pem" >/dev/null 2>&1
printf 'cn = mx.lab.test\ndns_name = mx.lab.test\nexpiration_days = 2\ntls_www_server\nsigning_key\n' >"$work/cert.tmpl"
certtool --generate-self-signed --load-privkey "$work/key.pem" --template "$work/cert.tmpl" \
	--outfile "$work/cert.pem" >/dev/null 2>&1
printf 'cn = client.lab.test\nexpiration_days = 2\ntls_www_client\nsigning_key\n' >"$work/client.tmpl"
certtool --generate-privkey --key-type ecdsa --outfile "$work/ckey.pem" >/dev/null 2>&1
certtool --generate-self-signed --load-privkey "$work/ckey.pem" --template "$work/client.tmpl" \
	--outfile "$work/ccert.pem" >/dev/null 2>&1

start_sink tls2 --listen 127.0.0.1:0 --cert "$work/cert.pem" --key "$work/key.pem" \
	--tls-priority "NORMAL:+VERS-TLS1.1" --tls-client-cert request --require-tls || exit 1
out=$(feed "QUIT" | timeout 20 gnutls-cli --insecure --priority "$old" --starttls-proto=smtp \
	--port "$SINK_PORT" 127.0.0.1 2>&1)
check "--tls-priority NORMAL:+VERS-TLS1.1 admits that client" has 'Description: \(TLS1\.1' "$out"
out=$(feed "QUIT" | timeout 20 gnutls-cli --insecure --starttls-proto=smtp --port "$SINK_PORT" \
	--x509certfile "$work/ccert.pem" --x509keyfile "$work/ckey.pem" 127.0.0.1 2>&1)
check "--cert/--key: the server shows that certificate" has 'mx\.lab\.test' "$out"
check_eq "--tls-client-cert request: the client's certificate seen" \
	"$(stats 'd["events"].get("tls_client_certificate")')" 1
out=$(chat "1|" "1|EHLO x\r\n" "1|MAIL FROM:<a@b>\r\n")
check "--require-tls: MAIL before STARTTLS gets 530 5.7.0" has '530 5.7.0' "$out"
stop_sink

# A client that stalls the handshake after 220: the idle timeout closes it
# without writing a clear-text 421 into what should be a TLS stream.
start_sink stall --listen 127.0.0.1:0 --timeout 1s || exit 1
out=$(chat "1|" "1|EHLO x\r\n" "1|STARTTLS\r\n" "eof")
check "stalled TLS handshake: 220, then closed" has '^<EOF>' "$out"
check "stalled TLS handshake: no clear-text 421 after the 220" hasnt '421' "$out"
check_eq "stalled TLS handshake: counted as an idle timeout" "$(stats 'd["events"].get("idle_timeout")')" 1
stop_sink

start_sink auth --listen 127.0.0.1:0 --auth-users "$work/users" --require-auth || exit 1
out=$(chat "1|" "1|EHLO x\r\n" "1|MAIL FROM:<a@b>\r\n" "1|AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n" \
	"1|MAIL FROM:<a@b>\r\n" "1|AUTH LOGIN\r\n" "1|RSET\r\n" "1|AUTH CRAM-MD5\r\n")
check "--require-auth: MAIL before AUTH gets 530" has '530 5.7.0 Authentication required' "$out"
check "AUTH PLAIN with an initial response: 235" has '235 2.7.0' "$out"
check "MAIL after AUTH: 250" has '250 2.1.0' "$out"
check "AUTH when already authenticated: 503" has '503 5.5.1 Error: already authenticated' "$out"
check "gnutls-cli: the session ends with close_notify" hasnt 'non-properly terminated' "$tls_end"
out=$(chat "1|" "1|EHLO x\r\n" "1|AUTH LOGIN\r\n" "1|Ym9i\r\n" "1|aHVudGVyMg==\r\n" \
	"1|AUTH PLAIN\r\n" "1|AUTH FOO\r\n")
check "AUTH LOGIN: username prompt" has '334 VXNlcm5hbWU6' "$out"
check "AUTH LOGIN: password prompt then 235" has '235 2.7.0' "$out"
out=$(chat "1|" "1|EHLO x\r\n" "1|AUTH PLAIN\r\n" "1|*\r\n" "1|AUTH PLAIN !!!!\r\n" "1|AUTH FOO\r\n")
check "AUTH cancelled with *: 501" has '501 5.7.0' "$out"
check "AUTH with bad base64: 501" has '501 5.5.2' "$out"
check "unknown mechanism: 504" has '504 5.5.4' "$out"
stop_sink

finish
