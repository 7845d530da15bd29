#!/usr/bin/env bash
# kumod-shaping-seed.sh: seed 002's worked example through a running kumod,
# with smtp-sink's saved messages and statistics as the verdict. yahoo.com,
# foo.com, bar.com and baz.com share yahoo's three MX hosts (one site):
#   - foo.com (mx_rollup = false) resolves to connection_limit 3,
#     max_deliveries_per_connection 5, max_connection_rate "20/min",
#     max_message_rate "5/min", and has a ready queue of its own: the sink
#     gets exactly its burst of 5 at once and the 6th only ~12 s later,
#     while bar.com and baz.com (never configured) ride yahoo.com's site
#     entry (50/s) and arrive at once, whichever domain's mail came first;
#   - no connection carries more than 5 messages;
#   - the same rules loaded from examples/shaping.json (shaping_file)
#     resolve identically;
#   - a second domain entry on yahoo's site without mx_rollup = false is an
#     error naming both entries, at --check-config, at start and on reload;
#   - a bad value in a shaping.json is reported with its file and line.
. "$(dirname "$0")/kumod-common.sh"
K=${KUMOCTL:-$top/kumoctl/kumoctl}
[ -x "$K" ] || { echo "SKIP: $K not built"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq missing"; exit 77; }

SITE='(mta5|mta6|mta7).am0.yahoodns.net'
start_sink sink
KUMOD_PORT=$(free_port)
sock=$work/control.sock
local_data() {
	local d h sep=""
	for d in yahoo.com foo.com bar.com baz.com; do
		for h in 5 6 7; do printf '%s"%s. MX 1 mta%s.am0.yahoodns.net."' "$sep" "$d" "$h"; sep=", "; done
	done
	for h in 5 6 7; do printf ', "mta%s.am0.yahoodns.net. A 127.0.0.1"' "$h"; done
}
# conf FILE SHAPING_TEXT: a kumod configuration with the given shaping part
conf() {
	cat >"$1" <<EOF
listen = ( { address = "127.0.0.1:$KUMOD_PORT"; relay_hosts = [ "127.0.0.0/8" ]; } );
spool_dir = "$work/spool";
log_dir = "$work/logs";
pidfile = "$work/kumod.pid";
hostname = "kumod.test";
shutdown_timeout = 5;
control = { socket = "$sock"; };
dns = { local_data = [ $(local_data) ]; };
$2
EOF
}
# The seed's shaping.json in libconfig form; the lab needs the sink's port,
# loopback MXs allowed and no TLS, in the default entry.
lab_default='smtp_port = '$SINK_PORT'; prohibited_hosts = [ ]; enable_tls = "Disabled";'
conf "$work/seed.conf" "shaping = {
  default = { connection_limit = 3; max_connection_rate = \"100/min\"; $lab_default };
  domains = (
    { domain = \"yahoo.com\"; max_deliveries_per_connection = 5;
      max_connection_rate = \"20/min\"; max_message_rate = \"50/s\"; },
    { domain = \"foo.com\"; mx_rollup = false; max_message_rate = \"5/min\"; },
    { domain = \"gmail.com\"; connection_limit = 3;
      sources = ( { name = \"ip-1\"; connection_limit = 5; } ); }
  );
};"
# gmail.com has no lab MX: its lookup fails and is reported, not fatal.
out=$("$KUMOD" --check-config "$work/seed.conf" 2>&1)
check_eq "the seed's rules check" "$?" 0
check "an entry whose MX cannot be looked up is reported with its line ($(grep gmail <<<"$out" | head -c 150))" \
	grep -q "seed.conf:[0-9]*: shaping: domain \"gmail.com\": .*apply to \"gmail.com\" alone" <<<"$out"
start_kumod "$work/seed.conf" || { finish; }
wait_until 10 test -S "$sock"

# resolve DOMAIN: "key=value/origin" for the four keys of the seed's example
resolve() {
	"$K" -s "$sock" --json resolve-egress-path "$1" | jq -r '.result | .config[] |
		select(.key == "connection_limit" or .key == "max_deliveries_per_connection" or
		       .key == "max_connection_rate" or .key == "max_message_rate") |
		"\(.key)=\(.value)/\(.origin)"' | tr '\n' ' '
}
seed_foo="connection_limit=3/default max_connection_rate=20/min/site max_deliveries_per_connection=5/site max_message_rate=5/min/domain "
check_eq "foo.com resolves as the seed says" "$(resolve foo.com)" "$seed_foo"
check_eq "bar.com (not configured, on yahoo's MXs) takes the site entry" "$(resolve bar.com)" \
	"connection_limit=3/default max_connection_rate=20/min/site max_deliveries_per_connection=5/site max_message_rate=50/s/site "
check_eq "resolve names the site and the ready queues" \
	"$("$K" -s "$sock" --json resolve-egress-path foo.com | jq -r '.result | "\(.site) \(.own_queue) \(.ready_queue)"') / $("$K" -s "$sock" --json resolve-egress-path bar.com | jq -r '.result | "\(.own_queue) \(.ready_queue)"')" \
	"$SITE true unspecified->foo.com@$SITE / false unspecified->$SITE"

# Mail: foo.com first, so the order that used to decide the shared path is the worst one.
t0=$(date +%s.%N)
"$K" -s "$sock" inject --to 'f{n}@foo.com' --count 20 >/dev/null
"$K" -s "$sock" inject --to 'b{n}@bar.com' --count 20 >/dev/null
"$K" -s "$sock" inject --to 'y{n}@yahoo.com' --count 10 >/dev/null
"$K" -s "$sock" inject --to 'z{n}@baz.com' --count 10 >/dev/null
n_dom() { saved_rcpts sink | grep -c "@$1\$"; }
site_all() { [ "$(n_dom bar.com)" -ge 20 ] && [ "$(n_dom yahoo.com)" -ge 10 ] && [ "$(n_dom baz.com)" -ge 10 ]; }
check "bar.com, yahoo.com and baz.com arrive at once (50/s)" wait_until 8 site_all
check_eq "foo.com: exactly its burst of 5 arrived meanwhile (5/min)" "$(n_dom foo.com)" 5
sixth() { [ "$(n_dom foo.com)" -ge 6 ]; }
check "foo.com: the 6th message arrives (within 30 s)" wait_until 30 sixth
gap=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
check "... no sooner than ~12 s after the first (${gap} s)" awk -v g="$gap" 'BEGIN { exit !(g >= 9) }'
"$K" -s "$sock" --json queue-summary >"$work/qs.json"
check_eq "two ready queues for the one site: the site's and foo.com's own" \
	"$(jq -r '.result.ready[].name' "$work/qs.json" | sort | tr '\n' ' ')" \
	"unspecified->$SITE unspecified->foo.com@$SITE "
sink_stats sink "$SINK_PID"
check "no connection carried more than 5 messages ($(jq -c .messages_per_connection "$work/sink.json"))" \
	jq -e '.messages_per_connection | keys | map(tonumber? // 99) | max <= 5' "$work/sink.json" >/dev/null
check "peak concurrent connections within 3 per queue ($(jq .connections.peak_concurrent "$work/sink.json"))" \
	jq -e '.connections.peak_concurrent <= 6' "$work/sink.json" >/dev/null

# The same rules from the seed's JSON file.
cp "$top/examples/shaping.json" "$work/shaping.json"
conf "$work/json.conf" "shaping = { default = { $lab_default }; };
shaping_file = \"shaping.json\";"
out=$("$KUMOD" --check-config "$work/json.conf" 2>&1)
check "shaping_file (relative to the config) checks ($(tail -1 <<<"$out"))" grep -q "3 shaping domains" <<<"$out"
cp "$work/json.conf" "$work/seed.conf"
reload_out=$("$K" -s "$sock" reload 2>&1)
check "reload to the JSON rules ($reload_out)" [ $? -eq 0 ]
check_eq "foo.com resolves the same from examples/shaping.json" "$(resolve foo.com)" "$seed_foo"

# A second rollup entry on yahoo's site is an error naming both entries.
conf "$work/conflict.conf" "shaping = {
  default = { $lab_default };
  domains = (
    { domain = \"yahoo.com\"; max_message_rate = \"50/s\"; },
    { domain = \"bar.com\"; max_message_rate = \"1/s\"; }
  );
};"
out=$("$KUMOD" --check-config "$work/conflict.conf" 2>&1)
check_eq "conflicting entries: --check-config exits 2" "$?" 2
check "... naming both entries and their lines ($out)" \
	grep -q "conflict.conf:[0-9]*: shaping: domain \"bar.com\" belongs to site $SITE, which domain \"yahoo.com\" (.*conflict.conf:[0-9]*) already configures; set mx_rollup = false on \"bar.com\"" <<<"$out"
cp "$work/conflict.conf" "$work/seed.conf"
reload_out=$("$K" -s "$sock" reload 2>&1)
check_eq "a reload into the conflict is refused" "$?" 1
check "... saying why ($(head -c 200 <<<"$reload_out"))" grep -q 'belongs to site' <<<"$reload_out"
check_eq "... and the running rules stay" "$(resolve foo.com)" "$seed_foo"
kill "$KUMOD_PID"
wait "$KUMOD_PID" 2>/dev/null
KP2=$(free_port)
sed "s/127.0.0.1:$KUMOD_PORT/127.0.0.1:$KP2/" "$work/conflict.conf" >"$work/conflict2.conf"
out=$(timeout 20 "$KUMOD" -f -c "$work/conflict2.conf" 2>&1)
check_eq "kumod does not start with conflicting entries" "$?" 2
check "... and says so" grep -q 'belongs to site' <<<"$out"

# A bad value in a shaping.json names the file, the line and the entry.
printf '{\n  "default": { "connection_limit": 3 },\n  "foo.com": {\n    "mx_rollup": false,\n    "max_message_rate": "5/fortnight"\n  }\n}\n' >"$work/shaping.json"
out=$("$KUMOD" --check-config "$work/json.conf" 2>&1)
check_eq "a bad shaping.json fails the check" "$?" 2
check "... with file:line and the entry ($out)" \
	grep -q "shaping.json:5: \"foo.com\": max_message_rate: \"5/fortnight\": unknown period" <<<"$out"
printf '{\n  "foo.com": { "max_message_rate": "5/min", }\n}\n' >"$work/shaping.json"
out=$("$KUMOD" --check-config "$work/json.conf" 2>&1)
check "a trailing comma is a syntax error with its line ($out)" grep -q 'shaping.json:2: .*strict JSON' <<<"$out"
finish
