#!/usr/bin/env bash
# bench/relay-vs-postfix.sh: kumod as a relay against Postfix as a relay, side
# by side in one run on this machine, both with their durable queues.
#
#   smtp-source -> kumod   -> smtp-sink
#   smtp-source -> Postfix (relayhost = the same smtp-sink) -> smtp-sink
#
# For each payload (1 KB and 100 KB) the two relays are measured alternately
# (A B A B ...), ROUNDS times, with the same client, sizes and pinning:
# relay and sink on CPU 0 ("server side"), smtp-source on CPU 1. The time is
# from the first injection to the last delivery counted by the sink
# (--exit-after). Each run starts after `sync`, once the kernel's dirty and
# writeback pages are under 16 MB and the disk has been idle (no sector
# written or discarded) for a second, so neither relay pays for the other's
# writeback or discards. Reported: msg/s (median), the ratio kumod/Postfix, kumod's
# peak RSS, and the relay's CPU seconds per 1,000 messages (kumod: its own
# utime+stime; Postfix: the sum over its processes, from /proc).
#
#   bench/relay-vs-postfix.sh [MESSAGES] [ROUNDS]     defaults 20000 3
# Environment: SIZES="1024 102400", SESSIONS=20, KEEP=1 keeps the work dir.
# Needs root (Postfix runs as its own user) and Debian's postfix package.
set -u
cd "$(dirname "$0")/.."
top=$PWD
N=${1:-20000}
ROUNDS=${2:-3}
SIZES=${SIZES:-"1024 102400"}
SESSIONS=${SESSIONS:-20}
KUMOD=$top/daemon/kumod
SINK=$top/smtp-sink/smtp-sink
SRC=/usr/sbin/smtp-source
work=$(mktemp -d /tmp/kumo-bench.XXXXXX)
chmod 755 "$work" # Postfix runs as its own user
pids=()
pfx=""

