# sink-basic.sh: smtp-sink's command line, listeners and SMTP/LMTP protocol,
# driven by swaks and a scripted client on 127.0.0.1 / ::1.
. "$(cd "$(dirname "$0")" && pwd)/sink-common.sh"

# --- command line ---
out=$(timeout 5 "$SINK" --help)
check "--help exits 0" test $? -eq 0
for opt in --listen --listen-tls --port-file --hostname --lmtp --disable --proxy-protocol \
	--max-clients --line-max --max-message-size --max-rcpt --timeout --delay --reply --seed \
	--disconnect --421 --abort-data --counter --stats-json --save-dir --log-json --exit-after \
	--cert --key --tls-priority --tls-client-cert --require-tls --auth-users --require-auth; do
	has "$opt" "$out" || fail "--help lacks $opt"
done
bad() {
	local err rc
	err=$(timeout 5 "$SINK" "$@" 2>&1 >/dev/null)
	rc=$?
	err=${err%%$'\n'*}
	if [ "$rc" -eq 2 ] && [ -n "$err" ]; then pass "bad options exit 2: $* ($err)"; else fail "bad options $*: rc $rc, '$err'"; fi
}
bad --no-such-option
bad --delay RCPT
bad --delay FOO=1s
bad --delay RCPT=soon
bad --delay RCPT=1s@150
bad --reply MAIL="hello"
bad --reply MAIL="650 no"
bad --max-clients lots
bad --disable FROBNICATE
bad --listen nowhere
bad --cert /nonexistent
bad --require-auth
bad --tls-client-cert maybe
bad --coalesce 1s
bad stray-argument
man=$top_srcdir/doc/smtp-sink.1
if [ -f "$man" ]; then
	missing=""
	for opt in $(grep -oE -- '--[a-z0-9-]+' <<<"$out" | sort -u); do
		grep -qF -- "$(sed 's/-/\\-/g' <<<"$opt")" "$man" || missing="$missing $opt"
	done
	check_eq "smtp-sink.1 covers every --help option" "$missing" ""
fi

# --- two listeners, IPv4 and IPv6, port 0, port file with one line per listener ---
start_sink basic --listen 127.0.0.1:0 --listen '[::1]:0' --max-message-size 2000 --max-rcpt 3 \
	--line-max 100 --log-json "$work/tx.json" --save-dir "$work" || exit 1
check_eq "port file has a line per listener" "$(wc -l <"$work/basic.port")" 2
PORT6=$(sed -n 2p "$work/basic.port")

if command -v swaks >/dev/null; then
	out=$(timeout 20 swaks --server 127.0.0.1 --port "$SINK_PORT" --from a@example.test \
		--to b@example.test --pipeline 2>&1)
	check "swaks (pipelined) gets 250 for its message" has '^<- +250 2.0.0 Ok: queued' "$out"
else
	fail "swaks missing"
fi

out=$(chat -6 -p "$PORT6" "1|" "1|EHLO client6.test\r\n" \
	"4|MAIL FROM:<a@b.test> SIZE=100\r\nRCPT TO:<c@d.test>\r\nRCPT TO:<e@f.test>\r\nDATA\r\n" \
	"1|Subject: x\r\n\r\n..dotted\r\n.\r\n" "1|QUIT\r\n" eof)
check "IPv6 listener answers" has '220 sink.test ESMTP' "$out"
for ext in PIPELINING 'SIZE 2000' 8BITMIME SMTPUTF8 STARTTLS ENHANCEDSTATUSCODES DSN CHUNKING; do
	has "250-$ext\$" "$out" || fail "EHLO lacks $ext"
done
check "pipelined MAIL/RCPT/RCPT/DATA get 250 250 250 354 in order" \
	test "$(grep -Eo '\] [0-9]{3} ' <<<"$out" | sed -n '3,6p' | tr -d '] \n')" = 250250250354
check "message accepted" has '250 2.0.0 Ok: queued' "$out"

# PIPELINING done right: the replies of one pipelined group leave in one write.
if command -v strace >/dev/null; then
	strace -qq -p "$SINK_PID" -e trace=sendto -s 400 -o "$work/strace.out" 2>/dev/null &
	st_pid=$!
	T_PIDS+=("$st_pid")
	sleep 0.5
	chat "1|" "1|EHLO x\r\n" "5|MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nNOOP\r\nDATA\r\n" \
		"1|.\r\n" >/dev/null
	sleep 0.2
	stop_pid "$st_pid" TERM
	check "pipelined group answered in one write" \
		grep -q '250 2.1.0 Ok\\r\\n250 2.1.5 Ok\\r\\n250 2.1.5 Ok\\r\\n250 2.0.0 Ok\\r\\n354 ' "$work/strace.out"
else
	echo "strace missing: one-write check skipped"
fi
check "QUIT 221 then the client sees the close" has '<EOF>' "$out"
check "save-dir file records envelope and unstuffs dots" \
	bash -c "cat '$work'/*.eml | grep -q '^X-Sink-Rcpt-To: <e@f.test>$' && cat '$work'/*.eml | grep -q '^X-Sink-Mail-From: <a@b.test> SIZE=100$' && cat '$work'/*.eml | grep -q '^\\.dotted'"
