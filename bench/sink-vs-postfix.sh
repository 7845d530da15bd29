#!/bin/bash
# sink-vs-postfix.sh: Postfix smtp-source drives our smtp-sink and Postfix's
# smtp-sink, alternating (ours, theirs, ours, ...), on 127.0.0.1 in one run.
# Cells: payload 1 KB and 100 KB; 1 and 100 messages per connection; 1, 10
# and 50 connections. Each cell runs REPS times per sink; the table shows
# medians of msg/s and of the sink's own CPU seconds (utime+stime from
# /proc/PID/stat), with the ratios ours/Postfix.
#
# Pinning (shared/BENCH.md): the sink under test on CPU 0 (taskset -c 0),
# smtp-source on CPU 1 (taskset -c 1). Every run gets a fresh port, so
# TIME-WAIT left by one run never meets the next. Before each cell, both
# sinks get one untimed warm-up run (WARMUP messages) with the cell's
# settings. The load average is printed before and after: on a shared
# machine the absolute numbers swing, the side-by-side ratios much less.
#
# SOURCE_ENV (default empty) is put in smtp-source's environment, for both
# sinks alike. At 1 KB the client is the bottleneck, and smtp-source's own
# cost is bimodal: Postfix's mymalloc() fills each session's two ~128 KB
# stream buffers, and depending on how glibc's dynamic malloc thresholds
# happen to place them (timing-dependent) that costs ~1 or ~6-9 page faults
# per message, i.e. ~150 or ~250 us of client CPU per message. The slow
# mode came up in 7 of 8 runs against our sink and in about 2 of 8 against
# Postfix's (1 KB, 1 message per connection, 50 connections), so msg/s
# there partly measures smtp-source's allocator. Fixing the thresholds
# removes that for both:
#   SOURCE_ENV=GLIBC_TUNABLES=glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=4194304
#
# Environment: MSGS (20000), REPS (3), WARMUP (MSGS/10, 0: none), SOURCE_ENV
# (above), SIZES ("1024 102400"), PERCONN ("1 100"), CONCS ("1 10 50"), SINK
# (our binary), SINK_ARGS (extra options for ours, e.g. "--coalesce 0"),
# PF_SINK, SMTP_SOURCE, OUT (also write the table to this file).
# Must run as root (Postfix's sink drops to -u postfix). Exit 2 when a tool
# is missing, 1 when a run failed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
MSGS=${MSGS:-20000}
REPS=${REPS:-3}
WARMUP=${WARMUP:-$((MSGS / 10))}
SOURCE_ENV=${SOURCE_ENV:-}
SIZES=${SIZES:-"1024 102400"}
PERCONN=${PERCONN:-"1 100"}
CONCS=${CONCS:-"1 10 50"}
SINK=${SINK:-$top/smtp-sink/smtp-sink}
PF_SINK=${PF_SINK:-/usr/sbin/smtp-sink}
SMTP_SOURCE=${SMTP_SOURCE:-/usr/sbin/smtp-source}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
HZ=$(getconf CLK_TCK)

for t in "$SINK" "$PF_SINK" "$SMTP_SOURCE"; do
	[ -x "$t" ] || { echo "sink-vs-postfix: $t missing (build smtp-sink; apt-get install postfix)" >&2; exit 2; }
