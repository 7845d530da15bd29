# mkzone.sh: a DNSSEC-signed lab zone served by nsd on 127.0.0.1 (sourced
# after tests/integration/lib.sh, which provides start_bg / stop_pid /
# wait_for). Keys and signatures are made at run time: signatures expire,
# so nothing signed is ever kept. See LAB.md.
#
#   lab_sign_zone ORIGIN ZONEFILE SIGNED   # sets LAB_KSK; trust anchor: $LAB_KSK.ds
#   lab_tamper SIGNED 'sed expression'    # change data after signing (bogus)
#   lab_start_nsd DIR ORIGIN SIGNED        # sets LAB_DNS_PORT and LAB_NSD_PID
#   lab_restart_nsd DIR ORIGIN             # the same nsd again: rereads the zone file

lab_sign_zone() {
	local origin=$1 zone=$2 signed=$3 zsk
	LAB_KSK=$(ldns-keygen -a ECDSAP256SHA256 -k "$origin") || return 1
	zsk=$(ldns-keygen -a ECDSAP256SHA256 "$origin") || return 1
	ldns-signzone -i "$(date -u -d '-1 hour' +%Y%m%d%H%M%S)" \
		-e "$(date -u -d '+30 days' +%Y%m%d%H%M%S)" \
		-f "$signed" "$zone" "$LAB_KSK" "$zsk" || return 1
	LAB_KSK=$PWD/$LAB_KSK
}

# Returns non-zero when the expression changed nothing: a tamper that misses
# leaves a valid zone and a negative test that proves nothing.
lab_tamper() {
	cp "$1" "$1.pre-tamper" || return 1
	sed -i "$2" "$1" || return 1
	if cmp -s "$1" "$1.pre-tamper"; then
		echo "lab_tamper: '$2' changed nothing in $1" >&2
		return 1
	fi
}

# nsd needs its port free on UDP and TCP: try a few random ones; readiness
# is a TCP drill (UDP drill against a dead port hangs ~15 s).
lab_start_nsd() {
	local dir=$1 origin=$2 signed=$3 p
	LAB_DNS_PORT=
	for _ in 1 2 3 4 5; do
		p=$((20000 + RANDOM % 40000))
		cat >"$dir/nsd.conf" <<NSDEOF
server:
	ip-address: 127.0.0.1@$p
	username: ""
	chroot: ""
	database: ""
	zonesdir: "$dir"
	pidfile: "$dir/nsd.pid"
	logfile: "$dir/nsd.log"
	xfrdfile: "$dir/xfrd.state"
	zonelistfile: "$dir/zone.list"
	verbosity: 1
remote-control:
	control-enable: no
zone:
	name: $origin
	zonefile: "$signed"
NSDEOF
		start_bg nsd nsd -d -c "$dir/nsd.conf"
		LAB_NSD_PID=$LAST_PID
		if wait_for 5 drill -t -p "$p" "$origin" SOA @127.0.0.1; then
			LAB_DNS_PORT=$p
			return 0
		fi
		stop_pid "$LAB_NSD_PID"
	done
	return 1
}

# lab_restart_nsd DIR ORIGIN: stop nsd and start it again on the same port
# with the same nsd.conf, so it reads its zone file anew (a changed zone
# for refresh tests). Sets LAB_NSD_PID.
lab_restart_nsd() {
	local dir=$1 origin=$2
	stop_pid "$LAB_NSD_PID"
	for _ in 1 2 3 4 5; do
		start_bg nsd nsd -d -c "$dir/nsd.conf"
		LAB_NSD_PID=$LAST_PID
		if wait_for 5 drill -t -p "$LAB_DNS_PORT" "$origin" SOA @127.0.0.1; then
			return 0
		fi
		stop_pid "$LAB_NSD_PID"
		sleep 0.5 # the port may still be held by the old process
	done
	return 1
}
