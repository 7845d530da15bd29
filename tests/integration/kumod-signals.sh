#!/usr/bin/env bash
# kumod-signals.sh: SIGHUP reloads (new sessions see the new settings; a bad
# file is reported with file:line and the old configuration keeps working),
# SIGTERM stops within shutdown_timeout even with a transaction stuck at the
# final dot, and the stuck message stays spooled and is delivered after a
# restart.
. "$(dirname "$0")/kumod-common.sh"
start_sink sink --delay DOT=20s
KUMOD_PORT=$(free_port)
write_conf "$work/kumod.conf" "$KUMOD_PORT" "$SINK_PORT" "" 'shutdown_timeout = 2;'
sed -i 's/^shutdown_timeout = 5;$//' "$work/kumod.conf"
start_kumod "$work/kumod.conf"
banner() { /usr/bin/python3 -c "import socket,sys; s=socket.create_connection(('127.0.0.1',$KUMOD_PORT),timeout=5); print(s.recv(200).decode().split()[1])"; }
check_eq "banner before reload" "$(banner)" kumod.test

sed -i 's/hostname = "kumod.test";/hostname = "reloaded.test";/' "$work/kumod.conf"
kill -HUP "$KUMOD_PID"
reloaded() { [ "$(banner)" = reloaded.test ]; }
check "SIGHUP: new sessions use the new hostname" wait_until 5 reloaded

cp "$work/kumod.conf" "$work/good.conf"
sed -i 's/connection_limit = 8;/connection_limit = -3;/' "$work/kumod.conf"
kill -HUP "$KUMOD_PID"
reported() { grep -q "kumod.conf:[0-9]*: .*connection_limit: -3 is out of range" "$work/kumod.out"; }
check "a bad reload is reported with file:line" wait_until 5 reported
check "kumod survives the bad reload" kill -0 "$KUMOD_PID"
check_eq "old configuration still in force" "$(banner)" reloaded.test

# A message stuck at the final dot (the sink delays its reply 20 s).
: >"$work/acked"
/usr/bin/python3 "$here/kumod-inject.py" "$KUMOD_PORT" 1 1 "$work/acked" a.example.test
check_eq "message accepted" "$(wc -l <"$work/acked")" 1
sleep 1
t0=$(date +%s)
kill -TERM "$KUMOD_PID"
gone() { ! kill -0 "$KUMOD_PID" 2>/dev/null; }
check "SIGTERM: exit within shutdown_timeout 2 s + 3 s" wait_until 6 gone
wait "$KUMOD_PID"
check_eq "exit status" "$?" 0
echo "# stopped after $(($(date +%s) - t0)) s"
check_eq "the stuck message is still spooled" "$(ls "$work/spool" | wc -l)" 1
check "the abandonment was logged" grep -q "abandoning" "$work/kumod.out"

# Restart against a prompt sink: the message is delivered.
kill "$SINK_PID"
wait "$SINK_PID" 2>/dev/null
"$SINK" --listen "127.0.0.1:$SINK_PORT" --save-dir "$work/sink.d" >"$work/sink2.out" 2>&1 &
pids+=("$!")
cp "$work/good.conf" "$work/kumod.conf"
start_kumod "$work/kumod.conf"
delivered() { saved_rcpts sink | grep -q "$(cat "$work/acked")"; }
check "after the restart the message is delivered" wait_until 10 delivered

# --- daemon mode (no -f): the launcher reports start-up and exits 0 or 2 ---
out=$(timeout 20 "$KUMOD" -c "$work/kumod.conf" 2>&1)
check_eq "a second kumod on the same spool fails to start" "$?" 2
check "... and says why on stderr ($out)" grep -q "spool_dir $work/spool is in use by another kumod" <<<"$out"
D_PORT=$(free_port)
write_conf "$work/d.conf" "$D_PORT" "$SINK_PORT"
sed -i "s#$work/spool#$work/dspool#; s#$work/logs#$work/dlogs#; s#$work/kumod.pid#$work/d.pid#" "$work/d.conf"
cp "$work/d.conf" "$work/dbad.conf"
sed -i "s#$work/dspool#/proc/nonexistent/spool#" "$work/dbad.conf"
out=$(timeout 20 "$KUMOD" -c "$work/dbad.conf" 2>&1)
check_eq "daemon mode: an unusable spool_dir exits 2" "$?" 2
check "... naming it on stderr ($out)" grep -q "spool_dir /proc/nonexistent/spool" <<<"$out"
timeout 20 "$KUMOD" -c "$work/d.conf" >"$work/d.out" 2>&1
check_eq "daemon mode: a good start exits 0" "$?" 0
dpid=$(cat "$work/d.pid" 2>/dev/null)
check "... with the daemon running (pid $dpid)" kill -0 "$dpid"
check "... and listening" port_open "$D_PORT"
[ -n "$dpid" ] && pids+=("$dpid")
check_eq "... and nothing on stderr" "$(cat "$work/d.out")" ""
kill "$dpid" 2>/dev/null
dgone() { ! kill -0 "$dpid" 2>/dev/null; }
check "the daemon stops on SIGTERM" wait_until 10 dgone
finish