check "log-json line per transaction" \
	"$PY" -c "import json,sys; l=[json.loads(x) for x in open('$work/tx.json')]; sys.exit(not any(x['rcpt_to']==['c@d.test','e@f.test'] and x['ehlo']=='client6.test' and x['code']==250 for x in l))"

# BDAT, sequence errors, limits
out=$(chat "1|" "1|EHLO x\r\n" "1|BDAT 3\r\nabc" "2|MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n" \
	"2|BDAT 5\r\nhelloBDAT 2 LAST\r\nzz" \
	"2|MAIL FROM:<a@b> SIZE=999999\r\nRCPT TO:<c@d>\r\n" \
	"4|MAIL FROM:<a@b>\r\nRCPT TO:<1@d>\r\nRCPT TO:<2@d>\r\nRCPT TO:<3@d>\r\n" "1|RCPT TO:<4@d>\r\n" \
	"1|DATA\r\n" "1|$(printf 'x%.0s' $(seq 3000))\r\n.\r\n" \
	"1|NOOP $(printf 'y%.0s' $(seq 200))\r\n" "1|NOOP\r\n" "3|VRFY x\r\nEXPN y\r\nFROB\r\n" "1|QUIT\r\n")
check "BDAT before MAIL: 503 after the chunk" has '503 5.5.1 Error: need MAIL' "$out"
check "BDAT chunk: octets received" has '250 2.0.0 5 octets received' "$out"
check "BDAT LAST: queued" has '250 2.0.0 Ok: queued' "$out"
check "MAIL SIZE over the limit: 552" has '552 5.3.4 Error: message size exceeds' "$out"
check "--max-rcpt 3: 4th RCPT gets 452" has '452 4.5.3' "$out"
check "message over --max-message-size: 552 after the dot" has '552 5.3.4 Error: message too large' "$out"
check "line over --line-max: 500, session goes on" has '500 5.5.0 Error: line too long' "$out"
check "NOOP after the long line still answered" test "$(grep -c '250 2.0.0 Ok$' <<<"$out")" -ge 1
check "VRFY 252" has '252 2.0.0' "$out"
check "unknown verb 500" has '500 5.5.2' "$out"

check_eq "stats: messages so far" "$(stats 'd["messages"]')" 4
check_eq "stats: per client address" "$(stats 'sorted(d["by_client"])')" "['127.0.0.1', '::1']"
check_eq "stats: replies by code (552)" "$(stats 'd["replies"]["552"]')" 2
stop_sink

# --- extensions switched off, LMTP ---
start_sink off --listen 127.0.0.1:0 --disable PIPELINING,SIZE,8BITMIME,SMTPUTF8,DSN,CHUNKING,STARTTLS,ENHANCEDSTATUSCODES || exit 1
out=$(chat "1|" "1|EHLO x\r\n" "1|BDAT 1 LAST\r\n" "1|QUIT\r\n")
check "all extensions off: EHLO is one name line plus HELP" test "$(grep -c '250-' <<<"$out")" -eq 1
check "ENHANCEDSTATUSCODES off: no enhanced codes" has '221 Bye' "$out"
check "CHUNKING off: BDAT unknown" has '500 Error: command not recognized' "$out"
stop_sink

start_sink lmtp --listen 127.0.0.1:0 --lmtp || exit 1
out=$(chat "1|" "1|EHLO x\r\n" "1|LHLO x\r\n" "4|MAIL FROM:<a@b>\r\nRCPT TO:<1@d>\r\nRCPT TO:<2@d>\r\nDATA\r\n" \
	"2|hi\r\n.\r\n" "1|QUIT\r\n")
check "LMTP: banner says LMTP" has '220 sink.test LMTP' "$out"
check "LMTP: EHLO refused" has '500 5.5.1 Error: LMTP requires LHLO' "$out"
check_eq "LMTP: one reply per recipient after the dot" "$(grep -c 'Ok: queued' <<<"$out")" 2
stop_sink

# --- idle timeout ---
start_sink idle --listen 127.0.0.1:0 --timeout 1s || exit 1
out=$(chat "1|" "1|EHLO x\r\n" "1|")
check "idle timeout: 421 4.4.2 after ~1s" has '^\[(0\.9|1\.|2\.)[0-9]*\] 421 4.4.2' "$out"
# Input starts the period again: NOOPs every 0.6 s for 2.4 s, then ~1 s of silence.
out=$(chat "1|" sleep:0.6 "1|NOOP\r\n" sleep:0.6 "1|NOOP\r\n" sleep:0.6 "1|NOOP\r\n" \
	sleep:0.6 "1|NOOP\r\n" "1|")
check_eq "idle timeout: every NOOP answered 250" "$(grep -c '250 2.0.0' <<<"$out")" 4
check "idle timeout: restarted by input, 421 only ~1 s after the last NOOP" \
	has '^\[(3\.[2-9]|[4-9]\.)[0-9]*\] 421 4.4.2' "$out"
