#!/usr/bin/env bash
# kumod-crash.sh: kill -9 kumod while injection and delivery run, restart it,
# and prove that every message that got a 250 is delivered (the sink's saved
# messages are the verdict). Duplicates are counted; they can only come from
# messages in flight (delivered, not yet removed from the spool) at the kill.
. "$(dirname "$0")/kumod-common.sh"
N=${N:-3000}

# The sink is slowed a little so the kill finds messages at every stage.
start_sink sink --delay DOT=5ms
KUMOD_PORT=$(free_port)
write_conf "$work/kumod.conf" "$KUMOD_PORT" "$SINK_PORT" "" \
	'queues = { default = { retry_interval = 1; }; };'
start_kumod "$work/kumod.conf"
: >"$work/acked"
/usr/bin/python3 "$here/kumod-inject.py" "$KUMOD_PORT" "$N" 10 "$work/acked" a.example.test c.other.test &
inj=$!
pids+=("$inj")
acked_some() { [ "$(wc -l <"$work/acked")" -ge $((N / 3)) ]; }
wait_until 30 acked_some
kill -9 "$KUMOD_PID"
wait "$KUMOD_PID" 2>/dev/null
wait "$inj"
acked=$(wc -l <"$work/acked")
spooled=$(ls "$work/spool" | wc -l)
echo "# at the kill: $acked acknowledged, $spooled spool files, $(find "$work/sink.d" -type f | wc -l) delivered"
check "some messages were acknowledged before the kill" test "$acked" -gt 0
check "some were still spooled at the kill" test "$spooled" -gt 0
start_kumod "$work/kumod.conf"
delivered_all() {
	saved_rcpts sink | sort -u >"$work/got"
	[ -z "$(sort -u "$work/acked" | comm -23 - "$work/got")" ]
}
check "every acknowledged message is delivered after the restart (60 s)" wait_until 60 delivered_all
missing=$(sort -u "$work/acked" | comm -23 - "$work/got" | wc -l)
check_eq "acknowledged but never delivered" "$missing" 0
check "the spool drains" wait_until 30 spool_empty
dups=$(saved_rcpts sink | sort | uniq -d | wc -l)
echo "# duplicates: $dups"
# Two sites (a.example.test, c.other.test), connection_limit 8 each, one message per transaction.
check "duplicates ($dups) no more than could be in flight (2 sites x connection_limit 8)" test "$dups" -le 16
check "recovery was logged" grep -q "recovered [0-9]* messages" "$work/kumod.out"
check "no incomplete spool file was delivered (every saved message is complete)" \
	sh -c "! find '$work/sink.d' -type f -size -1000c | grep -q ."

# Recovery of hand-made spool files: a valid one is delivered; one cut short,
# one of random bytes and an unfinished rewrite (.tmp) are removed, and kumod
# does not mind any of them.
kill "$KUMOD_PID"
wait "$KUMOD_PID" 2>/dev/null
body=$'Subject: hand made\r\n\r\nrecovered\r\n'
hdr() { printf 'KUMO1\nid %s\ncreated %s\nattempts 0\nsender s@src.test\nrcpt %s@a.example.test\ndomain a.example.test\nqueue a.example.test\nsize %s\n\n' "$1" "$(date +%s)" "$1" "${#body}"; }
{ hdr ffff000000000001; printf '%s' "$body"; } >"$work/spool/ffff000000000001"
{ hdr ffff000000000002; printf '%s' "${body:0:10}"; } >"$work/spool/ffff000000000002"
head -c 3000 /dev/urandom >"$work/spool/ffff000000000003"
{ hdr ffff000000000004; printf '%s' "$body"; } >"$work/spool/ffff000000000004.tmp"
: >"$work/spool/ffff000000000005"
# Count only this start's reports: the recovery after kill -9 above may rightly
# have removed a file that was being written when the daemon died.
before=$(wc -l <"$work/kumod.out")
start_kumod "$work/kumod.conf"
handmade() { saved_rcpts sink | grep -qx 'ffff000000000001@a.example.test'; }
check "a valid hand-made spool file is recovered and delivered" wait_until 10 handmade
check "the spool ends empty (bad files removed)" wait_until 10 spool_empty
check_eq "incomplete files reported" "$(tail -n +"$((before + 1))" "$work/kumod.out" | grep -c 'removing incomplete file')" 3
check_eq "the truncated message was not delivered" "$(saved_rcpts sink | grep -c ffff000000000002)" 0
check "kumod still runs" kill -0 "$KUMOD_PID"
finish