done
command -v taskset >/dev/null || { echo "sink-vs-postfix: taskset missing (util-linux)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "sink-vs-postfix: run as root (Postfix's smtp-sink -u postfix)" >&2; exit 2; }

work=$(mktemp -d /tmp/sink-bench.XXXXXX)
sink_pid=
cleanup() {
	[ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# listening PORT: is something accepting on 127.0.0.1:PORT?
listening() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

cpu_ticks() {
	# fields 14 and 15 of /proc/PID/stat, counted after the ")" of the command name
	sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# start_sink ours|theirs: sets sink_pid and port; returns non-zero if it did not come up
start_sink() {
	port=$(free_port)
	if [ "$1" = ours ]; then
		rm -f "$work/port"
		# shellcheck disable=SC2086 # SINK_ARGS is a list of options
		taskset -c 0 "$SINK" --listen "127.0.0.1:$port" --hostname sink.test ${SINK_ARGS:-} \
			>"$work/sink.out" 2>&1 &
	else
		taskset -c 0 "$PF_SINK" -u postfix "127.0.0.1:$port" 1024 >"$work/sink.out" 2>&1 &
	fi
	sink_pid=$!
	for _ in $(seq 100); do
		listening "$port" && return 0
		sleep 0.05
	done
	echo "sink-vs-postfix: $1 sink did not start:" >&2
	cat "$work/sink.out" >&2
	return 1
}

stop_sink() {
	kill "$sink_pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$sink_pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$sink_pid" 2>/dev/null
	wait "$sink_pid" 2>/dev/null
	sink_pid=
}

# drive SIZE PERCONN CONC [COUNT]: smtp-source sends COUNT (MSGS) messages;
# 100 per connection is done in waves of -d -s CONC -m 100*CONC (BENCH.md).
drive() {
	local size=$1 per=$2 conc=$3 left=${4:-$MSGS} n
	if [ "$per" -eq 1 ]; then
		# shellcheck disable=SC2086 # SOURCE_ENV is a list of NAME=VALUE
		env $SOURCE_ENV timeout 600 taskset -c 1 "$SMTP_SOURCE" -M client.test -s "$conc" \
			-m "$left" -l "$size" "127.0.0.1:$port"
		return
	fi
	while [ "$left" -gt 0 ]; do
		n=$((per * conc))
		[ "$n" -gt "$left" ] && n=$left
		# shellcheck disable=SC2086
		env $SOURCE_ENV timeout 600 taskset -c 1 "$SMTP_SOURCE" -M client.test -d -s "$conc" \
			-m "$n" -l "$size" "127.0.0.1:$port" || return 1
		left=$((left - n))
	done
}

# run WHICH SIZE PER CONC: prints "msgs_per_s cpu_seconds"
run() {
	local t0 t1 c0 c1
	start_sink "$1" || return 1
	c0=$(cpu_ticks "$sink_pid")
	t0=$(date +%s.%N)
	drive "$2" "$3" "$4" || { stop_sink; return 1; }
	t1=$(date +%s.%N)
	c1=$(cpu_ticks "$sink_pid")
	stop_sink
	awk -v m="$MSGS" -v a="$t0" -v b="$t1" -v c="$((c1 - c0))" -v hz="$HZ" \
		'BEGIN { printf "%.0f %.3f\n", m / (b - a), c / hz }'
}

# warm WHICH SIZE PER CONC: an untimed run of WARMUP messages
warm() {
	[ "$WARMUP" -gt 0 ] || return 0
	start_sink "$1" || return 1
	drive "$2" "$3" "$4" "$WARMUP" >/dev/null 2>&1
	stop_sink
}

# span: "min-max" of the numbers on stdin
span() {
	tr ' ' '\n' | sort -g | awk 'NF { v[++n] = $1 } END { printf "%s-%s", v[1], v[n] }'
}

median() {
	tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "# sink-vs-postfix: $MSGS messages per run, $REPS reps, medians; sink on CPU 0, smtp-source on CPU 1"
echo "# ours: $SINK ${SINK_ARGS:-}"
echo "# smtp-source environment: ${SOURCE_ENV:-(none)}"
echo "# $(uname -r), $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ); warm-up $WARMUP messages per sink and cell"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
fmt="%-7s %-8s %-5s | %9s %9s %6s | %8s %8s %6s | %7s %7s\n"
hdr=$(printf "$fmt" size msg/conn conns "ours/s" "pfx/s" ratio "ourCPU" "pfxCPU" ratio "us/msg" "pfx us")
echo "$hdr"
table="$hdr"$'\n'
failed=0
for size in $SIZES; do
	for per in $PERCONN; do
		for conc in $CONCS; do
			ours_r="" ours_c="" pf_r="" pf_c=""
			warm ours "$size" "$per" "$conc"
			warm theirs "$size" "$per" "$conc"
			for rep in $(seq "$REPS"); do
				# alternate which goes first, so drift hits both alike
				if [ $((rep % 2)) -eq 1 ]; then order="ours theirs"; else order="theirs ours"; fi
				for which in $order; do
					if ! r=$(run "$which" "$size" "$per" "$conc"); then
						echo "# run failed: $which size=$size per=$per conc=$conc" >&2
						failed=1
						continue
					fi
					if [ "$which" = ours ]; then
						ours_r="$ours_r ${r% *}"; ours_c="$ours_c ${r#* }"
					else
						pf_r="$pf_r ${r% *}"; pf_c="$pf_c ${r#* }"
					fi
				done
			done
			[ -n "$ours_r" ] && [ -n "$pf_r" ] || continue
			mo=$(median <<<"${ours_r# }"); mp=$(median <<<"${pf_r# }")
			co=$(median <<<"${ours_c# }"); cp=$(median <<<"${pf_c# }")
			label=$([ "$size" -ge 1024 ] && echo "$((size / 1024))KB" || echo "${size}B")
			line=$(awk -v l="$label" -v p="$per" -v c="$conc" -v mo="$mo" -v mp="$mp" -v co="$co" \
				-v cp="$cp" -v m="$MSGS" -v f="$fmt" 'BEGIN {
				printf f, l, p, c, mo, mp, sprintf("%.2fx", mo / mp), sprintf("%.2f", co),
				    sprintf("%.2f", cp), (cp > 0 ? sprintf("%.2fx", co / cp) : "-"),
				    sprintf("%.1f", co * 1e6 / m), sprintf("%.1f", cp * 1e6 / m) }')
			echo "$line"
			echo "#   msg/s range over $REPS reps: ours $(span <<<"${ours_r# }"), pfx $(span <<<"${pf_r# }")"
			table="$table$line"$'\n'
		done
	done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -n "${OUT:-}" ] && printf '%s' "$table" >"$OUT"
exit "$failed"
