#!/usr/bin/env bash
# kumod-reception.sh: the ESMTP listener. EHLO capabilities, relay_hosts
# (550 5.7.1 for others), SIZE (552), a pipelined transaction, 150
# recipients over two domains (split per domain and at 100 per
# transaction, all delivered), X-Tenant / X-Campaign queue names, and an
# IPv6 listener when ::1 is available.
. "$(dirname "$0")/kumod-common.sh"
start_sink sink
KUMOD_PORT=$(free_port)
DENY_PORT=$(free_port)
V6_PORT=$(free_port)
v6=""
if /usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1",0))' 2>/dev/null; then
	v6=", { address = \"[::1]:$V6_PORT\"; relay_hosts = [ \"::1\" ]; }"
fi
write_conf "$work/kumod.conf" "$KUMOD_PORT" "$SINK_PORT"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/key.pem" \
	-out "$work/cert.pem" -subj /CN=kumod.test -days 2 >/dev/null 2>&1
sed -i "s|max_message_size = 1000000; }|max_message_size = 1000000; tls_certificate = \"$work/cert.pem\"; tls_private_key = \"$work/key.pem\"; }|" "$work/kumod.conf"
sed -i "s|^listen = ( \(.*\) );|listen = ( \1, { address = \"127.0.0.1:$DENY_PORT\"; relay_hosts = [ \"10.0.0.0/8\" ]; max_message_size = 2000; }$v6 );|" "$work/kumod.conf"
check "config with three listeners is valid" "$KUMOD" --check-config "$work/kumod.conf"
start_kumod "$work/kumod.conf"

/usr/bin/python3 - "$KUMOD_PORT" "$DENY_PORT" "$V6_PORT" "${v6:+yes}" >"$work/py.out" 2>&1 <<'PY'
import smtplib, socket, sys, time
port, deny, v6port, v6 = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "yes"
def say(k, v): print("%s=%s" % (k, v), flush=True)
s = smtplib.SMTP("127.0.0.1", port, timeout=10)
code, caps = s.ehlo("client.test")
caps = caps.decode()
say("ehlo", code)
for c in ("PIPELINING", "8BITMIME", "SIZE 1000000", "ENHANCEDSTATUSCODES", "STARTTLS"):
    say("cap " + c, c in caps)
rcpts = ["m%d@a.example.test" % i for i in range(120)] + ["m%d@c.other.test" % i for i in range(30)]
body = b"X-Tenant: acme\r\nX-Campaign: spring\r\nSubject: many\r\n\r\nhello\r\n"
refused = s.sendmail("s@src.test", rcpts, body)
say("many refused", len(refused))
s.quit()
# Raw pipelined transaction in one write.
raw = socket.create_connection(("127.0.0.1", port), timeout=10)
f = raw.makefile("rb")
f.readline()
raw.sendall(b"EHLO p.test\r\nMAIL FROM:<p@src.test>\r\nRCPT TO:<pipe@a.example.test>\r\nDATA\r\n")
lines = []
while True:
    l = f.readline().decode().rstrip()
    lines.append(l)
    if l.startswith("354"):
        break