die() { echo "relay-vs-postfix: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "run as root (Postfix needs it)"
for b in "$KUMOD" "$SINK" "$SRC" /usr/sbin/postfix; do [ -x "$b" ] || die "$b missing"; done
command -v taskset >/dev/null || die "taskset missing (util-linux)"
command -v jq >/dev/null || die "jq missing"

cleanup() {
	local p
	[ -n "$pfx" ] && postfix -c "$pfx" stop >/dev/null 2>&1
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.5
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	if [ "${KEEP:-0}" = 1 ]; then echo "work directory: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
now() { date +%s.%N; }
clk=$(getconf CLK_TCK)

# The sink for one run: exits by itself after N messages; its end is the run's end.
start_sink() {
	rm -f "$work/sink.port"
	taskset -c 0 "$SINK" --listen 127.0.0.1:0 --port-file "$work/sink.port" \
		--exit-after "$N" --hostname sink.bench.test >"$work/sink.out" 2>&1 &
	sink_pid=$!
	pids+=("$sink_pid")
	for _ in $(seq 100); do [ -s "$work/sink.port" ] && break; sleep 0.05; done
	sink_port=$(head -1 "$work/sink.port")
}

# cpu_of PID...: utime+stime in seconds of these processes (and their reaped children).
cpu_of() {
	local p t=0
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] || continue
		t=$((t + $(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat")))
	done
	echo "$t"
}

# settle: start every run on a quiet disk. A run leaves up to 2 GB dirty
# (20,000 x 100 KB spooled and unlinked; this disk is mounted with discard),
# and its writeback would otherwise be charged to whichever relay runs next.
disk=$(basename "$(df --output=source "$work" | tail -1)")
# disk_io: sectors written + sectors discarded so far on the work directory's disk
disk_io() { awk -v d="$disk" '$3 == d {print $10 + $16}' /proc/diskstats; }
settle() {
	local i a b
	sync
	for i in $(seq 120); do
		awk '/^(Dirty|Writeback):/ {kb += $2} END {exit !(kb < 16384)}' /proc/meminfo && break
		sleep 0.5
	done
	# Discards of the previous run's unlinked files go on after sync: wait for a quiet second.
	for i in $(seq 120); do
		a=$(disk_io)
		sleep 1
		b=$(disk_io)
		[ -z "$a" ] || [ "$a" = "$b" ] && break
	done
}

# ---- kumod ----
kumod_port=$(free_port)
write_kumod_conf() {
	cat >"$work/kumod.conf" <<EOF
listen = ( { address = "127.0.0.1:$kumod_port"; relay_hosts = [ "127.0.0.0/8" ];
             max_message_size = 0; hostname = "kumod.bench.test"; } );
spool_dir = "$work/kumod-spool";
log_dir = "$work/kumod-logs";
hostname = "kumod.bench.test";
dns = { local_data = [ "bench.test. MX 10 mx.bench.test.", "mx.bench.test. A 127.0.0.1" ]; };
shaping = { default = { smtp_port = $sink_port; prohibited_hosts = [ ];
                        enable_tls = "Disabled"; connection_limit = 20;
                        max_ready = 100000; }; };
EOF
}

run_kumod() {
	local size=$1 t0 t1 cpu rss
	settle
	start_sink
	rm -rf "$work/kumod-spool" "$work/kumod-logs"
	write_kumod_conf
	taskset -c 0 "$KUMOD" -f -c "$work/kumod.conf" -l warn >"$work/kumod.out" 2>&1 &
	local kp=$!
	pids+=("$kp")
	for _ in $(seq 100); do port_open "$kumod_port" && break; sleep 0.05; done
	t0=$(now)
	taskset -c 1 "$SRC" -d -s "$SESSIONS" -l "$size" -m "$N" -f s@src.bench.test \
		-t u@bench.test 127.0.0.1:"$kumod_port" >/dev/null 2>&1
	wait "$sink_pid"
	t1=$(now)
	cpu=$(cpu_of "$kp")
	rss=$(awk '/VmHWM/ {print $2}' "/proc/$kp/status")
	kill "$kp"
	wait "$kp" 2>/dev/null
	echo "$(echo "$N / ($t1 - $t0)" | bc) $(echo "scale=3; $cpu / $clk * 1000 / $N" | bc) $rss"
}

# ---- Postfix ----
pfx_port=$(free_port)
setup_postfix() {
	pfx=$work/postfix
	mkdir -p "$pfx" "$work/pfx-queue" "$work/pfx-data"
	# Every service without chroot, the smtpd listener on our port.
	sed -e 's/^\([a-z]*\)\( *\)\(inet\|unix\|unix-dgram\|fifo\|pass\)\( *\)\([-yn]\)\( *\)\([-yn]\)\( *\)y/\1\2\3\4\5\6\7\8n/' \
		-e "s/^smtp      inet/127.0.0.1:$pfx_port inet/" /etc/postfix/master.cf >"$pfx/master.cf"
	cat >"$pfx/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $work/pfx-queue
data_directory = $work/pfx-data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.bench.test
mydestination =
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:SINKPORT
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file_prefixes = $work
maillog_file = $work/postfix.log
smtputf8_enable = no
biff = no
EOF
	chown postfix "$work/pfx-data"
}

run_postfix() {
	local size=$1 t0 t1 cpu=0 p
	settle
	start_sink
	sed -i "s/^relayhost = .*/relayhost = [127.0.0.1]:$sink_port/" "$pfx/main.cf"
	rm -rf "$work/pfx-queue"/*
	postfix -c "$pfx" set-permissions >/dev/null 2>&1
	taskset -c 0 postfix -c "$pfx" start >/dev/null 2>&1 || die "postfix start failed: $(tail -5 "$work/postfix.log" 2>/dev/null)"
	for _ in $(seq 100); do port_open "$pfx_port" && break; sleep 0.05; done
	local master
	master=$(head -1 "$work/pfx-queue/pid/master.pid" 2>/dev/null | tr -d ' ')
	t0=$(now)
	taskset -c 1 "$SRC" -d -s "$SESSIONS" -l "$size" -m "$N" -f s@src.bench.test \
		-t u@bench.test 127.0.0.1:"$pfx_port" >/dev/null 2>&1
	wait "$sink_pid"
	t1=$(now)
	# CPU of every process of this instance: the master and its children
	# (their reaped children are in cstime/cutime of the master).
	for p in $master $(pgrep -P "$master"); do cpu=$((cpu + $(cpu_of "$p"))); done
	postfix -c "$pfx" stop >/dev/null 2>&1
	for _ in $(seq 100); do kill -0 "$master" 2>/dev/null || break; sleep 0.05; done
	echo "$(echo "$N / ($t1 - $t0)" | bc) $(echo "scale=3; $cpu / $clk * 1000 / $N" | bc) -"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : int((a[NR/2] + a[NR/2+1]) / 2)}'; }

setup_postfix
echo "relay benchmark: $N messages, $SESSIONS injecting connections, $ROUNDS rounds, relay+sink on CPU 0, smtp-source on CPU 1"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '\n| payload | kumod msg/s | Postfix msg/s | ratio | kumod CPU s/1000 msg | Postfix CPU s/1000 msg | kumod peak RSS |\n'
printf '|---|---:|---:|---:|---:|---:|---:|\n'
for size in $SIZES; do
	: >"$work/k.$size"
	: >"$work/p.$size"
	for r in $(seq "$ROUNDS"); do
		run_kumod "$size" >>"$work/k.$size"
		run_postfix "$size" >>"$work/p.$size"
	done
	k=$(cut -d' ' -f1 "$work/k.$size" | median)
	p=$(cut -d' ' -f1 "$work/p.$size" | median)
	kc=$(cut -d' ' -f2 "$work/k.$size" | sort -n | sed -n "$(((ROUNDS + 1) / 2))p")
	pc=$(cut -d' ' -f2 "$work/p.$size" | sort -n | sed -n "$(((ROUNDS + 1) / 2))p")
	rss=$(cut -d' ' -f3 "$work/k.$size" | sort -n | tail -1)
	printf '| %s | %s | %s | %s | %s | %s | %s MB |\n' "$((size / 1024)) KB" "$k" "$p" \
		"$(echo "scale=2; $k / $p" | bc)" "$kc" "$pc" "$((rss / 1024))"
	echo "<!-- runs $size: kumod [$(cut -d' ' -f1 "$work/k.$size" | tr '\n' ' ')] postfix [$(cut -d' ' -f1 "$work/p.$size" | tr '\n' ' ')] -->"
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
