# sink-faults.sh: every smtp-sink fault option, observed from a client:
# --delay (timed), --reply with @PERCENT and --seed (repeatable), --disconnect,
# --421, --abort-data and the banner variants; faults on every verb (HELO,
# STARTTLS, AUTH, BDAT, RSET, QUIT too) and --delay with a percentage.
. "$(cd "$(dirname "$0")" && pwd)/sink-common.sh"

# at LINE-REGEX TEXT: the [seconds] stamp of the first line matching the regex
at() {
	grep -E -- "$1" <<<"$2" | head -1 | sed -E 's/^\[([0-9.]+)\].*/\1/'
}
# between X LO HI: LO <= X < HI
between() {
	[ -n "$1" ] && awk -v x="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(x >= lo && x < hi) }'
}

# --- --delay: per verb, held replies keep their order ---
start_sink delay --listen 127.0.0.1:0 --delay MAIL=600ms --delay DOT=300ms || exit 1
out=$(chat "1|" "1|EHLO x\r\n" "3|MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" "1|x\r\n.\r\n" "1|QUIT\r\n")
t_mail=$(at '250 2.1.0' "$out")
t_dot=$(at 'Ok: queued' "$out")
check "--delay MAIL=600ms: MAIL answered after 0.6 s ($t_mail)" between "$t_mail" 0.55 2.5
check "--delay: RCPT and DATA replies wait behind it, in order" \
	test "$(grep -Eo '\] [0-9]{3} ' <<<"$out" | sed -n '3,5p' | tr -d '] \n')" = 250250354
check "--delay DOT=300ms: the dot answered 0.3 s later ($t_dot)" \
	awk -v a="$t_mail" -v b="$t_dot" 'BEGIN { exit !(b - a >= 0.25) }'
stop_sink

start_sink hang --listen 127.0.0.1:0 --delay RCPT=forever || exit 1
out=$(CHAT_TIMEOUT=1.5 chat "1|" "1|HELO x\r\n" "1|MAIL FROM:<a@b>\r\n" "1|RCPT TO:<c@d>\r\n")
check "--delay RCPT=forever: the client's rcpt timeout fires" has '<TIMEOUT>' "$out"
check "--delay RCPT=forever: no RCPT reply at all" hasnt '2.1.5' "$out"
stop_sink

if command -v swaks >/dev/null; then
	start_sink slowehlo --listen 127.0.0.1:0 --delay EHLO=3s || exit 1
	out=$(timeout 20 swaks --server 127.0.0.1 --port "$SINK_PORT" --to a@b.test --timeout 1 2>&1)
	check "--delay EHLO=3s trips swaks' 1 s timeout" has 'Timeout|timed out|timeout' "$out"
	stop_sink
fi

# --- --reply with a percentage, repeatable with --seed ---
rcpts="" 
for i in $(seq 40); do rcpts="$rcpts""RCPT TO:<r$i@d>\r\n"; done
run_dice() {
	start_sink dice --listen 127.0.0.1:0 --reply 'RCPT=450 4.2.0 busy@50' --seed 42 || exit 1
	chat "1|" "1|HELO x\r\n" "1|MAIL FROM:<a@b>\r\n" "40|$rcpts" | grep -Eo '\] [0-9]{3}' | tr -d '] ' | tr '\n' ,
	stop_sink
}
seq1=$(run_dice)
seq2=$(run_dice)
n450=$(tr , '\n' <<<"$seq1" | grep -c 450)
check "--reply RCPT=...@50: about half the RCPTs get 450 ($n450 of 40)" between "$n450" 8 33
check "--reply @50: every other RCPT still 250" test "$(tr , '\n' <<<"$seq1" | grep -c 250)" -eq $((40 + 2 - n450))
check "--seed 42: the same dice twice" test "$seq1" = "$seq2"

start_sink rej --listen 127.0.0.1:0 --reply 'MAIL=451 4.3.0 try later' --reply 'DOT=554 5.7.1 rejected' || exit 1
out=$(chat "1|" "1|HELO x\r\n" "2|MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n")
check "--reply MAIL=451: MAIL refused" has '451 4.3.0 try later' "$out"
check "refused MAIL: no transaction, RCPT gets 503" has '503 5.5.1' "$out"
if command -v swaks >/dev/null; then
	stop_sink
	start_sink rejdot --listen 127.0.0.1:0 --reply 'DOT=554 5.7.1 rejected' || exit 1
	out=$(timeout 20 swaks --server 127.0.0.1 --port "$SINK_PORT" --to a@b.test 2>&1)
	check "--reply DOT=554: swaks sees the rejection after its data" has '^<\*\* +554 5.7.1 rejected' "$out"
	check_eq "a rejected message is not counted" "$(stats 'd["messages"]')" 0
fi
stop_sink

# --- --disconnect and --421 ---
start_sink drop --listen 127.0.0.1:0 --disconnect RCPT || exit 1
out=$(chat "1|" "1|HELO x\r\n" "1|MAIL FROM:<a@b>\r\n" "1|RCPT TO:<c@d>\r\n")
check "--disconnect RCPT: dropped without a reply" \
	test "$(tail -1 <<<"$out")" = "<EOF>" -a "$(grep -c '2.1.5' <<<"$out")" -eq 0