raw.sendall(b"Subject: pipelined\r\n\r\n..dot line\r\n.\r\nQUIT\r\n")
final = f.readline().decode().rstrip()
bye = f.readline().decode().rstrip()
say("pipelined codes", " ".join(x[:3] for x in lines if x[3:4] == " ") + " " + final[:3] + " " + bye[:3])
raw.close()
# Relay denied on the second listener; SIZE there is 2000.
d = smtplib.SMTP("127.0.0.1", deny, timeout=10)
d.ehlo("client.test")
code, msg = d.docmd("MAIL FROM:<s@src.test> SIZE=5000")
say("size declared", "%d %s" % (code, msg.decode()[:5]))
d.rset()
d.docmd("MAIL FROM:<s@src.test>")
code, msg = d.docmd("RCPT TO:<x@a.example.test>")
say("relay", "%d %s" % (code, msg.decode()[:5]))
d.quit()
# A message over SIZE without a declaration: 552 after the data.
e = smtplib.SMTP("127.0.0.1", port, timeout=10)
e.ehlo("client.test")
e.docmd("MAIL FROM:<s@src.test>")
e.docmd("RCPT TO:<big@a.example.test>")
e.docmd("DATA")
e.send(b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 1100 + b".\r\n")
code, msg = e.getreply()
say("oversize", "%d %s" % (code, msg.decode()[:5]))
e.quit()
# Exactly max_message_size (1000000) octets of message is accepted (kumod's own
# Received line does not count against the client); one more octet is not.
def sized(n, rcpt, declare):
    head = b"Subject: exact\r\n\r\n"
    fill = n - len(head) - 2
    lines = [b"z" * 998 + b"\r\n"] * (fill // 1000)
    body = head + b"".join(lines) + b"z" * (fill % 1000) + b"\r\n"
    assert len(body) == n
    x = smtplib.SMTP("127.0.0.1", port, timeout=10)
    x.ehlo("client.test")
    x.docmd("MAIL FROM:<s@src.test>" + (" SIZE=%d" % n if declare else ""))
    x.docmd("RCPT TO:<%s>" % rcpt)
    x.docmd("DATA")
    x.send(body + b".\r\n")
    code, msg = x.getreply()
    x.quit()
    return "%d %s" % (code, msg.decode()[:5])
say("exact size", sized(1000000, "exact@a.example.test", True))
say("one over", sized(1000001, "over@a.example.test", False))
# STARTTLS: a real handshake, then a message; EHLO after TLS no longer offers STARTTLS.
import ssl
t = smtplib.SMTP("127.0.0.1", port, timeout=10)
t.ehlo("tls.test")
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
code, _ = t.starttls(context=ctx)
say("starttls", "%d %s" % (code, t.sock.version()))
code, caps2 = t.ehlo("tls.test")
say("starttls offered again", "STARTTLS" in caps2.decode())
say("tls refused", len(t.sendmail("s@src.test", ["tls@a.example.test"], b"Subject: tls\r\n\r\nsecret\r\n")))
t.quit()
# STARTTLS injection: a command pipelined after STARTTLS in clear text must not survive.
raw = socket.create_connection(("127.0.0.1", port), timeout=10)
f = raw.makefile("rb")
f.readline()
raw.sendall(b"EHLO inj.test\r\n")
while not f.readline().startswith(b"250 "):
    pass
raw.sendall(b"STARTTLS\r\nMAIL FROM:<evil@src.test>\r\n")
first = f.readline().decode().rstrip()
rest = f.read()
say("injection", "%s then %d bytes, closed" % (first[:3], len(rest)))
raw.close()
if v6:
    s6 = smtplib.SMTP("::1", v6port, timeout=10)
    s6.ehlo("client6.test")
    say("v6 refused", len(s6.sendmail("s@src.test", ["v6@c.other.test"], b"Subject: v6\r\n\r\nhi\r\n")))
    s6.quit()
PY
cat "$work/py.out" | sed 's/^/# /'
val() { sed -n "s/^$1=//p" "$work/py.out"; }
check_eq "EHLO" "$(val ehlo)" 250
for c in PIPELINING 8BITMIME "SIZE 1000000" ENHANCEDSTATUSCODES STARTTLS; do check_eq "advertises $c" "$(val "cap $c")" True; done
check_eq "150 recipients accepted" "$(val 'many refused')" 0
check_eq "pipelined replies in order" "$(val 'pipelined codes')" "250 250 250 354 250 221"
check_eq "declared SIZE above the limit" "$(val 'size declared')" "552 5.3.4"
check_eq "relay from outside relay_hosts" "$(val relay)" "550 5.7.1"
check_eq "oversized data" "$(val oversize)" "552 5.3.4"
check_eq "exactly max_message_size accepted" "$(val 'exact size')" "250 2.0.0"
check_eq "one octet more refused" "$(val 'one over')" "552 5.3.4"
check_eq "STARTTLS handshake" "$(val starttls)" "220 TLSv1.3"
check_eq "no STARTTLS offered inside TLS" "$(val 'starttls offered again')" False
check_eq "message over TLS accepted" "$(val 'tls refused')" 0
check_eq "STARTTLS injection: 220, then the connection is dropped" "$(val injection)" "220 then 0 bytes, closed"
want=153
[ -n "$v6" ] && want=154
got() { [ "$(saved_rcpts sink | wc -l)" -ge $want ]; }
check "all $want recipients delivered (20 s)" wait_until 20 got
saved_rcpts sink | sort >"$work/rcpts"
check_eq "distinct recipients delivered" "$(sort -u "$work/rcpts" | wc -l)" $want
check_eq "a.example.test recipients" "$(grep -c '^m[0-9]*@a.example.test$' "$work/rcpts")" 120
tls_file=$(grep -rl '^X-Sink-Rcpt-To: <\?tls@a.example.test' "$work/sink.d" | head -1)
check "the TLS message says ESMTPS in its Received header" grep -q "with ESMTPS;" "$tls_file"
check "dot-stuffed line arrives unstuffed" grep -rq '^\.dot line' "$work/sink.d"
# 120 recipients of one domain need two transactions (100 + 20).
check_eq "transactions for the 120 a.example.test recipients" \
	"$(grep -l '^X-Sink-Rcpt-To: <\?m[0-9]*@a.example.test' -r "$work/sink.d" | wc -l)" 2
sleep 0.3
check_eq "queue name from X-Tenant / X-Campaign" \
	"$(cat "$work"/logs/*.jsonl | jq -r 'select(.type=="Delivery" and (.recipient|startswith("m"))) | .queue' | sort -u | tr '\n' ' ')" \
	"spring:acme@a.example.test spring:acme@c.other.test "
check_eq "tenant field" "$(cat "$work"/logs/*.jsonl | jq -r 'select(.type=="Reception" and .recipient=="m0@a.example.test") | .tenant')" acme
if [ -n "$v6" ]; then
	check_eq "IPv6 peer recorded" "$(cat "$work"/logs/*.jsonl | jq -r 'select(.type=="Reception" and .recipient=="v6@c.other.test") | .peer_address')" "::1"
fi
finish