stop_sink

# --- max-clients: the third client waits for its banner until one leaves ---
start_sink maxc --listen 127.0.0.1:0 --max-clients 2 || exit 1
out=$(timeout 20 "$PY" - "$SINK_PORT" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
def conn():
    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(5); return s
a, b = conn(), conn()
print("a", a.recv(100)[:3].decode()); print("b", b.recv(100)[:3].decode())
c = conn(); c.settimeout(1)
try:
    print("c-early", c.recv(100)[:3].decode())
except socket.timeout:
    print("c-waits")
a.sendall(b"QUIT\r\n"); a.recv(100); a.close()
c.settimeout(5)
print("c-later", c.recv(100)[:3].decode())
EOF
)
check "--max-clients 2: two banners" has '^b 220' "$out"
check "--max-clients 2: third connection gets no banner at the cap" has '^c-waits' "$out"
check "--max-clients 2: third served after one closes" has '^c-later 220' "$out"
check_eq "stats: peak concurrent = 2" "$(stats 'd["connections"]["peak_concurrent"]')" 2
stop_sink

# --- PROXY protocol v1 and v2 ---
start_sink proxy --listen 127.0.0.1:0 --proxy-protocol || exit 1
out=$(chat "1|PROXY TCP4 192.0.2.7 127.0.0.1 4444 25\r\n" "1|QUIT\r\n")
check "PROXY v1 header then banner" has '220 sink.test' "$out"
out=$(chat "1|\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc6\x33\x64\x09\x7f\x00\x00\x01\x11\x5c\x00\x19" "1|QUIT\r\n")
check "PROXY v2 header then banner" has '220 sink.test' "$out"
out=$(chat "1|EHLO no-header\r\n")
check "no PROXY header: dropped" has '<EOF>' "$out"
check_eq "stats: PROXY sources" "$(stats 'sorted(d["proxy_sources"].items())')" \
	"[('192.0.2.7', 1), ('198.51.100.9', 1)]"
stop_sink

# --- any bytes at all: the sink survives and still serves ---
start_sink junk --listen 127.0.0.1:0 --line-max 64 --max-message-size 5000 || exit 1
start_bg junkproxy "$SINK" --listen 127.0.0.1:0 --proxy-protocol --port-file "$work/jp.port" \
	--hostname sink.test
jp_pid=$LAST_PID
wait_file "$work/jp.port" 10
timeout 60 "$PY" - "$SINK_PORT" "$(head -1 "$work/jp.port")" <<'EOF'
import os, random, socket, sys
random.seed(7)
words = [b"EHLO x", b"HELO", b"MAIL FROM:<a@b>", b"RCPT TO:<c@d>", b"DATA", b"BDAT 10", b"BDAT 3 LAST",
         b"AUTH PLAIN", b"AUTH LOGIN", b"STARTTLS", b"RSET", b".", b"\x00\xff", b"MAIL FROM:<<>>",
         b"BDAT 18446744073709551615", b"RCPT TO:<" + b"x" * 300 + b">", b"\r", b"\n",
         b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2", b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff"]
for port in map(int, sys.argv[1:]):
    for _ in range(60):
        s = socket.create_connection(("127.0.0.1", port)); s.settimeout(0.5)
        for _ in range(random.randint(1, 20)):
            if random.random() < 0.5:
                data = random.choice(words) + random.choice([b"\r\n", b"", b"\n"])
            else:
                data = os.urandom(random.randint(1, 3000))
            try:
                s.sendall(data)
            except OSError:
                break
        try:
            s.recv(65536)
        except OSError:
            pass
        s.close()
EOF
check "random bytes on 120 connections: the sink is alive" kill -0 "$SINK_PID"
check "random bytes: the PROXY sink is alive" kill -0 "$jp_pid"
out=$(chat "1|" "1|HELO x\r\n" "1|QUIT\r\n")
check "random bytes: then a normal session still works" has '221 2.0.0' "$out"
stop_sink
stop_pid "$jp_pid"
printf 'nobody here\n' >"$work/nousers"
timeout 5 "$SINK" --listen 127.0.0.1:0 --auth-users "$work/nousers" >/dev/null 2>&1
check_eq "--auth-users without a user:password line: exit 2" "$?" 2

# --- --exit-after and stats at exit ---
start_sink exit --listen 127.0.0.1:0 --exit-after 2 || exit 1
for i in 1 2; do
	chat "1|" "1|HELO x\r\n" "3|MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" "1|x\r\n.\r\n" >/dev/null
done
wait_for 5 bash -c "! kill -0 $SINK_PID"
check "--exit-after 2: exited by itself" bash -c "! kill -0 $SINK_PID 2>/dev/null"
wait "$SINK_PID"
check_eq "--exit-after: exit status 0" "$?" 0
check_eq "--exit-after: stats written at exit" "$(stats 'd["messages"]')" 2

finish
