#!/usr/bin/env bash
# kumod-config.sh: `kumod --check-config` prints every problem of a file as
# file:line: setting: problem and exits 2; a good file exits 0; the shipped
# examples/lab.conf is valid.
. "$(dirname "$0")/kumod-common.sh"
cat >"$work/bad.conf" <<'CONF'
listen = ( { address = "127.0.0.1:99999"; relay_hosts = [ "10.0.0.0/33" ]; bogus = 1; } );
sources = ( { name = "ip-1"; source_address = "nope"; } );
pools = ( { name = "p"; entries = ( { name = "ip-2"; weight = 0; } ); } );
queues = { default = { egress_pool = "nopool"; retry_interval = "5 fortnights"; }; };
shaping = {
  default = { connection_limit = -1; max_message_rate = "5/fortnight";
              enable_tls = "Sometimes"; openssl_cipher_list = "x"; };
  domains = ( { domain = "foo.com"; mx_rollup = false; frobnicate = 3; } );
};
mystery = 1;
CONF
"$KUMOD" --check-config "$work/bad.conf" >"$work/out" 2>&1
check_eq "exit status for a bad file" "$?" 2
f=$work/bad.conf
for want in \
	"$f:1: listen.[0].bogus: unknown key" \
	"$f:1: listen.[0].address: \"127.0.0.1:99999\": want ADDRESS:PORT or [IPV6]:PORT" \
	"$f:1: listen.[0].relay_hosts.[0]: \"10.0.0.0/33\": prefix length 33 is above 32" \
	"$f:2: sources.[0].source_address: want an IPv4 or IPv6 address" \
	"$f:3: pools.[0].entries.[0].weight: want an integer >= 1" \
	"$f:3: pools.[0]: pool \"p\": no source named \"ip-2\"" \
	"$f:4: queues.default.retry_interval: \"5 fortnights\": unknown unit \"fortnights\"" \
	"$f:6: shaping.default.connection_limit: -1 is out of range (1..1000000000)" \
	"$f:6: shaping.default.max_message_rate: \"5/fortnight\": unknown period \"fortnight\"" \
	"$f:7: shaping.default.enable_tls: \"Sometimes\": unknown mode" \
	"$f:7: shaping.default.openssl_cipher_list: unknown key (kumo uses GnuTLS" \
	"$f:8: shaping.domains.[0].frobnicate: unknown key" \
	"$f:10: mystery: unknown key" \
	"queues: default: egress_pool \"nopool\" is not defined"; do
	check "reports: $want" grep -qF "$want" "$work/out"
done
printf 'listen = ( { address = "127.0.0.1:2525" } );\nspool_dir = ;\n' >"$work/syntax.conf"
"$KUMOD" --check-config "$work/syntax.conf" >"$work/out2" 2>&1
check_eq "exit status for a syntax error" "$?" 2
check "syntax error names file:line" grep -q "syntax.conf:2: syntax:" "$work/out2"
"$KUMOD" --check-config "$work/missing.conf" >/dev/null 2>&1
check_eq "exit status for a missing file" "$?" 2
lab=$top/examples/lab.conf
[ -f "$lab" ] || lab=$here/../../examples/lab.conf
"$KUMOD" --check-config "$lab" >"$work/out3" 2>&1
check_eq "examples/lab.conf is valid" "$?" 0
finish