stop_sink

start_sink q421 --listen 127.0.0.1:0 --421 DATA || exit 1
out=$(chat "1|" "1|HELO x\r\n" "3|MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" eof)
check "--421 DATA: 421 then close" has '421 4.3.0 sink.test' "$out"
check "--421 DATA: the connection closes" has '<EOF>' "$out"
stop_sink

# --- faults on the other verbs: HELO, STARTTLS, AUTH, BDAT, RSET, QUIT ---
printf 'alice:s3cret\n' >"$work/users"
start_sink verbs --listen 127.0.0.1:0 --auth-users "$work/users" \
	--reply 'HELO=554 5.7.1 helo refused' --reply 'STARTTLS=454 4.7.0 TLS not today' \
	--reply 'AUTH=454 4.7.0 auth unavailable' --reply 'BDAT=452 4.3.1 bdat refused' \
	--reply 'RSET=451 4.3.0 rset refused' --reply 'QUIT=221 2.0.0 custom bye' || exit 1
out=$(chat "1|" "1|HELO x\r\n" "1|EHLO x\r\n" "1|STARTTLS\r\n" "1|AUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n" \
	"1|MAIL FROM:<a@b>\r\n" "1|RCPT TO:<c@d>\r\n" "1|BDAT 5 LAST\r\nhello" "1|RSET\r\n" "1|QUIT\r\n" eof)
for want in "554 5.7.1 helo refused" "454 4.7.0 TLS not today" "454 4.7.0 auth unavailable" \
	"452 4.3.1 bdat refused" "451 4.3.0 rset refused" "221 2.0.0 custom bye"; do
	check "--reply ${want%% *} on its verb: $want" has "] $want" "$out"
done
check_eq "--reply BDAT: the refused chunk is not a message" "$(stats 'd["messages"]')" 0
stop_sink
start_sink dropehlo --listen 127.0.0.1:0 --disconnect EHLO --421 HELO || exit 1
out=$(chat "1|" "1|EHLO x\r\n")
check "--disconnect EHLO: dropped without a reply" test "$(sed -n 2p <<<"$out")" = "<EOF>"
out=$(chat "1|" "1|HELO x\r\n" eof)
check "--421 HELO: 421 then close" has '421 4.3.0 sink.test' "$out"
stop_sink
# --delay with a percentage: @100 always waits, @0 never does
start_sink pct --listen 127.0.0.1:0 --delay 'RSET=600ms@100' --delay 'MAIL=600ms@0' || exit 1
out=$(chat "1|" "1|HELO x\r\n" "1|MAIL FROM:<a@b>\r\n" "1|RSET\r\n")
t_mail=$(at '250 2.1.0' "$out")
t_rset=$(at '250 2.0.0' "$out")
check "--delay MAIL=600ms@0: never delayed ($t_mail)" between "$t_mail" 0 0.5
check "--delay RSET=600ms@100: always delayed ($t_rset)" \
	awk -v a="$t_mail" -v b="$t_rset" 'BEGIN { exit !(b - a >= 0.55) }'
stop_sink

# --- --abort-data ---
start_sink abort --listen 127.0.0.1:0 --abort-data 500ms || exit 1
out=$(chat "1|" "1|HELO x\r\n" "3|MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n" "1|Subject: x\r\n\r\nbody\r\n" eof)
t=$(at '550 5.3.0' "$out")
check "--abort-data 500ms: 550 half a second after 354 ($t)" between "$t" 0.45 2.5
check "--abort-data: then the connection closes" has '<EOF>' "$out"
check_eq "--abort-data: nothing counted" "$(stats 'd["messages"]')" 0
stop_sink

# --- banner variants ---
start_sink b554 --listen 127.0.0.1:0 --reply 'CONNECT=554 5.3.2 no service' || exit 1
out=$(chat "1|" "1|EHLO x\r\n" "1|QUIT\r\n")
check "554 banner" has '^\[[0-9.]+\] 554 5.3.2 no service' "$out"
check "554 banner: commands get 503 until QUIT" has '503 5.5.1' "$out"
check "554 banner: QUIT still 221" has '221 2.0.0' "$out"
stop_sink

start_sink b421 --listen 127.0.0.1:0 --421 CONNECT || exit 1
out=$(chat "1|" eof)
check "--421 CONNECT: 421 banner and close" has '421 4.3.0' "$out"
stop_sink

start_sink bslow --listen 127.0.0.1:0 --delay CONNECT=700ms || exit 1
out=$(chat "1|" "1|QUIT\r\n")
t=$(at '220 ' "$out")
check "--delay CONNECT=700ms: banner 0.7 s late ($t)" between "$t" 0.65 2.5
stop_sink

start_sink bdrop --listen 127.0.0.1:0 --disconnect CONNECT || exit 1
out=$(chat "1|")
check "--disconnect CONNECT: closed before any banner" test "$out" = "<EOF>"
check_eq "stats count the dropped connection" "$(stats 'd["connections"]["total"]')" 1
stop_sink

start_sink bhang --listen 127.0.0.1:0 --delay CONNECT=400ms --disconnect CONNECT || exit 1
out=$(chat "1|")
check "--delay + --disconnect CONNECT: silent, then closed" test "$out" = "<EOF>"
stop_sink

finish
